
/*
 * SMTP client: one message per session, every step on nginx events with
 * a timer, modelled on the mail proxy's SMTP side.  Replies are read
 * whole (multi-line "250-" continuations included, of any size, one line
 * at most the buffer) before the dialog sees them; writes, the DATA
 * payload included, resume on write events.
 */


#include "ngx_http_retell_smtp_session.h"


#define NGX_HTTP_RETELL_SMTP_BUFFER  4096


static void ngx_http_retell_smtp_connect(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_deadline(ngx_event_t *ev);
static void ngx_http_retell_smtp_write_handler(ngx_event_t *wev);
static void ngx_http_retell_smtp_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_retell_smtp_read_reply(ngx_http_retell_smtp_t *s);
static ngx_int_t ngx_http_retell_smtp_parse_lines(ngx_http_retell_smtp_t *s);
static ngx_int_t ngx_http_retell_smtp_unasked(ngx_http_retell_smtp_t *s);
#if (NGX_SSL)
static void ngx_http_retell_smtp_handshaked(ngx_connection_t *c);
static void ngx_http_retell_smtp_handshake_handler(ngx_event_t *ev);
#endif


void
ngx_http_retell_smtp_send(ngx_http_retell_smtp_t *s)
{
    /* the session's own log, whose action says which step it is in */

    s->session_log = *s->log;
    s->log = &s->session_log;

    /* one bound on the whole session, whatever each step does */

    s->deadline.handler = ngx_http_retell_smtp_deadline;
    s->deadline.data = s;
    s->deadline.log = s->log;
    ngx_add_timer(&s->deadline, s->conf->timeout
                                * (NGX_HTTP_RETELL_SMTP_STEPS + s->nrcpt));

    s->in = ngx_create_temp_buf(s->pool, NGX_HTTP_RETELL_SMTP_BUFFER);
    s->retry = ngx_palloc(s->pool, s->nrcpt * sizeof(ngx_str_t));

    if (s->in == NULL || s->retry == NULL) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "out of memory");
        return;
    }

    ngx_http_retell_smtp_connect(s);
}


void
ngx_http_retell_smtp_abort(ngx_http_retell_smtp_t *s, const char *reason)
{
    s->greeted = 1;             /* no other address: the session ends */

    ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY, "%s",
                              reason);
}


static void
ngx_http_retell_smtp_deadline(ngx_event_t *ev)
{
    ngx_http_retell_smtp_t  *s;

    s = ev->data;

    ngx_http_retell_smtp_abort(s, "the session took too long");
}


/* to s->conf->server[s->addr]; the next one if this one fails early */

static void
ngx_http_retell_smtp_connect(ngx_http_retell_smtp_t *s)
{
    ngx_int_t          rc;
    ngx_addr_t        *addr;
    ngx_connection_t  *c;

    addr = &s->conf->server[s->addr];

    ngx_memzero(&s->peer, sizeof(ngx_peer_connection_t));

    s->peer.sockaddr = addr->sockaddr;
    s->peer.socklen = addr->socklen;
    s->peer.name = &addr->name;
    s->peer.get = ngx_event_get_peer;
    s->peer.log = s->log;
    s->peer.log_error = NGX_ERROR_ERR;

    s->connected = 0;
    s->in->pos = s->in->start;
    s->in->last = s->in->start;

    rc = ngx_event_connect_peer(&s->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "cannot connect to %V", &addr->name);
        return;
    }

    c = s->peer.connection;
    c->data = s;
    c->pool = s->pool;
    c->log = s->log;
    c->read->log = s->log;
    c->write->log = s->log;
    c->read->handler = ngx_http_retell_smtp_read_handler;
    c->write->handler = ngx_http_retell_smtp_write_handler;

    ngx_http_retell_smtp_state(s, NGX_HTTP_RETELL_SMTP_START);

    /* connected or not, the greeting is the next thing to come */

    ngx_add_timer(c->read, s->conf->timeout);

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, s->conf->timeout);

    } else {
        s->connected = 1;
    }
}


static void
ngx_http_retell_smtp_write_handler(ngx_event_t *wev)
{
    int                      err;
    socklen_t                len;
    ngx_connection_t        *c;
    ngx_http_retell_smtp_t  *s;

    c = wev->data;
    s = c->data;

    if (c->close) {
        ngx_http_retell_smtp_abort(s, "worker is shutting down");
        return;
    }

    if (wev->timedout) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "%V timed out while %s",
                                  s->peer.name, s->connected ? "sending"
                                                             : "connecting");
        return;
    }

    if (!s->connected) {

        /* the connect() completed, or failed */

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        if (err) {
            ngx_log_error(NGX_LOG_ERR, s->log, err,
                          "retell smtp: connect() to %V failed",
                          s->peer.name);

            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "cannot connect to %V", s->peer.name);
            return;
        }

        s->connected = 1;
        return;
    }

    /*
     * epoll reports the socket writable with every packet that comes in:
     * only a command still going out has anything to do here
     */

    if (s->out.len == 0) {
        return;
    }

    ngx_http_retell_smtp_flush(s);
}


static void
ngx_http_retell_smtp_read_handler(ngx_event_t *rev)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_retell_smtp_t  *s;

    c = rev->data;
    s = c->data;

    if (c->close) {
        ngx_http_retell_smtp_abort(s, "worker is shutting down");
        return;
    }

    if (rev->timedout) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "%V timed out waiting for a reply",
                                  s->peer.name);
        return;
    }

    if (s->out.len) {
        /* no reply is due before the command is out */
        return;
    }

    rc = ngx_http_retell_smtp_read_reply(s);

    if (rc == NGX_AGAIN) {
        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "cannot wait for a reply");
        }

        return;
    }

    if (rc == NGX_ERROR) {
        return;
    }

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    s->greeted = 1;

    ngx_http_retell_smtp_reply(s);
}


/*
 * NGX_OK when a whole reply is in s->code and s->error.  The socket is
 * read until it is empty, so that bytes after the reply are seen (the
 * client never pipelines); when the buffer fills first, the complete
 * lines in it are parsed and dropped, and only a single line longer than
 * the buffer is too long, whatever the size of the reply.
 */

static ngx_int_t
ngx_http_retell_smtp_read_reply(ngx_http_retell_smtp_t *s)
{
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->peer.connection;
    b = s->in;
    rc = NGX_AGAIN;

    for ( ;; ) {

        if (b->last == b->end) {

            if (rc == NGX_AGAIN) {
                rc = ngx_http_retell_smtp_parse_lines(s);

                if (rc == NGX_ERROR) {
                    return NGX_ERROR;
                }
            }

            if (rc == NGX_OK && b->pos != b->last) {
                return ngx_http_retell_smtp_unasked(s);
            }

            if (b->pos == b->start) {
                ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                          "reply line too long");
                return NGX_ERROR;
            }

            b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
            b->pos = b->start;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {

            /* a 250 to the end of data read before the close still counts */

            if (rc == NGX_AGAIN && s->state == NGX_HTTP_RETELL_SMTP_BODY) {
                rc = ngx_http_retell_smtp_parse_lines(s);

                if (rc == NGX_ERROR) {
                    return NGX_ERROR;
                }
            }

            if (rc == NGX_OK) {
                (void) ngx_http_retell_smtp_accepted(s);
            }

            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      (s->state == NGX_HTTP_RETELL_SMTP_START
                                       && b->last == b->start)
                                      ? "cannot connect to %V"
                                      : "%V closed the connection",
                                      s->peer.name);
            return NGX_ERROR;
        }

        b->last += n;
    }

    if (rc == NGX_AGAIN) {
        rc = ngx_http_retell_smtp_parse_lines(s);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (b->pos != b->last) {
        return ngx_http_retell_smtp_unasked(s);
    }

    b->pos = b->start;
    b->last = b->start;

    return NGX_OK;
}


/*
 * the complete lines from b->pos on: NGX_OK at the reply's last line
 * (s->code and s->error set, b->pos after it), NGX_AGAIN when the reply
 * goes on past them
 */

static ngx_int_t
ngx_http_retell_smtp_parse_lines(ngx_http_retell_smtp_t *s)
{
    u_char     *p, *line, *nl;
    size_t      n;
    ngx_buf_t  *b;

    b = s->in;

    for ( ;; ) {
        nl = ngx_strlchr(b->pos, b->last, '\n');

        if (nl == NULL) {
            return NGX_AGAIN;
        }

        line = b->pos;
        b->pos = nl + 1;

        if (nl > line && nl[-1] == '\r') {
            nl--;
        }

        if (nl - line < 3
            || line[0] < '2' || line[0] > '5'
            || line[1] < '0' || line[1] > '9'
            || line[2] < '0' || line[2] > '9'
            || (nl - line > 3 && line[3] != ' ' && line[3] != '-'))
        {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "invalid reply \"%*s\"",
                                      ngx_min(nl - line, 64), line);
            return NGX_ERROR;
        }

        if (s->state == NGX_HTTP_RETELL_SMTP_EHLO && nl - line > 4) {
            ngx_http_retell_smtp_capability(s, line + 4, nl);
        }

        if (nl - line > 3 && line[3] == '-') {
            continue;                        /* a multi-line reply goes on */
        }

        s->code = (line[0] - '0') * 100 + (line[1] - '0') * 10
                  + (line[2] - '0');

        /* the last line names the reply in logs and in the outbox */

        n = ngx_min((size_t) (nl - line), NGX_HTTP_RETELL_SMTP_ERROR);

        s->error.data = ngx_pnalloc(s->pool, n);
        if (s->error.data == NULL) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "out of memory");
            return NGX_ERROR;
        }

        for (p = line; p < line + n; p++) {
            s->error.data[p - line] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
        }

        s->error.len = n;

        return NGX_OK;
    }
}


/*
 * the client never pipelines: anything after the reply it waits for was
 * not asked for, and must never be taken as the next reply (after
 * STARTTLS that would be plaintext read as if TLS protected it: the
 * CVE-2011-0411 class)
 */

static ngx_int_t
ngx_http_retell_smtp_unasked(ngx_http_retell_smtp_t *s)
{
    if (!ngx_http_retell_smtp_accepted(s)) {
        ngx_http_retell_smtp_refused(s, "protocol");
    }

    ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                              "%V sent data after its reply to %s",
                              s->peer.name,
                              s->state == NGX_HTTP_RETELL_SMTP_STARTTLS
                              ? "STARTTLS" : "a command");
    return NGX_ERROR;
}


/*
 * the whole reply just read is a 250 to the end of data: the server has
 * taken the message, whatever it does next (bytes not asked for, a close,
 * a failing QUIT), and it must not be sent again; for the dialog too
 */

ngx_uint_t
ngx_http_retell_smtp_accepted(ngx_http_retell_smtp_t *s)
{
    if (s->state == NGX_HTTP_RETELL_SMTP_BODY && s->code == 250) {
        s->sent = 1;
    }

    return s->sent;
}


void
ngx_http_retell_smtp_command(ngx_http_retell_smtp_t *s, ngx_uint_t state,
    const char *fmt, ...)
{
    u_char   *p, *last;
    size_t    len;
    va_list   args;

    len = NGX_HTTP_RETELL_SMTP_ERROR + s->conf->helo.len + s->from.len
          + s->conf->user.len * 2 + s->conf->password.len * 2;

    if (s->next_rcpt && s->next_rcpt <= s->nrcpt) {
        len += s->rcpt[s->next_rcpt - 1].len;
    }

    p = ngx_pnalloc(s->pool, len);
    if (p == NULL) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "out of memory");
        return;
    }

    va_start(args, fmt);
    last = ngx_vslprintf(p, p + len, fmt, args);
    va_end(args);

    ngx_http_retell_smtp_state(s, state);

    s->out.data = p;
    s->out.len = last - p;

    ngx_http_retell_smtp_flush(s);
}


/*
 * Every step says itself: in the log's action ("... while sending RCPT
 * TO") and at debug level, so "error_log ... debug" shows where a stuck
 * session is
 */

void
ngx_http_retell_smtp_state(ngx_http_retell_smtp_t *s, ngx_uint_t state)
{
    static char  *actions[] = {
        "waiting for the SMTP server's greeting",
        "sending EHLO to the SMTP server",
        "sending HELO to the SMTP server",
        "starting TLS with the SMTP server",
        "authenticating with the SMTP server (PLAIN)",
        "authenticating with the SMTP server (LOGIN)",
        "sending the SMTP user name",
        "sending the SMTP password",
        "sending MAIL FROM",
        "sending RCPT TO",
        "sending DATA",
        "sending the message",
        "sending QUIT"
    };

    s->state = state;
    s->log->action = actions[state];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "retell smtp: %s (%V)", actions[state], s->peer.name);
}


void
ngx_http_retell_smtp_flush(ngx_http_retell_smtp_t *s)
{
    ssize_t            n;
    ngx_uint_t         progress;
    ngx_connection_t  *c;

    c = s->peer.connection;
    progress = 0;

    while (s->out.len) {

        n = c->send(c, s->out.data, s->out.len);

        if (n == NGX_ERROR) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "cannot send to %V", s->peer.name);
            return;
        }

        if (n == NGX_AGAIN) {
            /*
             * a long DATA payload goes out over several write events:
             * the timer bounds the wait for the socket to take more, so
             * it moves with every part that went out
             */

            if (progress || !c->write->timer_set) {
                ngx_add_timer(c->write, s->conf->timeout);
            }

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                          "cannot wait to send");
            }

            return;
        }

        s->out.data += n;
        s->out.len -= n;
        progress = 1;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    /* the command is out: its reply is due within the timeout, whole */

    ngx_add_timer(c->read, s->conf->timeout);

    /* the reply may be in already: its event may have come and gone */

    if (c->read->ready) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


void
ngx_http_retell_smtp_fail(ngx_http_retell_smtp_t *s, ngx_uint_t result,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    if (!s->greeted && !s->done && s->in && s->addr + 1 < s->conf->naddrs) {

        /* nobody answered at this address: the next one, same session */

        ngx_log_error(NGX_LOG_WARN, s->log, 0,
                      "retell smtp: %V failed, trying the next address",
                      s->peer.name);

        if (s->peer.connection) {
            ngx_close_connection(s->peer.connection);
            s->peer.connection = NULL;
        }

        s->addr++;

        ngx_http_retell_smtp_connect(s);
        return;
    }

    p = ngx_pnalloc(s->pool, NGX_HTTP_RETELL_SMTP_ERROR * 2);

    if (p) {
        va_start(args, fmt);
        s->error.len = ngx_vslprintf(p, p + NGX_HTTP_RETELL_SMTP_ERROR * 2,
                                     fmt, args)
                       - p;
        va_end(args);
        s->error.data = p;

    } else {
        ngx_str_set(&s->error, "out of memory");
    }

    ngx_http_retell_smtp_done(s, result);
}


/* a session-level failure: the operator's to put right, not the message's */

void
ngx_http_retell_smtp_refused(ngx_http_retell_smtp_t *s, const char *step)
{
    ngx_log_error(NGX_LOG_ERR, s->log, 0,
                  "retell smtp: the session with %V failed at %s: a "
                  "configuration or server problem; the message is kept "
                  "and retried", s->peer.name, step);
}


void
ngx_http_retell_smtp_done(ngx_http_retell_smtp_t *s, ngx_uint_t result)
{
    ngx_connection_t  *c;

    if (s->done) {
        return;
    }

    s->done = 1;

    if (s->deadline.timer_set) {
        ngx_del_timer(&s->deadline);
    }

    /* the message was accepted: a failing QUIT changes nothing */

    s->result = s->sent ? NGX_HTTP_RETELL_SMTP_SENT : result;

    c = s->peer.connection;

    if (c) {
#if (NGX_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif

        ngx_close_connection(c);
        s->peer.connection = NULL;
    }

    s->handler(s);
}


#if (NGX_SSL)

void
ngx_http_retell_smtp_starttls(ngx_http_retell_smtp_t *s)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->peer.connection;

    /* read_reply() left nothing: TLS starts on an empty buffer */

    s->in->pos = s->in->start;
    s->in->last = s->in->start;

    if (ngx_ssl_create_connection(s->conf->ssl, c,
                                  NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "cannot start TLS");
        return;
    }

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
    /* SNI is a host name, never an address (RFC 6066) */

    if (s->conf->server_name.len && !s->conf->server_is_ip) {
        (void) SSL_set_tlsext_host_name(c->ssl->connection,
                                        (char *) s->conf->server_name.data);
    }
#endif

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "retell smtp: TLS handshake with %V", s->peer.name);

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, s->conf->timeout);
        }

        c->ssl->handler = ngx_http_retell_smtp_handshaked;
        c->read->handler = ngx_http_retell_smtp_handshake_handler;
        c->write->handler = ngx_http_retell_smtp_handshake_handler;
        return;
    }

    ngx_http_retell_smtp_handshaked(c);
}


/*
 * nginx's own handshake handler does not look at c->close: at
 * worker_shutdown_timeout a session in its handshake would live on until
 * its timer, so the handshake runs under this one
 */

static void
ngx_http_retell_smtp_handshake_handler(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_http_retell_smtp_t  *s;

    c = ev->data;
    s = c->data;

    if (c->close) {
        ngx_http_retell_smtp_abort(s, "worker is shutting down");
        return;
    }

    if (!ev->timedout && ngx_ssl_handshake(c) == NGX_AGAIN) {
        /* ngx_ssl_handshake() set its own handler again */
        c->read->handler = ngx_http_retell_smtp_handshake_handler;
        c->write->handler = ngx_http_retell_smtp_handshake_handler;
        return;
    }

    /* done, failed, or timed out (then not handshaked: it fails) */

    ngx_http_retell_smtp_handshaked(c);
}


static void
ngx_http_retell_smtp_handshaked(ngx_connection_t *c)
{
    long                     rc;
    ngx_http_retell_smtp_t  *s;

    s = c->data;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (!c->ssl->handshaked) {
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "TLS handshake with %V failed",
                                  s->peer.name);
        return;
    }

    if (s->conf->verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "certificate of %V not verified: "
                                      "(%l:%s)", s->peer.name, rc,
                                      X509_verify_cert_error_string(rc));
            return;
        }

        if (ngx_ssl_check_host(c, &s->conf->server_name) != NGX_OK) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "certificate of %V does not match "
                                      "\"%V\"", s->peer.name,
                                      &s->conf->server_name);
            return;
        }
    }

    c->read->handler = ngx_http_retell_smtp_read_handler;
    c->write->handler = ngx_http_retell_smtp_write_handler;

    /* RFC 3207: forget what was learnt in clear and ask again */

    s->tls = 1;
    s->offers_starttls = 0;
    s->offers_plain = 0;
    s->offers_login = 0;

    ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_EHLO, "EHLO %V\r\n",
                                 &s->conf->helo);
}

#endif
