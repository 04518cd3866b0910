
/*
 * The message of a claimed outbox row: its recipients (checked again;
 * all of them in To:, those still to get it in RCPT TO), a Message-ID
 * stable for the row, so a receiver can recognise a message sent twice,
 * and the text from the pure formatter.
 */


#include "ngx_http_retell_outbox.h"
#include "ngx_http_retell_mail.h"


static ngx_int_t ngx_http_retell_outbox_field(ngx_pool_t *pool,
    PGresult *res, int field, ngx_http_retell_str_t *to);
static ngx_int_t ngx_http_retell_outbox_addresses(
    ngx_http_retell_outbox_t *ob, ngx_str_t *list, ngx_str_t **addr,
    ngx_uint_t *n);


/* the message of the claimed row in res; its values, in order */

static const struct {
    size_t  offset;
    int     field;
} ngx_http_retell_outbox_fields[] = {
    { offsetof(ngx_http_retell_mail_t, reason),
      NGX_HTTP_RETELL_CLAIM_REASON },
    { offsetof(ngx_http_retell_mail_t, direction),
      NGX_HTTP_RETELL_CLAIM_DIRECTION },
    { offsetof(ngx_http_retell_mail_t, company_name),
      NGX_HTTP_RETELL_CLAIM_COMPANY_NAME },
    { offsetof(ngx_http_retell_mail_t, ticket_id),
      NGX_HTTP_RETELL_CLAIM_TICKET_ID },
    { offsetof(ngx_http_retell_mail_t, ticket_status),
      NGX_HTTP_RETELL_CLAIM_TICKET_STATUS },
    { offsetof(ngx_http_retell_mail_t, customer_name),
      NGX_HTTP_RETELL_CLAIM_CUSTOMER_NAME },
    { offsetof(ngx_http_retell_mail_t, customer_phone),
      NGX_HTTP_RETELL_CLAIM_CUSTOMER_PHONE },
    { offsetof(ngx_http_retell_mail_t, started_at),
      NGX_HTTP_RETELL_CLAIM_STARTED_AT },
    { offsetof(ngx_http_retell_mail_t, duration_ms),
      NGX_HTTP_RETELL_CLAIM_DURATION_MS },
    { offsetof(ngx_http_retell_mail_t, disconnection_reason),
      NGX_HTTP_RETELL_CLAIM_DISCONNECTION_REASON },
    { offsetof(ngx_http_retell_mail_t, call_summary),
      NGX_HTTP_RETELL_CLAIM_CALL_SUMMARY },
    { offsetof(ngx_http_retell_mail_t, user_sentiment),
      NGX_HTTP_RETELL_CLAIM_USER_SENTIMENT },
    { offsetof(ngx_http_retell_mail_t, call_successful),
      NGX_HTTP_RETELL_CLAIM_CALL_SUCCESSFUL },
    { offsetof(ngx_http_retell_mail_t, in_voicemail),
      NGX_HTTP_RETELL_CLAIM_IN_VOICEMAIL },
    { offsetof(ngx_http_retell_mail_t, custom_analysis_data),
      NGX_HTTP_RETELL_CLAIM_CUSTOM_ANALYSIS },
    { offsetof(ngx_http_retell_mail_t, transcript),
      NGX_HTTP_RETELL_CLAIM_TRANSCRIPT },
    { offsetof(ngx_http_retell_mail_t, recording_url),
      NGX_HTTP_RETELL_CLAIM_RECORDING_URL },
    { offsetof(ngx_http_retell_mail_t, recording_note),
      NGX_HTTP_RETELL_CLAIM_RECORDING_NOTE }
};


/*
 * NGX_OK with the message; NGX_DECLINED when no recipient is valid (the
 * row can never be sent); NGX_ERROR when memory ran out (it can, later)
 */

ngx_int_t
ngx_http_retell_outbox_compose(ngx_http_retell_outbox_t *ob, PGresult *res,
    ngx_http_retell_outbox_message_t *message)
{
    u_char                       *p, *at, c;
    ngx_str_t                     recipients, send_to, text, *to, *rcpt;
    ngx_uint_t                    i, n, nto;
    ngx_pool_t                   *pool;
    ngx_http_retell_mail_t        m;
    ngx_http_retell_main_conf_t  *rmcf;

    rmcf = ob->rmcf;
    pool = ob->pool;

    ngx_memzero(&m, sizeof(ngx_http_retell_mail_t));

    recipients = ngx_http_retell_outbox_copy(pool, res,
                                             NGX_HTTP_RETELL_CLAIM_RECIPIENTS);
    send_to = ngx_http_retell_outbox_copy(pool, res,
                                          NGX_HTTP_RETELL_CLAIM_SEND_TO);
    ob->call_id = ngx_http_retell_outbox_copy(pool, res,
                                              NGX_HTTP_RETELL_CLAIM_CALL_ID);

    if (recipients.data == NULL || send_to.data == NULL
        || ob->call_id.data == NULL)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < sizeof(ngx_http_retell_outbox_fields)
                    / sizeof(ngx_http_retell_outbox_fields[0]); i++)
    {
        if (ngx_http_retell_outbox_field(pool, res,
                                         ngx_http_retell_outbox_fields[i].field,
                                         (ngx_http_retell_str_t *)
                                         ((u_char *) &m
                                          + ngx_http_retell_outbox_fields[i]
                                            .offset))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    m.call_id.data = ob->call_id.data;
    m.call_id.len = ob->call_id.len;

    /*
     * To: every recipient, the same message each time; RCPT TO: those
     * still to get it (all but after a partial refusal)
     */

    if (ngx_http_retell_outbox_addresses(ob, &recipients, &to, &nto)
        != NGX_OK
        || ngx_http_retell_outbox_addresses(ob, &send_to, &rcpt, &n)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (n == 0 || nto == 0) {
        return NGX_DECLINED;
    }

    m.to = (ngx_http_retell_str_t *) to;
    m.nto = nto;

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

    for (i = 0; i < ob->call_id.len; i++) {
        c = ob->call_id.data[i];
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

    if (ngx_http_retell_mail_format(&m, ngx_http_retell_palloc, pool,
                                    (ngx_http_retell_str_t *) &ob->subject,
                                    (ngx_http_retell_str_t *) &ob->text,
                                    (ngx_http_retell_str_t *) &text)
        != 0)
    {
        return NGX_ERROR;
    }

    if (ngx_http_retell_mail_dot_stuff((ngx_http_retell_str_t *) &text,
                                       ngx_http_retell_palloc, pool,
                                       (ngx_http_retell_str_t *)
                                       &message->data)
        != 0)
    {
        return NGX_ERROR;
    }

    message->rcpt = rcpt;
    message->nrcpt = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_outbox_field(ngx_pool_t *pool, PGresult *res, int field,
    ngx_http_retell_str_t *to)
{
    ngx_str_t  v;

    v = ngx_http_retell_outbox_copy(pool, res, field);

    if (v.data == NULL) {
        return NGX_ERROR;
    }

    to->data = v.data;
    to->len = v.len;

    return NGX_OK;
}


/* "a,b,c" as the claim gives it: the valid addresses, in *addr */

static ngx_int_t
ngx_http_retell_outbox_addresses(ngx_http_retell_outbox_t *ob,
    ngx_str_t *list, ngx_str_t **addr, ngx_uint_t *n)
{
    u_char      *p, *at, *last;
    u_char       shown[64];
    size_t       k;
    ngx_str_t   *a;
    ngx_uint_t   i;

    i = 1;
    last = list->data + list->len;

    for (p = list->data; p < last; p++) {
        if (*p == ',') {
            i++;
        }
    }

    a = ngx_pcalloc(ob->pool, i * sizeof(ngx_str_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    i = 0;
    p = list->data;

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
            a[i].data = p;
            a[i].len = at - p;
            i++;

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

    *addr = a;
    *n = i;

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
