
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
    ngx_smtp_start = 0,        /* the greeting */
    ngx_smtp_ehlo,
    ngx_smtp_helo,             /* EHLO refused */
    ngx_smtp_starttls,
    ngx_smtp_auth_plain,
    ngx_smtp_auth_login,       /* 334 for the user name */
    ngx_smtp_auth_user,        /* 334 for the password */
    ngx_smtp_auth_password,
    ngx_smtp_mail,             /* from here on, the message's own steps */
    ngx_smtp_rcpt,
    ngx_smtp_data,
    ngx_smtp_body,
    ngx_smtp_quit
} ngx_http_retell_smtp_state_e;


/* ngx_http_retell_smtp.c, for the dialog */
void ngx_http_retell_smtp_command(ngx_http_retell_smtp_t *s,
    ngx_uint_t state, const char *fmt, ...);
void ngx_http_retell_smtp_flush(ngx_http_retell_smtp_t *s);
void ngx_http_retell_smtp_fail(ngx_http_retell_smtp_t *s, ngx_uint_t result,
    const char *fmt, ...);
void ngx_http_retell_smtp_refused(ngx_http_retell_smtp_t *s,
    const char *step);
void ngx_http_retell_smtp_done(ngx_http_retell_smtp_t *s, ngx_uint_t result);
#if (NGX_SSL)
void ngx_http_retell_smtp_starttls(ngx_http_retell_smtp_t *s);
#endif

/* ngx_http_retell_smtp_dialog.c, for the connection */
void ngx_http_retell_smtp_capability(ngx_http_retell_smtp_t *s, u_char *p,
    u_char *last);
void ngx_http_retell_smtp_reply(ngx_http_retell_smtp_t *s);


#endif /* _NGX_HTTP_RETELL_SMTP_SESSION_H_INCLUDED_ */
