
/*
 * Backends the pool leaves behind, asked to stop.
 *
 * Closing a connection whose statement still runs does not end its
 * backend: PostgreSQL notices a gone client only when it next reads or
 * writes the socket.  A backend waiting inside the server (a commit
 * waiting for a synchronous standby that went away, an I/O or LWLock
 * wait; lock_timeout ends only lock waits) would keep its connection slot
 * and its row locks, and every connection the pool gives up on (giving
 * way to a waiting delivery, the drain timeout, a worker's exit) would
 * add one, until max_connections is gone for every client of the
 * database.
 *
 * So before such a connection is closed, its backend is asked to stop
 * with pg_cancel_backend() over another connection of the pool: the
 * statement ends (a commit waiting for a standby returns, committed
 * locally, as it would on its own), the backend finds the socket closed
 * and exits.  libpq 15's PQcancel() would block on a connect; this goes
 * through the pool, on events, like any command.  The backend is named by
 * its pid and the port of our end of the socket, so a pid the server has
 * since given to another client is never signalled.
 *
 * There are as many slots as the pool has connections: a connection is
 * given up only while a slot is free, so the backends of a worker, live
 * and abandoned, never exceed twice the pool.  The cancel's timer is not
 * cancelable: a worker that exits gracefully waits for it.
 */


#include "ngx_http_retell_pg_conn.h"


#define NGX_HTTP_RETELL_PG_ORPHAN_TIMEOUT  5000
#define NGX_HTTP_RETELL_PG_ORPHAN_TRIES    3


/* $1 the backend's pid, $2 the client port it sees (-1: a Unix socket) */

static const char  ngx_http_retell_pg_orphan_sql[] =
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
    " WHERE pid = $1::int AND client_port = $2::int";

enum {
    NGX_HTTP_RETELL_PG_ORPHAN_PID = 0,
    NGX_HTTP_RETELL_PG_ORPHAN_PORT,
    NGX_HTTP_RETELL_PG_ORPHAN_NPARAMS
};


struct ngx_http_retell_pg_orphan_s {
    ngx_http_retell_pg_op_t   op;
    const char               *values[NGX_HTTP_RETELL_PG_ORPHAN_NPARAMS];
    u_char                    pid[NGX_INT_T_LEN + 1];
    u_char                    port[NGX_INT_T_LEN + 1];
    ngx_uint_t                tries;
    unsigned                  busy:1;
};


static void ngx_http_retell_pg_orphan_stopped(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_retell_pg_orphan_port(
    ngx_http_retell_pg_conn_t *conn, ngx_int_t *port);


ngx_int_t
ngx_http_retell_pg_orphans_init(ngx_http_retell_pg_pool_t *pool)
{
    pool->orphans = ngx_pcalloc(pool->mem, pool->max
                                * sizeof(ngx_http_retell_pg_orphan_t));

    return pool->orphans ? NGX_OK : NGX_ERROR;
}


/* a slot free to give up a connection with a statement running */

ngx_int_t
ngx_http_retell_pg_orphans_room(ngx_http_retell_pg_pool_t *pool)
{
    return pool->norphans < pool->max && !pool->closed;
}


/*
 * The connection is closed, its backend asked to stop.  NGX_DECLINED:
 * every slot is taken; the caller keeps the connection.
 */

ngx_int_t
ngx_http_retell_pg_abandon(ngx_http_retell_pg_conn_t *conn,
    const char *why)
{
    int                           pid;
    ngx_int_t                     rc, port;
    ngx_uint_t                    i;
    ngx_http_retell_pg_pool_t    *pool;
    ngx_http_retell_pg_orphan_t  *orphan;

    pool = conn->pool;

    if (!ngx_http_retell_pg_orphans_room(pool)) {
        return NGX_DECLINED;
    }

    pid = PQbackendPID(conn->pg);
    rc = ngx_http_retell_pg_orphan_port(conn, &port);

    ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                  "retell postgres: closing a connection to \"%s:%s\" still "
                  "draining a cancelled command after %M ms, %s; asking its "
                  "backend %d to stop", PQhost(conn->pg), PQport(conn->pg),
                  (ngx_msec_t) (ngx_current_msec - conn->detached), why, pid);

    ngx_http_retell_pg_close(conn);

    if (pid == 0 || rc != NGX_OK) {
        return NGX_OK;
    }

    for (i = 0; i < pool->max; i++) {
        if (!pool->orphans[i].busy) {
            break;
        }
    }

    orphan = &pool->orphans[i];
    ngx_memzero(orphan, sizeof(ngx_http_retell_pg_orphan_t));

    *ngx_sprintf(orphan->pid, "%d", pid) = '\0';
    *ngx_sprintf(orphan->port, "%i", port) = '\0';

    orphan->values[NGX_HTTP_RETELL_PG_ORPHAN_PID] = (char *) orphan->pid;
    orphan->values[NGX_HTTP_RETELL_PG_ORPHAN_PORT] = (char *) orphan->port;

    orphan->op.command = ngx_http_retell_pg_orphan_sql;
    orphan->op.nparams = NGX_HTTP_RETELL_PG_ORPHAN_NPARAMS;
    orphan->op.values = orphan->values;
    orphan->op.timeout = NGX_HTTP_RETELL_PG_ORPHAN_TIMEOUT;
    orphan->op.handler = ngx_http_retell_pg_orphan_stopped;
    orphan->op.data = orphan;
    orphan->op.log = pool->log;
    orphan->op.idempotent = 1;

    orphan->busy = 1;
    pool->norphans++;

    /* ahead of the deliveries: it frees what they wait for */

    ngx_http_retell_pg_run_first(pool, &orphan->op);

    return NGX_OK;
}


static void
ngx_http_retell_pg_orphan_stopped(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_http_retell_pg_pool_t    *pool;
    ngx_http_retell_pg_orphan_t  *orphan;

    orphan = op->data;
    pool = op->pool;

    if (error == NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        ngx_log_error(NGX_LOG_INFO, pool->log, 0,
                      "retell postgres: backend %s %s", orphan->pid,
                      PQntuples(res) ? "asked to stop"
                                     : "not found: gone already, or its "
                                       "connection went through a proxy");
        goto done;
    }

    if (++orphan->tries < NGX_HTTP_RETELL_PG_ORPHAN_TRIES
        && !pool->closed && !ngx_exiting)
    {
        ngx_http_retell_pg_run_first(pool, op);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                  "retell postgres: backend %s could not be asked to stop: "
                  "%s", orphan->pid, error ? error : PQresultErrorMessage(res));

done:

    orphan->busy = 0;
    pool->norphans--;

    /* a connection may give way again */
    ngx_http_retell_pg_dispatch(pool);
}


/* the port the server sees for our end of the socket; -1 for Unix */

static ngx_int_t
ngx_http_retell_pg_orphan_port(ngx_http_retell_pg_conn_t *conn,
    ngx_int_t *port)
{
    socklen_t       len;
    ngx_sockaddr_t  sa;

    len = sizeof(ngx_sockaddr_t);

    if (getsockname(PQsocket(conn->pg), &sa.sockaddr, &len) == -1) {
        return NGX_ERROR;
    }

    *port = (sa.sockaddr.sa_family == AF_UNIX)
            ? -1 : (ngx_int_t) ngx_inet_get_port(&sa.sockaddr);

    return NGX_OK;
}
