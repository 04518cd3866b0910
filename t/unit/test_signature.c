
/*
 * Signature parsing and HMAC-SHA256 verification.  The expected digests
 * were computed independently with:
 *
 *   printf '%s' "$body$ts" | openssl dgst -sha256 -hmac "$key"
 */


#include "unit.h"
#include "ngx_http_retell_signature.h"


#define BODY1  "{\"event\":\"call_started\",\"call\":{\"call_id\":\"abc\"}}"
#define KEY1   "key_test_123"
#define TS1    "1763923200000"
#define HEX1   "bfcc07b8ca4db65b915000a0dbf851617f9addc9417e4cc35f6b452f98ec1e32"

/* Retell's own, from retell-sdk's tests (tests/webhook-auth.test.ts) */
#define BODY3  "{\"event\":\"call_ended\"}"
#define KEY3   "test-api-key"
#define TS3    "1700000000000"
#define HEX3   "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"

#define BODY2  "hello"
#define KEY2   "secret"
#define TS2    "1700000000000"
#define HEX2   "dfdb9380f483891603ca916d2949d9460050d462e952cf250ad84f5e8d2e3603"


static int
parse(const char *header, ngx_http_retell_signature_t *sig)
{
    return ngx_http_retell_signature_parse((const u_char *) header,
                                           strlen(header), sig);
}


static int
verify(const char *header, const char *key, const char *body)
{
    ngx_http_retell_signature_t  sig;

    if (parse(header, &sig) != 0) {
        return -1;
    }

    return ngx_http_retell_signature_verify(&sig, (const u_char *) key,
                                            strlen(key),
                                            (const u_char *) body,
                                            strlen(body));
}


static void
upper(char *s)
{
    for ( /* void */ ; *s; s++) {
        if (*s >= 'a' && *s <= 'f') {
            *s -= 0x20;
        }
    }
}


int
main(void)
{
    char                          hex[65], header[128];
    ngx_http_retell_signature_t   sig;

    /* independent vectors */

    CHECK(verify("v=" TS1 ",d=" HEX1, KEY1, BODY1) == 1, "vector 1");
    CHECK(verify("v=" TS2 ",d=" HEX2, KEY2, BODY2) == 1, "vector 2");
    CHECK(verify("v=" TS3 ",d=" HEX3, KEY3, BODY3) == 1, "Retell's vector");
    CHECK(verify("v=" TS3 ",d=" HEX3, KEY3, BODY3 " ") == 0,
          "Retell's vector, body changed");

    /* upper-case hex, either order, spaces around items */

    snprintf(header, sizeof(header), "v=%s,d=%s", TS1, HEX1);
    upper(header + 2 + sizeof(TS1) + 2);
    CHECK(verify(header, KEY1, BODY1) == 1, "upper-case hex: %s", header);
    CHECK(verify("d=" HEX1 ",v=" TS1, KEY1, BODY1) == 1, "d before v");
    CHECK(verify(" v=" TS1 " , d=" HEX1 " ", KEY1, BODY1) == 1, "spaces");
    CHECK(verify("v=" TS1 ",d=" HEX1 ",x=1", KEY1, BODY1) == 1,
          "unknown item tolerated");
    CHECK(verify("v=" TS1 ",sha=abc,d=" HEX1 ",key_id=k-2", KEY1, BODY1) == 1,
          "unknown items with longer keys tolerated");
    CHECK(parse("v=" TS1 ",d=" HEX1 ",x y=1", &sig) == -1,
          "an unknown item's key is a token");
    CHECK(parse("v=" TS1 ",d=" HEX1 ",=1", &sig) == -1, "an empty key");
    CHECK(parse("v=" TS1 ",d=" HEX1 ",junk", &sig) == -1, "an item without =");

    /* wrong key, body, timestamp */

    CHECK(verify("v=" TS1 ",d=" HEX1, "key_test_124", BODY1) == 0,
          "wrong key");
    CHECK(verify("v=" TS1 ",d=" HEX1, KEY1, BODY1 " ") == 0, "body changed");
    CHECK(verify("v=1763923200001,d=" HEX1, KEY1, BODY1) == 0,
          "timestamp changed");
    CHECK(verify("v=" TS2 ",d=" HEX1, KEY1, BODY1) == 0, "other timestamp");

    /* the timestamp is signed as sent, leading zeros included */

    CHECK(verify("v=0" TS1 ",d=" HEX1, KEY1, BODY1) == 0, "leading zero");

    /* malformed */

    CHECK(parse("", &sig) == -1, "empty");
    CHECK(parse("v=" TS1, &sig) == -1, "no digest");
    CHECK(parse("d=" HEX1, &sig) == -1, "no timestamp");
    CHECK(parse("v=,d=" HEX1, &sig) == -1, "empty timestamp");
    CHECK(parse("v=12a4,d=" HEX1, &sig) == -1, "non-digit timestamp");
    CHECK(parse("v=12345678901234567,d=" HEX1, &sig) == -1,
          "17-digit timestamp");
    CHECK(parse("v=" TS1 ",d=" HEX1 "00", &sig) == -1, "long digest");
    CHECK(parse("v=" TS1 ",d=" "bfcc", &sig) == -1, "short digest");
    CHECK(parse("v=" TS1 ",d=zfcc07b8ca4db65b915000a0dbf851617f9addc9417e4cc"
                "35f6b452f98ec1e32", &sig) == -1, "non-hex digest");
    CHECK(parse("v=" TS1 ",v=" TS1 ",d=" HEX1, &sig) == -1, "two v items");
    CHECK(parse("v=" TS1 ",d=" HEX1 ",d=" HEX1, &sig) == -1, "two d items");
    CHECK(parse("sha256=" HEX1, &sig) == -1, "other scheme");
    CHECK(parse("v" TS1 ",d" HEX1, &sig) == -1, "no equals signs");
    CHECK(parse(",,", &sig) == -1, "commas only");

    /* parsed values */

    CHECK(parse("v=" TS1 ",d=" HEX1, &sig) == 0, "parse");
    CHECK(sig.timestamp == 1763923200000ULL, "timestamp value");
    CHECK(sig.timestamp_len == sizeof(TS1) - 1, "timestamp length");
    CHECK(sig.digest[0] == 0xbf && sig.digest[31] == 0x32, "digest bytes");

    /* tolerance, both directions */

    CHECK(ngx_http_retell_signature_fresh(&sig, 1763923200000ULL, 300000),
          "now");
    CHECK(ngx_http_retell_signature_fresh(&sig, 1763923500000ULL, 300000),
          "5 minutes late");
    CHECK(!ngx_http_retell_signature_fresh(&sig, 1763923500001ULL, 300000),
          "stale");
    CHECK(ngx_http_retell_signature_fresh(&sig, 1763922900000ULL, 300000),
          "5 minutes early");
    CHECK(!ngx_http_retell_signature_fresh(&sig, 1763922899999ULL, 300000),
          "future");

    /* signing agrees with the independent tool */

    CHECK(ngx_http_retell_signature_sign((const u_char *) KEY2,
                                         sizeof(KEY2) - 1,
                                         (const u_char *) BODY2,
                                         sizeof(BODY2) - 1,
                                         (const u_char *) TS2,
                                         sizeof(TS2) - 1, (u_char *) hex)
          == 0, "sign");
    hex[64] = '\0';
    CHECK_STR(hex, HEX2, "sign vector 2");

    ngx_http_retell_signature_cleanup();

    return UNIT_DONE();
}
