
/*
 * The lease of the outbox row a worker is sending: renewed while the
 * SMTP session runs, fenced by the row's lease_token, and the session
 * ended a margin before a lease that could not be renewed runs out, so
 * that no other worker or host takes the row while it is being sent.
 */


#include "ngx_http_retell_outbox.h"


/* renewed three times a lease; the session ends a quarter before it */
#define NGX_HTTP_RETELL_OUTBOX_RENEW(ob)   ((ob)->lease / 3)
#define NGX_HTTP_RETELL_OUTBOX_MARGIN(ob)  ((ob)->lease / 4)


static void ngx_http_retell_outbox_renew(ngx_event_t *ev);
static void ngx_http_retell_outbox_renewed(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static void ngx_http_retell_outbox_lease_end(ngx_event_t *ev);


static const char  ngx_http_retell_renew_sql[] =
    "UPDATE retell.email_outbox"
    "   SET next_attempt_at = now() + $3::bigint * interval '1 ms'"
    " WHERE id = $1::bigint AND status = 'sending'"
    "   AND lease_token = $2::bigint"
    " RETURNING id";

typedef enum {
    NGX_HTTP_RETELL_RENEW_ID = 0,           /* $1 */
    NGX_HTTP_RETELL_RENEW_TOKEN,            /* $2, the fence */
    NGX_HTTP_RETELL_RENEW_LEASE,            /* $3, ms */
    NGX_HTTP_RETELL_RENEW_PARAMS
} ngx_http_retell_renew_param_e;


void
ngx_http_retell_outbox_lease_init(ngx_http_retell_outbox_t *ob,
    ngx_log_t *log)
{
    ob->renew.handler = ngx_http_retell_outbox_renew;
    ob->renew.data = ob;
    ob->renew.log = log;
    ob->renew.cancelable = 1;     /* the session's own timers hold exit */

    ob->lease_end.handler = ngx_http_retell_outbox_lease_end;
    ob->lease_end.data = ob;
    ob->lease_end.log = log;
}


static void
ngx_http_retell_outbox_renew(ngx_event_t *ev)
{
    u_char                    *p;
    ngx_http_retell_outbox_t  *ob;

    ob = ev->data;

    if (ob->smtp == NULL || ob->smtp->done) {
        return;
    }

    p = ngx_pnalloc(ob->pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        ngx_add_timer(&ob->renew, NGX_HTTP_RETELL_OUTBOX_RENEW(ob));
        return;
    }

    *ngx_sprintf(p, "%M", ob->lease) = '\0';

    ob->renew_values[NGX_HTTP_RETELL_RENEW_ID] = (char *) ob->id.data;
    ob->renew_values[NGX_HTTP_RETELL_RENEW_TOKEN] = (char *) ob->token.data;
    ob->renew_values[NGX_HTTP_RETELL_RENEW_LEASE] = (char *) p;

    ngx_memzero(&ob->renew_op, sizeof(ngx_http_retell_pg_op_t));

    ob->renew_op.command = ngx_http_retell_renew_sql;
    ob->renew_op.nparams = NGX_HTTP_RETELL_RENEW_PARAMS;
    ob->renew_op.values = ob->renew_values;
    ob->renew_op.timeout = NGX_HTTP_RETELL_OUTBOX_RENEW(ob);
    ob->renew_op.handler = ngx_http_retell_outbox_renewed;
    ob->renew_op.data = ob;
    ob->renew_op.log = ob->log;
    ob->renew_op.idempotent = 1;

    ob->renew_sent = ngx_current_msec;

    if (ngx_http_retell_pg_run(ob->rmcf->pool, &ob->renew_op) != NGX_OK) {
        ngx_add_timer(&ob->renew, NGX_HTTP_RETELL_OUTBOX_RENEW(ob));
        return;
    }

    ob->renewing = 1;
}


static void
ngx_http_retell_outbox_renewed(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_http_retell_outbox_t  *ob;

    ob = op->data;
    ob->renewing = 0;

    if (error || PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* the lease_end timer ends the session if this goes on */
        ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                      "retell outbox %V (call \"%V\"): cannot renew the "
                      "lease: %s", &ob->id, &ob->call_id,
                      error ? error : PQresultErrorMessage(res));

        ngx_add_timer(&ob->renew, NGX_HTTP_RETELL_OUTBOX_RENEW(ob) / 4);
        return;
    }

    if (PQntuples(res) == 0) {
        ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                      "retell outbox %V (call \"%V\"): lease lost while "
                      "sending", &ob->id, &ob->call_id);

        if (!ob->smtp->committing) {
            ngx_http_retell_smtp_abort(ob->smtp, "lease lost");
        }

        return;
    }

    if (ngx_http_retell_outbox_lease_held(ob) != NGX_OK) {
        /* renewed too late to hold it for a margin more */
        ngx_http_retell_outbox_lease_end(&ob->lease_end);
    }
}


/*
 * The lease is held for one lease from when the claim or the last renewal
 * left: renewed while the session runs, and the session ends a margin
 * before it could run out.  Signed: an answer that took longer than the
 * lease less the margin leaves no time, NGX_DECLINED.
 */

ngx_int_t
ngx_http_retell_outbox_lease_held(ngx_http_retell_outbox_t *ob)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (ob->lease - NGX_HTTP_RETELL_OUTBOX_MARGIN(ob))
           - (ngx_msec_int_t) (ngx_current_msec - ob->renew_sent);

    if (left <= 0) {
        return NGX_DECLINED;
    }

    ngx_add_timer(&ob->renew, NGX_HTTP_RETELL_OUTBOX_RENEW(ob));
    ngx_add_timer(&ob->lease_end, (ngx_msec_t) left);

    return NGX_OK;
}


/* the lease could not be renewed in time: end before another takes it */

static void
ngx_http_retell_outbox_lease_end(ngx_event_t *ev)
{
    ngx_http_retell_outbox_t  *ob;

    ob = ev->data;

    if (ob->smtp && !ob->smtp->done) {
        ngx_log_error(NGX_LOG_WARN, ob->log, 0,
                      "retell outbox %V (call \"%V\"): the lease could not "
                      "be renewed, ending the session", &ob->id,
                      &ob->call_id);

        ngx_http_retell_smtp_abort(ob->smtp, "lease not renewed");
    }
}


void
ngx_http_retell_outbox_lease_stop(ngx_http_retell_outbox_t *ob)
{
    if (ob->renew.timer_set) {
        ngx_del_timer(&ob->renew);
    }

    if (ob->lease_end.timer_set) {
        ngx_del_timer(&ob->lease_end);
    }

    if (ob->renewing) {
        ngx_http_retell_pg_cancel(&ob->renew_op);
        ob->renewing = 0;
    }
}
