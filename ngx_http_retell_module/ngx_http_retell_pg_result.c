
/*
 * What a command's results mean.  A command is one statement in an
 * implicit transaction: its rows come first, and an error raised while
 * committing (a deferred constraint or trigger, a serialization failure)
 * comes after them, as a second result.  Every result is read, and the
 * first error wins over rows before it, so a command whose transaction
 * was rolled back never completes as a success.
 *
 * Some errors say only that the transaction lost a race (a deadlock, a
 * serialization failure): nothing was applied, and PostgreSQL's advice is
 * to run it again.  A delivery is, once, before its client hears of it.
 */


#include "ngx_http_retell_pg_conn.h"


void
ngx_http_retell_pg_result_keep(ngx_http_retell_pg_conn_t *conn,
    PGresult *res)
{
    if (conn->op == NULL && !conn->preparing) {
        PQclear(res);
        return;
    }

    if (conn->result == NULL) {
        conn->result = res;
        return;
    }

    if (PQresultStatus(res) == PGRES_FATAL_ERROR
        && PQresultStatus(conn->result) != PGRES_FATAL_ERROR)
    {
        PQclear(conn->result);
        conn->result = res;
        return;
    }

    PQclear(res);
}


/* 40001 serialization_failure, 40P01 deadlock_detected */

ngx_int_t
ngx_http_retell_pg_result_transient(PGresult *res)
{
    const char  *state;

    if (PQresultStatus(res) != PGRES_FATAL_ERROR) {
        return 0;
    }

    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state != NULL
           && (ngx_strcmp(state, "40001") == 0
               || ngx_strcmp(state, "40P01") == 0);
}
