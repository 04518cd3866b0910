
/*
 * Retell webhook signature parsing and HMAC-SHA256 verification.
 */


#include "ngx_http_retell_signature.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
#include <openssl/core_names.h>
#else
#include <openssl/hmac.h>
#endif


static int ngx_http_retell_hex_value(u_char c);
static int ngx_http_retell_hmac(const u_char *key, size_t key_len,
    const u_char *body, size_t body_len, const u_char *timestamp,
    size_t timestamp_len, u_char *digest);


int
ngx_http_retell_signature_parse(const u_char *value, size_t len,
    ngx_http_retell_signature_t *sig)
{
    int            have_v, have_d, hi, lo;
    size_t         i, n;
    const u_char  *p, *last, *item, *end, *eq;

    memset(sig, 0, sizeof(ngx_http_retell_signature_t));

    have_v = 0;
    have_d = 0;

    p = value;
    last = value + len;

    /* comma-separated "k=v" items, order free, spaces around items ignored */

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        item = p;

        while (p < last && *p != ',') {
            p++;
        }

        end = p;

        while (end > item && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }

        if (p < last) {
            p++;    /* the comma */
        }

        /* "key=value": the key is any run of letters, digits, _ or - */

        for (eq = item; eq < end && *eq != '='; eq++) {
            if (!((*eq >= 'a' && *eq <= 'z') || (*eq >= 'A' && *eq <= 'Z')
                  || (*eq >= '0' && *eq <= '9') || *eq == '_' || *eq == '-'))
            {
                return -1;
            }
        }

        if (eq == item || eq == end) {
            return -1;
        }

        if (eq - item != 1) {
            /* unknown items are tolerated: Retell may add some later */
            continue;
        }

        n = end - item - 2;

        switch (item[0]) {

        case 'v':
            if (have_v || n == 0 || n > NGX_HTTP_RETELL_TIMESTAMP_MAX_LEN) {
                return -1;
            }

            sig->timestamp = 0;

            for (i = 0; i < n; i++) {
                if (item[2 + i] < '0' || item[2 + i] > '9') {
                    return -1;
                }

                sig->timestamp = sig->timestamp * 10 + (item[2 + i] - '0');
            }

            sig->timestamp_text = item + 2;
            sig->timestamp_len = n;
            have_v = 1;
            break;

        case 'd':
            if (have_d || n != 2 * NGX_HTTP_RETELL_DIGEST_LEN) {
                return -1;
            }

            for (i = 0; i < NGX_HTTP_RETELL_DIGEST_LEN; i++) {
                hi = ngx_http_retell_hex_value(item[2 + 2 * i]);
                lo = ngx_http_retell_hex_value(item[2 + 2 * i + 1]);

                if (hi < 0 || lo < 0) {
                    return -1;
                }

                sig->digest[i] = (u_char) (hi << 4 | lo);
            }

            have_d = 1;
            break;

        default:
            /* unknown items are tolerated: Retell may add some later */
            break;
        }
    }

    return (have_v && have_d) ? 0 : -1;
}


int
ngx_http_retell_signature_verify(const ngx_http_retell_signature_t *sig,
    const u_char *key, size_t key_len, const u_char *body, size_t body_len)
{
    u_char  digest[NGX_HTTP_RETELL_DIGEST_LEN];

    if (ngx_http_retell_hmac(key, key_len, body, body_len,
                             sig->timestamp_text, sig->timestamp_len, digest)
        != 0)
    {
        return 0;
    }

    /* constant time, so the digest cannot be found byte by byte */
    return CRYPTO_memcmp(digest, sig->digest, NGX_HTTP_RETELL_DIGEST_LEN) == 0;
}


int
ngx_http_retell_signature_fresh(const ngx_http_retell_signature_t *sig,
    uint64_t now, uint64_t tolerance)
{
    uint64_t  delta;

    delta = now > sig->timestamp ? now - sig->timestamp
                                 : sig->timestamp - now;

    return delta <= tolerance;
}


int
ngx_http_retell_signature_sign(const u_char *key, size_t key_len,
    const u_char *body, size_t body_len, const u_char *timestamp,
    size_t timestamp_len, u_char *hex)
{
    size_t  i;
    u_char  digest[NGX_HTTP_RETELL_DIGEST_LEN];

    static const char  xdigits[] = "0123456789abcdef";

    if (ngx_http_retell_hmac(key, key_len, body, body_len, timestamp,
                             timestamp_len, digest)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < NGX_HTTP_RETELL_DIGEST_LEN; i++) {
        hex[2 * i] = xdigits[digest[i] >> 4];
        hex[2 * i + 1] = xdigits[digest[i] & 0xf];
    }

    return 0;
}


static int
ngx_http_retell_hex_value(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)

/* fetched once per process: fetching is a locked table look-up */
static EVP_MAC  *ngx_http_retell_mac;


void
ngx_http_retell_signature_cleanup(void)
{
    EVP_MAC_free(ngx_http_retell_mac);
    ngx_http_retell_mac = NULL;
}


static int
ngx_http_retell_hmac(const u_char *key, size_t key_len, const u_char *body,
    size_t body_len, const u_char *timestamp, size_t timestamp_len,
    u_char *digest)
{
    int            rc;
    size_t         len;
    EVP_MAC_CTX   *ctx;
    OSSL_PARAM     params[2];

    if (ngx_http_retell_mac == NULL) {
        ngx_http_retell_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (ngx_http_retell_mac == NULL) {
            return -1;
        }
    }

    ctx = EVP_MAC_CTX_new(ngx_http_retell_mac);
    if (ctx == NULL) {
        return -1;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    rc = -1;

    if (EVP_MAC_init(ctx, key, key_len, params) == 1
        && EVP_MAC_update(ctx, body, body_len) == 1
        && EVP_MAC_update(ctx, timestamp, timestamp_len) == 1
        && EVP_MAC_final(ctx, digest, &len, NGX_HTTP_RETELL_DIGEST_LEN) == 1
        && len == NGX_HTTP_RETELL_DIGEST_LEN)
    {
        rc = 0;
    }

    EVP_MAC_CTX_free(ctx);

    return rc;
}

#else

void
ngx_http_retell_signature_cleanup(void)
{
}


static int
ngx_http_retell_hmac(const u_char *key, size_t key_len, const u_char *body,
    size_t body_len, const u_char *timestamp, size_t timestamp_len,
    u_char *digest)
{
    int            rc;
    unsigned int   len;
    HMAC_CTX      *ctx;

    ctx = HMAC_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;

    if (HMAC_Init_ex(ctx, key, (int) key_len, EVP_sha256(), NULL) == 1
        && HMAC_Update(ctx, body, body_len) == 1
        && HMAC_Update(ctx, timestamp, timestamp_len) == 1
        && HMAC_Final(ctx, digest, &len) == 1
        && len == NGX_HTTP_RETELL_DIGEST_LEN)
    {
        rc = 0;
    }

    HMAC_CTX_free(ctx);

    return rc;
}

#endif
