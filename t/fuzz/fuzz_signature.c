
/*
 * libFuzzer harness: the X-Retell-Signature parser, the verifier and
 * signing.  Input: header "\n" key "\n" body (missing parts are empty).
 *
 *   - the header and every prefix of it (each an exact-size copy, so that
 *     a read past the end is caught) parse as a reference parser of
 *     docs/decisions.md's rule says: "key=value" items with token keys,
 *     unknown ones ignored, v once with 1-16 digits, d once with 64 hex
 *     digits; a parsed timestamp lies inside the header;
 *   - verify() agrees with an HMAC-SHA256 computed here with OpenSSL's
 *     one-shot API, and fails with one bit of the digest flipped;
 *   - fresh() holds exactly up to the tolerance on both sides;
 *   - sign(), written out as a header in one of several allowed forms,
 *     parses and verifies, and fails for another body.
 */


#include "fuzz.h"
#include "ngx_http_retell_signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>


#define TOLERANCE    300000
#define MAX_PREFIX   96         /* every prefix up to this (a real header
                                   is 82 bytes), then 16 spread over the
                                   rest: all of them would be quadratic */


typedef struct {
    int            rc;
    uint64_t       timestamp;
    const u_char  *timestamp_text;
    size_t         timestamp_len;
    u_char         digest[NGX_HTTP_RETELL_DIGEST_LEN];
} ref_t;


static int
is_token(u_char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


static int
hex_digit(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/*
 * The rule, written apart from the module: the header split at every
 * comma (a comma at the very end closes nothing), items trimmed of
 * spaces and tabs.
 */

static void
ref_parse(const u_char *h, size_t len, ref_t *r)
{
    int            have_v, have_d;
    size_t         i, k, klen, vlen;
    const u_char  *item, *end, *next, *last, *val;

    memset(r, 0, sizeof(ref_t));
    r->rc = -1;

    have_v = 0;
    have_d = 0;
    last = h + len;

    for (item = h; item < last; item = next) {
        end = memchr(item, ',', last - item);
        end = end ? end : last;
        next = (end < last) ? end + 1 : last;

        while (item < end && (*item == ' ' || *item == '\t')) {
            item++;
        }

        while (end > item && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        for (k = 0; item + k < end && item[k] != '='; k++) {
            if (!is_token(item[k])) {
                return;
            }
        }

        if (k == 0 || item + k == end) {
            return;             /* an empty key, or no "=" */
        }

        klen = k;
        val = item + k + 1;
        vlen = end - val;

        if (klen != 1 || (item[0] != 'v' && item[0] != 'd')) {
            continue;
        }

        if (item[0] == 'v') {
            if (have_v || vlen == 0
                || vlen > NGX_HTTP_RETELL_TIMESTAMP_MAX_LEN)
            {
                return;
            }

            for (i = 0; i < vlen; i++) {
                if (val[i] < '0' || val[i] > '9') {
                    return;
                }

                r->timestamp = r->timestamp * 10 + (val[i] - '0');
            }

            r->timestamp_text = val;
            r->timestamp_len = vlen;
            have_v = 1;
            continue;
        }

        if (have_d || vlen != 2 * NGX_HTTP_RETELL_DIGEST_LEN) {
            return;
        }

        for (i = 0; i < NGX_HTTP_RETELL_DIGEST_LEN; i++) {
            if (hex_digit(val[2 * i]) < 0 || hex_digit(val[2 * i + 1]) < 0) {
                return;
            }

            r->digest[i] = (u_char) (hex_digit(val[2 * i]) << 4
                                     | hex_digit(val[2 * i + 1]));
        }

        have_d = 1;
    }

    r->rc = (have_v && have_d) ? 0 : -1;
}


/* HMAC-SHA256(key, body || timestamp) by OpenSSL's one-shot interface */

static void
ref_hmac(const u_char *key, size_t key_len, const u_char *body,
    size_t body_len, const u_char *ts, size_t ts_len, u_char *digest)
{
    u_char  *msg;
    size_t   n;

    msg = malloc(body_len + ts_len + 1);
    FZ_CHECK(msg != NULL, "malloc");
    memcpy(msg, body, body_len);
    memcpy(msg + body_len, ts, ts_len);

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    FZ_CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, msg,
                       body_len + ts_len, digest, NGX_HTTP_RETELL_DIGEST_LEN,
                       &n) != NULL
             && n == NGX_HTTP_RETELL_DIGEST_LEN, "EVP_Q_mac");
#else
    {
        unsigned int  len;

        FZ_CHECK(HMAC(EVP_sha256(), key, (int) key_len, msg,
                      body_len + ts_len, digest, &len) != NULL
                 && len == NGX_HTTP_RETELL_DIGEST_LEN, "HMAC");
        n = len;
    }
#endif

    free(msg);
}


static void
check_parse(const u_char *h, size_t len)
{
    int                          rc;
    u_char                      *copy;
    ref_t                        r;
    ngx_http_retell_signature_t  sig;

    copy = fz_copy(h, len);

    ref_parse(copy, len, &r);
    rc = ngx_http_retell_signature_parse(copy, len, &sig);

    FZ_CHECK(rc == r.rc, "parse gives %d, the rule %d, for \"%s\"", rc, r.rc,
             fz_show(copy, len));

    if (rc == 0) {
        FZ_CHECK(sig.timestamp_text >= copy
                 && sig.timestamp_text + sig.timestamp_len <= copy + len,
                 "the timestamp text is outside the header");
        FZ_CHECK(sig.timestamp_text == r.timestamp_text
                 && sig.timestamp_len == r.timestamp_len
                 && sig.timestamp == r.timestamp,
                 "timestamp %llu \"%s\", the rule says %llu \"%s\"",
                 (unsigned long long) sig.timestamp,
                 fz_show(sig.timestamp_text, sig.timestamp_len),
                 (unsigned long long) r.timestamp,
                 fz_show(r.timestamp_text, r.timestamp_len));
        FZ_CHECK(memcmp(sig.digest, r.digest, sizeof(r.digest)) == 0,
                 "the digest is not the d= item's hex");
    }

    free(copy);
}


static void
check_fresh(const ngx_http_retell_signature_t *sig)
{
    uint64_t  ts, tol;

    ts = sig->timestamp;
    tol = TOLERANCE;

    FZ_CHECK(ngx_http_retell_signature_fresh(sig, ts, 0), "not fresh at 0");
    FZ_CHECK(ngx_http_retell_signature_fresh(sig, ts, tol), "not fresh now");
    FZ_CHECK(!ngx_http_retell_signature_fresh(sig, ts + 1, 0),
             "fresh 1 ms late with tolerance 0");

    if (ts <= UINT64_MAX - tol - 1) {
        FZ_CHECK(ngx_http_retell_signature_fresh(sig, ts + tol, tol),
                 "not fresh at the late edge");
        FZ_CHECK(!ngx_http_retell_signature_fresh(sig, ts + tol + 1, tol),
                 "fresh past the late edge");
    }

    if (ts >= tol + 1) {
        FZ_CHECK(ngx_http_retell_signature_fresh(sig, ts - tol, tol),
                 "not fresh at the early edge");
        FZ_CHECK(!ngx_http_retell_signature_fresh(sig, ts - tol - 1, tol),
                 "fresh before the early edge");
    }
}


/* a signed header: v and d in either order, spaced, any case, extras */

static size_t
make_header(char *out, size_t size, uint32_t how, const u_char *ts,
    size_t ts_len, const u_char *hex)
{
    int     n;
    char    d[2 * NGX_HTTP_RETELL_DIGEST_LEN + 1];
    size_t  i;

    for (i = 0; i < 2 * NGX_HTTP_RETELL_DIGEST_LEN; i++) {
        d[i] = (how & 1) && hex[i] >= 'a' ? hex[i] - 0x20 : hex[i];
    }

    d[i] = '\0';

    if (how & 2) {
        n = snprintf(out, size, "%sd=%s%s,%sv=%.*s%s%s",
                     (how & 4) ? " " : "", d, (how & 4) ? "\t" : "",
                     (how & 4) ? " " : "", (int) ts_len, ts,
                     (how & 8) ? ",key_id=k-1" : "", (how & 16) ? "," : "");
    } else {
        n = snprintf(out, size, "%sv=%.*s%s,%sd=%s%s%s",
                     (how & 8) ? "sha=x," : "", (int) ts_len, ts,
                     (how & 4) ? " " : "", (how & 4) ? "\t" : "", d,
                     (how & 4) ? " " : "", (how & 16) ? "," : "");
    }

    return (size_t) n;
}


static void
check_round_trip(const u_char *key, size_t key_len, const u_char *body,
    size_t body_len, const u_char *ts, size_t ts_len, uint32_t how)
{
    char                         header[256];
    u_char                       hex[2 * NGX_HTTP_RETELL_DIGEST_LEN];
    u_char                       digest[NGX_HTTP_RETELL_DIGEST_LEN], *copy;
    u_char                      *other;
    size_t                       i, n;
    ngx_http_retell_signature_t  sig;

    FZ_CHECK(ngx_http_retell_signature_sign(key, key_len, body, body_len, ts,
                                            ts_len, hex) == 0, "sign failed");

    ref_hmac(key, key_len, body, body_len, ts, ts_len, digest);

    for (i = 0; i < NGX_HTTP_RETELL_DIGEST_LEN; i++) {
        FZ_CHECK(hex[2 * i] == "0123456789abcdef"[digest[i] >> 4]
                 && hex[2 * i + 1] == "0123456789abcdef"[digest[i] & 0xf],
                 "sign() is not the lower-case hex of the HMAC");
    }

    n = make_header(header, sizeof(header), how, ts, ts_len, hex);
    copy = fz_copy(header, n);

    FZ_CHECK(ngx_http_retell_signature_parse(copy, n, &sig) == 0,
             "a header written from sign() does not parse: %s",
             fz_show(copy, n));
    FZ_CHECK(sig.timestamp_len == ts_len
             && memcmp(sig.timestamp_text, ts, ts_len) == 0,
             "the timestamp does not read back");
    FZ_CHECK(ngx_http_retell_signature_verify(&sig, key, key_len, body,
                                              body_len) == 1,
             "a header written from sign() does not verify");

    /* any other body fails: one byte more (sig points into copy) */

    other = malloc(body_len + 1);
    FZ_CHECK(other != NULL, "malloc");
    memcpy(other, body, body_len);
    other[body_len] = 'x';

    FZ_CHECK(ngx_http_retell_signature_verify(&sig, key, key_len, other,
                                              body_len + 1) == 0,
             "verifies for another body");
    free(other);

    sig.digest[how % NGX_HTTP_RETELL_DIGEST_LEN] ^= 1 << (how >> 8) % 8;
    FZ_CHECK(ngx_http_retell_signature_verify(&sig, key, key_len, body,
                                              body_len) == 0,
             "verifies with a bit of the digest flipped");

    free(copy);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                          ok;
    char                         ts_buf[24];
    u_char                      *header, *key, *body, digest[32];
    size_t                       hlen, klen, blen, i, ts_len, step;
    uint32_t                     hash;
    const u_char                *p, *q, *last, *ts;
    ngx_http_retell_signature_t  sig;

    hash = fz_hash(data, size);

    /* header "\n" key "\n" body */

    last = data + size;
    p = memchr(data, '\n', size);
    p = p ? p : last;
    hlen = p - data;
    q = (p < last) ? memchr(p + 1, '\n', last - p - 1) : NULL;
    q = q ? q : last;
    klen = (p < last) ? (size_t) (q - p - 1) : 0;
    blen = (q < last) ? (size_t) (last - q - 1) : 0;

    header = fz_copy(data, hlen);
    key = fz_copy(p < last ? p + 1 : last, klen);
    body = fz_copy(q < last ? q + 1 : last, blen);

    /* the configuration refuses an empty key */

    if (klen == 0) {
        free(key);
        key = fz_copy("k", 1);
        klen = 1;
    }

    step = (hlen > MAX_PREFIX) ? (hlen - MAX_PREFIX) / 16 + 1 : 1;

    for (i = 0; i <= hlen; i++) {
        if (i <= MAX_PREFIX || i == hlen || i % step == hash % step) {
            check_parse(header, i);
        }
    }

    ts = (const u_char *) ts_buf;
    ts_len = (size_t) snprintf(ts_buf, sizeof(ts_buf), "%llu",
                               (unsigned long long) (hash % 10000000000000ULL));

    if (ngx_http_retell_signature_parse(header, hlen, &sig) == 0) {

        ok = ngx_http_retell_signature_verify(&sig, key, klen, body, blen);
        ref_hmac(key, klen, body, blen, sig.timestamp_text, sig.timestamp_len,
                 digest);

        FZ_CHECK(ok == (memcmp(digest, sig.digest, 32) == 0),
                 "verify() says %d, the HMAC computed here disagrees", ok);

        if (ok) {
            sig.digest[hash % 32] ^= 1 << (hash >> 5) % 8;
            FZ_CHECK(ngx_http_retell_signature_verify(&sig, key, klen, body,
                                                      blen) == 0,
                     "verifies with a bit of the digest flipped");
        }

        check_fresh(&sig);

        ts = sig.timestamp_text;
        ts_len = sig.timestamp_len;
    }

    check_round_trip(key, klen, body, blen, ts, ts_len, hash);

    free(header);
    free(key);
    free(body);

    return 0;
}
