
/*
 * Retell's inbound call webhook, {"event": "call_inbound", "call_inbound":
 * {"agent_id", "agent_version", "from_number", "to_number", "call_id"}},
 * read into fixed buffers: nothing of it is stored, and the phone is
 * ringing while it is answered.
 *
 * Pure logic: no nginx event code, unit-tested in
 * t/unit/test_call_inbound.c and fuzzed (t/fuzz/fuzz_call_inbound.c).
 */


#ifndef _NGX_HTTP_RETELL_CALL_INBOUND_H_INCLUDED_
#define _NGX_HTTP_RETELL_CALL_INBOUND_H_INCLUDED_


#include <stddef.h>

#include "ngx_http_retell_event.h"


#define NGX_HTTP_RETELL_NUMBER_MAX_LEN  64


/* each field NUL-terminated, "" when absent, of another type or too long */

typedef struct {
    char      event[NGX_HTTP_RETELL_SHORT_MAX_LEN];
    char      agent_id[NGX_HTTP_RETELL_SHORT_MAX_LEN];
    char      from_number[NGX_HTTP_RETELL_NUMBER_MAX_LEN + 1];
    char      to_number[NGX_HTTP_RETELL_NUMBER_MAX_LEN + 1];
    char      call_id[NGX_HTTP_RETELL_CALL_ID_MAX_LEN + 1];
} ngx_http_retell_call_inbound_t;


/*
 * 0: a call_inbound event with its "call_inbound" object; 1: a JSON
 * object with another string "event" (ci->event holds it); -1: anything
 * else, with a message for the client in err (always NUL-terminated).
 * A field of the wrong type is read as absent, not refused: a caller is
 * waiting, and the answer fails open.
 */
int ngx_http_retell_call_inbound_parse(const u_char *json, size_t len,
    ngx_http_retell_call_inbound_t *ci, char *err, size_t err_len);


#endif /* _NGX_HTTP_RETELL_CALL_INBOUND_H_INCLUDED_ */
