
/*
 * Variables for log_format, map and headers, as $upstream_response_time
 * is: what the module made of a delivery.  $retell_call_id and
 * $retell_event are set only once the signature is verified (before
 * that the body is anyone's); no variable holds a phone number, a
 * transcript or an address.  A value the module does not know is "not
 * found" (logged "-"), never an empty string it wrote.
 *
 * The module's context is reached through a pool cleanup as well as
 * through r->ctx, as the realip module does: an error_page redirect wipes
 * r->ctx, and the access log of the redirected request still gets the
 * delivery's values.
 */


#include "ngx_http_retell_module.h"


typedef ngx_int_t (*ngx_http_retell_value_pt)(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);


static ngx_int_t ngx_http_retell_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_retell_var_endpoint(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_call_id(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_event(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_outcome(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_ticket_id(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_ticket_status(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_email(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_duplicate(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_db_time(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_db_attempts(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static ngx_int_t ngx_http_retell_var_batch_size(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value);
static void ngx_http_retell_ctx_cleanup(void *data);


static ngx_http_variable_t  ngx_http_retell_vars[] = {

    { ngx_string("retell_endpoint"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_endpoint, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_call_id"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_call_id, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_event"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_event, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_outcome"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_outcome, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_ticket_id"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_ticket_id, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_ticket_status"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_ticket_status,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_email"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_email, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_duplicate"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_duplicate, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_db_time"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_db_time, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_db_attempts"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_db_attempts,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("retell_batch_size"), NULL, ngx_http_retell_variable,
      (uintptr_t) ngx_http_retell_var_batch_size, NGX_HTTP_VAR_NOCACHEABLE,
      0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_retell_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_retell_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the request's context, made once, found again after a redirect */

ngx_http_retell_ctx_t *
ngx_http_retell_ctx_create(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_retell_ctx_t  *ctx;

    ctx = ngx_http_retell_get_ctx(r);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_retell_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_retell_ctx_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_retell_module);

    return ctx;
}


ngx_http_retell_ctx_t *
ngx_http_retell_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t     *cln;
    ngx_http_retell_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_retell_module);

    if (ctx == NULL && (r->internal || r->filter_finalize)) {

        /* an internal redirect wiped r->ctx: the cleanup still has it */

        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_retell_ctx_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_retell_module);
                break;
            }
        }
    }

    return ctx;
}


static void
ngx_http_retell_ctx_cleanup(void *data)
{
    /* nothing: the cleanup only carries the context across redirects */
}


static ngx_int_t
ngx_http_retell_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t                  value;
    ngx_http_retell_ctx_t     *ctx;
    ngx_http_retell_value_pt   get;

    get = (ngx_http_retell_value_pt) data;
    ctx = ngx_http_retell_get_ctx(r);

    if (get(r, ctx, &value) != NGX_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_var_endpoint(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    ngx_uint_t  endpoint;

    endpoint = ngx_http_retell_endpoint(r, ctx);

    if (endpoint == 0) {
        return NGX_DECLINED;
    }

    if (endpoint == NGX_HTTP_RETELL_OUTBOUND) {
        ngx_str_set(value, "outbound");

    } else if (endpoint == NGX_HTTP_RETELL_CALL_INBOUND) {
        ngx_str_set(value, "call_inbound");

    } else {
        ngx_str_set(value, "inbound");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_var_text(u_char *data, size_t len, ngx_str_t *value)
{
    if (data == NULL || len == 0) {
        return NGX_DECLINED;
    }

    value->data = data;
    value->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_var_call_id(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL || !ctx->verified) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_text(ctx->event.call_id.data,
                                    ctx->event.call_id.len, value);
}


static ngx_int_t
ngx_http_retell_var_event(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL || !ctx->verified) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_text(ctx->event.event.data,
                                    ctx->event.event.len, value);
}


/* the metric's set: what the module answered, and why */

ngx_str_t  ngx_http_retell_outcomes[] = {
    ngx_string("applied"),
    ngx_string("duplicate"),
    ngx_string("unrouted"),
    ngx_string("ignored"),
    ngx_string("bad_signature"),
    ngx_string("bad_request"),
    ngx_string("too_large"),
    ngx_string("unavailable"),
    ngx_string("error")
};


/* an index in ngx_http_retell_outcomes, or NGX_DECLINED */

ngx_int_t
ngx_http_retell_outcome(ngx_http_request_t *r, ngx_http_retell_ctx_t *ctx)
{
    ngx_uint_t                   status, answered;
    ngx_http_retell_loc_conf_t  *rlcf;

    /* what nginx answered (as $status) */
    answered = r->err_status ? r->err_status : r->headers_out.status;

    if (ctx) {
        status = ctx->status;

        if (status == 0
            && (answered == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
                || answered == NGX_HTTP_BAD_REQUEST))
        {
            /* nginx refused the body in a later read (a chunk too large) */
            status = answered;
        }

    } else {
        /* nginx refused the body before the module ran */

        rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

        if (rlcf->webhook == 0
            || answered != NGX_HTTP_REQUEST_ENTITY_TOO_LARGE)
        {
            return NGX_DECLINED;
        }

        status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    switch (status) {

    case NGX_HTTP_OK:
        if (ctx->failed_open) {
            /* the inbound call webhook answered without the database */
            return NGX_HTTP_RETELL_OUTCOME_UNAVAILABLE;
        }

        if (ctx->unrouted) {
            return NGX_HTTP_RETELL_OUTCOME_UNROUTED;
        }

        return ctx->duplicate ? NGX_HTTP_RETELL_OUTCOME_DUPLICATE
                              : NGX_HTTP_RETELL_OUTCOME_APPLIED;

    case NGX_HTTP_ACCEPTED:
        return NGX_HTTP_RETELL_OUTCOME_UNROUTED;

    case NGX_HTTP_NO_CONTENT:
        return NGX_HTTP_RETELL_OUTCOME_IGNORED;

    case NGX_HTTP_UNAUTHORIZED:
        return NGX_HTTP_RETELL_OUTCOME_BAD_SIGNATURE;

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_NOT_ALLOWED:
    case NGX_HTTP_LENGTH_REQUIRED:
        return NGX_HTTP_RETELL_OUTCOME_BAD_REQUEST;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        return NGX_HTTP_RETELL_OUTCOME_TOO_LARGE;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return NGX_HTTP_RETELL_OUTCOME_UNAVAILABLE;

    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        return NGX_HTTP_RETELL_OUTCOME_ERROR;

    default:
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_http_retell_var_outcome(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    ngx_int_t  outcome;

    outcome = ngx_http_retell_outcome(r, ctx);

    if (outcome == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    *value = ngx_http_retell_outcomes[outcome];

    return NGX_OK;
}


/* inbound, outbound, or 0 when not known */

ngx_uint_t
ngx_http_retell_endpoint(ngx_http_request_t *r, ngx_http_retell_ctx_t *ctx)
{
    ngx_http_retell_loc_conf_t  *rlcf;

    if (ctx) {
        return ctx->endpoint;
    }

    /* the module never ran (limit_req, a body too large): the location */

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

    return (rlcf->webhook == NGX_HTTP_RETELL_AUTO) ? 0 : rlcf->webhook;
}


static ngx_int_t
ngx_http_retell_var_ticket_id(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_text(ctx->ticket_id.data, ctx->ticket_id.len,
                                    value);
}


static ngx_int_t
ngx_http_retell_var_ticket_status(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_text(ctx->ticket_status.data,
                                    ctx->ticket_status.len, value);
}


static ngx_int_t
ngx_http_retell_var_email(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_text(ctx->email.data, ctx->email.len, value);
}


static ngx_int_t
ngx_http_retell_var_duplicate(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL || !ctx->answered) {
        return NGX_DECLINED;
    }

    if (ctx->duplicate) {
        ngx_str_set(value, "true");

    } else {
        ngx_str_set(value, "false");
    }

    return NGX_OK;
}


/* seconds with millisecond resolution, one value per attempt */

static ngx_int_t
ngx_http_retell_var_db_time(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    u_char      *p;
    ngx_uint_t   i, n;
    ngx_msec_t   ms;

    if (ctx == NULL || ctx->op.attempts == 0) {
        return NGX_DECLINED;
    }

    n = ngx_min(ctx->op.attempts, NGX_HTTP_RETELL_PG_ATTEMPTS);

    p = ngx_pnalloc(r->pool, n * (NGX_TIME_T_LEN + 4 + 2));
    if (p == NULL) {
        return NGX_ERROR;
    }

    value->data = p;

    for (i = 0; i < n; i++) {
        ms = ctx->op.attempt[i];

        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        p = ngx_sprintf(p, "%T.%03M", (time_t) ms / 1000, ms % 1000);
    }

    value->len = p - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_var_count(ngx_http_request_t *r, ngx_uint_t n,
    ngx_str_t *value)
{
    value->data = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    value->len = ngx_sprintf(value->data, "%ui", n) - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_var_db_attempts(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL || ctx->op.attempts == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_count(r, ctx->op.attempts, value);
}


static ngx_int_t
ngx_http_retell_var_batch_size(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx, ngx_str_t *value)
{
    if (ctx == NULL || ctx->op.attempts == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_retell_var_count(r, ctx->op.batch_size, value);
}
