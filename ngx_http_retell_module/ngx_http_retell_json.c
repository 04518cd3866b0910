
/*
 * JSON text checks for what PostgreSQL will store, see the header.
 *
 * yajl checks only the shape of UTF-8 sequences (it takes overlong forms,
 * surrogates and code points past U+10FFFF), takes \f and \v for
 * whitespace, and decodes a lone surrogate
 * escape, or a high one followed by any escape, into bytes PostgreSQL
 * refuses; and jsonb refuses numbers its numeric type cannot hold
 * ("1e999999").  The raw body is stored as jsonb too, so the whole body
 * is checked, not only the fields the module reads.
 */


#include "ngx_http_retell_json.h"


/* jsonb's numeric: base-10000 weight within int16, display scale 14 bits */
#define NGX_HTTP_RETELL_NUMERIC_WEIGHT_MAX  (32767 * 4 + 3)
#define NGX_HTTP_RETELL_NUMERIC_DSCALE_MAX  0x3FFF


static size_t ngx_http_retell_json_utf8(const unsigned char *p, size_t len);
static int ngx_http_retell_json_hex4(const unsigned char *p, unsigned *v);


int
ngx_http_retell_json_check_text(const unsigned char *p, size_t len,
    const char **why)
{
    int                   in_string, high;
    size_t                n;
    unsigned              u;
    const unsigned char  *last;

    last = p + len;
    in_string = 0;
    high = 0;          /* a high surrogate escape waits for its low one */

    while (p < last) {

        if (*p >= 0x80) {
            n = ngx_http_retell_json_utf8(p, last - p);

            if (n == 0) {
                *why = "body is not valid UTF-8";
                return -1;
            }

            if (high) {
                goto unpaired;
            }

            p += n;
            continue;
        }

        if (!in_string) {

            /* yajl also takes \f and \v between tokens; JSON does not */

            if (*p < 0x20 && *p != ' ' && *p != '\t' && *p != '\n'
                && *p != '\r')
            {
                *why = "body is not valid JSON";
                return -1;
            }

            in_string = (*p == '"');
            p++;
            continue;
        }

        if (*p == '\\' && last - p >= 6 && p[1] == 'u'
            && ngx_http_retell_json_hex4(p + 2, &u))
        {
            if (u >= 0xDC00 && u <= 0xDFFF) {
                if (!high) {
                    goto unpaired;
                }

                high = 0;

            } else if (high) {
                goto unpaired;

            } else if (u >= 0xD800 && u <= 0xDBFF) {
                high = 1;
            }

            p += 6;
            continue;
        }

        if (high) {
            goto unpaired;
        }

        if (*p == '\\') {
            /* the escaped byte is yajl's to check; it cannot end a string */
            p += (last - p >= 2) ? 2 : 1;
            continue;
        }

        if (*p == '"') {
            in_string = 0;
        }

        p++;
    }

    if (high) {
        goto unpaired;
    }

    return 0;

unpaired:

    *why = "body has a \\u surrogate escape without its pair";
    return -1;
}


/* the length of one well-formed UTF-8 sequence (Unicode table 3-7), or 0 */

static size_t
ngx_http_retell_json_utf8(const unsigned char *p, size_t len)
{
    size_t         n, i;
    unsigned char  lo, hi;

    lo = 0x80;
    hi = 0xBF;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;

    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;

        if (p[0] == 0xE0) {
            lo = 0xA0;                      /* no overlong forms */

        } else if (p[0] == 0xED) {
            hi = 0x9F;                      /* no surrogates */
        }

    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;

        if (p[0] == 0xF0) {
            lo = 0x90;

        } else if (p[0] == 0xF4) {
            hi = 0x8F;                      /* nothing past U+10FFFF */
        }

    } else {
        return 0;                           /* 80-C1, F5-FF */
    }

    if (len < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }

    return n;
}


static int
ngx_http_retell_json_hex4(const unsigned char *p, unsigned *v)
{
    size_t    i;
    unsigned  c;

    *v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;

        } else if (c >= 'A' && c <= 'F') {
            c -= 'A' - 10;

        } else {
            return 0;
        }

        *v = *v << 4 | c;
    }

    return 1;
}


/*
 * The number as PostgreSQL's numeric input sees it: the decimal weight of
 * its first significant digit and its display scale, after the exponent.
 * The text is JSON's grammar, which yajl has checked.
 */

int
ngx_http_retell_json_check_number(const unsigned char *p, size_t len)
{
    long                  weight, scale, exp, int_digits, frac_digits,
                          frac_zeros;
    int                   nonzero, negative;
    const unsigned char  *last;

    last = p + len;

    if (p < last && *p == '-') {
        p++;
    }

    int_digits = 0;
    frac_digits = 0;
    frac_zeros = 0;
    nonzero = 0;

    while (p < last && *p == '0') {
        p++;
    }

    while (p < last && *p >= '0' && *p <= '9') {
        int_digits++;
        nonzero = 1;
        p++;
    }

    if (p < last && *p == '.') {
        p++;

        while (p < last && *p >= '0' && *p <= '9') {
            if (*p != '0') {
                nonzero = 1;

            } else if (!nonzero) {
                frac_zeros++;
            }

            frac_digits++;
            p++;
        }
    }

    exp = 0;

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;
        negative = 0;

        if (p < last && (*p == '+' || *p == '-')) {
            negative = (*p == '-');
            p++;
        }

        while (p < last && *p == '0') {
            p++;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            if (exp > 100000000) {
                return -1;                  /* far past every bound */
            }

            exp = exp * 10 + (*p - '0');
            p++;
        }

        if (negative) {
            exp = -exp;
        }
    }

    scale = frac_digits - exp;

    if (scale > NGX_HTTP_RETELL_NUMERIC_DSCALE_MAX) {
        return -1;
    }

    if (!nonzero) {
        return 0;                           /* zero has no weight */
    }

    weight = (int_digits ? int_digits - 1 : -(frac_zeros + 1)) + exp;

    return weight > NGX_HTTP_RETELL_NUMERIC_WEIGHT_MAX ? -1 : 0;
}


int
ngx_http_retell_json_check_end(const unsigned char *p, size_t len)
{
    size_t    i;
    unsigned  depth, string;

    depth = 0;
    string = 0;

    for (i = 0; i < len; i++) {

        if (string) {
            if (p[i] == '\\') {
                i++;

            } else if (p[i] == '"') {
                string = 0;

                if (depth == 0) {
                    i++;
                    break;          /* a lone string: the value */
                }
            }

            continue;
        }

        switch (p[i]) {

        case '"':
            string = 1;
            break;

        case '{':
        case '[':
            depth++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return -1;
            }

            if (--depth == 0) {
                i++;
                goto value_end;
            }

            break;

        default:
            break;
        }
    }

value_end:

    for ( /* void */ ; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') {
            return -1;
        }
    }

    return (string || depth) ? -1 : 0;
}
