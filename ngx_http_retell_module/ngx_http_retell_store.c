
/*
 * Applying a delivery: one call of retell.apply_webhook() (sql/), in one
 * statement and so one transaction and one round trip.  The ticket rules
 * travel with it as two strings computed from the C policy, so they live
 * in one place.
 */


#include "ngx_http_retell_module.h"



/*
 * retell.apply_webhook()'s parameters, in its order, each named for its
 * p_ name in sql/002_apply_webhook.sql (t/040-store.t compares the two)
 */

typedef enum {
    NGX_HTTP_RETELL_P_ENDPOINT = 0,
    NGX_HTTP_RETELL_P_EVENT,
    NGX_HTTP_RETELL_P_CALL_ID,
    NGX_HTTP_RETELL_P_PAYLOAD,
    NGX_HTTP_RETELL_P_FALLBACK_COMPANY,
    NGX_HTTP_RETELL_P_AGENT_ID,
    NGX_HTTP_RETELL_P_FROM_NUMBER,
    NGX_HTTP_RETELL_P_TO_NUMBER,
    NGX_HTTP_RETELL_P_PHONE_RAW,
    NGX_HTTP_RETELL_P_PHONE_E164,
    NGX_HTTP_RETELL_P_PHONE_DISPLAY,
    NGX_HTTP_RETELL_P_CALL_STATUS,
    NGX_HTTP_RETELL_P_DISCONNECTION_REASON,
    NGX_HTTP_RETELL_P_START_MS,
    NGX_HTTP_RETELL_P_END_MS,
    NGX_HTTP_RETELL_P_DURATION_MS,
    NGX_HTTP_RETELL_P_TRANSCRIPT,
    NGX_HTTP_RETELL_P_RECORDING_URL,
    NGX_HTTP_RETELL_P_TRANSFER_DESTINATION,
    NGX_HTTP_RETELL_P_CALL_SUMMARY,
    NGX_HTTP_RETELL_P_CALL_SUCCESSFUL,
    NGX_HTTP_RETELL_P_IN_VOICEMAIL,
    NGX_HTTP_RETELL_P_USER_SENTIMENT,
    NGX_HTTP_RETELL_P_CUSTOM_ANALYSIS_DATA,
    NGX_HTTP_RETELL_P_COLLECTED,
    NGX_HTTP_RETELL_P_LLM_VARIABLES,
    NGX_HTTP_RETELL_P_METADATA,
    NGX_HTTP_RETELL_P_ACTION_ANALYSIS,
    NGX_HTTP_RETELL_P_ACTION_COLLECTED,
    NGX_HTTP_RETELL_P_QUALIFIED,
    NGX_HTTP_RETELL_P_TRANSFERRED,
    NGX_HTTP_RETELL_P_ANALYZED,
    NGX_HTTP_RETELL_P_RULE_STATUS,
    NGX_HTTP_RETELL_P_RULE_EMAIL,
    NGX_HTTP_RETELL_P_BUDGET_MS,
    NGX_HTTP_RETELL_P_LOCK_WAIT_MS,
    NGX_HTTP_RETELL_P_DIRECTION,
    NGX_HTTP_RETELL_P_TRANSFER_FAILED,
    NGX_HTTP_RETELL_P_CALL_FAILED,
    NGX_HTTP_RETELL_P_DATA_STORAGE_SETTING,
    NGX_HTTP_RETELL_NPARAMS
} ngx_http_retell_apply_param_e;


/* the event's fields that are parameters as they are: text, or a flag */

typedef struct {
    ngx_http_retell_apply_param_e   param;
    size_t                          offset;     /* in the event */
    unsigned                        flag:1;     /* an int: 1, 0 or ABSENT */
} ngx_http_retell_event_param_t;


#define ngx_http_retell_param_text(param, field)                             \
    { param, offsetof(ngx_http_retell_event_t, field), 0 }
#define ngx_http_retell_param_flag(param, field)                             \
    { param, offsetof(ngx_http_retell_event_t, field), 1 }

static const ngx_http_retell_event_param_t  ngx_http_retell_event_params[] = {
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_EVENT, event),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_CALL_ID, call_id),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_AGENT_ID, agent_id),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_FROM_NUMBER, from_number),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_TO_NUMBER, to_number),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_CALL_STATUS, call_status),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_DISCONNECTION_REASON,
                               disconnection_reason),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_TRANSCRIPT, transcript),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_RECORDING_URL,
                               recording_url),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_TRANSFER_DESTINATION,
                               transfer_destination),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_CALL_SUMMARY, call_summary),
    ngx_http_retell_param_flag(NGX_HTTP_RETELL_P_CALL_SUCCESSFUL,
                               call_successful),
    ngx_http_retell_param_flag(NGX_HTTP_RETELL_P_IN_VOICEMAIL, in_voicemail),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_USER_SENTIMENT,
                               user_sentiment),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_CUSTOM_ANALYSIS_DATA,
                               custom_analysis_data),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_COLLECTED,
                               collected_dynamic_variables),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_LLM_VARIABLES,
                               retell_llm_dynamic_variables),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_METADATA, metadata),
    ngx_http_retell_param_flag(NGX_HTTP_RETELL_P_ACTION_ANALYSIS,
                               action_required_analysis),
    ngx_http_retell_param_flag(NGX_HTTP_RETELL_P_ACTION_COLLECTED,
                               action_required_collected),
    ngx_http_retell_param_text(NGX_HTTP_RETELL_P_DATA_STORAGE_SETTING,
                               data_storage_setting)
};


/* its result columns, in the order of the SELECT below (its OUT names) */

typedef enum {
    NGX_HTTP_RETELL_R_TICKET_ID = 0,
    NGX_HTTP_RETELL_R_TICKET_STATUS,
    NGX_HTTP_RETELL_R_EMAIL,
    NGX_HTTP_RETELL_R_DUPLICATE,
    NGX_HTTP_RETELL_R_ROUTED,
    NGX_HTTP_RETELL_R_INVALID_RECIPIENTS,
    NGX_HTTP_RETELL_R_EMAIL_QUEUED,
    NGX_HTTP_RETELL_NCOLUMNS
} ngx_http_retell_apply_column_e;

/* in a batch: another transaction's row lock fails the batch this soon */
#define NGX_HTTP_RETELL_BATCH_LOCK_WAIT  "100"

#define NGX_HTTP_RETELL_RETRY_AFTER  "5"


static const char  ngx_http_retell_apply_sql[] =
    "SELECT ticket_id, ticket_status, email, duplicate, routed,"
    " invalid_recipients, email_queued"
    " FROM retell.apply_webhook($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
    " $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24,"
    " $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37,"
    " $38, $39, $40)";


static void ngx_http_retell_store_done(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_retell_store_answer(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_retell_send_unavailable(ngx_http_request_t *r,
    const char *message);
static void ngx_http_retell_store_budget(ngx_http_retell_pg_op_t *op);
static char *ngx_http_retell_int_param(ngx_pool_t *pool,
    ngx_http_retell_int_t *n);
static ngx_uint_t ngx_http_retell_call_outbound(ngx_http_request_t *r,
    ngx_http_retell_loc_conf_t *rlcf, ngx_http_retell_event_t *ev);
static const char *ngx_http_retell_text(ngx_http_retell_str_t *s);
static ngx_int_t ngx_http_retell_copy_str(ngx_pool_t *pool, ngx_str_t *to,
    const char *from, ngx_uint_t known);
static const char *ngx_http_retell_flag(int value);
static const char *ngx_http_retell_column(PGresult *res,
    ngx_http_retell_apply_column_e column, const char *null);
static char *ngx_http_retell_rules_param(ngx_pool_t *pool,
    ngx_uint_t outbound, ngx_uint_t email);


/* p_rule_status and p_rule_email per direction, built once per worker */
static char  *ngx_http_retell_rules[2][2];


ngx_int_t
ngx_http_retell_store_init(ngx_cycle_t *cycle)
{
    ngx_uint_t  outbound, email;

    for (outbound = 0; outbound < 2; outbound++) {
        for (email = 0; email < 2; email++) {
            ngx_http_retell_rules[outbound][email] =
                ngx_http_retell_rules_param(cycle->pool, outbound, email);

            if (ngx_http_retell_rules[outbound][email] == NULL) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_retell_store_apply(ngx_http_request_t *r, ngx_http_retell_ctx_t *ctx)
{
    u_char                               *company, *field;
    ngx_int_t                             rc;
    ngx_uint_t                            outbound, call_outbound;
    const char                          **v;
    ngx_http_retell_str_t                *raw;
    ngx_http_retell_event_t              *ev;
    ngx_http_retell_phone_t              *phone;
    ngx_http_retell_pg_op_t              *op;
    ngx_http_retell_loc_conf_t           *rlcf;
    const ngx_http_retell_event_param_t  *f;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

    ev = &ctx->event;

    /*
     * the customer is the other party of the call, whichever endpoint it
     * reached: the caller inbound, the called party outbound, by the
     * call's own direction; the rules are the endpoint's, or the call's
     * with "retell_webhook auto"
     */

    call_outbound = ngx_http_retell_call_outbound(r, rlcf, ev);

    outbound = (rlcf->webhook == NGX_HTTP_RETELL_AUTO)
               ? call_outbound
               : (rlcf->webhook == NGX_HTTP_RETELL_OUTBOUND);

    ctx->endpoint = outbound ? NGX_HTTP_RETELL_OUTBOUND
                             : NGX_HTTP_RETELL_INBOUND;

    raw = call_outbound ? &ev->to_number : &ev->from_number;
    phone = &ctx->phone;

    if (raw->len == 0
        || !ngx_http_retell_phone_normalize(raw->data, raw->len,
                                            rlcf->default_country_code,
                                            phone))
    {
        phone->e164[0] = '\0';
        phone->display[0] = '\0';
    }

    v = ngx_pcalloc(r->pool, NGX_HTTP_RETELL_NPARAMS * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the event's own fields, then what the module makes of them */

    for (f = ngx_http_retell_event_params;
         f < ngx_http_retell_event_params
             + sizeof(ngx_http_retell_event_params)
               / sizeof(ngx_http_retell_event_param_t);
         f++)
    {
        field = (u_char *) ev + f->offset;

        v[f->param] = f->flag
                      ? ngx_http_retell_flag(*(int *) field)
                      : ngx_http_retell_text((ngx_http_retell_str_t *) field);
    }

    v[NGX_HTTP_RETELL_P_ENDPOINT] = outbound ? "outbound" : "inbound";
    v[NGX_HTTP_RETELL_P_DIRECTION] = call_outbound ? "outbound" : "inbound";
    v[NGX_HTTP_RETELL_P_PAYLOAD] = (const char *) ctx->body.data;

    if (rlcf->company) {
        company = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
        if (company == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *ngx_sprintf(company, "%i", rlcf->company) = '\0';
        v[NGX_HTTP_RETELL_P_FALLBACK_COMPANY] = (const char *) company;
    }

    v[NGX_HTTP_RETELL_P_PHONE_RAW] = ngx_http_retell_text(raw);
    v[NGX_HTTP_RETELL_P_PHONE_E164] = phone->e164[0] ? phone->e164 : NULL;
    v[NGX_HTTP_RETELL_P_PHONE_DISPLAY] = phone->display[0]
                                         ? phone->display
                                         : ngx_http_retell_text(raw);

    v[NGX_HTTP_RETELL_P_START_MS] =
                       ngx_http_retell_int_param(r->pool, &ev->start_timestamp);
    v[NGX_HTTP_RETELL_P_END_MS] =
                       ngx_http_retell_int_param(r->pool, &ev->end_timestamp);
    v[NGX_HTTP_RETELL_P_DURATION_MS] =
                       ngx_http_retell_int_param(r->pool, &ev->duration_ms);

    v[NGX_HTTP_RETELL_P_QUALIFIED] = ev->custom_analysis_data.len
                                     ? (ev->qualified ? "t" : "f") : NULL;
    v[NGX_HTTP_RETELL_P_TRANSFERRED] = ev->transferred ? "t" : "f";
    v[NGX_HTTP_RETELL_P_ANALYZED] =
                ev->type == NGX_HTTP_RETELL_EVENT_CALL_ANALYZED ? "t" : "f";
    v[NGX_HTTP_RETELL_P_TRANSFER_FAILED] = ev->transfer_failed ? "t" : "f";
    v[NGX_HTTP_RETELL_P_CALL_FAILED] =
                    (ev->call_failed && rlcf->failed_call_tickets) ? "t" : "f";

    v[NGX_HTTP_RETELL_P_RULE_STATUS] = ngx_http_retell_rules[outbound][0];
    v[NGX_HTTP_RETELL_P_RULE_EMAIL] = ngx_http_retell_rules[outbound][1];

    /* p_budget_ms and p_lock_wait_ms: set when the statement leaves */
    v[NGX_HTTP_RETELL_P_BUDGET_MS] = (const char *) ngx_pnalloc(r->pool,
                                                           NGX_INT_T_LEN + 1);
    if (v[NGX_HTTP_RETELL_P_BUDGET_MS] == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op = &ctx->op;
    op->command = ngx_http_retell_apply_sql;
    op->nparams = NGX_HTTP_RETELL_NPARAMS;
    op->values = v;
    op->size = ctx->body.len + ev->transcript.len;
    op->timeout = rlcf->postgres_timeout;
    op->handler = ngx_http_retell_store_done;
    op->prepare = ngx_http_retell_store_budget;
    op->data = r;
    op->log = r->connection->log;
    op->idempotent = 1;         /* deduplicated by the delivery's digest */
    op->batchable = 1;
    op->named = 1;

    rc = ngx_http_retell_run(r, ctx);

    if (rc == NGX_OK) {
        return NGX_DONE;
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "retell call \"%s\": worker is shutting down",
                      ev->call_id.data);

        return ngx_http_retell_send_unavailable(r, "shutting down");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "retell call \"%s\": too many deliveries waiting "
                  "for a database connection", ev->call_id.data);

    return ngx_http_retell_send_unavailable(r, "database busy");
}


static void
ngx_http_retell_store_done(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_retell_ctx_t   *ctx;

    r = op->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_retell_module);

    ctx->running = 0;

    if (error) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "retell call \"%s\": database %s, answering 503",
                      ctx->event.call_id.data, error);

        rc = ngx_http_retell_send_unavailable(r, "database unavailable");

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
               || PQnfields(res) != NGX_HTTP_RETELL_NCOLUMNS)
    {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "retell call \"%s\": apply failed: %s",
                      ctx->event.call_id.data, PQresultErrorMessage(res));

        rc = ngx_http_retell_send_unavailable(r, "database error");

    } else {
        rc = ngx_http_retell_store_answer(r, ctx, res);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_retell_store_answer(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, PGresult *res)
{
    u_char                   *json, *p;
    size_t                    len;
    ngx_uint_t                routed, duplicate;
    const char               *ticket_id, *status, *email, *invalid;
    ngx_http_retell_event_t  *ev;

    ev = &ctx->event;

    ticket_id = ngx_http_retell_column(res, NGX_HTTP_RETELL_R_TICKET_ID,
                                       "null");
    status = ngx_http_retell_column(res, NGX_HTTP_RETELL_R_TICKET_STATUS,
                                    NULL);
    email = ngx_http_retell_column(res, NGX_HTTP_RETELL_R_EMAIL, "none");
    duplicate = ngx_http_retell_column(res, NGX_HTTP_RETELL_R_DUPLICATE,
                                       "f")[0] == 't';
    routed = ngx_http_retell_column(res, NGX_HTTP_RETELL_R_ROUTED,
                                    "f")[0] == 't';
    invalid = ngx_http_retell_column(res,
                                     NGX_HTTP_RETELL_R_INVALID_RECIPIENTS,
                                     "{}");

    /* for the variables: copies, the result goes when the handler ends */

    ctx->answered = 1;
    ctx->duplicate = duplicate;

    if (ngx_http_retell_copy_str(r->pool, &ctx->ticket_id, ticket_id,
                                 ngx_strcmp(ticket_id, "null") != 0)
        != NGX_OK
        || ngx_http_retell_copy_str(r->pool, &ctx->ticket_status, status,
                                    status != NULL)
           != NGX_OK
        || ngx_http_retell_copy_str(r->pool, &ctx->email, email, 1)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_retell_column(res, NGX_HTTP_RETELL_R_EMAIL_QUEUED,
                               "f")[0] == 't')
    {
        /* committed: the worker sends it now */
        ngx_http_retell_outbox_kick();
    }

    if (ngx_strcmp(invalid, "{}") != 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "retell call \"%s\": invalid email recipients "
                      "dropped: %s", ev->call_id.data, invalid);
    }

    if (!routed) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "retell call \"%s\": agent \"%s\" belongs to no "
                      "company; delivery stored unapplied",
                      ev->call_id.data,
                      ev->agent_id.data ? ev->agent_id.data : (u_char *) "");
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "retell call \"%s\": %s applied, ticket %s %s, email %s%s",
                  ev->call_id.data, ev->event.data, ticket_id,
                  status ? status : "-", email,
                  duplicate ? ", duplicate" : "");

    len = sizeof("{\"event\":\"\",\"call_id\":\"\",\"ticket_id\":,"
                 "\"ticket_status\":\"\",\"email\":\"\","
                 "\"duplicate\":false,\"routed\":false}") - 1
          + ev->event.len
          + ngx_escape_json(NULL, ev->event.data, ev->event.len)
          + ev->call_id.len
          + ngx_escape_json(NULL, ev->call_id.data, ev->call_id.len)
          + ngx_strlen(ticket_id) + (status ? ngx_strlen(status) : 4)
          + ngx_strlen(email);

    json = ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(json, "{\"event\":\"", sizeof("{\"event\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, ev->event.data, ev->event.len);
    p = ngx_cpymem(p, "\",\"call_id\":\"", sizeof("\",\"call_id\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, ev->call_id.data, ev->call_id.len);
    p = ngx_sprintf(p, "\",\"ticket_id\":%s,\"ticket_status\":", ticket_id);

    if (status) {
        p = ngx_sprintf(p, "\"%s\"", status);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_sprintf(p, ",\"email\":\"%s\",\"duplicate\":%s", email,
                    duplicate ? "true" : "false");

    if (!routed) {
        p = ngx_cpymem(p, ",\"routed\":false", sizeof(",\"routed\":false") - 1);
    }

    *p++ = '}';

    return ngx_http_retell_send_json(r, routed ? NGX_HTTP_OK
                                               : NGX_HTTP_ACCEPTED,
                                     json, p - json);
}


static ngx_int_t
ngx_http_retell_send_unavailable(ngx_http_request_t *r, const char *message)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, NGX_HTTP_RETELL_RETRY_AFTER);

    return ngx_http_retell_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "unavailable", message);
}


/*
 * The statement gets what is left of the delivery's time, after waiting
 * for a connection: its lock_timeout, and the limit past which it rolls
 * back rather than commit behind a client already told 503.  In a batch
 * a row lock is waited for briefly: the others must not wait with it.
 */

static void
ngx_http_retell_store_budget(ngx_http_retell_pg_op_t *op)
{
    u_char       *p;
    const char  **v;

    v = (const char **) op->values;
    p = (u_char *) v[NGX_HTTP_RETELL_P_BUDGET_MS];

    *ngx_sprintf(p, "%M", ngx_max(ngx_http_retell_pg_time_left(op), 1)) = '\0';

    v[NGX_HTTP_RETELL_P_LOCK_WAIT_MS] = op->batch
                                        ? NGX_HTTP_RETELL_BATCH_LOCK_WAIT
                                        : NULL;
}


static char *
ngx_http_retell_int_param(ngx_pool_t *pool, ngx_http_retell_int_t *n)
{
    u_char  *p;

    if (!n->set) {
        return NULL;
    }

    p = ngx_pnalloc(pool, NGX_INT64_LEN + 1);
    if (p == NULL) {
        return NULL;
    }

    *ngx_sprintf(p, "%L", n->value) = '\0';

    return (char *) p;
}


/*
 * The policy for every combination of merged facts, one digit for each,
 * the value of the decision's enum (the SQL maps it back to a name);
 * index = transferred 24 + action_required (true 16, false 8, absent 0)
 * + analyzed 4 + qualified 2 + call_successful 1.
 */

static char *
ngx_http_retell_rules_param(ngx_pool_t *pool, ngx_uint_t outbound,
    ngx_uint_t email)
{
    char  *buf;

    buf = ngx_pnalloc(pool, NGX_HTTP_RETELL_POLICY_TABLE + 1);
    if (buf == NULL) {
        return NULL;
    }

    ngx_http_retell_policy_table(outbound, email, buf);

    return buf;
}


/* a column of the answer's one row, or null when SQL NULL */

static const char *
ngx_http_retell_column(PGresult *res, ngx_http_retell_apply_column_e column,
    const char *null)
{
    return PQgetisnull(res, 0, column) ? null : PQgetvalue(res, 0, column);
}


/*
 * The call's own direction, when it says one Retell knows; else the
 * endpoint's ("auto": inbound).  Retell sends all of an agent's calls,
 * and an account-level webhook all of the account's, to one URL.
 */

static ngx_uint_t
ngx_http_retell_call_outbound(ngx_http_request_t *r,
    ngx_http_retell_loc_conf_t *rlcf, ngx_http_retell_event_t *ev)
{
    ngx_uint_t  endpoint_outbound;

    endpoint_outbound = (rlcf->webhook == NGX_HTTP_RETELL_OUTBOUND);

    if (ev->direction.data == NULL) {
        return endpoint_outbound;
    }

    if (ngx_strcmp(ev->direction.data, "outbound") != 0
        && ngx_strcmp(ev->direction.data, "inbound") != 0)
    {
        return endpoint_outbound;
    }

    if (rlcf->webhook != NGX_HTTP_RETELL_AUTO
        && (ev->direction.data[0] == 'o') != endpoint_outbound)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "retell call \"%s\": an %s call on the %s endpoint: "
                      "its customer is the %s, the endpoint's rules apply",
                      ev->call_id.data, ev->direction.data,
                      endpoint_outbound ? "outbound" : "inbound",
                      endpoint_outbound ? "caller" : "called party");
    }

    return ev->direction.data[0] == 'o';
}


/* a parameter: NULL (SQL NULL) for an absent or empty string */

static const char *
ngx_http_retell_text(ngx_http_retell_str_t *s)
{
    return s->len ? (const char *) s->data : NULL;
}


/* a boolean parameter: "t", "f", or NULL when absent */

static const char *
ngx_http_retell_flag(int value)
{
    if (value == NGX_HTTP_RETELL_ABSENT) {
        return NULL;
    }

    return value ? "t" : "f";
}


/* from a result column that goes with the result; not known: empty */

static ngx_int_t
ngx_http_retell_copy_str(ngx_pool_t *pool, ngx_str_t *to, const char *from,
    ngx_uint_t known)
{
    if (!known || from == NULL) {
        ngx_str_null(to);
        return NGX_OK;
    }

    to->len = ngx_strlen(from);

    to->data = ngx_pnalloc(pool, to->len);
    if (to->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(to->data, from, to->len);

    return NGX_OK;
}
