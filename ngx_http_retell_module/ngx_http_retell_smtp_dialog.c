
/*
 * The SMTP dialog: what the client sends after each reply, and what a
 * reply means for the message.  Only the message's own steps (RCPT for
 * every recipient, DATA, the end of data) can refuse it for good; every
 * other refusal is the server's or the configuration's (530 wherever it
 * comes, a 5xx to MAIL FROM: the sender is retell_smtp_from), and the
 * message is retried.  Recipients refused with a 4xx while others were
 * accepted are listed in s->retry, for a later session of their own.
 */


#include "ngx_http_retell_smtp_session.h"


static void ngx_http_retell_smtp_after_ehlo(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_smtp_next_rcpt(ngx_http_retell_smtp_t *s);
static const char *ngx_http_retell_smtp_step(ngx_uint_t state);
static u_char *ngx_http_retell_smtp_base64(ngx_pool_t *pool, u_char *data,
    size_t len);


void
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


void
ngx_http_retell_smtp_reply(ngx_http_retell_smtp_t *s)
{
    u_char      *auth, *p;
    ngx_str_t   *secret;
    ngx_uint_t   code, result, next;

    code = s->code;

    switch (s->state) {

    case NGX_HTTP_RETELL_SMTP_START:
        if (code != 220) {
            ngx_http_retell_smtp_refused(s, "greeting");
            break;
        }

        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_EHLO,
                                     "EHLO %V\r\n", &s->conf->helo);
        return;

    case NGX_HTTP_RETELL_SMTP_EHLO:
        if (code == 250) {
            ngx_http_retell_smtp_after_ehlo(s);
            return;
        }

        /* an old server: HELO, when nothing needs the extensions */

        if (code >= 500 && !s->tls
            && s->conf->starttls != NGX_HTTP_RETELL_STARTTLS_REQUIRED
            && s->conf->user.len == 0)
        {
            ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_HELO,
                                         "HELO %V\r\n", &s->conf->helo);
            return;
        }

        ngx_http_retell_smtp_refused(s, "EHLO");
        break;

    case NGX_HTTP_RETELL_SMTP_HELO:
        if (code != 250) {
            ngx_http_retell_smtp_refused(s, "HELO");
            break;
        }

        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_MAIL,
                                     "MAIL FROM:<%V>\r\n", &s->from);
        return;

    case NGX_HTTP_RETELL_SMTP_STARTTLS:
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

    case NGX_HTTP_RETELL_SMTP_AUTH_PLAIN:
    case NGX_HTTP_RETELL_SMTP_AUTH_PASSWORD:
        if (code != 235) {
            ngx_http_retell_smtp_refused(s, "AUTH");
            break;
        }

        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_MAIL,
                                     "MAIL FROM:<%V>\r\n", &s->from);
        return;

    case NGX_HTTP_RETELL_SMTP_AUTH_LOGIN:
    case NGX_HTTP_RETELL_SMTP_AUTH_USER:
        /* AUTH LOGIN: 334 asks for the user name, then the password */

        if (code != 334) {
            ngx_http_retell_smtp_refused(s, "AUTH");
            break;
        }

        secret = (s->state == NGX_HTTP_RETELL_SMTP_AUTH_LOGIN) ? &s->conf->user
                                                   : &s->conf->password;

        p = ngx_http_retell_smtp_base64(s->pool, secret->data, secret->len);
        if (p == NULL) {
            break;
        }

        next = (s->state == NGX_HTTP_RETELL_SMTP_AUTH_LOGIN)
               ? NGX_HTTP_RETELL_SMTP_AUTH_USER
               : NGX_HTTP_RETELL_SMTP_AUTH_PASSWORD;

        ngx_http_retell_smtp_command(s, next, "%s\r\n", p);
        return;

    case NGX_HTTP_RETELL_SMTP_MAIL:
        if (code != 250) {
            break;
        }

        ngx_http_retell_smtp_next_rcpt(s);
        return;

    case NGX_HTTP_RETELL_SMTP_RCPT:
        if (code == 250 || code == 251) {
            s->accepted++;

        } else if (code == 530) {
            /* TLS or AUTH wanted: the session's refusal, not the address's */
            break;

        } else {
            /* one refused recipient does not stop the others */

            if (code < 500) {
                /* greylisting, a full mailbox, "452 too many recipients" */
                s->retry[s->nretry++] = s->rcpt[s->next_rcpt - 1];
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

    case NGX_HTTP_RETELL_SMTP_DATA:
        if (code != 354) {
            break;
        }

        ngx_http_retell_smtp_state(s, NGX_HTTP_RETELL_SMTP_BODY);
        s->committing = 1;
        s->out = s->data;
        ngx_http_retell_smtp_flush(s);
        return;

    case NGX_HTTP_RETELL_SMTP_BODY:
        if (!ngx_http_retell_smtp_accepted(s)) {
            break;
        }

        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_QUIT, "QUIT\r\n");
        return;

    default: /* NGX_HTTP_RETELL_SMTP_QUIT */
        ngx_http_retell_smtp_done(s, NGX_HTTP_RETELL_SMTP_SENT);
        return;
    }

    /*
     * only the message's own steps (RCPT, DATA, the end of data) refuse it
     * for good: a refused greeting, EHLO, STARTTLS or AUTH is about the
     * server or this configuration (a rotated password, a relay that is
     * overloaded or wants TLS), and the message goes out once that is put
     * right.  So is a 530 at any step ("Must issue a STARTTLS command
     * first", "Authentication required": servers say it to MAIL, not to
     * EHLO) and a 5xx to MAIL FROM, whose address is retell_smtp_from.
     */

    if (s->state >= NGX_HTTP_RETELL_SMTP_MAIL
        && (code == 530
            || (code >= 500 && s->state == NGX_HTTP_RETELL_SMTP_MAIL)))
    {
        ngx_http_retell_smtp_refused(s, ngx_http_retell_smtp_step(s->state));
        ngx_http_retell_smtp_fail(s, NGX_HTTP_RETELL_SMTP_TEMPORARY, "%V",
                                  &s->error);
        return;
    }

    result = (code >= 500 && s->state >= NGX_HTTP_RETELL_SMTP_MAIL)
             ? NGX_HTTP_RETELL_SMTP_PERMANENT : NGX_HTTP_RETELL_SMTP_TEMPORARY;

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
            ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_STARTTLS,
                                         "STARTTLS\r\n");
            return;
        }
    }

    if (s->conf->user.len == 0) {
        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_MAIL,
                                     "MAIL FROM:<%V>\r\n", &s->from);
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

        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_AUTH_PLAIN,
                                     "AUTH PLAIN %s\r\n", p);
        return;
    }

    if (s->offers_login) {
        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_AUTH_LOGIN,
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
        ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_RCPT,
                                     "RCPT TO:<%V>\r\n",
                                     &s->rcpt[s->next_rcpt++]);
        return;
    }

    if (s->accepted == 0) {
        ngx_http_retell_smtp_fail(s, s->nretry
                                     ? NGX_HTTP_RETELL_SMTP_TEMPORARY
                                     : NGX_HTTP_RETELL_SMTP_PERMANENT,
                                  "no recipient accepted: %V", &s->rejected);
        return;
    }

    ngx_http_retell_smtp_command(s, NGX_HTTP_RETELL_SMTP_DATA, "DATA\r\n");
}


/* the step a reply answered, in the log's words */

static const char *
ngx_http_retell_smtp_step(ngx_uint_t state)
{
    switch (state) {

    case NGX_HTTP_RETELL_SMTP_MAIL:
        return "MAIL FROM";

    case NGX_HTTP_RETELL_SMTP_RCPT:
        return "RCPT TO";

    case NGX_HTTP_RETELL_SMTP_DATA:
        return "DATA";

    case NGX_HTTP_RETELL_SMTP_BODY:
        return "the end of data";

    default:
        return "QUIT";
    }
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
