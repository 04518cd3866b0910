
/*
 * Non-blocking PostgreSQL for nginx workers.
 *
 * Connections are opened with PQconnectStart/PQconnectPoll, commands sent
 * with PQsendQueryParams and PQflush, results read with PQconsumeInput,
 * PQisBusy and PQgetResult, all on read and write events of libpq's
 * socket.  Nothing here ever waits on the network.
 *
 * libpq owns the socket: the ngx_connection_t around it only carries the
 * events, and is released with NGX_CLOSE_EVENT before PQfinish() closes
 * the descriptor, the order ngx_close_connection() uses.
 */


#include "ngx_http_retell_pg.h"

#include <sys/stat.h>


#define NGX_HTTP_RETELL_PG_IDLE_TIMEOUT   60000
#define NGX_HTTP_RETELL_PG_MAX_REQUESTS   10000
#define NGX_HTTP_RETELL_PG_BACKOFF_MIN    250
#define NGX_HTTP_RETELL_PG_BACKOFF_MAX    8000
#define NGX_HTTP_RETELL_PG_WAITING        16     /* per connection */
#define NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT  30000


typedef enum {
    NGX_HTTP_RETELL_PG_CONNECTING = 0,
    NGX_HTTP_RETELL_PG_IDLE,
    NGX_HTTP_RETELL_PG_SENDING,
    NGX_HTTP_RETELL_PG_READING,
    NGX_HTTP_RETELL_PG_DRAINING     /* its op went away; results discarded */
} ngx_http_retell_pg_state_e;


struct ngx_http_retell_pg_conn_s {
    ngx_queue_t                     queue;      /* idle or free list */
    ngx_http_retell_pg_pool_t      *pool;
    PGconn                         *pg;
    ngx_connection_t               *c;
    ino_t                           inode;      /* of the wrapped socket */
    ngx_http_retell_pg_op_t        *op;
    PGresult                       *result;
    ngx_http_retell_pg_state_e      state;
    ngx_uint_t                      requests;
    unsigned                        queued:1;   /* in pool->idle */
};


struct ngx_http_retell_pg_pool_s {
    char                           *conninfo;
    ngx_uint_t                      max;
    ngx_uint_t                      count;      /* open or opening */
    ngx_uint_t                      connecting;
    ngx_uint_t                      nwaiting;
    ngx_uint_t                      max_waiting;

    ngx_queue_t                     idle;
    ngx_queue_t                     waiting;
    ngx_queue_t                     free;

    ngx_msec_t                      backoff;
    ngx_msec_t                      next_attempt;

    ngx_event_t                     fail_event;
    ngx_log_t                      *log;
    ngx_pool_t                     *mem;
    unsigned                        closed:1;
};


static void ngx_http_retell_pg_dispatch(ngx_http_retell_pg_pool_t *pool);
static ngx_int_t ngx_http_retell_pg_open(ngx_http_retell_pg_pool_t *pool);
static ngx_int_t ngx_http_retell_pg_wrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_unwrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_connect_poll(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_backoff(ngx_http_retell_pg_pool_t *pool);
static void ngx_http_retell_pg_send(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_op_t *op);
static void ngx_http_retell_pg_flush(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_read(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_finish(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_idle(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_close(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_event_handler(ngx_event_t *ev);
static void ngx_http_retell_pg_op_timeout(ngx_event_t *ev);
static void ngx_http_retell_pg_fail_waiting(ngx_event_t *ev);
static void ngx_http_retell_pg_notice(void *arg, const char *message);
static u_char *ngx_http_retell_pg_error(PGconn *pg, u_char *buf, size_t len);


ngx_http_retell_pg_pool_t *
ngx_http_retell_pg_pool_create(ngx_cycle_t *cycle, ngx_str_t *conninfo,
    ngx_uint_t size)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = ngx_pcalloc(cycle->pool, sizeof(ngx_http_retell_pg_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->conninfo = ngx_pnalloc(cycle->pool, conninfo->len + 1);
    if (pool->conninfo == NULL) {
        return NULL;
    }

    ngx_cpystrn((u_char *) pool->conninfo, conninfo->data, conninfo->len + 1);

    pool->max = size;
    pool->max_waiting = size * NGX_HTTP_RETELL_PG_WAITING;
    pool->log = cycle->log;
    pool->mem = cycle->pool;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->waiting);
    ngx_queue_init(&pool->free);

    pool->fail_event.handler = ngx_http_retell_pg_fail_waiting;
    pool->fail_event.data = pool;
    pool->fail_event.log = cycle->log;

    return pool;
}


void
ngx_http_retell_pg_pool_close(ngx_http_retell_pg_pool_t *pool)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    pool->closed = 1;

    if (pool->fail_event.posted) {
        ngx_delete_posted_event(&pool->fail_event);
    }

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_http_retell_pg_close(conn);
    }
}


ngx_int_t
ngx_http_retell_pg_run(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    if (pool->closed) {
        return NGX_DECLINED;
    }

    /* while the database is down, answer at once rather than queue */

    if (pool->count == 0 && pool->backoff
        && (ngx_msec_int_t) (pool->next_attempt - ngx_current_msec) > 0)
    {
        return NGX_DECLINED;
    }

    if (pool->nwaiting >= pool->max_waiting) {
        return NGX_BUSY;
    }

    op->pool = pool;
    op->conn = NULL;

    op->timer.handler = ngx_http_retell_pg_op_timeout;
    op->timer.data = op;
    op->timer.log = op->log;
    ngx_add_timer(&op->timer, op->timeout);

    ngx_queue_insert_tail(&pool->waiting, &op->queue);
    op->waiting = 1;
    pool->nwaiting++;

    ngx_http_retell_pg_dispatch(pool);

    return NGX_OK;
}


void
ngx_http_retell_pg_cancel(ngx_http_retell_pg_op_t *op)
{
    ngx_http_retell_pg_conn_t  *conn;

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->waiting) {
        ngx_queue_remove(&op->queue);
        op->waiting = 0;
        op->pool->nwaiting--;
        return;
    }

    conn = op->conn;

    if (conn) {
        /*
         * the command may still be running: the connection serves
         * nobody else until its results are read and thrown away, or
         * is closed if they do not come
         */
        conn->op = NULL;
        conn->state = NGX_HTTP_RETELL_PG_DRAINING;
        op->conn = NULL;

        conn->c->read->cancelable = 1;
        ngx_add_timer(conn->c->read, NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);
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
ngx_http_retell_pg_dispatch(ngx_http_retell_pg_pool_t *pool)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_conn_t  *conn;

    while (!ngx_queue_empty(&pool->waiting)
           && !ngx_queue_empty(&pool->idle))
    {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_retell_pg_op_t, queue);
        ngx_queue_remove(q);
        op->waiting = 0;
        pool->nwaiting--;

        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_queue_remove(q);
        conn->queued = 0;

        ngx_http_retell_pg_send(conn, op);
    }

    /* one new connection for each op no connection in progress will take */

    while (pool->connecting < pool->nwaiting && pool->count < pool->max) {

        if (pool->backoff
            && (ngx_msec_int_t) (pool->next_attempt - ngx_current_msec) > 0)
        {
            break;
        }

        if (ngx_http_retell_pg_open(pool) != NGX_OK) {
            break;
        }
    }

    if (pool->count == 0 && pool->nwaiting && !pool->fail_event.posted) {
        /* failed from an event, never inside ngx_http_retell_pg_run() */
        ngx_post_event(&pool->fail_event, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_http_retell_pg_open(ngx_http_retell_pg_pool_t *pool)
{
    u_char                      err[256];
    PGconn                     *pg;
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    /* PQconnectStart() does not wait: the connection is made on events */

    pg = PQconnectStart(pool->conninfo);

    if (pg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, pool->log, 0,
                      "retell postgres: PQconnectStart() out of memory");
        return NGX_ERROR;
    }

    if (PQstatus(pg) == CONNECTION_BAD || PQsetnonblocking(pg, 1) != 0) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "retell postgres connection failed: %s",
                      ngx_http_retell_pg_error(pg, err, sizeof(err)));
        PQfinish(pg);

        ngx_http_retell_pg_backoff(pool);

        return NGX_ERROR;
    }

    if (!ngx_queue_empty(&pool->free)) {
        q = ngx_queue_head(&pool->free);
        ngx_queue_remove(q);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_memzero(conn, sizeof(ngx_http_retell_pg_conn_t));

    } else {
        conn = ngx_pcalloc(pool->mem, sizeof(ngx_http_retell_pg_conn_t));
        if (conn == NULL) {
            PQfinish(pg);
            return NGX_ERROR;
        }
    }

    conn->pool = pool;
    conn->pg = pg;
    conn->state = NGX_HTTP_RETELL_PG_CONNECTING;

    pool->count++;
    pool->connecting++;

    PQsetNoticeProcessor(pg, ngx_http_retell_pg_notice, pool);

    if (ngx_http_retell_pg_wrap(conn) != NGX_OK) {
        ngx_http_retell_pg_close(conn);
        return NGX_ERROR;
    }

    /* libpq: behave as if PQconnectPoll() had asked for writing */

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_pg_wrap(ngx_http_retell_pg_conn_t *conn)
{
    int                fd;
    struct stat        st;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "retell postgres: no socket");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, conn->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->log = conn->pool->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_retell_pg_event_handler;
    c->write->handler = ngx_http_retell_pg_event_handler;

    conn->c = c;
    conn->inode = (fstat(fd, &st) == 0) ? st.st_ino : 0;

    if (ngx_add_conn) {
        if (ngx_add_conn(c) == NGX_ERROR) {
            ngx_http_retell_pg_unwrap(conn);
            return NGX_ERROR;
        }

    } else if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_CLEAR_EVENT)
               != NGX_OK
               || ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_CLEAR_EVENT)
                  != NGX_OK)
    {
        ngx_http_retell_pg_unwrap(conn);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* forgets the socket's events; the descriptor itself belongs to libpq */

static void
ngx_http_retell_pg_unwrap(ngx_http_retell_pg_conn_t *conn)
{
    ngx_connection_t  *c;

    c = conn->c;

    if (c == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_del_conn) {
        ngx_del_conn(c, NGX_CLOSE_EVENT);

    } else {
        if (c->read->active || c->read->disabled) {
            ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
        }

        if (c->write->active || c->write->disabled) {
            ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
        }
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    conn->c = NULL;
}


static void
ngx_http_retell_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_retell_pg_conn_t  *conn;
    ngx_http_retell_pg_pool_t  *pool;

    c = ev->data;
    conn = c->data;

    switch (conn->state) {

    case NGX_HTTP_RETELL_PG_CONNECTING:
        ngx_http_retell_pg_connect_poll(conn);
        return;

    case NGX_HTTP_RETELL_PG_IDLE:
        ngx_http_retell_pg_idle(conn);
        return;

    case NGX_HTTP_RETELL_PG_SENDING:
        ngx_http_retell_pg_flush(conn);
        return;

    default: /* READING, DRAINING */
        if (ev->timedout) {
            ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                          "retell postgres: no answer to a cancelled "
                          "command, closing the connection");
            pool = conn->pool;
            ngx_http_retell_pg_close(conn);
            ngx_http_retell_pg_dispatch(pool);
            return;
        }

        if (!ev->write) {
            ngx_http_retell_pg_read(conn);
        }

        return;
    }
}


static void
ngx_http_retell_pg_connect_poll(ngx_http_retell_pg_conn_t *conn)
{
    int                         fd;
    ngx_uint_t                  n;
    struct stat                 st;
    PostgresPollingStatusType   status;

    for (n = 0; n < 8; n++) {

        status = PQconnectPoll(conn->pg);

        /*
         * libpq moves to the next host or address on a new socket, which
         * may even get the old descriptor number back
         */

        fd = PQsocket(conn->pg);

        if (fd != -1
            && (fd != conn->c->fd
                || (fstat(fd, &st) == 0 && st.st_ino != conn->inode)))
        {
            ngx_http_retell_pg_unwrap(conn);

            if (ngx_http_retell_pg_wrap(conn) != NGX_OK) {
                ngx_http_retell_pg_connect_failed(conn);
                return;
            }
        }

        switch (status) {

        case PGRES_POLLING_OK:
            conn->state = NGX_HTTP_RETELL_PG_IDLE;
            conn->pool->connecting--;
            conn->pool->backoff = 0;

            ngx_log_error(NGX_LOG_INFO, conn->pool->log, 0,
                          "retell postgres connected to \"%s:%s\"",
                          PQhost(conn->pg), PQport(conn->pg));

            ngx_http_retell_pg_finish(conn);
            return;

        case PGRES_POLLING_FAILED:
            ngx_http_retell_pg_connect_failed(conn);
            return;

        case PGRES_POLLING_WRITING:
            if (PQstatus(conn->pg) == CONNECTION_MADE) {
                /*
                 * connected, startup packet not sent yet: no I/O was
                 * done, so no edge-triggered event will come: poll again
                 */
                continue;
            }

            return;

        default: /* PGRES_POLLING_READING */
            return;
        }
    }
}


static void
ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn)
{
    u_char                      err[256];
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "retell postgres connection failed: %s",
                  ngx_http_retell_pg_error(conn->pg, err, sizeof(err)));

    ngx_http_retell_pg_backoff(pool);

    ngx_http_retell_pg_close(conn);

    ngx_http_retell_pg_dispatch(pool);
}


/* no new connection for a while: 250 ms, doubling up to 8 s */

static void
ngx_http_retell_pg_backoff(ngx_http_retell_pg_pool_t *pool)
{
    pool->backoff = ngx_max(pool->backoff * 2, NGX_HTTP_RETELL_PG_BACKOFF_MIN);
    pool->backoff = ngx_min(pool->backoff, NGX_HTTP_RETELL_PG_BACKOFF_MAX);
    pool->next_attempt = ngx_current_msec + pool->backoff;
}


static void
ngx_http_retell_pg_send(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_op_t *op)
{
    if (conn->c->read->timer_set) {
        ngx_del_timer(conn->c->read);          /* the idle timer */
    }

    conn->c->idle = 0;
    conn->op = op;
    op->conn = conn;

    if (op->prepare) {
        op->prepare(op);
    }

    if (!PQsendQueryParams(conn->pg, op->command, op->nparams, NULL,
                           op->values, NULL, NULL, 0))
    {
        ngx_http_retell_pg_broken(conn);
        return;
    }

    conn->state = NGX_HTTP_RETELL_PG_SENDING;

    ngx_http_retell_pg_flush(conn);
}


static void
ngx_http_retell_pg_flush(ngx_http_retell_pg_conn_t *conn)
{
    int  rc;

    /* nonblocking mode: a command may sit in libpq's buffer until flushed */

    rc = PQflush(conn->pg);

    if (rc == -1) {
        ngx_http_retell_pg_broken(conn);
        return;
    }

    if (rc == 1) {
        /* the rest goes out on the next write event */
        return;
    }

    conn->state = conn->op ? NGX_HTTP_RETELL_PG_READING
                           : NGX_HTTP_RETELL_PG_DRAINING;

    /* the answer may be in already: its edge may have passed */
    ngx_http_retell_pg_read(conn);
}


static void
ngx_http_retell_pg_read(ngx_http_retell_pg_conn_t *conn)
{
    PGresult  *res;

    if (!PQconsumeInput(conn->pg)) {
        ngx_http_retell_pg_broken(conn);
        return;
    }

    while (!PQisBusy(conn->pg)) {

        res = PQgetResult(conn->pg);

        if (res == NULL) {
            ngx_http_retell_pg_finish(conn);
            return;
        }

        /* one statement, one result: keep the first, free any other */

        if (conn->result == NULL && conn->op) {
            conn->result = res;

        } else {
            PQclear(res);
        }
    }
}


/* a command completed, or a connection was just made */

static void
ngx_http_retell_pg_finish(ngx_http_retell_pg_conn_t *conn)
{
    PGresult                   *res;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;
    op = conn->op;
    res = conn->result;

    conn->op = NULL;
    conn->result = NULL;

    if (op) {
        conn->requests++;
        op->conn = NULL;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }
    }

    /* an exiting worker keeps connections only for what still waits */

    if (PQstatus(conn->pg) == CONNECTION_OK
        && PQtransactionStatus(conn->pg) == PQTRANS_IDLE
        && conn->requests < NGX_HTTP_RETELL_PG_MAX_REQUESTS
        && !pool->closed
        && (!ngx_exiting || !ngx_queue_empty(&pool->waiting)))
    {
        conn->state = NGX_HTTP_RETELL_PG_IDLE;
        conn->c->idle = 1;
        conn->c->read->cancelable = 1;
        ngx_add_timer(conn->c->read, NGX_HTTP_RETELL_PG_IDLE_TIMEOUT);
        ngx_queue_insert_head(&pool->idle, &conn->queue);
        conn->queued = 1;

    } else {
        ngx_http_retell_pg_close(conn);
    }

    if (op) {
        op->handler(op, res, NULL);
    }

    if (res) {
        PQclear(res);
    }

    ngx_http_retell_pg_dispatch(pool);
}


static void
ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn)
{
    u_char                      err[256];
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;
    op = conn->op;

    ngx_http_retell_pg_error(conn->pg, err, sizeof(err));

    ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                  "retell postgres connection lost: %s", err);

    conn->op = NULL;
    ngx_http_retell_pg_close(conn);

    if (op) {
        op->conn = NULL;

        /*
         * a connection that sat idle may have died with the server;
         * every command is safe to repeat once (deliveries are
         * deduplicated by their digest), so try another connection
         */

        if (!op->retried) {
            op->retried = 1;
            ngx_queue_insert_head(&pool->waiting, &op->queue);
            op->waiting = 1;
            pool->nwaiting++;

        } else {
            if (op->timer.timer_set) {
                ngx_del_timer(&op->timer);
            }

            op->handler(op, NULL, (char *) err);
        }
    }

    ngx_http_retell_pg_dispatch(pool);
}


static void
ngx_http_retell_pg_idle(ngx_http_retell_pg_conn_t *conn)
{
    u_char             err[256];
    ngx_connection_t  *c;

    c = conn->c;

    if (c->close || c->read->timedout) {
        goto close;
    }

    /* nothing is expected: a server going away says so, then closes */

    if (!PQconsumeInput(conn->pg) || PQstatus(conn->pg) != CONNECTION_OK) {
        ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                      "retell postgres idle connection lost: %s",
                      ngx_http_retell_pg_error(conn->pg, err, sizeof(err)));
        goto close;
    }

    return;

close:

    ngx_http_retell_pg_close(conn);
}


static void
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

    ngx_http_retell_pg_unwrap(conn);

    if (conn->result) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    PQfinish(conn->pg);
    conn->pg = NULL;

    pool->count--;

    ngx_queue_insert_head(&pool->free, &conn->queue);
}


static void
ngx_http_retell_pg_op_timeout(ngx_event_t *ev)
{
    ngx_http_retell_pg_op_t  *op;

    op = ev->data;

    ngx_http_retell_pg_cancel(op);

    op->handler(op, NULL, "timed out");
}


static void
ngx_http_retell_pg_fail_waiting(ngx_event_t *ev)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_pool_t  *pool;

    pool = ev->data;

    /* no connection is open or opening: nobody will take these */

    while (pool->count == 0 && !ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        op = ngx_queue_data(q, ngx_http_retell_pg_op_t, queue);

        ngx_http_retell_pg_cancel(op);

        op->handler(op, NULL, "unreachable");
    }
}


static void
ngx_http_retell_pg_notice(void *arg, const char *message)
{
    size_t                      len;
    ngx_http_retell_pg_pool_t  *pool = arg;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    ngx_log_error(NGX_LOG_NOTICE, pool->log, 0, "retell postgres: %*s",
                  len, message);
}


/* PQerrorMessage() without its line ends, in buf */

static u_char *
ngx_http_retell_pg_error(PGconn *pg, u_char *buf, size_t len)
{
    u_char  *p, *last;

    p = ngx_cpystrn(buf, (u_char *) (pg ? PQerrorMessage(pg) : "unknown"),
                    len);
    last = p;

    for (p = buf; p < last; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }

    while (last > buf && last[-1] == ' ') {
        *--last = '\0';
    }

    return buf;
}
