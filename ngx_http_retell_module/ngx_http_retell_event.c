
/*
 * Streaming yajl parser for Retell webhook bodies.
 *
 * The body is walked once with yajl's callbacks; a small stack of frames
 * says which object the parser is in.  Known fields are type-checked and
 * copied; objects stored as JSON are re-generated compactly with yajl_gen;
 * unknown fields are skipped whatever their shape, within the depth bound.
 */


#include "ngx_http_retell_event_parser.h"
#include "ngx_http_retell_json.h"

#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_gen.h>


#define ev_field(name)  offsetof(ngx_http_retell_event_t, name)


static const ngx_http_retell_field_t  ngx_http_retell_top_fields[] = {
    { "event", NGX_HTTP_RETELL_FIELD_STRING, ev_field(event),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "call", NGX_HTTP_RETELL_FIELD_CALL, 0, 0, 0 },
    { "transfer_destination", NGX_HTTP_RETELL_FIELD_TRANSFER, 0, 0, 0 },
    { NULL, 0, 0, 0, 0 }
};


/* transfer events' {"number": ..., "extension": ...} */

static const ngx_http_retell_field_t  ngx_http_retell_transfer_fields[] = {
    { "number", NGX_HTTP_RETELL_FIELD_STRING, ev_field(transfer_number),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { NULL, 0, 0, 0, 0 }
};


/*
 * Disconnection reasons of calls the platform dropped (besides every
 * "error_" one but error_user_not_joined): the caller was cut off or
 * refused by Retell, the account or the carrier, not by the agent or the
 * caller (docs/data-and-rules.md)
 */

static const char  *ngx_http_retell_platform_failures[] = {
    "concurrency_limit_reached",
    "no_concurrency_fallback",
    "no_valid_payment",
    "telephony_provider_unavailable",
    "sip_routing_error",
    NULL
};


static const ngx_http_retell_field_t  ngx_http_retell_call_fields[] = {
    { "call_id", NGX_HTTP_RETELL_FIELD_STRING, ev_field(call_id),
      NGX_HTTP_RETELL_CALL_ID_MAX_LEN, 0 },
    { "agent_id", NGX_HTTP_RETELL_FIELD_STRING, ev_field(agent_id),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "call_type", NGX_HTTP_RETELL_FIELD_STRING, ev_field(call_type),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "direction", NGX_HTTP_RETELL_FIELD_STRING, ev_field(direction),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "from_number", NGX_HTTP_RETELL_FIELD_STRING, ev_field(from_number),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "to_number", NGX_HTTP_RETELL_FIELD_STRING, ev_field(to_number),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "call_status", NGX_HTTP_RETELL_FIELD_STRING, ev_field(call_status),
      NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "disconnection_reason", NGX_HTTP_RETELL_FIELD_STRING,
      ev_field(disconnection_reason), NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "transcript", NGX_HTTP_RETELL_FIELD_STRING, ev_field(transcript),
      (size_t) -1, 0 },
    { "recording_url", NGX_HTTP_RETELL_FIELD_STRING, ev_field(recording_url),
      NGX_HTTP_RETELL_URL_MAX_LEN, 0 },
    { "transfer_destination", NGX_HTTP_RETELL_FIELD_STRING,
      ev_field(transfer_destination), NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "data_storage_setting", NGX_HTTP_RETELL_FIELD_STRING,
      ev_field(data_storage_setting), NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "start_timestamp", NGX_HTTP_RETELL_FIELD_INTEGER,
      ev_field(start_timestamp), 0, 0 },
    { "end_timestamp", NGX_HTTP_RETELL_FIELD_INTEGER,
      ev_field(end_timestamp), 0, 0 },
    { "duration_ms", NGX_HTTP_RETELL_FIELD_INTEGER, ev_field(duration_ms),
      0, 0 },
    { "metadata", NGX_HTTP_RETELL_FIELD_ANY_JSON, ev_field(metadata), 0, 0 },
    { "retell_llm_dynamic_variables", NGX_HTTP_RETELL_FIELD_OBJECT_JSON,
      ev_field(retell_llm_dynamic_variables), 0, 0 },
    { "collected_dynamic_variables", NGX_HTTP_RETELL_FIELD_OBJECT_JSON,
      ev_field(collected_dynamic_variables), 0,
      NGX_HTTP_RETELL_WATCH_COLLECTED },
    { "call_analysis", NGX_HTTP_RETELL_FIELD_ANALYSIS, 0, 0, 0 },
    { NULL, 0, 0, 0, 0 }
};


static const ngx_http_retell_field_t  ngx_http_retell_analysis_fields[] = {
    { "call_summary", NGX_HTTP_RETELL_FIELD_STRING, ev_field(call_summary),
      (size_t) -1, 0 },
    { "user_sentiment", NGX_HTTP_RETELL_FIELD_STRING,
      ev_field(user_sentiment), NGX_HTTP_RETELL_SHORT_MAX_LEN, 0 },
    { "call_successful", NGX_HTTP_RETELL_FIELD_BOOLEAN,
      ev_field(call_successful), 0, 0 },
    { "in_voicemail", NGX_HTTP_RETELL_FIELD_BOOLEAN, ev_field(in_voicemail),
      0, 0 },
    { "custom_analysis_data", NGX_HTTP_RETELL_FIELD_OBJECT_JSON,
      ev_field(custom_analysis_data), 0,
      NGX_HTTP_RETELL_WATCH_ANALYSIS_DATA },
    { NULL, 0, 0, 0, 0 }
};


static void ngx_http_retell_event_facts(ngx_http_retell_event_t *ev);
static int ngx_http_retell_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len);
static int ngx_http_retell_field_value(ngx_http_retell_parser_t *p,
    const ngx_http_retell_field_t *f, ngx_http_retell_value_e type,
    const u_char *data, size_t len);

static int ngx_http_retell_on_null(void *ctx);
static int ngx_http_retell_on_boolean(void *ctx, int value);
static int ngx_http_retell_on_number(void *ctx, const char *s, size_t len);
static int ngx_http_retell_on_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_http_retell_on_start_map(void *ctx);
static int ngx_http_retell_on_map_key(void *ctx, const unsigned char *key,
    size_t len);
static int ngx_http_retell_on_end_map(void *ctx);
static int ngx_http_retell_on_start_array(void *ctx);
static int ngx_http_retell_on_end_array(void *ctx);


static const yajl_callbacks  ngx_http_retell_callbacks = {
    ngx_http_retell_on_null,
    ngx_http_retell_on_boolean,
    NULL,                               /* integers arrive as numbers */
    NULL,
    ngx_http_retell_on_number,
    ngx_http_retell_on_string,
    ngx_http_retell_on_start_map,
    ngx_http_retell_on_map_key,
    ngx_http_retell_on_end_map,
    ngx_http_retell_on_start_array,
    ngx_http_retell_on_end_array
};


int
ngx_http_retell_event_parse(const u_char *json, size_t len,
    ngx_http_retell_event_t *ev, ngx_http_retell_alloc_pt alloc, void *pool,
    char *err, size_t err_len)
{
    yajl_handle                h;
    const char                *why;
    yajl_status                status;
    ngx_http_retell_parser_t   p;

    memset(ev, 0, sizeof(ngx_http_retell_event_t));
    ev->call_successful = NGX_HTTP_RETELL_ABSENT;
    ev->in_voicemail = NGX_HTTP_RETELL_ABSENT;
    ev->action_required = NGX_HTTP_RETELL_ABSENT;

    memset(&p, 0, sizeof(ngx_http_retell_parser_t));
    p.ev = ev;
    p.alloc = alloc;
    p.pool = pool;
    p.err = err;
    p.err_len = err_len;
    p.analysis_action = NGX_HTTP_RETELL_ABSENT;
    p.collected_action = NGX_HTTP_RETELL_ABSENT;

    if (err_len) {
        err[0] = '\0';
    }

    /* what PostgreSQL would refuse is refused here, as a 400 */

    if (ngx_http_retell_json_check_text(json, len, &why) != 0) {
        return ngx_http_retell_event_fail(&p, "%s", why);
    }

    h = yajl_alloc(&ngx_http_retell_callbacks, NULL, &p);
    if (h == NULL) {
        return -2;
    }

    p.gen = yajl_gen_alloc(NULL);
    if (p.gen == NULL) {
        yajl_free(h);
        return -2;
    }

    status = yajl_parse(h, json, len);

    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    yajl_gen_free(p.gen);
    yajl_free(h);

    if (p.nomem) {
        return -2;
    }

    if (status == yajl_status_client_canceled) {
        return -1;
    }

    if (status != yajl_status_ok
        || ngx_http_retell_json_check_end(json, len) != 0)
    {
        /* yajl's own message may quote the body: keep it out of answers */
        return ngx_http_retell_event_fail(&p, "body is not valid JSON");
    }

    if (ev->event.data == NULL) {
        return ngx_http_retell_event_fail(&p, "\"event\" is missing");
    }

    if (!ngx_http_retell_event_applied((char *) ev->event.data)) {
        /* acknowledged whatever else the body holds: no call needed */
        ev->type = NGX_HTTP_RETELL_EVENT_OTHER;
        return 0;
    }

    if (!p.have_call) {
        return ngx_http_retell_event_fail(&p, "\"call\" is missing");
    }

    if (ev->call_id.data == NULL || ev->call_id.len == 0) {
        return ngx_http_retell_event_fail(&p, "\"call.call_id\" is missing "
                                          "or empty");
    }

    if (strcmp((char *) ev->event.data, "call_started") == 0) {
        ev->type = NGX_HTTP_RETELL_EVENT_CALL_STARTED;

    } else if (strcmp((char *) ev->event.data, "call_ended") == 0) {
        ev->type = NGX_HTTP_RETELL_EVENT_CALL_ENDED;

    } else if (strcmp((char *) ev->event.data, "call_analyzed") == 0) {
        ev->type = NGX_HTTP_RETELL_EVENT_CALL_ANALYZED;

    } else if (strcmp((char *) ev->event.data, "transfer_bridged") == 0) {
        ev->type = NGX_HTTP_RETELL_EVENT_TRANSFER_BRIDGED;

    } else if (strcmp((char *) ev->event.data, "transfer_cancelled") == 0) {
        ev->type = NGX_HTTP_RETELL_EVENT_TRANSFER_CANCELLED;

    } else {
        ev->type = NGX_HTTP_RETELL_EVENT_OTHER;
    }

    /*
     * action_required: custom_analysis_data first, collected dynamic
     * variables second; an unusable value in the first falls through
     */

    ev->action_required_analysis = p.analysis_action;
    ev->action_required_collected = p.collected_action;

    if (p.analysis_action != NGX_HTTP_RETELL_ABSENT) {
        ev->action_required = p.analysis_action;

    } else if (p.collected_action != NGX_HTTP_RETELL_ABSENT) {
        ev->action_required = p.collected_action;

    } else {
        ev->action_required_invalid = p.analysis_action_invalid
                                      || p.collected_action_invalid;
    }

    ngx_http_retell_event_facts(ev);

    return 0;
}


/*
 * The facts the ticket rules read that an event states by its type or
 * how its call ended: a transfer that reached a person (bridged, even
 * while the call goes on), one that did not, a call the platform dropped
 */

static void
ngx_http_retell_event_facts(ngx_http_retell_event_t *ev)
{
    const char   *reason, *status;
    const char  **f;

    reason = (const char *) ev->disconnection_reason.data;
    status = (const char *) ev->call_status.data;

    if (ev->type == NGX_HTTP_RETELL_EVENT_TRANSFER_BRIDGED
        || (reason && (strcmp(reason, "call_transfer") == 0
                       || strcmp(reason, "transfer_bridged") == 0)))
    {
        ev->transferred = 1;
    }

    if (ev->type == NGX_HTTP_RETELL_EVENT_TRANSFER_CANCELLED
        || (reason && strcmp(reason, "transfer_cancelled") == 0))
    {
        ev->transfer_failed = 1;
    }

    /* the call object's own destination first: the event's is the same */

    if (ev->transfer_destination.data == NULL && ev->transfer_number.len) {
        ev->transfer_destination = ev->transfer_number;
    }

    if (status && strcmp(status, "error") == 0) {
        ev->call_failed = 1;
    }

    if (reason == NULL) {
        return;
    }

    if (strncmp(reason, "error_", sizeof("error_") - 1) == 0
        && strcmp(reason, "error_user_not_joined") != 0)
    {
        ev->call_failed = 1;
        return;
    }

    for (f = ngx_http_retell_platform_failures; *f; f++) {
        if (strcmp(reason, *f) == 0) {
            ev->call_failed = 1;
            return;
        }
    }
}


int
ngx_http_retell_parse_boolean_text(const u_char *text, size_t len,
    int *value)
{
    while (len && (*text == ' ' || *text == '\t' || *text == '\r'
                   || *text == '\n'))
    {
        text++;
        len--;
    }

    while (len && (text[len - 1] == ' ' || text[len - 1] == '\t'
                   || text[len - 1] == '\r' || text[len - 1] == '\n'))
    {
        len--;
    }

    if (len == 4 && strncasecmp((const char *) text, "true", 4) == 0) {
        *value = 1;
        return 1;
    }

    if (len == 5 && strncasecmp((const char *) text, "false", 5) == 0) {
        *value = 0;
        return 1;
    }

    return 0;
}


int
ngx_http_retell_event_fail(ngx_http_retell_parser_t *p, const char *fmt, ...)
{
    va_list  args;

    if (p->err_len && p->err[0] == '\0') {
        va_start(args, fmt);
        vsnprintf(p->err, p->err_len, fmt, args);
        va_end(args);
    }

    return -1;
}


/* the dotted name of the current key, for error messages */

const char *
ngx_http_retell_event_path(ngx_http_retell_parser_t *p)
{
    const ngx_http_retell_level_t  *level;

    level = &p->stack[p->depth - 1];

    switch (level->frame) {

    case NGX_HTTP_RETELL_FRAME_CALL:
        return "call.";

    case NGX_HTTP_RETELL_FRAME_ANALYSIS:
        return "call.call_analysis.";

    case NGX_HTTP_RETELL_FRAME_TRANSFER:
        return "transfer_destination.";

    default:
        return "";
    }
}


static int
ngx_http_retell_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len)
{
    unsigned                  is_map;
    ngx_http_retell_level_t  *level;

    if (type == NGX_HTTP_RETELL_VALUE_STRING
        && memchr(data, '\0', len) != NULL)
    {
        /* PostgreSQL can store neither in text nor in jsonb */
        ngx_http_retell_event_fail(p, "strings must not contain \\u0000");
        return 0;
    }

    if (p->capture) {
        return ngx_http_retell_capture_value(p, type, data, len);
    }

    if (p->depth == 0) {
        if (type != NGX_HTTP_RETELL_VALUE_MAP) {
            ngx_http_retell_event_fail(p, "body is not a JSON object");
            return 0;
        }

        return ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_TOP, 1);
    }

    level = &p->stack[p->depth - 1];

    if (level->frame == NGX_HTTP_RETELL_FRAME_OTHER || level->field == NULL) {

        /* inside a skipped container, or an unknown key */

        if (type == NGX_HTTP_RETELL_VALUE_MAP
            || type == NGX_HTTP_RETELL_VALUE_ARRAY)
        {
            is_map = (type == NGX_HTTP_RETELL_VALUE_MAP);

            return ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_OTHER,
                                              is_map);
        }

        return 1;
    }

    return ngx_http_retell_field_value(p, level->field, type, data, len);
}


static int
ngx_http_retell_field_value(ngx_http_retell_parser_t *p,
    const ngx_http_retell_field_t *f, ngx_http_retell_value_e type,
    const u_char *data, size_t len)
{
    int64_t                 n;
    size_t                  i;
    const char             *path;
    ngx_http_retell_str_t  *s;
    ngx_http_retell_int_t  *integer;

    path = ngx_http_retell_event_path(p);

    if (type == NGX_HTTP_RETELL_VALUE_NULL) {
        /* any field may be null: the same as missing */
        return 1;
    }

    switch (f->type) {

    case NGX_HTTP_RETELL_FIELD_STRING:
        if (type != NGX_HTTP_RETELL_VALUE_STRING) {
            ngx_http_retell_event_fail(p, "\"%s%s\" must be a string", path,
                                       f->name);
            return 0;
        }

        if (len > f->max_len) {
            ngx_http_retell_event_fail(p, "\"%s%s\" is longer than %zu bytes",
                                       path, f->name, f->max_len);
            return 0;
        }

        s = (ngx_http_retell_str_t *) ((u_char *) p->ev + f->offset);

        s->data = ngx_http_retell_event_copy(p, data, len);
        if (s->data == NULL) {
            return 0;
        }

        s->len = len;
        return 1;

    case NGX_HTTP_RETELL_FIELD_INTEGER:
        if (type != NGX_HTTP_RETELL_VALUE_NUMBER) {
            ngx_http_retell_event_fail(p, "\"%s%s\" must be an integer", path,
                                       f->name);
            return 0;
        }

        n = 0;
        i = (len && data[0] == '-') ? 1 : 0;

        if (i == len || len - i > 18) {
            ngx_http_retell_event_fail(p, "\"%s%s\" must be an integer", path,
                                       f->name);
            return 0;
        }

        for ( /* void */ ; i < len; i++) {
            if (data[i] < '0' || data[i] > '9') {
                ngx_http_retell_event_fail(p, "\"%s%s\" must be an integer",
                                           path,
                                           f->name);
                return 0;
            }

            n = n * 10 + (data[i] - '0');
        }

        integer = (ngx_http_retell_int_t *) ((u_char *) p->ev + f->offset);
        integer->value = data[0] == '-' ? -n : n;
        integer->set = 1;
        return 1;

    case NGX_HTTP_RETELL_FIELD_BOOLEAN:
        if (type != NGX_HTTP_RETELL_VALUE_BOOLEAN) {
            ngx_http_retell_event_fail(p, "\"%s%s\" must be a boolean", path,
                                       f->name);
            return 0;
        }

        *(int *) ((u_char *) p->ev + f->offset) = (data != NULL);
        return 1;

    case NGX_HTTP_RETELL_FIELD_OBJECT_JSON:
        if (type != NGX_HTTP_RETELL_VALUE_MAP) {
            ngx_http_retell_event_fail(p, "\"%s%s\" must be an object", path,
                                       f->name);
            return 0;
        }

        return ngx_http_retell_capture_start(p, f, type);

    case NGX_HTTP_RETELL_FIELD_ANY_JSON:
        if (!ngx_http_retell_capture_start(p, f, type)) {
            return 0;
        }

        if (type == NGX_HTTP_RETELL_VALUE_MAP
            || type == NGX_HTTP_RETELL_VALUE_ARRAY)
        {
            return 1;
        }

        /* a scalar is captured whole at once */
        return ngx_http_retell_capture_value(p, type, data, len);

    case NGX_HTTP_RETELL_FIELD_CALL:
        if (type != NGX_HTTP_RETELL_VALUE_MAP) {
            ngx_http_retell_event_fail(p, "\"call\" must be an object");
            return 0;
        }

        p->have_call = 1;
        return ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_CALL, 1);

    case NGX_HTTP_RETELL_FIELD_ANALYSIS:
        if (type != NGX_HTTP_RETELL_VALUE_MAP) {
            ngx_http_retell_event_fail(p, "\"call.call_analysis\" must be "
                                       "an object");
            return 0;
        }

        return ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_ANALYSIS, 1);

    case NGX_HTTP_RETELL_FIELD_TRANSFER:
        /* an object as documented; a bare number taken as it is */

        if (type == NGX_HTTP_RETELL_VALUE_MAP) {
            return ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_TRANSFER,
                                              1);
        }

        if (type == NGX_HTTP_RETELL_VALUE_STRING) {
            return ngx_http_retell_field_value(p,
                                           &ngx_http_retell_transfer_fields[0],
                                           type, data, len);
        }

        ngx_http_retell_event_fail(p, "\"transfer_destination\" must be an "
                                   "object");
        return 0;
    }

    return 1;
}


int
ngx_http_retell_event_push(ngx_http_retell_parser_t *p,
    ngx_http_retell_frame_e frame, unsigned is_map)
{
    ngx_http_retell_level_t  *level;

    if (p->depth == NGX_HTTP_RETELL_MAX_DEPTH) {
        ngx_http_retell_event_fail(p, "JSON nested deeper than %d levels",
                                   NGX_HTTP_RETELL_MAX_DEPTH);
        return 0;
    }

    level = &p->stack[p->depth++];
    level->frame = frame;
    level->field = NULL;
    level->seen = 0;
    level->is_map = is_map;

    return 1;
}


u_char *
ngx_http_retell_event_copy(ngx_http_retell_parser_t *p, const u_char *data,
    size_t len)
{
    u_char  *dst;

    dst = p->alloc(p->pool, len + 1);
    if (dst == NULL) {
        p->nomem = 1;
        return NULL;
    }

    memcpy(dst, data, len);
    dst[len] = '\0';

    return dst;
}


static int
ngx_http_retell_on_null(void *ctx)
{
    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_NULL, NULL, 0);
}


static int
ngx_http_retell_on_boolean(void *ctx, int value)
{
    /* a non-NULL data pointer stands for true */
    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_BOOLEAN,
                                 value ? (const u_char *) "" : NULL, 0);
}


static int
ngx_http_retell_on_number(void *ctx, const char *s, size_t len)
{
    if (ngx_http_retell_json_check_number((const u_char *) s, len) != 0) {
        ngx_http_retell_event_fail(ctx, "a number is too large or too precise "
                                   "to be stored");
        return 0;
    }

    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_NUMBER,
                                 (const u_char *) s, len);
}


static int
ngx_http_retell_on_string(void *ctx, const unsigned char *s, size_t len)
{
    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_STRING, s, len);
}


static int
ngx_http_retell_on_start_map(void *ctx)
{
    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_MAP, NULL, 0);
}


static int
ngx_http_retell_on_start_array(void *ctx)
{
    return ngx_http_retell_value(ctx, NGX_HTTP_RETELL_VALUE_ARRAY, NULL, 0);
}


static int
ngx_http_retell_on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    ngx_http_retell_parser_t       *p = ctx;

    size_t                          i;
    unsigned                        bit;
    ngx_http_retell_level_t        *level;
    const ngx_http_retell_field_t  *f;

    if (memchr(key, '\0', len) != NULL) {
        ngx_http_retell_event_fail(p, "strings must not contain \\u0000");
        return 0;
    }

    level = &p->stack[p->depth - 1];

    if (p->capture) {
        if (p->watch && p->depth == p->capture_depth + 1) {
            if (len == sizeof("action_required") - 1
                && memcmp(key, "action_required", len) == 0)
            {
                p->watch_key = NGX_HTTP_RETELL_KEY_ACTION_REQUIRED;

            } else if (p->watch == NGX_HTTP_RETELL_WATCH_ANALYSIS_DATA
                       && ((len == sizeof("qualified") - 1
                            && memcmp(key, "qualified", len) == 0)
                           || (len == sizeof("lead_qualified") - 1
                               && memcmp(key, "lead_qualified", len) == 0)))
            {
                p->watch_key = NGX_HTTP_RETELL_KEY_QUALIFIED;

            } else {
                p->watch_key = NGX_HTTP_RETELL_KEY_OTHER;
            }

            /*
             * a key the rules read, twice: jsonb keeps the last, and the
             * facts must never say otherwise than the stored text
             */

            if (p->watch_key != NGX_HTTP_RETELL_KEY_OTHER) {
                bit = (key[0] == 'l') ? 4 : (unsigned) p->watch_key;

                if (p->watch_seen & bit) {
                    ngx_http_retell_event_fail(p, "duplicate key \"%.*s\" "
                                               "in \"%s\"", (int) len,
                                               (char *) key,
                                               p->capture->name);
                    return 0;
                }

                p->watch_seen |= bit;
            }
        }

        if (yajl_gen_string(p->gen, key, len) != yajl_gen_status_ok) {
            ngx_http_retell_event_fail(p, "body is not valid JSON");
            return 0;
        }

        return 1;
    }

    switch (level->frame) {

    case NGX_HTTP_RETELL_FRAME_TOP:
        f = ngx_http_retell_top_fields;
        break;

    case NGX_HTTP_RETELL_FRAME_CALL:
        f = ngx_http_retell_call_fields;
        break;

    case NGX_HTTP_RETELL_FRAME_ANALYSIS:
        f = ngx_http_retell_analysis_fields;
        break;

    case NGX_HTTP_RETELL_FRAME_TRANSFER:
        f = ngx_http_retell_transfer_fields;
        break;

    default:
        return 1;
    }

    for (i = 0; f[i].name; i++) {
        if (strlen(f[i].name) == len && memcmp(f[i].name, key, len) == 0) {
            break;
        }
    }

    if (f[i].name == NULL) {
        level->field = NULL;
        return 1;
    }

    /* one value per known key, the one jsonb keeps and the rules read */

    if (level->seen & ((uint64_t) 1 << i)) {
        ngx_http_retell_event_fail(p, "duplicate key \"%s%s\"",
                                   ngx_http_retell_event_path(p), f[i].name);
        return 0;
    }

    level->seen |= (uint64_t) 1 << i;
    level->field = &f[i];

    return 1;
}


static int
ngx_http_retell_on_end_map(void *ctx)
{
    ngx_http_retell_parser_t  *p = ctx;

    p->depth--;

    if (p->capture) {
        if (yajl_gen_map_close(p->gen) != yajl_gen_status_ok) {
            ngx_http_retell_event_fail(p, "body is not valid JSON");
            return 0;
        }

        if (p->depth == p->capture_depth) {
            return ngx_http_retell_capture_finish(p);
        }
    }

    return 1;
}


static int
ngx_http_retell_on_end_array(void *ctx)
{
    ngx_http_retell_parser_t  *p = ctx;

    p->depth--;

    if (p->capture) {
        if (yajl_gen_array_close(p->gen) != yajl_gen_status_ok) {
            ngx_http_retell_event_fail(p, "body is not valid JSON");
            return 0;
        }

        if (p->depth == p->capture_depth) {
            return ngx_http_retell_capture_finish(p);
        }
    }

    return 1;
}
