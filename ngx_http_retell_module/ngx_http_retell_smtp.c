
/*
 * SMTP client: one message per session, every step on nginx events with
 * a timer, modelled on the mail proxy's SMTP side.  Replies are read
 * whole (multi-line "250-" continuations included) before they are
 * looked at; writes, the DATA payload included, resume on write events.
 */


#include "ngx_http_retell_smtp.h"


#define NGX_HTTP_RETELL_SMTP_BUFFER  4096
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
    ngx_smtp_mail,
    ngx_smtp_rcpt,
    ngx_smtp_data,
    ngx_smtp_body,
    ngx_smtp_quit
} ngx_http_retell_smtp_state_e;


static void ngx_http_retell_smtp_connect(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_deadline(ngx_event_t *ev);
static void ngx_http_retell_smtp_write_handler(ngx_event_t *wev);
static void ngx_http_retell_smtp_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_retell_smtp_read_reply(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_capability(ngx_http_retell_smtp_t *s,
    u_char *p, u_char *last);
static void ngx_http_retell_smtp_reply(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_after_ehlo(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_next_rcpt(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_command(ngx_http_retell_smtp_t *s,
    ngx_uint_t state, const char *fmt, ...);
static void ngx_http_retell_smtp_flush(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_fail(ngx_http_retell_smtp_t *s,
    ngx_uint_t result, const char *fmt, ...);
static void ngx_http_retell_smtp_refused(ngx_http_retell_smtp_t *s,
    const char *step);
static void ngx_http_retell_smtp_done(ngx_http_retell_smtp_t *s,
    ngx_uint_t result);
static u_char *ngx_http_retell_smtp_base64(ngx_pool_t *pool, u_char *data,
    size_t len);
#if (NGX_SSL)
static void ngx_http_retell_smtp_starttls(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_handshaked(ngx_connection_t *c);
#endif


void
ngx_http_retell_smtp_send(ngx_http_retell_smtp_t *s)
{
    /* one bound on the whole session, whatever each step does */

    s->deadline.handler = ngx_http_retell_smtp_deadline;
    s->deadline.data = s;
    s->deadline.log = s->log;
    ngx_add_timer(&s->deadline, s->conf->timeout
                                * (NGX_HTTP_RETELL_SMTP_STEPS + s->nrcpt));

    s->in = ngx_create_temp_buf(s->pool, NGX_HTTP_RETELL_SMTP_BUFFER);
    if (s->in == NULL) {
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

    s->state = ngx_smtp_start;

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


/* NGX_OK when a whole reply is in s->code and s->error */

static ngx_int_t
ngx_http_retell_smtp_read_reply(ngx_http_retell_smtp_t *s)
{
    u_char            *p, *line, *nl;
    ssize_t            n;
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = s->peer.connection;
    b = s->in;

    for ( ;; ) {

        if (b->last == b->end) {
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
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      (s->state == ngx_smtp_start
                                       && b->last == b->start)
                                      ? "cannot connect to %V"
                                      : "%V closed the connection",
                                      s->peer.name);
            return NGX_ERROR;
        }

        b->last += n;
    }

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

        if (s->state == ngx_smtp_ehlo && nl - line > 4) {
            ngx_http_retell_smtp_capability(s, line + 4, nl);
        }

        if (nl - line > 3 && line[3] == '-') {
            continue;                        /* a multi-line reply goes on */
        }

        s->code = (line[0] - '0') * 100 + (line[1] - '0') * 10
                  + (line[2] - '0');

        /* the last line names the reply in logs and in the outbox */

        n = ngx_min(nl - line, NGX_HTTP_RETELL_SMTP_ERROR);

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

        /*
         * the client never pipelines: anything after the reply it waits
         * for was not asked for, and must never be taken as the next
         * reply (after STARTTLS that would be plaintext read as if TLS
         * protected it: the CVE-2011-0411 class)
         */

        if (b->pos != b->last) {
            ngx_http_retell_smtp_refused(s, "protocol");
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "%V sent data after its reply to %s",
                                      s->peer.name,
                                      s->state == ngx_smtp_starttls
                                      ? "STARTTLS" : "a command");
            return NGX_ERROR;
        }

        b->pos = b->start;
        b->last = b->start;

        return NGX_OK;
    }
}


static void
ngx_http_retell_smtp_capability(ngx_http_retell_smtp_t *s, u_char *p,
    u_char *last)
{
    size_t  len;

    len = last - p;

    if (len == 8 && ngx_strncasecmp(p, (u_char *) "STARTTLS", 8) == 0) {
        s->offers_starttls = 1;
        return;
    }

    if (len > 5 && ngx_strncasecmp(p, (u_char *) "AUTH", 4) == 0
        && (p[4] == ' ' || p[4] == '='))
    {
        /* "AUTH LOGIN PLAIN CRAM-MD5" */

        for (p += 5; p < last; /* void */) {

            if (last - p >= 5 && ngx_strncasecmp(p, (u_char *) "PLAIN", 5) == 0
                && (last - p == 5 || p[5] == ' '))
            {
                s->offers_plain = 1;

            } else if (last - p >= 5
                       && ngx_strncasecmp(p, (u_char *) "LOGIN", 5) == 0
                       && (last - p == 5 || p[5] == ' '))
            {
                s->offers_login = 1;
            }

            while (p < last && *p != ' ') {
                p++;
            }

            while (p < last && *p == ' ') {
                p++;
            }
        }
    }
}


static void
ngx_http_retell_smtp_reply(ngx_http_retell_smtp_t *s)
{
    u_char      *auth, *p;
    ngx_str_t   *secret;
    ngx_uint_t   code, result;

    code = s->code;

    /*
     * only the message's own steps can refuse it for good: a refused
     * greeting, EHLO, STARTTLS or AUTH is about the server or this
     * configuration (a rotated password, a relay that is overloaded or
     * wants TLS), and the message goes out once that is put right
     */

    result = NGX_HTTP_RETELL_SMTP_TEMPORARY;

    switch (s->state) {

    case ngx_smtp_start:
        if (code != 220) {
            ngx_http_retell_smtp_refused(s, "greeting");
            break;
        }

        ngx_http_retell_smtp_command(s, ngx_smtp_ehlo, "EHLO %V\r\n",
                                     &s->conf->helo);
        return;

    case ngx_smtp_ehlo:
        if (code == 250) {
            ngx_http_retell_smtp_after_ehlo(s);
            return;
        }

        /* an old server: HELO, when nothing needs the extensions */

        if (code >= 500 && !s->tls
            && s->conf->starttls != NGX_HTTP_RETELL_STARTTLS_REQUIRED
            && s->conf->user.len == 0)
        {
            ngx_http_retell_smtp_command(s, ngx_smtp_helo, "HELO %V\r\n",
                                         &s->conf->helo);
            return;
        }

        ngx_http_retell_smtp_refused(s, "EHLO");
        break;

    case ngx_smtp_helo:
        if (code != 250) {
            ngx_http_retell_smtp_refused(s, "HELO");
            break;
        }

        ngx_http_retell_smtp_command(s, ngx_smtp_mail, "MAIL FROM:<%V>\r\n",
                                     &s->from);
        return;

    case ngx_smtp_starttls:
#if (NGX_SSL)
        if (code == 220) {
            ngx_http_retell_smtp_starttls(s);
            return;
        }
#endif

        if (s->conf->starttls == NGX_HTTP_RETELL_STARTTLS_REQUIRED) {
            ngx_http_retell_smtp_refused(s, "STARTTLS");
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "STARTTLS refused: %V, and "
                                      "\"retell_smtp_starttls required\"",
                                      &s->error);
            return;
        }

        /* "on" means "when it works": carry on in clear */

        s->offers_starttls = 0;
        ngx_http_retell_smtp_after_ehlo(s);
        return;

    case ngx_smtp_auth_plain:
    case ngx_smtp_auth_password:
        if (code != 235) {
            ngx_http_retell_smtp_refused(s, "AUTH");
            break;
        }

        ngx_http_retell_smtp_command(s, ngx_smtp_mail, "MAIL FROM:<%V>\r\n",
                                     &s->from);
        return;

    case ngx_smtp_auth_login:
    case ngx_smtp_auth_user:
        /* AUTH LOGIN: 334 asks for the user name, then the password */

        if (code != 334) {
            ngx_http_retell_smtp_refused(s, "AUTH");
            break;
        }

        secret = (s->state == ngx_smtp_auth_login) ? &s->conf->user
                                                   : &s->conf->password;

        p = ngx_http_retell_smtp_base64(s->pool, secret->data, secret->len);
        if (p == NULL) {
            break;
        }

        ngx_http_retell_smtp_command(s, s->state == ngx_smtp_auth_login
                                        ? ngx_smtp_auth_user
                                        : ngx_smtp_auth_password,
                                     "%s\r\n", p);
        return;

    case ngx_smtp_mail:
        if (code != 250) {
            result = (code >= 500) ? NGX_HTTP_RETELL_SMTP_PERMANENT
                                   : NGX_HTTP_RETELL_SMTP_TEMPORARY;
            break;
        }

        ngx_http_retell_smtp_next_rcpt(s);
        return;

    case ngx_smtp_rcpt:
        if (code == 250 || code == 251) {
            s->accepted++;

        } else {
            /* one refused recipient does not stop the others */

            if (code < 500) {
                s->temporary_rejects++;
            }

            p = ngx_pnalloc(s->pool, s->rejected.len + 2
                                     + s->rcpt[s->next_rcpt - 1].len + 2
                                     + s->error.len);
            if (p == NULL) {
                break;
            }

            auth = p;

            if (s->rejected.len) {
                p = ngx_cpymem(p, s->rejected.data, s->rejected.len);
                *p++ = ';';
                *p++ = ' ';
            }

            p = ngx_sprintf(p, "%V: %V", &s->rcpt[s->next_rcpt - 1],
                            &s->error);

            s->rejected.data = auth;
            s->rejected.len = p - auth;

            ngx_log_error(NGX_LOG_WARN, s->log, 0,
                          "retell smtp: recipient refused: %V: %V",
                          &s->rcpt[s->next_rcpt - 1], &s->error);
        }

        ngx_http_retell_smtp_next_rcpt(s);
        return;

    case ngx_smtp_data:
        if (code != 354) {
            result = (code >= 500) ? NGX_HTTP_RETELL_SMTP_PERMANENT
                                   : NGX_HTTP_RETELL_SMTP_TEMPORARY;
            break;
        }

        s->state = ngx_smtp_body;
        s->committing = 1;
        s->out = s->data;
        ngx_http_retell_smtp_flush(s);
        return;

    case ngx_smtp_body:
        if (code != 250) {
            result = (code >= 500) ? NGX_HTTP_RETELL_SMTP_PERMANENT
                                   : NGX_HTTP_RETELL_SMTP_TEMPORARY;
            break;
        }

        s->sent = 1;
        ngx_http_retell_smtp_command(s, ngx_smtp_quit, "QUIT\r\n");
        return;

    default: /* ngx_smtp_quit */
        ngx_http_retell_smtp_done(s, NGX_HTTP_RETELL_SMTP_SENT);
        return;
    }

    ngx_http_retell_smtp_fail(s, result, "%V", &s->error);
}


static void
ngx_http_retell_smtp_after_ehlo(ngx_http_retell_smtp_t *s)
{
    u_char  *p, *plain;
    size_t   len;

    if (!s->tls) {

        if (s->conf->starttls == NGX_HTTP_RETELL_STARTTLS_REQUIRED
            && !s->offers_starttls)
        {
            ngx_http_retell_smtp_refused(s, "STARTTLS");
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "%V does not offer STARTTLS, and "
                                      "\"retell_smtp_starttls required\"",
                                      s->peer.name);
            return;
        }

        if (s->conf->starttls != NGX_HTTP_RETELL_STARTTLS_OFF
            && s->offers_starttls)
        {
            ngx_http_retell_smtp_command(s, ngx_smtp_starttls,
                                         "STARTTLS\r\n");
            return;
        }
    }

    if (s->conf->user.len == 0) {
        ngx_http_retell_smtp_command(s, ngx_smtp_mail, "MAIL FROM:<%V>\r\n",
                                     &s->from);
        return;
    }

    /* credentials only over verified TLS, unless the operator says so */

    if ((!s->tls || !s->conf->verify) && !s->conf->auth_insecure) {
        ngx_http_retell_smtp_refused(s, "AUTH");
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                  "credentials not sent to %V %s",
                                  s->peer.name,
                                  s->tls ? "over TLS that is not verified"
                                         : "in clear");
        return;
    }

    if (s->offers_plain) {
        /* authzid NUL authcid NUL password */

        len = 1 + s->conf->user.len + 1 + s->conf->password.len;

        plain = ngx_pnalloc(s->pool, len);
        if (plain == NULL) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "out of memory");
            return;
        }

        p = plain;
        *p++ = '\0';
        p = ngx_cpymem(p, s->conf->user.data, s->conf->user.len);
        *p++ = '\0';
        ngx_memcpy(p, s->conf->password.data, s->conf->password.len);

        p = ngx_http_retell_smtp_base64(s->pool, plain, len);
        if (p == NULL) {
            ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                      "out of memory");
            return;
        }

        ngx_http_retell_smtp_command(s, ngx_smtp_auth_plain,
                                     "AUTH PLAIN %s\r\n", p);
        return;
    }

    if (s->offers_login) {
        ngx_http_retell_smtp_command(s, ngx_smtp_auth_login,
                                     "AUTH LOGIN\r\n");
        return;
    }

    ngx_http_retell_smtp_refused(s, "AUTH");
    ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                              "%V offers neither AUTH PLAIN nor AUTH LOGIN",
                              s->peer.name);
}


static void
ngx_http_retell_smtp_next_rcpt(ngx_http_retell_smtp_t *s)
{
    if (s->next_rcpt < s->nrcpt) {
        ngx_http_retell_smtp_command(s, ngx_smtp_rcpt, "RCPT TO:<%V>\r\n",
                                     &s->rcpt[s->next_rcpt++]);
        return;
    }

    if (s->accepted == 0) {
        ngx_http_retell_smtp_fail(s, s->temporary_rejects
                                     ? NGX_HTTP_RETELL_SMTP_TEMPORARY
                                     : NGX_HTTP_RETELL_SMTP_PERMANENT,
                                  "no recipient accepted: %V", &s->rejected);
        return;
    }

    ngx_http_retell_smtp_command(s, ngx_smtp_data, "DATA\r\n");
}


static void
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

    s->state = state;
    s->out.data = p;
    s->out.len = last - p;

    ngx_http_retell_smtp_flush(s);
}


static void
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


static void
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

static void
ngx_http_retell_smtp_refused(ngx_http_retell_smtp_t *s, const char *step)
{
    ngx_log_error(NGX_LOG_ERR, s->log, 0,
                  "retell smtp: the session with %V failed at %s: a "
                  "configuration or server problem; the message is kept "
                  "and retried", s->peer.name, step);
}


static void
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


static u_char *
ngx_http_retell_smtp_base64(ngx_pool_t *pool, u_char *data, size_t len)
{
    ngx_str_t  src, dst;

    src.data = data;
    src.len = len;

    dst.data = ngx_pnalloc(pool, ngx_base64_encoded_length(len) + 1);
    if (dst.data == NULL) {
        return NULL;
    }

    ngx_encode_base64(&dst, &src);
    dst.data[dst.len] = '\0';

    return dst.data;
}


#if (NGX_SSL)

static void
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

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, s->conf->timeout);
        }

        c->ssl->handler = ngx_http_retell_smtp_handshaked;
        return;
    }

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

    ngx_http_retell_smtp_command(s, ngx_smtp_ehlo, "EHLO %V\r\n",
                                 &s->conf->helo);
}

#endif
