
/*
 * libFuzzer harness: the notification email (ngx_http_retell_mail_format)
 * and SMTP dot-stuffing (ngx_http_retell_mail_dot_stuff).
 *
 * Input: the fields of the mail separated by byte 0xFE, in the order of
 * the names[] table below; the To field is a list split on ','; From is
 * used only when valid_address() takes it, as the configuration check
 * does; Date is decimal.  Every field is an exact-size copy.
 *
 * The message is taken apart again and checked:
 *   - CRLF line ends only, no NUL; the known headers once each and no
 *     other; no whitespace-only folded line; every header line within
 *     RFC 5322's 998 (D2), Subject and X-Retell-Call-Id within 78;
 *   - Date, From, To, Message-ID as the fields say; Subject and
 *     X-Retell-Call-Id decode (RFC 2047) to the subject and the one-line
 *     call id; encoded-words of at most 75 characters, of whole UTF-8
 *     characters when the text is UTF-8; no plain word holding "=?";
 *   - the body valid quoted-printable, lines within 76, printable only,
 *     no trailing whitespace, decoding to the text;
 *   - the subject what docs/email.md makes of the fields; the text
 *     without NUL or CR;
 *   - business data is never shown from a tree nested deeper than
 *     NGX_HTTP_RETELL_MAX_DEPTH, comments or not (D1: the recursive
 *     writer and yajl_tree_free() would exhaust the stack), and is shown
 *     from comment-free JSON objects within the bound;
 *   - dot-stuffing, of the message and of the raw input: CRLF.CRLF only at
 *     the end, and unstuffing gives the message back;
 *   - an allocation failing after k returns -1.
 */


#define _GNU_SOURCE     /* memmem() */

#include "fuzz.h"
#include "../unit/base64.h"
#include "ngx_http_retell_mail.h"

#include <strings.h>
#include <time.h>
#include <yajl/yajl_parse.h>


#define SEP          0xfe
#define MAX_TO       16
#define MAX_HEADERS  32


enum {
    F_CUSTOMER_NAME = 0, F_CALL_ID, F_CUSTOM_ANALYSIS_DATA, F_MESSAGE_ID,
    F_FROM, F_TO, F_DATE, F_REASON, F_DIRECTION, F_COMPANY_NAME,
    F_TICKET_ID, F_TICKET_STATUS, F_TICKET_URL, F_CUSTOMER_PHONE,
    F_STARTED_AT, F_DURATION_MS, F_DISCONNECTION_REASON, F_CALL_SUMMARY,
    F_USER_SENTIMENT, F_CALL_SUCCESSFUL, F_IN_VOICEMAIL, F_TRANSCRIPT,
    F_RECORDING_URL, NFIELDS
};


static const char  *known[] = {
    "Date", "From", "To", "Subject", "Message-ID", "X-Retell-Call-Id",
    "Auto-Submitted", "MIME-Version", "Content-Type",
    "Content-Transfer-Encoding", NULL
};


typedef struct {
    size_t   n;
    char    *name[MAX_HEADERS];
    char    *value[MAX_HEADERS];    /* unfolded, leading WSP dropped */
    const u_char  *body;
    size_t   body_len;
} parsed_t;


static const char  atext[] = "!#$%&'*+-/=?^_`{|}~.@";


static int
is_id_char(u_char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || (c != 0 && strchr(atext, c));
}


static int
is(const ngx_http_retell_str_t *s, const char *text)
{
    return s->len == strlen(text) && memcmp(s->data, text, s->len) == 0;
}


/* control characters to spaces, runs of spaces to one, none at the ends */

static size_t
one_line(u_char *s, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        s[i] = (s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];

        if (s[i] == ' ' && (n == 0 || s[n - 1] == ' ')) {
            continue;
        }

        s[n++] = s[i];
    }

    if (n && s[n - 1] == ' ') {
        n--;
    }

    return n;
}


static u_char *
cat(u_char *p, const void *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}


/* docs/email.md's subject, written again */

static char *
expected_subject(const ngx_http_retell_mail_t *m)
{
    u_char  *s, *p;

    s = malloc(64 + m->customer_name.len + m->customer_phone.len);
    FZ_CHECK(s != NULL, "malloc");
    p = s;

    if (is(&m->reason, "call_transfer")) {
        p = cat(p, "[Call transferred] ", 19);

    } else if (is(&m->reason, "action_required")) {
        p = cat(p, "[Action required] ", 18);

    } else if (is(&m->reason, "transfer_failed")) {
        p = cat(p, "[Transfer failed] ", 18);

    } else if (is(&m->reason, "call_failed")) {
        p = cat(p, "[Call dropped] ", 15);

    } else {
        p = cat(p, "[Ticket needs attention] ", 25);
    }

    p = cat(p, is(&m->direction, "outbound") ? "Call with " : "Call from ",
            10);

    if (m->customer_name.len == 0 && m->customer_phone.len == 0) {
        p = cat(p, "unknown number", 14);

    } else {
        p = cat(p, m->customer_name.data, m->customer_name.len);

        if (m->customer_name.len && m->customer_phone.len) {
            *p++ = ' ';
        }

        p = cat(p, m->customer_phone.data, m->customer_phone.len);
    }

    p = s + one_line(s, p - s);
    *p = '\0';

    return (char *) s;
}


/*
 * An unstructured header value with =?UTF-8?B?...?= words; whitespace
 * between two encoded-words goes (RFC 2047 6.2).  Checks the words on
 * the way.  Returns the decoded text (malloc), *len its length.
 */

static u_char *
rfc2047_decode(const char *header, const char *in, int whole_chars,
    size_t *len)
{
    long          k;
    u_char       *out;
    size_t        n, ws, wlen;
    unsigned      last_encoded;
    const char   *p, *q, *end;

    end = in + strlen(in);
    out = malloc(end - in + 1);
    FZ_CHECK(out != NULL, "malloc");

    n = 0;
    p = in;
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

        wlen = q - p;

        if (wlen >= 12 && strncasecmp(p, "=?UTF-8?B?", 10) == 0
            && q[-2] == '?' && q[-1] == '=')
        {
            FZ_CHECK(wlen <= 75, "%s: encoded-word of %zu characters",
                     header, wlen);

            if (!last_encoded) {
                n = cat(out + n, p - ws, ws) - out;
            }

            k = b64_decode(p + 10, wlen - 12, out + n);
            FZ_CHECK(k >= 0, "%s: encoded-word not base64: %s", header,
                     fz_show((const u_char *) p, wlen));
            FZ_CHECK(!whole_chars || fz_utf8_valid(out + n, (size_t) k),
                     "%s: an encoded-word splits a UTF-8 character: %s",
                     header, fz_show(out + n, (size_t) k));

            n += k;
            last_encoded = 1;

        } else {
            FZ_CHECK(wlen < 2 || memmem(p, wlen, "=?", 2) == NULL,
                     "%s: a plain word holds \"=?\": %s", header,
                     fz_show((const u_char *) p, wlen));

            n = cat(out + n, p - ws, ws + wlen) - out;
            last_encoded = wlen ? 0 : last_encoded;
        }

        p = q;
    }

    out[n] = '\0';
    *len = n;

    return out;
}


static void
parsed_free(parsed_t *ps)
{
    size_t  i;

    for (i = 0; i < ps->n; i++) {
        free(ps->name[i]);
        free(ps->value[i]);
    }

    ps->n = 0;
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


/* the message: lines, headers, folds; fills ps */

static void
check_structure(const ngx_http_retell_str_t *msg, parsed_t *ps)
{
    int            limit78;
    char          *v;
    size_t         i, k, len, start, line_len, part_len, vlen;
    const u_char  *m, *line, *eol, *colon, *part;

    m = msg->data;
    len = msg->len;

    memset(ps, 0, sizeof(parsed_t));

    FZ_CHECK(memchr(m, '\0', len) == NULL, "a NUL in the message");
    FZ_CHECK(len >= 2 && m[len - 2] == '\r' && m[len - 1] == '\n',
             "the message does not end with CRLF");

    for (i = 0; i < len; i++) {
        FZ_CHECK(m[i] != '\n' || (i > 0 && m[i - 1] == '\r'),
                 "a bare LF at %zu", i);
        FZ_CHECK(m[i] != '\r' || (i + 1 < len && m[i + 1] == '\n'),
                 "a bare CR at %zu", i);
    }

    limit78 = 0;

    for (start = 0; start < len; start += line_len + 2) {
        line = m + start;
        eol = memmem(line, len - start, "\r\n", 2);
        line_len = eol - line;

        if (line_len == 0) {
            ps->body = line + 2;
            ps->body_len = len - start - 2;
            return;
        }

        if (line[0] == ' ' || line[0] == '\t') {
            FZ_CHECK(ps->n > 0, "the first header line is a fold");

            for (k = 0; k < line_len; k++) {
                if (line[k] != ' ' && line[k] != '\t') {
                    break;
                }
            }

            FZ_CHECK(k < line_len, "a whitespace-only folded line in %s",
                     ps->name[ps->n - 1]);

            part = line;

        } else {
            colon = memchr(line, ':', line_len);
            FZ_CHECK(colon != NULL && colon > line, "not a header line: %s",
                     fz_show(line, line_len));
            FZ_CHECK(ps->n < MAX_HEADERS, "more than %d headers",
                     MAX_HEADERS);

            for (k = 0; line + k < colon; k++) {
                FZ_CHECK(line[k] > ' ' && line[k] <= '~',
                         "byte 0x%02x in a header name", line[k]);
            }

            ps->name[ps->n] = fz_cstr(line, colon - line);
            ps->value[ps->n] = fz_cstr("", 0);
            ps->n++;

            limit78 = strcmp(ps->name[ps->n - 1], "Subject") == 0
                      || strcmp(ps->name[ps->n - 1], "X-Retell-Call-Id") == 0;

            part = colon + 1;
        }

        FZ_CHECK(line_len <= 998, "D2: %s header line of %zu characters "
                 "(RFC 5322 allows 998): %s", ps->name[ps->n - 1], line_len,
                 fz_show(line, line_len));
        FZ_CHECK(!limit78 || line_len <= 78, "%s header line of %zu "
                 "characters, over 78: %s", ps->name[ps->n - 1], line_len,
                 fz_show(line, line_len));

        /* unfold: the CRLF goes, the whitespace stays */

        part_len = line + line_len - part;
        v = ps->value[ps->n - 1];
        vlen = strlen(v);
        v = realloc(v, vlen + part_len + 1);
        FZ_CHECK(v != NULL, "realloc");
        memcpy(v + vlen, part, part_len);
        v[vlen + part_len] = '\0';
        ps->value[ps->n - 1] = v;
    }

    FZ_CHECK(0, "no empty line ends the headers");
}


static int
hex_upper(int c)
{
    return (c >= '0' && c <= '9') ? c - '0'
           : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
}


/* the quoted-printable body, line by line, then decoded to the text */

static void
check_body(const parsed_t *ps, const ngx_http_retell_str_t *text)
{
    u_char        *dec;
    size_t         i, n, start, line_len;
    const u_char  *b, *line, *eol;

    b = ps->body;
    dec = malloc(ps->body_len + 1);
    FZ_CHECK(dec != NULL, "malloc");
    n = 0;

    for (start = 0; start < ps->body_len; start += line_len + 2) {
        line = b + start;
        eol = memmem(line, ps->body_len - start, "\r\n", 2);
        FZ_CHECK(eol != NULL, "the body does not end with CRLF");
        line_len = eol - line;

        FZ_CHECK(line_len <= 76, "a body line of %zu characters: %s",
                 line_len, fz_show(line, line_len));
        FZ_CHECK(line_len == 0 || (line[line_len - 1] != ' '
                                   && line[line_len - 1] != '\t'),
                 "a body line ends in whitespace: %s",
                 fz_show(line, line_len));

        for (i = 0; i < line_len; i++) {
            FZ_CHECK((line[i] >= 0x21 && line[i] <= 0x7e) || line[i] == ' '
                     || line[i] == '\t', "byte 0x%02x in the body", line[i]);

            if (line[i] != '=') {
                dec[n++] = line[i];
                continue;
            }

            if (i + 1 == line_len) {
                break;              /* a soft line break */
            }

            FZ_CHECK(i + 2 < line_len && hex_upper(line[i + 1]) >= 0
                     && hex_upper(line[i + 2]) >= 0,
                     "not quoted-printable: %s", fz_show(line, line_len));

            dec[n++] = (u_char) (hex_upper(line[i + 1]) << 4
                                 | hex_upper(line[i + 2]));
            i += 2;
        }

        if (i == line_len) {
            dec[n++] = '\n';        /* a hard line break */
        }
    }

    FZ_CHECK(n == text->len && memcmp(dec, text->data, n) == 0,
             "the body does not decode to the text");

    free(dec);
}


static const char *
value(const parsed_t *ps, const char *name)
{
    const char  *v;

    v = header(ps, name);

    return v ? v + strspn(v, " \t") : NULL;
}


static size_t
header_count(const parsed_t *ps, const char *name)
{
    size_t  i, n;

    for (i = 0, n = 0; i < ps->n; i++) {
        n += (strcasecmp(ps->name[i], name) == 0);
    }

    return n;
}


static void
check_message_id(const ngx_http_retell_mail_t *m, const char *v)
{
    size_t                        i, n, want, inner;
    const char                   *p;
    const ngx_http_retell_str_t  *id;

    n = strlen(v);
    FZ_CHECK(n >= 2 && v[0] == '<' && v[n - 1] == '>', "Message-ID %s",
             fz_show((const u_char *) v, n));

    p = v + 1;
    inner = n - 2;

    if (m->message_id.len == 0) {
        FZ_CHECK(inner >= 17 && strncmp(p, "retell-", 7) == 0
                 && strncmp(p + inner - 10, "@localhost", 10) == 0,
                 "Message-ID from the call id: %s",
                 fz_show((const u_char *) v, n));
        p += 7;
        inner -= 17;
    }

    id = m->message_id.len ? &m->message_id : &m->call_id;

    if (id->len == 0) {
        FZ_CHECK(inner == 7 && strncmp(p, "unknown", 7) == 0,
                 "Message-ID without an id: %s",
                 fz_show((const u_char *) v, n));
        return;
    }

    /* the id of safe characters; cut only where it would not fit a line */

    want = sizeof(" <>") - 1 + id->len
           + (m->message_id.len ? 0 : sizeof("retell-@localhost") - 1);

    FZ_CHECK(inner == id->len || (inner < id->len && want > 998),
             "Message-ID holds %zu of the id's %zu bytes", inner, id->len);

    for (i = 0; i < inner; i++) {
        FZ_CHECK((u_char) p[i] == (is_id_char(id->data[i]) ? id->data[i]
                                                            : '_'),
                 "Message-ID byte %zu is 0x%02x for 0x%02x", i,
                 (u_char) p[i], id->data[i]);
    }
}


static void
check_headers(const ngx_http_retell_mail_t *m, const parsed_t *ps,
    const ngx_http_retell_str_t *subject, const u_char *call_id,
    size_t call_id_len)
{
    int          whole;
    char         want[256];
    u_char      *dec;
    size_t       i, k, n, dlen;
    time_t       t;
    struct tm    tm;
    const char  *v;

    static const char  *week[] = {
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
    };

    static const char  *months[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };

    for (i = 0; i < ps->n; i++) {
        for (k = 0; known[k]; k++) {
            if (strcmp(ps->name[i], known[k]) == 0) {
                break;
            }
        }

        FZ_CHECK(known[k] != NULL, "an unexpected header \"%s\"",
                 ps->name[i]);
    }

    for (k = 0; known[k]; k++) {
        n = header_count(ps, known[k]);

        if (strcmp(known[k], "X-Retell-Call-Id") == 0) {
            FZ_CHECK(n == (call_id_len ? 1 : 0), "X-Retell-Call-Id %zu "
                     "times for a call id of %zu bytes", n, call_id_len);

        } else {
            FZ_CHECK(n == 1, "%s %zu times", known[k], n);
        }
    }

    t = m->date;

    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }

    snprintf(want, sizeof(want), "%s, %02d %s %04d %02d:%02d:%02d +0000",
             week[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    FZ_CHECK(strcmp(value(ps, "Date"), want) == 0, "Date \"%s\" for %lld",
             value(ps, "Date"), (long long) m->date);

    FZ_CHECK(strlen(value(ps, "From")) == m->from.len
             && memcmp(value(ps, "From"), m->from.data, m->from.len) == 0,
             "From \"%s\"", value(ps, "From"));

    /* To: the plain addr-specs, ", " between them */

    v = value(ps, "To");
    n = 0;

    for (i = 0; i < m->nto; i++) {
        if (!ngx_http_retell_mail_valid_address(m->to[i].data,
                                                m->to[i].len))
        {
            continue;
        }

        if (n) {
            FZ_CHECK(strncmp(v + n, ", ", 2) == 0, "To \"%s\"", v);
            n += 2;
        }

        FZ_CHECK(strncmp(v + n, (char *) m->to[i].data, m->to[i].len) == 0,
                 "To \"%s\" lacks %s", fz_show((const u_char *) v, strlen(v)),
                 fz_show(m->to[i].data, m->to[i].len));
        n += m->to[i].len;
    }

    FZ_CHECK(n ? v[n] == '\0' : strcmp(v, "undisclosed-recipients:;") == 0,
             "To \"%s\"", fz_show((const u_char *) v, strlen(v)));

    check_message_id(m, value(ps, "Message-ID"));

    /* the unstructured headers decode back */

    whole = fz_utf8_valid(subject->data, subject->len);
    dec = rfc2047_decode("Subject", value(ps, "Subject"), whole, &dlen);
    FZ_CHECK(dlen == subject->len && memcmp(dec, subject->data, dlen) == 0,
             "Subject decodes to \"%s\", not to the subject \"%s\"",
             fz_show(dec, dlen), fz_show(subject->data, subject->len));
    free(dec);

    if (call_id_len) {
        whole = fz_utf8_valid(call_id, call_id_len);
        dec = rfc2047_decode("X-Retell-Call-Id", value(ps, "X-Retell-Call-Id"),
                             whole, &dlen);
        FZ_CHECK(dlen == call_id_len && memcmp(dec, call_id, dlen) == 0,
                 "X-Retell-Call-Id decodes to \"%s\", not \"%s\"",
                 fz_show(dec, dlen), fz_show(call_id, call_id_len));
        free(dec);
    }

    FZ_CHECK(strcmp(value(ps, "Auto-Submitted"), "auto-generated") == 0
             && strcmp(value(ps, "MIME-Version"), "1.0") == 0
             && strcmp(value(ps, "Content-Type"), "text/plain; charset=UTF-8")
                == 0
             && strcmp(value(ps, "Content-Transfer-Encoding"),
                       "quoted-printable") == 0,
             "a fixed header changed");
}


/* SMTP DATA: ends CRLF.CRLF, no "." line before, unstuffing gives msg */

static void
check_dot_stuff(const u_char *msg, size_t len)
{
    u_char                 *un, *copy;
    size_t                  i, n;
    const u_char           *end;
    fz_pool_t               pool;
    ngx_http_retell_str_t   in, data;

    copy = fz_copy(msg, len);
    in.data = copy;
    in.len = len;

    fz_pool_init(&pool, 0);
    FZ_CHECK(ngx_http_retell_mail_dot_stuff(&in, fz_alloc, &pool, &data)
             == -1, "dot_stuff: not -1 when the allocation fails");
    fz_pool_free(&pool);

    fz_pool_init(&pool, -1);
    FZ_CHECK(ngx_http_retell_mail_dot_stuff(&in, fz_alloc, &pool, &data)
             == 0, "dot_stuff failed");

    FZ_CHECK(data.data[data.len] == '\0', "DATA is not NUL-terminated");

    if (len == 0) {
        FZ_CHECK(data.len == 3 && memcmp(data.data, ".\r\n", 3) == 0,
                 "DATA of an empty message");
        goto done;
    }

    FZ_CHECK(data.len >= 5
             && memcmp(data.data + data.len - 5, "\r\n.\r\n", 5) == 0,
             "DATA does not end with CRLF.CRLF");

    end = memmem(data.data, data.len, "\r\n.\r\n", 5);
    FZ_CHECK(end == data.data + data.len - 5 && memcmp(data.data, ".\r\n", 3)
             != 0, "a lone \".\" line before the end of DATA");

    /* undo: drop the terminator, then one dot at each line start */

    un = malloc(data.len);
    FZ_CHECK(un != NULL, "malloc");
    n = 0;

    for (i = 0; i < data.len - 3; i++) {
        if (data.data[i] == '.' && (i == 0 || data.data[i - 1] == '\n')) {
            FZ_CHECK(i + 1 < data.len - 3 && data.data[i + 1] == '.',
                     "a line of DATA starts with a single dot");
            i++;
        }

        un[n++] = data.data[i];
    }

    if (len < 2 || msg[len - 2] != '\r' || msg[len - 1] != '\n') {
        FZ_CHECK(n == len + 2 && memcmp(un + len, "\r\n", 2) == 0,
                 "DATA of a message without a final CRLF lacks one");
        n -= 2;
    }

    FZ_CHECK(n == len && memcmp(un, msg, len) == 0,
             "unstuffed DATA is not the message");
    free(un);

done:

    fz_pool_free(&pool);
    free(copy);
}


/*
 * D1: the nesting of custom_analysis_data as yajl_tree_parse() reads it
 * (comments allowed, the text up to a NUL), counted without recursion.
 */

typedef struct {
    int  depth;
    int  max;
    int  top_keys;      /* keys directly in the top object */
    int  top_object;
} depth_t;


static int
d_scalar(void *ctx)
{
    (void) ctx;
    return 1;
}


static int
d_boolean(void *ctx, int v)
{
    (void) v;
    return d_scalar(ctx);
}


static int
d_number(void *ctx, const char *s, size_t len)
{
    (void) s;
    (void) len;
    return d_scalar(ctx);
}


static int
d_string(void *ctx, const u_char *s, size_t len)
{
    (void) s;
    (void) len;
    return d_scalar(ctx);
}


static int
d_key(void *ctx, const u_char *s, size_t len)
{
    depth_t  *d = ctx;

    (void) s;
    (void) len;
    d->top_keys += (d->depth == 1);
    return 1;
}


static int
d_open_map(void *ctx)
{
    depth_t  *d = ctx;

    if (d->depth == 0 && d->max == 0) {
        d->top_object = 1;
    }

    if (++d->depth > d->max) {
        d->max = d->depth;
    }

    return 1;
}


static int
d_open_array(void *ctx)
{
    depth_t  *d = ctx;

    if (++d->depth > d->max) {
        d->max = d->depth;
    }

    return 1;
}


static int
d_close(void *ctx)
{
    ((depth_t *) ctx)->depth--;
    return 1;
}


static const yajl_callbacks  depth_callbacks = {
    d_scalar, d_boolean, NULL, NULL, d_number, d_string, d_open_map, d_key,
    d_close, d_open_array, d_close
};


/* 1 when the text is one JSON value to yajl; its depth in *d */

static int
json_depth(const u_char *s, size_t len, int comments, depth_t *d)
{
    yajl_handle  h;
    yajl_status  st;

    memset(d, 0, sizeof(depth_t));

    h = yajl_alloc(&depth_callbacks, NULL, d);
    FZ_CHECK(h != NULL, "yajl_alloc");
    yajl_config(h, yajl_allow_comments, comments);

    st = yajl_parse(h, s, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    return st == yajl_status_ok;
}


static const char  business[] = "\nBusiness data\n-------------\n";


static void
check_business(const ngx_http_retell_mail_t *m,
    const ngx_http_retell_str_t *text)
{
    int                     rc;
    size_t                  len;
    depth_t                 d;
    fz_pool_t               pool;
    ngx_http_retell_mail_t  m2;
    ngx_http_retell_str_t   subject, text2, message;

    len = m->custom_analysis_data.len;

    if (len == 0) {
        return;
    }

    /* yajl_tree_parse() sees the text up to the first NUL */

    len = strnlen((const char *) m->custom_analysis_data.data, len);

    if (json_depth(m->custom_analysis_data.data, len, 1, &d)
        && d.top_object && d.top_keys && d.max > NGX_HTTP_RETELL_MAX_DEPTH)
    {
        /* without the data, the text must be the same */

        m2 = *m;
        m2.custom_analysis_data.len = 0;

        fz_pool_init(&pool, -1);
        rc = ngx_http_retell_mail_format(&m2, fz_alloc, &pool, &subject,
                                         &text2, &message);
        FZ_CHECK(rc == 0, "format without the data failed");
        FZ_CHECK(text2.len == text->len
                 && memcmp(text2.data, text->data, text->len) == 0,
                 "D1: business data of depth %d shown (the limit is %d; "
                 "the writer and yajl_tree_free() recurse)", d.max,
                 NGX_HTTP_RETELL_MAX_DEPTH);
        fz_pool_free(&pool);
        return;
    }

    len = m->custom_analysis_data.len;

    if (json_depth(m->custom_analysis_data.data, len, 0, &d)
        && d.top_object && d.top_keys && d.max <= NGX_HTTP_RETELL_MAX_DEPTH)
    {
        FZ_CHECK(memmem(text->data, text->len, business, sizeof(business) - 1)
                 != NULL, "an object of depth %d not shown as business data",
                 d.max);
    }
}


/* an address valid_address() takes cannot break a header */

static void
check_address(const ngx_http_retell_str_t *a)
{
    size_t  i, at;

    if (!ngx_http_retell_mail_valid_address(a->data, a->len)) {
        return;
    }

    FZ_CHECK(a->len <= 254, "an address of %zu bytes", a->len);

    for (i = 0, at = 0; i < a->len; i++) {
        FZ_CHECK(is_id_char(a->data[i]), "valid_address() takes byte 0x%02x",
                 a->data[i]);
        at += (a->data[i] == '@');
    }

    FZ_CHECK(at == 1, "valid_address() takes %zu '@'", at);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    char                   *date, *subj;
    long                    allocations;
    u_char                 *call_id;
    size_t                  i, k, call_id_len;
    parsed_t                ps;
    fz_pool_t               pool;
    const uint8_t          *p, *q, *last;
    ngx_http_retell_str_t   f[NFIELDS], to[MAX_TO], subject, text, message;
    ngx_http_retell_mail_t  m;

    /* the fields */

    memset(f, 0, sizeof(f));
    last = data + size;
    p = data;

    for (i = 0; i < NFIELDS; i++) {
        q = (p < last) ? memchr(p, SEP, last - p) : NULL;
        q = q ? q : last;
        f[i].data = fz_copy(p, q - p);
        f[i].len = q - p;
        p = (q < last) ? q + 1 : last;
    }

    memset(&m, 0, sizeof(m));

    m.customer_name = f[F_CUSTOMER_NAME];
    m.call_id = f[F_CALL_ID];
    m.custom_analysis_data = f[F_CUSTOM_ANALYSIS_DATA];
    m.message_id = f[F_MESSAGE_ID];
    m.reason = f[F_REASON];
    m.direction = f[F_DIRECTION];
    m.company_name = f[F_COMPANY_NAME];
    m.ticket_id = f[F_TICKET_ID];
    m.ticket_status = f[F_TICKET_STATUS];
    m.ticket_url = f[F_TICKET_URL];
    m.customer_phone = f[F_CUSTOMER_PHONE];
    m.started_at = f[F_STARTED_AT];
    m.duration_ms = f[F_DURATION_MS];
    m.disconnection_reason = f[F_DISCONNECTION_REASON];
    m.call_summary = f[F_CALL_SUMMARY];
    m.user_sentiment = f[F_USER_SENTIMENT];
    m.call_successful = f[F_CALL_SUCCESSFUL];
    m.in_voicemail = f[F_IN_VOICEMAIL];
    m.transcript = f[F_TRANSCRIPT];
    m.recording_url = f[F_RECORDING_URL];

    check_address(&f[F_FROM]);

    if (ngx_http_retell_mail_valid_address(f[F_FROM].data, f[F_FROM].len)) {
        m.from = f[F_FROM];

    } else {
        m.from.data = fz_copy("retell@example.com", 18);
        m.from.len = 18;
    }

    /* To: a list on ',' */

    p = f[F_TO].data;
    last = p + f[F_TO].len;

    for (k = 0; f[F_TO].len && k < MAX_TO; k++) {
        q = memchr(p, ',', last - p);
        q = q ? q : last;
        to[k].data = fz_copy(p, q - p);
        to[k].len = q - p;
        check_address(&to[k]);

        if (q == last) {
            k++;
            break;
        }

        p = q + 1;
    }

    m.to = to;
    m.nto = k;

    date = fz_cstr(f[F_DATE].data, f[F_DATE].len);
    m.date = (time_t) strtoll(date, NULL, 10);
    free(date);

    /* the mail */

    fz_pool_init(&pool, -1);
    rc = ngx_http_retell_mail_format(&m, fz_alloc, &pool, &subject, &text,
                                     &message);
    allocations = pool.count;

    FZ_CHECK(rc == 0, "format failed with an allocator that never fails");
    FZ_CHECK(subject.data[subject.len] == '\0' && text.data[text.len] == '\0'
             && message.data[message.len] == '\0',
             "a result is not NUL-terminated");

    subj = expected_subject(&m);
    FZ_CHECK(strlen(subj) == subject.len
             && memcmp(subj, subject.data, subject.len) == 0,
             "subject \"%s\", docs/email.md gives \"%s\"",
             fz_show(subject.data, subject.len),
             fz_show((u_char *) subj, strlen(subj)));
    free(subj);

    for (i = 0; i < subject.len; i++) {
        FZ_CHECK(subject.data[i] >= 0x20 && subject.data[i] != 0x7f,
                 "byte 0x%02x in the subject", subject.data[i]);
    }

    FZ_CHECK(memchr(text.data, '\0', text.len) == NULL
             && memchr(text.data, '\r', text.len) == NULL,
             "a NUL or CR in the text");
    FZ_CHECK(text.len && text.data[text.len - 1] == '\n',
             "the text does not end with a line end");

    /* the one-line call id of X-Retell-Call-Id */

    call_id = fz_copy(m.call_id.data, m.call_id.len);
    call_id_len = one_line(call_id, m.call_id.len);

    check_structure(&message, &ps);
    check_headers(&m, &ps, &subject, call_id, call_id_len);
    check_body(&ps, &text);
    parsed_free(&ps);
    free(call_id);

    check_business(&m, &text);

    check_dot_stuff(message.data, message.len);
    check_dot_stuff(data, size);

    fz_pool_free(&pool);

    /* allocation k of n fails: -1 */

    fz_pool_init(&pool, (long) (fz_hash(data, size) % allocations));
    rc = ngx_http_retell_mail_format(&m, fz_alloc, &pool, &subject, &text,
                                     &message);
    FZ_CHECK(rc == -1, "format gives %d when allocation %ld of %ld fails",
             rc, pool.fail_after + 1, allocations);
    fz_pool_free(&pool);

    for (i = 0; i < NFIELDS; i++) {
        free(f[i].data);
    }

    for (i = 0; i < m.nto; i++) {
        free(to[i].data);
    }

    if (m.from.data != f[F_FROM].data) {
        free(m.from.data);
    }

    return 0;
}
