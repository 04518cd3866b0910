
/*
 * The PostgreSQL pool of a worker: its connections and its wait queue.
 * It opens connections, keeps the idle ones, and decides what follows
 * whatever a connection reports through ngx_http_retell_pg_release()
 * (the retry rule, keeping or closing, giving way); it dispatches waiting
 * ops to connections, alone or in batches.  The connections themselves,
 * libpq on nginx events, are in ngx_http_retell_pg_conn.c; the ops API in
 * ngx_http_retell_pg_op.c; host failover and the circuit breaker in
 * ngx_http_retell_pg_breaker.c.
 */


#include "ngx_http_retell_pg_conn.h"


#define NGX_HTTP_RETELL_PG_WAITING        16     /* statements a connection */
#define NGX_HTTP_RETELL_PG_AGAIN          250    /* after a failure of ours */
#define NGX_HTTP_RETELL_PG_YIELD_AGE      1000   /* drained before giving way */
#define NGX_HTTP_RETELL_PG_IDLE_TIMEOUT   60000
#define NGX_HTTP_RETELL_PG_MAX_REQUESTS   10000
#define NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT  30000

/* libpq keeps its largest output buffer until PQfinish(): past this, close */
#define NGX_HTTP_RETELL_PG_LARGE          (1024 * 1024)


static ngx_http_retell_pg_conn_t *ngx_http_retell_pg_take(
    ngx_http_retell_pg_pool_t *pool);
static void ngx_http_retell_pg_answered(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_lost(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_keep_or_close(ngx_http_retell_pg_conn_t *conn,
    ngx_uint_t stale);
static void ngx_http_retell_pg_stuck(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_shutdown(ngx_http_retell_pg_conn_t *conn);
static ngx_msec_t ngx_http_retell_pg_hold(ngx_http_retell_pg_pool_t *pool);
static ngx_int_t ngx_http_retell_pg_yield(ngx_http_retell_pg_pool_t *pool);
static void ngx_http_retell_pg_dispatch_posted(ngx_event_t *ev);


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

        ngx_http_retell_pg_conn_detach(conn, NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);
        ngx_http_retell_pg_close(conn);
    }
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

        conn = ngx_http_retell_pg_take(pool);
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

        if (op->size > NGX_HTTP_RETELL_PG_LARGE) {
            conn->large = 1;
        }

        /* a batch's members are timed as it formed */
        ngx_http_retell_pg_attempt_start(op, 1);

        if (op->batchable) {
            /* a delivery alone; a batch counts itself as it forms */
            ngx_http_retell_metrics_batch(1);
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

        rc = ngx_http_retell_pg_open(pool);

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
                ngx_add_timer(&pool->probe, NGX_HTTP_RETELL_PG_AGAIN);
            }

            break;
        }
    }
}


/*
 * The pool's connections: it opens them, keeps the idle ones, and decides
 * what follows whatever a connection reports (ngx_http_retell_pg_release):
 * the retry rule, the host failover, keeping or closing.
 */

void
ngx_http_retell_pg_stats(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_stats_t *stats)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    ngx_memzero(stats, sizeof(ngx_http_retell_pg_stats_t));

    for (q = ngx_queue_head(&pool->all);
         q != ngx_queue_sentinel(&pool->all);
         q = ngx_queue_next(q))
    {
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, all);
        stats->connections[conn->state]++;
    }

    stats->waiting = pool->nwaiting;
    stats->down = pool->down;
}


ngx_int_t
ngx_http_retell_pg_open(ngx_http_retell_pg_pool_t *pool)
{
    ngx_int_t                   rc;
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    if (!ngx_queue_empty(&pool->free)) {
        q = ngx_queue_head(&pool->free);
        ngx_queue_remove(q);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_memzero(conn, sizeof(ngx_http_retell_pg_conn_t));

    } else {
        conn = ngx_pcalloc(pool->mem, sizeof(ngx_http_retell_pg_conn_t));
        if (conn == NULL) {
            return NGX_ERROR;
        }
    }

    conn->pool = pool;
    conn->host = pool->host;

    rc = ngx_http_retell_pg_conn_connect(conn,
                                         (char *) pool->hosts[conn->host].data,
                                         pool->connect_timeout);

    if (rc != NGX_OK) {
        ngx_queue_insert_head(&pool->free, &conn->queue);

        if (rc == NGX_DECLINED) {
            /* libpq failed at once: the next host */
            ngx_http_retell_pg_host_failed(pool, pool->host);
        }

        /* NGX_ERROR: memory or worker_connections, not the host's fault */

        return rc;
    }

    ngx_queue_insert_tail(&pool->all, &conn->all);
    pool->count++;
    pool->connecting++;

    return NGX_OK;
}


/* an idle connection still alive, the most recently used first */

static ngx_http_retell_pg_conn_t *
ngx_http_retell_pg_take(ngx_http_retell_pg_pool_t *pool)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_queue_remove(q);
        conn->queued = 0;

        if (ngx_http_retell_pg_conn_alive(conn)) {
            return conn;
        }

        ngx_http_retell_pg_close(conn);
    }

    return NULL;
}


void
ngx_http_retell_pg_close(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    if (conn->state == NGX_HTTP_RETELL_PG_CONNECTING) {
        pool->connecting--;
    }

    if (conn->queued) {
        ngx_queue_remove(&conn->queue);
        conn->queued = 0;
    }

    ngx_http_retell_pg_conn_close(conn);

    ngx_queue_remove(&conn->all);
    pool->count--;

    ngx_queue_insert_head(&pool->free, &conn->queue);
}


/* its op went away: the command drains off-line, within the drain timeout */

void
ngx_http_retell_pg_detach(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    if (conn->op) {
        /* its op timed out, or its client went away */
        ngx_http_retell_metrics_statement(conn->op->timed_out
                                          ? NGX_HTTP_RETELL_STMT_TIMEOUT
                                          : NGX_HTTP_RETELL_STMT_CANCELLED,
                                          ngx_current_msec - conn->sent);
    }

    ngx_http_retell_pg_conn_detach(conn, NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);

    /* the deliveries waiting may have it give way to a new one */

    if (pool->nwaiting && !pool->closed && !pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }
}


void
ngx_http_retell_pg_release(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_report_e report)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    switch (report) {

    case NGX_HTTP_RETELL_PG_CONNECTED:
        ngx_http_retell_metrics_pg(NGX_HTTP_RETELL_PG_OPENED);
        pool->connecting--;
        ngx_http_retell_pg_conn_connected(conn);

        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "retell postgres connected to \"%s:%s\"",
                      PQhost(conn->pg), PQport(conn->pg));

        ngx_http_retell_pg_host_up(pool, conn->host);
        ngx_http_retell_pg_keep_or_close(conn, 0);
        break;

    case NGX_HTTP_RETELL_PG_CONNECT_FAILED:
        ngx_http_retell_pg_connect_failed(conn);
        break;

    case NGX_HTTP_RETELL_PG_ANSWERED:
        ngx_http_retell_pg_answered(conn);
        break;

    case NGX_HTTP_RETELL_PG_BROKEN:
        ngx_http_retell_pg_lost(conn);
        break;

    case NGX_HTTP_RETELL_PG_EXPIRED:
        ngx_http_retell_pg_close(conn);
        return;

    case NGX_HTTP_RETELL_PG_STUCK:
        ngx_http_retell_pg_stuck(conn);
        return;

    default: /* NGX_HTTP_RETELL_PG_SHUTDOWN */
        ngx_http_retell_pg_shutdown(conn);
        return;
    }

    ngx_http_retell_pg_dispatch(pool);
}


static void
ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn)
{
    u_char                      err[NGX_HTTP_RETELL_PG_ERROR_LEN];
    ngx_uint_t                  host, level;
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;
    host = conn->host;

    ngx_http_retell_metrics_pg(conn->failure ? NGX_HTTP_RETELL_PG_TIMED_OUT
                                             : NGX_HTTP_RETELL_PG_REFUSED);

    /* an error when no other host is left to try */

    level = (host == pool->host && pool->failures + 1 < pool->nhosts)
            ? NGX_LOG_WARN : NGX_LOG_ERR;

    if (conn->failure) {
        ngx_log_error(level, pool->log, 0,
                      "retell postgres connection to \"%s:%s\" %s after "
                      "%M ms", PQhost(conn->pg), PQport(conn->pg),
                      conn->failure, pool->connect_timeout);

    } else {
        ngx_log_error(level, pool->log, 0,
                      "retell postgres connection failed: %s",
                      ngx_http_retell_pg_error(conn->pg, err, sizeof(err)));
    }

    ngx_http_retell_pg_close(conn);
    ngx_http_retell_pg_host_failed(pool, host);
}


/*
 * Its command answered: the op gets its result, or goes again when
 * nothing was applied (a statement name the session lost, a deadlock or
 * a serialization failure), once
 */

static void
ngx_http_retell_pg_answered(ngx_http_retell_pg_conn_t *conn)
{
    PGresult                 *res;
    ngx_uint_t                stale;
    ngx_http_retell_pg_op_t  *op;

    op = conn->op;
    res = conn->result;

    conn->op = NULL;
    conn->result = NULL;

    if (op) {
        ngx_http_retell_metrics_statement(
            (res && PQresultStatus(res) != PGRES_FATAL_ERROR)
            ? NGX_HTTP_RETELL_STMT_OK : NGX_HTTP_RETELL_STMT_ERROR,
            ngx_current_msec - conn->sent);
    }

    stale = res ? ngx_http_retell_pg_prepared_stale(conn, res) : 0;

    if (op && op->idempotent && !op->retried
        && (stale || (res && ngx_http_retell_pg_result_transient(res))))
    {
        PQclear(res);
        op->retried = 1;
        ngx_http_retell_pg_requeue(op);

    } else if (op) {
        conn->requests++;
        ngx_http_retell_pg_complete(op, res, NULL);

    } else if (res) {
        PQclear(res);
    }

    ngx_http_retell_pg_keep_or_close(conn, stale);
}


/* an exiting worker keeps connections only for what still waits */

static void
ngx_http_retell_pg_keep_or_close(ngx_http_retell_pg_conn_t *conn,
    ngx_uint_t stale)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    if (ngx_http_retell_pg_conn_reusable(conn)
        && !stale
        && !conn->large
        && conn->requests < NGX_HTTP_RETELL_PG_MAX_REQUESTS
        && !pool->closed
        && (!ngx_exiting || !ngx_queue_empty(&pool->waiting)))
    {
        ngx_http_retell_pg_conn_idle(conn, NGX_HTTP_RETELL_PG_IDLE_TIMEOUT);
        ngx_queue_insert_head(&pool->idle, &conn->queue);
        conn->queued = 1;
        return;
    }

    ngx_http_retell_pg_close(conn);
}


/*
 * A connection may die under a command: one that is safe to repeat
 * (deliveries are deduplicated by their digest) is tried again on another
 * connection, after each reused one that broke (after a server restart
 * every one of them may be dead, each broken once at most) and once after
 * a fresh one
 */

static void
ngx_http_retell_pg_lost(ngx_http_retell_pg_conn_t *conn)
{
    u_char                      err[NGX_HTTP_RETELL_PG_ERROR_LEN];
    ngx_uint_t                  requests;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;
    op = conn->op;
    requests = conn->requests;

    ngx_http_retell_pg_error(conn->pg, err, sizeof(err));

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "retell postgres connection to \"%s:%s\" lost: %s",
                  PQhost(conn->pg), PQport(conn->pg), err);

    ngx_http_retell_metrics_pg(NGX_HTTP_RETELL_PG_LOST);

    if (op) {
        ngx_http_retell_metrics_statement(NGX_HTTP_RETELL_STMT_ERROR,
                                          ngx_current_msec - conn->sent);
    }

    conn->op = NULL;
    ngx_http_retell_pg_close(conn);

    if (op == NULL) {
        return;
    }

    if (op->idempotent && (requests || !op->retried)) {
        op->retried = 1;
        ngx_http_retell_metrics_pg(NGX_HTTP_RETELL_PG_RESENT);
        ngx_http_retell_pg_requeue(op);

    } else {
        ngx_http_retell_pg_complete(op, NULL, (char *) err);
    }
}


/* a cancelled command that neither went out nor came back in time */

static void
ngx_http_retell_pg_stuck(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "retell postgres: a cancelled command was %s in "
                  "%M ms, closing the connection",
                  conn->state == NGX_HTTP_RETELL_PG_SENDING
                  ? "not sent" : "not answered",
                  (ngx_msec_t) NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);

    if (ngx_http_retell_pg_abandon(conn, "at its drain timeout")
        == NGX_DECLINED)
    {
        /* every cancel slot taken: once one is free */
        ngx_add_timer(&conn->timer, 1000);
        return;
    }

    ngx_http_retell_pg_dispatch(pool);
}


/*
 * Graceful exit, or worker_shutdown_timeout (c->error): a statement still
 * running has its backend asked to stop, and the exit waits for that,
 * unless the shutdown timeout ended the wait
 */

static void
ngx_http_retell_pg_shutdown(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_op_t  *op;

    op = conn->op;

    if (op) {
        conn->op = NULL;
        ngx_http_retell_pg_complete(op, NULL, "worker is shutting down");
    }

    if (conn->c->error
        || conn->state == NGX_HTTP_RETELL_PG_IDLE
        || conn->state == NGX_HTTP_RETELL_PG_CONNECTING
        || ngx_http_retell_pg_abandon(conn, "as the worker exits")
           == NGX_DECLINED)
    {
        ngx_http_retell_pg_close(conn);
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
            /* earlier: set anew, ngx_add_timer() keeps small moves */
            if (pool->probe.timer_set) {
                ngx_del_timer(&pool->probe);
            }

            ngx_add_timer(&pool->probe, age);
        }

        return NGX_DECLINED;
    }

    /*
     * pg_close() deletes the drain timer and the socket's events: the
     * record goes to pool->free, and pg_open() may reuse it at once
     */

    return ngx_http_retell_pg_abandon(oldest, "for a waiting delivery");
}


