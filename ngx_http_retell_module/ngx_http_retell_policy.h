
/*
 * The ticket rules (docs/data-and-rules.md): a pure function from the facts
 * gathered for a call to the ticket status and the reason to email.
 *
 * Pure logic: no nginx event code, unit-tested in t/unit/test_policy.c.
 */


#ifndef _NGX_HTTP_RETELL_POLICY_H_INCLUDED_
#define _NGX_HTTP_RETELL_POLICY_H_INCLUDED_


/*
 * The values travel to retell.apply_webhook() as digits (store.c): the
 * SQL's arrays of names there follow this order.
 */

typedef enum {
    NGX_HTTP_RETELL_STATUS_NEW = 0,
    NGX_HTTP_RETELL_STATUS_QUALIFIED,
    NGX_HTTP_RETELL_STATUS_CONTACTED,
    NGX_HTTP_RETELL_STATUS_RESOLVED,
    NGX_HTTP_RETELL_STATUS_CLOSED
} ngx_http_retell_status_e;


typedef enum {
    NGX_HTTP_RETELL_EMAIL_NONE = 0,
    NGX_HTTP_RETELL_EMAIL_ACTION_REQUIRED,
    NGX_HTTP_RETELL_EMAIL_CALL_TRANSFER,
    NGX_HTTP_RETELL_EMAIL_TRANSFER_FAILED,
    NGX_HTTP_RETELL_EMAIL_CALL_FAILED
} ngx_http_retell_email_reason_e;


/* NGX_HTTP_RETELL_ABSENT of ngx_http_retell_event.h */
#define NGX_HTTP_RETELL_POLICY_ABSENT  -1


/* each only ever goes from false to true as a call's events arrive */

typedef struct {
    unsigned  outbound:1;
    unsigned  transferred:1;        /* to a person: bridged */
    unsigned  transfer_failed:1;    /* cancelled, or did not connect */
    unsigned  call_failed:1;        /* dropped by the platform */
    unsigned  analyzed:1;
    unsigned  qualified:1;
    unsigned  call_successful:1;
    int       action_required;      /* 1, 0 or -1 when absent */
} ngx_http_retell_facts_t;


typedef struct {
    ngx_http_retell_status_e        status;
    ngx_http_retell_email_reason_e  email;
} ngx_http_retell_decision_t;


ngx_http_retell_decision_t ngx_http_retell_policy(
    const ngx_http_retell_facts_t *facts);

/*
 * The rules as the SQL reads them: one digit per combination of facts (the
 * status, or with email the reason), indexed call_failed 96,
 * transfer_failed 48, transferred 24, action_required true 16 / false 8 /
 * absent 0, analyzed 4, qualified 2, call_successful 1; buf holds
 * NGX_HTTP_RETELL_POLICY_TABLE + 1 bytes, NUL-terminated
 */
#define NGX_HTTP_RETELL_POLICY_TABLE  192

void ngx_http_retell_policy_table(unsigned outbound, unsigned email,
    char *buf);

const char *ngx_http_retell_status_name(ngx_http_retell_status_e status);
const char *ngx_http_retell_email_reason_name(
    ngx_http_retell_email_reason_e reason);


#endif /* _NGX_HTTP_RETELL_POLICY_H_INCLUDED_ */
