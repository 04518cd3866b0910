
/*
 * A base64 decoder for the tests of the mail formatter (t/unit/test_mail.c
 * and t/fuzz/fuzz_mail.c): an oracle of their own, so that an encoder
 * bug is not hidden by decoding with the same code.
 */


#ifndef _RETELL_TEST_BASE64_H_INCLUDED_
#define _RETELL_TEST_BASE64_H_INCLUDED_


#include <stddef.h>


static int
b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    return c == '+' ? 62 : c == '/' ? 63 : -1;
}


/* base64 text into out, the byte count; -1 when it is not base64 */

static long
b64_decode(const char *in, size_t len, void *out)
{
    int             v, pad;
    long            n;
    size_t          i;
    unsigned char  *o;
    unsigned long   acc;

    if (len % 4) {
        return -1;
    }

    o = out;
    n = 0;

    for (i = 0; i < len; i += 4) {
        acc = 0;
        pad = 0;

        for (v = 0; v < 4; v++) {
            if (in[i + v] == '=') {
                if (i + 4 != len || v < 2 || (v == 2 && in[i + 3] != '=')) {
                    return -1;
                }

                pad++;
                acc <<= 6;
                continue;
            }

            if (b64_value((unsigned char) in[i + v]) < 0) {
                return -1;
            }

            acc = acc << 6 | b64_value((unsigned char) in[i + v]);
        }

        o[n++] = (unsigned char) (acc >> 16);

        if (pad < 2) {
            o[n++] = (unsigned char) (acc >> 8);
        }

        if (pad < 1) {
            o[n++] = (unsigned char) acc;
        }
    }

    return n;
}


#endif /* _RETELL_TEST_BASE64_H_INCLUDED_ */
