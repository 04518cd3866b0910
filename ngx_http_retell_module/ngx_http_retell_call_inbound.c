
/*
 * Reading Retell's inbound call webhook (ngx_http_retell_call_inbound.h):
 * one pass of yajl's callbacks, the five fields copied into fixed buffers
 * and every other value skipped.
 *
 * Pure logic: no nginx event code.
 */


#include "ngx_http_retell_call_inbound.h"
#include "ngx_http_retell_json.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>


typedef struct {
    ngx_http_retell_call_inbound_t  *ci;

    char      *target;          /* where the string at this key goes */
    size_t     size;
    unsigned   depth;

    unsigned   started:1;       /* the body is an object */
    unsigned   key_event:1;     /* the value of top-level "event" is next */
    unsigned   key_object:1;    /* the value of "call_inbound" is next */
    unsigned   in_object:1;     /* inside the "call_inbound" object */
    unsigned   event_found:1;
    unsigned   object_found:1;
} ngx_http_retell_call_inbound_ctx_t;


typedef struct {
    const char  *key;
    size_t       offset;
    size_t       size;
} ngx_http_retell_call_inbound_field_t;


#define ngx_http_retell_call_inbound_member(name)                            \
    { #name, offsetof(ngx_http_retell_call_inbound_t, name),                 \
      sizeof(((ngx_http_retell_call_inbound_t *) 0)->name) }

static const ngx_http_retell_call_inbound_field_t
    ngx_http_retell_call_inbound_fields[] = {
    ngx_http_retell_call_inbound_member(agent_id),
    ngx_http_retell_call_inbound_member(from_number),
    ngx_http_retell_call_inbound_member(to_number),
    ngx_http_retell_call_inbound_member(call_id),
    { NULL, 0, 0 }
};


static int ngx_http_retell_call_inbound_scalar(void *ctx);
static int ngx_http_retell_call_inbound_boolean(void *ctx, int value);
static int ngx_http_retell_call_inbound_number(void *ctx, const char *s,
    size_t len);
static int ngx_http_retell_call_inbound_string(void *ctx,
    const unsigned char *s, size_t len);
static int ngx_http_retell_call_inbound_start_map(void *ctx);
static int ngx_http_retell_call_inbound_key(void *ctx,
    const unsigned char *key, size_t len);
static int ngx_http_retell_call_inbound_end_map(void *ctx);
static int ngx_http_retell_call_inbound_start_array(void *ctx);
static int ngx_http_retell_call_inbound_end_array(void *ctx);


static const yajl_callbacks  ngx_http_retell_call_inbound_callbacks = {
    ngx_http_retell_call_inbound_scalar,
    ngx_http_retell_call_inbound_boolean,
    NULL,
    NULL,
    ngx_http_retell_call_inbound_number,
    ngx_http_retell_call_inbound_string,
    ngx_http_retell_call_inbound_start_map,
    ngx_http_retell_call_inbound_key,
    ngx_http_retell_call_inbound_end_map,
    ngx_http_retell_call_inbound_start_array,
    ngx_http_retell_call_inbound_end_array
};


int
ngx_http_retell_call_inbound_parse(const u_char *json, size_t len,
    ngx_http_retell_call_inbound_t *ci, char *err, size_t err_len)
{
    yajl_status                         status;
    yajl_handle                         h;
    ngx_http_retell_call_inbound_ctx_t  ctx;

    memset(ci, 0, sizeof(ngx_http_retell_call_inbound_t));
    memset(&ctx, 0, sizeof(ngx_http_retell_call_inbound_ctx_t));
    ctx.ci = ci;

    if (err_len) {
        err[0] = '\0';
    }

    h = yajl_alloc(&ngx_http_retell_call_inbound_callbacks, NULL, &ctx);
    if (h == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }

    status = yajl_parse(h, json, len);

    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (status != yajl_status_ok || !ctx.started
        || ngx_http_retell_json_check_end(json, len) != 0)
    {
        snprintf(err, err_len, "the body is not a JSON object");
        return -1;
    }

    if (!ctx.event_found) {
        snprintf(err, err_len, "\"event\" is missing or not a string");
        return -1;
    }

    if (strcmp(ci->event, "call_inbound") != 0) {
        return 1;
    }

    if (!ctx.object_found) {
        snprintf(err, err_len, "\"call_inbound\" is missing or not an "
                 "object");
        return -1;
    }

    return 0;
}


static int
ngx_http_retell_call_inbound_scalar(void *ctx)
{
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    c->target = NULL;
    c->key_event = 0;
    c->key_object = 0;

    /* a body that is a lone value is no object */

    return c->depth > 0;
}


static int
ngx_http_retell_call_inbound_boolean(void *ctx, int value)
{
    (void) value;

    return ngx_http_retell_call_inbound_scalar(ctx);
}


static int
ngx_http_retell_call_inbound_number(void *ctx, const char *s, size_t len)
{
    (void) s;
    (void) len;

    return ngx_http_retell_call_inbound_scalar(ctx);
}


static int
ngx_http_retell_call_inbound_string(void *ctx, const unsigned char *s,
    size_t len)
{
    char                                *to;
    size_t                               size;
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    to = NULL;
    size = 0;

    if (c->key_event) {
        c->event_found = 1;
        to = c->ci->event;
        size = sizeof(c->ci->event);
        to[0] = '\0';

    } else if (c->target) {
        to = c->target;
        size = c->size;
        to[0] = '\0';
    }

    if (ngx_http_retell_call_inbound_scalar(ctx) == 0) {
        return 0;
    }

    /* too long, or a NUL inside: as if absent */

    if (to && len < size && memchr(s, '\0', len) == NULL) {
        memcpy(to, s, len);
        to[len] = '\0';
    }

    return 1;
}


static int
ngx_http_retell_call_inbound_start_map(void *ctx)
{
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    if (c->depth == 0) {
        c->started = 1;

    } else if (c->depth == 1 && c->key_object) {
        c->in_object = 1;
        c->object_found = 1;
    }

    c->target = NULL;
    c->key_event = 0;
    c->key_object = 0;

    return ++c->depth <= NGX_HTTP_RETELL_MAX_DEPTH;
}


static int
ngx_http_retell_call_inbound_key(void *ctx, const unsigned char *key,
    size_t len)
{
    ngx_http_retell_call_inbound_ctx_t          *c = ctx;
    const ngx_http_retell_call_inbound_field_t  *f;

    c->target = NULL;
    c->key_event = 0;
    c->key_object = 0;

    if (c->depth == 1) {
        c->key_event = (len == sizeof("event") - 1
                        && memcmp(key, "event", len) == 0);
        c->key_object = (len == sizeof("call_inbound") - 1
                         && memcmp(key, "call_inbound", len) == 0);
        return 1;
    }

    if (c->depth != 2 || !c->in_object) {
        return 1;
    }

    for (f = ngx_http_retell_call_inbound_fields; f->key; f++) {
        if (strlen(f->key) == len && memcmp(f->key, key, len) == 0) {
            c->target = (char *) c->ci + f->offset;
            c->size = f->size;
            break;
        }
    }

    return 1;
}


static int
ngx_http_retell_call_inbound_end_map(void *ctx)
{
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    if (--c->depth == 1) {
        c->in_object = 0;
    }

    c->target = NULL;

    return 1;
}


static int
ngx_http_retell_call_inbound_start_array(void *ctx)
{
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    if (c->depth == 0) {
        return 0;
    }

    c->target = NULL;
    c->key_event = 0;
    c->key_object = 0;

    return ++c->depth <= NGX_HTTP_RETELL_MAX_DEPTH;
}


static int
ngx_http_retell_call_inbound_end_array(void *ctx)
{
    ngx_http_retell_call_inbound_ctx_t  *c = ctx;

    c->depth--;
    c->target = NULL;

    return 1;
}
