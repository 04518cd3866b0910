
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
 *
 * A connection decides nothing about its pool: it reports what happened
 * (connected, refused, answered, lost, expired, stuck, shutting down)
 * through one call, ngx_http_retell_pg_release(), as a peer reports
 * through free() in nginx's upstream keepalive module, and the pool
 * (ngx_http_retell_pg.c) decides what follows.
 */


#include "ngx_http_retell_pg_conn.h"

#if (NGX_SSL)
#include <openssl/ssl.h>
#endif


#define NGX_HTTP_RETELL_PG_READ_ROUNDS    64


static ngx_int_t ngx_http_retell_pg_wrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_unwrap(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_event_handler(ngx_event_t *ev);
static void ngx_http_retell_pg_timer_handler(ngx_event_t *ev);
static void ngx_http_retell_pg_connect_poll(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_connect_failed(ngx_http_retell_pg_conn_t *conn,
    const char *why);
static void ngx_http_retell_pg_answered(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_flush(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_read(ngx_http_retell_pg_conn_t *conn);
static ngx_int_t ngx_http_retell_pg_pending(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn);
static void ngx_http_retell_pg_state(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_state_e state);
static void ngx_http_retell_pg_notice(void *arg, const char *message);


/*
 * Starts a connection with conninfo, within timeout.  NGX_DECLINED: libpq
 * failed at once (a Unix socket that is not there, no route: the host's
 * fault, logged); NGX_ERROR: memory or worker_connections ran out.  Either
 * way nothing is left open.
 */

ngx_int_t
ngx_http_retell_pg_conn_connect(ngx_http_retell_pg_conn_t *conn,
    const char *conninfo, ngx_msec_t timeout)
{
    u_char   err[NGX_HTTP_RETELL_PG_ERROR_LEN];
    PGconn  *pg;

    /* its own log, whose action says where the connection is */
    conn->log = *conn->pool->log;

    /* PQconnectStart() does not wait: the connection is made on events */

    pg = PQconnectStart(conninfo);

    if (pg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &conn->log, 0,
                      "retell postgres: PQconnectStart() out of memory");
        return NGX_ERROR;
    }

    if (PQstatus(pg) == CONNECTION_BAD || PQsetnonblocking(pg, 1) != 0) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "retell postgres connection failed: %s",
                      ngx_http_retell_pg_error(pg, err, sizeof(err)));
        PQfinish(pg);
        return NGX_DECLINED;
    }

    conn->pg = pg;
    ngx_http_retell_pg_state(conn, NGX_HTTP_RETELL_PG_CONNECTING);

    conn->timer.handler = ngx_http_retell_pg_timer_handler;
    conn->timer.data = conn;
    conn->timer.log = &conn->log;
    conn->timer.cancelable = 1;

    /* libpq ignores connect_timeout under PQconnectPoll(): this is it */
    ngx_add_timer(&conn->timer, timeout);

    PQsetNoticeProcessor(pg, ngx_http_retell_pg_notice, conn);

    if (ngx_http_retell_pg_wrap(conn) != NGX_OK) {
        ngx_http_retell_pg_conn_close(conn);
        return NGX_ERROR;
    }

    /* libpq: behave as if PQconnectPoll() had asked for writing */

    return NGX_OK;
}


/* ready for a command: the pool keeps it until timeout */

void
ngx_http_retell_pg_conn_idle(ngx_http_retell_pg_conn_t *conn,
    ngx_msec_t timeout)
{
    ngx_http_retell_pg_state(conn, NGX_HTTP_RETELL_PG_IDLE);
    conn->c->idle = 1;
    ngx_add_timer(&conn->timer, timeout);
}


/* its session can serve another command */

ngx_int_t
ngx_http_retell_pg_conn_reusable(ngx_http_retell_pg_conn_t *conn)
{
    return PQstatus(conn->pg) == CONNECTION_OK
           && PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "retell postgres: sending a command of %uz bytes to "
                   "\"%s\"", op->size, PQhost(conn->pg));

    if (ngx_http_retell_pg_prepared_send(conn) != NGX_OK) {
        ngx_http_retell_pg_broken(conn);
        return;
    }

    ngx_http_retell_pg_state(conn, NGX_HTTP_RETELL_PG_SENDING);

    ngx_http_retell_pg_flush(conn);
}


/*
 * The op went away (timeout, client gone): the command goes on without
 * it.  A command still being sent keeps being flushed on write events,
 * so the server is never left waiting for the rest of a message; then
 * its answer is read and thrown away, and the connection serves again.
 */

void
ngx_http_retell_pg_conn_detach(ngx_http_retell_pg_conn_t *conn,
    ngx_msec_t timeout)
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
        ngx_http_retell_pg_state(conn, NGX_HTTP_RETELL_PG_DRAINING);
    }

    conn->detached = ngx_current_msec;
    ngx_add_timer(&conn->timer, timeout);

    /*
     * nginx's graceful exit closes idle connections: this one then
     * reports that the worker exits, and the pool decides
     */
    conn->c->idle = 1;

}


/* its events and its libpq session; the record is the pool's */

void
ngx_http_retell_pg_conn_close(ngx_http_retell_pg_conn_t *conn)
{
    if (conn->timer.timer_set) {
        ngx_del_timer(&conn->timer);
    }

    ngx_http_retell_pg_unwrap(conn);

    if (conn->result) {
        PQclear(conn->result);
        conn->result = NULL;
    }

    if (conn->pg) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
}


static ngx_int_t
ngx_http_retell_pg_wrap(ngx_http_retell_pg_conn_t *conn)
{
    int                fd;
    struct stat        st;
    ngx_connection_t  *c;

    fd = PQsocket(conn->pg);

    if (fd == -1) {
        ngx_log_error(NGX_LOG_ERR, &conn->log, 0,
                      "retell postgres: no socket");
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, &conn->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = conn;
    c->log = &conn->log;
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
    ngx_http_retell_pg_conn_t  *conn;

    c = ev->data;
    conn = c->data;

    if (c->close) {
        /* graceful exit, or worker_shutdown_timeout (c->error) */
        ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_SHUTDOWN);
        return;
    }

    switch (conn->state) {

    case NGX_HTTP_RETELL_PG_CONNECTING:
        ngx_http_retell_pg_connect_poll(conn);
        return;

    case NGX_HTTP_RETELL_PG_IDLE:
        if (!ngx_http_retell_pg_conn_alive(conn)) {
            ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_EXPIRED);
        }

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

    conn = ev->data;

    switch (conn->state) {

    case NGX_HTTP_RETELL_PG_CONNECTING:
        ngx_http_retell_pg_connect_failed(conn, "timed out");
        return;

    case NGX_HTTP_RETELL_PG_IDLE:
        ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_EXPIRED);
        return;

    default:
        /* a cancelled command that neither went out nor came back */
        ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_STUCK);
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
            if (conn->timer.timer_set) {
                ngx_del_timer(&conn->timer);
            }

            ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_CONNECTED);
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
    conn->failure = why;

    ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_CONNECT_FAILED);
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

    ngx_http_retell_pg_state(conn, conn->op ? NGX_HTTP_RETELL_PG_READING
                                            : NGX_HTTP_RETELL_PG_DRAINING);

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
                ngx_http_retell_pg_answered(conn);
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

ngx_int_t
ngx_http_retell_pg_conn_alive(ngx_http_retell_pg_conn_t *conn)
{
    u_char  err[NGX_HTTP_RETELL_PG_ERROR_LEN];

    if (!ngx_http_retell_pg_pending(conn)) {
        return 1;
    }

    if (PQconsumeInput(conn->pg)) {
        (void) PQisBusy(conn->pg);          /* parses, and logs, the FATAL */
    }

    ngx_log_error(NGX_LOG_WARN, &conn->log, 0,
                  "retell postgres idle connection to \"%s:%s\" closed: %s",
                  PQhost(conn->pg), PQport(conn->pg),
                  PQstatus(conn->pg) == CONNECTION_BAD
                  ? ngx_http_retell_pg_error(conn->pg, err, sizeof(err))
                  : (u_char *) "the server spoke unasked");

    return 0;
}


/*
 * Every result of the command is in: PREPARE's, then the command itself
 * goes out; the command's, and the pool has it
 */

static void
ngx_http_retell_pg_answered(ngx_http_retell_pg_conn_t *conn)
{
    ngx_int_t  rc;

    if (conn->preparing) {
        rc = ngx_http_retell_pg_prepared_answer(conn);

        if (rc == NGX_ERROR) {
            ngx_http_retell_pg_broken(conn);
            return;
        }

        if (rc == NGX_AGAIN) {
            /* prepared: now the command itself */
            ngx_http_retell_pg_state(conn, NGX_HTTP_RETELL_PG_SENDING);
            ngx_http_retell_pg_flush(conn);
            return;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "retell postgres: command answered in %M ms",
                   (ngx_msec_t) (ngx_current_msec - conn->sent));

    ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_ANSWERED);
}


static void
ngx_http_retell_pg_broken(ngx_http_retell_pg_conn_t *conn)
{
    ngx_http_retell_pg_release(conn, NGX_HTTP_RETELL_PG_BROKEN);
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

    ngx_log_error(level, &conn->log, 0, "retell postgres: %*s",
                  len, message);
}


/* PQerrorMessage() without its line ends, in buf */

u_char *
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


/*
 * Every state says itself: in its log's action ("... while reading
 * PostgreSQL's answer") and at debug level, so that "error_log ... debug"
 * shows where a stuck connection is
 */

static void
ngx_http_retell_pg_state(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_state_e state)
{
    static char  *actions[] = {
        "connecting to PostgreSQL",
        "keeping an idle PostgreSQL connection",
        "sending a command to PostgreSQL",
        "reading PostgreSQL's answer",
        "draining a cancelled PostgreSQL command"
    };

    conn->state = state;
    conn->log.action = actions[state];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, &conn->log, 0,
                   "retell postgres: %s, \"%s:%s\"", actions[state],
                   PQhost(conn->pg), PQport(conn->pg));
}


/* connected, no longer connecting: the pool keeps it idle, or closes it */

void
ngx_http_retell_pg_conn_connected(ngx_http_retell_pg_conn_t *conn)
{
    conn->state = NGX_HTTP_RETELL_PG_IDLE;
}
