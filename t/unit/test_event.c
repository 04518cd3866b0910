
/*
 * The event parser: every sample in t/samples/ (copies of Retell-shaped
 * payloads) and malformed bodies.  Run as: test_event t/samples
 */


#include <stdlib.h>
#include "unit.h"
#include "ngx_http_retell_event.h"


/* every allocation is kept in a list and freed at exit, for valgrind */

typedef struct alloc_s  alloc_t;

struct alloc_s {
    alloc_t  *next;
};

static alloc_t  *allocations;


static void *
test_alloc(void *pool, size_t size)
{
    alloc_t  *a;

    (void) pool;

    a = malloc(sizeof(alloc_t) + size);
    if (a == NULL) {
        return NULL;
    }

    a->next = allocations;
    allocations = a;

    return a + 1;
}


static void
free_all(void)
{
    alloc_t  *a;

    while (allocations) {
        a = allocations;
        allocations = a->next;
        free(a);
    }
}


static int
parse(const char *json, ngx_http_retell_event_t *ev, char *err, size_t len)
{
    return ngx_http_retell_event_parse((const u_char *) json, strlen(json),
                                       ev, test_alloc, NULL, err, len);
}


static char *
read_sample(const char *dir, const char *name)
{
    long   size;
    char   path[1024], *buf;
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "rb");
    if (f == NULL) {
        printf("FAIL cannot open %s\n", path);
        unit_failed++;
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);

    buf = test_alloc(NULL, size + 1);
    if (fread(buf, 1, size, f) != (size_t) size) {
        size = 0;
    }

    buf[size] = '\0';
    fclose(f);

    return buf;
}


/* expects a 400 whose message contains "want" */

static void
reject(const char *json, const char *want)
{
    int                      rc;
    char                     err[160];
    ngx_http_retell_event_t  ev;

    rc = parse(json, &ev, err, sizeof(err));

    CHECK(rc == -1 && strstr(err, want) != NULL,
          "%s: rc %d, message \"%s\", want \"%s\"", json, rc, err, want);
}


static void
test_samples(const char *dir)
{
    int                      rc;
    char                     err[160], *json;
    ngx_http_retell_event_t  ev;

    json = read_sample(dir, "inbound-call_started.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "call_started: %s", err);
        CHECK(ev.type == NGX_HTTP_RETELL_EVENT_CALL_STARTED, "type");
        CHECK_STR(ev.call_id.data, "call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617",
                  "call_id");
        CHECK_STR(ev.agent_id.data, "agent_8a1b2c3d4e5f60718293a4b5",
                  "agent_id");
        CHECK_STR(ev.direction.data, "inbound", "direction");
        CHECK_STR(ev.from_number.data, "+1 (415) 555-0134", "from_number");
        CHECK_STR(ev.to_number.data, "+14155550100", "to_number");
        CHECK_STR(ev.call_status.data, "ongoing", "call_status");
        CHECK(ev.start_timestamp.set
              && ev.start_timestamp.value == 1763923200000LL,
              "start_timestamp");
        CHECK(!ev.end_timestamp.set, "no end_timestamp");
        CHECK_STR(ev.metadata.data, "{}", "metadata");
        CHECK_STR(ev.retell_llm_dynamic_variables.data,
                  "{\"customer_name\":\"Dana Whitfield\"}", "dyn vars");
        CHECK(ev.transcript.data == NULL, "no transcript");
        CHECK(ev.action_required == NGX_HTTP_RETELL_ABSENT, "no action");
        CHECK(ev.call_successful == NGX_HTTP_RETELL_ABSENT, "no analysis");
        CHECK(!ev.transferred, "not transferred");
    }

    json = read_sample(dir, "inbound-call_ended.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "call_ended: %s", err);
        CHECK(ev.type == NGX_HTTP_RETELL_EVENT_CALL_ENDED, "type");
        CHECK(ev.end_timestamp.value == 1763923391000LL, "end_timestamp");
        CHECK(ev.duration_ms.value == 191000, "duration_ms");
        CHECK_STR(ev.disconnection_reason.data, "user_hangup", "reason");
        CHECK(ev.transcript.data != NULL
              && strncmp((char *) ev.transcript.data, "Agent: Thanks", 13)
                 == 0
              && ev.transcript.data[ev.transcript.len - 1] == '\n',
              "transcript with its escaped line ends decoded");
        CHECK_STR(ev.collected_dynamic_variables.data, "{\"unit\":\"4B\"}",
                  "collected");
        CHECK_STR(ev.recording_url.data,
                  "https://dxc03zgurdly9.cloudfront.net/"
                  "call_5c1f2b7e8a9d4e0fb3c6a1d2e4f50617/recording.wav",
                  "recording_url");
    }

    json = read_sample(dir, "inbound-call_analyzed-action_required.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "call_analyzed: %s", err);
        CHECK(ev.type == NGX_HTTP_RETELL_EVENT_CALL_ANALYZED, "type");
        CHECK(ev.action_required == 1, "action_required \"true\"");
        CHECK(ev.call_successful == 1, "call_successful");
        CHECK(ev.in_voicemail == 0, "in_voicemail");
        CHECK_STR(ev.user_sentiment.data, "Neutral", "sentiment");
        CHECK(ev.call_summary.data != NULL
              && strstr((char *) ev.call_summary.data, "unit 4B") != NULL,
              "summary");
        CHECK_STR(ev.custom_analysis_data.data,
                  "{\"action_required\":\"true\",\"issue_category\":"
                  "\"maintenance\",\"urgency\":\"same day\",\"unit\":\"4B\"}",
                  "custom_analysis_data");
        CHECK(!ev.qualified, "not qualified");
    }

    json = read_sample(dir, "inbound-call_analyzed-voicemail-anonymous.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "voicemail: %s", err);
        CHECK_STR(ev.from_number.data, "anonymous", "from_number");
        CHECK(ev.call_successful == 0, "call_successful false");
        CHECK(ev.action_required == NGX_HTTP_RETELL_ABSENT, "no action");
        CHECK_STR(ev.custom_analysis_data.data, "{}", "empty analysis data");
        CHECK(ev.metadata.data == NULL, "no metadata");
    }

    json = read_sample(dir, "outbound-call_analyzed-interested.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "interested: %s", err);
        CHECK_STR(ev.direction.data, "outbound", "direction");
        CHECK(ev.action_required == 1, "action_required JSON true");
        CHECK(ev.qualified, "lead_qualified");
        CHECK_STR(ev.metadata.data, "{\"campaign\":\"elm-street-leads\"}",
                  "metadata");
        CHECK_STR(ev.to_number.data, "+44 20 7946 0321", "to_number");
    }

    json = read_sample(dir, "outbound-call_ended-no_answer.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "no answer: %s", err);
        CHECK_STR(ev.call_status.data, "not_connected", "call_status");
        CHECK_STR(ev.disconnection_reason.data, "dial_no_answer", "reason");
        CHECK(ev.duration_ms.set && ev.duration_ms.value == 0, "duration 0");
        CHECK(!ev.transferred, "not transferred");
    }

    json = read_sample(dir, "outbound-call_ended-transfer.json");
    if (json) {
        rc = parse(json, &ev, err, sizeof(err));
        CHECK(rc == 0, "transfer: %s", err);
        CHECK(ev.transferred, "transferred");
        CHECK_STR(ev.transfer_destination.data, "+14155550111",
                  "transfer_destination");
    }
}


static void
test_facts(void)
{
    char                     err[160];
    ngx_http_retell_event_t  ev;

#define CALL(inner)                                                           \
    "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"c1\"," inner "}}"

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":\" FALSE \"}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == 0, "\" FALSE \" is false");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":false}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == 0, "JSON false");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":\"yes\"}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == NGX_HTTP_RETELL_ABSENT
          && ev.action_required_invalid, "\"yes\" is absent and flagged");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":1}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == NGX_HTTP_RETELL_ABSENT, "1 is absent");

    CHECK(parse(CALL("\"collected_dynamic_variables\":"
                     "{\"action_required\":\"True\"}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == 1, "from collected variables");

    CHECK(parse(CALL("\"collected_dynamic_variables\":"
                     "{\"action_required\":\"true\"},"
                     "\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":\"false\"}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == 0 && ev.action_required_analysis == 0
          && ev.action_required_collected == 1, "analysis data wins");

    CHECK(parse(CALL("\"collected_dynamic_variables\":"
                     "{\"action_required\":\"true\"},"
                     "\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"action_required\":\"maybe\"}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == 1, "unusable analysis value falls back");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"nested\":{\"action_required\":true}}}"),
                &ev, err, sizeof(err)) == 0
          && ev.action_required == NGX_HTTP_RETELL_ABSENT,
          "nested action_required is not read");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"qualified\":\"TRUE\"}}"),
                &ev, err, sizeof(err)) == 0 && ev.qualified,
          "qualified \"TRUE\"");

    CHECK(parse(CALL("\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"qualified\":false,\"lead_qualified\":\"no\"}}"),
                &ev, err, sizeof(err)) == 0 && !ev.qualified,
          "not qualified");

    CHECK(parse(CALL("\"disconnection_reason\":\"transfer_bridged\""),
                &ev, err, sizeof(err)) == 0 && ev.transferred,
          "transfer_bridged");

    CHECK(parse(CALL("\"metadata\":[1,2.5e3,\"x\",null,true]"),
                &ev, err, sizeof(err)) == 0
          && ev.metadata.data
          && strcmp((char *) ev.metadata.data, "[1,2.5e3,\"x\",null,true]")
             == 0, "metadata may be any JSON, numbers kept as written");

    CHECK(parse(CALL("\"metadata\":\"text\""), &ev, err, sizeof(err)) == 0
          && ev.metadata.data
          && strcmp((char *) ev.metadata.data, "\"text\"") == 0,
          "scalar metadata");

    CHECK(parse(CALL("\"agent_id\":null,\"call_analysis\":null,"
                     "\"start_timestamp\":null,\"metadata\":null"),
                &ev, err, sizeof(err)) == 0
          && ev.agent_id.data == NULL && !ev.start_timestamp.set
          && ev.metadata.data == NULL, "nulls are absent");

    CHECK(parse(CALL("\"unknown\":{\"a\":[{\"b\":[]}]},\"x\":1"),
                &ev, err, sizeof(err)) == 0, "unknown fields ignored");

    CHECK(parse("{\"event\":\"transcript_updated\",\"call\":"
                "{\"call_id\":\"c1\",\"transcript\":\"x\"}}",
                &ev, err, sizeof(err)) == 0
          && ev.type == NGX_HTTP_RETELL_EVENT_OTHER, "other event type");

    CHECK(parse("{\"event\":\"call_ended\",\"call\":{\"call_id\":\"c\\u00e9\","
                "\"transcript\":\"line\\n\\\"quoted\\\"\"}}",
                &ev, err, sizeof(err)) == 0
          && strcmp((char *) ev.call_id.data, "c\xc3\xa9") == 0
          && strcmp((char *) ev.transcript.data, "line\n\"quoted\"") == 0,
          "escapes decoded");
}


static void
test_rejects(void)
{
    int   i;
    char  deep[256], *p;

    reject("", "not valid JSON");
    reject("not json", "not valid JSON");
    reject("{\"event\":\"call_started\"", "not valid JSON");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\"}} {}",
           "not valid JSON");
    /*
     * yajl takes what starts a string after the value for a token still
     * to come, and calls the text whole; jsonb refuses it (fuzz_event)
     */
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\"}}\"",
           "not valid JSON");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\"}}\"x}",
           "not valid JSON");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\"}} \"\\u0000",
           "not valid JSON");
    reject("[]", "not a JSON object");
    reject("\"call_started\"", "not a JSON object");
    reject("{\"call\":{\"call_id\":\"a\"}}", "\"event\" is missing");
    reject("{\"event\":1,\"call\":{\"call_id\":\"a\"}}",
           "\"event\" must be a string");
    reject("{\"event\":\"call_started\"}", "\"call\" is missing");
    reject("{\"event\":\"call_started\",\"call\":null}", "\"call\" is missing");
    reject("{\"event\":\"call_started\",\"call\":[]}",
           "\"call\" must be an object");
    reject("{\"event\":\"call_started\",\"call\":{}}",
           "\"call.call_id\" is missing");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"\"}}",
           "\"call.call_id\" is missing or empty");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":42}}",
           "\"call.call_id\" must be a string");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"start_timestamp\":\"1763923200000\"}}",
           "\"call.start_timestamp\" must be an integer");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"duration_ms\":1.5}}", "\"call.duration_ms\" must be an integer");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"from_number\":4155550134}}",
           "\"call.from_number\" must be a string");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"call_analysis\":{\"call_successful\":\"true\"}}}",
           "\"call.call_analysis.call_successful\" must be a boolean");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"call_analysis\":{\"custom_analysis_data\":[]}}}",
           "\"call.call_analysis.custom_analysis_data\" must be an object");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"call_analysis\":\"none\"}}",
           "\"call.call_analysis\" must be an object");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"collected_dynamic_variables\":\"x\"}}",
           "\"call.collected_dynamic_variables\" must be an object");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\\u0000b\"}}",
           "\\u0000");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\","
           "\"metadata\":{\"k\\u0000\":1}}}", "\\u0000");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"\xff\"}}",
           "not valid UTF-8");

    /* call_id: 128 bytes pass, 129 do not */

    p = deep;
    p += sprintf(p, "{\"event\":\"call_started\",\"call\":{\"call_id\":\"");
    memset(p, 'x', 129);
    strcpy(p + 129, "\"}}");
    reject(deep, "\"call.call_id\" is longer than 128 bytes");

    {
        char                     err[160];
        ngx_http_retell_event_t  ev;

        strcpy(p + 128, "\"}}");
        CHECK(parse(deep, &ev, err, sizeof(err)) == 0 && ev.call_id.len == 128,
              "128-byte call_id: %s", err);
    }

    /* nesting: 32 levels pass, 33 do not */

    p = deep;
    p += sprintf(p, "{\"event\":\"x\",\"call\":{\"call_id\":\"a\",\"u\":");
    for (i = 0; i < 31; i++) {
        *p++ = '[';
    }
    for (i = 0; i < 31; i++) {
        *p++ = ']';
    }
    strcpy(p, "}}");
    {
        char                     err[160];
        ngx_http_retell_event_t  ev;

        /* 2 maps + 31 arrays = 33 levels */
        CHECK(parse(deep, &ev, err, sizeof(err)) == -1
              && strstr(err, "nested deeper") != NULL, "33 levels: %s", err);

        memmove(deep + 40, deep + 41, strlen(deep + 40));
        p = strchr(deep, ']');
        memmove(p, p + 1, strlen(p));
        CHECK(parse(deep, &ev, err, sizeof(err)) == 0, "32 levels: %s", err);
    }
}


/* what PostgreSQL would refuse is a 400 here (pure-code review D3, S1, D4) */

#define INCALL(inner)                                                           \
    "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"a\"," inner "}}"

static void
test_storable(void)
{
    char                     err[160];
    ngx_http_retell_event_t  ev;

    /* UTF-8: overlong forms, surrogates, past U+10FFFF, stray bytes */
    reject(INCALL("\"agent_id\":\"\xc0\x80\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xc1\x9a\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xe0\x80\x80\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xed\xa0\x80\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xf4\x90\x80\x80\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xf7\xbf\xbf\xbf\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\x80\""), "not valid UTF-8");
    reject(INCALL("\"agent_id\":\"\xe2\x82\""), "not valid UTF-8");
    reject(INCALL("\"metadata\":{\"\xed\xbf\xbf\":1}"), "not valid UTF-8");

    /* whitespace PostgreSQL's JSON does not take (fuzzing, N1) */
    reject("{\"event\":\"call_started\",\f\"call\":{\"call_id\":\"c1\"}}",
           "not valid JSON");
    reject("{\"event\":\"call_started\",\v\"call\":{\"call_id\":\"c1\"}}",
           "not valid JSON");

    /* escapes: a lone surrogate, or a high one without its low one */
    reject(INCALL("\"agent_id\":\"a\\udc00b\""), "surrogate");
    reject(INCALL("\"agent_id\":\"a\\ud800\\u0041\""), "surrogate");
    reject(INCALL("\"agent_id\":\"a\\ud800\""), "surrogate");
    reject(INCALL("\"agent_id\":\"a\\ud800\\n\""), "surrogate");
    reject(INCALL("\"metadata\":{\"k\":\"\\udfff\"}"), "surrogate");

    /* well-formed text passes: 2, 3 and 4 byte forms, a paired escape */
    CHECK(parse(INCALL("\"agent_id\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                     "\\ud83d\\ude00\\u00e9\\\"\\\\\""), &ev, err, sizeof(err)) == 0
          && strcmp((char *) ev.agent_id.data,
                    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80"
                    "\xc3\xa9\"\\") == 0, "valid UTF-8: %s", err);

    /* numbers jsonb's numeric cannot hold, anywhere in the body */
    reject(INCALL("\"metadata\":{\"n\":1e999999}"), "too large or too precise");
    reject(INCALL("\"metadata\":{\"n\":1e131072}"), "too large or too precise");
    reject(INCALL("\"metadata\":{\"n\":1.5e-16383}"), "too large or too precise");
    reject(INCALL("\"unknown\":[0e-99999]"), "too large or too precise");
    reject(INCALL("\"metadata\":{\"n\":1e99999999999999999999}"),
           "too large or too precise");
    CHECK(parse(INCALL("\"metadata\":{\"a\":1e100000,\"b\":-0.5e-16382,"
                     "\"c\":123456789012345678901234567890,\"d\":0}"),
                &ev, err, sizeof(err)) == 0, "numbers jsonb holds: %s", err);

    /* duplicate keys the module reads: one value, the one jsonb keeps */
    reject("{\"event\":\"call_started\",\"event\":\"call_ended\","
           "\"call\":{\"call_id\":\"a\"}}", "duplicate key \"event\"");
    reject("{\"event\":\"call_started\",\"call\":{\"call_id\":\"a\"},"
           "\"call\":{\"call_id\":\"b\"}}", "duplicate key \"call\"");
    reject(INCALL("\"agent_id\":\"x\",\"agent_id\":\"y\""),
           "duplicate key \"call.agent_id\"");
    reject(INCALL("\"call_analysis\":{\"custom_analysis_data\":"
                "{\"action_required\":true},\"custom_analysis_data\":"
                "{\"note\":\"nothing to do\"}}"),
           "duplicate key \"call.call_analysis.custom_analysis_data\"");
    reject(INCALL("\"call_analysis\":{\"custom_analysis_data\":"
                "{\"qualified\":true,\"qualified\":false}}"),
           "duplicate key \"qualified\" in \"custom_analysis_data\"");
    reject(INCALL("\"collected_dynamic_variables\":"
                "{\"action_required\":\"true\",\"action_required\":\"false\"}"),
           "duplicate key \"action_required\" in "
           "\"collected_dynamic_variables\"");

    /* other duplicates are jsonb's to settle: nothing reads them */
    CHECK(parse(INCALL("\"metadata\":{\"k\":1,\"k\":2},\"x\":1,\"x\":2,"
                     "\"call_analysis\":{\"custom_analysis_data\":"
                     "{\"qualified\":true,\"lead_qualified\":false,"
                     "\"note\":1,\"note\":2}}"),
                &ev, err, sizeof(err)) == 0 && ev.qualified == 1,
          "unread duplicates pass: %s", err);
}


/*
 * Events the module does not apply: parsed as "other" whatever the body
 * holds besides; when the full parse refuses such a body, the name read
 * alone says it is not the module's to refuse
 */

static void
test_unapplied(void)
{
    int                      rc;
    char                     err[160], name[64];
    ngx_http_retell_event_t  ev;

    static const char  *ok[] = {
        "{\"event\":\"chat_started\",\"chat\":{\"chat_id\":\"c1\"}}",
        "{\"chat\":{\"chat_id\":\"c1\"},\"event\":\"chat_analyzed\"}",
        "{\"event\":\"transcript_updated\",\"call\":{\"call_id\":\"a\"}}",
        "{\"event\":\"transfer_started\",\"call\":{\"call_id\":\"a\"},"
        "\"transfer_destination\":{\"number\":\"+14155550100\"}}",
        "{\"event\":\"call_inbound\",\"call_inbound\":{\"from_number\":"
        "\"+14155550134\",\"to_number\":\"+14155550100\"}}",
        "{\"event\":\"something_new\"}",
        NULL
    };

    const char  **j;

    for (j = ok; *j; j++) {
        rc = parse(*j, &ev, err, sizeof(err));
        CHECK(rc == 0 && ev.type == NGX_HTTP_RETELL_EVENT_OTHER,
              "%s: rc %d (%s), type %d", *j, rc, err, (int) ev.type);
    }

    CHECK(!ngx_http_retell_event_applied("chat_ended"), "chat_ended");
    CHECK(ngx_http_retell_event_applied("call_ended"), "call_ended");

    /* the full parse refuses these; the name read alone is not applied */

    rc = parse("{\"event\":\"chat_ended\",\"call\":{\"call_id\":7}}",
               &ev, err, sizeof(err));
    CHECK(rc == -1, "a call_id of the wrong type is refused by the parse");

#define NAME(json)                                                            \
    ngx_http_retell_event_name((const u_char *) (json), strlen(json), name,  \
                               sizeof(name))

    CHECK(NAME("{\"call\":{\"call_id\":7},\"event\":\"chat_ended\"}")
          && strcmp(name, "chat_ended") == 0, "name after the call: %s", name);
    CHECK(NAME("{\"x\":{\"event\":\"inner\"},\"event\":\"outer\"}")
          && strcmp(name, "outer") == 0, "only the top level: %s", name);
    CHECK(!NAME("{\"event\":7}"), "a number is no name");
    CHECK(!NAME("{\"event\":{\"a\":\"b\"}}"), "an object is no name");
    CHECK(!NAME("[\"event\",\"call_ended\"]"), "an array holds no key");
    CHECK(!NAME("{\"event\":\"a\\u0000b\"}"), "a NUL is no name");
    CHECK(!NAME("not json"), "not JSON");
    CHECK(!NAME("{\"event\":\""
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "\"}"), "too long for the buffer");
    CHECK(NAME("{\"event\":\"call_started\",\"call\":{\"call_id\":7}}")
          && ngx_http_retell_event_applied(name),
          "a malformed call event is still one: %s", name);

#undef NAME
}


/* the facts an event states by its type or how its call ended */

static void
test_transfer_and_failure_facts(void)
{
    int                      rc;
    char                     err[160];
    ngx_http_retell_event_t  ev;

    static const struct {
        const char  *json;
        unsigned     transferred, transfer_failed, call_failed;
        const char  *destination;
    } cases[] = {
        { "{\"event\":\"transfer_bridged\",\"call\":{\"call_id\":\"a\","
          "\"call_status\":\"ongoing\"},\"transfer_destination\":"
          "{\"number\":\"+14155550111\",\"extension\":null},"
          "\"transfer_option\":{\"type\":\"warm\"}}",
          1, 0, 0, "+14155550111" },
        { "{\"event\":\"transfer_bridged\",\"call\":{\"call_id\":\"a\","
          "\"transfer_destination\":\"+14155550122\"},"
          "\"transfer_destination\":{\"number\":\"+14155550111\"}}",
          1, 0, 0, "+14155550122" },
        { "{\"event\":\"transfer_cancelled\",\"call\":{\"call_id\":\"a\"},"
          "\"transfer_destination\":\"+14155550111\"}",
          0, 1, 0, "+14155550111" },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"transfer_cancelled\"}}",
          0, 1, 0, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"transfer_bridged\"}}",
          1, 0, 0, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"call_status\":\"error\"}}",
          0, 0, 1, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"error_llm_websocket_lost_connection\"}}",
          0, 0, 1, NULL },
        { "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"concurrency_limit_reached\"}}",
          0, 0, 1, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"error_user_not_joined\"}}",
          0, 0, 0, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"dial_no_answer\"}}",
          0, 0, 0, NULL },
        { "{\"event\":\"call_ended\",\"call\":{\"call_id\":\"a\","
          "\"disconnection_reason\":\"user_hangup\","
          "\"call_status\":\"ended\"}}",
          0, 0, 0, NULL },
    };

    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = parse(cases[i].json, &ev, err, sizeof(err));

        CHECK(rc == 0 && ev.transferred == cases[i].transferred
              && ev.transfer_failed == cases[i].transfer_failed
              && ev.call_failed == cases[i].call_failed,
              "%s: rc %d (%s), transferred %u, failed %u, call failed %u",
              cases[i].json, rc, err, ev.transferred, ev.transfer_failed,
              ev.call_failed);

        if (cases[i].destination) {
            CHECK_STR(ev.transfer_destination.data, cases[i].destination,
                      cases[i].json);
        }
    }

    CHECK(parse("{\"event\":\"transfer_bridged\",\"call\":{\"call_id\":"
                "\"a\"},\"transfer_destination\":[1]}", &ev, err,
                sizeof(err)) == -1
          && strstr(err, "\"transfer_destination\" must be an object"),
          "a transfer_destination of another shape: %s", err);
    CHECK(parse("{\"event\":\"transfer_bridged\",\"call\":{\"call_id\":"
                "\"a\"},\"transfer_destination\":{\"number\":5}}", &ev, err,
                sizeof(err)) == -1
          && strstr(err, "\"transfer_destination.number\" must be a string"),
          "a number that is no string: %s", err);
    CHECK(parse("{\"event\":\"transfer_bridged\",\"transfer_destination\":"
                "{\"number\":\"+1\"}}", &ev, err, sizeof(err)) == -1
          && strstr(err, "\"call\" is missing"),
          "an applied transfer event needs its call: %s", err);
}


int
main(int argc, char **argv)
{
    test_samples(argc > 1 ? argv[1] : "t/samples");
    test_facts();
    test_rejects();
    test_storable();
    test_unapplied();
    test_transfer_and_failure_facts();

    free_all();

    return UNIT_DONE();
}
