
/*
 * Batches.  Deliveries that wait for a connection together are applied
 * together: one statement, so one transaction, one commit and one round
 * trip for all of them,
 *
 *     SELECT s.*, 0 FROM (<command>) s UNION ALL SELECT s.*, 1 FROM ...
 *
 * each <command> with its parameters renumbered.  The last column says
 * whose row it is; each member gets a result of its own row alone, so
 * its handler cannot tell it ran in a batch.  A batch only forms when
 * every connection is busy, so it costs no latency when the pool keeps
 * up, and grows with the queue up to retell_postgres_batch.
 *
 * A batch commits all or nothing.  When its statement fails (one member's
 * error, a row lock held too long: the members' lock wait is short in a
 * batch), each member is applied again alone, at the head of the queue,
 * with its own time; a connection lost is retried as for any op.  A
 * member that times out or whose client goes away leaves the batch, and
 * the last to leave cancels it.
 */


#include "ngx_http_retell_pg_conn.h"


struct ngx_http_retell_pg_batch_s {
    ngx_http_retell_pg_op_t         op;         /* the batch's statement */
    ngx_queue_t                     queue;      /* in pool->batches: free */
    ngx_uint_t                      n;          /* members, left or not */
    ngx_uint_t                      live;
    ngx_http_retell_pg_op_t        *member[NGX_HTTP_RETELL_PG_BATCH_MAX];
    const char                    **values;     /* the members', in turn */
};


static ngx_http_retell_pg_batch_t *ngx_http_retell_pg_batch_get(
    ngx_http_retell_pg_pool_t *pool, ngx_http_retell_pg_op_t *op);
static ngx_int_t ngx_http_retell_pg_batch_sql(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op);
static void ngx_http_retell_pg_batch_prepare(ngx_http_retell_pg_op_t *op);
static void ngx_http_retell_pg_batch_done(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static PGresult *ngx_http_retell_pg_batch_row(PGresult *res, int row,
    int nfields);
static void ngx_http_retell_pg_batch_free(ngx_http_retell_pg_batch_t *b);
static ngx_http_retell_pg_op_t *ngx_http_retell_pg_batch_next(
    ngx_http_retell_pg_pool_t *pool, ngx_http_retell_pg_op_t *op, size_t size);


#define NGX_HTTP_RETELL_PG_BATCH_FIELDS  32

/*
 * a delivery with less time than this left goes alone: in a batch its
 * budget, checked against the whole statement, could fail every member
 */
#define NGX_HTTP_RETELL_PG_BATCH_FLOOR   50

/*
 * the members' parameters in one statement, at most: libpq builds the
 * whole statement in its buffer, and a connection keeps its largest
 */
#define NGX_HTTP_RETELL_PG_BATCH_BYTES   (1024 * 1024)


/* op was just taken off the queue: those batchable behind it join it */

ngx_http_retell_pg_op_t *
ngx_http_retell_pg_batch(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    size_t                       size;
    ngx_uint_t                   k;
    ngx_msec_t                   left, timeout;
    ngx_http_retell_pg_op_t     *next;
    ngx_http_retell_pg_batch_t  *b;

    if (ngx_http_retell_pg_time_left(op) < NGX_HTTP_RETELL_PG_BATCH_FLOOR
        || ngx_http_retell_pg_batch_next(pool, op, op->size) == NULL)
    {
        return op;
    }

    b = ngx_http_retell_pg_batch_get(pool, op);
    if (b == NULL) {
        return op;                  /* no memory: it goes alone */
    }

    b->member[0] = op;
    b->n = 1;
    timeout = ngx_http_retell_pg_time_left(op);
    size = op->size;

    while (b->n < pool->batch_max) {
        next = ngx_http_retell_pg_batch_next(pool, op, size);
        if (next == NULL) {
            break;
        }

        size += next->size;

        ngx_queue_remove(&next->queue);
        next->waiting = 0;
        pool->nwaiting--;

        b->member[b->n++] = next;

        left = ngx_http_retell_pg_time_left(next);
        timeout = ngx_max(timeout, left);
    }

    b->live = b->n;

    /* the batch lives as long as its longest-lived member */

    b->op.pool = pool;
    b->op.command = pool->batch_sql[b->n];
    b->op.nparams = (int) b->n * op->nparams;
    b->op.values = b->values;
    b->op.timeout = ngx_max(timeout, 1);
    b->op.size = size;
    b->op.handler = ngx_http_retell_pg_batch_done;
    b->op.prepare = ngx_http_retell_pg_batch_prepare;
    b->op.data = b;
    b->op.log = pool->log;
    b->op.idempotent = 1;       /* each member is */
    b->op.batchable = 0;
    b->op.alone = 0;
    b->op.timed_out = 0;
    b->op.named = 1;            /* pool->batch_sql lives as the pool */

    ngx_http_retell_pg_arm(&b->op);

    for (k = 0; k < b->n; k++) {
        b->member[k]->batch = b;
        ngx_http_retell_pg_attempt_start(b->member[k], b->n);
    }

    ngx_http_retell_metrics_batch(b->n);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "retell postgres: batch of %ui, %M ms",
                   b->n, b->op.timeout);

    return &b->op;
}


/*
 * the op at the head of the queue, if it may join op's batch, which
 * carries size bytes so far
 */

static ngx_http_retell_pg_op_t *
ngx_http_retell_pg_batch_next(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op, size_t size)
{
    ngx_http_retell_pg_op_t  *next;

    if (ngx_queue_empty(&pool->waiting)) {
        return NULL;
    }

    next = ngx_queue_data(ngx_queue_head(&pool->waiting),
                          ngx_http_retell_pg_op_t, queue);

    if (!ngx_http_retell_pg_may_batch(next) || next->command != op->command
        || next->nparams != op->nparams
        || ngx_http_retell_pg_time_left(next) < NGX_HTTP_RETELL_PG_BATCH_FLOOR
        || size + next->size > NGX_HTTP_RETELL_PG_BATCH_BYTES)
    {
        return NULL;
    }

    return next;
}


/* a member timed out or its request ended: the batch goes on without it */

void
ngx_http_retell_pg_batch_leave(ngx_http_retell_pg_op_t *op)
{
    ngx_uint_t                   i;
    ngx_http_retell_pg_batch_t  *b;

    b = op->batch;
    op->batch = NULL;

    for (i = 0; i < b->n; i++) {
        if (b->member[i] == op) {
            b->member[i] = NULL;
            b->live--;
            break;
        }
    }

    if (b->live == 0) {
        /*
         * its statement is drained off-line, as a cancelled op's, and
         * counted as its last member left: timed out or gone
         */
        b->op.timed_out = op->timed_out;
        ngx_http_retell_pg_cancel(&b->op);
        ngx_http_retell_pg_batch_free(b);
    }
}


static ngx_http_retell_pg_batch_t *
ngx_http_retell_pg_batch_get(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    ngx_queue_t                 *q;
    ngx_http_retell_pg_batch_t  *b;

    if (pool->batch_command == NULL) {
        if (ngx_http_retell_pg_batch_sql(pool, op) != NGX_OK) {
            return NULL;
        }
    }

    /* one command is batched: the first batchable one seen */

    if (op->command != pool->batch_command
        || op->nparams != pool->batch_nparams)
    {
        return NULL;
    }

    if (!ngx_queue_empty(&pool->batches)) {
        q = ngx_queue_head(&pool->batches);
        ngx_queue_remove(q);
        return ngx_queue_data(q, ngx_http_retell_pg_batch_t, queue);
    }

    /* as many as there are connections, at most: kept for the worker */

    b = ngx_pcalloc(pool->mem, sizeof(ngx_http_retell_pg_batch_t));
    if (b == NULL) {
        return NULL;
    }

    b->values = ngx_palloc(pool->mem, pool->batch_max * op->nparams
                                      * sizeof(const char *));
    if (b->values == NULL) {
        return NULL;
    }

    return b;
}


/*
 * The statements for 1 to batch_max members, made once: the command as
 * a subquery, its $N renumbered for each member, and the member's number
 */

static ngx_int_t
ngx_http_retell_pg_batch_sql(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op)
{
    size_t       len;
    u_char      *p;
    ngx_int_t    n;
    ngx_uint_t   i, k;
    const char  *c, *d;

    pool->batch_sql = ngx_pcalloc(pool->mem,
                                  (pool->batch_max + 1) * sizeof(char *));
    if (pool->batch_sql == NULL) {
        return NGX_ERROR;
    }

    len = sizeof(" UNION ALL SELECT s.*, 99 FROM () s") - 1
          + ngx_strlen(op->command)
          + op->nparams * (NGX_INT_T_LEN - 1);

    for (k = 1; k <= pool->batch_max; k++) {
        p = ngx_pnalloc(pool->mem, k * len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        pool->batch_sql[k] = (char *) p;

        for (i = 0; i < k; i++) {
            p = ngx_sprintf(p, "%sSELECT s.*, %ui FROM (",
                            i ? " UNION ALL " : "", i);

            for (c = op->command; *c; /* void */) {
                if (*c != '$' || c[1] < '0' || c[1] > '9') {
                    *p++ = *c++;
                    continue;
                }

                for (d = ++c; *d >= '0' && *d <= '9'; d++) { /* void */ }

                n = ngx_atoi((u_char *) c, d - c);
                if (n == NGX_ERROR) {
                    return NGX_ERROR;
                }

                p = ngx_sprintf(p, "$%i", n + (ngx_int_t) (i * op->nparams));
                c = d;
            }

            p = ngx_cpymem(p, ") s", 3);
        }

        *p = '\0';
    }

    pool->batch_command = op->command;
    pool->batch_nparams = op->nparams;

    return NGX_OK;
}


/* right before it is sent, or sent again: the members still in it */

static void
ngx_http_retell_pg_batch_prepare(ngx_http_retell_pg_op_t *op)
{
    ngx_uint_t                   i, n;
    ngx_http_retell_pg_op_t     *m;
    ngx_http_retell_pg_batch_t  *b;

    b = op->data;

    for (i = 0, n = 0; i < b->n; i++) {
        m = b->member[i];

        if (m == NULL) {
            continue;
        }

        b->member[n] = m;

        if (m->prepare) {
            m->prepare(m);
        }

        ngx_memcpy(&b->values[n * m->nparams], m->values,
                   m->nparams * sizeof(const char *));
        n++;
    }

    b->n = n;
    op->command = op->pool->batch_sql[n];
    op->nparams = (int) n * op->pool->batch_nparams;
}


static void
ngx_http_retell_pg_batch_done(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    int                          row, last;
    ngx_int_t                    i;
    ngx_uint_t                   k;
    PGresult                    *one;
    ngx_http_retell_pg_op_t     *m;
    ngx_http_retell_pg_pool_t   *pool;
    ngx_http_retell_pg_batch_t  *b;

    b = op->data;
    pool = op->pool;

    if (error) {
        /* timed out, lost after the retries, the worker shutting down */

        for (k = 0; k < b->n; k++) {
            m = b->member[k];

            if (m) {
                m->batch = NULL;
                ngx_http_retell_pg_complete(m, NULL, error);
            }
        }

        ngx_http_retell_pg_batch_free(b);
        return;
    }

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) < 2) {

        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "retell postgres: a batch of %ui deliveries failed, "
                      "applying each alone: %s",
                      b->live, PQresultErrorMessage(res));

        /* at the head of the queue, in their order, with their own time */

        for (k = b->n; k-- > 0; /* void */) {
            m = b->member[k];

            if (m == NULL) {
                continue;
            }

            m->batch = NULL;
            m->alone = 1;

            ngx_http_retell_pg_requeue(m);
        }

        ngx_http_retell_pg_batch_free(b);
        ngx_http_retell_pg_dispatch(pool);
        return;
    }

    last = PQnfields(res) - 1;

    for (row = 0; row < PQntuples(res); row++) {
        i = ngx_atoi((u_char *) PQgetvalue(res, row, last),
                     PQgetlength(res, row, last));

        if (i == NGX_ERROR || (ngx_uint_t) i >= b->n
            || b->member[i] == NULL)
        {
            continue;               /* it left */
        }

        m = b->member[i];
        b->member[i] = NULL;
        m->batch = NULL;

        one = ngx_http_retell_pg_batch_row(res, row, last);

        ngx_http_retell_pg_complete(m, one, one ? NULL : "out of memory");
    }

    for (k = 0; k < b->n; k++) {
        m = b->member[k];

        if (m) {
            m->batch = NULL;
            ngx_http_retell_pg_complete(m, NULL, "no row in the batch");
        }
    }

    ngx_http_retell_pg_batch_free(b);
}


/* a result of one row, the member's, without the member's number */

static PGresult *
ngx_http_retell_pg_batch_row(PGresult *res, int row, int nfields)
{
    int            j;
    PGresult      *one;
    PGresAttDesc   attrs[NGX_HTTP_RETELL_PG_BATCH_FIELDS];

    if (nfields > NGX_HTTP_RETELL_PG_BATCH_FIELDS) {
        return NULL;
    }

    one = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (one == NULL) {
        return NULL;
    }

    for (j = 0; j < nfields; j++) {
        attrs[j].name = PQfname(res, j);
        attrs[j].tableid = PQftable(res, j);
        attrs[j].columnid = PQftablecol(res, j);
        attrs[j].format = PQfformat(res, j);
        attrs[j].typid = PQftype(res, j);
        attrs[j].typlen = PQfsize(res, j);
        attrs[j].atttypmod = PQfmod(res, j);
    }

    if (!PQsetResultAttrs(one, nfields, attrs)) {
        PQclear(one);
        return NULL;
    }

    for (j = 0; j < nfields; j++) {
        if (!PQsetvalue(one, 0, j,
                        PQgetisnull(res, row, j) ? NULL
                                                 : PQgetvalue(res, row, j),
                        PQgetisnull(res, row, j) ? -1
                                                 : PQgetlength(res, row, j)))
        {
            PQclear(one);
            return NULL;
        }
    }

    return one;
}


static void
ngx_http_retell_pg_batch_free(ngx_http_retell_pg_batch_t *b)
{
    b->n = 0;
    b->live = 0;

    ngx_queue_insert_head(&b->op.pool->batches, &b->queue);
}
