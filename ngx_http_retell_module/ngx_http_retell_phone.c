
/*
 * Phone number normalisation to E.164 and display (docs/data-and-rules.md).
 *
 * A number that cannot be read with certainty is reported unusable rather
 * than guessed at: a wrong number on a ticket is worse than none.
 */


#include "ngx_http_retell_phone.h"

#include <stdlib.h>
#include <string.h>


#define NGX_HTTP_RETELL_PHONE_MIN_DIGITS  8
#define NGX_HTTP_RETELL_PHONE_MAX_DIGITS  15

/* the most digits worth reading: "00" and a full 15-digit number */
#define NGX_HTTP_RETELL_PHONE_RAW_DIGITS  (NGX_HTTP_RETELL_PHONE_MAX_DIGITS + 2)

#define NGX_HTTP_RETELL_PHONE_NANP_LEN    10


static int ngx_http_retell_phone_cmp(const void *a, const void *b);
static int ngx_http_retell_phone_assigned(unsigned cc);
static int ngx_http_retell_phone_keeps_zero(unsigned cc);
static size_t ngx_http_retell_phone_split(const unsigned char *d, size_t n,
    unsigned *cc);
static int ngx_http_retell_phone_nanp(const unsigned char *d, size_t n);
static char *ngx_http_retell_phone_copy(char *p, const unsigned char *d,
    size_t n);


/*
 * ITU-T E.164 assigned country calling codes (the list annexed to the ITU
 * Operational Bulletin), including the global services such as 800 and
 * 882.  Spare and reserved codes are left out, so a number in them is
 * unusable.  The codes are prefix-free: no code begins another one.
 */

static const unsigned short  ngx_http_retell_phone_codes[] = {
    1, 7,
    20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49,
    51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66,
    81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,

    211, 212, 213, 216, 218,
    220, 221, 222, 223, 224, 225, 226, 227, 228, 229,
    230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249,
    250, 251, 252, 253, 254, 255, 256, 257, 258,
    260, 261, 262, 263, 264, 265, 266, 267, 268, 269,
    290, 291, 297, 298, 299,

    350, 351, 352, 353, 354, 355, 356, 357, 358, 359,
    370, 371, 372, 373, 374, 375, 376, 377, 378, 379,
    380, 381, 382, 383, 385, 386, 387, 389,
    420, 421, 423,

    500, 501, 502, 503, 504, 505, 506, 507, 508, 509,
    590, 591, 592, 593, 594, 595, 596, 597, 598, 599,

    670, 672, 673, 674, 675, 676, 677, 678, 679,
    680, 681, 682, 683, 685, 686, 687, 688, 689,
    690, 691, 692,

    800, 808, 850, 852, 853, 855, 856, 870, 878,
    880, 881, 882, 883, 886, 888,

    960, 961, 962, 963, 964, 965, 966, 967, 968,
    970, 971, 972, 973, 974, 975, 976, 977, 979,
    992, 993, 994, 995, 996, 998
};

#define NGX_HTTP_RETELL_PHONE_NCODES                                          \
    (sizeof(ngx_http_retell_phone_codes)                                      \
     / sizeof(ngx_http_retell_phone_codes[0]))


int
ngx_http_retell_phone_normalize(const unsigned char *raw, size_t len,
    unsigned default_cc, ngx_http_retell_phone_t *phone)
{
    int                   plus;
    char                 *p;
    size_t                i, n, cc_len, nat_len, zero_at;
    unsigned              cc, v;
    unsigned char         c, digits[NGX_HTTP_RETELL_PHONE_RAW_DIGITS];
    unsigned char         nat[NGX_HTTP_RETELL_PHONE_RAW_DIGITS + 1];
    unsigned char         ccd[3];
    const unsigned char  *d;

    memset(phone, 0, sizeof(ngx_http_retell_phone_t));

    /* keep the digits; a '+' counts only before the first digit */

    plus = 0;
    n = 0;
    zero_at = (size_t) -1;

    for (i = 0; i < len; i++) {
        c = raw[i];

        if (c >= '0' && c <= '9') {
            if (n == NGX_HTTP_RETELL_PHONE_RAW_DIGITS) {
                return 0;
            }

            digits[n++] = c;
            continue;
        }

        switch (c) {

        case ' ':
        case '\t':
        case '-':
        case '.':
        case ')':
            break;

        case '(':
            /*
             * "+44 (0)20 7946 0321": the bracketed trunk 0 is not dialled
             * from abroad, and keeping it would give a wrong number
             */

            if (len - i >= 3 && raw[i + 1] == '0' && raw[i + 2] == ')') {
                zero_at = n;        /* unless the country keeps it */
                i += 2;
            }

            break;

        case '+':
            if (plus || n) {
                return 0;
            }

            plus = 1;
            break;

        default:
            /* letters, "sip:...@host", "anonymous", NUL, non-ASCII */
            return 0;
        }
    }

    d = digits;

    if (plus || (n >= 2 && d[0] == '0' && d[1] == '0')) {

        /* international: the digits start with the country code */

        if (!plus) {
            d += 2;
            n -= 2;
        }

        cc_len = ngx_http_retell_phone_split(d, n, &cc);
        if (cc_len == 0) {
            return 0;
        }

        d += cc_len;
        nat_len = n - cc_len;

    } else {

        /* national: the default country code is implied */

        if (!ngx_http_retell_phone_assigned(default_cc)) {
            return 0;
        }

        cc = default_cc;

        /* NANP has no trunk prefix: a leading 1 there is the country code */

        if (cc == 1) {
            if (n == NGX_HTTP_RETELL_PHONE_NANP_LEN + 1 && d[0] == '1') {
                d++;
                n--;
            }

        } else if (n && d[0] == '0'
                   && !ngx_http_retell_phone_keeps_zero(cc))
        {
            /* the trunk prefix, not dialled from abroad */
            d++;
            n--;
        }

        cc_len = 0;

        for (v = cc; v; v /= 10) {
            cc_len++;
        }

        nat_len = n;
    }

    /* "+39 (0)6 ...": where the 0 is part of the number, it stays */

    if (zero_at == (size_t) (d - digits) && ngx_http_retell_phone_keeps_zero(cc)
        && nat_len < NGX_HTTP_RETELL_PHONE_RAW_DIGITS)
    {
        nat[0] = '0';
        memcpy(nat + 1, d, nat_len);
        d = nat;
        nat_len++;
    }

    if (cc_len + nat_len < NGX_HTTP_RETELL_PHONE_MIN_DIGITS
        || cc_len + nat_len > NGX_HTTP_RETELL_PHONE_MAX_DIGITS)
    {
        return 0;
    }

    if (cc == 1 && !ngx_http_retell_phone_nanp(d, nat_len)) {
        return 0;
    }

    for (i = cc_len, v = cc; i; v /= 10) {
        ccd[--i] = (unsigned char) ('0' + v % 10);
    }

    /* both forms fit: at most 15 digits and a few separators */

    p = phone->e164;
    *p++ = '+';
    p = ngx_http_retell_phone_copy(p, ccd, cc_len);
    p = ngx_http_retell_phone_copy(p, d, nat_len);
    *p = '\0';

    p = phone->display;

    if (cc == 1) {
        if (default_cc == 1) {
            *p++ = '(';
            p = ngx_http_retell_phone_copy(p, d, 3);
            *p++ = ')';
            *p++ = ' ';

        } else {
            p = ngx_http_retell_phone_copy(p, (const unsigned char *) "+1 ",
                                           3);
            p = ngx_http_retell_phone_copy(p, d, 3);
            *p++ = '-';
        }

        p = ngx_http_retell_phone_copy(p, d + 3, 3);
        *p++ = '-';
        p = ngx_http_retell_phone_copy(p, d + 6, 4);

    } else {
        *p++ = '+';
        p = ngx_http_retell_phone_copy(p, ccd, cc_len);
        *p++ = ' ';
        p = ngx_http_retell_phone_copy(p, d, nat_len);
    }

    *p = '\0';

    phone->country_code = cc;

    return 1;
}


static int
ngx_http_retell_phone_cmp(const void *a, const void *b)
{
    return (int) *(const unsigned short *) a
           - (int) *(const unsigned short *) b;
}


/*
 * Countries whose numbers keep their leading 0 in international form, so
 * that it is no trunk prefix: Italy and the Vatican (+39 06 ...), San
 * Marino (+378 0549 ...), Côte d'Ivoire since 2021 (+225 07 ...).
 */

static int
ngx_http_retell_phone_keeps_zero(unsigned cc)
{
    return cc == 39 || cc == 378 || cc == 379 || cc == 225;
}


static int
ngx_http_retell_phone_assigned(unsigned cc)
{
    unsigned short  key;

    if (cc == 0 || cc > 999) {
        return 0;
    }

    key = (unsigned short) cc;

    return bsearch(&key, ngx_http_retell_phone_codes,
                   NGX_HTTP_RETELL_PHONE_NCODES,
                   sizeof(ngx_http_retell_phone_codes[0]),
                   ngx_http_retell_phone_cmp)
           != NULL;
}


/*
 * The length of the country code the digits start with, 0 when they do
 * not start with an assigned one.  As the codes are prefix-free, the
 * shortest match is the only one.
 */

static size_t
ngx_http_retell_phone_split(const unsigned char *d, size_t n, unsigned *cc)
{
    size_t    i;
    unsigned  v;

    /* no code starts with 0, and "0" + "7" must not read as code 7 */

    if (n == 0 || d[0] == '0') {
        return 0;
    }

    v = 0;

    for (i = 0; i < 3 && i < n; i++) {
        v = v * 10 + (d[i] - '0');

        if (ngx_http_retell_phone_assigned(v)) {
            *cc = v;
            return i + 1;
        }
    }

    return 0;
}


/*
 * A NANP national number: 10 digits, the area code not starting with 0
 * or 1 (those are trunk and operator prefixes, never area codes, so a
 * 10-digit "1..." is an 11-digit number missing a digit).
 */

static int
ngx_http_retell_phone_nanp(const unsigned char *d, size_t n)
{
    return n == NGX_HTTP_RETELL_PHONE_NANP_LEN && d[0] >= '2';
}


static char *
ngx_http_retell_phone_copy(char *p, const unsigned char *d, size_t n)
{
    memcpy(p, d, n);

    return p + n;
}
