
/*
 * The SMTP client's configuration: "retell_smtp_server" and
 * "retell_smtp_auth", and the checks and the TLS context made once the
 * http block is read (docs/email.md has every directive).
 */


#include "ngx_http_retell_module.h"
#include "ngx_http_retell_mail.h"


char *
ngx_http_retell_smtp_init_conf(ngx_conf_t *cf,
    ngx_http_retell_main_conf_t *rmcf)
{
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;

    /* with credentials to protect, TLS is not optional unless said so */
    ngx_conf_init_uint_value(rmcf->smtp.starttls,
                             rmcf->smtp.user.len
                             ? NGX_HTTP_RETELL_STARTTLS_REQUIRED
                             : NGX_HTTP_RETELL_STARTTLS_ON);
    ngx_conf_init_msec_value(rmcf->smtp.timeout, 30000);
    ngx_conf_init_uint_value(rmcf->smtp_max_attempts, 8);
    ngx_conf_init_msec_value(rmcf->smtp_backoff, 30000);

    if (rmcf->smtp.server == NULL) {
        return NGX_CONF_OK;
    }

    if (rmcf->postgres.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_smtp_server\" requires "
                           "\"retell_postgres\"");
        return NGX_CONF_ERROR;
    }

    if (rmcf->smtp_from.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_smtp_server\" requires "
                           "\"retell_smtp_from\"");
        return NGX_CONF_ERROR;
    }

    if (!ngx_http_retell_mail_valid_address(rmcf->smtp_from.data,
                                            rmcf->smtp_from.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"retell_smtp_from\" address \"%V\"",
                           &rmcf->smtp_from);
        return NGX_CONF_ERROR;
    }

    if (rmcf->smtp.helo.len == 0) {
        rmcf->smtp.helo = cf->cycle->hostname;
    }

    for (i = 0; i < rmcf->smtp.helo.len; i++) {
        if (rmcf->smtp.helo.data[i] <= ' ' || rmcf->smtp.helo.data[i] >= 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"retell_smtp_helo\" name \"%V\"",
                               &rmcf->smtp.helo);
            return NGX_CONF_ERROR;
        }
    }

    /* credentials never in clear, never over unverified TLS */

    if (rmcf->smtp.user.len && !rmcf->smtp.auth_insecure) {

        if (rmcf->smtp.starttls == NGX_HTTP_RETELL_STARTTLS_OFF) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"retell_smtp_auth\" with "
                               "\"retell_smtp_starttls off\" would send the "
                               "password in clear; add \"insecure\" to "
                               "\"retell_smtp_auth\" to allow that");
            return NGX_CONF_ERROR;
        }

        if (rmcf->smtp_trusted_certificate.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"retell_smtp_auth\" requires "
                               "\"retell_smtp_trusted_certificate\": the "
                               "password is sent only over TLS whose "
                               "certificate is verified; add \"insecure\" "
                               "to \"retell_smtp_auth\" to send it anyway");
            return NGX_CONF_ERROR;
        }
    }

    if (rmcf->smtp.starttls == NGX_HTTP_RETELL_STARTTLS_OFF) {
        return NGX_CONF_OK;
    }

#if (NGX_SSL)

    rmcf->smtp.ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rmcf->smtp.ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rmcf->smtp.ssl->log = cf->log;

    if (ngx_ssl_create(rmcf->smtp.ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rmcf->smtp.ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rmcf->smtp.ssl;

    if (rmcf->smtp_trusted_certificate.len) {
        if (ngx_ssl_trusted_certificate(cf, rmcf->smtp.ssl,
                                        &rmcf->smtp_trusted_certificate, 4)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        rmcf->smtp.verify = 1;
    }

    return NGX_CONF_OK;

#else

    (void) cln;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"retell_smtp_starttls\" requires nginx built "
                       "with OpenSSL; set it to \"off\"");
    return NGX_CONF_ERROR;

#endif
}


char *
ngx_http_retell_smtp_server(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_retell_main_conf_t *rmcf = conf;

    ngx_str_t  *value;
    ngx_url_t   u;
#if (NGX_HAVE_INET6)
    u_char      addr6[16];
#endif

    if (rmcf->smtp.server) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* resolved here, at configuration load: workers never wait on DNS */

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 25;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"%V\"", u.err, &u.url,
                               &cmd->name);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address for \"%V\" in \"%V\"", &u.url,
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* every address: the next is tried when one does not answer */

    rmcf->smtp.server = u.addrs;
    rmcf->smtp.naddrs = u.naddrs;

    /* NUL-terminated: SSL_set_tlsext_host_name() takes a C string */

    rmcf->smtp.server_name.len = u.host.len;
    rmcf->smtp.server_name.data = ngx_pnalloc(cf->pool, u.host.len + 1);

    if (rmcf->smtp.server_name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(rmcf->smtp.server_name.data, u.host.data, u.host.len + 1);

    /* "[::1]:25" has the host "::1" in u.host, without its brackets */

    rmcf->smtp.server_is_ip =
        ngx_inet_addr(u.host.data, u.host.len) != INADDR_NONE
#if (NGX_HAVE_INET6)
        || ngx_inet6_addr(u.host.data, u.host.len, addr6) == NGX_OK
#endif
        || (u.host.len && u.host.data[0] == '[');

    return NGX_CONF_OK;
}


char *
ngx_http_retell_smtp_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_retell_main_conf_t *rmcf = conf;

    ngx_str_t  *value;

    if (rmcf->smtp.user.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "has an empty user name";
    }

    if (cf->args->nelts == 4) {
        if (ngx_strcmp(value[3].data, "insecure") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in \"%V\", it "
                               "can only be \"insecure\"", &value[3],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        rmcf->smtp.auth_insecure = 1;
    }

    rmcf->smtp.user = value[1];

    return ngx_http_retell_read_secret(cf, &value[2], &rmcf->smtp.password);
}
