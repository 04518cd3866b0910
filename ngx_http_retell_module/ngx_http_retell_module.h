
/*
 * ngx_http_retell_module: Retell AI call webhooks into customers, call
 * records and tickets in PostgreSQL.  Types shared by the module's files.
 */


#ifndef _NGX_HTTP_RETELL_MODULE_H_INCLUDED_
#define _NGX_HTTP_RETELL_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_retell_signature.h"
#include "ngx_http_retell_event.h"
#include "ngx_http_retell_phone.h"
#include "ngx_http_retell_policy.h"
#include "ngx_http_retell_pg.h"
#include "ngx_http_retell_smtp.h"


/* endpoints: the metrics' and $retell_endpoint's index, 0 not known */
#define NGX_HTTP_RETELL_INBOUND       1
#define NGX_HTTP_RETELL_OUTBOUND      2
#define NGX_HTTP_RETELL_CALL_INBOUND  3    /* the inbound call webhook */
#define NGX_HTTP_RETELL_ENDPOINTS     4
#define NGX_HTTP_RETELL_AUTO          4    /* the rules of the call's
                                              direction: not an endpoint */


typedef struct {
    ngx_str_t                   postgres;        /* libpq conninfo */
    ngx_array_t                *postgres_hosts;  /* of ngx_str_t, one
                                                    conninfo per address */
    ngx_msec_t                  postgres_connect_timeout;
    ngx_msec_t                  postgres_conninfo_timeout;
    ngx_uint_t                  pool_size;
    ngx_uint_t                  batch;           /* deliveries per statement */
    ngx_msec_t                  batch_hold;
    ngx_flag_t                  prepare;         /* prepared statements */
    ngx_uint_t                  webhooks;        /* locations using it */

    /* email delivery: smtp.server is NULL without retell_smtp_server */
    ngx_http_retell_smtp_conf_t smtp;
    ngx_str_t                   smtp_from;
    ngx_str_t                   ticket_url;
    ngx_uint_t                  smtp_max_attempts;
    ngx_msec_t                  smtp_backoff;
    size_t                      metrics_zone;    /* retell_metrics_zone */
    ngx_shm_zone_t             *metrics_shm;     /* NULL when "off" */
    ngx_uint_t                  metrics_served;  /* a retell_metrics */
    ngx_str_t                   smtp_trusted_certificate;

    ngx_http_retell_pg_pool_t  *pool;            /* this worker's */
} ngx_http_retell_main_conf_t;


typedef struct {
    ngx_uint_t                  webhook;         /* INBOUND, ... or 0 */
    ngx_array_t                *secrets;         /* of ngx_str_t */
    ngx_msec_t                  signature_tolerance;
    ngx_msec_t                  postgres_timeout;
    ngx_msec_t                  call_inbound_timeout;
    ngx_int_t                   company;         /* 0 when none */
    ngx_uint_t                  default_country_code;
    ngx_flag_t                  failed_call_tickets;
} ngx_http_retell_loc_conf_t;


typedef struct {
    ngx_str_t                   body;            /* raw, NUL-terminated */
    ngx_http_retell_event_t     event;
    ngx_http_retell_phone_t     phone;           /* the customer's */
    ngx_http_retell_pg_op_t     op;

    /* what the variables say (ngx_http_retell_variables.c) */
    ngx_uint_t                  status;          /* the module's answer */
    ngx_uint_t                  endpoint;        /* the rules: INBOUND, ... */
    ngx_str_t                   ticket_id;
    ngx_str_t                   ticket_status;
    ngx_str_t                   email;

    unsigned                    running:1;       /* op is in the pool */
    unsigned                    verified:1;      /* the signature passed */
    unsigned                    answered:1;      /* by the database */
    unsigned                    duplicate:1;
    unsigned                    unrouted:1;      /* call_inbound: no company */
    unsigned                    failed_open:1;   /* call_inbound: no lookup */
} ngx_http_retell_ctx_t;


ngx_int_t ngx_http_retell_handler(ngx_http_request_t *r);

/* ngx_http_retell_variables.c */
typedef enum {
    NGX_HTTP_RETELL_OUTCOME_APPLIED = 0,
    NGX_HTTP_RETELL_OUTCOME_DUPLICATE,
    NGX_HTTP_RETELL_OUTCOME_UNROUTED,
    NGX_HTTP_RETELL_OUTCOME_IGNORED,
    NGX_HTTP_RETELL_OUTCOME_BAD_SIGNATURE,
    NGX_HTTP_RETELL_OUTCOME_BAD_REQUEST,
    NGX_HTTP_RETELL_OUTCOME_TOO_LARGE,
    NGX_HTTP_RETELL_OUTCOME_UNAVAILABLE,
    NGX_HTTP_RETELL_OUTCOME_ERROR,
    NGX_HTTP_RETELL_OUTCOMES
} ngx_http_retell_outcome_e;

extern ngx_str_t  ngx_http_retell_outcomes[];

ngx_int_t ngx_http_retell_outcome(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);
ngx_uint_t ngx_http_retell_endpoint(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);
ngx_int_t ngx_http_retell_add_variables(ngx_conf_t *cf);
ngx_http_retell_ctx_t *ngx_http_retell_ctx_create(ngx_http_request_t *r);
ngx_http_retell_ctx_t *ngx_http_retell_get_ctx(ngx_http_request_t *r);

void *ngx_http_retell_palloc(void *pool, size_t size);
/* ngx_http_retell_module.c: a key or a password from a file, trimmed */
char *ngx_http_retell_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret);

/* ngx_http_retell_smtp_conf.c */
char *ngx_http_retell_smtp_server(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_retell_smtp_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_retell_smtp_init_conf(ngx_conf_t *cf,
    ngx_http_retell_main_conf_t *rmcf);

char *ngx_http_retell_postgres(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_retell_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len);
ngx_int_t ngx_http_retell_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);

ngx_int_t ngx_http_retell_store_init(ngx_cycle_t *cycle);
ngx_int_t ngx_http_retell_outbox_init(ngx_cycle_t *cycle,
    ngx_http_retell_main_conf_t *rmcf);
void ngx_http_retell_outbox_kick(void);
ngx_int_t ngx_http_retell_store_apply(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);

/* ngx_http_retell_handler.c: the request's statement to the pool */
ngx_int_t ngx_http_retell_run(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);

/* ngx_http_retell_caller.c: the inbound call webhook, after the signature */
ngx_int_t ngx_http_retell_caller_answer(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);


extern ngx_module_t  ngx_http_retell_module;


#endif /* _NGX_HTTP_RETELL_MODULE_H_INCLUDED_ */
