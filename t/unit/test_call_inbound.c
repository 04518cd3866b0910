
/*
 * Reading Retell's inbound call webhook (ngx_http_retell_call_inbound.c),
 * case by case.  Every body is copied into a heap buffer of exactly its
 * length, with no terminating NUL, so that valgrind sees any read past
 * the end.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_retell_call_inbound.h"


#define S(s)  (s), sizeof(s) - 1


typedef struct {
    const char  *body;
    size_t       len;
    int          rc;
    const char  *event;
    const char  *agent_id;
    const char  *from;
    const char  *to;
    const char  *call_id;
    const char  *err;           /* a part of the message, rc -1 */
} ci_case_t;


static const ci_case_t  cases[] = {

    /* Retell's documented shape, with and without the optional fields */
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{\"agent_id\":"
        "\"agent_12345\",\"agent_version\":1,\"from_number\":\"+12137771234\","
        "\"to_number\":\"+12137771235\",\"call_id\":\"call_abc\"}}"),
      0, "call_inbound", "agent_12345", "+12137771234", "+12137771235",
      "call_abc", NULL },
    { S("{\"call_inbound\":{\"from_number\":\"+1 (415) 555-0134\","
        "\"to_number\":\"4155550100\"},\"event\":\"call_inbound\"}"),
      0, "call_inbound", "", "+1 (415) 555-0134", "4155550100", "", NULL },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{}}"),
      0, "call_inbound", "", "", "", "", NULL },

    /* fields of another type, too long, with a NUL: as if absent */
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{\"from_number\":"
        "12137771234,\"to_number\":null,\"agent_id\":[\"a\"],\"call_id\":"
        "{\"x\":\"y\"}}}"),
      0, "call_inbound", "", "", "", "", NULL },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{\"from_number\":"
        "\"+1234567890123456789012345678901234567890123456789012345678901"
        "234567890\",\"to_number\":\"a\\u0000b\"}}"),
      0, "call_inbound", "", "", "", "", NULL },

    /* nested values with the same keys are not the call's */
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{\"x\":{\"from_number\":"
        "\"+15550000000\"},\"to_number\":\"+15551111111\"},\"from_number\":"
        "\"+15552222222\"}"),
      0, "call_inbound", "", "", "+15551111111", "", NULL },

    /* another event: 1, its name */
    { S("{\"event\":\"call_started\",\"call\":{\"call_id\":\"c\"}}"),
      1, "call_started", "", "", "", "", NULL },
    { S("{\"event\":\"chat_inbound\",\"chat_inbound\":{}}"),
      1, "chat_inbound", "", "", "", "", NULL },

    /* refused */
    { S("{\"event\":\"call_inbound\"}"), -1, NULL, NULL, NULL, NULL, NULL,
      "\"call_inbound\" is missing" },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":\"+1555\"}"), -1, NULL,
      NULL, NULL, NULL, NULL, "\"call_inbound\" is missing" },
    { S("{\"call_inbound\":{}}"), -1, NULL, NULL, NULL, NULL, NULL,
      "\"event\" is missing" },
    { S("{\"event\":7,\"call_inbound\":{}}"), -1, NULL, NULL, NULL, NULL,
      NULL, "\"event\" is missing" },
    { S("[\"event\",\"call_inbound\"]"), -1, NULL, NULL, NULL, NULL, NULL,
      "not a JSON object" },
    { S("\"call_inbound\""), -1, NULL, NULL, NULL, NULL, NULL,
      "not a JSON object" },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{}"), -1, NULL, NULL,
      NULL, NULL, NULL, "not a JSON object" },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{}} {}"), -1, NULL,
      NULL, NULL, NULL, NULL, "not a JSON object" },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{\"from_number\":"
        "\"\xff\"}}"), -1, NULL, NULL, NULL, NULL, NULL,
      "not a JSON object" },
    { S(""), -1, NULL, NULL, NULL, NULL, NULL, "not a JSON object" },

    /* yajl calls these whole: the start of a string after the value */
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{}}\""), -1, NULL,
      NULL, NULL, NULL, NULL, "not a JSON object" },
    { S("{\"event\":\"call_inbound\",\"call_inbound\":{}} \"x}"), -1,
      NULL, NULL, NULL, NULL, NULL, "not a JSON object" },

    /* white space after the value is fine */
    { S(" {\"event\":\"call_inbound\",\"call_inbound\":{\"call_id\":"
        "\"a\\\"}\"}} \r\n\t"), 0, "call_inbound", "", "", "", "a\"}", NULL },
};


static int
check_field(size_t i, const char *name, const char *got, const char *want)
{
    if (want && strcmp(got, want) != 0) {
        printf("FAIL case %zu: %s \"%s\", want \"%s\"\n", i, name, got, want);
        return 1;
    }

    return 0;
}


/* the sample make run sends (t/samples/call_inbound.json) */

static int
check_sample(const char *dir, size_t *checks)
{
    int                             rc, failed;
    char                            path[1024], err[128], buf[4096];
    size_t                          n;
    FILE                           *f;
    ngx_http_retell_call_inbound_t  ci;

    snprintf(path, sizeof(path), "%s/call_inbound.json", dir);

    f = fopen(path, "rb");
    if (f == NULL) {
        printf("FAIL cannot open %s\n", path);
        return 1;
    }

    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);

    rc = ngx_http_retell_call_inbound_parse((unsigned char *) buf, n, &ci,
                                            err, sizeof(err));
    *checks += 4;
    failed = (rc != 0);
    failed += check_field(0, "sample agent_id", ci.agent_id,
                          "agent_8a1b2c3d4e5f60718293a4b5");
    failed += check_field(0, "sample from_number", ci.from_number,
                          "+14155550134");
    failed += check_field(0, "sample to_number", ci.to_number,
                          "+14155550100");

    if (rc != 0) {
        printf("FAIL the sample: rc %d (%s)\n", rc, err);
    }

    return failed;
}


int
main(int argc, char **argv)
{
    int                             rc, failed;
    char                            err[128];
    size_t                          i, checks;
    unsigned char                  *copy;
    ngx_http_retell_call_inbound_t  ci;

    failed = 0;
    checks = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        copy = malloc(cases[i].len ? cases[i].len : 1);
        if (copy == NULL) {
            return 2;
        }

        memcpy(copy, cases[i].body, cases[i].len);

        rc = ngx_http_retell_call_inbound_parse(copy, cases[i].len, &ci, err,
                                                sizeof(err));
        free(copy);

        checks++;
        if (rc != cases[i].rc) {
            printf("FAIL case %zu: rc %d, want %d (%s)\n", i, rc,
                   cases[i].rc, err);
            failed++;
            continue;
        }

        if (rc == -1) {
            checks++;
            if (strstr(err, cases[i].err) == NULL) {
                printf("FAIL case %zu: error \"%s\", want \"%s\"\n", i, err,
                       cases[i].err);
                failed++;
            }

            continue;
        }

        checks += 5;
        failed += check_field(i, "event", ci.event, cases[i].event);
        failed += check_field(i, "agent_id", ci.agent_id, cases[i].agent_id);
        failed += check_field(i, "from_number", ci.from_number,
                              cases[i].from);
        failed += check_field(i, "to_number", ci.to_number, cases[i].to);
        failed += check_field(i, "call_id", ci.call_id, cases[i].call_id);
    }

    failed += check_sample(argc > 1 ? argv[1] : "t/samples", &checks);

    printf("%zu checks, %d failed\n", checks, failed);

    return failed ? 1 : 0;
}
