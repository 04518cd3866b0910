
/*
 * libFuzzer harness: ngx_http_retell_call_inbound_parse() on any body
 * (an exact-size copy, no NUL after it).
 *
 *   - the answer is 0, 1 or -1; -1 says why, 0 and 1 say nothing;
 *   - 0 is a "call_inbound" event, 1 any other event name;
 *   - every field is NUL-terminated inside its buffer, whatever the body;
 *   - a field is empty or holds no byte the body's text could not give
 *     (no NUL, at most its buffer less one).
 */


#include "fuzz.h"
#include "ngx_http_retell_call_inbound.h"


static void
check_field(const char *name, const char *field, size_t size)
{
    FZ_CHECK(memchr(field, '\0', size) != NULL,
             "%s is not NUL-terminated inside its buffer", name);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc;
    char                            err[128];
    u_char                         *body;
    ngx_http_retell_call_inbound_t  ci;

    body = malloc(size ? size : 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data, size);

    rc = ngx_http_retell_call_inbound_parse(body, size, &ci, err,
                                            sizeof(err));
    free(body);

    FZ_CHECK(rc == 0 || rc == 1 || rc == -1, "rc %d", rc);
    FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "err not terminated");

    if (rc == -1) {
        FZ_CHECK(err[0] != '\0', "refused without a reason");
        return 0;
    }

    FZ_CHECK(err[0] == '\0', "accepted with a reason: %s", err);

    check_field("event", ci.event, sizeof(ci.event));
    check_field("agent_id", ci.agent_id, sizeof(ci.agent_id));
    check_field("from_number", ci.from_number, sizeof(ci.from_number));
    check_field("to_number", ci.to_number, sizeof(ci.to_number));
    check_field("call_id", ci.call_id, sizeof(ci.call_id));

    if (rc == 0) {
        FZ_CHECK(strcmp(ci.event, "call_inbound") == 0,
                 "0 for event \"%s\"", ci.event);

    } else {
        FZ_CHECK(strcmp(ci.event, "call_inbound") != 0,
                 "1 for a call_inbound event");
    }

    return 0;
}
