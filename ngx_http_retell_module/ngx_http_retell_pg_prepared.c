
/*
 * Prepared statements (retell_postgres_prepare).  A command whose text
 * lives as long as the pool (op->named: the delivery's statement and the
 * batches') is parsed and planned once per connection: the first time a
 * connection runs it, PREPARE goes first, on its own round trip, then the
 * command is executed by name; afterwards only the execution is sent.
 *
 * A statement is named for its text ("retell_" and the text's CRC32), so
 * one name means one text in every worker and nginx instance: a PREPARE
 * told the name exists already (42P05) finds the same statement.  What a
 * connection has prepared is a bit each in conn->prepared.  A command
 * that fails on its name is applied again on another connection (an
 * error result means nothing was committed).
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
ngx_http_retell_pg_prepared_send(ngx_http_retell_pg_conn_t *conn)
{
    u_char                    name[NGX_HTTP_RETELL_PG_NAME_LEN];
    ngx_int_t                 k;
    ngx_http_retell_pg_op_t  *op;

    op = conn->op;

    if (op->prepare) {
        op->prepare(op);
    }

    k = ngx_http_retell_pg_statement(conn->pool, op);

    conn->named = (k != NGX_DECLINED);

    if (k == NGX_DECLINED) {
        return PQsendQueryParams(conn->pg, op->command, op->nparams, NULL,
                                 op->values, NULL, NULL, 0)
               ? NGX_OK : NGX_ERROR;
    }

    ngx_sprintf(name, "retell_%08xD%Z", conn->pool->crcs[k]);

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
ngx_http_retell_pg_prepared_answer(ngx_http_retell_pg_conn_t *conn)
{
    ngx_uint_t   k;
    const char  *state;

    k = conn->preparing - 1;
    conn->preparing = 0;

    if (conn->result == NULL) {
        return NGX_OK;
    }

    if (PQresultStatus(conn->result) != PGRES_COMMAND_OK) {
        state = PQresultErrorField(conn->result, PG_DIAG_SQLSTATE);

        /* the session has it already, from another client of a pooler */

        if (state == NULL || ngx_strcmp(state, "42P05") != 0) {
            return NGX_OK;
        }
    }

    /* the server has it, whether or not an op still waits for it */

    conn->prepared |= ngx_http_retell_pg_statement_bit(k);

    PQclear(conn->result);
    conn->result = NULL;

    if (conn->op == NULL) {
        return NGX_OK;
    }

    if (ngx_http_retell_pg_prepared_send(conn) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_AGAIN;
}


/*
 * A named command failed because of its name, before anything ran: the
 * connection is closed once answered (a new one starts with no names)
 * and the op may be applied again.  The session does not have the
 * statement (26000): something between hands this connection's commands
 * to other sessions, a pooler in transaction mode, so the worker sends
 * its statements unnamed from then on.  The statement no longer matches
 * the function after a migration, its result type (0A000) or the types
 * of its parameters, fixed when it was prepared (42883, 42804): a new
 * connection prepares it afresh.  The same codes raised inside the
 * function are its own errors, answered as such.
 */

ngx_int_t
ngx_http_retell_pg_prepared_stale(ngx_http_retell_pg_conn_t *conn,
    PGresult *res)
{
    ngx_uint_t                  level;
    const char                 *state;
    ngx_http_retell_pg_pool_t  *pool;

    if (!conn->named || PQresultStatus(res) != PGRES_FATAL_ERROR) {
        return 0;
    }

    pool = conn->pool;
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    /*
     * raised while the function ran (a PL/pgSQL context comes with it):
     * the function's own error, not the statement's name or plan; a new
     * connection would fail the same way
     */

    if (state == NULL || PQresultErrorField(res, PG_DIAG_CONTEXT) != NULL) {
        return 0;
    }

    if (ngx_strcmp(state, "0A000") == 0
        || ngx_strcmp(state, "42883") == 0
        || ngx_strcmp(state, "42804") == 0)
    {
        ngx_log_error(NGX_LOG_WARN, pool->log, 0,
                      "retell postgres: a prepared statement on a "
                      "connection to \"%s:%s\" no longer matches its "
                      "function (SQLSTATE %s), closing the connection",
                      PQhost(conn->pg), PQport(conn->pg), state);
        return 1;
    }

    if (ngx_strcmp(state, "26000") != 0) {
        return 0;
    }

    /* once per worker: the others were in flight already */
    level = pool->prepare ? NGX_LOG_ERR : NGX_LOG_INFO;

    ngx_log_error(level, pool->log, 0,
                  "retell postgres: prepared statements lost on a "
                  "connection to \"%s:%s\" (SQLSTATE %s): this worker "
                  "sends its statements unnamed from now on; behind a "
                  "pooler in transaction mode set "
                  "\"retell_postgres_prepare off\"",
                  PQhost(conn->pg), PQport(conn->pg), state);

    pool->prepare = 0;

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
    pool->crcs[k] = ngx_crc32_long((u_char *) op->command,
                                   ngx_strlen(op->command));
    pool->nstatements++;

    return k;
}
