
/*
 * Metrics in the Prometheus text format, served the way stub_status is.
 *
 * The counters live in one shared memory zone, "retell_metrics", of a
 * fixed layout: a closed set of series allocated once, moved with
 * ngx_atomic_fetch_add(), never locked, so every worker adds to the same
 * numbers and a scrape sums nothing.  Labels come from closed sets only:
 * never a call id, a company, an agent or a phone number.  The zone
 * outlives "nginx -s reload" when its size is the same; a gauge with its
 * creation time makes a reset (a restart, another size) visible.
 * Histograms keep a count per bucket, so a scrape's _count is the sum of
 * its buckets and equals its +Inf bucket.
 */


#include "ngx_http_retell_module.h"
#include "ngx_http_retell_metrics.h"


#define NGX_HTTP_RETELL_METRICS_ZONE     (64 * 1024)
#define NGX_HTTP_RETELL_METRICS_VERSION  "0.18"

/* seconds, as Prometheus wants them; the module lives in 1-10 ms */
#define NGX_HTTP_RETELL_TIME_BUCKETS     12
#define NGX_HTTP_RETELL_BATCH_BUCKETS    6
#define NGX_HTTP_RETELL_SMTP_BUCKETS     9

#define NGX_HTTP_RETELL_METRICS_SLOTS    64     /* workers, old and new */


/*
 * A worker's gauges, in a slot it owns while it lives: a scrape sums the
 * slots of workers that are alive, so a worker that crashed leaves
 * nothing wrong behind it
 */

typedef struct {
    ngx_atomic_t                pid;
    ngx_atomic_t                connections[NGX_HTTP_RETELL_PG_STATES];
    ngx_atomic_t                waiting;
    ngx_atomic_t                down;
} ngx_http_retell_metrics_slot_t;


typedef struct {
    ngx_atomic_t                bucket[NGX_HTTP_RETELL_TIME_BUCKETS + 1];
    ngx_atomic_t                sum;            /* microseconds */
} ngx_http_retell_time_hist_t;


typedef struct {
    ngx_atomic_t                layout;         /* sizeof: see init_zone */
    ngx_atomic_t                created;        /* unix time */

    ngx_atomic_t                requests[NGX_HTTP_RETELL_ENDPOINTS]
                                        [NGX_HTTP_RETELL_OUTCOMES];
    ngx_http_retell_time_hist_t request_time[NGX_HTTP_RETELL_ENDPOINTS];

    ngx_atomic_t                statements[NGX_HTTP_RETELL_STMT_RESULTS];
    ngx_http_retell_time_hist_t statement_time;
    ngx_atomic_t                batch[NGX_HTTP_RETELL_BATCH_BUCKETS + 1];
    ngx_atomic_t                batch_sum;
    ngx_atomic_t                pg[NGX_HTTP_RETELL_PG_EVENTS];

    ngx_atomic_t                emails[NGX_HTTP_RETELL_EMAIL_RESULTS];
    ngx_atomic_t                smtp[NGX_HTTP_RETELL_SMTP_BUCKETS + 1];
    ngx_atomic_t                smtp_sum;       /* microseconds */
    ngx_atomic_t                outbox_poll;    /* unix time */
    ngx_atomic_t                outbox_due;     /* at that poll */

    ngx_http_retell_metrics_slot_t  slot[NGX_HTTP_RETELL_METRICS_SLOTS];
} ngx_http_retell_metrics_t;


static ngx_int_t ngx_http_retell_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_retell_metrics_log(ngx_http_request_t *r);
static ngx_int_t ngx_http_retell_metrics_handler(ngx_http_request_t *r);
static void ngx_http_retell_metrics_time(ngx_http_retell_time_hist_t *h,
    ngx_msec_t ms);
static void ngx_http_retell_metrics_publish(ngx_event_t *ev);
static ngx_uint_t ngx_http_retell_metrics_alive(ngx_atomic_uint_t pid);
static u_char *ngx_http_retell_metrics_gauges(u_char *p,
    ngx_http_retell_metrics_t *m);
static u_char *ngx_http_retell_metrics_histogram(u_char *p,
    const char *name, const char *labels, ngx_atomic_t *bucket,
    const char **le, ngx_uint_t n, ngx_atomic_uint_t sum, ngx_uint_t micro);


static ngx_http_retell_metrics_t  *ngx_http_retell_metrics_shm;

static ngx_http_retell_metrics_slot_t  *ngx_http_retell_metrics_slot;
static ngx_http_retell_pg_pool_t       *ngx_http_retell_metrics_pool;
static ngx_event_t                      ngx_http_retell_metrics_timer;
static ngx_connection_t                 ngx_http_retell_metrics_dumb;

static ngx_msec_t  ngx_http_retell_time_le_ms[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};

static const char  *ngx_http_retell_time_le[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5"
};

static ngx_uint_t  ngx_http_retell_batch_le_n[] = { 1, 2, 4, 8, 16, 32 };

static const char  *ngx_http_retell_batch_le[] = {
    "1", "2", "4", "8", "16", "32"
};

static ngx_msec_t  ngx_http_retell_smtp_le_ms[] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000
};

static const char  *ngx_http_retell_smtp_le[] = {
    "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60"
};

static const char  *ngx_http_retell_endpoint_names[] = {
    "auto", "inbound", "outbound", "call_inbound"   /* 0: not resolved */
};

static const char  *ngx_http_retell_stmt_names[] = {
    "ok", "error", "timeout", "cancelled"
};

static const char  *ngx_http_retell_email_names[] = {
    "sent", "deferred", "failed"
};


/* retell_metrics_zone size | off */

char *
ngx_http_retell_metrics_zone_size(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_retell_main_conf_t *rmcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (rmcf->metrics_zone != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rmcf->metrics_zone = 0;
        return NGX_CONF_OK;
    }

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR || size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    rmcf->metrics_zone = size;

    return NGX_CONF_OK;
}


/*
 * at configuration load: the zone, the same for every http block; none
 * when "off", so nothing is counted (make bench measures the difference)
 */

ngx_int_t
ngx_http_retell_metrics_zone(ngx_conf_t *cf, ngx_http_retell_main_conf_t *rmcf)
{
    size_t           size, min;
    ngx_str_t        name = ngx_string("retell_metrics");
    ngx_shm_zone_t  *shm_zone;

    size = rmcf->metrics_zone;

    if (size == 0) {
        if (rmcf->metrics_served) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"retell_metrics\" needs a zone, and "
                               "\"retell_metrics_zone\" is off");
            return NGX_ERROR;
        }

        rmcf->metrics_shm = NULL;
        return NGX_OK;
    }

    if (size == NGX_CONF_UNSET_SIZE) {
        size = NGX_HTTP_RETELL_METRICS_ZONE;
    }

    min = ngx_max(8 * ngx_pagesize, 2 * sizeof(ngx_http_retell_metrics_t));

    if (size < min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"retell_metrics_zone\" of %uz bytes is too "
                           "small, at least %uzk are needed", size,
                           (min + 1023) / 1024);
        return NGX_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_retell_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_retell_metrics_init_zone;
    rmcf->metrics_shm = shm_zone;

    return NGX_OK;
}


/*
 * a worker counts into its own cycle's zone: the pointer is taken here,
 * not when a zone is made, because a reload that fails after making its
 * zones leaves the workers on the old cycle
 */

void
ngx_http_retell_metrics_attach(ngx_http_retell_main_conf_t *rmcf)
{
    ngx_http_retell_metrics_shm = rmcf->metrics_shm ? rmcf->metrics_shm->data
                                                    : NULL;
}


static ngx_int_t
ngx_http_retell_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t            *shpool;
    ngx_http_retell_metrics_t  *m;

    if (data) {
        /*
         * a reload with the same size: the counters go on, unless a new
         * module laid them out otherwise
         */

        m = data;

        if (m->layout != sizeof(ngx_http_retell_metrics_t)) {
            ngx_memzero((void *) m, sizeof(ngx_http_retell_metrics_t));
            m->layout = sizeof(ngx_http_retell_metrics_t);
            m->created = ngx_time();
        }

        shm_zone->data = m;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_retell_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    m->layout = sizeof(ngx_http_retell_metrics_t);
    m->created = ngx_time();

    shm_zone->data = m;

    return NGX_OK;
}


/* a worker takes a slot whose owner is gone, and publishes into it */

ngx_int_t
ngx_http_retell_metrics_worker(ngx_cycle_t *cycle,
    ngx_http_retell_pg_pool_t *pool)
{
    ngx_uint_t                       i;
    ngx_atomic_uint_t                pid;
    ngx_http_retell_metrics_t       *m = ngx_http_retell_metrics_shm;
    ngx_http_retell_metrics_slot_t  *slot;

    if (m == NULL || pool == NULL) {
        return NGX_OK;
    }

    for (i = 0; i < NGX_HTTP_RETELL_METRICS_SLOTS; i++) {
        slot = &m->slot[i];
        pid = slot->pid;

        if ((pid == 0 || !ngx_http_retell_metrics_alive(pid))
            && ngx_atomic_cmp_set(&slot->pid, pid, ngx_pid))
        {
            ngx_http_retell_metrics_slot = slot;
            break;
        }
    }

    if (ngx_http_retell_metrics_slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "retell metrics: no slot free for this worker's "
                      "gauges");
        return NGX_OK;
    }

    ngx_http_retell_metrics_pool = pool;

    /* the event's log lines read a connection's fd: it has none */
    ngx_http_retell_metrics_dumb.fd = (ngx_socket_t) -1;

    ngx_http_retell_metrics_timer.handler = ngx_http_retell_metrics_publish;
    ngx_http_retell_metrics_timer.data = &ngx_http_retell_metrics_dumb;
    ngx_http_retell_metrics_timer.log = cycle->log;
    ngx_http_retell_metrics_timer.cancelable = 1;

    ngx_http_retell_metrics_publish(&ngx_http_retell_metrics_timer);

    return NGX_OK;
}


void
ngx_http_retell_metrics_worker_exit(void)
{
    ngx_uint_t                       i;
    ngx_http_retell_metrics_slot_t  *slot = ngx_http_retell_metrics_slot;

    if (ngx_http_retell_metrics_timer.timer_set) {
        ngx_del_timer(&ngx_http_retell_metrics_timer);
    }

    if (slot) {
        for (i = 0; i < NGX_HTTP_RETELL_PG_STATES; i++) {
            slot->connections[i] = 0;
        }

        slot->waiting = 0;
        slot->down = 0;
        (void) ngx_atomic_cmp_set(&slot->pid, ngx_pid, 0);
        ngx_http_retell_metrics_slot = NULL;
    }
}


static void
ngx_http_retell_metrics_publish(ngx_event_t *ev)
{
    ngx_uint_t                       i;
    ngx_http_retell_pg_stats_t       stats;
    ngx_http_retell_metrics_slot_t  *slot = ngx_http_retell_metrics_slot;

    ngx_http_retell_pg_stats(ngx_http_retell_metrics_pool, &stats);

    for (i = 0; i < NGX_HTTP_RETELL_PG_STATES; i++) {
        slot->connections[i] = stats.connections[i];
    }

    slot->waiting = stats.waiting;
    slot->down = stats.down;

    if (!ngx_exiting) {
        ngx_add_timer(ev, 1000);
    }
}


static ngx_uint_t
ngx_http_retell_metrics_alive(ngx_atomic_uint_t pid)
{
    return kill((ngx_pid_t) pid, 0) == 0 || ngx_errno == NGX_EPERM;
}


/* requests are counted when logged: every answer, whoever gave it */

ngx_int_t
ngx_http_retell_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_retell_metrics_log;

    return NGX_OK;
}


static ngx_int_t
ngx_http_retell_metrics_log(ngx_http_request_t *r)
{
    ngx_int_t                   outcome;
    ngx_uint_t                  endpoint;
    ngx_msec_int_t              ms;
    ngx_time_t                 *tp;
    ngx_http_retell_ctx_t      *ctx;
    ngx_http_retell_metrics_t  *m;

    m = ngx_http_retell_metrics_shm;

    if (m == NULL || r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_retell_get_ctx(r);
    outcome = ngx_http_retell_outcome(r, ctx);

    if (outcome == NGX_DECLINED) {
        return NGX_OK;
    }

    endpoint = ngx_http_retell_endpoint(r, ctx);

    (void) ngx_atomic_fetch_add(&m->requests[endpoint][outcome], 1);

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));

    ngx_http_retell_metrics_time(&m->request_time[endpoint],
                                 (ngx_msec_t) ngx_max(ms, 0));

    return NGX_OK;
}


static void
ngx_http_retell_metrics_time(ngx_http_retell_time_hist_t *h, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_RETELL_TIME_BUCKETS; i++) {
        if (ms <= ngx_http_retell_time_le_ms[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, ms * 1000);
}


void
ngx_http_retell_metrics_statement(ngx_uint_t result, ngx_msec_t ms)
{
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->statements[result], 1);

    if (result != NGX_HTTP_RETELL_STMT_CANCELLED) {
        ngx_http_retell_metrics_time(&m->statement_time, ms);
    }
}


void
ngx_http_retell_metrics_batch(ngx_uint_t size)
{
    ngx_uint_t                  i;
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_RETELL_BATCH_BUCKETS; i++) {
        if (size <= ngx_http_retell_batch_le_n[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->batch[i], 1);
    (void) ngx_atomic_fetch_add(&m->batch_sum, size);
}


void
ngx_http_retell_metrics_pg(ngx_uint_t event)
{
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m) {
        (void) ngx_atomic_fetch_add(&m->pg[event], 1);
    }
}


void
ngx_http_retell_metrics_email(ngx_uint_t result)
{
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m) {
        (void) ngx_atomic_fetch_add(&m->emails[result], 1);
    }
}


void
ngx_http_retell_metrics_smtp_session(ngx_msec_t ms)
{
    ngx_uint_t                  i;
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_RETELL_SMTP_BUCKETS; i++) {
        if (ms <= ngx_http_retell_smtp_le_ms[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->smtp[i], 1);
    (void) ngx_atomic_fetch_add(&m->smtp_sum, ms * 1000);
}


void
ngx_http_retell_metrics_outbox_poll(void)
{
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m) {
        m->outbox_poll = ngx_time();
    }
}


/* the rows due that the last claim saw, any worker's: one database */

void
ngx_http_retell_metrics_outbox_due(ngx_atomic_uint_t rows)
{
    ngx_http_retell_metrics_t  *m = ngx_http_retell_metrics_shm;

    if (m) {
        m->outbox_due = rows;
    }
}


char *
ngx_http_retell_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_retell_main_conf_t  *rmcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_retell_metrics_handler;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_retell_module);
    rmcf->metrics_served = 1;

    return NGX_CONF_OK;
}


#define NGX_HTTP_RETELL_METRICS_LEN  32768

static ngx_int_t
ngx_http_retell_metrics_handler(ngx_http_request_t *r)
{
    u_char                     *p, labels[64];
    ngx_int_t                   rc;
    ngx_buf_t                  *b;
    ngx_uint_t                  e, o;
    ngx_chain_t                 out;
    ngx_http_retell_metrics_t  *m;

    static const char  *pg_help[] = {
        "Connections made to PostgreSQL.",
        "Connection attempts that failed, by reason.",
        NULL,
        "Connections lost under a command.",
        "Deliveries sent again after their connection broke.",
        "Times every PostgreSQL address failed in a row.",
        "Times a connection was made again after that."
    };

    static const char  *pg_names[] = {
        "retell_postgres_connections_opened_total",
        "retell_postgres_connections_failed_total{reason=\"refused\"}",
        "retell_postgres_connections_failed_total{reason=\"timeout\"}",
        "retell_postgres_connections_lost_total",
        "retell_postgres_deliveries_resent_total",
        "retell_postgres_circuit_opened_total",
        "retell_postgres_circuit_closed_total"
    };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_retell_metrics_shm;
    if (m == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    b = ngx_create_temp_buf(r->pool, NGX_HTTP_RETELL_METRICS_LEN);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_sprintf(p,
            "# HELP retell_build_info The module's and nginx's versions.\n"
            "# TYPE retell_build_info gauge\n"
            "retell_build_info{version=\"%s\",nginx_version=\"%s\"} 1\n"
            "# HELP retell_metrics_zone_created_seconds When the counters "
            "started (a restart or another zone size resets them).\n"
            "# TYPE retell_metrics_zone_created_seconds gauge\n"
            "retell_metrics_zone_created_seconds %uA\n",
            NGX_HTTP_RETELL_METRICS_VERSION, NGINX_VERSION, m->created);

    p = ngx_sprintf(p,
            "# HELP retell_webhook_requests_total Webhook requests by "
            "endpoint and outcome.\n"
            "# TYPE retell_webhook_requests_total counter\n");

    for (e = 0; e < NGX_HTTP_RETELL_ENDPOINTS; e++) {
        for (o = 0; o < NGX_HTTP_RETELL_OUTCOMES; o++) {
            p = ngx_sprintf(p, "retell_webhook_requests_total{endpoint=\"%s\","
                            "outcome=\"%V\"} %uA\n",
                            ngx_http_retell_endpoint_names[e],
                            &ngx_http_retell_outcomes[o], m->requests[e][o]);
        }
    }

    p = ngx_sprintf(p,
            "# HELP retell_webhook_request_duration_seconds Webhook "
            "requests, from the first byte to the answer.\n"
            "# TYPE retell_webhook_request_duration_seconds histogram\n");

    for (e = 0; e < NGX_HTTP_RETELL_ENDPOINTS; e++) {
        ngx_sprintf(labels, "endpoint=\"%s\"%Z",
                    ngx_http_retell_endpoint_names[e]);
        p = ngx_http_retell_metrics_histogram(p,
                "retell_webhook_request_duration_seconds", (char *) labels,
                m->request_time[e].bucket, ngx_http_retell_time_le,
                NGX_HTTP_RETELL_TIME_BUCKETS, m->request_time[e].sum, 1);
    }

    p = ngx_sprintf(p,
            "# HELP retell_postgres_statement_duration_seconds Statements, "
            "from sent to answered, lost or timed out.\n"
            "# TYPE retell_postgres_statement_duration_seconds histogram\n");
    p = ngx_http_retell_metrics_histogram(p,
            "retell_postgres_statement_duration_seconds", NULL,
            m->statement_time.bucket, ngx_http_retell_time_le,
            NGX_HTTP_RETELL_TIME_BUCKETS, m->statement_time.sum, 1);

    p = ngx_sprintf(p,
            "# HELP retell_postgres_statements_total Statements by result.\n"
            "# TYPE retell_postgres_statements_total counter\n");

    for (o = 0; o < NGX_HTTP_RETELL_STMT_RESULTS; o++) {
        p = ngx_sprintf(p, "retell_postgres_statements_total{result=\"%s\"} "
                        "%uA\n", ngx_http_retell_stmt_names[o],
                        m->statements[o]);
    }

    p = ngx_sprintf(p,
            "# HELP retell_postgres_batch_size Deliveries a statement "
            "carried.\n"
            "# TYPE retell_postgres_batch_size histogram\n");
    p = ngx_http_retell_metrics_histogram(p, "retell_postgres_batch_size",
            NULL, m->batch, ngx_http_retell_batch_le,
            NGX_HTTP_RETELL_BATCH_BUCKETS, m->batch_sum, 0);

    for (o = 0; o < NGX_HTTP_RETELL_PG_EVENTS; o++) {
        if (o != NGX_HTTP_RETELL_PG_TIMED_OUT) {
            /* one TYPE line per metric family */
            ngx_sprintf(labels, "%s%Z", pg_names[o]);

            if (ngx_strchr(labels, '{')) {
                *ngx_strchr(labels, '{') = '\0';
            }

            p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                            labels, pg_help[o], labels);
        }

        p = ngx_sprintf(p, "%s %uA\n", pg_names[o], m->pg[o]);
    }

    p = ngx_sprintf(p,
            "# HELP retell_emails_total Outbox sessions by result.\n"
            "# TYPE retell_emails_total counter\n");

    for (o = 0; o < NGX_HTTP_RETELL_EMAIL_RESULTS; o++) {
        p = ngx_sprintf(p, "retell_emails_total{result=\"%s\"} %uA\n",
                        ngx_http_retell_email_names[o], m->emails[o]);
    }

    p = ngx_sprintf(p,
            "# HELP retell_smtp_session_duration_seconds SMTP sessions.\n"
            "# TYPE retell_smtp_session_duration_seconds histogram\n");
    p = ngx_http_retell_metrics_histogram(p,
            "retell_smtp_session_duration_seconds", NULL, m->smtp,
            ngx_http_retell_smtp_le, NGX_HTTP_RETELL_SMTP_BUCKETS,
            m->smtp_sum, 1);

    p = ngx_http_retell_metrics_gauges(p, m);

    p = ngx_sprintf(p,
            "# HELP retell_outbox_last_poll_seconds When a worker last "
            "looked for due emails.\n"
            "# TYPE retell_outbox_last_poll_seconds gauge\n"
            "retell_outbox_last_poll_seconds %uA\n"
            "# HELP retell_outbox_rows_due Emails due to be sent, as the "
            "last poll found them.\n"
            "# TYPE retell_outbox_rows_due gauge\n"
            "retell_outbox_rows_due %uA\n", m->outbox_poll, m->outbox_due);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* buckets cumulated as read, _count their total: equal to +Inf's */

static u_char *
ngx_http_retell_metrics_histogram(u_char *p, const char *name,
    const char *labels, ngx_atomic_t *bucket, const char **le, ngx_uint_t n,
    ngx_atomic_uint_t sum, ngx_uint_t micro)
{
    u_char             set[80];
    ngx_uint_t         i;
    ngx_atomic_uint_t  total;

    /* {labels} for _sum and _count, nothing without labels */

    if (labels) {
        ngx_sprintf(set, "{%s}%Z", labels);

    } else {
        set[0] = '\0';
    }

    total = 0;

    for (i = 0; i <= n; i++) {
        total += bucket[i];

        p = ngx_sprintf(p, "%s_bucket{%s%sle=\"%s\"} %uA\n", name,
                        labels ? labels : "", labels ? "," : "",
                        i < n ? le[i] : "+Inf", total);
    }

    if (micro) {
        p = ngx_sprintf(p, "%s_sum%s %uA.%06uA\n", name, set,
                        sum / 1000000, sum % 1000000);

    } else {
        p = ngx_sprintf(p, "%s_sum%s %uA\n", name, set, sum);
    }

    return ngx_sprintf(p, "%s_count%s %uA\n", name, set, total);
}


/* the gauges of the workers alive, summed */

static u_char *
ngx_http_retell_metrics_gauges(u_char *p, ngx_http_retell_metrics_t *m)
{
    ngx_uint_t                       i, k;
    ngx_atomic_uint_t                conns[NGX_HTTP_RETELL_PG_STATES];
    ngx_atomic_uint_t                waiting, down, workers;
    ngx_http_retell_metrics_slot_t  *slot;

    static const char  *states[] = {
        "connecting", "idle", "sending", "reading", "draining"
    };

    ngx_memzero(conns, sizeof(conns));
    waiting = 0;
    down = 0;
    workers = 0;

    for (i = 0; i < NGX_HTTP_RETELL_METRICS_SLOTS; i++) {
        slot = &m->slot[i];

        if (slot->pid == 0 || !ngx_http_retell_metrics_alive(slot->pid)) {
            continue;
        }

        workers++;

        for (k = 0; k < NGX_HTTP_RETELL_PG_STATES; k++) {
            conns[k] += slot->connections[k];
        }

        waiting += slot->waiting;
        down += slot->down;
    }

    p = ngx_sprintf(p,
            "# HELP retell_postgres_connections PostgreSQL connections of "
            "the workers alive, by state.\n"
            "# TYPE retell_postgres_connections gauge\n");

    for (k = 0; k < NGX_HTTP_RETELL_PG_STATES; k++) {
        p = ngx_sprintf(p, "retell_postgres_connections{state=\"%s\"} %uA\n",
                        states[k], conns[k]);
    }

    return ngx_sprintf(p,
            "# HELP retell_postgres_deliveries_waiting Deliveries waiting "
            "for a connection.\n"
            "# TYPE retell_postgres_deliveries_waiting gauge\n"
            "retell_postgres_deliveries_waiting %uA\n"
            "# HELP retell_postgres_circuit_open Workers that find every "
            "PostgreSQL address failing.\n"
            "# TYPE retell_postgres_circuit_open gauge\n"
            "retell_postgres_circuit_open %uA\n"
            "# HELP retell_workers Workers publishing gauges.\n"
            "# TYPE retell_workers gauge\n"
            "retell_workers %uA\n", waiting, down, workers);
}
