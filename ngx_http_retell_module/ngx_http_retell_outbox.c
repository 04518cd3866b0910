
/*
 * Delivery of retell.email_outbox rows by the workers themselves.
 *
 * Each worker runs one job at a time: claim a due row, compose the
 * message, send it over SMTP, record the outcome, claim the next.  A row
 * is claimed in one statement with FOR UPDATE SKIP LOCKED and leased:
 * status "sending" and next_attempt_at a minute ahead, so no other worker
 * or nginx host takes it.  The lease is short and renewed every 20 s
 * while the session runs, so the row of a worker that died is taken
 * again within about a minute; a session whose lease cannot be renewed
 * in time is ended before the lease runs out.  The lease is fenced: the
 * claim adds one to the row's lease_token, and renewal and record match
 * it, so a worker that lost its lease can change nothing (whatever SQL
 * did to attempts meanwhile).  Recipients refused with a 4xx while others
 * were accepted stay in pending_recipients, the row pending: only they
 * get the message at the next attempt.  A delivery that queues a row
 * kicks its worker at once; a timer sweeps for retries and leftovers.
 */


#include "ngx_http_retell_outbox.h"


#define NGX_HTTP_RETELL_OUTBOX_SWEEP      5000
#define NGX_HTTP_RETELL_OUTBOX_RECORD_TRIES  10
#define NGX_HTTP_RETELL_OUTBOX_QUERY_TIMEOUT 10000
#define NGX_HTTP_RETELL_OUTBOX_LEASE_MIN  10000
#define NGX_HTTP_RETELL_OUTBOX_LEASE_MAX  60000



static void ngx_http_retell_outbox_claim(ngx_http_retell_outbox_t *ob);
static void ngx_http_retell_outbox_sent(ngx_http_retell_smtp_t *s);
static void ngx_http_retell_outbox_claimed(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static void ngx_http_retell_outbox_fail(ngx_http_retell_outbox_t *ob,
    ngx_uint_t result, const char *error);
static void ngx_http_retell_outbox_record(ngx_http_retell_outbox_t *ob);
static ngx_int_t ngx_http_retell_outbox_retry_list(
    ngx_http_retell_outbox_t *ob, ngx_http_retell_smtp_t *s);
static void ngx_http_retell_outbox_recorded(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static void ngx_http_retell_outbox_retry_record(ngx_event_t *ev);
static ngx_int_t ngx_http_retell_outbox_query(ngx_http_retell_outbox_t *ob,
    const char *command, int nparams, ngx_uint_t idempotent,
    ngx_http_retell_pg_handler_pt handler);
static void ngx_http_retell_outbox_finish(ngx_http_retell_outbox_t *ob);
static void ngx_http_retell_outbox_sweep(ngx_event_t *ev);
static void ngx_http_retell_outbox_stage(ngx_http_retell_outbox_t *ob,
    char *action);


static ngx_http_retell_outbox_t  *ngx_http_retell_outbox;


/*
 * A row whose lease ran out at the last attempt allowed has failed: its
 * worker died or its outcome was lost every time (a poison row).
 */

static const char  ngx_http_retell_claim_sql[] =
    "WITH expired AS ("
    "  UPDATE retell.email_outbox"
    "     SET status = 'failed',"
    "         last_error = 'lease expired after ' || attempts || ' attempts'"
    "         || COALESCE(': ' || last_error, '')"
    "   WHERE status = 'sending' AND next_attempt_at <= now()"
    "     AND attempts >= $2::int"
    "  RETURNING id"
    "), due AS ("
    "  SELECT id FROM retell.email_outbox"
    "   WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
    "     AND attempts < $2::int"
    "   ORDER BY next_attempt_at, id"
    "   LIMIT 1"
    "   FOR UPDATE SKIP LOCKED"
    "), claimed AS ("
    "  UPDATE retell.email_outbox o"
    "     SET status = 'sending', attempts = o.attempts + 1,"
    "         lease_token = o.lease_token + 1,"
    "         next_attempt_at = now() + $1::bigint * interval '1 ms'"
    "    FROM due WHERE o.id = due.id"
    "  RETURNING o.*"
    "), waiting AS ("
    "  SELECT count(*) AS due FROM retell.email_outbox"
    "   WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
    "     AND attempts < $2::int"
    ")"
    " SELECT o.id, o.lease_token, o.reason,"
    "        array_to_string(o.recipients, ','),"
    "        array_to_string(COALESCE(o.pending_recipients, o.recipients),"
    "                        ','),"
    "        c.call_id, c.direction,"
    "        co.name, t.id, t.status, cu.name,"
    "        COALESCE(cu.phone_display, c.customer_phone_display),"
    "        to_char(c.started_at AT TIME ZONE 'UTC',"
    "                'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
    "        c.duration_ms, c.disconnection_reason, c.call_summary,"
    "        c.user_sentiment, c.call_successful, c.in_voicemail,"
    "        c.custom_analysis_data::text, c.transcript, c.recording_url,"
    /* whether the link may be dead by now (docs/email.md) */
    "        CASE WHEN c.recording_url IS NULL THEN NULL"
    "             WHEN c.data_storage_setting = 'basic_attributes_only'"
    "              AND COALESCE(c.ended_at, o.created_at)"
    "                  < now() - interval '10 minutes' THEN 'storage'"
    "             WHEN COALESCE(c.ended_at, o.created_at)"
    "                  < now() - interval '24 hours' THEN 'age' END,"
    "        w.due"
    /* one row even when nothing is claimed: the count for the metrics */
    "   FROM waiting w LEFT JOIN (claimed o"
    "   JOIN retell.calls c ON c.call_id = o.call_id"
    "   JOIN retell.companies co ON co.id = o.company_id"
    "   JOIN retell.tickets t ON t.id = o.ticket_id"
    "   LEFT JOIN retell.customers cu ON cu.id = c.customer_id) ON true";


/*
 * "partial": sent to some, a 4xx to the others ($9, "a,b"): the row stays
 * pending for them alone, with backoff, within the attempt limit
 */

static const char  ngx_http_retell_record_sql[] =
    "UPDATE retell.email_outbox"
    "   SET status = CASE WHEN $4 = 'sent' THEN 'sent'"
    "                     WHEN $4 = 'permanent' OR attempts >= $6::int"
    "                     THEN 'failed' ELSE 'pending' END,"
    "       sent_at = CASE WHEN $4 = 'sent' THEN now() END,"
    "       next_attempt_at = CASE WHEN $4 IN ('temporary', 'partial')"
    "           THEN now() + least(power(2, attempts - 1) * $7::bigint,"
    "                              86400000) * interval '1 ms'"
    "           ELSE now() END,"
    "       pending_recipients = CASE WHEN $4 = 'partial'"
    "                                 THEN string_to_array($9, ',')"
    "                                 WHEN $4 = 'sent' THEN NULL"
    "                                 ELSE pending_recipients END,"
    "       last_error = $5, subject = $2, body = $3"
    " WHERE id = $1::bigint AND status = 'sending'"
    "   AND lease_token = $8::bigint"
    " RETURNING status, attempts";

typedef enum {
    NGX_HTTP_RETELL_RECORD_ID = 0,
    NGX_HTTP_RETELL_RECORD_SUBJECT,
    NGX_HTTP_RETELL_RECORD_BODY,
    NGX_HTTP_RETELL_RECORD_OUTCOME,
    NGX_HTTP_RETELL_RECORD_ERROR,
    NGX_HTTP_RETELL_RECORD_MAX_ATTEMPTS,
    NGX_HTTP_RETELL_RECORD_BACKOFF,
    NGX_HTTP_RETELL_RECORD_TOKEN,
    NGX_HTTP_RETELL_RECORD_RETRY,
    NGX_HTTP_RETELL_RECORD_PARAMS
} ngx_http_retell_record_param_e;


/* the record's answer: RETURNING status, attempts */

typedef enum {
    NGX_HTTP_RETELL_RECORDED_STATUS = 0,
    NGX_HTTP_RETELL_RECORDED_ATTEMPTS
} ngx_http_retell_recorded_column_e;




ngx_int_t
ngx_http_retell_outbox_init(ngx_cycle_t *cycle,
    ngx_http_retell_main_conf_t *rmcf)
{
    ngx_http_retell_outbox_t  *ob;

    ob = ngx_pcalloc(cycle->pool, sizeof(ngx_http_retell_outbox_t));
    if (ob == NULL) {
        return NGX_ERROR;
    }

    ob->rmcf = rmcf;

    /* its own log, whose action says which stage the job is in */
    ob->job_log = *cycle->log;
    ob->log = &ob->job_log;

    /*
     * a dead worker's row is free again within one lease: two step
     * timeouts, so that renewals are never the slow part, within bounds
     */

    ob->lease = ngx_max(2 * rmcf->smtp.timeout,
                        NGX_HTTP_RETELL_OUTBOX_LEASE_MIN);
    ob->lease = ngx_min(ob->lease, NGX_HTTP_RETELL_OUTBOX_LEASE_MAX);

    ob->sweep.handler = ngx_http_retell_outbox_sweep;
    ob->sweep.data = ob;
    ob->sweep.log = cycle->log;
    ob->sweep.cancelable = 1;     /* never holds a worker's shutdown */

    ob->retry_record.handler = ngx_http_retell_outbox_retry_record;
    ob->retry_record.data = ob;
    ob->retry_record.log = cycle->log;

    ngx_http_retell_outbox_lease_init(ob, cycle->log);

    /* rows left over from before a restart go out shortly */
    ngx_add_timer(&ob->sweep, 100 + ngx_random() % 400);

    ngx_http_retell_outbox = ob;

    return NGX_OK;
}


void
ngx_http_retell_outbox_kick(void)
{
    ngx_http_retell_outbox_t  *ob;

    ob = ngx_http_retell_outbox;

    if (ob == NULL) {
        return;                   /* no retell_smtp_server: rows wait */
    }

    if (ob->busy) {
        ob->again = 1;
        return;
    }

    ngx_http_retell_outbox_claim(ob);
}


static void
ngx_http_retell_outbox_sweep(ngx_event_t *ev)
{
    ngx_http_retell_outbox_t  *ob;

    ob = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_retell_outbox_kick();

    ngx_add_timer(&ob->sweep, ngx_min(ob->rmcf->smtp_backoff,
                                      NGX_HTTP_RETELL_OUTBOX_SWEEP));
}


static void
ngx_http_retell_outbox_claim(ngx_http_retell_outbox_t *ob)
{
    u_char     *lease;
    ngx_int_t   rc;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_retell_outbox_stage(ob, "claiming an outbox row");
    ngx_http_retell_metrics_outbox_poll();

    ob->pool = ngx_create_pool(4096, ob->log);
    if (ob->pool == NULL) {
        return;
    }

    ob->busy = 1;
    ob->again = 0;
    ob->record_tries = 0;

    lease = ngx_pnalloc(ob->pool, 2 * (NGX_INT64_LEN + 1));
    ob->values = ngx_pcalloc(ob->pool,
                             NGX_HTTP_RETELL_RECORD_PARAMS * sizeof(char *));

    if (lease == NULL || ob->values == NULL) {
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    ob->values[0] = (char *) lease;
    lease = ngx_sprintf(lease, "%M", ob->lease);
    *lease++ = '\0';
    ob->values[1] = (char *) lease;
    *ngx_sprintf(lease, "%ui", ob->rmcf->smtp_max_attempts) = '\0';

    /* the lease runs from no earlier than this */
    ob->renew_sent = ngx_current_msec;

    /* not idempotent: a claim repeated would lease a second row */

    rc = ngx_http_retell_outbox_query(ob, ngx_http_retell_claim_sql, 2, 0,
                                      ngx_http_retell_outbox_claimed);

    if (rc != NGX_OK) {
        /* the sweep tries again */
        ngx_http_retell_outbox_finish(ob);
    }
}


static void
ngx_http_retell_outbox_claimed(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_int_t                          rc, due;
    ngx_http_retell_smtp_t            *s;
    ngx_http_retell_outbox_t          *ob;
    ngx_http_retell_outbox_message_t   message;

    ob = op->data;

    if (error || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQnfields(res) != NGX_HTTP_RETELL_CLAIM_FIELDS)
    {
        ngx_log_error(NGX_LOG_ERR, ob->log, 0,
                      "retell outbox: claim failed: %s",
                      error ? error : PQresultErrorMessage(res));
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    if (PQntuples(res) != 1) {
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    due = ngx_atoi((u_char *) PQgetvalue(res, 0, NGX_HTTP_RETELL_CLAIM_DUE),
                   PQgetlength(res, 0, NGX_HTTP_RETELL_CLAIM_DUE));

    if (due != NGX_ERROR) {
        ngx_http_retell_metrics_outbox_due((ngx_atomic_uint_t) due);
    }

    if (PQgetisnull(res, 0, NGX_HTTP_RETELL_CLAIM_ID)) {
        /* nothing due, or only rows other workers are claiming */
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    ob->id = ngx_http_retell_outbox_copy(ob->pool, res,
                                         NGX_HTTP_RETELL_CLAIM_ID);
    ob->token = ngx_http_retell_outbox_copy(ob->pool, res,
                                            NGX_HTTP_RETELL_CLAIM_TOKEN);

    if (ob->id.data == NULL || ob->token.data == NULL) {
        /* the lease runs out and the row is tried again */
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    rc = ngx_http_retell_outbox_compose(ob, res, &message);

    if (rc == NGX_DECLINED) {
        /* recorded, so a row that cannot be sent to anyone does not loop */
        ngx_http_retell_outbox_fail(ob, NGX_HTTP_RETELL_SMTP_PERMANENT,
                                    "no valid recipient");
        return;
    }

    if (rc != NGX_OK) {
        /* out of memory: nothing wrong with the row */
        ngx_http_retell_outbox_fail(ob, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                    "the message cannot be composed");
        return;
    }

    if (ngx_http_retell_outbox_lease_held(ob) != NGX_OK) {
        /*
         * the claim was answered so late (queued behind deliveries, a
         * slow server) that the session could not finish a margin before
         * the lease ends: none is started, the attempt is retried
         */
        ngx_http_retell_outbox_fail(ob, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                    "the claim came back with too little "
                                    "of its lease left");
        return;
    }

    /* the message to the session; its outcome comes back to _sent() */

    s = ngx_pcalloc(ob->pool, sizeof(ngx_http_retell_smtp_t));
    if (s == NULL) {
        ngx_http_retell_outbox_fail(ob, NGX_HTTP_RETELL_SMTP_TEMPORARY,
                                    "out of memory");
        return;
    }

    s->pool = ob->pool;
    s->log = ob->log;
    s->conf = &ob->rmcf->smtp;
    s->from = ob->rmcf->smtp_from;
    s->data = message.data;
    s->rcpt = message.rcpt;
    s->nrcpt = message.nrcpt;
    s->handler = ngx_http_retell_outbox_sent;
    s->handler_data = ob;

    ob->smtp = s;

    ngx_http_retell_outbox_stage(ob, "sending an outbox email");

    ob->session_start = ngx_current_msec;
    ngx_http_retell_smtp_send(s);
}


static void
ngx_http_retell_outbox_sent(ngx_http_retell_smtp_t *s)
{
    ngx_http_retell_outbox_t  *ob;

    ob = s->handler_data;

    ngx_http_retell_outbox_lease_stop(ob);

    ob->result = s->result;
    ob->error = s->error;
    ob->rejected = s->rejected;

    ngx_http_retell_metrics_smtp_session(ngx_current_msec - ob->session_start);

    switch (s->result) {

    case NGX_HTTP_RETELL_SMTP_SENT:
        if (s->nretry
            && ngx_http_retell_outbox_retry_list(ob, s) == NGX_OK)
        {
            ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                          "retell outbox %V (call \"%V\"): sent to %ui of "
                          "%ui recipients, %ui to retry: %V", &ob->id,
                          &ob->call_id, s->accepted, s->nrcpt, s->nretry,
                          &s->rejected);
            break;
        }

        ngx_log_error(NGX_LOG_INFO, ob->log, 0,
                      "retell outbox %V (call \"%V\"): sent to %ui of %ui "
                      "recipients", &ob->id, &ob->call_id, s->accepted,
                      s->nrcpt);
        break;

    case NGX_HTTP_RETELL_SMTP_TEMPORARY:
        ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                      "retell outbox %V (call \"%V\"): not sent, will "
                      "retry: %V", &ob->id, &ob->call_id, &s->error);
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, ob->log, 0,
                      "retell outbox %V (call \"%V\"): refused: %V",
                      &ob->id, &ob->call_id, &s->error);
        break;
    }

    ngx_http_retell_outbox_record(ob);
}


/*
 * ob->retry: the recipients refused with a 4xx, "a,b", as the claim
 * lists them; NGX_ERROR when it cannot be made (then the row is recorded
 * sent, as before this list existed, rather than sent twice)
 */

static ngx_int_t
ngx_http_retell_outbox_retry_list(ngx_http_retell_outbox_t *ob,
    ngx_http_retell_smtp_t *s)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    len = 0;

    for (i = 0; i < s->nretry; i++) {
        len += s->retry[i].len + 1;
    }

    p = ngx_pnalloc(ob->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ob->retry.data = p;

    for (i = 0; i < s->nretry; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, s->retry[i].data, s->retry[i].len);
    }

    ob->retry.len = p - ob->retry.data;

    return NGX_OK;
}


static void
ngx_http_retell_outbox_record(ngx_http_retell_outbox_t *ob)
{
    u_char       *p;
    const char  **v;

    ngx_http_retell_outbox_stage(ob, "recording an outbox email's outcome");

    v = ob->values;

    v[NGX_HTTP_RETELL_RECORD_ID] = (char *) ob->id.data;
    v[NGX_HTTP_RETELL_RECORD_SUBJECT] =
        ob->subject.len ? ngx_http_retell_outbox_cstr(ob->pool, &ob->subject)
                        : NULL;
    v[NGX_HTTP_RETELL_RECORD_BODY] =
        ob->text.len ? ngx_http_retell_outbox_cstr(ob->pool, &ob->text)
                     : NULL;
    v[NGX_HTTP_RETELL_RECORD_TOKEN] = (char *) ob->token.data;
    v[NGX_HTTP_RETELL_RECORD_RETRY] = NULL;

    switch (ob->result) {

    case NGX_HTTP_RETELL_SMTP_SENT:
        if (ob->retry.len) {
            v[NGX_HTTP_RETELL_RECORD_OUTCOME] = "partial";
            v[NGX_HTTP_RETELL_RECORD_RETRY] =
                ngx_http_retell_outbox_cstr(ob->pool, &ob->retry);

        } else {
            v[NGX_HTTP_RETELL_RECORD_OUTCOME] = "sent";
        }

        /* the recipients refused along the way, if any */
        v[NGX_HTTP_RETELL_RECORD_ERROR] =
            ob->rejected.len
            ? ngx_http_retell_outbox_cstr(ob->pool, &ob->rejected) : NULL;
        break;

    case NGX_HTTP_RETELL_SMTP_TEMPORARY:
        v[NGX_HTTP_RETELL_RECORD_OUTCOME] = "temporary";
        v[NGX_HTTP_RETELL_RECORD_ERROR] =
            ngx_http_retell_outbox_cstr(ob->pool, &ob->error);
        break;

    default:
        v[NGX_HTTP_RETELL_RECORD_OUTCOME] = "permanent";
        v[NGX_HTTP_RETELL_RECORD_ERROR] =
            ngx_http_retell_outbox_cstr(ob->pool, &ob->error);
        break;
    }

    p = ngx_pnalloc(ob->pool, 2 * (NGX_INT64_LEN + 1));
    if (p == NULL) {
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    v[NGX_HTTP_RETELL_RECORD_MAX_ATTEMPTS] = (char *) p;
    p = ngx_sprintf(p, "%ui", ob->rmcf->smtp_max_attempts);
    *p++ = '\0';
    v[NGX_HTTP_RETELL_RECORD_BACKOFF] = (char *) p;
    *ngx_sprintf(p, "%M", ob->rmcf->smtp_backoff) = '\0';

    /* idempotent: it matches only a row still "sending" */

    if (ngx_http_retell_outbox_query(ob, ngx_http_retell_record_sql,
                                     NGX_HTTP_RETELL_RECORD_PARAMS, 1,
                                     ngx_http_retell_outbox_recorded)
        != NGX_OK)
    {
        ngx_http_retell_outbox_recorded(&ob->op, NULL, "unreachable");
    }
}


static void
ngx_http_retell_outbox_recorded(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    char                      *status;
    ngx_uint_t                 email;
    ngx_http_retell_outbox_t  *ob;

    ob = op->data;

    if (error == NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {

        if (PQntuples(res) == 1) {
            status = PQgetvalue(res, 0, NGX_HTTP_RETELL_RECORDED_STATUS);

            ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ob->log, 0,
                           "retell outbox %V: %s after %s attempts",
                           &ob->id, status,
                           PQgetvalue(res, 0,
                                      NGX_HTTP_RETELL_RECORDED_ATTEMPTS));

            /*
             * counted as the row now stands: a temporary failure at the
             * attempt limit is "failed", as the table says
             */

            email = ngx_strcmp(status, "sent") == 0
                    ? NGX_HTTP_RETELL_EMAIL_SENT
                    : ngx_strcmp(status, "failed") == 0
                      ? NGX_HTTP_RETELL_EMAIL_FAILED
                      : NGX_HTTP_RETELL_EMAIL_DEFERRED;

            ngx_http_retell_metrics_email(email);

            if (email == NGX_HTTP_RETELL_EMAIL_FAILED
                && ob->result != NGX_HTTP_RETELL_SMTP_PERMANENT)
            {
                ngx_log_error(NGX_LOG_ERR, ob->log, 0,
                              "retell outbox %V (call \"%V\"): given up "
                              "after %s attempts", &ob->id, &ob->call_id,
                              PQgetvalue(res, 0,
                                         NGX_HTTP_RETELL_RECORDED_ATTEMPTS));
            }

        } else {
            /* fenced: another worker holds the row now, its word stands */
            ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                          "retell outbox %V (call \"%V\"): lease lost, "
                          "this outcome is not recorded", &ob->id,
                          &ob->call_id);
        }

        /* and the next due row, if any */
        ob->again = 1;
        ngx_http_retell_outbox_finish(ob);
        return;
    }

    /*
     * the message went out (or not) but the row does not say so yet:
     * keep trying, or its lease ends and it may be sent twice
     */

    ngx_log_error(NGX_LOG_ERR, ob->log, 0,
                  "retell outbox %V (call \"%V\"): cannot record the "
                  "outcome: %s", &ob->id, &ob->call_id,
                  error ? error : PQresultErrorMessage(res));

    if (++ob->record_tries < NGX_HTTP_RETELL_OUTBOX_RECORD_TRIES) {
        ngx_add_timer(&ob->retry_record, 1000);
        return;
    }

    ngx_log_error(NGX_LOG_CRIT, ob->log, 0,
                  "retell outbox %V (call \"%V\"): outcome lost, the row "
                  "will be tried again when its lease ends",
                  &ob->id, &ob->call_id);

    ngx_http_retell_outbox_finish(ob);
}


/* the row as it ends without a session: recorded like a session's end */

static void
ngx_http_retell_outbox_fail(ngx_http_retell_outbox_t *ob, ngx_uint_t result,
    const char *error)
{
    ngx_log_error(NGX_LOG_ERR, ob->log, 0,
                  "retell outbox %V (call \"%V\"): not sent: %s",
                  &ob->id, &ob->call_id, error);

    ob->result = result;
    ob->error.data = (u_char *) error;
    ob->error.len = ngx_strlen(error);

    ngx_http_retell_outbox_record(ob);
}




static void
ngx_http_retell_outbox_retry_record(ngx_event_t *ev)
{
    ngx_http_retell_outbox_record(ev->data);
}


/* one statement of the job's, ob->values its parameters */

static ngx_int_t
ngx_http_retell_outbox_query(ngx_http_retell_outbox_t *ob,
    const char *command, int nparams, ngx_uint_t idempotent,
    ngx_http_retell_pg_handler_pt handler)
{
    ngx_memzero(&ob->op, sizeof(ngx_http_retell_pg_op_t));

    ob->op.command = command;
    ob->op.nparams = nparams;
    ob->op.values = ob->values;
    ob->op.timeout = NGX_HTTP_RETELL_OUTBOX_QUERY_TIMEOUT;
    ob->op.handler = handler;
    ob->op.data = ob;
    ob->op.log = ob->log;
    ob->op.idempotent = idempotent;

    return ngx_http_retell_pg_run(ob->rmcf->pool, &ob->op);
}


static void
ngx_http_retell_outbox_finish(ngx_http_retell_outbox_t *ob)
{
    ngx_uint_t  again;

    ngx_http_retell_outbox_stage(ob, "waiting for the next outbox sweep");

    ngx_http_retell_outbox_lease_stop(ob);

    if (ob->retry_record.timer_set) {
        ngx_del_timer(&ob->retry_record);
    }

    if (ob->pool) {
        ngx_destroy_pool(ob->pool);
        ob->pool = NULL;
    }

    ngx_str_null(&ob->id);
    ngx_str_null(&ob->error);
    ngx_str_null(&ob->rejected);
    ngx_str_null(&ob->retry);
    ngx_str_null(&ob->subject);
    ngx_str_null(&ob->text);

    ob->smtp = NULL;
    ob->busy = 0;

    again = ob->again;
    ob->again = 0;

    if (again) {
        ngx_http_retell_outbox_claim(ob);
    }
}


/*
 * The job says where it is: in its log's action and at debug level, with
 * the row it holds, if any
 */

static void
ngx_http_retell_outbox_stage(ngx_http_retell_outbox_t *ob, char *action)
{
    ngx_str_t  none = ngx_string("-");

    ob->job_log.action = action;

    /* the row's id lives in the job's pool */

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ob->log, 0,
                   "retell outbox: %s, row %V", action,
                   (ob->pool && ob->id.len) ? &ob->id : &none);
}
