
/*
 * Inside the outbox: the job of a worker (ngx_http_retell_outbox.c:
 * claim, send, record), the row's lease while it is sent
 * (ngx_http_retell_outbox_lease.c) and the message made from a claimed
 * row (ngx_http_retell_outbox_mail.c).
 */


#ifndef _NGX_HTTP_RETELL_OUTBOX_H_INCLUDED_
#define _NGX_HTTP_RETELL_OUTBOX_H_INCLUDED_


#include "ngx_http_retell_module.h"
#include "ngx_http_retell_metrics.h"


/* the claim's columns, in the order of its SELECT (outbox.c) */
typedef enum {
    NGX_HTTP_RETELL_CLAIM_ID = 0,
    NGX_HTTP_RETELL_CLAIM_TOKEN,              /* the lease's fence */
    NGX_HTTP_RETELL_CLAIM_REASON,
    NGX_HTTP_RETELL_CLAIM_RECIPIENTS,         /* all: the To: header */
    NGX_HTTP_RETELL_CLAIM_SEND_TO,            /* those still to get it */
    NGX_HTTP_RETELL_CLAIM_CALL_ID,
    NGX_HTTP_RETELL_CLAIM_DIRECTION,
    NGX_HTTP_RETELL_CLAIM_COMPANY_NAME,
    NGX_HTTP_RETELL_CLAIM_TICKET_ID,
    NGX_HTTP_RETELL_CLAIM_TICKET_STATUS,
    NGX_HTTP_RETELL_CLAIM_CUSTOMER_NAME,
    NGX_HTTP_RETELL_CLAIM_CUSTOMER_PHONE,
    NGX_HTTP_RETELL_CLAIM_STARTED_AT,
    NGX_HTTP_RETELL_CLAIM_DURATION_MS,
    NGX_HTTP_RETELL_CLAIM_DISCONNECTION_REASON,
    NGX_HTTP_RETELL_CLAIM_CALL_SUMMARY,
    NGX_HTTP_RETELL_CLAIM_USER_SENTIMENT,
    NGX_HTTP_RETELL_CLAIM_CALL_SUCCESSFUL,
    NGX_HTTP_RETELL_CLAIM_IN_VOICEMAIL,
    NGX_HTTP_RETELL_CLAIM_CUSTOM_ANALYSIS,
    NGX_HTTP_RETELL_CLAIM_TRANSCRIPT,
    NGX_HTTP_RETELL_CLAIM_RECORDING_URL,
    NGX_HTTP_RETELL_CLAIM_RECORDING_NOTE,     /* "storage", "age" or NULL */
    NGX_HTTP_RETELL_CLAIM_DUE,                /* rows due, this one too */
    NGX_HTTP_RETELL_CLAIM_FIELDS
} ngx_http_retell_claim_field_e;


typedef struct {
    ngx_http_retell_main_conf_t  *rmcf;
    ngx_log_t                    *log;
    ngx_log_t                     job_log;  /* its action: the job's stage */
    ngx_msec_t                    session_start;

    ngx_event_t                   sweep;
    ngx_event_t                   retry_record;
    ngx_event_t                   renew;       /* the lease, while sending */
    ngx_event_t                   lease_end;   /* the session must be over */

    ngx_pool_t                   *pool;        /* the current job's */
    ngx_http_retell_pg_op_t       op;
    ngx_http_retell_pg_op_t       renew_op;
    ngx_http_retell_smtp_t       *smtp;
    const char                  **values;
    const char                   *renew_values[3];    /* _RENEW_PARAMS */
    ngx_msec_t                    renew_sent;  /* when the renewal left */
    ngx_msec_t                    lease;

    ngx_str_t                     id;
    ngx_str_t                     token;       /* the lease's fence */
    ngx_str_t                     call_id;
    ngx_str_t                     subject;
    ngx_str_t                     text;
    ngx_uint_t                    record_tries;

    /* the outcome to record */
    ngx_uint_t                    result;
    ngx_str_t                     error;
    ngx_str_t                     rejected;
    ngx_str_t                     retry;       /* "a,b": 4xx, to retry */

    unsigned                      busy:1;
    unsigned                      again:1;     /* kicked while busy */
    unsigned                      renewing:1;  /* renew_op is running */
} ngx_http_retell_outbox_t;


/* a claimed row made a message: what the SMTP session sends, and to whom */

typedef struct {
    ngx_str_t                     data;        /* dot-stuffed, ends .CRLF */
    ngx_str_t                    *rcpt;        /* those still to get it */
    ngx_uint_t                    nrcpt;
} ngx_http_retell_outbox_message_t;


/*
 * === in ngx_http_retell_outbox_mail.c: the claimed row to a message ===
 * compose: NGX_DECLINED when no recipient is valid, NGX_ERROR when memory
 * ran out; ob->subject and ob->text as recorded with the row
 */
ngx_int_t ngx_http_retell_outbox_compose(ngx_http_retell_outbox_t *ob,
    PGresult *res, ngx_http_retell_outbox_message_t *message);
ngx_str_t ngx_http_retell_outbox_copy(ngx_pool_t *pool, PGresult *res,
    int field);
char *ngx_http_retell_outbox_cstr(ngx_pool_t *pool, ngx_str_t *s);


/*
 * === in ngx_http_retell_outbox_lease.c: the row's lease while sending ===
 * lease_held: renewal and end timers from ob->renew_sent, NGX_DECLINED
 * when too little of the lease is left to start or go on
 */
void ngx_http_retell_outbox_lease_init(ngx_http_retell_outbox_t *ob,
    ngx_log_t *log);
ngx_int_t ngx_http_retell_outbox_lease_held(ngx_http_retell_outbox_t *ob);
void ngx_http_retell_outbox_lease_stop(ngx_http_retell_outbox_t *ob);


#endif /* _NGX_HTTP_RETELL_OUTBOX_H_INCLUDED_ */
