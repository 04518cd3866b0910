
/*
 * libFuzzer harness: ngx_http_retell_phone_normalize().  The first byte
 * picks the default country, the rest is the raw number (an exact-size
 * copy, no NUL after it).
 *
 *   - every field written, unusable means all empty and 0;
 *   - a usable number is "+" and 8 to 15 digits starting with its country
 *     code, a NANP one a valid NANP number, and its display form the one
 *     docs/data-and-rules.md gives;
 *   - the E.164 form is a fixed point, whatever the default country, and
 *     the display form reads back to it;
 *   - one number, one E.164 form: a national number gives what its
 *     international form gives.  The trunk 0 goes, except where it is
 *     part of the number (docs/decisions.md: 39, 379, 378, 225); NANP
 *     has none ("06 1234 5678" with 39 is "+39 06 1234 5678", S2).
 */


#include "fuzz.h"
#include "ngx_http_retell_phone.h"


static const unsigned  countries[] = {
    1, 44, 49, 7, 33, 39, 353, 0, 999, 1000, 65535, 378, 225
};

#define NCOUNTRIES  (sizeof(countries) / sizeof(countries[0]))


static int
keeps_zero(unsigned cc)
{
    return cc == 39 || cc == 379 || cc == 378 || cc == 225;
}


static int
normalize(const u_char *raw, size_t len, unsigned cc,
    ngx_http_retell_phone_t *ph)
{
    int      rc;
    u_char  *copy;

    copy = fz_copy(raw, len);

    /* garbage first, so that a field left unwritten shows */
    memset(ph, 'x', sizeof(ngx_http_retell_phone_t));

    rc = ngx_http_retell_phone_normalize(copy, len, cc, ph);
    free(copy);

    return rc;
}


static void
check_result(const u_char *raw, size_t len, unsigned cc, int rc,
    const ngx_http_retell_phone_t *ph)
{
    char          want[64];
    size_t        n, i, cc_len;
    const char   *e, *nat;

    FZ_CHECK(rc == 0 || rc == 1, "rc %d", rc);
    FZ_CHECK(memchr(ph->e164, '\0', sizeof(ph->e164)) != NULL
             && memchr(ph->display, '\0', sizeof(ph->display)) != NULL,
             "e164 or display not terminated");

    if (rc == 0) {
        FZ_CHECK(ph->e164[0] == '\0' && ph->display[0] == '\0'
                 && ph->country_code == 0,
                 "unusable \"%s\" with \"%s\" \"%s\" %u",
                 fz_show(raw, len), ph->e164, ph->display,
                 ph->country_code);
        return;
    }

    e = ph->e164;
    n = strlen(e);

    FZ_CHECK(e[0] == '+' && n >= 9 && n <= 16 && e[1] >= '1' && e[1] <= '9'
             && strspn(e + 1, "0123456789") == n - 1,
             "\"%s\" gives e164 \"%s\"", fz_show(raw, len), e);

    snprintf(want, sizeof(want), "+%u", ph->country_code);
    cc_len = strlen(want) - 1;

    FZ_CHECK(ph->country_code >= 1 && ph->country_code <= 999
             && strncmp(e, want, cc_len + 1) == 0,
             "country code %u for \"%s\"", ph->country_code, e);

    nat = e + 1 + cc_len;

    if (ph->country_code == 1) {
        FZ_CHECK(n == 12 && nat[0] >= '2', "not a NANP number: %s", e);

        if (cc == 1) {
            snprintf(want, sizeof(want), "(%.3s) %.3s-%.4s", nat, nat + 3,
                     nat + 6);
        } else {
            snprintf(want, sizeof(want), "+1 %.3s-%.3s-%.4s", nat, nat + 3,
                     nat + 6);
        }

    } else {
        snprintf(want, sizeof(want), "+%u %s", ph->country_code, nat);
    }

    FZ_CHECK(strcmp(ph->display, want) == 0, "display \"%s\" for %s with "
             "default %u, want \"%s\"", ph->display, e, cc, want);

    for (i = 0; i < n; i++) {
        FZ_CHECK(e[i] != '\0', "NUL in e164");
    }
}


/* the same E.164 form from another writing of the number */

static void
check_same(const char *what, const u_char *raw, size_t len, unsigned cc,
    const ngx_http_retell_phone_t *ph, const char *other, unsigned other_cc)
{
    int                      rc;
    ngx_http_retell_phone_t  ph2;

    rc = normalize((const u_char *) other, strlen(other), other_cc, &ph2);
    check_result((const u_char *) other, strlen(other), other_cc, rc, &ph2);

    FZ_CHECK(rc == 1 && strcmp(ph2.e164, ph->e164) == 0,
             "%s: \"%s\" with default %u gives %s, \"%s\" with default %u "
             "gives %s", what, fz_show(raw, len), cc, ph->e164, other,
             other_cc, rc ? ph2.e164 : "unusable");
}


/*
 * S2: a national number, written as digits and separators only, against
 * its international form.  Brackets are left out: "(0)" is a rule of its
 * own, and the one case where either may be unusable for a good reason.
 */

static void
check_national(const u_char *raw, size_t len, unsigned cc,
    const ngx_http_retell_phone_t *ph)
{
    int                      rc;
    char                     digits[64], intl[80];
    size_t                   i, n;
    ngx_http_retell_phone_t  ph2;

    if (cc != 1 && cc != 44 && cc != 49 && cc != 7 && cc != 33 && cc != 39
        && cc != 353 && cc != 378 && cc != 225)
    {
        return;
    }

    n = 0;

    for (i = 0; i < len; i++) {
        if (raw[i] >= '0' && raw[i] <= '9') {
            if (n == sizeof(digits) - 1) {
                return;
            }

            digits[n++] = raw[i];

        } else if (strchr(" \t-.", raw[i]) == NULL || raw[i] == '\0') {
            return;
        }
    }

    digits[n] = '\0';

    if (n < 2 || (digits[0] == '0' && digits[1] == '0')) {
        return;                 /* "00": international already */
    }

    if (cc == 1) {
        snprintf(intl, sizeof(intl), "+%s%s",
                 (n == 11 && digits[0] == '1') ? "" : "1", digits);

    } else if (digits[0] == '0' && !keeps_zero(cc)) {
        snprintf(intl, sizeof(intl), "+%u %s", cc, digits + 1);

    } else {
        snprintf(intl, sizeof(intl), "+%u %s", cc, digits);
    }

    rc = normalize((const u_char *) intl, strlen(intl), cc, &ph2);

    FZ_CHECK(rc == (ph->e164[0] != '\0')
             && strcmp(ph2.e164, ph->e164) == 0,
             "S2: national \"%s\" with default %u gives %s, its "
             "international form \"%s\" gives %s", fz_show(raw, len), cc,
             ph->e164[0] ? ph->e164 : "unusable", intl,
             rc ? ph2.e164 : "unusable");
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc;
    unsigned                 cc;
    ngx_http_retell_phone_t  ph;

    if (size == 0) {
        return 0;
    }

    cc = countries[data[0] % NCOUNTRIES];
    data++;
    size--;

    rc = normalize(data, size, cc, &ph);
    check_result(data, size, cc, rc, &ph);

    if (rc == 1) {
        check_same("e164 with the same default", data, size, cc, &ph,
                   ph.e164, cc);
        check_same("e164 with default 44", data, size, cc, &ph, ph.e164, 44);
        check_same("display read back", data, size, cc, &ph, ph.display, cc);
    }

    check_national(data, size, cc, &ph);

    return 0;
}
