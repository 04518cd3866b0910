
/*
 * A per-worker pool of non-blocking libpq connections driven by nginx's
 * event loop.  A caller fills an ngx_http_retell_pg_op_t and hands it to
 * ngx_http_retell_pg_run(); its handler is called once, always from an
 * event (a posted event or the op's timer), never from inside run(), with
 * the command's result or an error.
 */


#ifndef _NGX_HTTP_RETELL_PG_H_INCLUDED_
#define _NGX_HTTP_RETELL_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <libpq-fe.h>


#define NGX_HTTP_RETELL_PG_ERROR_LEN  256
#define NGX_HTTP_RETELL_PG_ATTEMPTS   4     /* timed, at most */


typedef struct ngx_http_retell_pg_pool_s  ngx_http_retell_pg_pool_t;

#define NGX_HTTP_RETELL_PG_STATES  5    /* ngx_http_retell_pg_state_e */

typedef struct {
    ngx_uint_t                  connections[NGX_HTTP_RETELL_PG_STATES];
    ngx_uint_t                  waiting;
    ngx_uint_t                  down;           /* the circuit is open */
} ngx_http_retell_pg_stats_t;
typedef struct ngx_http_retell_pg_conn_s  ngx_http_retell_pg_conn_t;
typedef struct ngx_http_retell_pg_op_s    ngx_http_retell_pg_op_t;
typedef struct ngx_http_retell_pg_batch_s ngx_http_retell_pg_batch_t;

/*
 * res is NULL when error is set (timeout, connection lost); otherwise
 * error is NULL and res is freed by the pool after the handler returns
 */
typedef void (*ngx_http_retell_pg_handler_pt)(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);

/* called right before the command is sent, to set late parameters */
typedef void (*ngx_http_retell_pg_prepare_pt)(ngx_http_retell_pg_op_t *op);


struct ngx_http_retell_pg_op_s {
    ngx_queue_t                     queue;      /* in the wait queue */
    ngx_http_retell_pg_pool_t      *pool;
    ngx_http_retell_pg_conn_t      *conn;       /* while running */

    const char                     *command;
    int                             nparams;
    const char * const             *values;

    ngx_msec_t                      timeout;    /* from run() to result */
    size_t                          size;       /* its parameters, about */

    /* each attempt's time in the database, for $retell_db_time */
    ngx_msec_t                      attempt_start;  /* 0: none running */
    ngx_msec_t                      attempt[NGX_HTTP_RETELL_PG_ATTEMPTS];
    ngx_uint_t                      attempts;
    ngx_uint_t                      batch_size;     /* its last attempt's */
    ngx_event_t                     timer;

    ngx_event_t                     done;       /* posted: calls handler */
    PGresult                       *res;
    const char                     *error;
    u_char                          error_text[NGX_HTTP_RETELL_PG_ERROR_LEN];

    ngx_http_retell_pg_handler_pt   handler;
    ngx_http_retell_pg_prepare_pt   prepare;    /* may be NULL */
    void                           *data;
    ngx_log_t                      *log;

    ngx_http_retell_pg_batch_t     *batch;      /* the one it runs in */

    unsigned                        waiting:1;
    unsigned                        timed_out:1;
    unsigned                        retried:1;
    unsigned                        idempotent:1;  /* safe to send twice */
    unsigned                        urgent:1;   /* ahead of the queue */

    /*
     * may share a statement and a transaction with others of the same
     * command that wait with it: the command is one SELECT of one row
     */
    unsigned                        batchable:1;
    unsigned                        alone:1;    /* a batch with it failed */

    /* its command lives as long as the pool: it may be prepared */
    unsigned                        named:1;
};


ngx_http_retell_pg_pool_t *ngx_http_retell_pg_pool_create(ngx_cycle_t *cycle,
    ngx_array_t *hosts, ngx_uint_t size, ngx_uint_t batch,
    ngx_msec_t batch_hold, ngx_flag_t prepare, ngx_msec_t connect_timeout);
void ngx_http_retell_pg_pool_close(ngx_http_retell_pg_pool_t *pool);

/*
 * NGX_OK: the handler will be called later; NGX_DECLINED: the pool is
 * closed (the worker exits); NGX_BUSY: the wait queue is full
 */
ngx_int_t ngx_http_retell_pg_run(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_op_t *op);

/* the handler is not called; a running command is drained off-line */
void ngx_http_retell_pg_cancel(ngx_http_retell_pg_op_t *op);

/* the pool's connections by state, its queue, its circuit: the gauges */
void ngx_http_retell_pg_stats(ngx_http_retell_pg_pool_t *pool,
    ngx_http_retell_pg_stats_t *stats);

/* what is left of the op's timeout, in ms */
ngx_msec_t ngx_http_retell_pg_time_left(ngx_http_retell_pg_op_t *op);

#define NGX_HTTP_RETELL_PG_BATCH_MAX  32


#endif /* _NGX_HTTP_RETELL_PG_H_INCLUDED_ */
