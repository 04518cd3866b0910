
/*
 * Non-blocking PostgreSQL connections on nginx events.
 *
 * Connections are opened with PQconnectStart/PQconnectPoll under the
 * pool's connect timeout, commands sent with PQsendQueryParams (or
 * prepared: ngx_http_retell_pg_prepared.c) and PQflush, results read
 * with PQconsumeInput, PQisBusy and PQgetResult, all on read and write
 * events of libpq's socket.  Nothing here ever waits on the network.
 *
 * The socket is registered edge-triggered: an event comes once per
 * arrival, so each read event reads until the kernel (and OpenSSL) hold
 * nothing more, whatever the size of the answer.
 *
 * libpq owns the socket: the ngx_connection_t around it only carries the
 * events, and is released with NGX_CLOSE_EVENT before PQfinish() closes
 * the descriptor, the order ngx_close_connection() uses.
 */


#include "ngx_http_retell_pg_conn.h"

#if (NGX_SSL)
#include <openssl/ssl.h>
#endif


#define NGX_HTTP_RETELL_PG_IDLE_TIMEOUT   60000
#define NGX_HTTP_RETELL_PG_MAX_REQUESTS   10000
#define NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT  30000
#define NGX_HTTP_RETELL_PG_READ_ROUNDS    64

/* libpq keeps its largest output buffer until PQfinish(): past this, close */
#define NGX_HTTP_RETELL_PG_LARGE          (1024 * 1024)


static ngx_int_t ngx_http_retell_pg_wrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_unwrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_event_handler(ngx_event_t *ev);
static void ngx_http_retell_pg_timer_handler(ngx_event_t *ev);
static void ngx_http_retell_pg_connect_poll(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn,
    const char *why);
static void ngx_http_retell_pg_flush(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_read(ngx_http_retell_pg_conn_t *conn);
static ngx_int_t ngx_http_retell_pg_pending(ngx_http_retell_pg_conn_t *conn);
static ngx_int_t ngx_http_retell_pg_alive(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_finish(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_idle(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_notice(void *arg, const char *message);
static u_char *ngx_http_retell_pg_error(PGconn *pg, u_char *buf, size_t len);


ngx_int_t
ngx_http_retell_pg_conn_open(ngx_http_retell_pg_pool_t *pool)
{
    u_char                      err[NGX_HTTP_RETELL_PG_ERROR_LEN];
    PGconn                     *pg;
    ngx_uint_t                  host;
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    host = pool->host;

    /* PQconnectStart() does not wait: the connection is made on events */

    pg = PQconnectStart((char *) pool->hosts[host].data);

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

        ngx_http_retell_pg_host_failed(pool, host);

        return NGX_DECLINED;
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
    conn->host = host;
    conn->state = NGX_HTTP_RETELL_PG_CONNECTING;

    conn->timer.handler = ngx_http_retell_pg_timer_handler;
    conn->timer.data = conn;
    conn->timer.log = pool->log;
    conn->timer.cancelable = 1;

    /* libpq ignores connect_timeout under PQconnectPoll(): this is it */
    ngx_add_timer(&conn->timer, pool->connect_timeout);

    ngx_queue_insert_tail(&pool->all, &conn->all);
    pool->count++;
    pool->connecting++;

    PQsetNoticeProcessor(pg, ngx_http_retell_pg_notice, conn);

    if (ngx_http_retell_pg_wrap(conn) != NGX_OK) {
        /* worker_connections, not the host: the pool tries again later */
        ngx_http_retell_pg_conn_close(conn);
        return NGX_ERROR;
    }

    /* libpq: behave as if PQconnectPoll() had asked for writing */

    return NGX_OK;
}


/* an idle connection still alive, the most recently used first */

ngx_http_retell_pg_conn_t *
ngx_http_retell_pg_conn_take(ngx_http_retell_pg_pool_t *pool)
{
    ngx_queue_t                *q;
    ngx_http_retell_pg_conn_t  *conn;

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        conn = ngx_queue_data(q, ngx_http_retell_pg_conn_t, queue);
        ngx_queue_remove(q);
        conn->queued = 0;

        if (ngx_http_retell_pg_alive(conn)) {
            return conn;
        }

        ngx_http_retell_pg_conn_close(conn);
    }

    return NULL;
}


void
ngx_http_retell_pg_conn_send(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_op_t *op)
{
    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);            /* the idle timer */
    }

    conn->c->idle = 0;
    conn->op = op;
    op->conn = conn;
    conn->sent = ngx_current_msec;

    if (op->size > NGX_HTTP_RETELL_PG_LARGE) {
        conn->large = 1;
    }

    if (ngx_http_retell_pg_prepared_send(conn) != NGX_OK) {
        ngx_http_retell_pg_broken(conn);
        return;
    }

    conn->state = NGX_HTTP_RETELL_PG_SENDING;

    ngx_http_retell_pg_flush(conn);
}


/*
 * The op went away (timeout, client gone): the command goes on without
 * it.  A command still being sent keeps being flushed on write events,
 * so the server is never left waiting for the rest of a message; then
 * its answer is read and thrown away, and the connection serves again.
 */

void
ngx_http_retell_pg_conn_detach(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_op_t  *op;

    op = conn->op;

    if (op == NULL) {
        return;
    }

    conn->op = NULL;
    op->conn = NULL;

    /* PREPARE's answer is kept: it says whether the server has the name */

    if (conn->result && !conn->preparing) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    if (conn->state == NGX_HTTP_RETELL_PG_READING) {
        conn->state = NGX_HTTP_RETELL_PG_DRAINING;
    }

    conn->detached = ngx_current_msec;
    ngx_add_timer(&conn->timer, NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);

    /*
     * nginx's graceful exit closes idle connections: this one then asks
     * its backend to stop rather than leave it running
     */
    conn->c->idle = 1;

    /* the deliveries waiting may have it give way to a new connection */

    if (conn->pool->nwaiting && !conn->pool->closed
        && !conn->pool->dispatch.posted)
    {
        ngx_post_event(&conn->pool->dispatch, &ngx_posted_events);
    }
}


void
ngx_http_retell_pg_conn_close(ngx_http_retell_pg_conn_t *conn)
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

    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_http_retell_pg_unwrap(conn);

    if (conn->result) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    PQfinish(conn->pg);
    conn->pg = NULL;

    ngx_queue_remove(&conn->all);
    pool->count--;

    ngx_queue_insert_head(&pool->free, &conn->queue);
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

    /* edge-triggered, read and write at once: checked at pool creation */

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

    /* ngx_free_connection() finds the slot by c->fd: clear it after */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    conn->c = NULL;
}


static void
ngx_http_retell_pg_event_handler(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (c->close) {
        /* graceful exit, or worker_shutdown_timeout */

        op = conn->op;

        if (op) {
            conn->op = NULL;
            ngx_http_retell_pg_complete(op, NULL, "worker is shutting down");
        }

        /*
         * a statement still running: its backend is asked to stop, and
         * the exit waits for that, unless worker_shutdown_timeout ended
         * the wait (c->error)
         */

        if (c->error
            || conn->state == NGX_HTTP_RETELL_PG_IDLE
            || conn->state == NGX_HTTP_RETELL_PG_CONNECTING
            || ngx_http_retell_pg_conn_abandon(conn, "as the worker exits")
               == NGX_DECLINED)
        {
            ngx_http_retell_pg_conn_close(conn);
        }

        return;
    }

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
        if (!ev->write) {
            ngx_http_retell_pg_read(conn);
        }

        return;
    }
}


static void
ngx_http_retell_pg_timer_handler(ngx_event_t *ev)
{
    ngx_http_retell_pg_conn_t  *conn;
    ngx_http_retell_pg_pool_t  *pool;

    conn = ev->data;
    pool = conn->pool;

    switch (conn->state) {

    case NGX_HTTP_RETELL_PG_CONNECTING:
        ngx_http_retell_pg_connect_failed(conn, "timed out");
        return;

    case NGX_HTTP_RETELL_PG_IDLE:
        ngx_http_retell_pg_conn_close(conn);
        return;

    default:
        /* a cancelled command that neither went out nor came back */

        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "retell postgres: a cancelled command was %s in "
                      "%M ms, closing the connection",
                      conn->state == NGX_HTTP_RETELL_PG_SENDING
                      ? "not sent" : "not answered",
                      (ngx_msec_t) NGX_HTTP_RETELL_PG_DRAIN_TIMEOUT);

        if (ngx_http_retell_pg_conn_abandon(conn, "at its drain timeout")
            == NGX_DECLINED)
        {
            /* every cancel slot taken: once one is free */
            ngx_add_timer(&conn->timer, 1000);
            return;
        }

        ngx_http_retell_pg_dispatch(pool);
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
         * libpq moves to the next address, or retries without SSL, on a
         * new socket, which may even get the old descriptor number back
         */

        fd = PQsocket(conn->pg);

        if (fd != -1
            && (fd != conn->c->fd
                || (fstat(fd, &st) == 0 && st.st_ino != conn->inode)))
        {
            ngx_http_retell_pg_unwrap(conn);

            if (ngx_http_retell_pg_wrap(conn) != NGX_OK) {
                ngx_http_retell_pg_connect_failed(conn, NULL);
                return;
            }
        }

        switch (status) {

        case PGRES_POLLING_OK:
            conn->state = NGX_HTTP_RETELL_PG_IDLE;
            conn->pool->connecting--;

            ngx_log_error(NGX_LOG_INFO, conn->pool->log, 0,
                          "retell postgres connected to \"%s:%s\"",
                          PQhost(conn->pg), PQport(conn->pg));

            ngx_http_retell_pg_host_up(conn->pool, conn->host);
            ngx_http_retell_pg_finish(conn);
            return;

        case PGRES_POLLING_FAILED:
            ngx_http_retell_pg_connect_failed(conn, NULL);
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
ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn,
    const char *why)
{
    u_char                      err[NGX_HTTP_RETELL_PG_ERROR_LEN];
    ngx_uint_t                  host, level;
    ngx_http_retell_pg_pool_t  *pool;

    pool = conn->pool;
    host = conn->host;

    /* an error when no other host is left to try */

    level = (host == pool->host && pool->failures + 1 < pool->nhosts)
            ? NGX_LOG_WARN : NGX_LOG_ERR;

    if (why) {
        ngx_log_error(level, pool->log, 0,
                      "retell postgres connection to \"%s:%s\" %s after "
                      "%M ms", PQhost(conn->pg), PQport(conn->pg), why,
                      pool->connect_timeout);

    } else {
        ngx_log_error(level, pool->log, 0,
                      "retell postgres connection failed: %s",
                      ngx_http_retell_pg_error(conn->pg, err, sizeof(err)));
    }

    ngx_http_retell_pg_conn_close(conn);

    ngx_http_retell_pg_host_failed(pool, host);

    ngx_http_retell_pg_dispatch(pool);
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
    ngx_uint_t   n;
    PGresult    *res;

    for (n = 0; n < NGX_HTTP_RETELL_PG_READ_ROUNDS; n++) {

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

            ngx_http_retell_pg_result_keep(conn, res);
        }

        /*
         * PQconsumeInput() reads once: what is left in the socket or in
         * OpenSSL will not raise another edge-triggered event
         */

        if (!ngx_http_retell_pg_pending(conn)) {
            return;
        }
    }

    /* a very large answer: the rest after other events had their turn */
    ngx_post_event(conn->c->read, &ngx_posted_events);
}


/* more to read now: data, an end of file or an error, or OpenSSL's */

static ngx_int_t
ngx_http_retell_pg_pending(ngx_http_retell_pg_conn_t *conn)
{
    u_char     byte;
    ssize_t    n;
    ngx_err_t  err;

#if (NGX_SSL)
    SSL       *ssl;

    ssl = PQsslStruct(conn->pg, "OpenSSL");

    if (ssl && SSL_pending(ssl) > 0) {
        return 1;
    }
#endif

    n = recv(PQsocket(conn->pg), &byte, 1, MSG_PEEK|MSG_DONTWAIT);

    if (n >= 0) {
        return 1;
    }

    err = ngx_socket_errno;

    return (err == NGX_EAGAIN || err == NGX_EINTR) ? 0 : 1;
}


/*
 * An idle connection is alive when the server has nothing to say: a
 * server going away says why, then closes.  That reason is read here so
 * it reaches the log, through the notice processor.
 */

static ngx_int_t
ngx_http_retell_pg_alive(ngx_http_retell_pg_conn_t *conn)
{
    u_char  err[NGX_HTTP_RETELL_PG_ERROR_LEN];

    if (!ngx_http_retell_pg_pending(conn)) {
        return 1;
    }

    if (PQconsumeInput(conn->pg)) {
        (void) PQisBusy(conn->pg);          /* parses, and logs, the FATAL */
    }

    ngx_log_error(NGX_LOG_WARN, conn->pool->log, 0,
                  "retell postgres idle connection to \"%s:%s\" closed: %s",
                  PQhost(conn->pg), PQport(conn->pg),
                  PQstatus(conn->pg) == CONNECTION_BAD
                  ? ngx_http_retell_pg_error(conn->pg, err, sizeof(err))
                  : (u_char *) "the server spoke unasked");

    return 0;
}


/* a command completed, or a connection was just made */

static void
ngx_http_retell_pg_finish(ngx_http_retell_pg_conn_t *conn)
{
    ngx_int_t                   rc, stale;
    PGresult                   *res;
    ngx_http_retell_pg_op_t    *op;
    ngx_http_retell_pg_pool_t  *pool;

    if (conn->preparing) {
        rc = ngx_http_retell_pg_prepared_answer(conn);

        if (rc == NGX_ERROR) {
            ngx_http_retell_pg_broken(conn);
            return;
        }

        if (rc == NGX_AGAIN) {
            /* prepared: now the command itself */
            conn->state = NGX_HTTP_RETELL_PG_SENDING;
            ngx_http_retell_pg_flush(conn);
            return;
        }
    }

    pool = conn->pool;
    op = conn->op;
    res = conn->result;

    conn->op = NULL;
    conn->result = NULL;

    stale = res ? ngx_http_retell_pg_prepared_stale(conn, res) : 0;

    if (op && op->idempotent && !op->retried
        && (stale || (res && ngx_http_retell_pg_result_transient(res))))
    {
        /*
         * refused on its statement's name alone, or a deadlock or
         * serialization failure: nothing was applied, and it may go again
         */
        PQclear(res);
        op->retried = 1;
        ngx_http_retell_pg_requeue(op);

    } else if (op) {
        conn->requests++;
        ngx_http_retell_pg_complete(op, res, NULL);

    } else if (res) {
        PQclear(res);
    }

    /* an exiting worker keeps connections only for what still waits */

    if (PQstatus(conn->pg) == CONNECTION_OK
        && !stale
        && !conn->large
        && PQtransactionStatus(conn->pg) == PQTRANS_IDLE
        && conn->requests < NGX_HTTP_RETELL_PG_MAX_REQUESTS
        && !pool->closed
        && (!ngx_exiting || !ngx_queue_empty(&pool->waiting)))
    {
        conn->state = NGX_HTTP_RETELL_PG_IDLE;
        conn->c->idle = 1;
        ngx_add_timer(&conn->timer, NGX_HTTP_RETELL_PG_IDLE_TIMEOUT);
        ngx_queue_insert_head(&pool->idle, &conn->queue);
        conn->queued = 1;

    } else {
        ngx_http_retell_pg_conn_close(conn);
    }

    ngx_http_retell_pg_dispatch(pool);
}


static void
ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn)
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

    conn->op = NULL;
    ngx_http_retell_pg_conn_close(conn);

    if (op) {
        /*
         * a connection may die under a command: one that is safe to
         * repeat (deliveries are deduplicated by their digest) is tried
         * again on another connection, after each reused one that broke
         * (after a server restart every one of them may be dead, each
         * broken once at most) and once after a fresh one
         */

        if (op->idempotent && (requests || !op->retried)) {
            op->retried = 1;
            ngx_http_retell_pg_requeue(op);

        } else {
            ngx_http_retell_pg_complete(op, NULL, (char *) err);
        }
    }

    ngx_http_retell_pg_dispatch(pool);
}


static void
ngx_http_retell_pg_idle(ngx_http_retell_pg_conn_t *conn)
{
    if (!ngx_http_retell_pg_alive(conn)) {
        ngx_http_retell_pg_conn_close(conn);
    }
}


static void
ngx_http_retell_pg_notice(void *arg, const char *message)
{
    size_t                      len;
    ngx_uint_t                  level;
    ngx_http_retell_pg_conn_t  *conn = arg;

    len = ngx_strlen(message);

    while (len && (message[len - 1] == '\n' || message[len - 1] == '\r')) {
        len--;
    }

    /* on an idle connection: the server's reason for closing it */

    level = (conn->state == NGX_HTTP_RETELL_PG_IDLE) ? NGX_LOG_WARN
                                                    : NGX_LOG_NOTICE;

    ngx_log_error(level, conn->pool->log, 0, "retell postgres: %*s",
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

    if (buf[0] == '\0') {
        ngx_cpystrn(buf, (u_char *) "unknown error", len);
    }

    return buf;
}
