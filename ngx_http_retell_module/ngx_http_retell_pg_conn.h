
/*
 * Inside the PostgreSQL pool: the pool (ngx_http_retell_pg.c: admission,
 * the wait queue, the circuit breaker, completions) and its connections
 * (ngx_http_retell_pg_conn.c: libpq on nginx events).
 */


#ifndef _NGX_HTTP_RETELL_PG_CONN_H_INCLUDED_
#define _NGX_HTTP_RETELL_PG_CONN_H_INCLUDED_


#include "ngx_http_retell_pg.h"
#include "ngx_http_retell_metrics.h"

#include <sys/stat.h>


/* the delivery's statement, and the batches' for 1 to 32 members */
#define NGX_HTTP_RETELL_PG_STATEMENTS  (NGX_HTTP_RETELL_PG_BATCH_MAX + 1)
#define NGX_HTTP_RETELL_PG_NAME_LEN    (sizeof("retell_") + 8)


typedef struct ngx_http_retell_pg_orphan_s  ngx_http_retell_pg_orphan_t;


/* what a connection reports to its pool: ngx_http_retell_pg_release() */

typedef enum {
    NGX_HTTP_RETELL_PG_CONNECTED = 0,   /* made, nothing sent yet */
    NGX_HTTP_RETELL_PG_CONNECT_FAILED,  /* refused, or conn->failure */
    NGX_HTTP_RETELL_PG_ANSWERED,        /* conn->op's conn->result is in */
    NGX_HTTP_RETELL_PG_BROKEN,          /* lost, its op not answered */
    NGX_HTTP_RETELL_PG_EXPIRED,         /* idle too long, or closed idle */
    NGX_HTTP_RETELL_PG_STUCK,           /* a cancelled command neither went
                                           out nor came back in time */
    NGX_HTTP_RETELL_PG_SHUTDOWN         /* the worker exits (c->close) */
} ngx_http_retell_pg_report_e;


typedef enum {
    NGX_HTTP_RETELL_PG_CONNECTING = 0,
    NGX_HTTP_RETELL_PG_IDLE,
    NGX_HTTP_RETELL_PG_SENDING,     /* op may be NULL: cancelled */
    NGX_HTTP_RETELL_PG_READING,
    NGX_HTTP_RETELL_PG_DRAINING     /* its op went away; results discarded */
} ngx_http_retell_pg_state_e;


struct ngx_http_retell_pg_conn_s {
    ngx_queue_t                     queue;      /* idle or free list */
    ngx_queue_t                     all;        /* every open connection */
    ngx_http_retell_pg_pool_t      *pool;
    PGconn                         *pg;
    ngx_connection_t               *c;          /* its events only */
    ino_t                           inode;      /* of the wrapped socket */
    ngx_http_retell_pg_op_t        *op;
    PGresult                       *result;
    ngx_http_retell_pg_state_e      state;
    ngx_log_t                       log;        /* its action: the state */
    ngx_uint_t                      requests;
    ngx_uint_t                      host;       /* index in pool->hosts */
    ngx_msec_t                      detached;   /* when its op went away */
    const char                     *failure;    /* why a connect failed */
    ngx_msec_t                      sent;       /* when its op was sent */

    uint64_t                        prepared;   /* a bit per statement */
    ngx_uint_t                      preparing;  /* 1 + the statement */
    unsigned                        named:1;    /* the command in flight */

    /* connect, idle and drain: kept across libpq's socket changes */
    ngx_event_t                     timer;

    unsigned                        queued:1;   /* in pool->idle */
    unsigned                        large:1;    /* carried a large command */
};


struct ngx_http_retell_pg_pool_s {
    ngx_str_t                      *hosts;      /* one conninfo each */
    ngx_uint_t                      nhosts;
    ngx_uint_t                      host;       /* the one to try, or the
                                                   last that worked */
    ngx_uint_t                      failures;   /* hosts failed in a row */

    ngx_uint_t                      max;
    ngx_uint_t                      count;      /* open or opening */
    ngx_uint_t                      connecting;
    ngx_uint_t                      nwaiting;
    ngx_uint_t                      max_waiting;
    ngx_msec_t                      connect_timeout;

    ngx_queue_t                     idle;
    ngx_queue_t                     waiting;
    ngx_event_t                     dispatch;   /* posted by run() */
    ngx_event_t                     hold;       /* see pg_hold() */
    ngx_msec_t                      batch_hold;
    ngx_queue_t                     free;
    ngx_queue_t                     all;

    /* the circuit breaker: open ("down") after every host failed */
    ngx_msec_t                      backoff;
    ngx_msec_t                      next_probe;   /* without deliveries */
    ngx_msec_t                      next_retry;   /* with deliveries */
    ngx_event_t                     probe;

    /* batches: one command, its statements for 1 to batch_max calls */
    ngx_uint_t                      batch_max;
    const char                     *batch_command;
    int                             batch_nparams;
    char                          **batch_sql;
    ngx_queue_t                     batches;    /* free ones */

    /* prepared statements: the commands that have a name, and its CRC32 */
    const char                     *statements[NGX_HTTP_RETELL_PG_STATEMENTS];
    uint32_t                        crcs[NGX_HTTP_RETELL_PG_STATEMENTS];
    ngx_uint_t                      nstatements;

    /* backends of connections given up, being asked to stop */
    ngx_http_retell_pg_orphan_t    *orphans;    /* max of them */
    ngx_uint_t                      norphans;

    ngx_log_t                      *log;
    ngx_pool_t                     *mem;
    unsigned                        down:1;
    unsigned                        closed:1;
    unsigned                        prepare:1;
};


/* may share a statement with those of its command waiting with it */
#define ngx_http_retell_pg_may_batch(op)  ((op)->batchable && !(op)->alone)


/* === in ngx_http_retell_pg.c: the one call up, from the connections === */
void ngx_http_retell_pg_release(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_report_e report);

/* === in ngx_http_retell_pg.c, for the rest of the pool === */
void ngx_http_retell_pg_dispatch(ngx_http_retell_pg_pool_t *pool);
ngx_int_t ngx_http_retell_pg_open(ngx_http_retell_pg_pool_t *pool);
void ngx_http_retell_pg_close(ngx_http_retell_pg_conn_t *conn);
void ngx_http_retell_pg_detach(ngx_http_retell_pg_conn_t *conn);

/* === in ngx_http_retell_pg_op.c, for the pool === */
void ngx_http_retell_pg_complete(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error);
void ngx_http_retell_pg_requeue(ngx_http_retell_pg_op_t *op);
void ngx_http_retell_pg_arm(ngx_http_retell_pg_op_t *op);
void ngx_http_retell_pg_run_first(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op);
void ngx_http_retell_pg_attempt_start(ngx_http_retell_pg_op_t *op,
    ngx_uint_t batch_size);
void ngx_http_retell_pg_attempt_end(ngx_http_retell_pg_op_t *op);

/* === in ngx_http_retell_pg_breaker.c, for the pool === */
void ngx_http_retell_pg_host_up(ngx_http_retell_pg_pool_t *pool,
    ngx_uint_t host);
void ngx_http_retell_pg_host_failed(ngx_http_retell_pg_pool_t *pool,
    ngx_uint_t host);
void ngx_http_retell_pg_schedule(ngx_http_retell_pg_pool_t *pool);
void ngx_http_retell_pg_probe(ngx_event_t *ev);

/* === in ngx_http_retell_pg_batch.c, for the pool === */
ngx_http_retell_pg_op_t *ngx_http_retell_pg_batch(
    ngx_http_retell_pg_pool_t *pool, ngx_http_retell_pg_op_t *op);
void ngx_http_retell_pg_batch_leave(ngx_http_retell_pg_op_t *op);

/* === in ngx_http_retell_pg_conn.c: libpq on nginx events, for the pool === */
ngx_int_t ngx_http_retell_pg_conn_connect(ngx_http_retell_pg_conn_t *conn,
    const char *conninfo, ngx_msec_t timeout);
ngx_int_t ngx_http_retell_pg_conn_alive(ngx_http_retell_pg_conn_t *conn);
void ngx_http_retell_pg_conn_connected(ngx_http_retell_pg_conn_t *conn);
ngx_int_t ngx_http_retell_pg_conn_reusable(ngx_http_retell_pg_conn_t *conn);
void ngx_http_retell_pg_conn_idle(ngx_http_retell_pg_conn_t *conn,
    ngx_msec_t timeout);
void ngx_http_retell_pg_conn_send(ngx_http_retell_pg_conn_t *conn,
    ngx_http_retell_pg_op_t *op);
void ngx_http_retell_pg_conn_detach(ngx_http_retell_pg_conn_t *conn,
    ngx_msec_t timeout);
void ngx_http_retell_pg_conn_close(ngx_http_retell_pg_conn_t *conn);
u_char *ngx_http_retell_pg_error(PGconn *pg, u_char *buf, size_t len);

/* === in ngx_http_retell_pg_orphan.c, for the pool === */
ngx_int_t ngx_http_retell_pg_orphans_init(ngx_http_retell_pg_pool_t *pool);
ngx_int_t ngx_http_retell_pg_orphans_room(ngx_http_retell_pg_pool_t *pool);
ngx_int_t ngx_http_retell_pg_abandon(ngx_http_retell_pg_conn_t *conn,
    const char *why);

/* === in ngx_http_retell_pg_result.c, for the connections and the pool === */
void ngx_http_retell_pg_result_keep(ngx_http_retell_pg_conn_t *conn,
    PGresult *res);
ngx_int_t ngx_http_retell_pg_result_transient(PGresult *res);

/* === in ngx_http_retell_pg_prepared.c, for the connections and the pool === */
ngx_int_t ngx_http_retell_pg_prepared_send(ngx_http_retell_pg_conn_t *conn);
ngx_int_t ngx_http_retell_pg_prepared_answer(ngx_http_retell_pg_conn_t *conn);
ngx_int_t ngx_http_retell_pg_prepared_stale(ngx_http_retell_pg_conn_t *conn,
    PGresult *res);


#endif /* _NGX_HTTP_RETELL_PG_CONN_H_INCLUDED_ */
