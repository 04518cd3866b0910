
/*
 * Phone number normalisation of docs/data-and-rules.md, case by case.
 *
 * Every input is copied into a heap buffer of exactly its length, with no
 * terminating NUL, so that valgrind sees any read past the end.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_retell_phone.h"


/* a string literal and its length, NUL bytes inside included */
#define S(s)  (s), sizeof(s) - 1


typedef struct {
    const char  *in;
    size_t       len;
    unsigned     default_cc;
    int          usable;
    const char  *e164;
    const char  *display;
    unsigned     cc;
} phone_case_t;


static const phone_case_t  cases[] = {

    /* the numbers of the sample events */
    { S("+1 (415) 555-0134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("+14155550100"), 1, 1, "+14155550100", "(415) 555-0100", 1 },
    { S("650.555.0172"), 1, 1, "+16505550172", "(650) 555-0172", 1 },
    { S("+1-510-555-0148"), 1, 1, "+15105550148", "(510) 555-0148", 1 },
    { S("+44 20 7946 0321"), 1, 1, "+442079460321", "+44 2079460321", 44 },
    { S("anonymous"), 1, 0, "", "", 0 },

    /* NANP national forms */
    { S("4155550134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("(415) 555-0134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("415\t555\t0134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("14155550134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("1 (415) 555-0134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("1-800-555-0199"), 1, 1, "+18005550199", "(800) 555-0199", 1 },
    { S("  +1 415 555 0134  "), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("+ 1 415 555 0134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },

    /* NANP numbers of the wrong length or shape */
    { S("415555013"), 1, 0, "", "", 0 },
    { S("+1415555013"), 1, 0, "", "", 0 },
    { S("+141555501345"), 1, 0, "", "", 0 },
    { S("24155550134"), 1, 0, "", "", 0 },
    { S("1415555013"), 1, 0, "", "", 0 },
    { S("11234567890"), 1, 0, "", "", 0 },
    { S("+1 (123) 555-0134"), 1, 0, "", "", 0 },
    { S("04155550134"), 1, 0, "", "", 0 },

    /* the 00 international prefix */
    { S("0014155550134"), 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { S("00442079460321"), 1, 1, "+442079460321", "+44 2079460321", 44 },
    { S("0044 20 7946 0321"), 44, 1, "+442079460321", "+44 2079460321",
      44 },
    { S("+0044 20 7946 0321"), 1, 0, "", "", 0 },

    /* national numbers outside NANP */
    { S("020 7946 0321"), 44, 1, "+442079460321", "+44 2079460321", 44 },
    { S("2079460321"), 44, 1, "+442079460321", "+44 2079460321", 44 },
    { S("020 7946 0321"), 1, 0, "", "", 0 },
    { S("+44 (0)20 7946 0321"), 1, 1, "+442079460321", "+44 2079460321",
      44 },
    { S("030 123456"), 49, 1, "+4930123456", "+49 30123456", 49 },

    /*
     * where the leading 0 belongs to the number (Italy, San Marino, the
     * Vatican, Côte d'Ivoire) it is kept: one number, one E.164 form
     */
    { S("06 1234 5678"), 39, 1, "+390612345678", "+39 0612345678", 39 },
    { S("+39 06 1234 5678"), 1, 1, "+390612345678", "+39 0612345678", 39 },
    { S("0039 06 1234 5678"), 44, 1, "+390612345678", "+39 0612345678", 39 },
    { S("+39 (0)6 1234 5678"), 1, 1, "+390612345678", "+39 0612345678", 39 },
    { S("(0)6 1234 5678"), 39, 1, "+390612345678", "+39 0612345678", 39 },
    { S("333 123 4567"), 39, 1, "+393331234567", "+39 3331234567", 39 },
    { S("0549 123456"), 378, 1, "+3780549123456", "+378 0549123456", 378 },
    { S("07 07 12 34 56"), 225, 1, "+2250707123456", "+225 0707123456", 225 },
    /* elsewhere the trunk 0 goes, written or bracketed */
    { S("+49 (0)30 123456"), 1, 1, "+4930123456", "+49 30123456", 49 },

    /* NANP has no trunk prefix: a national number never starts with 0 */
    { S("0415 555 0134"), 1, 0, "", "", 0 },
    { S("2079460321"), 999, 0, "", "", 0 },
    { S("2079460321"), 0, 0, "", "", 0 },

    /* display of a +1 number depends on the default country */
    { S("+1 (415) 555-0134"), 44, 1, "+14155550134", "+1 415-555-0134", 1 },
    { S("+14155550100"), 49, 1, "+14155550100", "+1 415-555-0100", 1 },

    /* one-, two- and three-digit country codes */
    { S("+7 495 123-45-67"), 1, 1, "+74951234567", "+7 4951234567", 7 },
    { S("+49 30 123456"), 1, 1, "+4930123456", "+49 30123456", 49 },
    { S("+353 1 234 5678"), 1, 1, "+35312345678", "+353 12345678", 353 },
    { S("+383 44 123 456"), 1, 1, "+38344123456", "+383 44123456", 383 },
    { S("+800 1234 5678"), 1, 1, "+80012345678", "+800 12345678", 800 },
    { S("(+44) 20 7946 0321"), 1, 1, "+442079460321", "+44 2079460321",
      44 },

    /* unassigned country codes */
    { S("+999 123 456 7890"), 1, 0, "", "", 0 },
    { S("+9991234567"), 1, 0, "", "", 0 },
    { S("+28 1234 56789"), 1, 0, "", "", 0 },
    { S("+210 123 45678"), 1, 0, "", "", 0 },

    /* total length: 8 to 15 digits */
    { S("+4412345"), 1, 0, "", "", 0 },
    { S("+44123456"), 1, 1, "+44123456", "+44 123456", 44 },
    { S("+441234567890123"), 1, 1, "+441234567890123",
      "+44 1234567890123", 44 },
    { S("+4412345678901234"), 1, 0, "", "", 0 },
    { S("004412345678901234"), 1, 0, "", "", 0 },
    { S("12345"), 1, 0, "", "", 0 },
    { S("123456789012345678901234567890"), 1, 0, "", "", 0 },

    /* nothing there */
    { S(""), 1, 0, "", "", 0 },
    { S("   "), 1, 0, "", "", 0 },
    { S(" \t-.()"), 1, 0, "", "", 0 },
    { S("+"), 1, 0, "", "", 0 },
    { S("0"), 1, 0, "", "", 0 },
    { S("00"), 1, 0, "", "", 0 },

    /* not phone numbers */
    { S("unknown"), 1, 0, "", "", 0 },
    { S("restricted"), 1, 0, "", "", 0 },
    { S("private"), 1, 0, "", "", 0 },
    { S("Anonymous"), 1, 0, "", "", 0 },
    { S("415-555-CALL"), 1, 0, "", "", 0 },
    { S("sip:+14155550100@sip.example.com"), 1, 0, "", "", 0 },
    { S("sip:123@host"), 1, 0, "", "", 0 },
    { S("+1 415 555 0134 ext. 12"), 1, 0, "", "", 0 },
    { S("+1 415 555 0134\n"), 1, 0, "", "", 0 },
    { S("+1\xc2\xa0" "415 555 0134"), 1, 0, "", "", 0 },

    /* '+' only once and only in front */
    { S("++14155550134"), 1, 0, "", "", 0 },
    { S("1+4155550134"), 1, 0, "", "", 0 },
    { S("+1415+5550134"), 1, 0, "", "", 0 },
    { S("4155550134+"), 1, 0, "", "", 0 },

    /* the length bounds the input, not a NUL */
    { S("+1415\0" "5550134"), 1, 0, "", "", 0 },
    { S("+14155550134\0"), 1, 0, "", "", 0 },
    { "+14155550134999", 12, 1, 1, "+14155550134", "(415) 555-0134", 1 },
    { "+14155550134999", 11, 1, 0, "", "", 0 },

    { NULL, 0, 0, 0, NULL, NULL, 0 }
};


static void
print_input(const char *in, size_t len)
{
    size_t         i;
    unsigned char  c;

    putchar('"');

    for (i = 0; i < len; i++) {
        c = (unsigned char) in[i];

        if (c == '"' || c == '\\') {
            printf("\\%c", c);

        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\x%02x", c);

        } else {
            putchar(c);
        }
    }

    putchar('"');
}


int
main(void)
{
    int                       usable, ok;
    unsigned                  passed, failed;
    unsigned char            *buf;
    const phone_case_t       *c;
    ngx_http_retell_phone_t   phone;

    passed = 0;
    failed = 0;

    for (c = cases; c->in; c++) {

        /* exactly len bytes, not terminated; malloc(0) may return NULL */

        buf = malloc(c->len ? c->len : 1);
        if (buf == NULL) {
            perror("malloc");
            return 2;
        }

        memcpy(buf, c->in, c->len);

        /* garbage in the result, to see that every field is written */
        memset(&phone, 'x', sizeof(phone));

        usable = ngx_http_retell_phone_normalize(buf, c->len, c->default_cc,
                                                 &phone);
        free(buf);

        ok = usable == c->usable
             && memchr(phone.e164, '\0', sizeof(phone.e164)) != NULL
             && memchr(phone.display, '\0', sizeof(phone.display)) != NULL
             && strcmp(phone.e164, c->e164) == 0
             && strcmp(phone.display, c->display) == 0
             && phone.country_code == c->cc;

        if (ok) {
            passed++;
            continue;
        }

        failed++;

        printf("FAIL case %u: ", (unsigned) (c - cases) + 1);
        print_input(c->in, c->len);

        phone.e164[sizeof(phone.e164) - 1] = '\0';
        phone.display[sizeof(phone.display) - 1] = '\0';

        printf(" cc %u: got %d \"%s\" \"%s\" %u, want %d \"%s\" \"%s\" %u\n",
               c->default_cc, usable, phone.e164, phone.display,
               phone.country_code, c->usable, c->e164, c->display, c->cc);
    }

    printf("%u passed, %u failed\n", passed, failed);

    return failed ? 1 : 0;
}
