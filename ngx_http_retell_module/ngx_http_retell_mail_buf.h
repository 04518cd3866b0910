
/*
 * Inside the mail formatter: the two-pass buffer (counting, then
 * writing) and the message's form (headers, RFC 2047 encoded-words,
 * quoted-printable), all in ngx_http_retell_mail_encode.c, which the
 * content (ngx_http_retell_mail.c) writes with; the dependency runs one
 * way.  Pure: no nginx code.
 */


#ifndef _NGX_HTTP_RETELL_MAIL_BUF_H_INCLUDED_
#define _NGX_HTTP_RETELL_MAIL_BUF_H_INCLUDED_


#include "ngx_http_retell_mail.h"

#include <string.h>


#define NGX_HTTP_RETELL_MAIL_LINE     78    /* header line, RFC 5322 2.1.1 */
#define NGX_HTTP_RETELL_MAIL_HARD_LINE  998 /* no line longer, ever */
#define NGX_HTTP_RETELL_MAIL_QP_LINE  76    /* body line, RFC 2045 6.7 */
#define NGX_HTTP_RETELL_MAIL_WORD     75    /* encoded-word, RFC 2047 2 */

/* "=?UTF-8?B?" and "?=" around the base64 text of an encoded-word */
#define NGX_HTTP_RETELL_MAIL_WORD_WRAP  12


typedef struct {
    u_char     *pos;        /* NULL while counting */
    size_t      len;
} ngx_http_retell_buf_t;


#define ngx_http_retell_mail_put_str(b, s)                                   \
    ngx_http_retell_mail_put(b, s, sizeof(s) - 1)


extern const u_char  ngx_http_retell_mail_hex[];


/* ngx_http_retell_mail_encode.c, for the content */
void ngx_http_retell_mail_message(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m, const ngx_http_retell_str_t *subject,
    const ngx_http_retell_str_t *call_id, const ngx_http_retell_str_t *text);
void ngx_http_retell_mail_put(ngx_http_retell_buf_t *b, const void *data,
    size_t len);
void ngx_http_retell_mail_put_char(ngx_http_retell_buf_t *b, u_char c);
void ngx_http_retell_mail_put_line(ngx_http_retell_buf_t *b,
    const u_char *s, size_t len);


#endif /* _NGX_HTTP_RETELL_MAIL_BUF_H_INCLUDED_ */
