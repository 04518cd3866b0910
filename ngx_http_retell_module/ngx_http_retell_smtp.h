
/*
 * An SMTP client on nginx's event loop: one message to its recipients
 * per session (EHLO, STARTTLS, AUTH, MAIL, RCPT..., DATA, QUIT).
 */


#ifndef _NGX_HTTP_RETELL_SMTP_H_INCLUDED_
#define _NGX_HTTP_RETELL_SMTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>


#define NGX_HTTP_RETELL_STARTTLS_OFF       0
#define NGX_HTTP_RETELL_STARTTLS_ON        1   /* when the server offers it */
#define NGX_HTTP_RETELL_STARTTLS_REQUIRED  2   /* never send in clear */


/* how a session ended */
#define NGX_HTTP_RETELL_SMTP_SENT          0
#define NGX_HTTP_RETELL_SMTP_TEMPORARY     1   /* 4xx, network, timeout,
                                                  the session refused */
#define NGX_HTTP_RETELL_SMTP_PERMANENT     2   /* 5xx to the message */

/* steps of a session beyond one per recipient, for its deadline */
#define NGX_HTTP_RETELL_SMTP_STEPS         14


typedef struct {
    ngx_addr_t                     *server;         /* the addresses */
    ngx_uint_t                      naddrs;
    ngx_str_t                       server_name;    /* for SNI, checks;
                                                       NUL-terminated */
    ngx_uint_t                      server_is_ip;   /* no SNI then */
    ngx_str_t                       helo;
    ngx_uint_t                      starttls;
    ngx_str_t                       user;           /* empty: no AUTH */
    ngx_str_t                       password;
    ngx_flag_t                      auth_insecure;  /* operator's opt-in */
    ngx_msec_t                      timeout;        /* every step */
#if (NGX_SSL)
    ngx_ssl_t                      *ssl;
    ngx_flag_t                      verify;
#endif
} ngx_http_retell_smtp_conf_t;


typedef struct ngx_http_retell_smtp_s  ngx_http_retell_smtp_t;

typedef void (*ngx_http_retell_smtp_handler_pt)(ngx_http_retell_smtp_t *s);


struct ngx_http_retell_smtp_s {
    ngx_pool_t                     *pool;          /* the session's own */
    ngx_log_t                      *log;
    ngx_log_t                       session_log;   /* its action: the step */
    ngx_http_retell_smtp_conf_t    *conf;

    ngx_str_t                       from;
    ngx_str_t                      *rcpt;
    ngx_uint_t                      nrcpt;
    ngx_str_t                       data;          /* dot-stuffed, ends .CRLF */

    ngx_http_retell_smtp_handler_pt handler;
    void                           *handler_data;

    /* the outcome */
    ngx_uint_t                      result;
    ngx_str_t                       error;         /* the last reply or why */
    ngx_uint_t                      accepted;      /* recipients */
    ngx_str_t                       rejected;      /* "addr: reply; ..." */
    ngx_str_t                      *retry;         /* refused with a 4xx */
    ngx_uint_t                      nretry;

    /* the session */
    ngx_peer_connection_t           peer;
    ngx_uint_t                      addr;          /* in conf->server */
    ngx_event_t                     deadline;      /* the whole session */
    ngx_buf_t                      *in;
    ngx_str_t                       out;
    ngx_uint_t                      state;
    ngx_uint_t                      next_rcpt;
    ngx_uint_t                      code;          /* of the last reply */

    unsigned                        tls:1;
    unsigned                        connected:1;
    unsigned                        greeted:1;     /* a server answered */
    unsigned                        committing:1;  /* the body is going out:
                                                      an abort may still
                                                      deliver it */
    unsigned                        sent:1;        /* DATA accepted */
    unsigned                        offers_starttls:1;
    unsigned                        offers_plain:1;
    unsigned                        offers_login:1;
    unsigned                        done:1;
};


/*
 * starts the session; s->handler is called once, from an event, and the
 * session is bounded by NGX_HTTP_RETELL_SMTP_STEPS + nrcpt timeouts
 */
void ngx_http_retell_smtp_send(ngx_http_retell_smtp_t *s);

/* ends the session at once as a temporary failure, from an event */
void ngx_http_retell_smtp_abort(ngx_http_retell_smtp_t *s,
    const char *reason);

#endif /* _NGX_HTTP_RETELL_SMTP_H_INCLUDED_ */
