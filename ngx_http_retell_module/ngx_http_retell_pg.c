
/*
 * The PostgreSQL pool of a worker: admission, the wait queue, the circuit
 * breaker and the completion of ops.  The connections themselves, libpq
 * on nginx events, are in ngx_http_retell_pg_conn.c.
 *
 * Completions are always posted events: an op's handler may finalize a
 * request and free the memory its caller still runs in, so it never runs
 * inside ngx_http_retell_pg_run() or anything run() calls.
 *
 * The circuit breaker.  When every host has failed to connect, the pool
 * is "down": it makes one connection attempt at a time (the probe, the
 * half-open state), on a timer, jittered so that workers and hosts do not
 * reconnect in lockstep.  Without deliveries the probe backs off from
 * 250 ms to 8 s.  A delivery is never refused because of that schedule:
 * it waits in the queue within its own budget, and while one waits the
 * next attempt comes 160 to 240 ms after the last failure, so a delivery
 * waiting when PostgreSQL accepts connections again is applied within a
 * quarter of a second, and one whose budget runs out during the outage is
 * answered 503.  Any connection made closes the circuit.
 */


#include "ngx_http_retell_pg_conn.h"


#define NGX_HTTP_RETELL_PG_BACKOFF_MIN    250
#define NGX_HTTP_RETELL_PG_BACKOFF_MAX    8000
#define NGX_HTTP_RETELL_PG_RETRY_MAX      200    /* deliveries waiting */
#define NGX_HTTP_RETELL_PG_WAITING        16     /* statements a connection */
#define NGX_HTTP_RETELL_PG_YIELD_AGE      1000   /* drained before giving way */


static ngx_msec_t ngx_http_retell_pg_hold(ngx_http_retell_pg_pool_t *pool);
static ngx_int_t ngx_http_retell_pg_yield(ngx_http_retell_pg_pool_t *pool);
static void ngx_http_retell_pg_schedule(ngx_http_retell_pg_pool_t *pool);
static ngx_msec_t ngx_http_retell_pg_jitter(ngx_msec_t delay);
static void ngx_http_retell_pg_dispatch_posted(ngx_event_t *ev);
static void ngx_http_retell_pg_probe(ngx_event_t *ev);
static void ngx_http_retell_pg_op_done(ngx_event_t *ev);
static void ngx_http_retell_pg_op_timeout(ngx_event_t *ev);


ngx_http_retell_pg_pool_t *
ngx_http_retell_pg_pool_create(ngx_cycle_t *cycle, ngx_array_t *hosts,
    ngx_uint_t size, ngx_uint_t batch, ngx_msec_t batch_hold,
    ngx_flag_t prepare, ngx_msec_t connect_timeout)
{
    ngx_http_retell_pg_pool_t  *pool;

    /* libpq's socket is registered once, for edge-triggered events */

    if (!(ngx_event_flags & NGX_USE_CLEAR_EVENT)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "retell postgres needs an edge-triggered event "
                      "method (epoll or kqueue)");
        return NULL;
    }

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_retell_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->hosts = hosts->elts;
    pool->nhosts = hosts->nelts;
    pool->max = size;
    pool->batch_max = ngx_min(batch, NGX_HTTP_RETELL_PG_BATCH_MAX);

    /*
     * a delivery is refused at once only when the queue ahead of it is
     * more than 16 statements deep on every connection; a statement
     * carries up to batch_max deliveries
     */

    pool->max_waiting = size * pool->batch_max * NGX_HTTP_RETELL_PG_WAITING;
    pool->batch_hold = batch_hold;
    pool->prepare = prepare ? 1 : 0;
    pool->connect_timeout = connect_timeout;
    pool->log = cycle->log;
    pool->mem = cycle->pool;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);
    ngx_queue_init(&pool->free);
    ngx_queue_init(&pool->all);
    ngx_queue_init(&pool->batches);

    pool->dispatch.handler = ngx_http_retell_pg_dispatch_posted;
    pool->dispatch.data = pool;
    pool->dispatch.log = cycle->log;

    pool->hold.handler = ngx_http_retell_pg_dispatch_posted;
    pool->hold.data = pool;
    pool->hold.log = cycle->log;
    pool->hold.cancelable = 1;

    pool->probe.handler = ngx_http_retell_pg_probe;
    pool->probe.data = pool;
    pool->probe.log = cycle->log;
    pool->probe.cancelable = 1;     /* never holds a worker's exit */

    if (ngx_http_retell_pg_orphans_init(pool) != NGX_OK) {
        return NULL;
    }

    return pool;
}


/* at worker exit: every connection, whatever its state */

void
ngx_http_retell_pg_pool_close(ngx_http_retell_pg_pool_t *pool)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    pool->closed = 1;

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    if (pool->dispatch.posted) {
        ngx_delete_posted_event(&pool->dispatch);
    }

    if (pool->hold.timer_set) {
        ngx_del_timer(&pool->hold);
    }

    while (!ngx_queue_empty(&pool->all)) {
        q = ngx_queue_head(&pool->all);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, all);

        ngx_http_retell_pg_conn_detach(conn);
        ngx_http_retell_pg_conn_close(conn);
    }
}


ngx_int_t
ngx_http_retell_pg_run(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    if (pool->closed) {
        return NGX_DECLINED;
    }

    if (pool->nwaiting >= pool->max_waiting) {
        return NGX_BUSY;
    }

    op->pool = pool;
    op->alone = 0;

    ngx_http_retell_pg_arm(op);

    ngx_queue_insert_tail(&pool->waiting, &op->queue);
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


/* the pool's own command, ahead of the deliveries */

void
ngx_http_retell_pg_run_first(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    op->pool = pool;
    op->alone = 0;

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
        ngx_http_retell_pg_conn_detach(op->conn);
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


static void
ngx_http_retell_pg_dispatch_posted(ngx_event_t *ev)
{
    ngx_http_retell_pg_dispatch(ev->data);
}


void
ngx_http_retell_pg_dispatch(ngx_http_retell_pg_pool_t *pool)
{
    ngx_int_t                   rc;
    ngx_msec_t                  hold;
    ngx_queue_t                *q;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_conn_t  *conn;

    while (!ngx_queue_empty(&pool->waiting)) {

        hold = ngx_http_retell_pg_hold(pool);

        if (hold) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                           "retell postgres: %ui waiting for the statement "
                           "in flight, up to %M ms", pool->nwaiting, hold);

            if (!pool->hold.timer_set) {
                ngx_add_timer(&pool->hold, hold);
            }

            return;
        }

        /* an idle connection that is still alive */

        conn = ngx_http_retell_pg_conn_take(pool);
        if (conn == NULL) {
            break;
        }

        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_retell_pg_op_t, queue);
        ngx_queue_remove(q);
        op->waiting = 0;
        pool->nwaiting--;

        if (ngx_http_retell_pg_may_batch(op) && pool->batch_max > 1) {
            /* with those that wait behind it, if any */
            op = ngx_http_retell_pg_batch(pool, op);
        }

        ngx_http_retell_pg_conn_send(conn, op);
    }

    if (pool->hold.timer_set) {
        ngx_del_timer(&pool->hold);
    }

    if (pool->nwaiting == 0 || pool->closed) {
        return;
    }

    if (pool->down) {
        /* half-open: one attempt at a time, on the probe's schedule */
        ngx_http_retell_pg_schedule(pool);
        return;
    }

    /*
     * one new connection for each op no connection in progress will take;
     * in a full pool, a connection draining a cancelled command gives way
     */

    while (pool->connecting < pool->nwaiting && !pool->down) {

        if (pool->count >= pool->max
            && ngx_http_retell_pg_yield(pool) != NGX_OK)
        {
            break;
        }

        rc = ngx_http_retell_pg_conn_open(pool);

        if (rc == NGX_DECLINED) {
            /*
             * failed inside PQconnectStart() (a Unix socket, a route, a
             * refused bind): the next host at once, until every host
             * has failed and the circuit opens
             */
            continue;
        }

        if (rc != NGX_OK) {
            /* out of memory or worker_connections: try again soon */
            if (!pool->probe.timer_set) {
                ngx_add_timer(&pool->probe, NGX_HTTP_RETELL_PG_BACKOFF_MIN);
            }

            break;
        }
    }
}


/*
 * A statement in flight for less than retell_postgres_batch_hold is about
 * to be answered: the deliveries that arrive meanwhile wait for it, and go
 * together in the next statement on its connection, rather than one or
 * two at a time on another, each statement paying for its own commit.
 * Half a batch waiting goes at once; a statement that runs longer (a row
 * lock, a slow server) holds nothing back.  Returns how long to wait.
 */

static ngx_msec_t
ngx_http_retell_pg_hold(ngx_http_retell_pg_pool_t *pool)
{
    ngx_msec_t                  age, wait;
    ngx_queue_t                *q;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_conn_t  *conn;

    if (pool->batch_hold == 0 || pool->nwaiting * 2 >= pool->batch_max) {
        return 0;
    }

    q = ngx_queue_head(&pool->waiting);
    op = ngx_queue_data(q, ngx_http_retell_pg_op_t, queue);

    if (!ngx_http_retell_pg_may_batch(op)) {
        return 0;
    }

    wait = 0;

    for (q = ngx_queue_head(&pool->all);
         q != ngx_queue_sentinel(&pool->all);
         q = ngx_queue_next(q))
    {
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, all);

        if (conn->op == NULL
            || (conn->state != NGX_HTTP_RETELL_PG_SENDING
                && conn->state != NGX_HTTP_RETELL_PG_READING))
        {
            continue;
        }

        age = ngx_current_msec - conn->sent;

        if (age < pool->batch_hold
            && (wait == 0 || pool->batch_hold - age < wait))
        {
            wait = pool->batch_hold - age;
        }
    }

    return wait;
}


/*
 * Ops wait, none of the connections is idle and the pool is full: the
 * one that has been draining a cancelled command the longest gives way,
 * so that a new connection, maybe to another address, can be opened
 * within the pool's bound.  An answer that has not come may never come
 * (a host gone without closing its connections, a hung proxy), and a
 * connection that waits for it would hold its slot for the whole drain
 * timeout.  It gives way only after a second of draining (most answers
 * come sooner) and only while its backend can be asked to stop: see
 * ngx_http_retell_pg_orphan.c.
 */

static ngx_int_t
ngx_http_retell_pg_yield(ngx_http_retell_pg_pool_t *pool)
{
    ngx_msec_t                  age;
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn, *oldest;

    oldest = NULL;

    for (q = ngx_queue_head(&pool->all);
         q != ngx_queue_sentinel(&pool->all);
         q = ngx_queue_next(q))
    {
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, all);

        if (conn->op == NULL
            && (conn->state == NGX_HTTP_RETELL_PG_SENDING
                || conn->state == NGX_HTTP_RETELL_PG_DRAINING)
            && (oldest == NULL
                || (ngx_msec_int_t) (conn->detached - oldest->detached) < 0))
        {
            oldest = conn;
        }
    }

    if (oldest == NULL || !ngx_http_retell_pg_orphans_room(pool)) {
        /* a cancel that completes dispatches again */
        return NGX_DECLINED;
    }

    age = ngx_current_msec - oldest->detached;

    if (age < NGX_HTTP_RETELL_PG_YIELD_AGE) {
        /* its answer may still come; the probe dispatches again then */

        age = NGX_HTTP_RETELL_PG_YIELD_AGE - age;

        if (!pool->probe.timer_set
            || (ngx_msec_int_t) (pool->probe.timer.key
                                 - (ngx_current_msec + age)) > 0)
        {
            ngx_add_timer(&pool->probe, age);
        }

        return NGX_DECLINED;
    }

    /*
     * conn_close() deletes the drain timer and the socket's events: the
     * record goes to pool->free, and conn_open() may reuse it at once
     */

    return ngx_http_retell_pg_conn_abandon(oldest, "for a waiting delivery");
}


/* the op's handler runs from a posted event, see the top of the file */

void
ngx_http_retell_pg_complete(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
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
 * back at the head of the queue: an op that is safe to send again whose
 * connection broke, or a member of a batch that failed
 */

void
ngx_http_retell_pg_requeue(ngx_http_retell_pg_op_t *op)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = op->pool;

    op->conn = NULL;

    ngx_queue_insert_head(&pool->waiting, &op->queue);
    op->waiting = 1;
    pool->nwaiting++;
}


void
ngx_http_retell_pg_host_up(ngx_http_retell_pg_pool_t *pool, ngx_uint_t host)
{
    pool->host = host;
    pool->failures = 0;

    if (!pool->down) {
        return;
    }

    pool->down = 0;
    pool->backoff = 0;

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                  "retell postgres is reachable again");
}


/*
 * A connection attempt failed or timed out: the next host is tried at
 * once; when every host has failed in a row the circuit opens
 */

void
ngx_http_retell_pg_host_failed(ngx_http_retell_pg_pool_t *pool,
    ngx_uint_t host)
{
    if (host != pool->host) {
        /* an attempt at a host the pool has already moved away from */
        return;
    }

    pool->host = (host + 1) % pool->nhosts;

    if (++pool->failures < pool->nhosts) {

        if (pool->down) {
            /* the probe goes on with the next host at once */
            pool->next_probe = ngx_current_msec;
            pool->next_retry = ngx_current_msec;
            ngx_http_retell_pg_schedule(pool);
        }

        return;
    }

    pool->failures = 0;

    pool->backoff = pool->down
                    ? ngx_min(pool->backoff * 2, NGX_HTTP_RETELL_PG_BACKOFF_MAX)
                    : NGX_HTTP_RETELL_PG_BACKOFF_MIN;

    if (!pool->down) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "retell postgres unreachable, retrying in the "
                      "background");
    }

    pool->down = 1;

    pool->next_probe = ngx_current_msec
                       + ngx_http_retell_pg_jitter(pool->backoff);
    pool->next_retry = ngx_current_msec
                       + ngx_http_retell_pg_jitter(
                             ngx_min(pool->backoff,
                                     NGX_HTTP_RETELL_PG_RETRY_MAX));

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    ngx_http_retell_pg_schedule(pool);
}


/* the next attempt while down: sooner when deliveries wait for it */

static void
ngx_http_retell_pg_schedule(ngx_http_retell_pg_pool_t *pool)
{
    ngx_msec_t      when;
    ngx_msec_int_t  delay;

    if (pool->connecting || pool->closed) {
        return;                     /* an attempt is in flight */
    }

    when = pool->next_probe;

    if (pool->nwaiting
        && (ngx_msec_int_t) (pool->next_retry - when) < 0)
    {
        when = pool->next_retry;
    }

    delay = (ngx_msec_int_t) (when - ngx_current_msec);

    if (pool->probe.timer_set
        && (ngx_msec_int_t) (pool->probe.timer.key - when) <= 0)
    {
        return;                     /* due as soon already */
    }

    /*
     * even when it is due now, from the timer: run() may be on the
     * stack, and a failing attempt must not loop
     */

    ngx_add_timer(&pool->probe, delay > 0 ? (ngx_msec_t) delay : 1);
}


/* 80% to 120% of the delay */

static ngx_msec_t
ngx_http_retell_pg_jitter(ngx_msec_t delay)
{
    return delay - delay / 5 + (ngx_msec_t) ngx_random() % (delay * 2 / 5 + 1);
}


static void
ngx_http_retell_pg_probe(ngx_event_t *ev)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = ev->data;

    /* an exiting worker still tries for the deliveries it holds */

    if (pool->closed || ngx_terminate
        || ((ngx_exiting || ngx_quit) && pool->nwaiting == 0))
    {
        return;
    }

    if (!pool->down) {
        /*
         * a draining connection may give way now, or again after a
         * failure of this worker's own (memory, worker_connections)
         */
        ngx_http_retell_pg_dispatch(pool);
        return;
    }

    if (pool->connecting || pool->count >= pool->max) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "retell postgres: probe");

    (void) ngx_http_retell_pg_conn_open(pool);
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

    ngx_http_retell_pg_cancel(op);

    op->handler(op, NULL, error);
}
