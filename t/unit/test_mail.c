
/*
 * The notification email of docs/email.md: the message is taken apart
 * again here, with a quoted-printable and an RFC 2047 decoder of its own,
 * and checked line by line.
 *
 * Every input string is copied into a heap buffer of exactly its length,
 * and every allocation the formatter makes is its own malloc() of exactly
 * the size asked for, so that valgrind sees any read or write past an end.
 */


#define _GNU_SOURCE     /* memmem() */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "unit.h"
#include "base64.h"
#include "ngx_http_retell_mail.h"


/* a string literal and its length, NUL bytes inside included */
#define S(s)  (s), sizeof(s) - 1

#define MAX_HEADERS  32


/* every buffer of a test, freed at the end */

typedef struct block_s  block_t;

struct block_s {
    block_t  *next;
    void     *data;
};


typedef struct {
    long      fail_after;       /* allocations that succeed; -1: all */
    long      count;
} arena_t;


/* set while ids longer than a 78-character line are tested */
static int  long_ids;


typedef struct {
    ngx_http_retell_str_t  subject;
    ngx_http_retell_str_t  text;
    ngx_http_retell_str_t  message;
} out_t;


typedef struct {
    size_t       n;
    char        *name[MAX_HEADERS];
    char        *value[MAX_HEADERS];    /* unfolded, leading WSP dropped */
    char        *raw[MAX_HEADERS];      /* as sent, folds included */
    const char  *body;                  /* after the empty line */
    size_t       body_len;
} parsed_t;


static block_t  *blocks;


static void *
keep(void *p)
{
    block_t  *b;

    if (p == NULL) {
        perror("malloc");
        exit(2);
    }

    b = malloc(sizeof(block_t));
    if (b == NULL) {
        perror("malloc");
        exit(2);
    }

    b->data = p;
    b->next = blocks;
    blocks = b;

    return p;
}


static void
free_all(void)
{
    block_t  *b;

    while (blocks) {
        b = blocks;
        blocks = b->next;
        free(b->data);
        free(b);
    }
}


static void *
arena_alloc(void *pool, size_t size)
{
    arena_t  *a = pool;

    if (a->fail_after >= 0 && a->count >= a->fail_after) {
        return NULL;
    }

    a->count++;

    /* malloc(0) may return NULL */
    return keep(malloc(size ? size : 1));
}


static void
set(ngx_http_retell_str_t *s, const char *data, size_t len)
{
    s->data = keep(malloc(len ? len : 1));
    memcpy(s->data, data, len);
    s->len = len;
}


#define SET(field, lit)  set(&(field), S(lit))


static char *
dup_str(const char *s, size_t len)
{
    char  *d;

    d = keep(malloc(len + 1));
    memcpy(d, s, len);
    d[len] = '\0';

    return d;
}


/* a header's raw text with one more folded line */

static char *
append_fold(const char *raw, const char *line, size_t len)
{
    char    *d;
    size_t   n;

    n = strlen(raw);
    d = keep(malloc(n + 2 + len + 1));
    memcpy(d, raw, n);
    memcpy(d + n, "\r\n", 2);
    memcpy(d + n + 2, line, len);
    d[n + 2 + len] = '\0';

    return d;
}


static int
format(const ngx_http_retell_mail_t *m, out_t *o)
{
    arena_t  a;

    a.fail_after = -1;
    a.count = 0;

    memset(o, 0, sizeof(out_t));

    return ngx_http_retell_mail_format(m, arena_alloc, &a, &o->subject,
                                       &o->text, &o->message);
}


static const char  *to_base[] = {
    "staff@example.com",
    "ops@example.org",
    NULL
};


static void
base_mail(ngx_http_retell_mail_t *m)
{
    size_t                  n;
    ngx_http_retell_str_t  *to;

    memset(m, 0, sizeof(ngx_http_retell_mail_t));

    to = keep(malloc(2 * sizeof(ngx_http_retell_str_t)));

    for (n = 0; to_base[n]; n++) {
        set(&to[n], to_base[n], strlen(to_base[n]));
    }

    m->to = to;
    m->nto = n;

    SET(m->from, "retell@example.com");
    SET(m->message_id, "retell-outbox-42.call_8f3a2b@example.com");
    m->date = 1714557600;

    SET(m->reason, "action_required");
    SET(m->direction, "inbound");
    SET(m->company_name, "Acme Plumbing");
    SET(m->call_id, "call_8f3a2b");
    SET(m->ticket_id, "42");
    SET(m->ticket_status, "new");
    SET(m->customer_name, "Dana Whitfield");
    SET(m->customer_phone, "(415) 555-0134");
    SET(m->started_at, "2024-05-01 09:58:25 UTC");
    SET(m->duration_ms, "95310");
    SET(m->disconnection_reason, "user_hangup");
    SET(m->call_summary, "The customer reported a leaking water heater and "
                         "asked for a technician today.");
    SET(m->user_sentiment, "Negative");
    SET(m->call_successful, "t");
    SET(m->in_voicemail, "f");
    SET(m->custom_analysis_data, "{\"action_required\":\"true\","
        "\"urgency\":\"same day\",\"n\":3,\"nested\":{\"a\":[1,2]}}");
    SET(m->transcript, "Agent: Thanks for calling Acme Plumbing.\n"
                       "User: My water heater is leaking.\n");
    SET(m->recording_url,
        "https://dxc03zgurdly9.cloudfront.net/call_8f3a2b/recording.wav");
}


static const char  base_text[] =
    "Action required: the call analysis asks for follow-up.\n"
    "\n"
    "Customer\n"
    "--------\n"
    "Name: Dana Whitfield\n"
    "Phone: (415) 555-0134\n"
    "\n"
    "Call\n"
    "----\n"
    "Direction: inbound\n"
    "Call ID: call_8f3a2b\n"
    "Company: Acme Plumbing\n"
    "Started: 2024-05-01 09:58:25 UTC\n"
    "Duration: 95 s\n"
    "How it ended: user_hangup\n"
    "\n"
    "Ticket\n"
    "------\n"
    "ID: 42\n"
    "Status: new\n"
    "\n"
    "Summary\n"
    "-------\n"
    "The customer reported a leaking water heater and asked for a "
    "technician today.\n"
    "\n"
    "Analysis\n"
    "--------\n"
    "Sentiment: Negative\n"
    "Successful: yes\n"
    "Voicemail: no\n"
    "\n"
    "Business data\n"
    "-------------\n"
    "action_required: true\n"
    "urgency: same day\n"
    "n: 3\n"
    "nested: {\"a\":[1,2]}\n"
    "\n"
    "Transcript\n"
    "----------\n"
    "Agent: Thanks for calling Acme Plumbing.\n"
    "User: My water heater is leaking.\n"
    "\n"
    "Recording\n"
    "---------\n"
    "https://dxc03zgurdly9.cloudfront.net/call_8f3a2b/recording.wav\n";


static const char  minimal_text[] =
    "Action required: the call analysis asks for follow-up.\n"
    "\n"
    "Call\n"
    "----\n"
    "Direction: inbound\n"
    "Call ID: call_min\n"
    "\n"
    "Ticket\n"
    "------\n"
    "ID: 7\n"
    "Status: new\n";


/* decoders */

static int
hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


/* quoted-printable; NULL when the encoding is broken */

static char *
qp_decode(const char *in, size_t len, size_t *out_len)
{
    int      hi, lo;
    char    *out;
    size_t   i, n;

    out = keep(malloc(len + 1));
    n = 0;

    for (i = 0; i < len; i++) {
        if (in[i] != '=') {
            out[n++] = in[i];
            continue;
        }

        if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
            continue;
        }

        if (i + 2 >= len) {
            return NULL;
        }

        hi = hex_value((unsigned char) in[i + 1]);
        lo = hex_value((unsigned char) in[i + 2]);

        if (hi < 0 || lo < 0) {
            return NULL;
        }

        out[n++] = (char) (hi << 4 | lo);
        i += 2;
    }

    out[n] = '\0';
    *out_len = n;

    return out;
}


static int
valid_utf8(const unsigned char *p, size_t len)
{
    size_t  i, k, n;

    for (i = 0; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;

        } else if ((p[i] & 0xe0) == 0xc0) {
            n = 2;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
        }
    }

    return 1;
}


static int  words_total, words_too_long, words_split_char;


/*
 * An unstructured header value with RFC 2047 =?UTF-8?B?...?= words;
 * whitespace between two encoded-words goes, as RFC 2047 6.2 says.
 * Counts the words and those longer than 75 characters, or (for valid
 * UTF-8 input) not made of whole characters.  NULL when broken.
 */

static char *
rfc2047_decode(const char *in, int whole_chars)
{
    int          last_encoded;
    long         k;
    char        *out;
    size_t       n, ws, len;
    const char  *p, *q, *end;

    len = strlen(in);
    out = keep(malloc(len + 1));
    n = 0;
    p = in;
    end = in + len;
    last_encoded = 0;

    while (p < end) {
        for (q = p; q < end && (*q == ' ' || *q == '\t'); q++) {
            /* void */
        }

        ws = q - p;
        p = q;

        for (q = p; q < end && *q != ' ' && *q != '\t'; q++) {
            /* void */
        }

        if (q - p >= 12 && strncasecmp(p, "=?UTF-8?B?", 10) == 0
            && q[-2] == '?' && q[-1] == '=')
        {
            words_total++;

            if (q - p > 75) {
                words_too_long++;
            }

            if (!last_encoded) {
                memcpy(out + n, p - ws, ws);
                n += ws;
            }

            k = b64_decode(p + 10, q - p - 12, out + n);
            if (k < 0) {
                return NULL;
            }

            if (whole_chars
                && !valid_utf8((unsigned char *) out + n, (size_t) k))
            {
                words_split_char++;
            }

            n += k;
            last_encoded = 1;

        } else {
            memcpy(out + n, p - ws, ws + (q - p));
            n += ws + (q - p);
            last_encoded = (q == p) ? last_encoded : 0;
        }

        p = q;
    }

    out[n] = '\0';

    return out;
}


/*
 * Every line ends with CRLF, no bare CR or LF; header lines at most 78,
 * body lines at most 76 and only printable ASCII, TAB in a line, no
 * trailing whitespace; exactly one empty line ends the headers.
 */

static void
check_structure(const out_t *o, parsed_t *ps, const char *what)
{
    int          in_headers, bad_eol, header_long, body_long, body_byte;
    int          body_trailing, bad_header, blank_fold, empty_after;
    char        *msg, *line, *colon, *crlf;
    size_t       i, len, start, linelen;

    msg = (char *) o->message.data;
    len = o->message.len;

    memset(ps, 0, sizeof(parsed_t));

    bad_eol = 0;
    header_long = 0;
    body_long = 0;
    body_byte = 0;
    body_trailing = 0;
    bad_header = 0;
    blank_fold = 0;
    empty_after = 0;
    in_headers = 1;

    CHECK(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n',
          "%s: message ends with CRLF", what);
    CHECK(strlen(msg) == len, "%s: no NUL in the message", what);

    for (i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')) {
            bad_eol++;
        }

        if (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n')) {
            bad_eol++;
        }
    }

    CHECK(bad_eol == 0, "%s: %d bare CR or LF", what, bad_eol);

    start = 0;

    while (start < len) {
        line = msg + start;
        crlf = strstr(line, "\r\n");
        linelen = crlf ? (size_t) (crlf - line) : len - start;

        if (in_headers) {

            if (linelen == 0) {
                in_headers = 0;
                ps->body = line + 2;
                ps->body_len = len - start - 2;

                if (ps->body_len < 2 || ps->body[0] == '\r') {
                    empty_after++;
                }

            } else if (linelen > (long_ids && line[0] == ' ' && line[1] == '<'
                                  ? 998 : 78))
            {
                /* a Message-ID too long for 78 has a line of its own */
                header_long++;
                printf("# %s: header line of %zu: %.*s\n", what, linelen,
                       (int) linelen, line);
            }

            if (linelen && (line[0] == ' ' || line[0] == '\t')) {
                if (ps->n == 0) {
                    bad_header++;

                } else {
                    size_t  k, ws = 1;

                    for (k = 0; k < linelen; k++) {
                        if (line[k] != ' ' && line[k] != '\t') {
                            ws = 0;
                        }
                    }

                    blank_fold += ws;
                    ps->raw[ps->n - 1] = append_fold(ps->raw[ps->n - 1],
                                                     line, linelen);
                }

            } else if (linelen) {
                colon = memchr(line, ':', linelen);

                if (colon == NULL || colon == line || ps->n == MAX_HEADERS) {
                    bad_header++;

                } else {
                    for (i = 0; line + i < colon; i++) {
                        if (line[i] <= ' ' || line[i] > '~') {
                            bad_header++;
                        }
                    }

                    ps->name[ps->n] = dup_str(line, colon - line);
                    ps->raw[ps->n] = dup_str(line, linelen);
                    ps->n++;
                }
            }

        } else {
            if (linelen > 76) {
                body_long++;
            }

            if (linelen && (line[linelen - 1] == ' '
                            || line[linelen - 1] == '\t'))
            {
                body_trailing++;
            }

            for (i = 0; i < linelen; i++) {
                if ((line[i] < ' ' && line[i] != '\t') || line[i] > '~') {
                    body_byte++;
                }
            }
        }

        start += linelen + 2;
    }

    CHECK(!in_headers, "%s: an empty line ends the headers", what);
    CHECK(empty_after == 0, "%s: exactly one empty line after headers",
          what);
    CHECK(header_long == 0, "%s: %d header lines over 78", what,
          header_long);
    CHECK(bad_header == 0, "%s: %d malformed header lines", what,
          bad_header);
    CHECK(blank_fold == 0, "%s: %d whitespace-only folded lines", what,
          blank_fold);
    CHECK(body_long == 0, "%s: %d body lines over 76", what, body_long);
    CHECK(body_trailing == 0, "%s: %d body lines end in whitespace", what,
          body_trailing);
    CHECK(body_byte == 0, "%s: %d raw bytes in the body", what, body_byte);

    /* unfold: drop each CRLF before WSP, then the WSP after the colon */

    for (i = 0; i < ps->n; i++) {
        char    *r, *v;
        size_t   k, m;

        r = ps->raw[i];
        v = keep(malloc(strlen(r) + 1));
        m = 0;

        for (k = strlen(ps->name[i]) + 1; r[k]; k++) {
            if (r[k] == '\r' && r[k + 1] == '\n') {
                k++;
                continue;
            }

            v[m++] = r[k];
        }

        v[m] = '\0';

        while (*v == ' ' || *v == '\t') {
            v++;
        }

        ps->value[i] = v;
    }

    /* the quoted-printable body decodes to the text */

    if (ps->body) {
        char    *dec, *lf;
        size_t   dlen, k, m;

        dec = qp_decode(ps->body, ps->body_len, &dlen);
        CHECK(dec != NULL, "%s: the body is valid quoted-printable", what);

        if (dec) {
            lf = keep(malloc(dlen + 1));
            m = 0;

            for (k = 0; k < dlen; k++) {
                if (dec[k] == '\r' && k + 1 < dlen && dec[k + 1] == '\n') {
                    continue;
                }

                lf[m++] = dec[k];
            }

            CHECK(m == o->text.len && memcmp(lf, o->text.data, m) == 0,
                  "%s: the decoded body is the text", what);
        }
    }
}


static size_t
header_count(const parsed_t *ps, const char *name)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < ps->n; i++) {
        if (strcasecmp(ps->name[i], name) == 0) {
            n++;
        }
    }

    return n;
}


static const char *
header(const parsed_t *ps, const char *name)
{
    size_t  i;

    for (i = 0; i < ps->n; i++) {
        if (strcasecmp(ps->name[i], name) == 0) {
            return ps->value[i];
        }
    }

    return NULL;
}


static const char *
header_raw(const parsed_t *ps, const char *name)
{
    size_t  i;

    for (i = 0; i < ps->n; i++) {
        if (strcasecmp(ps->name[i], name) == 0) {
            return ps->raw[i];
        }
    }

    return NULL;
}


static const char  *known_headers[] = {
    "Date", "From", "To", "Subject", "Message-ID", "X-Retell-Call-Id",
    "Auto-Submitted", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", NULL
};


/* the required headers once each, and no header but the known ones */

static void
check_headers(const parsed_t *ps, const char *what)
{
    size_t  i, k, known;

    for (k = 0; known_headers[k]; k++) {
        CHECK(header_count(ps, known_headers[k]) == 1,
              "%s: %s present once, %zu times", what, known_headers[k],
              header_count(ps, known_headers[k]));
    }

    for (i = 0; i < ps->n; i++) {
        known = 0;

        for (k = 0; known_headers[k]; k++) {
            if (strcmp(ps->name[i], known_headers[k]) == 0) {
                known = 1;
            }
        }

        CHECK(known, "%s: unexpected header \"%s\"", what, ps->name[i]);
    }

    CHECK_STR(header(ps, "MIME-Version"), "1.0", "MIME-Version");
    CHECK_STR(header(ps, "Content-Type"), "text/plain; charset=UTF-8",
              "Content-Type");
    CHECK_STR(header(ps, "Content-Transfer-Encoding"), "quoted-printable",
              "Content-Transfer-Encoding");
}


/* the Subject header decodes back to the plain subject */

static void
check_subject(const out_t *o, const parsed_t *ps, const char *what)
{
    char        *dec;
    const char  *v;

    v = header(ps, "Subject");
    CHECK(v != NULL, "%s: Subject", what);

    if (v == NULL) {
        return;
    }

    dec = rfc2047_decode(v, valid_utf8(o->subject.data, o->subject.len));
    CHECK(dec != NULL, "%s: Subject decodes", what);
    CHECK(dec && strlen(dec) == o->subject.len
          && memcmp(dec, o->subject.data, o->subject.len) == 0,
          "%s: Subject decodes to \"%s\", want \"%s\"", what,
          dec ? dec : "(null)", (char *) o->subject.data);
    CHECK(memchr(o->subject.data, '\r', o->subject.len) == NULL
          && memchr(o->subject.data, '\n', o->subject.len) == NULL,
          "%s: the subject is one line", what);
}


static void
full_check(const ngx_http_retell_mail_t *m, out_t *o, parsed_t *ps,
    const char *what)
{
    CHECK(format(m, o) == 0, "%s: format", what);

    if (o->message.data == NULL) {
        memset(ps, 0, sizeof(parsed_t));
        return;
    }

    check_structure(o, ps, what);
    check_headers(ps, what);
    check_subject(o, ps, what);
}


static int
contains(const ngx_http_retell_str_t *s, const char *needle)
{
    size_t  n;

    n = strlen(needle);

    if (s->data == NULL || n > s->len) {
        return 0;
    }

    return memmem(s->data, s->len, needle, n) != NULL;
}


/* DATA: only the last line is ".", and unstuffing gives the message */

static void
check_dot_stuff(const ngx_http_retell_str_t *message, const char *what)
{
    int                     lone;
    char                   *un;
    size_t                  i, n, start;
    arena_t                 a;
    ngx_http_retell_str_t   data;

    a.fail_after = -1;
    a.count = 0;

    CHECK(ngx_http_retell_mail_dot_stuff(message, arena_alloc, &a, &data)
          == 0, "%s: dot_stuff", what);
    CHECK(data.len >= 5
          && memcmp(data.data + data.len - 5, "\r\n.\r\n", 5) == 0,
          "%s: DATA ends with CRLF.CRLF", what);
    CHECK(data.data[data.len] == '\0', "%s: DATA NUL-terminated", what);

    lone = 0;
    start = 0;

    for (i = 0; i + 1 < data.len; i++) {
        if (data.data[i] == '\r' && data.data[i + 1] == '\n') {
            if (i - start == 1 && data.data[start] == '.'
                && i + 2 != data.len)
            {
                lone++;
            }

            start = i + 2;
        }
    }

    CHECK(lone == 0, "%s: %d lone dots before the end", what, lone);

    /* undo: drop the terminator, then one dot at each line start */

    un = keep(malloc(data.len + 1));
    n = 0;

    for (i = 0; i + 3 < data.len; i++) {
        if (data.data[i] == '.' && (i == 0 || data.data[i - 1] == '\n')) {
            continue;
        }

        un[n++] = data.data[i];
    }

    CHECK(n == message->len && memcmp(un, message->data, n) == 0,
          "%s: unstuffed DATA is the message", what);
}


static void
dot_stuff_case(const char *in, size_t len, const char *want)
{
    arena_t                 a;
    ngx_http_retell_str_t   msg, data;

    a.fail_after = -1;
    a.count = 0;

    set(&msg, in, len);

    CHECK(ngx_http_retell_mail_dot_stuff(&msg, arena_alloc, &a, &data) == 0,
          "dot_stuff \"%s\"", in);
    CHECK(data.len == strlen(want), "dot_stuff \"%s\" length", in);
    CHECK_STR(data.data, want, "dot_stuff");
}


typedef struct {
    const char  *addr;
    size_t       len;
    int          valid;
} address_case_t;


static const address_case_t  addresses[] = {
    { S("dana@example.com"), 1 },
    { S("Dana.Whitfield+tickets@mail.example.co.uk"), 1 },
    { S("o'brien@example.ie"), 1 },
    { S("ops-team_1@sub-domain.example.org"), 1 },
    { S("x@y.zz"), 1 },
    { S("!#$%&'*+-/=?^_`{|}~@example.com"), 1 },
    { S("a@123.45"), 1 },
    { S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "@example.com"), 1 },
    { S("a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ".com"), 1 },

    { S(""), 0 },
    { S("dana"), 0 },
    { S("@example.com"), 0 },
    { S("dana@"), 0 },
    { S("dana@localhost"), 0 },
    { S("dana @example.com"), 0 },
    { S("dana@example.com "), 0 },
    { S("dana@example.com\r\nBcc: evil@example.com"), 0 },
    { S("dana@example.com\n"), 0 },
    { S("dana\0@example.com"), 0 },
    { S("dana@exam\0ple.com"), 0 },
    { S("<dana@example.com>"), 0 },
    { S("Dana <dana@example.com>"), 0 },
    { S("\"dana\"@example.com"), 0 },
    { S(".dana@example.com"), 0 },
    { S("dana.@example.com"), 0 },
    { S("da..na@example.com"), 0 },
    { S("a@b@example.com"), 0 },
    { S("dana@-example.com"), 0 },
    { S("dana@example-.com"), 0 },
    { S("dana@exa_mple.com"), 0 },
    { S("dana@example..com"), 0 },
    { S("dana@.example.com"), 0 },
    { S("dana@example.com."), 0 },
    { S("dana@[192.0.2.1]"), 0 },
    { S("jos\xc3\xa9@example.com"), 0 },
    { S("dana@ex\xc3\xa4mple.com"), 0 },
    { S("dana,ops@example.com"), 0 },
    { S("dana;@example.com"), 0 },
    { S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "@example.com"), 0 },
    { S("a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ".com"), 0 },

    { NULL, 0, 0 }
};


static void
test_valid_address(void)
{
    char                   buf[300];
    size_t                 i;
    const address_case_t  *c;
    ngx_http_retell_str_t  s;

    for (c = addresses; c->addr; c++) {
        set(&s, c->addr, c->len);
        CHECK(ngx_http_retell_mail_valid_address(s.data, s.len) == c->valid,
              "valid_address(\"%s\") is %d", c->addr, c->valid);
    }

    /* 254 bytes at most in all */

    memcpy(buf, "a@", 2);

    for (i = 2; i < 254; i++) {
        buf[i] = (i % 60 == 0) ? '.' : 'b';
    }

    set(&s, buf, 254);
    CHECK(ngx_http_retell_mail_valid_address(s.data, s.len) == 1,
          "valid_address: 254 bytes");

    buf[254] = 'b';
    set(&s, buf, 255);
    CHECK(ngx_http_retell_mail_valid_address(s.data, s.len) == 0,
          "valid_address: 255 bytes");

    /* the length bounds the address, not a NUL */

    CHECK(ngx_http_retell_mail_valid_address((u_char *)
                                             "dana@example.com\r\nBcc: x",
                                             16) == 1,
          "valid_address: a prefix");
    CHECK(ngx_http_retell_mail_valid_address((u_char *) "dana@example.com",
                                             12) == 0,
          "valid_address: a prefix without a dot");
    CHECK(ngx_http_retell_mail_valid_address(NULL, 0) == 0,
          "valid_address: NULL");
}


static void
test_base(void)
{
    out_t                   o;
    parsed_t                ps;
    ngx_http_retell_mail_t  m;

    base_mail(&m);
    full_check(&m, &o, &ps, "base");

    CHECK_STR(o.subject.data,
              "[Action required] Call from Dana Whitfield (415) 555-0134",
              "base subject");
    CHECK_STR(o.text.data, base_text, "base text");
    CHECK(o.text.len == strlen(base_text), "base text length");

    CHECK_STR(header(&ps, "Date"), "Wed, 01 May 2024 10:00:00 +0000",
              "Date");
    CHECK_STR(header(&ps, "From"), "retell@example.com", "From");
    CHECK_STR(header(&ps, "To"), "staff@example.com, ops@example.org", "To");
    CHECK_STR(header(&ps, "Subject"),
              "[Action required] Call from Dana Whitfield (415) 555-0134",
              "Subject is plain ASCII");
    CHECK_STR(header(&ps, "Message-ID"),
              "<retell-outbox-42.call_8f3a2b@example.com>", "Message-ID");
    CHECK_STR(header(&ps, "X-Retell-Call-Id"), "call_8f3a2b",
              "X-Retell-Call-Id");
    CHECK_STR(header(&ps, "Auto-Submitted"), "auto-generated",
              "Auto-Submitted");

    CHECK(strncmp((char *) o.message.data, "Date: ", 6) == 0,
          "Date comes first");
    CHECK(!contains(&o.text, "Link:"), "no ticket link without ticket_url");
    CHECK(o.subject.data[o.subject.len] == '\0'
          && o.text.data[o.text.len] == '\0'
          && o.message.data[o.message.len] == '\0',
          "results are NUL-terminated");

    check_dot_stuff(&o.message, "base");

    /* the same again: a pure function of its input */

    {
        out_t  o2;

        CHECK(format(&m, &o2) == 0 && o2.message.len == o.message.len
              && memcmp(o2.message.data, o.message.data, o.message.len) == 0,
              "the same mail twice gives the same message");
    }

    /* the link to the ticket only with retell_ticket_url */

    SET(m.ticket_url, "https://tickets.example.com/t/42");
    full_check(&m, &o, &ps, "ticket url");
    CHECK(contains(&o.text, "\nTicket\n------\nID: 42\nStatus: new\n"
                   "Link: https://tickets.example.com/t/42\n\n"),
          "ticket link in the Ticket section");
}


static size_t max_line(const out_t *o);


static void
test_minimal(void)
{
    out_t                   o;
    parsed_t                ps;
    ngx_http_retell_mail_t  m;

    memset(&m, 0, sizeof(ngx_http_retell_mail_t));

    SET(m.from, "retell@example.com");
    SET(m.message_id, "retell-outbox-7.call_min@example.com");
    SET(m.reason, "action_required");
    SET(m.direction, "inbound");
    SET(m.call_id, "call_min");
    SET(m.ticket_id, "7");
    SET(m.ticket_status, "new");

    full_check(&m, &o, &ps, "minimal");

    CHECK_STR(o.subject.data, "[Action required] Call from unknown number",
              "minimal subject");
    CHECK_STR(o.text.data, minimal_text, "minimal text");
    CHECK_STR(header(&ps, "To"), "undisclosed-recipients:;",
              "To without recipients");
    CHECK_STR(header(&ps, "Date"), "Thu, 01 Jan 1970 00:00:00 +0000",
              "Date of 0");

    /* empty, not absent: the same */

    SET(m.customer_name, "");
    SET(m.call_summary, "");
    SET(m.transcript, "");
    SET(m.custom_analysis_data, "");
    SET(m.recording_url, "");
    SET(m.ticket_url, "");
    full_check(&m, &o, &ps, "minimal, empty strings");
    CHECK_STR(o.text.data, minimal_text, "minimal text, empty strings");

    /* custom_analysis_data that is no usable object */

    SET(m.custom_analysis_data, "{}");
    full_check(&m, &o, &ps, "empty object");
    CHECK_STR(o.text.data, minimal_text, "empty object: no business data");

    SET(m.custom_analysis_data, "[1,2]");
    full_check(&m, &o, &ps, "array");
    CHECK_STR(o.text.data, minimal_text, "array: no business data");

    SET(m.custom_analysis_data, "\"text\"");
    full_check(&m, &o, &ps, "string");
    CHECK_STR(o.text.data, minimal_text, "string: no business data");

    SET(m.custom_analysis_data, "null");
    full_check(&m, &o, &ps, "null");
    CHECK_STR(o.text.data, minimal_text, "null: no business data");

    SET(m.custom_analysis_data, "{\"a\":1");
    full_check(&m, &o, &ps, "broken json");
    CHECK_STR(o.text.data, minimal_text, "broken JSON: no business data");

    SET(m.custom_analysis_data, "{\"a\":1} x");
    full_check(&m, &o, &ps, "trailing garbage");
    CHECK_STR(o.text.data, minimal_text, "trailing garbage: no data");

    {
        char    deep[200];
        size_t  i, n;

        /* deeper than the event parser ever stores */

        n = 0;
        n += sprintf(deep + n, "{\"a\":");

        for (i = 0; i < 40; i++) {
            deep[n++] = '[';
        }

        for (i = 0; i < 40; i++) {
            deep[n++] = ']';
        }

        deep[n++] = '}';

        set(&m.custom_analysis_data, deep, n);
        full_check(&m, &o, &ps, "deep json");
        CHECK_STR(o.text.data, minimal_text, "deep JSON: no business data");
    }

    {
        char    *deep;
        size_t   i, n;

        /*
         * review D1: a comment holding a quote hid the nesting from the
         * depth scan, and the recursive writer overflowed the stack
         */

        deep = malloc(2 * 100000 + 32);
        n = 0;
        n += sprintf(deep + n, "{\"a\":/*\"*/");

        for (i = 0; i < 100000; i++) {
            deep[n++] = '[';
        }

        for (i = 0; i < 100000; i++) {
            deep[n++] = ']';
        }

        n += sprintf(deep + n, "/*\"*/}");

        set(&m.custom_analysis_data, deep, n);
        free(deep);
        full_check(&m, &o, &ps, "deep json behind a comment");
        CHECK_STR(o.text.data, minimal_text,
                  "deep JSON behind a comment: no business data");

        SET(m.custom_analysis_data, "{\"a\":1 /* fine */}");
        full_check(&m, &o, &ps, "a comment");
        CHECK_STR(o.text.data, minimal_text, "a comment: no business data");
    }

    {
        char    id[1100];
        size_t  i;

        /* review D2: no header line past 998, whatever the ids */

        memset(id, 'x', sizeof(id));
        long_ids = 1;

        set(&m.message_id, id, sizeof(id));
        full_check(&m, &o, &ps, "a 1100-byte Message-ID");
        CHECK(max_line(&o) <= 998, "Message-ID line of %zu", max_line(&o));

        m.message_id.len = 0;
        set(&m.call_id, id, 990);
        full_check(&m, &o, &ps, "a 990-byte call_id as Message-ID");
        CHECK(max_line(&o) <= 998, "Message-ID line of %zu", max_line(&o));

        for (i = 0; i + 1 < o.message.len; i++) {
            if (o.message.data[i] == '<' && o.message.data[i + 1] == 'r') {
                break;
            }
        }

        CHECK(i + 1 < o.message.len, "the cut id is still there");
        SET(m.call_id, "call_min");
        SET(m.message_id, "retell-outbox-7.call_min@example.com");
        long_ids = 0;
    }
}


/* the longest line of the message, without its CRLF */

static size_t
max_line(const out_t *o)
{
    size_t  i, start, max;

    max = 0;
    start = 0;

    for (i = 0; i + 1 < o->message.len; i++) {
        if (o->message.data[i] == '\r' && o->message.data[i + 1] == '\n') {
            if (i - start > max) {
                max = i - start;
            }

            start = i + 2;
        }
    }

    return max;
}


static const char  transfer_start[] =
    "The call was transferred to a person.\n"
    "\n"
    "Customer\n"
    "--------\n"
    "Phone: +44 2079460321\n"
    "\n"
    "Call\n";


static void
test_sections(void)
{
    out_t                   o;
    parsed_t                ps;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    /* an outbound transfer to a number without a name */

    SET(m.reason, "call_transfer");
    SET(m.direction, "outbound");
    SET(m.customer_name, "");
    SET(m.customer_phone, "+44 2079460321");
    full_check(&m, &o, &ps, "outbound transfer");
    CHECK_STR(o.subject.data, "[Call transferred] Call with +44 2079460321",
              "outbound transfer subject");
    CHECK(strncmp((char *) o.text.data, transfer_start,
                  sizeof(transfer_start) - 1) == 0,
          "transfer: why, then the customer without a name");

    /* a name and no phone */

    SET(m.customer_phone, "");
    SET(m.customer_name, "Dana Whitfield");
    full_check(&m, &o, &ps, "name only");
    CHECK_STR(o.subject.data, "[Call transferred] Call with Dana Whitfield",
              "name-only subject");

    /* a transfer that did not connect, a call the platform dropped */

    base_mail(&m);
    SET(m.reason, "transfer_failed");
    full_check(&m, &o, &ps, "transfer failed");
    CHECK(strncmp((char *) o.subject.data, "[Transfer failed] Call from ",
                  28) == 0, "transfer failed subject: %s", o.subject.data);
    CHECK(contains(&o.text, "The caller asked for a person and the transfer "
                   "did not connect: call them back.\n"),
          "transfer failed: why");

    SET(m.reason, "call_failed");
    full_check(&m, &o, &ps, "call failed");
    CHECK(strncmp((char *) o.subject.data, "[Call dropped] Call from ", 25)
          == 0, "call failed subject: %s", o.subject.data);
    CHECK(contains(&o.text, "The call was dropped by the phone platform "
                   "before the caller was heard out: call them back.\n"),
          "call failed: why");

    /* a recording link that may be dead says so */

    base_mail(&m);
    SET(m.recording_url, "https://dxc03zgurdly9.cloudfront.net/rec.wav");
    SET(m.recording_note, "storage");
    full_check(&m, &o, &ps, "recording, storage opted out");
    CHECK(contains(&o.text, "rec.wav\nRetell keeps no recording of this call "
                   "(its data storage setting):\nthe link worked for 10 "
                   "minutes after the call only.\n"),
          "the opted-out note follows the link");

    SET(m.recording_note, "age");
    full_check(&m, &o, &ps, "recording, old");
    CHECK(contains(&o.text, "rec.wav\nThe link may have expired: signed "
                   "recording links last 24 hours by\ndefault"),
          "the expiry note follows the link");

    SET(m.recording_note, "");
    full_check(&m, &o, &ps, "recording, fresh");
    CHECK(!contains(&o.text, "keeps no recording")
          && !contains(&o.text, "may have expired"), "no note on a fresh link");

    /* an unknown reason still says something */

    SET(m.reason, "other");
    full_check(&m, &o, &ps, "other reason");
    CHECK(strncmp((char *) o.subject.data, "[Ticket needs attention] ", 25)
          == 0, "other reason subject");

    /* analysis: only what is there */

    base_mail(&m);
    SET(m.call_successful, "");
    SET(m.in_voicemail, "");
    full_check(&m, &o, &ps, "sentiment only");
    CHECK(contains(&o.text, "\nAnalysis\n--------\nSentiment: Negative\n\n"),
          "Analysis with the sentiment only");
    CHECK(!contains(&o.text, "Successful:") && !contains(&o.text,
                                                         "Voicemail:"),
          "no Successful or Voicemail lines");

    SET(m.user_sentiment, "");
    SET(m.call_successful, "f");
    SET(m.in_voicemail, "t");
    full_check(&m, &o, &ps, "flags only");
    CHECK(contains(&o.text, "\nAnalysis\n--------\nSuccessful: no\n"
                   "Voicemail: yes\n\n"), "Analysis with the flags only");

    SET(m.call_successful, "");
    SET(m.in_voicemail, "");
    full_check(&m, &o, &ps, "no analysis");
    CHECK(!contains(&o.text, "Analysis"), "no Analysis section");

    /* durations, rounded to seconds */

    SET(m.duration_ms, "499");
    full_check(&m, &o, &ps, "499 ms");
    CHECK(contains(&o.text, "\nDuration: 0 s\n"), "499 ms is 0 s");

    SET(m.duration_ms, "1500");
    full_check(&m, &o, &ps, "1500 ms");
    CHECK(contains(&o.text, "\nDuration: 2 s\n"), "1500 ms is 2 s");

    SET(m.duration_ms, "12x");
    full_check(&m, &o, &ps, "bad duration");
    CHECK(contains(&o.text, "\nDuration: 12x ms\n"), "odd duration as is");

    SET(m.duration_ms, "");
    full_check(&m, &o, &ps, "no duration");
    CHECK(!contains(&o.text, "Duration"), "no Duration line");

    /* every optional section gone */

    base_mail(&m);
    SET(m.customer_name, "");
    SET(m.customer_phone, "");
    SET(m.call_summary, "");
    SET(m.user_sentiment, "");
    SET(m.call_successful, "");
    SET(m.in_voicemail, "");
    SET(m.custom_analysis_data, "");
    SET(m.transcript, "");
    SET(m.recording_url, "");
    full_check(&m, &o, &ps, "no optional data");
    CHECK(!contains(&o.text, "Customer") && !contains(&o.text, "Summary")
          && !contains(&o.text, "Analysis")
          && !contains(&o.text, "Business data")
          && !contains(&o.text, "Transcript")
          && !contains(&o.text, "Recording"),
          "sections without data are left out");
    CHECK(contains(&o.text, "\nCall\n----\n")
          && contains(&o.text, "\nTicket\n------\n"),
          "Call and Ticket stay");
}


static void
test_business_data(void)
{
    out_t                   o;
    parsed_t                ps;
    ngx_http_retell_mail_t  m;

    base_mail(&m);
    full_check(&m, &o, &ps, "business data");
    CHECK(contains(&o.text, "\nBusiness data\n-------------\n"
                   "action_required: true\n"
                   "urgency: same day\n"
                   "n: 3\n"
                   "nested: {\"a\":[1,2]}\n\n"),
          "business data as key: value lines");

    /* as PostgreSQL prints jsonb: spaces, its own key order */

    SET(m.custom_analysis_data, "{\"n\": 3, \"nested\": {\"a\": [1, 2]}, "
        "\"urgency\": \"same day\", \"action_required\": \"true\"}");
    full_check(&m, &o, &ps, "jsonb text");
    CHECK(contains(&o.text, "\nBusiness data\n-------------\n"
                   "n: 3\n"
                   "nested: {\"a\":[1,2]}\n"
                   "urgency: same day\n"
                   "action_required: true\n\n"),
          "jsonb text: compact values in its order");

    SET(m.custom_analysis_data,
        "{\"qualified\": true, \"lost\": false, \"none\": null,"
        " \"price\": -12.50e1, \"quote\": \"he said \\\"hi\\\"\\\\\","
        " \"lines\": \"one\\r\\ntwo\\nthree\","
        " \"list\": [\"a\\nb\", {\"k\": \"\\u0001\\t\"}, []],"
        " \"empty\": \"\", \"caf\\u00e9\": \"cr\\u00e8me\","
        " \"bad\\nkey\": 1}");
    full_check(&m, &o, &ps, "json values");
    CHECK(contains(&o.text, "\nBusiness data\n-------------\n"
                   "qualified: true\n"
                   "lost: false\n"
                   "none: null\n"
                   "price: -12.50e1\n"
                   "quote: he said \"hi\"\\\n"
                   "lines: one\ntwo\nthree\n"
                   "list: [\"a\\nb\",{\"k\":\"\\u0001\\t\"},[]]\n"
                   "empty: \n"
                   "caf\xc3\xa9: cr\xc3\xa8me\n"
                   "bad key: 1\n\n"),
          "JSON values: strings as is, the rest compact JSON");
}


static void
test_injection(void)
{
    out_t                   o;
    parsed_t                ps;
    const char             *v;
    ngx_http_retell_str_t  *to;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    SET(m.customer_name, "Dana\r\nBcc: evil@example.com");
    SET(m.call_summary, "Dana\r\nBcc: evil@example.com");
    full_check(&m, &o, &ps, "injection");

    CHECK(header_count(&ps, "Bcc") == 0, "no Bcc header");
    CHECK_STR(o.subject.data, "[Action required] Call from Dana Bcc: "
              "evil@example.com (415) 555-0134", "injected subject");
    v = header(&ps, "Subject");
    CHECK(v && strstr(v, "Bcc") != NULL, "the name stays inside Subject");
    CHECK(contains(&o.text, "\nName: Dana  Bcc: evil@example.com\n"),
          "the name on one line in the body");
    CHECK(contains(&o.text, "\nSummary\n-------\nDana\nBcc: evil@example.com"
                   "\n\n"), "the summary's line break is a line break");

    /* every other header value from outside */

    to = keep(malloc(3 * sizeof(ngx_http_retell_str_t)));
    SET(to[0], "staff@example.com");
    SET(to[1], "evil@example.com\r\nBcc: other@example.com");
    SET(to[2], "ops@example.org");
    m.to = to;
    m.nto = 3;

    set(&m.customer_name, S("Dana\rBcc: a@example.com\nCc: b@example.com"
                            "\0X-Evil: 1\t\x1b[0m\x7f"));
    SET(m.call_id, "call_x\r\nBcc: evil@example.com");
    SET(m.message_id, "id-1@example.com>\r\nBcc: evil@example.com");
    SET(m.from, "retell@example.com\r\nBcc: evil@example.com");
    SET(m.customer_phone, "\n\n");
    SET(m.transcript, "Agent: hi\r\n\r\nBcc: evil@example.com\r\n");
    full_check(&m, &o, &ps, "injection everywhere");

    CHECK(header_count(&ps, "Bcc") == 0 && header_count(&ps, "Cc") == 0
          && header_count(&ps, "X-Evil") == 0, "no injected header");
    CHECK_STR(header(&ps, "To"), "staff@example.com, ops@example.org",
              "an address with CRLF is left out of To");
    CHECK_STR(header(&ps, "X-Retell-Call-Id"),
              "call_x Bcc: evil@example.com", "call id on one line");
    CHECK_STR(header(&ps, "Message-ID"),
              "<id-1@example.com___Bcc__evil@example.com>",
              "message id of safe characters");
    CHECK_STR(header(&ps, "From"),
              "retell@example.com  Bcc: evil@example.com", "From on one line");
    CHECK_STR(o.subject.data, "[Action required] Call from Dana Bcc: "
              "a@example.com Cc: b@example.com X-Evil: 1 [0m",
              "subject of control characters");
}


static void
test_non_ascii(void)
{
    char                    long_name[400];
    out_t                   o;
    parsed_t                ps;
    size_t                  i;
    const char             *v;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    SET(m.customer_name, "Jos\xc3\xa9 M\xc3\xbcller");
    SET(m.call_summary, "Zo\xc3\xab \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac");
    words_total = 0;
    full_check(&m, &o, &ps, "non-ascii");
    CHECK_STR(o.subject.data, "[Action required] Call from Jos\xc3\xa9 "
              "M\xc3\xbcller (415) 555-0134", "non-ASCII subject");
    v = header(&ps, "Subject");
    CHECK(v && strncmp(v, "=?UTF-8?B?", 10) == 0, "Subject encoded: %s",
          v ? v : "(null)");
    CHECK(words_total >= 1, "encoded-words found");
    CHECK(contains(&o.text, "\nSummary\n-------\nZo\xc3\xab \xe2\x80\x94 "
                   "\xe6\x9d\xb1\xe4\xba\xac\n"), "non-ASCII summary");
    CHECK(contains(&o.message, "Zo=C3=AB =E2=80=94 =E6=9D=B1=E4=BA=AC"),
          "non-ASCII summary quoted-printable");

    SET(m.customer_name, "Zo\xc3\xab \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac");
    full_check(&m, &o, &ps, "non-ascii name 2");
    CHECK_STR(o.subject.data, "[Action required] Call from Zo\xc3\xab "
              "\xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac (415) 555-0134",
              "second non-ASCII subject");

    /* a long name: several encoded-words of whole characters */

    for (i = 0; i < 60; i++) {
        memcpy(long_name + i * 6, "\xe6\x9d\xb1\xe4\xba\xac", 6);
    }

    set(&m.customer_name, long_name, 360);
    words_total = 0;
    words_too_long = 0;
    words_split_char = 0;
    full_check(&m, &o, &ps, "long non-ascii name");
    CHECK(words_total >= 8, "long name in %d encoded-words", words_total);
    CHECK(words_too_long == 0, "%d encoded-words over 75", words_too_long);
    CHECK(words_split_char == 0, "%d encoded-words split a character",
          words_split_char);

    /* mixed widths, so that the cuts fall everywhere */

    for (i = 0; i < 100; i++) {
        static const char  *w[] = { "a", "\xc3\xa9", "\xe2\x80\x94",
                                    "\xf0\x9f\x93\x9e" };
        size_t              n = 0, k;

        for (k = 0; k <= i; k++) {
            strcpy(long_name + n, w[(k * 7 + i) % 4]);
            n += strlen(w[(k * 7 + i) % 4]);

            if (n > 300) {
                break;
            }
        }

        set(&m.customer_name, long_name, n);
        words_split_char = 0;
        words_too_long = 0;

        if (format(&m, &o) == 0) {
            check_structure(&o, &ps, "mixed widths");
            check_subject(&o, &ps, "mixed widths");
        }

        if (words_split_char || words_too_long) {
            CHECK(0, "mixed widths %zu: split %d, long %d", i,
                  words_split_char, words_too_long);
        }
    }

    /* ASCII that must not be taken for an encoded-word */

    SET(m.customer_name, "=?UTF-8?B?ZXZpbA==?=");
    full_check(&m, &o, &ps, "fake encoded-word");
    CHECK_STR(o.subject.data, "[Action required] Call from "
              "=?UTF-8?B?ZXZpbA==?= (415) 555-0134", "fake encoded-word");

    /* one ASCII word too long for a line is encoded, not left long */

    memset(long_name, 'A', 100);
    set(&m.customer_name, long_name, 100);
    full_check(&m, &o, &ps, "long ascii word");
    CHECK(strstr(header_raw(&ps, "Subject"), "=?UTF-8?B?") != NULL,
          "a long word is encoded");

    /* many short ASCII words are folded, not encoded */

    for (i = 0; i < 30; i++) {
        memcpy(long_name + i * 6, "Whit  ", 6);
    }

    set(&m.customer_name, long_name, 180);
    full_check(&m, &o, &ps, "long ascii name");
    CHECK(strstr(header_raw(&ps, "Subject"), "=?") == NULL
          && strstr(header_raw(&ps, "Subject"), "\r\n ") != NULL,
          "a long ASCII subject is folded");
    CHECK_STR(header(&ps, "Subject"), (char *) o.subject.data,
              "folded Subject unfolds to the subject");

    /* bytes that are not UTF-8 */

    set(&m.customer_name, S("Bad \xff\xfe name \xc3"));
    set(&m.call_summary, S("\xc3(\xa0\xa1 end \xed\xa0\x80"));
    set(&m.transcript, S("\x80\x80\x80\n\xf8\x88\x80\x80\x80"));
    full_check(&m, &o, &ps, "not utf-8");
    CHECK(contains(&o.message, "=FF=FE"), "bad bytes quoted-printable");

    /* a long call id: encoded-words, as an unstructured header allows */

    memset(long_name, 'c', 128);
    set(&m.call_id, long_name, 128);
    full_check(&m, &o, &ps, "long call id");
    v = header(&ps, "X-Retell-Call-Id");
    v = v ? rfc2047_decode(v, 1) : NULL;
    CHECK(v && strlen(v) == 128 && strspn(v, "c") == 128,
          "a long call id decodes back");
}


static void
test_body_encoding(void)
{
    char                    line[4100];
    out_t                   o;
    parsed_t                ps;
    size_t                  i;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    /* dots at the start of lines */

    SET(m.transcript, "Agent: Hello.\n.\n.leading dot\n..two dots\n"
                      "User: bye.");
    full_check(&m, &o, &ps, "dots");
    CHECK(contains(&o.message, "\r\n.\r\n") && contains(&o.message,
                                                      "\r\n.leading dot\r\n"),
          "the message has lines starting with a dot");
    check_dot_stuff(&o.message, "dots");

    SET(m.transcript, ".");
    full_check(&m, &o, &ps, "transcript .");
    CHECK(contains(&o.text, "\nTranscript\n----------\n.\n"),
          "a transcript of one dot");
    CHECK(contains(&o.message, "\r\n.\r\n"), "a lone dot line in message");
    check_dot_stuff(&o.message, "transcript .");

    dot_stuff_case(S(""), ".\r\n");
    dot_stuff_case(S("."), "..\r\n.\r\n");
    dot_stuff_case(S(".\r\n"), "..\r\n.\r\n");
    dot_stuff_case(S("a\r\n.b\r\n..\r\nc.d\r\n"),
                   "a\r\n..b\r\n...\r\nc.d\r\n.\r\n");
    dot_stuff_case(S("no end"), "no end\r\n.\r\n");
    dot_stuff_case(S("bare lf\n"), "bare lf\n\r\n.\r\n");

    /* a 2000-character line is soft-broken */

    for (i = 0; i < 2000; i++) {
        line[i] = "abcdefghij"[i % 10];
    }

    set(&m.transcript, line, 2000);
    full_check(&m, &o, &ps, "long line");
    CHECK(contains(&o.message, "=\r\n"), "soft line breaks");

    for (i = 0; i < 2000; i++) {
        line[i] = (i % 7 == 6) ? ' ' : 'w';
    }

    set(&m.transcript, line, 2000);
    full_check(&m, &o, &ps, "long line of words");

    for (i = 0; i < 4000; i += 2) {
        memcpy(line + i, "\xc3\xa9", 2);
    }

    set(&m.transcript, line, 4000);
    full_check(&m, &o, &ps, "long non-ascii line");

    memset(line, '=', 2000);
    set(&m.transcript, line, 2000);
    full_check(&m, &o, &ps, "long line of =");

    /* every line length around the limit, ending in a space or not */

    for (i = 70; i < 160; i++) {
        memset(line, 'x', i);
        line[i - 1] = (i % 3 == 0) ? ' ' : (i % 3 == 1) ? '\t' : '=';
        set(&m.transcript, line, i);
        full_check(&m, &o, &ps, "line length");
    }

    /* trailing whitespace, controls, CR and LF in every form */

    SET(m.call_summary, "ends with space   \ntab\t\nend \r\nmac\rline\n\r"
                        "ctl \x01\x1b\x7f \tx\r");
    full_check(&m, &o, &ps, "whitespace and controls");
    CHECK(contains(&o.text, "\nSummary\n-------\nends with space   \n"
                   "tab\t\nend \nmac\nline\n\nctl \x01\x1b\x7f \tx\n\n"),
          "line breaks normalised, the rest as is");
    CHECK(contains(&o.message, "space  =20\r\n")
          && contains(&o.message, "tab=09\r\n")
          && contains(&o.message, "ctl =01=1B=7F \tx\r\n"),
          "trailing whitespace and controls encoded");

    set(&m.call_summary, S("nul\0byte"));
    full_check(&m, &o, &ps, "nul");
    CHECK(contains(&o.text, "\nnul byte\n"), "NUL becomes a space");
}


static void
test_headers(void)
{
    char                    buf[1000], id[200];
    out_t                   o;
    parsed_t                ps;
    size_t                  i;
    const char             *raw;
    ngx_http_retell_str_t  *to;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    /* many recipients, folded between addresses */

    to = keep(malloc(8 * sizeof(ngx_http_retell_str_t)));
    buf[0] = '\0';

    for (i = 0; i < 8; i++) {
        char  addr[64];

        sprintf(addr, "recipient-number-%zu@department.example.com", i);
        set(&to[i], addr, strlen(addr));

        if (i) {
            strcat(buf, ", ");
        }

        strcat(buf, addr);
    }

    m.to = to;
    m.nto = 8;
    full_check(&m, &o, &ps, "recipients");
    raw = header_raw(&ps, "To");
    CHECK(raw && strstr(raw, ",\r\n ") != NULL, "To is folded");
    CHECK_STR(header(&ps, "To"), buf, "To unfolds to every address");

    /* the Message-ID without an id from the caller, and a long one */

    SET(m.message_id, "");
    full_check(&m, &o, &ps, "no message id");
    CHECK_STR(header(&ps, "Message-ID"), "<retell-call_8f3a2b@localhost>",
              "Message-ID from the call id");

    memset(id, 'i', 58);
    memcpy(id + 58, "@example.com", 12);
    set(&m.message_id, id, 70);
    full_check(&m, &o, &ps, "long message id");
    raw = header_raw(&ps, "Message-ID");
    CHECK(raw && strncmp(raw, "Message-ID:\r\n <", 15) == 0,
          "a long Message-ID on a line of its own");
    CHECK(raw && strlen(raw) == 15 + 70 + 1, "the whole Message-ID");

    /* dates */

    m.date = 951782400;     /* 2000-02-29 00:00:00 */
    full_check(&m, &o, &ps, "leap day");
    CHECK_STR(header(&ps, "Date"), "Tue, 29 Feb 2000 00:00:00 +0000",
              "Date of a leap day");

    m.date = 2147483647;
    full_check(&m, &o, &ps, "2038");
    CHECK_STR(header(&ps, "Date"), "Tue, 19 Jan 2038 03:14:07 +0000",
              "Date in 2038");
}


static void
test_alloc_failure(void)
{
    int                     rc, failed, recovered;
    long                    k;
    out_t                   o;
    arena_t                 a;
    ngx_http_retell_str_t   data;
    ngx_http_retell_mail_t  m;

    base_mail(&m);

    failed = 0;
    recovered = 0;

    for (k = 0; k < 20; k++) {
        a.fail_after = k;
        a.count = 0;

        rc = ngx_http_retell_mail_format(&m, arena_alloc, &a, &o.subject,
                                         &o.text, &o.message);
        if (rc == 0) {
            recovered = 1;
            break;
        }

        failed += (rc == -1);
    }

    CHECK(recovered && failed == k,
          "format: -1 on each of %ld failed allocations, then 0", k);

    a.fail_after = 0;
    a.count = 0;
    SET(data, "x");

    CHECK(ngx_http_retell_mail_dot_stuff(&data, arena_alloc, &a, &data)
          == -1, "dot_stuff: -1 when alloc fails");
}


int
main(int argc, char **argv)
{
    (void) argc;
    (void) argv;

    test_valid_address();
    test_base();
    test_minimal();
    test_sections();
    test_business_data();
    test_injection();
    test_non_ascii();
    test_body_encoding();
    test_headers();
    test_alloc_failure();

    free_all();

    return UNIT_DONE();
}
