
/*
 * The ticket rules of docs/data-and-rules.md, rule by rule, both directions.
 */


#include "unit.h"
#include "ngx_http_retell_policy.h"


#define IN    0
#define OUT   1
#define ABS  -1

#define NONE  NGX_HTTP_RETELL_EMAIL_NONE
#define ACT   NGX_HTTP_RETELL_EMAIL_ACTION_REQUIRED
#define XFER  NGX_HTTP_RETELL_EMAIL_CALL_TRANSFER
#define XFAIL NGX_HTTP_RETELL_EMAIL_TRANSFER_FAILED
#define CFAIL NGX_HTTP_RETELL_EMAIL_CALL_FAILED


typedef struct {
    const char  *rule;
    unsigned     outbound, transferred, analyzed, qualified, successful;
    int          action_required;
    const char  *status;
    int          email;
} policy_case_t;


static const policy_case_t  cases[] = {

    /* inbound rule 1: transferred, whatever else is known */
    { "in 1 transfer, not analyzed", IN, 1, 0, 0, 0, ABS, "new", XFER },
    { "in 1 transfer, action false", IN, 1, 1, 0, 1, 0, "new", XFER },
    { "in 1 transfer, action true", IN, 1, 1, 1, 1, 1, "new", XFER },

    /* inbound rule 2 */
    { "in 2 action true", IN, 0, 1, 0, 0, 1, "new", ACT },
    { "in 2 action true before analysis", IN, 0, 0, 0, 0, 1, "new", ACT },
    { "in 2 action true, qualified", IN, 0, 1, 1, 1, 1, "new", ACT },

    /* inbound rule 3 */
    { "in 3 action false", IN, 0, 1, 0, 0, 0, "closed", NONE },
    { "in 3 action false, qualified", IN, 0, 1, 1, 1, 0, "closed", NONE },
    { "in 3 action false, not analyzed", IN, 0, 0, 0, 0, 0, "closed", NONE },

    /* inbound rule 4: standard qualification */
    { "in 4 qualified", IN, 0, 1, 1, 0, ABS, "qualified", NONE },
    { "in 4 qualified and successful", IN, 0, 1, 1, 1, ABS, "qualified",
      NONE },
    { "in 4 successful", IN, 0, 1, 0, 1, ABS, "resolved", NONE },
    { "in 4 neither", IN, 0, 1, 0, 0, ABS, "contacted", NONE },

    /* inbound rule 5: not analyzed yet */
    { "in 5 started", IN, 0, 0, 0, 0, ABS, "new", NONE },
    { "in 5 qualified facts ignored until analyzed", IN, 0, 0, 1, 1, ABS,
      "new", NONE },

    /* outbound rule 1 */
    { "out 1 transfer", OUT, 1, 0, 0, 0, ABS, "new", XFER },
    { "out 1 transfer, action false", OUT, 1, 1, 0, 0, 0, "new", XFER },
    { "out 1 transfer, action true", OUT, 1, 1, 0, 0, 1, "new", XFER },

    /* outbound rule 2 */
    { "out 2 action true", OUT, 0, 1, 1, 1, 1, "new", ACT },
    { "out 2 action true, not analyzed", OUT, 0, 0, 0, 0, 1, "new", ACT },

    /* outbound rule 3 */
    { "out 3 started", OUT, 0, 0, 0, 0, ABS, "closed", NONE },
    { "out 3 action false", OUT, 0, 1, 0, 1, 0, "closed", NONE },
    { "out 3 analyzed, no action", OUT, 0, 1, 0, 0, ABS, "closed", NONE },
    { "out 3 qualified, no action", OUT, 0, 1, 1, 1, ABS, "closed", NONE },

    { NULL, 0, 0, 0, 0, 0, 0, NULL, 0 }
};


/*
 * The new facts (issue 18), rule by rule: a failed transfer needs a
 * person in both directions, unless a transfer went through; a call the
 * platform dropped needs one inbound, unless the analysis said more.
 */

typedef struct {
    const char  *rule;
    unsigned     outbound, transferred, transfer_failed, call_failed,
                 analyzed;
    int          action_required;
    const char  *status;
    int          email;
} failure_case_t;


static const failure_case_t  failures[] = {
    { "in 1b transfer failed", IN, 0, 1, 0, 0, ABS, "new", XFAIL },
    { "out 1b transfer failed", OUT, 0, 1, 0, 0, ABS, "new", XFAIL },
    { "in 1b failed, analyzed, action false", IN, 0, 1, 0, 1, 0, "new",
      XFAIL },
    { "out 1b failed, action true", OUT, 0, 1, 0, 1, 1, "new", XFAIL },
    { "in 1 a transfer that went through wins", IN, 1, 1, 0, 1, ABS, "new",
      XFER },
    { "out 1 a transfer that went through wins", OUT, 1, 1, 1, 0, ABS,
      "new", XFER },
    { "in 1c call failed", IN, 0, 0, 1, 0, ABS, "new", CFAIL },
    { "in 1c call failed, analyzed without action", IN, 0, 0, 1, 1, ABS,
      "new", CFAIL },
    { "in 1c call failed before action true (rule 1 before 2)", IN, 0, 0,
      1, 1, 1, "new", CFAIL },
    { "in 1c call failed wins over action false", IN, 0, 0, 1, 1, 0,
      "new", CFAIL },
    { "out 1c does not apply outbound", OUT, 0, 0, 1, 0, ABS, "closed",
      NONE },
    { "out 1c does not apply outbound, action true", OUT, 0, 0, 1, 1, 1,
      "new", ACT },
    { "out 1c does not apply outbound, analyzed", OUT, 0, 0, 1, 1, 0,
      "closed", NONE },
    { NULL, 0, 0, 0, 0, 0, 0, NULL, 0 }
};


/*
 * Every combination of facts against the rules written out again here,
 * apart from the module's code: the table the module sends holds one
 * entry per combination
 */

static void
test_every_combination(void)
{
    int                          i, action, status_new, email;
    const char                  *status;
    ngx_http_retell_facts_t      f;
    ngx_http_retell_decision_t   d;

    for (i = 0; i < 2 * 2 * 2 * 2 * 3 * 2 * 2 * 2; i++) {
        f.outbound = i & 1;
        f.transferred = (i >> 1) & 1;
        f.transfer_failed = (i >> 2) & 1;
        f.call_failed = (i >> 3) & 1;
        f.analyzed = (i >> 4) & 1;
        f.qualified = (i >> 5) & 1;
        f.call_successful = (i >> 6) & 1;
        action = (i >> 7) % 3;
        f.action_required = action == 0 ? ABS : action == 1 ? 0 : 1;

        d = ngx_http_retell_policy(&f);

        email = f.transferred ? XFER
                : f.transfer_failed ? XFAIL
                : (f.call_failed && !f.outbound) ? CFAIL
                : f.action_required == 1 ? ACT
                : NONE;

        status_new = (email != NONE);

        status = status_new ? "new"
                 : f.outbound ? "closed"
                 : f.action_required == 0 ? "closed"
                 : !f.analyzed ? "new"
                 : f.qualified ? "qualified"
                 : f.call_successful ? "resolved"
                 : "contacted";

        CHECK((int) d.email == email
              && strcmp(ngx_http_retell_status_name(d.status), status) == 0,
              "combination %d (out %u xfer %u xfail %u cfail %u an %u "
              "q %u ok %u act %d): %s/%d, want %s/%d", i, f.outbound,
              f.transferred, f.transfer_failed, f.call_failed, f.analyzed,
              f.qualified, f.call_successful, f.action_required,
              ngx_http_retell_status_name(d.status), (int) d.email,
              status, email);
    }
}


/*
 * The tables the module sends: the entry at the index the SQL computes
 * (docs/data-and-rules.md, t/040-store.t #27 reads them there) is the
 * policy's answer for those facts
 */

static void
test_tables(void)
{
    int                          i, action;
    char                         status[NGX_HTTP_RETELL_POLICY_TABLE + 1];
    char                         email[NGX_HTTP_RETELL_POLICY_TABLE + 1];
    unsigned                     out;
    ngx_http_retell_facts_t      f;
    ngx_http_retell_decision_t   d;

    for (out = 0; out < 2; out++) {
        memset(status, 'x', sizeof(status));
        memset(email, 'x', sizeof(email));
        ngx_http_retell_policy_table(out, 0, status);
        ngx_http_retell_policy_table(out, 1, email);

        CHECK(strlen(status) == 192 && strlen(email) == 192,
              "192 digits, terminated");

        for (i = 0; i < 2 * 2 * 2 * 2 * 3 * 2 * 2; i++) {
            f.outbound = out;
            f.call_failed = i & 1;
            f.transfer_failed = (i >> 1) & 1;
            f.transferred = (i >> 2) & 1;
            f.analyzed = (i >> 3) & 1;
            f.qualified = (i >> 4) & 1;
            f.call_successful = (i >> 5) & 1;
            action = (i >> 6) % 3;
            f.action_required = action == 0 ? ABS : action == 1 ? 0 : 1;

            d = ngx_http_retell_policy(&f);

            /* the SQL's index, 0-based */
            action = 96 * f.call_failed + 48 * f.transfer_failed
                     + 24 * f.transferred
                     + (f.action_required == 1 ? 16
                        : f.action_required == 0 ? 8 : 0)
                     + 4 * f.analyzed + 2 * f.qualified + f.call_successful;

            CHECK(status[action] == '0' + (int) d.status
                  && email[action] == '0' + (int) d.email,
                  "%s table, index %d: %c%c, want %d%d",
                  out ? "outbound" : "inbound", action, status[action],
                  email[action], (int) d.status, (int) d.email);
        }
    }
}


int
main(void)
{
    const failure_case_t        *fc;
    const policy_case_t         *c;
    ngx_http_retell_facts_t      facts;
    ngx_http_retell_decision_t   d;

    for (c = cases; c->rule; c++) {
        facts.outbound = c->outbound;
        facts.transferred = c->transferred;
        facts.transfer_failed = 0;
        facts.call_failed = 0;
        facts.analyzed = c->analyzed;
        facts.qualified = c->qualified;
        facts.call_successful = c->successful;
        facts.action_required = c->action_required;

        d = ngx_http_retell_policy(&facts);

        CHECK_STR(ngx_http_retell_status_name(d.status), c->status, c->rule);
        CHECK((int) d.email == c->email, "%s: email %d, want %d", c->rule,
              (int) d.email, c->email);
    }

    for (fc = failures; fc->rule; fc++) {
        facts.outbound = fc->outbound;
        facts.transferred = fc->transferred;
        facts.transfer_failed = fc->transfer_failed;
        facts.call_failed = fc->call_failed;
        facts.analyzed = fc->analyzed;
        facts.qualified = 0;
        facts.call_successful = 0;
        facts.action_required = fc->action_required;

        d = ngx_http_retell_policy(&facts);

        CHECK_STR(ngx_http_retell_status_name(d.status), fc->status,
                  fc->rule);
        CHECK((int) d.email == fc->email, "%s: email %d, want %d", fc->rule,
              (int) d.email, fc->email);
    }

    test_every_combination();
    test_tables();

    CHECK_STR(ngx_http_retell_email_reason_name(XFAIL), "transfer_failed",
              "reason name");
    CHECK_STR(ngx_http_retell_email_reason_name(CFAIL), "call_failed",
              "reason name");
    CHECK_STR(ngx_http_retell_email_reason_name(ACT), "action_required",
              "reason name");
    CHECK_STR(ngx_http_retell_email_reason_name(XFER), "call_transfer",
              "reason name");

    return UNIT_DONE();
}
