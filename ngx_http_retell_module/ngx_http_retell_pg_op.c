
/*
 * The pool's ops: what ngx_http_retell_pg.h promises its callers.  An op
 * waits in the queue with its own timer, runs on a connection, and its
 * handler is called once, from a posted event or its timer.
 *
 * Completions are always posted events: an op's handler may finalize a
 * request and free the memory its caller still runs in, so it never runs
 * inside ngx_http_retell_pg_run() or anything run() calls.
 */


#include "ngx_http_retell_pg_conn.h"


static void ngx_http_retell_pg_op_done(ngx_event_t *ev);
static void ngx_http_retell_pg_op_timeout(ngx_event_t *ev);
static ngx_queue_t *ngx_http_retell_pg_behind_urgent(
    ngx_http_retell_pg_pool_t *pool, ngx_uint_t *nurgent);


ngx_int_t
ngx_http_retell_pg_run(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    ngx_uint_t    n;
    ngx_queue_t  *q;

    if (pool->closed) {
        return NGX_DECLINED;
    }

    /*
     * a caller waits on the phone for an urgent op, not a retry: ahead of
     * the others, behind the urgent ones already waiting (first come,
     * first served among them, or the oldest would run out of budget);
     * the deliveries waiting do not count against it, the urgent ones do
     */

    if (op->urgent) {
        q = ngx_http_retell_pg_behind_urgent(pool, &n);
        if (n >= pool->max_waiting) {
            return NGX_BUSY;
        }

    } else if (pool->nwaiting >= pool->max_waiting) {
        return NGX_BUSY;

    } else {
        q = ngx_queue_sentinel(&pool->waiting);
    }

    op->pool = pool;
    op->alone = 0;
    op->timed_out = 0;
    op->attempts = 0;
    op->attempt_start = 0;

    ngx_http_retell_pg_arm(op);

    /* before q: the tail of a list that q would head */
    ngx_queue_insert_tail(q, &op->queue);
    op->waiting = 1;
    pool->nwaiting++;

    /*
     * sent once this cycle of the event loop has read what arrived with
     * it: the deliveries read together share a statement and a commit
     * (a batch), where sending the first at once would leave the others
     * to wait for its answer
     */

    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }

    if (ngx_queue_empty(&pool->idle)) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                       "retell postgres: waiting for a connection, %ui "
                       "waiting", pool->nwaiting);
    }

    return NGX_OK;
}


/*
 * The queue holds the urgent ops, oldest first, then the others: the
 * first op that is not urgent (or the sentinel), and how many are ahead
 */

static ngx_queue_t *
ngx_http_retell_pg_behind_urgent(ngx_http_retell_pg_pool_t *pool,
    ngx_uint_t *nurgent)
{
    ngx_queue_t              *q;
    ngx_http_retell_pg_op_t  *ahead;

    *nurgent = 0;

    for (q = ngx_queue_head(&pool->waiting);
         q != ngx_queue_sentinel(&pool->waiting);
         q = ngx_queue_next(q))
    {
        ahead = ngx_queue_data(q, ngx_http_retell_pg_op_t, queue);

        if (!ahead->urgent) {
            break;
        }

        (*nurgent)++;
    }

    return q;
}


/* the pool's own command, ahead of everything waiting */

void
ngx_http_retell_pg_run_first(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    op->pool = pool;
    op->alone = 0;
    op->urgent = 1;

    ngx_http_retell_pg_arm(op);

    ngx_queue_insert_head(&pool->waiting, &op->queue);
    op->waiting = 1;
    pool->nwaiting++;

    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }
}


/* its timer and its completion event; the op is on its way to a connection */

void
ngx_http_retell_pg_arm(ngx_http_retell_pg_op_t *op)
{
    op->conn = NULL;
    op->batch = NULL;
    op->res = NULL;
    op->error = NULL;
    op->retried = 0;

    op->timer.handler = ngx_http_retell_pg_op_timeout;
    op->timer.data = op;
    op->timer.log = op->log;
    ngx_add_timer(&op->timer, op->timeout);

    op->done.handler = ngx_http_retell_pg_op_done;
    op->done.data = op;
    op->done.log = op->log;
}


void
ngx_http_retell_pg_cancel(ngx_http_retell_pg_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->done.posted) {
        ngx_delete_posted_event(&op->done);
    }

    if (op->res) {
        PQclear(op->res);
        op->res = NULL;
    }

    if (op->waiting) {
        ngx_queue_remove(&op->queue);
        op->waiting = 0;
        op->pool->nwaiting--;
        return;
    }

    if (op->batch) {
        /* the batch goes on without it, or is cancelled with its last */
        ngx_http_retell_pg_batch_leave(op);
        return;
    }

    if (op->conn) {
        /* the command goes on without it: see conn_detach() */
        ngx_http_retell_pg_detach(op->conn);
    }
}


ngx_msec_t
ngx_http_retell_pg_time_left(ngx_http_retell_pg_op_t *op)
{
    ngx_msec_int_t  left;

    if (!op->timer.timer_set) {
        return 0;
    }

    left = (ngx_msec_int_t) (op->timer.timer.key - ngx_current_msec);

    return left > 0 ? (ngx_msec_t) left : 0;
}


/* the op's handler runs from a posted event, see the top of the file */

void
ngx_http_retell_pg_complete(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_http_retell_pg_attempt_end(op);

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    op->conn = NULL;
    op->res = res;
    op->error = NULL;

    if (error) {
        ngx_cpystrn(op->error_text, (u_char *) error,
                    NGX_HTTP_RETELL_PG_ERROR_LEN);
        op->error = (const char *) op->error_text;
    }

    ngx_post_event(&op->done, &ngx_posted_events);
}


/*
 * back in the queue, ahead of its kind (it is older than any of them): an
 * op that is safe to send again whose connection broke, or a member of a
 * batch that failed; a delivery stays behind the urgent ops waiting
 */

void
ngx_http_retell_pg_requeue(ngx_http_retell_pg_op_t *op)
{
    ngx_uint_t                  n;
    ngx_queue_t                *q;
    ngx_http_retell_pg_pool_t  *pool;

    ngx_http_retell_pg_attempt_end(op);

    pool = op->pool;

    op->conn = NULL;

    if (op->urgent) {
        ngx_queue_insert_head(&pool->waiting, &op->queue);

    } else {
        q = ngx_http_retell_pg_behind_urgent(pool, &n);
        ngx_queue_insert_tail(q, &op->queue);
    }

    op->waiting = 1;
    pool->nwaiting++;
}


static void
ngx_http_retell_pg_op_done(ngx_event_t *ev)
{
    PGresult                 *res;
    ngx_http_retell_pg_op_t  *op;

    op = ev->data;

    /* the handler may free the op, and may reuse it for a new command */

    res = op->res;
    op->res = NULL;

    op->handler(op, res, op->error);

    if (res) {
        PQclear(res);
    }
}


static void
ngx_http_retell_pg_op_timeout(ngx_event_t *ev)
{
    const char               *error;
    ngx_http_retell_pg_op_t  *op;

    op = ev->data;

    error = (op->waiting && op->pool->down) ? "unreachable" : "timed out";

    ngx_http_retell_pg_attempt_end(op);

    op->timed_out = 1;
    ngx_http_retell_pg_cancel(op);

    op->handler(op, NULL, error);
}


/* an attempt goes out: the op alone, or as one of batch_size members */

void
ngx_http_retell_pg_attempt_start(ngx_http_retell_pg_op_t *op,
    ngx_uint_t batch_size)
{
    op->attempt_start = ngx_current_msec;
    op->batch_size = batch_size;
}


/* answered, lost, or given up: its time, if one was running */

void
ngx_http_retell_pg_attempt_end(ngx_http_retell_pg_op_t *op)
{
    if (op->attempt_start == 0) {
        return;
    }

    if (op->attempts < NGX_HTTP_RETELL_PG_ATTEMPTS) {
        op->attempt[op->attempts] = ngx_current_msec - op->attempt_start;
    }

    op->attempts++;
    op->attempt_start = 0;
}
