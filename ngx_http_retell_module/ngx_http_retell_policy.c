
/*
 * Ticket status and email reason from the facts of a call
 * (docs/data-and-rules.md).
 * The same facts give the same answer whatever order events arrived in.
 */


#include "ngx_http_retell_policy.h"


ngx_http_retell_decision_t
ngx_http_retell_policy(const ngx_http_retell_facts_t *facts)
{
    ngx_http_retell_decision_t  d;

    /* rule 1, both directions: a transfer always needs a person */

    if (facts->transferred) {
        d.status = NGX_HTTP_RETELL_STATUS_NEW;
        d.email = NGX_HTTP_RETELL_EMAIL_CALL_TRANSFER;
        return d;
    }

    /*
     * rule 1b, both directions: a caller who asked for a person and
     * could not reach one needs a call back
     */

    if (facts->transfer_failed) {
        d.status = NGX_HTTP_RETELL_STATUS_NEW;
        d.email = NGX_HTTP_RETELL_EMAIL_TRANSFER_FAILED;
        return d;
    }

    /*
     * rule 1c, inbound: a caller the platform dropped was never heard
     * out (and Retell runs no analysis of such a call); the spec puts it
     * in rule 1, so the email says the call failed even when the call's
     * variables also asked for action
     */

    if (facts->call_failed && !facts->outbound) {
        d.status = NGX_HTTP_RETELL_STATUS_NEW;
        d.email = NGX_HTTP_RETELL_EMAIL_CALL_FAILED;
        return d;
    }

    /* rule 2, both directions */

    if (facts->action_required == 1) {
        d.status = NGX_HTTP_RETELL_STATUS_NEW;
        d.email = NGX_HTTP_RETELL_EMAIL_ACTION_REQUIRED;
        return d;
    }

    d.email = NGX_HTTP_RETELL_EMAIL_NONE;

    /* outbound tickets stay out of the way unless rules 1 or 2 hold */

    if (facts->outbound) {
        d.status = NGX_HTTP_RETELL_STATUS_CLOSED;
        return d;
    }

    if (facts->action_required == 0) {
        d.status = NGX_HTTP_RETELL_STATUS_CLOSED;

    } else if (!facts->analyzed) {
        d.status = NGX_HTTP_RETELL_STATUS_NEW;

    } else if (facts->qualified) {
        d.status = NGX_HTTP_RETELL_STATUS_QUALIFIED;

    } else if (facts->call_successful) {
        d.status = NGX_HTTP_RETELL_STATUS_RESOLVED;

    } else {
        d.status = NGX_HTTP_RETELL_STATUS_CONTACTED;
    }

    return d;
}


void
ngx_http_retell_policy_table(unsigned outbound, unsigned email, char *buf)
{
    unsigned                     i;
    ngx_http_retell_facts_t      facts;
    ngx_http_retell_decision_t   d;

    for (i = 0; i < NGX_HTTP_RETELL_POLICY_TABLE; i++) {
        facts.outbound = outbound;
        facts.call_failed = (i / 96) & 1;
        facts.transfer_failed = (i / 48) & 1;
        facts.transferred = (i / 24) & 1;
        facts.action_required = (i / 8) % 3 == 2 ? 1
                                : (i / 8) % 3 == 1 ? 0
                                : NGX_HTTP_RETELL_POLICY_ABSENT;
        facts.analyzed = (i / 4) & 1;
        facts.qualified = (i / 2) & 1;
        facts.call_successful = i & 1;

        d = ngx_http_retell_policy(&facts);

        buf[i] = (char) ('0' + (email ? (int) d.email : (int) d.status));
    }

    buf[NGX_HTTP_RETELL_POLICY_TABLE] = '\0';
}


const char *
ngx_http_retell_status_name(ngx_http_retell_status_e status)
{
    static const char  *names[] = {
        "new", "qualified", "contacted", "resolved", "closed"
    };

    return names[status];
}


const char *
ngx_http_retell_email_reason_name(ngx_http_retell_email_reason_e reason)
{
    static const char  *names[] = {
        "", "action_required", "call_transfer", "transfer_failed",
        "call_failed"
    };

    return names[reason];
}
