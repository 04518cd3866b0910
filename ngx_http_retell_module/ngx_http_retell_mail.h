
/*
 * The notification email of docs/email.md: from the stored facts of a
 * call to a subject, a plain text body and a complete RFC 5322 / MIME
 * message, plus the SMTP DATA form of that message.
 *
 * Pure logic: no nginx event code; libc and yajl only.  Every byte of the
 * results comes from the caller's allocator.  Unit-tested in
 * t/unit/test_mail.c.
 */


#ifndef _NGX_HTTP_RETELL_MAIL_H_INCLUDED_
#define _NGX_HTTP_RETELL_MAIL_H_INCLUDED_


#include <time.h>

#include "ngx_http_retell_event.h"


/* lengths in bytes, data need not be NUL-terminated; len 0 means absent */
typedef struct {
    ngx_http_retell_str_t   from;           /* envelope and header sender */
    ngx_http_retell_str_t  *to;             /* recipient addresses */
    size_t                  nto;

    /* without <>, e.g. "retell-outbox-42.call_x@example.com" */
    ngx_http_retell_str_t   message_id;
    time_t                  date;           /* Date header, shown in UTC */

    ngx_http_retell_str_t   reason;         /* "action_required",
                                               "call_transfer", ... */
    ngx_http_retell_str_t   direction;      /* "inbound" or "outbound" */
    ngx_http_retell_str_t   company_name;
    ngx_http_retell_str_t   call_id;

    ngx_http_retell_str_t   ticket_id;      /* decimal text */
    ngx_http_retell_str_t   ticket_status;
    ngx_http_retell_str_t   ticket_url;     /* full link, empty when
                                               retell_ticket_url is unset */

    ngx_http_retell_str_t   customer_name;
    ngx_http_retell_str_t   customer_phone; /* display form, or the raw
                                               number */

    ngx_http_retell_str_t   started_at;     /* as PostgreSQL prints it */
    ngx_http_retell_str_t   duration_ms;    /* decimal text */
    ngx_http_retell_str_t   disconnection_reason;
    ngx_http_retell_str_t   call_summary;
    ngx_http_retell_str_t   user_sentiment;
    ngx_http_retell_str_t   call_successful;    /* "t", "f" or empty */
    ngx_http_retell_str_t   in_voicemail;       /* "t", "f" or empty */
    ngx_http_retell_str_t   custom_analysis_data;  /* JSON object text */
    ngx_http_retell_str_t   transcript;
    ngx_http_retell_str_t   recording_url;
    ngx_http_retell_str_t   recording_note; /* why the link may be dead:
                                               "storage" (opted out, 10
                                               minutes), "age" (signed,
                                               24 h), or empty */
} ngx_http_retell_mail_t;


/*
 * subject: the plain UTF-8 subject, on one line; text: the plain UTF-8
 * body with "\n" line ends (both stored in the outbox row); message: the
 * complete message, headers, an empty line and the quoted-printable body,
 * CRLF line ends, not dot-stuffed.  All three are NUL-terminated (the NUL
 * is not counted in len).  Returns 0, or -1 when alloc failed.
 */
int ngx_http_retell_mail_format(const ngx_http_retell_mail_t *m,
    ngx_http_retell_alloc_pt alloc, void *pool,
    ngx_http_retell_str_t *subject, ngx_http_retell_str_t *text,
    ngx_http_retell_str_t *message);

/*
 * The SMTP DATA payload: message with a '.' doubled at the start of every
 * line, ending "\r\n.\r\n" (a CRLF is added when message does not end with
 * one).  NUL-terminated.  Returns 0, or -1 when alloc failed.
 */
int ngx_http_retell_mail_dot_stuff(const ngx_http_retell_str_t *message,
    ngx_http_retell_alloc_pt alloc, void *pool, ngx_http_retell_str_t *data);

/*
 * 1 when addr is a plain addr-spec: a dot-atom local part of at most 64
 * bytes, '@', a domain of two or more labels (letters, digits, inner
 * hyphens, at most 63 bytes each), at most 254 bytes in all; else 0.
 * No display names, <>, quoted local parts, address literals, spaces,
 * control characters or non-ASCII bytes.
 */
int ngx_http_retell_mail_valid_address(const u_char *addr, size_t len);


#endif /* _NGX_HTTP_RETELL_MAIL_H_INCLUDED_ */
