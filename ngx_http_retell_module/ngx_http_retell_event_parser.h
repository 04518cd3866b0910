
/*
 * Inside the event parser: its state, shared by the yajl callbacks
 * (ngx_http_retell_event.c) and the capture of fields kept as JSON text
 * (ngx_http_retell_event_capture.c).  Pure: no nginx code.
 */


#ifndef _NGX_HTTP_RETELL_EVENT_PARSER_H_INCLUDED_
#define _NGX_HTTP_RETELL_EVENT_PARSER_H_INCLUDED_


#include "ngx_http_retell_event.h"

#include <yajl/yajl_gen.h>


typedef enum {
    NGX_HTTP_RETELL_FIELD_STRING = 0,
    NGX_HTTP_RETELL_FIELD_INTEGER,
    NGX_HTTP_RETELL_FIELD_BOOLEAN,
    NGX_HTTP_RETELL_FIELD_OBJECT_JSON,  /* an object kept as JSON text */
    NGX_HTTP_RETELL_FIELD_ANY_JSON,     /* any value kept as JSON text */
    NGX_HTTP_RETELL_FIELD_CALL,         /* descends into "call" */
    NGX_HTTP_RETELL_FIELD_ANALYSIS,     /* descends into "call_analysis" */
    NGX_HTTP_RETELL_FIELD_TRANSFER      /* "transfer_destination", top */
} ngx_http_retell_field_type_e;


typedef enum {
    NGX_HTTP_RETELL_FRAME_TOP = 0,
    NGX_HTTP_RETELL_FRAME_CALL,
    NGX_HTTP_RETELL_FRAME_ANALYSIS,
    NGX_HTTP_RETELL_FRAME_TRANSFER,
    NGX_HTTP_RETELL_FRAME_OTHER         /* skipped or captured container */
} ngx_http_retell_frame_e;


/* keys inside captured maps that the ticket rules read */
typedef enum {
    NGX_HTTP_RETELL_WATCH_NONE = 0,
    NGX_HTTP_RETELL_WATCH_ANALYSIS_DATA,     /* custom_analysis_data */
    NGX_HTTP_RETELL_WATCH_COLLECTED          /* collected_dynamic_variables */
} ngx_http_retell_watch_e;


typedef struct {
    const char                    *name;
    ngx_http_retell_field_type_e   type;
    size_t                         offset;
    size_t                         max_len;
    ngx_http_retell_watch_e        watch;
} ngx_http_retell_field_t;


typedef struct {
    ngx_http_retell_frame_e        frame;
    const ngx_http_retell_field_t *field;    /* of the current key */
    uint64_t                       seen;     /* known keys, by index */
    unsigned                       is_map:1;
} ngx_http_retell_level_t;


typedef struct {
    ngx_http_retell_event_t       *ev;
    ngx_http_retell_alloc_pt       alloc;
    void                          *pool;

    ngx_http_retell_level_t        stack[NGX_HTTP_RETELL_MAX_DEPTH];
    unsigned                       depth;

    /* capture of one field as JSON text */
    yajl_gen                       gen;
    const ngx_http_retell_field_t *capture;
    unsigned                       capture_depth;   /* stack depth at start */
    ngx_http_retell_watch_e        watch;
    int                            watch_key;        /* see below */
    unsigned                       watch_seen;       /* keys, as bits */

    unsigned                       have_call:1;
    unsigned                       nomem:1;

    /* action_required from each source, as found */
    int                            analysis_action;
    int                            collected_action;
    unsigned                       analysis_action_invalid:1;
    unsigned                       collected_action_invalid:1;

    char                          *err;
    size_t                         err_len;
} ngx_http_retell_parser_t;


#define NGX_HTTP_RETELL_KEY_OTHER            0
#define NGX_HTTP_RETELL_KEY_ACTION_REQUIRED  1
#define NGX_HTTP_RETELL_KEY_QUALIFIED        2


typedef enum {
    NGX_HTTP_RETELL_VALUE_NULL = 0,
    NGX_HTTP_RETELL_VALUE_BOOLEAN,
    NGX_HTTP_RETELL_VALUE_NUMBER,
    NGX_HTTP_RETELL_VALUE_STRING,
    NGX_HTTP_RETELL_VALUE_MAP,
    NGX_HTTP_RETELL_VALUE_ARRAY
} ngx_http_retell_value_e;


/* ngx_http_retell_event.c */
int ngx_http_retell_event_fail(ngx_http_retell_parser_t *p, const char *fmt,
    ...);
const char *ngx_http_retell_event_path(ngx_http_retell_parser_t *p);
int ngx_http_retell_event_push(ngx_http_retell_parser_t *p,
    ngx_http_retell_frame_e frame, unsigned is_map);
u_char *ngx_http_retell_event_copy(ngx_http_retell_parser_t *p,
    const u_char *data, size_t len);

/* ngx_http_retell_event_capture.c */
int ngx_http_retell_capture_start(ngx_http_retell_parser_t *p,
    const ngx_http_retell_field_t *f, ngx_http_retell_value_e type);
int ngx_http_retell_capture_value(ngx_http_retell_parser_t *p,
    ngx_http_retell_value_e type, const u_char *data, size_t len);
int ngx_http_retell_capture_finish(ngx_http_retell_parser_t *p);


#endif /* _NGX_HTTP_RETELL_EVENT_PARSER_H_INCLUDED_ */
