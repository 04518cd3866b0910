
/*
 * Phone numbers (docs/data-and-rules.md): whatever a caller ID or a dialled
 * number looks like, one E.164 form to match and store, and one short
 * form for people to read.
 *
 * Pure logic: standard C only, no allocation; the caller owns the
 * result.  Unit-tested in t/unit/test_phone.c.
 */


#ifndef _NGX_HTTP_RETELL_PHONE_H_INCLUDED_
#define _NGX_HTTP_RETELL_PHONE_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_RETELL_PHONE_E164_LEN     16   /* '+' and at most 15 digits */
#define NGX_HTTP_RETELL_PHONE_DISPLAY_LEN  32


typedef struct {
    char      e164[NGX_HTTP_RETELL_PHONE_E164_LEN + 1];       /* "" when unusable */
    char      display[NGX_HTTP_RETELL_PHONE_DISPLAY_LEN + 1]; /* "" when unusable */
    unsigned  country_code;                                   /* 0 when unusable */
} ngx_http_retell_phone_t;


/*
 * raw need not be NUL-terminated: exactly len bytes are read.  default_cc
 * is the country of national numbers (usually 1) and decides whether a +1
 * number is shown in the national "(555) 123-4567" form.
 */

/* returns 1 when the number is usable (e164 and display filled), 0 when not */
int ngx_http_retell_phone_normalize(const unsigned char *raw, size_t len,
    unsigned default_cc, ngx_http_retell_phone_t *phone);


#endif /* _NGX_HTTP_RETELL_PHONE_H_INCLUDED_ */
