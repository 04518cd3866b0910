
/*
 * Inside an SMTP session: the connection and its events
 * (ngx_http_retell_smtp.c) and the dialog, what to send after each reply
 * (ngx_http_retell_smtp_dialog.c).
 */


#ifndef _NGX_HTTP_RETELL_SMTP_SESSION_H_INCLUDED_
#define _NGX_HTTP_RETELL_SMTP_SESSION_H_INCLUDED_


#include "ngx_http_retell_smtp.h"


#define NGX_HTTP_RETELL_SMTP_ERROR   256


typedef enum {
    NGX_HTTP_RETELL_SMTP_START = 0,        /* the greeting */
    NGX_HTTP_RETELL_SMTP_EHLO,
    NGX_HTTP_RETELL_SMTP_HELO,             /* EHLO refused */
    NGX_HTTP_RETELL_SMTP_STARTTLS,
    NGX_HTTP_RETELL_SMTP_AUTH_PLAIN,
    NGX_HTTP_RETELL_SMTP_AUTH_LOGIN,       /* 334 for the user name */
    NGX_HTTP_RETELL_SMTP_AUTH_USER,        /* 334 for the password */
    NGX_HTTP_RETELL_SMTP_AUTH_PASSWORD,
    NGX_HTTP_RETELL_SMTP_MAIL,             /* the message's own steps on */
    NGX_HTTP_RETELL_SMTP_RCPT,
    NGX_HTTP_RETELL_SMTP_DATA,
    NGX_HTTP_RETELL_SMTP_BODY,
    NGX_HTTP_RETELL_SMTP_QUIT
} ngx_http_retell_smtp_state_e;


/* ngx_http_retell_smtp.c, for the dialog */
void ngx_http_retell_smtp_state(ngx_http_retell_smtp_t *s, ngx_uint_t state);
void ngx_http_retell_smtp_command(ngx_http_retell_smtp_t *s,
    ngx_uint_t state, const char *fmt, ...);
void ngx_http_retell_smtp_flush(ngx_http_retell_smtp_t *s);
void ngx_http_retell_smtp_fail(ngx_http_retell_smtp_t *s, ngx_uint_t result,
    const char *fmt, ...);
void ngx_http_retell_smtp_refused(ngx_http_retell_smtp_t *s,
    const char *step);
void ngx_http_retell_smtp_done(ngx_http_retell_smtp_t *s, ngx_uint_t result);
ngx_uint_t ngx_http_retell_smtp_accepted(ngx_http_retell_smtp_t *s);
#if (NGX_SSL)
void ngx_http_retell_smtp_starttls(ngx_http_retell_smtp_t *s);
#endif

/* ngx_http_retell_smtp_dialog.c, for the connection */
void ngx_http_retell_smtp_capability(ngx_http_retell_smtp_t *s, u_char *p,
    u_char *last);
void ngx_http_retell_smtp_reply(ngx_http_retell_smtp_t *s);


#endif /* _NGX_HTTP_RETELL_SMTP_SESSION_H_INCLUDED_ */
