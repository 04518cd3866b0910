
/*
 * Which event a body names, and whether the module applies it.
 *
 * Retell retries every answer that is not 2xx, so a signed event the
 * module does not apply (chat events, transcript and transfer progress,
 * any type added later) is acknowledged whatever else its body holds.
 * When the full parse (ngx_http_retell_event.c) refuses a body, the
 * top-level "event" string is read alone to tell a malformed call event
 * (400) from an event that is none of the module's business (204).
 *
 * Pure logic: no nginx event code, unit-tested in t/unit/test_event.c.
 */


#include "ngx_http_retell_event.h"

#include <string.h>
#include <yajl/yajl_parse.h>


typedef struct {
    char      *name;
    size_t     size;
    unsigned   depth;
    unsigned   key:1;           /* the value of top-level "event" is next */
    unsigned   found:1;
} ngx_http_retell_event_name_t;


static int ngx_http_retell_event_name_scalar(void *ctx);
static int ngx_http_retell_event_name_boolean(void *ctx, int value);
static int ngx_http_retell_event_name_number(void *ctx, const char *s,
    size_t len);
static int ngx_http_retell_event_name_string(void *ctx,
    const unsigned char *s, size_t len);
static int ngx_http_retell_event_name_open(void *ctx);
static int ngx_http_retell_event_name_key(void *ctx, const unsigned char *key,
    size_t len);
static int ngx_http_retell_event_name_close(void *ctx);


static const yajl_callbacks  ngx_http_retell_event_name_callbacks = {
    ngx_http_retell_event_name_scalar,
    ngx_http_retell_event_name_boolean,
    NULL,
    NULL,
    ngx_http_retell_event_name_number,
    ngx_http_retell_event_name_string,
    ngx_http_retell_event_name_open,
    ngx_http_retell_event_name_key,
    ngx_http_retell_event_name_close,
    ngx_http_retell_event_name_open,
    ngx_http_retell_event_name_close
};


/* the events that make or change a ticket */

static const char  *ngx_http_retell_applied_events[] = {
    "call_started",
    "call_ended",
    "call_analyzed",
    "transfer_bridged",
    "transfer_cancelled",
    NULL
};


int
ngx_http_retell_event_applied(const char *name)
{
    const char  **e;

    for (e = ngx_http_retell_applied_events; *e; e++) {
        if (strcmp(*e, name) == 0) {
            return 1;
        }
    }

    return 0;
}


int
ngx_http_retell_event_name(const u_char *json, size_t len, char *name,
    size_t size)
{
    yajl_handle                   h;
    ngx_http_retell_event_name_t  n;

    if (size == 0) {
        return 0;
    }

    memset(&n, 0, sizeof(ngx_http_retell_event_name_t));
    n.name = name;
    n.size = size;
    name[0] = '\0';

    h = yajl_alloc(&ngx_http_retell_event_name_callbacks, NULL, &n);
    if (h == NULL) {
        return 0;
    }

    /* the callback stops the parse once the name is read */

    if (yajl_parse(h, json, len) == yajl_status_ok) {
        (void) yajl_complete_parse(h);
    }

    yajl_free(h);

    return n.found;
}


static int
ngx_http_retell_event_name_scalar(void *ctx)
{
    ngx_http_retell_event_name_t  *n = ctx;

    n->key = 0;

    return 1;
}


static int
ngx_http_retell_event_name_boolean(void *ctx, int value)
{
    (void) value;

    return ngx_http_retell_event_name_scalar(ctx);
}


static int
ngx_http_retell_event_name_number(void *ctx, const char *s, size_t len)
{
    (void) s;
    (void) len;

    return ngx_http_retell_event_name_scalar(ctx);
}


static int
ngx_http_retell_event_name_string(void *ctx, const unsigned char *s,
    size_t len)
{
    ngx_http_retell_event_name_t  *n = ctx;

    if (!n->key) {
        return 1;
    }

    n->key = 0;

    /* a name that does not fit, or holds a NUL, is no event we know */

    if (len >= n->size || memchr(s, '\0', len) != NULL) {
        return 0;
    }

    memcpy(n->name, s, len);
    n->name[len] = '\0';
    n->found = 1;

    return 0;
}


static int
ngx_http_retell_event_name_open(void *ctx)
{
    ngx_http_retell_event_name_t  *n = ctx;

    n->key = 0;

    /* deeper than the parse allows is refused there: no need to go on */

    return ++n->depth <= NGX_HTTP_RETELL_MAX_DEPTH;
}


static int
ngx_http_retell_event_name_key(void *ctx, const unsigned char *key,
    size_t len)
{
    ngx_http_retell_event_name_t  *n = ctx;

    n->key = (n->depth == 1 && len == sizeof("event") - 1
              && memcmp(key, "event", len) == 0);

    return 1;
}


static int
ngx_http_retell_event_name_close(void *ctx)
{
    ngx_http_retell_event_name_t  *n = ctx;

    n->depth--;
    n->key = 0;

    return 1;
}
