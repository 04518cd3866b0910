
/*
 * The pool's host failover and circuit breaker.  A connection attempt
 * that fails moves the pool to the next host at once.  When every host
 * has failed in a row the pool is "down": it makes one connection attempt
 * at a time (the probe, the half-open state), on a timer, jittered so that
 * workers and hosts do not reconnect in lockstep.  Without deliveries the
 * probe backs off from 250 ms to 8 s.  A delivery is never refused because
 * of that schedule: it waits in the queue within its own budget, and while
 * one waits the next attempt comes 160 to 240 ms after the last failure,
 * so a delivery waiting when PostgreSQL accepts connections again is
 * applied within a quarter of a second, and one whose budget runs out
 * during the outage is answered 503.  Any connection made closes the
 * circuit.  The same timer, while the pool is up, dispatches again for
 * the pool (ngx_http_retell_pg.c: a connection that may give way soon, a
 * failure of the worker's own).
 */


#include "ngx_http_retell_pg_conn.h"


#define NGX_HTTP_RETELL_PG_BACKOFF_MIN    250
#define NGX_HTTP_RETELL_PG_BACKOFF_MAX    8000
#define NGX_HTTP_RETELL_PG_RETRY_MAX      200    /* deliveries waiting */


static ngx_msec_t ngx_http_retell_pg_jitter(ngx_msec_t delay);


void
ngx_http_retell_pg_host_up(ngx_http_retell_pg_pool_t *pool, ngx_uint_t host)
{
    pool->host = host;
    pool->failures = 0;

    if (!pool->down) {
        return;
    }

    pool->down = 0;
    pool->backoff = 0;

    ngx_http_retell_metrics_pg(NGX_HTTP_RETELL_PG_CIRCUIT_CLOSED);

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                  "retell postgres is reachable again");
}


/*
 * A connection attempt failed or timed out: the next host is tried at
 * once; when every host has failed in a row the circuit opens
 */

void
ngx_http_retell_pg_host_failed(ngx_http_retell_pg_pool_t *pool,
    ngx_uint_t host)
{
    if (host != pool->host) {
        /* an attempt at a host the pool has already moved away from */
        return;
    }

    pool->host = (host + 1) % pool->nhosts;

    if (++pool->failures < pool->nhosts) {

        if (pool->down) {
            /* the probe goes on with the next host at once */
            pool->next_probe = ngx_current_msec;
            pool->next_retry = ngx_current_msec;
            ngx_http_retell_pg_schedule(pool);
        }

        return;
    }

    pool->failures = 0;

    pool->backoff = pool->down
                    ? ngx_min(pool->backoff * 2, NGX_HTTP_RETELL_PG_BACKOFF_MAX)
                    : NGX_HTTP_RETELL_PG_BACKOFF_MIN;

    if (!pool->down) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "retell postgres unreachable, retrying in the "
                      "background");
        ngx_http_retell_metrics_pg(NGX_HTTP_RETELL_PG_CIRCUIT_OPENED);
    }

    pool->down = 1;

    pool->next_probe = ngx_current_msec
                       + ngx_http_retell_pg_jitter(pool->backoff);
    pool->next_retry = ngx_current_msec
                       + ngx_http_retell_pg_jitter(
                             ngx_min(pool->backoff,
                                     NGX_HTTP_RETELL_PG_RETRY_MAX));

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    ngx_http_retell_pg_schedule(pool);
}


/* the next attempt while down: sooner when deliveries wait for it */

void
ngx_http_retell_pg_schedule(ngx_http_retell_pg_pool_t *pool)
{
    ngx_msec_t      when;
    ngx_msec_int_t  delay;

    if (pool->connecting || pool->closed) {
        return;                     /* an attempt is in flight */
    }

    when = pool->next_probe;

    if (pool->nwaiting
        && (ngx_msec_int_t) (pool->next_retry - when) < 0)
    {
        when = pool->next_retry;
    }

    delay = (ngx_msec_int_t) (when - ngx_current_msec);

    if (pool->probe.timer_set
        && (ngx_msec_int_t) (pool->probe.timer.key - when) <= 0)
    {
        return;                     /* due as soon already */
    }

    /*
     * even when it is due now, from the timer: run() may be on the
     * stack, and a failing attempt must not loop; an earlier time is set
     * anew (ngx_add_timer() keeps a timer it would move by under 300 ms)
     */

    if (pool->probe.timer_set) {
        ngx_del_timer(&pool->probe);
    }

    ngx_add_timer(&pool->probe, delay > 0 ? (ngx_msec_t) delay : 1);
}


/* 80% to 120% of the delay */

static ngx_msec_t
ngx_http_retell_pg_jitter(ngx_msec_t delay)
{
    return delay - delay / 5 + (ngx_msec_t) ngx_random() % (delay * 2 / 5 + 1);
}


void
ngx_http_retell_pg_probe(ngx_event_t *ev)
{
    ngx_http_retell_pg_pool_t  *pool;

    pool = ev->data;

    /* an exiting worker still tries for the deliveries it holds */

    if (pool->closed || ngx_terminate
        || ((ngx_exiting || ngx_quit) && pool->nwaiting == 0))
    {
        return;
    }

    if (!pool->down) {
        /*
         * a draining connection may give way now, or again after a
         * failure of this worker's own (memory, worker_connections)
         */
        ngx_http_retell_pg_dispatch(pool);
        return;
    }

    if (pool->connecting || pool->count >= pool->max) {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, pool->log, 0,
                   "retell postgres: probe");

    (void) ngx_http_retell_pg_open(pool);
}
