
/*
 * The "retell_postgres" connection string, turned at configuration load
 * into one connection string per address libpq may connect to.
 *
 * libpq would resolve host names inside PQconnectStart(), read a service
 * file, or take hosts from the environment, all in the worker and some of
 * it blocking.  Here every host name is resolved once into "hostaddr",
 * and every address becomes its own entry, so the pool decides which one
 * to try next, with its own connect timeout, and remembers the last good
 * one: libpq offers no non-blocking way to give up on one host of a
 * multi-host string and move on.
 */


#include "ngx_http_retell_module.h"

#include <netdb.h>


#define NGX_HTTP_RETELL_PG_ADDRS_PER_HOST  8
#define NGX_HTTP_RETELL_PG_MAX_HOSTS       64


typedef struct {
    ngx_str_t                    host;
    ngx_str_t                    port;
} ngx_http_retell_pg_target_t;


static char *ngx_http_retell_pg_conf_hosts(ngx_conf_t *cf,
    PQconninfoOption *options, ngx_http_retell_main_conf_t *rmcf);
static char *ngx_http_retell_pg_conf_add(ngx_conf_t *cf,
    PQconninfoOption *options, ngx_http_retell_main_conf_t *rmcf,
    ngx_str_t *host, ngx_str_t *hostaddr, ngx_str_t *port);
static ngx_uint_t ngx_http_retell_pg_conf_split(ngx_pool_t *pool,
    const char *list, ngx_str_t *items, ngx_uint_t max);
static u_char *ngx_http_retell_pg_conf_value(u_char *p, const char *keyword,
    u_char *value, size_t len);
static const char *ngx_http_retell_pg_conf_get(PQconninfoOption *options,
    const char *keyword);


char *
ngx_http_retell_postgres(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_retell_main_conf_t *rmcf = conf;

    char               *err, *rv;
    size_t              len;
    ngx_str_t          *value;
    const char         *v;
    PQconninfoOption   *options;

    if (rmcf->postgres.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* parse only: a bad string fails "nginx -t", nothing connects here */

    err = NULL;
    options = PQconninfoParse((char *) value[1].data, &err);

    if (options == NULL) {
        len = err ? ngx_strlen(err) : 0;

        while (len && (err[len - 1] == '\n' || err[len - 1] == ' ')) {
            len--;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" connection string: %*s",
                           &cmd->name, len, err ? err : "");
        if (err) {
            PQfreemem(err);
        }

        return NGX_CONF_ERROR;
    }

    rmcf->postgres = value[1];

    if (ngx_http_retell_pg_conf_get(options, "service")
        || getenv("PGSERVICE"))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a service in \"%V\" is not supported: libpq "
                           "would read the service file and resolve its "
                           "host inside the worker; write its parameters "
                           "in the connection string", &cmd->name);
        PQconninfoFree(options);
        return NGX_CONF_ERROR;
    }

    /* libpq ignores connect_timeout in non-blocking mode: the pool's */

    v = ngx_http_retell_pg_conf_get(options, "connect_timeout");

    if (v && atoi(v) > 0) {
        rmcf->postgres_conninfo_timeout = (ngx_msec_t) ngx_max(atoi(v), 2)
                                          * 1000;
    }

    rmcf->postgres_hosts = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
    if (rmcf->postgres_hosts == NULL) {
        PQconninfoFree(options);
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_retell_pg_conf_hosts(cf, options, rmcf);

    PQconninfoFree(options);

    return rv;
}


static char *
ngx_http_retell_pg_conf_hosts(ngx_conf_t *cf, PQconninfoOption *options,
    ngx_http_retell_main_conf_t *rmcf)
{
    int                  rc;
    u_char              *name;
    ngx_str_t           *hosts, *addrs, *ports, addr, *port, none;
    ngx_uint_t           nhosts, naddrs, nports, n, i, k, family, picked;
    const char          *host, *hostaddr, *pgport;
    struct addrinfo      hints, *res, *ai;
    PQconninfoOption    *defaults, *o;
    ngx_str_t            seen[NGX_HTTP_RETELL_PG_ADDRS_PER_HOST];
    u_char               text[NGX_SOCKADDR_STRLEN];

    host = ngx_http_retell_pg_conf_get(options, "host");
    hostaddr = ngx_http_retell_pg_conf_get(options, "hostaddr");
    pgport = ngx_http_retell_pg_conf_get(options, "port");

    defaults = NULL;

    if (host == NULL && hostaddr == NULL) {
        /*
         * PGHOST and the like: written out here, once, rather than read
         * by libpq in a worker whose environment nginx has cleared
         */

        defaults = PQconndefaults();

        for (o = defaults; o && o->keyword; o++) {
            if (o->val == NULL || o->val[0] == '\0') {
                continue;
            }

            if (ngx_strcmp(o->keyword, "host") == 0) {
                host = o->val;

            } else if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
                hostaddr = o->val;

            } else if (ngx_strcmp(o->keyword, "port") == 0 && pgport == NULL) {
                pgport = o->val;
            }
        }
    }

    hosts = ngx_palloc(cf->pool, 3 * NGX_HTTP_RETELL_PG_MAX_HOSTS
                                 * sizeof(ngx_str_t));
    if (hosts == NULL) {
        goto failed;
    }

    addrs = hosts + NGX_HTTP_RETELL_PG_MAX_HOSTS;
    ports = addrs + NGX_HTTP_RETELL_PG_MAX_HOSTS;

    nhosts = ngx_http_retell_pg_conf_split(cf->pool, host, hosts,
                                           NGX_HTTP_RETELL_PG_MAX_HOSTS);
    naddrs = ngx_http_retell_pg_conf_split(cf->pool, hostaddr, addrs,
                                           NGX_HTTP_RETELL_PG_MAX_HOSTS);
    nports = ngx_http_retell_pg_conf_split(cf->pool, pgport, ports,
                                           NGX_HTTP_RETELL_PG_MAX_HOSTS);

    if (nhosts == (ngx_uint_t) NGX_ERROR || naddrs == (ngx_uint_t) NGX_ERROR
        || nports == (ngx_uint_t) NGX_ERROR)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many hosts in \"retell_postgres\"");
        goto failed;
    }

    /* the rules libpq applies to multi-host strings */

    n = ngx_max(nhosts, naddrs);

    if ((nhosts && naddrs && nhosts != naddrs)
        || (nports > 1 && nports != ngx_max(n, 1)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_postgres\": the host, hostaddr and "
                           "port lists do not match");
        goto failed;
    }

    ngx_str_null(&none);

    if (n == 0) {
        /* libpq's default socket directory: no name to resolve */
        return ngx_http_retell_pg_conf_add(cf, options, rmcf, &none, &none,
                                           nports ? &ports[0] : &none);
    }

    for (i = 0; i < n; i++) {
        port = nports == 0 ? &none : nports == 1 ? &ports[0] : &ports[i];

        if (naddrs && addrs[i].len) {
            if (ngx_http_retell_pg_conf_add(cf, options, rmcf,
                                            nhosts ? &hosts[i] : &none,
                                            &addrs[i], port)
                != NGX_CONF_OK)
            {
                goto failed;
            }

            continue;
        }

        if (nhosts == 0 || hosts[i].len == 0 || hosts[i].data[0] == '/'
            || hosts[i].data[0] == '@')
        {
            /* a socket directory (or libpq's default one) */

            if (ngx_http_retell_pg_conf_add(cf, options, rmcf,
                                            nhosts ? &hosts[i] : &none,
                                            &none, port)
                != NGX_CONF_OK)
            {
                goto failed;
            }

            continue;
        }

        name = hosts[i].data;           /* NUL-terminated by split() */

        ngx_memzero(&hints, sizeof(struct addrinfo));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;

        rc = getaddrinfo((char *) name, NULL, &hints, &res);

        if (rc != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "host \"%s\" in \"retell_postgres\" not "
                               "found: %s", name, gai_strerror(rc));
            goto failed;
        }

        /* every address, IPv4 first, as nginx orders resolved addresses */

        picked = 0;

        for (family = 0; family < 2; family++) {
            for (ai = res; ai; ai = ai->ai_next) {

                if ((family == 0) != (ai->ai_family == AF_INET)
                    || picked == NGX_HTTP_RETELL_PG_ADDRS_PER_HOST)
                {
                    continue;
                }

                addr.len = ngx_sock_ntop(ai->ai_addr, ai->ai_addrlen, text,
                                         NGX_SOCKADDR_STRLEN, 0);
                addr.data = text;

                if (text[0] == '[') {
                    /* ngx_sock_ntop() brackets IPv6 only with a port */
                    addr.len -= 2;
                    addr.data++;
                }

                /* /etc/hosts may list an address twice */

                for (k = 0; k < picked; k++) {
                    if (seen[k].len == addr.len
                        && ngx_memcmp(seen[k].data, addr.data, addr.len) == 0)
                    {
                        break;
                    }
                }

                if (k < picked) {
                    continue;
                }

                if (ngx_http_retell_pg_conf_add(cf, options, rmcf,
                                                &hosts[i], &addr, port)
                    != NGX_CONF_OK)
                {
                    freeaddrinfo(res);
                    goto failed;
                }

                seen[picked].len = addr.len;
                seen[picked].data = ngx_pstrdup(cf->temp_pool, &addr);

                if (seen[picked].data == NULL) {
                    freeaddrinfo(res);
                    goto failed;
                }

                picked++;
            }
        }

        freeaddrinfo(res);
    }

    if (defaults) {
        PQconninfoFree(defaults);
    }

    return NGX_CONF_OK;

failed:

    if (defaults) {
        PQconninfoFree(defaults);
    }

    return NGX_CONF_ERROR;
}


/*
 * One entry: every option the operator gave but the host ones, then this
 * entry's host, hostaddr and port; GSSAPI encryption off unless asked
 * for, since libpq would talk to a KDC synchronously
 */

static char *
ngx_http_retell_pg_conf_add(ngx_conf_t *cf, PQconninfoOption *options,
    ngx_http_retell_main_conf_t *rmcf, ngx_str_t *host, ngx_str_t *hostaddr,
    ngx_str_t *port)
{
    u_char            *p;
    size_t             len;
    ngx_str_t         *entry;
    PQconninfoOption  *o;

    len = sizeof("host='' hostaddr='' port='' gssencmode='disable'")
          + 2 * (host->len + hostaddr->len + port->len);

    for (o = options; o->keyword; o++) {
        if (o->val) {
            len += ngx_strlen(o->keyword) + 4 + 2 * ngx_strlen(o->val);
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    entry = ngx_array_push(rmcf->postgres_hosts);
    if (entry == NULL) {
        return NGX_CONF_ERROR;
    }

    entry->data = p;

    for (o = options; o->keyword; o++) {
        if (o->val == NULL
            || ngx_strcmp(o->keyword, "host") == 0
            || ngx_strcmp(o->keyword, "hostaddr") == 0
            || ngx_strcmp(o->keyword, "port") == 0)
        {
            continue;
        }

        p = ngx_http_retell_pg_conf_value(p, o->keyword, (u_char *) o->val,
                                          ngx_strlen(o->val));
    }

    if (host->len) {
        p = ngx_http_retell_pg_conf_value(p, "host", host->data, host->len);
    }

    if (hostaddr->len) {
        p = ngx_http_retell_pg_conf_value(p, "hostaddr", hostaddr->data,
                                          hostaddr->len);
    }

    if (port->len) {
        p = ngx_http_retell_pg_conf_value(p, "port", port->data, port->len);
    }

    if (ngx_http_retell_pg_conf_get(options, "gssencmode") == NULL) {
        p = ngx_cpymem(p, "gssencmode='disable' ",
                       sizeof("gssencmode='disable' ") - 1);
    }

    /* the pool hands it to libpq as a C string, without the last space */

    if (p > entry->data) {
        p--;
    }

    *p = '\0';
    entry->len = p - entry->data;

    return NGX_CONF_OK;
}


/* a comma-separated list into NUL-terminated items; NGX_ERROR if too long */

static ngx_uint_t
ngx_http_retell_pg_conf_split(ngx_pool_t *pool, const char *list,
    ngx_str_t *items, ngx_uint_t max)
{
    u_char      *p, *end, *last;
    ngx_uint_t   n;

    if (list == NULL || list[0] == '\0') {
        return 0;
    }

    n = 0;
    p = (u_char *) list;
    last = p + ngx_strlen(list);

    for ( ;; ) {
        if (n == max) {
            return NGX_ERROR;
        }

        end = ngx_strlchr(p, last, ',');
        if (end == NULL) {
            end = last;
        }

        items[n].len = end - p;
        items[n].data = ngx_pnalloc(pool, items[n].len + 1);
        if (items[n].data == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(items[n].data, p, items[n].len + 1);
        n++;

        if (end == last) {
            return n;
        }

        p = end + 1;
    }
}


/* keyword='value' with quotes and backslashes escaped, and a space */

static u_char *
ngx_http_retell_pg_conf_value(u_char *p, const char *keyword, u_char *value,
    size_t len)
{
    p = ngx_sprintf(p, "%s='", keyword);

    while (len--) {
        if (*value == '\'' || *value == '\\') {
            *p++ = '\\';
        }

        *p++ = *value++;
    }

    *p++ = '\'';
    *p++ = ' ';

    return p;
}


static const char *
ngx_http_retell_pg_conf_get(PQconninfoOption *options, const char *keyword)
{
    PQconninfoOption  *o;

    for (o = options; o->keyword; o++) {
        if (ngx_strcmp(o->keyword, keyword) == 0) {
            return (o->val && o->val[0]) ? o->val : NULL;
        }
    }

    return NULL;
}
