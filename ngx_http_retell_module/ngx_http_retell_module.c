
/*
 * ngx_http_retell_module: directives and configuration.
 */


#include "ngx_http_retell_module.h"
#include "ngx_http_retell_metrics.h"



#define NGX_HTTP_RETELL_SECRET_MAX_LEN  4096


static void *ngx_http_retell_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_retell_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_retell_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_retell_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);

static char *ngx_http_retell_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_retell_webhook_secret(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_retell_webhook_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_retell_add_secret(ngx_conf_t *cf,
    ngx_http_retell_loc_conf_t *rlcf, ngx_str_t *secret);
static ngx_int_t ngx_http_retell_init_process(ngx_cycle_t *cycle);
static void ngx_http_retell_exit_process(ngx_cycle_t *cycle);
static void ngx_http_retell_module_file_check(ngx_conf_t *cf);
static char *ngx_http_retell_positive_msec(ngx_conf_t *cf, void *post,
    void *data);


/* a time of 0 would fail every request at once, or refuse every one */
static ngx_conf_post_t  ngx_http_retell_positive_time = {
    ngx_http_retell_positive_msec
};


static ngx_conf_num_bounds_t  ngx_http_retell_pool_bounds = {
    ngx_conf_check_num_bounds, 1, 1024
};

static ngx_conf_num_bounds_t  ngx_http_retell_batch_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_HTTP_RETELL_PG_BATCH_MAX
};

static ngx_conf_num_bounds_t  ngx_http_retell_company_bounds = {
    ngx_conf_check_num_bounds, 1, NGX_MAX_INT_T_VALUE
};

static ngx_conf_num_bounds_t  ngx_http_retell_country_code_bounds = {
    ngx_conf_check_num_bounds, 1, 999
};

static ngx_conf_num_bounds_t  ngx_http_retell_attempts_bounds = {
    ngx_conf_check_num_bounds, 1, 100
};

static ngx_conf_enum_t  ngx_http_retell_starttls[] = {
    { ngx_string("off"), NGX_HTTP_RETELL_STARTTLS_OFF },
    { ngx_string("on"), NGX_HTTP_RETELL_STARTTLS_ON },
    { ngx_string("required"), NGX_HTTP_RETELL_STARTTLS_REQUIRED },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_retell_commands[] = {

    { ngx_string("retell_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_webhook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_retell_metrics,
      0,
      0,
      NULL },

    { ngx_string("retell_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_metrics_zone_size,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_webhook_secret"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_webhook_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_webhook_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_webhook_secret_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_signature_tolerance"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, signature_tolerance),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_postgres,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_postgres_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, pool_size),
      &ngx_http_retell_pool_bounds },

    { ngx_string("retell_postgres_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, batch),
      &ngx_http_retell_batch_bounds },

    { ngx_string("retell_postgres_batch_hold"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, batch_hold),
      NULL },

    { ngx_string("retell_postgres_prepare"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, prepare),
      NULL },

    { ngx_string("retell_postgres_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, postgres_connect_timeout),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_postgres_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, postgres_timeout),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_call_inbound_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, call_inbound_timeout),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_company"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, company),
      &ngx_http_retell_company_bounds },

    { ngx_string("retell_failed_call_tickets"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, failed_call_tickets),
      NULL },

    { ngx_string("retell_default_country_code"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_retell_loc_conf_t, default_country_code),
      &ngx_http_retell_country_code_bounds },

    { ngx_string("retell_smtp_server"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_retell_smtp_server,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_smtp_from"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp_from),
      NULL },

    { ngx_string("retell_smtp_starttls"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp.starttls),
      &ngx_http_retell_starttls },

    { ngx_string("retell_smtp_auth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_retell_smtp_auth,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("retell_smtp_helo"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp.helo),
      NULL },

    { ngx_string("retell_smtp_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp_trusted_certificate),
      NULL },

    { ngx_string("retell_smtp_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp.timeout),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_smtp_max_attempts"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp_max_attempts),
      &ngx_http_retell_attempts_bounds },

    { ngx_string("retell_smtp_backoff"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, smtp_backoff),
      &ngx_http_retell_positive_time },

    { ngx_string("retell_ticket_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_retell_main_conf_t, ticket_url),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_retell_module_ctx = {
    ngx_http_retell_add_variables,         /* preconfiguration */
    ngx_http_retell_metrics_init,          /* postconfiguration */

    ngx_http_retell_create_main_conf,      /* create main configuration */
    ngx_http_retell_init_main_conf,        /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_retell_create_loc_conf,       /* create location configuration */
    ngx_http_retell_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_retell_module = {
    NGX_MODULE_V1,
    &ngx_http_retell_module_ctx,           /* module context */
    ngx_http_retell_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_retell_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_retell_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_retell_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_retell_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_retell_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->postgres = { 0, NULL };
     *     rmcf->smtp.server = NULL;
     *     rmcf->smtp.user = { 0, NULL };
     *     rmcf->smtp_from = { 0, NULL };
     *     rmcf->ticket_url = { 0, NULL };
     *     rmcf->smtp_trusted_certificate = { 0, NULL };
     */

    rmcf->pool_size = NGX_CONF_UNSET_UINT;
    rmcf->batch = NGX_CONF_UNSET_UINT;
    rmcf->batch_hold = NGX_CONF_UNSET_MSEC;
    rmcf->prepare = NGX_CONF_UNSET;
    rmcf->postgres_connect_timeout = NGX_CONF_UNSET_MSEC;
    rmcf->smtp.starttls = NGX_CONF_UNSET_UINT;
    rmcf->smtp.timeout = NGX_CONF_UNSET_MSEC;
    rmcf->smtp_max_attempts = NGX_CONF_UNSET_UINT;
    rmcf->smtp_backoff = NGX_CONF_UNSET_MSEC;
    rmcf->metrics_zone = NGX_CONF_UNSET_SIZE;

    return rmcf;
}


static char *
ngx_http_retell_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_retell_main_conf_t *rmcf = conf;

    ngx_http_retell_module_file_check(cf);

    if (ngx_http_retell_metrics_zone(cf, rmcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_uint_value(rmcf->pool_size, 8);
    ngx_conf_init_uint_value(rmcf->batch, 8);
    ngx_conf_init_msec_value(rmcf->batch_hold, 3);
    ngx_conf_init_value(rmcf->prepare, 1);

    /* libpq's connect_timeout, when given, unless the directive says */
    ngx_conf_init_msec_value(rmcf->postgres_connect_timeout,
                             rmcf->postgres_conninfo_timeout
                             ? rmcf->postgres_conninfo_timeout : 2000);
    return ngx_http_retell_smtp_init_conf(cf, rmcf);
}


/*
 * dpkg and "make install" replace the file that holds this module, and
 * a reload keeps running the code already loaded (dlopen() of a name
 * loaded returns it): only a new master loads the new file.  The file's
 * identity at the first load stays in this code, so a reload can say so
 * rather than let the operator believe the upgrade done.
 */

static void
ngx_http_retell_module_file_check(ngx_conf_t *cf)
{
    Dl_info          info;
    ngx_file_info_t  fi;

    static time_t           mtime;
    static ngx_uint_t       known;
    static ngx_file_uniq_t  uniq;

    if (dladdr((void *) &ngx_http_retell_module, &info) == 0
        || info.dli_fname == NULL
        || ngx_file_info(info.dli_fname, &fi) == NGX_FILE_ERROR)
    {
        /* not known, or removed (apt remove): nothing to compare */
        return;
    }

    if (!known) {
        known = 1;
        uniq = ngx_file_uniq(&fi);
        mtime = ngx_file_mtime(&fi);
        return;
    }

    if (uniq != ngx_file_uniq(&fi) || mtime != ngx_file_mtime(&fi)) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"%s\", which holds ngx_http_retell_module, was "
                      "replaced after nginx loaded it: a reload keeps "
                      "running the code loaded first; restart nginx, or "
                      "upgrade it on the fly (USR2, then QUIT to the old "
                      "master), to run the new file", info.dli_fname);
    }
}


static void *
ngx_http_retell_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_retell_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_retell_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rlcf->webhook = 0;
     *     rlcf->secrets = NULL;
     */

    rlcf->signature_tolerance = NGX_CONF_UNSET_MSEC;
    rlcf->postgres_timeout = NGX_CONF_UNSET_MSEC;
    rlcf->call_inbound_timeout = NGX_CONF_UNSET_MSEC;
    rlcf->company = NGX_CONF_UNSET;
    rlcf->failed_call_tickets = NGX_CONF_UNSET;
    rlcf->default_country_code = NGX_CONF_UNSET_UINT;

    return rlcf;
}


static char *
ngx_http_retell_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_retell_loc_conf_t *prev = parent;
    ngx_http_retell_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_retell_main_conf_t  *rmcf;

    /* secrets given at this level replace inherited ones, as arrays do */

    if (conf->secrets == NULL) {
        conf->secrets = prev->secrets;
    }

    ngx_conf_merge_msec_value(conf->signature_tolerance,
                              prev->signature_tolerance, 5 * 60 * 1000);

    ngx_conf_merge_msec_value(conf->postgres_timeout,
                              prev->postgres_timeout, 5000);

    /* the caller hears ringing meanwhile: a lookup, not a delivery */
    ngx_conf_merge_msec_value(conf->call_inbound_timeout,
                              prev->call_inbound_timeout, 300);

    ngx_conf_merge_value(conf->company, prev->company, 0);
    ngx_conf_merge_value(conf->failed_call_tickets,
                         prev->failed_call_tickets, 1);

    ngx_conf_merge_uint_value(conf->default_country_code,
                              prev->default_country_code, 1);

    if (!conf->webhook) {
        return NGX_CONF_OK;
    }

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_retell_module);

    if (rmcf->postgres.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_webhook\" requires \"retell_postgres\" "
                           "in the http block");
        return NGX_CONF_ERROR;
    }

    rmcf->webhooks++;

    /*
     * a body nginx spools to a temp file is read back with a blocking
     * read: say so when the location lets that happen
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if ((off_t) clcf->client_body_buffer_size < clcf->client_max_body_size
        || clcf->client_max_body_size == 0)
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"client_body_buffer_size\" %uz is smaller "
                           "than \"client_max_body_size\" %O on a "
                           "\"retell_webhook\" location: larger bodies are "
                           "read back from a temporary file with a blocking "
                           "read; set both to the same size",
                           clcf->client_body_buffer_size,
                           clcf->client_max_body_size);
    }

    if (conf->secrets == NULL || conf->secrets->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_webhook\" requires "
                           "\"retell_webhook_secret\" or "
                           "\"retell_webhook_secret_file\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_retell_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_retell_loc_conf_t *rlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (rlcf->webhook) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "inbound") == 0) {
        rlcf->webhook = NGX_HTTP_RETELL_INBOUND;

    } else if (ngx_strcmp(value[1].data, "outbound") == 0) {
        rlcf->webhook = NGX_HTTP_RETELL_OUTBOUND;

    } else if (ngx_strcmp(value[1].data, "auto") == 0) {
        rlcf->webhook = NGX_HTTP_RETELL_AUTO;

    } else if (ngx_strcmp(value[1].data, "call_inbound") == 0) {
        rlcf->webhook = NGX_HTTP_RETELL_CALL_INBOUND;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"inbound\", \"outbound\", "
                           "\"auto\" or \"call_inbound\"",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_retell_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_retell_webhook_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    return ngx_http_retell_add_secret(cf, conf, &value[1]);
}


static char *
ngx_http_retell_webhook_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t  *value, secret;

    value = cf->args->elts;

    if (ngx_http_retell_read_secret(cf, &value[1], &secret) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_retell_add_secret(cf, conf, &secret);
}


/* a secret file, read once at configuration load; trailing space dropped */

char *
ngx_http_retell_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret)
{
    char             *rv;
    u_char           *buf;
    size_t            size;
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *path;
    file.log = cf->log;

    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", file.name.data);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", file.name.data);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%s\" is not a regular file",
                           file.name.data);
        goto done;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size > NGX_HTTP_RETELL_SECRET_MAX_LEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%s\" is larger than %d bytes",
                           file.name.data, NGX_HTTP_RETELL_SECRET_MAX_LEN);
        goto done;
    }

    buf = ngx_pnalloc(cf->pool, size + 1);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_file(&file, buf, size, 0);

    if (n == NGX_ERROR) {
        goto done;
    }

    if ((size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           ngx_read_file_n " \"%s\" returned only %z bytes "
                           "instead of %uz", file.name.data, n, size);
        goto done;
    }

    /* editors and "echo" leave a trailing line end */

    while (size && (buf[size - 1] == '\n' || buf[size - 1] == '\r'
                    || buf[size - 1] == ' ' || buf[size - 1] == '\t'))
    {
        size--;
    }

    if (size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%s\" is empty", file.name.data);
        goto done;
    }

    buf[size] = '\0';
    secret->data = buf;
    secret->len = size;

    rv = NGX_CONF_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", file.name.data);
    }

    return rv;
}


static char *
ngx_http_retell_add_secret(ngx_conf_t *cf, ngx_http_retell_loc_conf_t *rlcf,
    ngx_str_t *secret)
{
    ngx_str_t  *s;

    if (secret->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the Retell webhook secret must not be empty");
        return NGX_CONF_ERROR;
    }

    if (rlcf->secrets == NULL) {
        rlcf->secrets = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (rlcf->secrets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    s = ngx_array_push(rlcf->secrets);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    *s = *secret;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_retell_init_process(ngx_cycle_t *cycle)
{
    ngx_http_retell_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;      /* no http block */
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_retell_module);

    if (rmcf == NULL) {
        return NGX_OK;
    }

    ngx_http_retell_metrics_attach(rmcf);

    if (rmcf->postgres.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_retell_store_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    /* connections are opened on first use, not here */

    rmcf->pool = ngx_http_retell_pg_pool_create(cycle, rmcf->postgres_hosts,
                                                rmcf->pool_size, rmcf->batch,
                                                rmcf->batch_hold, rmcf->prepare,
                                                rmcf->postgres_connect_timeout);
    if (rmcf->pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_retell_metrics_worker(cycle, rmcf->pool) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rmcf->smtp.server
        && ngx_http_retell_outbox_init(cycle, rmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_retell_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_retell_main_conf_t  *rmcf;

    ngx_http_retell_signature_cleanup();
    ngx_http_retell_metrics_worker_exit();

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_retell_module);

    if (rmcf && rmcf->pool) {
        ngx_http_retell_pg_pool_close(rmcf->pool);
    }
}


static char *
ngx_http_retell_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *msp = data;

    if (*msp == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}
