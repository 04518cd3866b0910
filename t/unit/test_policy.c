
/*
 * The ticket rules of SPEC section 5, rule by rule, both directions.
 */


#include "unit.h"
#include "ngx_http_retell_policy.h"


#define IN    0
#define OUT   1
#define ABS  -1

#define NONE  NGX_HTTP_RETELL_EMAIL_NONE
#define ACT   NGX_HTTP_RETELL_EMAIL_ACTION_REQUIRED
#define XFER  NGX_HTTP_RETELL_EMAIL_CALL_TRANSFER


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


int
main(void)
{
    const policy_case_t         *c;
    ngx_http_retell_facts_t      facts;
    ngx_http_retell_decision_t   d;

    for (c = cases; c->rule; c++) {
        facts.outbound = c->outbound;
        facts.transferred = c->transferred;
        facts.analyzed = c->analyzed;
        facts.qualified = c->qualified;
        facts.call_successful = c->successful;
        facts.action_required = c->action_required;

        d = ngx_http_retell_policy(&facts);

        CHECK_STR(ngx_http_retell_status_name(d.status), c->status, c->rule);
        CHECK((int) d.email == c->email, "%s: email %d, want %d", c->rule,
              (int) d.email, c->email);
    }

    CHECK_STR(ngx_http_retell_email_reason_name(ACT), "action_required",
              "reason name");
    CHECK_STR(ngx_http_retell_email_reason_name(XFER), "call_transfer",
              "reason name");

    return UNIT_DONE();
}
