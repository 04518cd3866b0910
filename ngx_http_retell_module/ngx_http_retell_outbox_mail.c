
/*
 * The message of a claimed outbox row: its recipients (checked again),
 * a Message-ID stable for the row, so a receiver can recognise a message
 * sent twice, and the text from the pure formatter.
 */


#include "ngx_http_retell_outbox.h"
#include "ngx_http_retell_mail.h"


static void *ngx_http_retell_outbox_palloc(void *pool, size_t size);


ngx_int_t
ngx_http_retell_outbox_compose(ngx_http_retell_outbox_t *ob, PGresult *res)
{
    u_char                       *p, *at, *last, c;
    u_char                        shown[64];
    size_t                        k;
    ngx_str_t                     recipients, message, *rcpt;
    ngx_uint_t                    n;
    ngx_pool_t                   *pool;
    ngx_http_retell_mail_t        m;
    ngx_http_retell_smtp_t       *s;
    ngx_http_retell_main_conf_t  *rmcf;

    rmcf = ob->rmcf;
    pool = ob->pool;

    ngx_memzero(&m, sizeof(ngx_http_retell_mail_t));

    recipients = ngx_http_retell_outbox_copy(pool, res, 3);
    ob->call_id = ngx_http_retell_outbox_copy(pool, res, 4);

#define copy(f, i)                                                            \
    {                                                                         \
        ngx_str_t  v = ngx_http_retell_outbox_copy(pool, res, i);             \
        m.f.len = v.len;                                                      \
        m.f.data = v.data;                                                    \
    }

    copy(reason, 2);
    copy(direction, 5);
    copy(company_name, 6);
    copy(ticket_id, 7);
    copy(ticket_status, 8);
    copy(customer_name, 9);
    copy(customer_phone, 10);
    copy(started_at, 11);
    copy(duration_ms, 12);
    copy(disconnection_reason, 13);
    copy(call_summary, 14);
    copy(user_sentiment, 15);
    copy(call_successful, 16);
    copy(in_voicemail, 17);
    copy(custom_analysis_data, 18);
    copy(transcript, 19);
    copy(recording_url, 20);

#undef copy

    if (recipients.data == NULL || ob->call_id.data == NULL) {
        return NGX_ERROR;
    }

    m.call_id.data = ob->call_id.data;
    m.call_id.len = ob->call_id.len;

    /* the recipients, validated when the row was queued */

    n = 1;
    for (p = recipients.data; p < recipients.data + recipients.len; p++) {
        if (*p == ',') {
            n++;
        }
    }

    rcpt = ngx_pcalloc(pool, n * sizeof(ngx_str_t));
    m.to = ngx_pcalloc(pool, n * sizeof(ngx_http_retell_str_t));
    if (rcpt == NULL || m.to == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    p = recipients.data;
    last = recipients.data + recipients.len;

    while (p < last) {
        at = ngx_strlchr(p, last, ',');
        if (at == NULL) {
            at = last;
        }

        /*
         * checked when the row was queued; again here, since a row
         * changed by hand must not put a line end into RCPT TO
         */

        if (ngx_http_retell_mail_valid_address(p, at - p)) {
            rcpt[n].data = p;
            rcpt[n].len = at - p;
            m.to[n].data = p;
            m.to[n].len = at - p;
            n++;

        } else {
            /* logged without its line ends or other control bytes */

            for (k = 0; k < (size_t) (at - p) && k < sizeof(shown); k++) {
                shown[k] = (p[k] >= 0x20 && p[k] < 0x7f) ? p[k] : '?';
            }

            ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                          "retell outbox %V (call \"%V\"): invalid "
                          "recipient \"%*s\" skipped", &ob->id, &ob->call_id,
                          k, shown);
        }

        p = at + 1;
    }

    if (n == 0) {
        ngx_str_set(&ob->error, "no valid recipient");
        return NGX_ERROR;
    }

    m.nto = n;
    m.from.data = rmcf->smtp_from.data;
    m.from.len = rmcf->smtp_from.len;
    m.date = ngx_time();

    /* stable for the row, so a resent message is recognised as such */

    at = ngx_strlchr(rmcf->smtp_from.data,
                     rmcf->smtp_from.data + rmcf->smtp_from.len, '@');

    m.message_id.data = ngx_pnalloc(pool, sizeof("retell-outbox-.@") - 1
                                          + ob->id.len + ob->call_id.len
                                          + rmcf->smtp_from.len);
    if (m.message_id.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(m.message_id.data, "retell-outbox-%V.", &ob->id);

    for (n = 0; n < ob->call_id.len; n++) {
        c = ob->call_id.data[n];
        *p++ = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '-' || c == '_') ? c : '_';
    }

    p = ngx_sprintf(p, "@%*s",
                    at ? (size_t) (rmcf->smtp_from.data + rmcf->smtp_from.len
                                   - at - 1)
                       : sizeof("localhost") - 1,
                    at ? at + 1 : (u_char *) "localhost");

    m.message_id.len = p - m.message_id.data;

    if (rmcf->ticket_url.len) {
        m.ticket_url.data = ngx_pnalloc(pool, rmcf->ticket_url.len
                                              + ob->id.len + NGX_INT64_LEN);
        if (m.ticket_url.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(m.ticket_url.data, "%V%*s", &rmcf->ticket_url,
                        m.ticket_id.len, m.ticket_id.data);
        m.ticket_url.len = p - m.ticket_url.data;
    }

    if (ngx_http_retell_mail_format(&m, ngx_http_retell_outbox_palloc, pool,
                                    (ngx_http_retell_str_t *) &ob->subject,
                                    (ngx_http_retell_str_t *) &ob->text,
                                    (ngx_http_retell_str_t *) &message)
        != 0)
    {
        return NGX_ERROR;
    }

    s = ngx_pcalloc(pool, sizeof(ngx_http_retell_smtp_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_retell_mail_dot_stuff((ngx_http_retell_str_t *) &message,
                                       ngx_http_retell_outbox_palloc, pool,
                                       (ngx_http_retell_str_t *) &s->data)
        != 0)
    {
        return NGX_ERROR;
    }

    s->pool = pool;
    s->log = ob->log;
    s->conf = &rmcf->smtp;
    s->from = rmcf->smtp_from;
    s->rcpt = rcpt;
    s->nrcpt = m.nto;
    s->handler = ngx_http_retell_outbox_sent;
    s->handler_data = ob;

    ob->smtp = s;

    return NGX_OK;
}


/* a NUL-terminated copy: results are freed when the handler returns */

ngx_str_t
ngx_http_retell_outbox_copy(ngx_pool_t *pool, PGresult *res, int field)
{
    ngx_str_t  s;

    s.len = PQgetisnull(res, 0, field) ? 0 : PQgetlength(res, 0, field);
    s.data = ngx_pnalloc(pool, s.len + 1);

    if (s.data) {
        ngx_memcpy(s.data, PQgetvalue(res, 0, field), s.len);
        s.data[s.len] = '\0';
    }

    return s;
}


static void *
ngx_http_retell_outbox_palloc(void *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


char *
ngx_http_retell_outbox_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return (char *) p;
}
