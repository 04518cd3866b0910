
/*
 * Fields kept as JSON text (metadata, the dynamic variables,
 * custom_analysis_data): their tokens are written again with yajl_gen as
 * they arrive, and the keys the ticket rules read are watched on the way.
 */


#include "ngx_http_retell_event_parser.h"

#include <string.h>


static void ngx_http_retell_watch_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len);


int
ngx_http_retell_capture_start(ngx_http_retell_parser_t *p,
    const ngx_http_retell_field_t *f, ngx_http_retell_value_e type)
{
    yajl_gen_clear(p->gen);
    yajl_gen_reset(p->gen, NULL);

    p->capture = f;
    p->capture_depth = p->depth;
    p->watch = f->watch;
    p->watch_key = NGX_HTTP_RETELL_KEY_OTHER;
    p->watch_seen = 0;

    if (type == NGX_HTTP_RETELL_VALUE_MAP
        || type == NGX_HTTP_RETELL_VALUE_ARRAY)
    {
        return ngx_http_retell_capture_value(p, type, NULL, 0);
    }

    return 1;
}


int
ngx_http_retell_capture_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len)
{
    yajl_gen_status  rc;

    if (p->watch && p->depth == p->capture_depth + 1
        && p->stack[p->depth - 1].is_map)
    {
        ngx_http_retell_watch_value(p, type, data, len);
    }

    switch (type) {

    case NGX_HTTP_RETELL_VALUE_NULL:
        rc = yajl_gen_null(p->gen);
        break;

    case NGX_HTTP_RETELL_VALUE_BOOLEAN:
        rc = yajl_gen_bool(p->gen, data != NULL);
        break;

    case NGX_HTTP_RETELL_VALUE_NUMBER:
        rc = yajl_gen_number(p->gen, (const char *) data, len);
        break;

    case NGX_HTTP_RETELL_VALUE_STRING:
        rc = yajl_gen_string(p->gen, data, len);
        break;

    case NGX_HTTP_RETELL_VALUE_MAP:
        if (!ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_OTHER, 1)) {
                                        return 0;
        }

        rc = yajl_gen_map_open(p->gen);
        break;

    default: /* NGX_HTTP_RETELL_VALUE_ARRAY */
        if (!ngx_http_retell_event_push(p, NGX_HTTP_RETELL_FRAME_OTHER, 0)) {
                                        return 0;
        }

        rc = yajl_gen_array_open(p->gen);
        break;
    }

    if (rc != yajl_gen_status_ok) {
        ngx_http_retell_event_fail(p, "body is not valid JSON");
        return 0;
    }

    if (p->depth == p->capture_depth) {
        /* a scalar value was the whole capture */
        return ngx_http_retell_capture_finish(p);
    }

    return 1;
}


int
ngx_http_retell_capture_finish(ngx_http_retell_parser_t *p)
{
    size_t                  len;
    const unsigned char    *buf;
    ngx_http_retell_str_t  *s;

    if (yajl_gen_get_buf(p->gen, &buf, &len) != yajl_gen_status_ok) {
        ngx_http_retell_event_fail(p, "body is not valid JSON");
        return 0;
    }

    s = (ngx_http_retell_str_t *) ((u_char *) p->ev + p->capture->offset);

    s->data = ngx_http_retell_event_copy(p, buf, len);
    if (s->data == NULL) {
        return 0;
    }

    s->len = len;

    p->capture = NULL;
    p->watch = NGX_HTTP_RETELL_WATCH_NONE;

    return 1;
}


/*
 * Values directly inside custom_analysis_data or
 * collected_dynamic_variables that the ticket rules read.
 */

static void
ngx_http_retell_watch_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len)
{
    int   value, usable;

    if (p->watch_key == NGX_HTTP_RETELL_KEY_OTHER) {
        return;
    }

    usable = 0;

    if (type == NGX_HTTP_RETELL_VALUE_BOOLEAN) {
        value = (data != NULL);
        usable = 1;

    } else if (type == NGX_HTTP_RETELL_VALUE_STRING) {
        usable = ngx_http_retell_parse_boolean_text(data, len, &value);

    } else {
        value = 0;
    }

    if (p->watch_key == NGX_HTTP_RETELL_KEY_QUALIFIED) {
        if (usable && value) {
            p->ev->qualified = 1;
        }

        return;
    }

    /* action_required: an unusable value counts as absent, and is noted */

    if (!usable) {
        value = NGX_HTTP_RETELL_ABSENT;
    }

    if (p->watch == NGX_HTTP_RETELL_WATCH_ANALYSIS_DATA) {
        p->analysis_action = value;
        p->analysis_action_invalid = !usable;

    } else {
        p->collected_action = value;
        p->collected_action_invalid = !usable;
    }
}
