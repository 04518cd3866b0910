
/*
 * Caller context: Retell's inbound call webhook answered with who is
 * calling and what is already open for them (the README's "Caller
 * context").  The phone rings while this runs, so it fails open: one
 * read-only statement with its own budget (retell_call_inbound_timeout),
 * ahead of the deliveries waiting for a connection; when the database
 * cannot answer in time the answer is still 200, with no variables, and
 * the call proceeds with the number's agent.  Nothing is stored: the
 * call's own events follow, with the variables and metadata echoed back.
 */


#include "ngx_http_retell_module.h"
#include "ngx_http_retell_call_inbound.h"


/* what a prompt gets of the last open ticket's call summary, in characters */
#define NGX_HTTP_RETELL_CALLER_SUMMARY_MAX  "300"
/* open ticket ids in the metadata, the most recent first */
#define NGX_HTTP_RETELL_CALLER_IDS_MAX      "20"
#define NGX_HTTP_RETELL_CALLER_VARS         12
/* the longest 400 message: an event name, whole (a cut one is not UTF-8) */
#define NGX_HTTP_RETELL_CALLER_ERR_LEN                                        \
    (sizeof("event \"\" is not call_inbound") + NGX_HTTP_RETELL_SHORT_MAX_LEN)


static const char  ngx_http_retell_caller_sql[] =
    "SELECT * FROM retell.caller_context($1, $2, $3::bigint, $4,"
    " $5::integer, $6::integer)";

/* retell.caller_context()'s parameters (sql/005_caller_context.sql) */

typedef enum {
    NGX_HTTP_RETELL_CALLER_P_AGENT_ID = 0,
    NGX_HTTP_RETELL_CALLER_P_TO_E164,
    NGX_HTTP_RETELL_CALLER_P_FALLBACK_COMPANY,
    NGX_HTTP_RETELL_CALLER_P_FROM_E164,
    NGX_HTTP_RETELL_CALLER_P_SUMMARY_MAX,
    NGX_HTTP_RETELL_CALLER_P_IDS_MAX,
    NGX_HTTP_RETELL_CALLER_NPARAMS
} ngx_http_retell_caller_param_e;

/* and its columns, in the order of its OUT parameters */

typedef enum {
    NGX_HTTP_RETELL_CALLER_COMPANY_ID = 0,
    NGX_HTTP_RETELL_CALLER_COMPANY_NAME,
    NGX_HTTP_RETELL_CALLER_CUSTOMER_ID,
    NGX_HTTP_RETELL_CALLER_CUSTOMER_NAME,
    NGX_HTTP_RETELL_CALLER_CUSTOMER_PHONE,
    NGX_HTTP_RETELL_CALLER_OPEN_TICKET_COUNT,
    NGX_HTTP_RETELL_CALLER_LAST_CALL_AT,
    NGX_HTTP_RETELL_CALLER_TICKET_ID,
    NGX_HTTP_RETELL_CALLER_TICKET_STATUS,
    NGX_HTTP_RETELL_CALLER_TICKET_AGE,
    NGX_HTTP_RETELL_CALLER_TICKET_SUMMARY,
    NGX_HTTP_RETELL_CALLER_OPEN_TICKET_IDS,
    NGX_HTTP_RETELL_CALLER_NCOLUMNS
} ngx_http_retell_caller_column_e;


/* a dynamic variable and the column it comes from, for a known caller */

typedef struct {
    const char                       *name;
    ngx_http_retell_caller_column_e   column;
    unsigned                          ticket:1;   /* only with an open one */
} ngx_http_retell_caller_var_t;


static const ngx_http_retell_caller_var_t  ngx_http_retell_caller_vars[] = {
    { "customer_name", NGX_HTTP_RETELL_CALLER_CUSTOMER_NAME, 0 },
    { "customer_phone", NGX_HTTP_RETELL_CALLER_CUSTOMER_PHONE, 0 },
    { "open_ticket_count", NGX_HTTP_RETELL_CALLER_OPEN_TICKET_COUNT, 0 },
    { "last_call_at", NGX_HTTP_RETELL_CALLER_LAST_CALL_AT, 0 },
    { "open_ticket_id", NGX_HTTP_RETELL_CALLER_TICKET_ID, 1 },
    { "open_ticket_status", NGX_HTTP_RETELL_CALLER_TICKET_STATUS, 1 },
    { "open_ticket_age", NGX_HTTP_RETELL_CALLER_TICKET_AGE, 1 },
    { "open_ticket_summary", NGX_HTTP_RETELL_CALLER_TICKET_SUMMARY, 1 },
    { NULL, 0, 0 }
};


/* the answer as it is built: "name": "value" pairs, values escaped */

typedef struct {
    const char  *name;
    u_char      *value;
    size_t       len;
} ngx_http_retell_caller_pair_t;


static void ngx_http_retell_caller_done(ngx_http_retell_pg_op_t *op,
    PGresult *res, const char *error);
static ngx_int_t ngx_http_retell_caller_context(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, PGresult *res);
static ngx_int_t ngx_http_retell_caller_send(ngx_http_request_t *r,
    ngx_http_retell_caller_pair_t *vars, ngx_uint_t nvars, PGresult *res);
static ngx_int_t ngx_http_retell_caller_fail_open(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, const char *why);
static const char *ngx_http_retell_caller_e164(ngx_pool_t *pool,
    const char *raw, ngx_uint_t default_cc);
static ngx_int_t ngx_http_retell_caller_copy(ngx_pool_t *pool, ngx_str_t *to,
    PGresult *res, int column);


ngx_int_t
ngx_http_retell_caller_answer(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx)
{
    int                              rc;
    char                             err[NGX_HTTP_RETELL_CALLER_ERR_LEN];
    u_char                          *company;
    ngx_int_t                        run;
    const char                     **v;
    ngx_http_retell_pg_op_t         *op;
    ngx_http_retell_loc_conf_t      *rlcf;
    ngx_http_retell_call_inbound_t  *ci;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

    ci = ngx_palloc(r->pool, sizeof(ngx_http_retell_call_inbound_t));
    if (ci == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_retell_call_inbound_parse(ctx->body.data, ctx->body.len,
                                            ci, err, sizeof(err));

    if (rc == 1) {
        ngx_snprintf((u_char *) err, sizeof(err), "event \"%s\" is not "
                     "call_inbound%Z", ci->event);
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "retell call_inbound rejected: %s", err);

        return ngx_http_retell_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_payload", err);
    }

    /* for $retell_event and $retell_call_id */

    ctx->event.event.data = (u_char *) ci->event;
    ctx->event.event.len = ngx_strlen(ci->event);

    if (ci->call_id[0]) {
        ctx->event.call_id.data = (u_char *) ci->call_id;
        ctx->event.call_id.len = ngx_strlen(ci->call_id);
    }

    v = ngx_pcalloc(r->pool, NGX_HTTP_RETELL_CALLER_NPARAMS * sizeof(char *));
    if (v == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v[NGX_HTTP_RETELL_CALLER_P_AGENT_ID] = ci->agent_id[0] ? ci->agent_id
                                                           : NULL;
    v[NGX_HTTP_RETELL_CALLER_P_TO_E164] =
        ngx_http_retell_caller_e164(r->pool, ci->to_number,
                                    rlcf->default_country_code);

    /* an anonymous or unusable caller is no customer: NULL matches none */

    v[NGX_HTTP_RETELL_CALLER_P_FROM_E164] =
        ngx_http_retell_caller_e164(r->pool, ci->from_number,
                                    rlcf->default_country_code);

    if (rlcf->company) {
        company = ngx_pnalloc(r->pool, NGX_INT_T_LEN + 1);
        if (company == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *ngx_sprintf(company, "%i", rlcf->company) = '\0';
        v[NGX_HTTP_RETELL_CALLER_P_FALLBACK_COMPANY] = (const char *) company;
    }

    v[NGX_HTTP_RETELL_CALLER_P_SUMMARY_MAX] =
                                          NGX_HTTP_RETELL_CALLER_SUMMARY_MAX;
    v[NGX_HTTP_RETELL_CALLER_P_IDS_MAX] = NGX_HTTP_RETELL_CALLER_IDS_MAX;

    op = &ctx->op;
    op->command = ngx_http_retell_caller_sql;
    op->nparams = NGX_HTTP_RETELL_CALLER_NPARAMS;
    op->values = v;
    op->timeout = rlcf->call_inbound_timeout;
    op->handler = ngx_http_retell_caller_done;
    op->data = r;
    op->log = r->connection->log;
    op->idempotent = 1;         /* it reads */
    op->urgent = 1;
    op->named = 1;

    run = ngx_http_retell_run(r, ctx);

    if (run == NGX_OK) {
        return NGX_DONE;
    }

    if (run == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_retell_caller_fail_open(r, ctx,
                                            run == NGX_DECLINED
                                            ? "worker is shutting down"
                                            : "too many statements waiting "
                                              "for a database connection");
}


static void
ngx_http_retell_caller_done(ngx_http_retell_pg_op_t *op, PGresult *res,
    const char *error)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_retell_ctx_t  *ctx;

    r = op->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_retell_module);

    ctx->running = 0;

    if (error) {
        rc = ngx_http_retell_caller_fail_open(r, ctx, error);

    } else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1
               || PQnfields(res) != NGX_HTTP_RETELL_CALLER_NCOLUMNS)
    {
        rc = ngx_http_retell_caller_fail_open(r, ctx,
                                              PQresultErrorMessage(res));

    } else {
        rc = ngx_http_retell_caller_context(r, ctx, res);
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_retell_caller_context(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, PGresult *res)
{
    ngx_uint_t                           n, known, open;
    ngx_http_retell_caller_pair_t        vars[NGX_HTTP_RETELL_CALLER_VARS];
    const ngx_http_retell_caller_var_t  *var;

    if (PQgetisnull(res, 0, NGX_HTTP_RETELL_CALLER_COMPANY_ID)) {
        /* no company, no variables */
        ctx->unrouted = 1;
        return ngx_http_retell_caller_send(r, NULL, 0, NULL);
    }

    known = !PQgetisnull(res, 0, NGX_HTTP_RETELL_CALLER_CUSTOMER_ID);
    open = !PQgetisnull(res, 0, NGX_HTTP_RETELL_CALLER_TICKET_ID);

    n = 0;

    vars[n].name = "customer_known";
    vars[n].value = (u_char *) (known ? "true" : "false");
    vars[n++].len = known ? 4 : 5;

    vars[n].name = "company_name";
    vars[n].value = (u_char *) PQgetvalue(res, 0,
                                       NGX_HTTP_RETELL_CALLER_COMPANY_NAME);
    vars[n++].len = PQgetlength(res, 0, NGX_HTTP_RETELL_CALLER_COMPANY_NAME);

    if (!known) {
        /* nothing personal of a caller the company does not know */
        return ngx_http_retell_caller_send(r, vars, n, NULL);
    }

    for (var = ngx_http_retell_caller_vars; var->name; var++) {
        if (var->ticket && !open) {
            continue;
        }

        /* a NULL is "", all values strings */

        vars[n].name = var->name;
        vars[n].value = (u_char *) PQgetvalue(res, 0, var->column);
        vars[n++].len = PQgetlength(res, 0, var->column);
    }

    /* $retell_ticket_id and _status, read after res is freed */

    if (open
        && (ngx_http_retell_caller_copy(r->pool, &ctx->ticket_id, res,
                                        NGX_HTTP_RETELL_CALLER_TICKET_ID)
            != NGX_OK
            || ngx_http_retell_caller_copy(r->pool, &ctx->ticket_status, res,
                                           NGX_HTTP_RETELL_CALLER_TICKET_STATUS)
               != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_retell_caller_send(r, vars, n, res);
}


/*
 * {"call_inbound":{"dynamic_variables":{...}}}, and the metadata of a
 * known caller (res): {"retell_customer_id":N,"retell_open_ticket_ids":[..]}
 * that later events of the call bring back (sql/002_apply_webhook.sql)
 */

static ngx_int_t
ngx_http_retell_caller_send(ngx_http_request_t *r,
    ngx_http_retell_caller_pair_t *vars, ngx_uint_t nvars, PGresult *res)
{
    u_char      *json, *p, *id, *ids;
    size_t       len, id_len, ids_len;
    ngx_uint_t   i;

    static const char  head[] = "{\"call_inbound\":{\"dynamic_variables\":{";

    id = NULL;
    ids = NULL;
    id_len = 0;
    ids_len = 0;

    len = sizeof(head) - 1 + sizeof("}}}") - 1;

    for (i = 0; i < nvars; i++) {
        len += sizeof(",\"\":\"\"") - 1 + ngx_strlen(vars[i].name)
               + vars[i].len
               + ngx_escape_json(NULL, vars[i].value, vars[i].len);
    }

    if (res) {
        /* numbers from the database: no escaping */
        id = (u_char *) PQgetvalue(res, 0, NGX_HTTP_RETELL_CALLER_CUSTOMER_ID);
        id_len = PQgetlength(res, 0, NGX_HTTP_RETELL_CALLER_CUSTOMER_ID);
        ids = (u_char *) PQgetvalue(res, 0,
                                    NGX_HTTP_RETELL_CALLER_OPEN_TICKET_IDS);
        ids_len = PQgetlength(res, 0, NGX_HTTP_RETELL_CALLER_OPEN_TICKET_IDS);

        len += sizeof(",\"metadata\":{\"retell_customer_id\":,"
                      "\"retell_open_ticket_ids\":[]}") - 1 + id_len + ids_len;
    }

    json = ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(json, head, sizeof(head) - 1);

    for (i = 0; i < nvars; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "\"%s\":\"", vars[i].name);
        p = (u_char *) ngx_escape_json(p, vars[i].value, vars[i].len);
        *p++ = '"';
    }

    *p++ = '}';

    if (res) {
        p = ngx_cpymem(p, ",\"metadata\":{\"retell_customer_id\":",
                       sizeof(",\"metadata\":{\"retell_customer_id\":") - 1);
        p = ngx_cpymem(p, id, id_len);
        p = ngx_cpymem(p, ",\"retell_open_ticket_ids\":[",
                       sizeof(",\"retell_open_ticket_ids\":[") - 1);
        p = ngx_cpymem(p, ids, ids_len);
        *p++ = ']';
        *p++ = '}';
    }

    *p++ = '}';
    *p++ = '}';

    return ngx_http_retell_send_json(r, NGX_HTTP_OK, json, p - json);
}


/* the call proceeds whatever happened here: 200, no variables */

static ngx_int_t
ngx_http_retell_caller_fail_open(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, const char *why)
{
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "retell call_inbound \"%s\": %s, answering without the "
                  "caller's context",
                  ctx->event.call_id.data ? (char *) ctx->event.call_id.data
                                          : "-", why);

    ctx->failed_open = 1;

    return ngx_http_retell_caller_send(r, NULL, 0, NULL);
}


/* the E.164 form of a number, or NULL when there is none */

static const char *
ngx_http_retell_caller_e164(ngx_pool_t *pool, const char *raw,
    ngx_uint_t default_cc)
{
    u_char                   *e164;
    ngx_http_retell_phone_t   phone;

    if (raw[0] == '\0'
        || !ngx_http_retell_phone_normalize((const u_char *) raw,
                                            ngx_strlen(raw), default_cc,
                                            &phone))
    {
        return NULL;
    }

    e164 = ngx_pnalloc(pool, ngx_strlen(phone.e164) + 1);
    if (e164 == NULL) {
        return NULL;
    }

    ngx_memcpy(e164, phone.e164, ngx_strlen(phone.e164) + 1);

    return (const char *) e164;
}


static ngx_int_t
ngx_http_retell_caller_copy(ngx_pool_t *pool, ngx_str_t *to, PGresult *res,
    int column)
{
    to->len = PQgetlength(res, 0, column);

    to->data = ngx_pnalloc(pool, to->len);
    if (to->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(to->data, PQgetvalue(res, 0, column), to->len);

    return NGX_OK;
}
