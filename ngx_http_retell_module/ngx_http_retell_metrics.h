
/*
 * The module's metrics: counters and histograms in one shared memory zone
 * of a fixed layout, summed over every worker by construction, moved
 * with ngx_atomic_fetch_add() and never locked; served in the Prometheus
 * text format by "retell_metrics" (ngx_http_retell_metrics.c).
 */


#ifndef _NGX_HTTP_RETELL_METRICS_H_INCLUDED_
#define _NGX_HTTP_RETELL_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_retell_module.h"


typedef enum {
    NGX_HTTP_RETELL_STMT_OK = 0,
    NGX_HTTP_RETELL_STMT_ERROR,
    NGX_HTTP_RETELL_STMT_TIMEOUT,
    NGX_HTTP_RETELL_STMT_CANCELLED,
    NGX_HTTP_RETELL_STMT_RESULTS
} ngx_http_retell_stmt_result_e;


typedef enum {
    NGX_HTTP_RETELL_EMAIL_SENT = 0,
    NGX_HTTP_RETELL_EMAIL_DEFERRED,
    NGX_HTTP_RETELL_EMAIL_FAILED,
    NGX_HTTP_RETELL_EMAIL_RESULTS
} ngx_http_retell_email_result_e;


typedef enum {
    NGX_HTTP_RETELL_PG_OPENED = 0,
    NGX_HTTP_RETELL_PG_REFUSED,         /* failed to connect */
    NGX_HTTP_RETELL_PG_TIMED_OUT,       /* failed to connect in time */
    NGX_HTTP_RETELL_PG_LOST,            /* broke under a command */
    NGX_HTTP_RETELL_PG_RESENT,          /* a delivery sent again */
    NGX_HTTP_RETELL_PG_CIRCUIT_OPENED,
    NGX_HTTP_RETELL_PG_CIRCUIT_CLOSED,
    NGX_HTTP_RETELL_PG_EVENTS
} ngx_http_retell_pg_event_e;


char *ngx_http_retell_metrics_zone_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_retell_metrics_zone(ngx_conf_t *cf,
    ngx_http_retell_main_conf_t *rmcf);
void ngx_http_retell_metrics_attach(ngx_http_retell_main_conf_t *rmcf);
ngx_int_t ngx_http_retell_metrics_worker(ngx_cycle_t *cycle,
    ngx_http_retell_pg_pool_t *pool);
void ngx_http_retell_metrics_worker_exit(void);
char *ngx_http_retell_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_retell_metrics_init(ngx_conf_t *cf);

void ngx_http_retell_metrics_statement(ngx_uint_t result, ngx_msec_t ms);
void ngx_http_retell_metrics_batch(ngx_uint_t size);
void ngx_http_retell_metrics_pg(ngx_uint_t event);
void ngx_http_retell_metrics_email(ngx_uint_t result);
void ngx_http_retell_metrics_smtp_session(ngx_msec_t ms);
void ngx_http_retell_metrics_outbox_poll(void);
void ngx_http_retell_metrics_outbox_due(ngx_atomic_uint_t rows);


#endif /* _NGX_HTTP_RETELL_METRICS_H_INCLUDED_ */
