
/*
 * Prepared statements (retell_postgres_prepare).  A command whose text
 * lives as long as the pool (op->named: the delivery's statement and the
 * batches') is parsed and planned once per connection: the first time a
 * connection runs it, PREPARE goes first, on its own round trip, then the
 * command is executed by name; afterwards only the execution is sent.
 *
 * What a connection has prepared is a bit each in conn->prepared.  A
 * connection that loses its statements (a transaction pooler handing it
 * another server connection, DISCARD ALL) or finds one it did not make is
 * closed after that command: a new connection starts with none.
 */


#include "ngx_http_retell_pg_conn.h"


static ngx_int_t ngx_http_retell_pg_statement(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op);


#define ngx_http_retell_pg_statement_bit(k)  ((uint64_t) 1 << (k))


/*
 * Sends conn->op's command: PREPARE first when this connection needs it.
 * Called again once PREPARE is answered, so late parameters (the budget
 * left, the members still in a batch) are set right before the command
 * goes out, each time.
 */

ngx_int_t
ngx_http_retell_pg_conn_command(ngx_http_retell_pg_conn_t *conn)
{
    u_char                    name[NGX_HTTP_RETELL_PG_NAME_LEN];
    ngx_int_t                 k;
    ngx_http_retell_pg_op_t  *op;

    op = conn->op;

    if (op->prepare) {
        op->prepare(op);
    }

    k = ngx_http_retell_pg_statement(conn->pool, op);

    if (k == NGX_DECLINED) {
        return PQsendQueryParams(conn->pg, op->command, op->nparams, NULL,
                                 op->values, NULL, NULL, 0)
               ? NGX_OK : NGX_ERROR;
    }

    ngx_sprintf(name, "retell_%i%Z", k);

    if (!(conn->prepared & ngx_http_retell_pg_statement_bit(k))) {
        conn->preparing = k + 1;

        return PQsendPrepare(conn->pg, (char *) name, op->command,
                             op->nparams, NULL)
               ? NGX_OK : NGX_ERROR;
    }

    return PQsendQueryPrepared(conn->pg, (char *) name, op->nparams,
                               op->values, NULL, NULL, 0)
           ? NGX_OK : NGX_ERROR;
}


/*
 * PREPARE's answer is in (conn->result).  NGX_AGAIN: the command itself
 * was sent; NGX_OK: nothing more to send (the op went away, or PREPARE
 * failed and its error is the op's answer); NGX_ERROR: libpq refused.
 */

ngx_int_t
ngx_http_retell_pg_conn_prepared(ngx_http_retell_pg_conn_t *conn)
{
    ngx_uint_t  k;

    k = conn->preparing - 1;
    conn->preparing = 0;

    if (conn->result == NULL
        || PQresultStatus(conn->result) != PGRES_COMMAND_OK)
    {
        return NGX_OK;
    }

    /* the server has it, whether or not an op still waits for it */

    conn->prepared |= ngx_http_retell_pg_statement_bit(k);

    PQclear(conn->result);
    conn->result = NULL;

    if (conn->op == NULL) {
        return NGX_OK;
    }

    if (ngx_http_retell_pg_conn_command(conn) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * The server does not have the statement (26000), has another of that
 * name (42P05), or cannot run it as planned after its result type changed
 * (0A000): this connection's names cannot be trusted any more
 */

ngx_int_t
ngx_http_retell_pg_conn_stale(ngx_http_retell_pg_conn_t *conn, PGresult *res)
{
    const char  *state;

    if (conn->prepared == 0 && conn->preparing == 0) {
        return 0;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    if (state == NULL
        || (ngx_strcmp(state, "26000") != 0
            && ngx_strcmp(state, "42P05") != 0
            && ngx_strcmp(state, "0A000") != 0))
    {
        return 0;
    }

    ngx_log_error(NGX_LOG_ERR, conn->pool->log, 0,
                  "retell postgres: prepared statements lost on a "
                  "connection to \"%s:%s\" (SQLSTATE %s), closing it; "
                  "behind a pooler in transaction mode set "
                  "\"retell_postgres_prepare off\"",
                  PQhost(conn->pg), PQport(conn->pg), state);

    return 1;
}


/* the statement's number in the pool, or NGX_DECLINED: sent unnamed */

static ngx_int_t
ngx_http_retell_pg_statement(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    ngx_uint_t  k;

    if (!pool->prepare || !op->named) {
        return NGX_DECLINED;
    }

    for (k = 0; k < pool->nstatements; k++) {
        if (pool->statements[k] == op->command) {
            return k;
        }
    }

    if (k == NGX_HTTP_RETELL_PG_STATEMENTS) {
        return NGX_DECLINED;
    }

    pool->statements[k] = op->command;
    pool->nstatements++;

    return k;
}
