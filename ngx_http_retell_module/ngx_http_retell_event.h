
/*
 * A Retell webhook body, {"event": "...", "call": {...}}, parsed with yajl
 * into a typed event.  Objects the module stores as they are (metadata, the
 * dynamic-variable maps, custom_analysis_data) are kept as compact JSON text.
 *
 * Pure logic: no nginx event code, unit-tested in t/unit/test_event.c.
 */


#ifndef _NGX_HTTP_RETELL_EVENT_H_INCLUDED_
#define _NGX_HTTP_RETELL_EVENT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_RETELL_CALL_ID_MAX_LEN  128
#define NGX_HTTP_RETELL_SHORT_MAX_LEN    256    /* ids, numbers, statuses */
#define NGX_HTTP_RETELL_URL_MAX_LEN      4096
#define NGX_HTTP_RETELL_MAX_DEPTH        32

/* tri-state booleans: JSON true, false, or absent/null */
#define NGX_HTTP_RETELL_ABSENT           -1


typedef enum {
    NGX_HTTP_RETELL_EVENT_OTHER = 0,    /* answered 204, nothing written */
    NGX_HTTP_RETELL_EVENT_CALL_STARTED,
    NGX_HTTP_RETELL_EVENT_CALL_ENDED,
    NGX_HTTP_RETELL_EVENT_CALL_ANALYZED,
    NGX_HTTP_RETELL_EVENT_TRANSFER_BRIDGED,
    NGX_HTTP_RETELL_EVENT_TRANSFER_CANCELLED
} ngx_http_retell_event_type_e;


/* same layout as ngx_str_t; data is NUL-terminated, NULL when absent */
typedef struct {
    size_t     len;
    u_char    *data;
} ngx_http_retell_str_t;


typedef struct {
    int64_t    value;
    unsigned   set:1;
} ngx_http_retell_int_t;


typedef struct {
    ngx_http_retell_str_t   event;
    ngx_http_retell_event_type_e  type;

    ngx_http_retell_str_t   call_id;
    ngx_http_retell_str_t   agent_id;
    ngx_http_retell_str_t   call_type;
    ngx_http_retell_str_t   direction;
    ngx_http_retell_str_t   from_number;
    ngx_http_retell_str_t   to_number;
    ngx_http_retell_str_t   call_status;
    ngx_http_retell_str_t   disconnection_reason;
    ngx_http_retell_str_t   transcript;
    ngx_http_retell_str_t   recording_url;
    ngx_http_retell_str_t   transfer_destination;
    ngx_http_retell_str_t   data_storage_setting;

    /* transfer events: the top-level transfer_destination's number */
    ngx_http_retell_str_t   transfer_number;

    ngx_http_retell_int_t   start_timestamp;        /* unix ms */
    ngx_http_retell_int_t   end_timestamp;
    ngx_http_retell_int_t   duration_ms;

    /* compact JSON text */
    ngx_http_retell_str_t   metadata;
    ngx_http_retell_str_t   retell_llm_dynamic_variables;
    ngx_http_retell_str_t   collected_dynamic_variables;

    /* call_analysis */
    ngx_http_retell_str_t   call_summary;
    ngx_http_retell_str_t   user_sentiment;
    ngx_http_retell_str_t   custom_analysis_data;   /* compact JSON text */
    int                     call_successful;        /* 1, 0 or ABSENT */
    int                     in_voicemail;

    /* facts derived for the ticket rules (docs/data-and-rules.md) */
    int                     action_required;        /* 1, 0 or ABSENT */
    int                     action_required_analysis;   /* by source */
    int                     action_required_collected;
    unsigned                action_required_invalid:1; /* present, unusable */
    unsigned                qualified:1;
    unsigned                transferred:1;
    unsigned                transfer_failed:1;
    unsigned                call_failed:1;      /* dropped by the platform */
} ngx_http_retell_event_t;


typedef void *(*ngx_http_retell_alloc_pt)(void *pool, size_t size);


/*
 * Parses len bytes of json into ev; strings are copied with alloc(pool, n).
 * Returns 0, or -1 with a message for the client in err (always
 * NUL-terminated), or -2 when alloc failed.
 */
int ngx_http_retell_event_parse(const u_char *json, size_t len,
    ngx_http_retell_event_t *ev, ngx_http_retell_alloc_pt alloc, void *pool,
    char *err, size_t err_len);

/*
 * The top-level "event" string of a JSON body, read alone, in name
 * (NUL-terminated, at most size - 1 bytes): 1 when found, else 0
 * (ngx_http_retell_event_name.c)
 */
int ngx_http_retell_event_name(const u_char *json, size_t len, char *name,
    size_t size);

/* 1 for an event the module applies: call_started, call_ended, ... */
int ngx_http_retell_event_applied(const char *name);

/* 1 when "true"/"false" in any case, trimmed; *value set; else 0 */
int ngx_http_retell_parse_boolean_text(const u_char *text, size_t len,
    int *value);


#endif /* _NGX_HTTP_RETELL_EVENT_H_INCLUDED_ */
