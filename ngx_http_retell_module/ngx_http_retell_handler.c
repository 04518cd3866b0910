
/*
 * The webhook request path, in the order of the README's "HTTP answers":
 * method, body, signature, JSON, event type, then the store.
 */


#include "ngx_http_retell_module.h"


#define NGX_HTTP_RETELL_ERROR_MAX_LEN  160


static void ngx_http_retell_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_retell_process(ngx_http_request_t *r,
    ngx_http_retell_ctx_t *ctx);
static ngx_int_t ngx_http_retell_acknowledge(ngx_http_request_t *r,
    const char *event, const char *call_id);
static ngx_int_t ngx_http_retell_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static const char *ngx_http_retell_verify(ngx_http_request_t *r,
    ngx_http_retell_loc_conf_t *rlcf, ngx_str_t *body);
static ngx_table_elt_t *ngx_http_retell_find_header(ngx_http_request_t *r,
    ngx_str_t *name, ngx_table_elt_t *after);
static ngx_uint_t ngx_http_retell_error_page(ngx_http_request_t *r,
    ngx_uint_t status);
static void ngx_http_retell_run_cleanup(void *data);


static ngx_str_t  ngx_http_retell_signature_header =
    ngx_string("X-Retell-Signature");


ngx_int_t
ngx_http_retell_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_table_elt_t             *allow;
    ngx_http_retell_ctx_t       *ctx;
    ngx_http_retell_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

    ctx = ngx_http_retell_ctx_create(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* with "auto", the call's direction decides: see the store */

    if (rlcf->webhook != NGX_HTTP_RETELL_AUTO) {
        ctx->endpoint = rlcf->webhook;
    }

    if (!(r->method & NGX_HTTP_POST)) {

        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        allow = ngx_list_push(&r->headers_out.headers);
        if (allow == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        allow->hash = 1;
        ngx_str_set(&allow->key, "Allow");
        ngx_str_set(&allow->value, "POST");

        return ngx_http_retell_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                          "method_not_allowed",
                                          "only POST is accepted");
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_retell_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* a body too large, a broken chunked one */
        ctx->status = rc;
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_retell_body_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_http_retell_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_retell_module);

    rc = ngx_http_retell_process(r, ctx);

    if (rc == NGX_DONE) {
        /* the store finalizes the request when the database answers */
        return;
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE && ctx->status == 0) {
        ctx->status = rc;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_retell_process(ngx_http_request_t *r, ngx_http_retell_ctx_t *ctx)
{
    int                          rc;
    char                         err[NGX_HTTP_RETELL_ERROR_MAX_LEN];
    char                         name[NGX_HTTP_RETELL_SHORT_MAX_LEN];
    const char                  *reason;
    ngx_http_retell_event_t     *ev;
    ngx_http_retell_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_retell_module);

    if (ngx_http_retell_read_body(r, &ctx->body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    reason = ngx_http_retell_verify(r, rlcf, &ctx->body);

    if (reason) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "retell webhook rejected from %V: %s",
                      &r->connection->addr_text, reason);

        return ngx_http_retell_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                          "invalid_signature", reason);
    }

    /* the body is Retell's: its call id and event may be logged */
    ctx->verified = 1;

    if (rlcf->webhook == NGX_HTTP_RETELL_CALL_INBOUND) {
        return ngx_http_retell_caller_answer(r, ctx);
    }

    ev = &ctx->event;

    rc = ngx_http_retell_event_parse(ctx->body.data, ctx->body.len, ev,
                                     ngx_http_retell_palloc, r->pool,
                                     err, sizeof(err));

    if (rc == -2) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != 0) {
        /* an event the module does not apply is no error of Retell's */

        if (ngx_http_retell_event_name(ctx->body.data, ctx->body.len, name,
                                       sizeof(name))
            && !ngx_http_retell_event_applied(name))
        {
            return ngx_http_retell_acknowledge(r, name, NULL);
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "retell webhook rejected: %s", err);

        return ngx_http_retell_send_error(r, NGX_HTTP_BAD_REQUEST,
                                          "invalid_payload", err);
    }

    if (ev->action_required_invalid) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "retell call \"%s\": action_required is neither "
                      "true nor false, treated as absent",
                      ev->call_id.data);
    }

    if (ev->type == NGX_HTTP_RETELL_EVENT_OTHER) {
        return ngx_http_retell_acknowledge(r, (char *) ev->event.data,
                                           (char *) ev->call_id.data);
    }

    return ngx_http_retell_store_apply(r, ctx);
}


/*
 * A signed event the module does not apply (chat events, transcript and
 * transfer progress, types Retell adds later): 204, nothing stored, so
 * that Retell does not send it again
 */

static ngx_int_t
ngx_http_retell_acknowledge(ngx_http_request_t *r, const char *event,
    const char *call_id)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "retell call \"%s\": event \"%s\" not applied",
                   call_id ? call_id : "-", event);

    ngx_http_retell_get_ctx(r)->status = NGX_HTTP_NO_CONTENT;

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/*
 * The body as one NUL-terminated string, whether nginx kept it in memory
 * or spooled it to a temp file: the signature covers the exact bytes.
 */

static ngx_int_t
ngx_http_retell_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len, size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_str_set(body, "");
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            /* the empty last_buf nginx ends a chain with has no memory */

            if (b->pos != b->last) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        size = (size_t) (b->file_last - b->file_pos);

        n = ngx_read_file(b->file, p, size, b->file_pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if ((size_t) n != size) {
            ngx_log_error(NGX_LOG_CRIT, r->connection->log, 0,
                          ngx_read_file_n " \"%V\" returned only %z bytes "
                          "instead of %uz", &b->file->name, n, size);
            return NGX_ERROR;
        }

        p += n;
    }

    *p = '\0';

    return NGX_OK;
}


/* NULL when a key signed the body, else why not */

static const char *
ngx_http_retell_verify(ngx_http_request_t *r,
    ngx_http_retell_loc_conf_t *rlcf, ngx_str_t *body)
{
    uint64_t                      now;
    ngx_str_t                    *secret;
    ngx_uint_t                    i;
    ngx_time_t                   *tp;
    ngx_table_elt_t              *h;
    ngx_http_retell_signature_t   sig;

    h = ngx_http_retell_find_header(r, &ngx_http_retell_signature_header,
                                    NULL);

    if (h == NULL) {
        return "missing X-Retell-Signature header";
    }

    /* two signatures: which one was meant is anybody's guess */

    if (ngx_http_retell_find_header(r, &ngx_http_retell_signature_header, h)) {
        return "several X-Retell-Signature headers";
    }

    if (ngx_http_retell_signature_parse(h->value.data, h->value.len, &sig)
        != 0)
    {
        return "malformed X-Retell-Signature header";
    }

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    if (!ngx_http_retell_signature_fresh(&sig, now,
                                         rlcf->signature_tolerance))
    {
        return "signature timestamp outside the tolerance";
    }

    secret = rlcf->secrets->elts;

    for (i = 0; i < rlcf->secrets->nelts; i++) {
        if (ngx_http_retell_signature_verify(&sig, secret[i].data,
                                             secret[i].len, body->data,
                                             body->len))
        {
            return NULL;
        }
    }

    return "signature does not match";
}


/* the first header of that name after "after" (NULL: the first) */

static ngx_table_elt_t *
ngx_http_retell_find_header(ngx_http_request_t *r, ngx_str_t *name,
    ngx_table_elt_t *after)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (after) {
            if (&h[i] == after) {
                after = NULL;
            }

            continue;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/* the pure layer's allocator (ngx_http_retell_alloc_pt) over a pool */

void *
ngx_http_retell_palloc(void *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


ngx_int_t
ngx_http_retell_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *json, size_t len)
{
    ngx_int_t               rc;
    ngx_buf_t              *b;
    ngx_chain_t             out;
    ngx_http_retell_ctx_t  *ctx;

    ctx = ngx_http_retell_get_ctx(r);
    if (ctx) {
        ctx->status = status;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len + 1;    /* and a line end */
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->last, json, len);
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_retell_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    u_char  *json, *p;
    size_t   code_len, message_len, len;

    if (ngx_http_retell_error_page(r, status)) {
        /* the operator's own page for this answer, as for nginx's */
        ngx_http_retell_get_ctx(r)->status = status;
        return status;
    }

    code_len = ngx_strlen(code);
    message_len = ngx_strlen(message);

    len = sizeof("{\"error\":\"\",\"message\":\"\"}") - 1 + code_len
          + message_len + ngx_escape_json(NULL, (u_char *) message,
                                          message_len);

    json = ngx_pnalloc(r->pool, len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(json, "{\"error\":\"%s\",\"message\":\"", code);
    p = (u_char *) ngx_escape_json(p, (u_char *) message, message_len);
    p = ngx_cpymem(p, "\"}", 2);

    return ngx_http_retell_send_json(r, status, json, p - json);
}


/* an error_page the location has for this status, once per request */

static ngx_uint_t
ngx_http_retell_error_page(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->error_pages == NULL || r->error_page
        || ngx_http_retell_get_ctx(r) == NULL)
    {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if ((ngx_uint_t) err_page[i].status == status) {
            return 1;
        }
    }

    return 0;
}


/*
 * ctx->op to this worker's pool, the request's one statement (a delivery
 * or a lookup): NGX_OK, its handler finalizes the request; NGX_DECLINED,
 * the worker exits; NGX_BUSY, the wait queue is full; NGX_ERROR
 */

ngx_int_t
ngx_http_retell_run(ngx_http_request_t *r, ngx_http_retell_ctx_t *ctx)
{
    ngx_int_t                     rc;
    ngx_http_cleanup_t           *cln;
    ngx_http_retell_main_conf_t  *rmcf;

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_retell_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_retell_run_cleanup;
    cln->data = ctx;

    /*
     * running is set first: once the pool has the op, the request may be
     * finalized (from an event) at any time, and ctx must not be touched
     */

    ctx->running = 1;

    rc = ngx_http_retell_pg_run(rmcf->pool, &ctx->op);

    if (rc != NGX_OK) {
        ctx->running = 0;
    }

    return rc;
}


/* the request ends before its statement: the pool must forget it */

static void
ngx_http_retell_run_cleanup(void *data)
{
    ngx_http_retell_ctx_t  *ctx = data;

    if (ctx->running) {
        ngx_http_retell_pg_cancel(&ctx->op);
        ctx->running = 0;
    }
}
