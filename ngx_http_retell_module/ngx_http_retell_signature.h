
/*
 * Retell webhook signatures: "X-Retell-Signature: v=<unix ms>,d=<hex>",
 * where <hex> is HMAC-SHA256(api key, raw body || decimal timestamp).
 *
 * Pure logic: no nginx event code, unit-tested in t/unit/test_signature.c.
 */


#ifndef _NGX_HTTP_RETELL_SIGNATURE_H_INCLUDED_
#define _NGX_HTTP_RETELL_SIGNATURE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_RETELL_DIGEST_LEN         32
/* unix milliseconds stay below 10^16 for the next 300,000 years */
#define NGX_HTTP_RETELL_TIMESTAMP_MAX_LEN  16


typedef struct {
    uint64_t       timestamp;          /* unix ms, "v=" */
    const u_char  *timestamp_text;     /* digits exactly as sent */
    size_t         timestamp_len;
    u_char         digest[NGX_HTTP_RETELL_DIGEST_LEN];   /* "d=", decoded */
} ngx_http_retell_signature_t;


/* 0 on success, -1 when the header is malformed */
int ngx_http_retell_signature_parse(const u_char *value, size_t len,
    ngx_http_retell_signature_t *sig);

/* 1 when the digest matches HMAC-SHA256(key, body || timestamp), else 0 */
int ngx_http_retell_signature_verify(const ngx_http_retell_signature_t *sig,
    const u_char *key, size_t key_len, const u_char *body, size_t body_len);

/* 1 when |now - timestamp| <= tolerance (all in ms), else 0 */
int ngx_http_retell_signature_fresh(const ngx_http_retell_signature_t *sig,
    uint64_t now, uint64_t tolerance);

/* frees what verification keeps for the process's lifetime */
void ngx_http_retell_signature_cleanup(void);

/* writes the lower-case hex of the HMAC into hex (64 bytes); 0 or -1 */
int ngx_http_retell_signature_sign(const u_char *key, size_t key_len,
    const u_char *body, size_t body_len, const u_char *timestamp,
    size_t timestamp_len, u_char *hex);


#endif /* _NGX_HTTP_RETELL_SIGNATURE_H_INCLUDED_ */
