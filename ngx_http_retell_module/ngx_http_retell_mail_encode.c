
/*
 * The message's form: its headers (Date, To, Message-ID, unstructured
 * values as folded plain words or RFC 2047 encoded-words of whole UTF-8
 * characters), the quoted-printable body, and the two-pass buffer every
 * piece is written into.
 */


#include "ngx_http_retell_mail_buf.h"

#include <stdio.h>
#include <time.h>


const u_char  ngx_http_retell_mail_hex[] = "0123456789ABCDEF";


static void ngx_http_retell_mail_date(ngx_http_retell_buf_t *b, time_t t);
static void ngx_http_retell_mail_to(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m);
static void ngx_http_retell_mail_message_id(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m);
static void ngx_http_retell_mail_unstructured(ngx_http_retell_buf_t *b,
    const char *name, const ngx_http_retell_str_t *value);
static int ngx_http_retell_mail_plain(const char *name,
    const ngx_http_retell_str_t *value);
static size_t ngx_http_retell_mail_utf8_cut(const u_char *p, size_t len,
    size_t max);
static void ngx_http_retell_mail_base64(ngx_http_retell_buf_t *b,
    const u_char *p, size_t len);
static void ngx_http_retell_mail_qp(ngx_http_retell_buf_t *b,
    const u_char *p, size_t len);


void
ngx_http_retell_mail_message(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m, const ngx_http_retell_str_t *subject,
    const ngx_http_retell_str_t *call_id, const ngx_http_retell_str_t *text)
{
    ngx_http_retell_mail_date(b, m->date);

    ngx_http_retell_mail_put_str(b, "From: ");
    ngx_http_retell_mail_put_line(b, m->from.data, m->from.len);
    ngx_http_retell_mail_put_str(b, "\r\n");

    ngx_http_retell_mail_to(b, m);
    ngx_http_retell_mail_unstructured(b, "Subject", subject);
    ngx_http_retell_mail_message_id(b, m);

    if (call_id->len) {
        ngx_http_retell_mail_unstructured(b, "X-Retell-Call-Id", call_id);
    }

    /* RFC 3834: no vacation replies back to the sender */

    ngx_http_retell_mail_put_str(b,
        "Auto-Submitted: auto-generated\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n");

    ngx_http_retell_mail_qp(b, text->data, text->len);
}


/* RFC 5322 3.3 in English whatever the locale: no strftime() */

static void
ngx_http_retell_mail_date(ngx_http_retell_buf_t *b, time_t t)
{
    int         n;
    char        line[128];
    struct tm   tm;

    static const char  *week[] = {
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
    };

    static const char  *months[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };

    if (gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }

    n = snprintf(line, sizeof(line),
                 "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
                 week[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);

    ngx_http_retell_mail_put(b, line, n);
}


/*
 * Plain addr-specs only, so nothing in an address can change the header;
 * folded between addresses.  An address too long for a line of its own
 * still goes on one line (at most 254 bytes, far below RFC 5322's 998).
 */

static void
ngx_http_retell_mail_to(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m)
{
    size_t                        i, n, col;
    const ngx_http_retell_str_t  *a;

    ngx_http_retell_mail_put_str(b, "To:");
    col = sizeof("To:") - 1;
    n = 0;

    for (i = 0; i < m->nto; i++) {
        a = &m->to[i];

        if (!ngx_http_retell_mail_valid_address(a->data, a->len)) {
            continue;
        }

        if (n) {
            ngx_http_retell_mail_put_char(b, ',');
            col++;

            /* room for the address and the comma that may follow it */

            if (col + 1 + a->len + 1 > NGX_HTTP_RETELL_MAIL_LINE) {
                ngx_http_retell_mail_put_str(b, "\r\n");
                col = 0;
            }
        }

        ngx_http_retell_mail_put_char(b, ' ');
        ngx_http_retell_mail_put(b, a->data, a->len);
        col += 1 + a->len;
        n++;
    }

    if (n == 0) {
        ngx_http_retell_mail_put_str(b, " undisclosed-recipients:;");
    }

    ngx_http_retell_mail_put_str(b, "\r\n");
}


/*
 * Only atext, '.' and '@' go between the brackets.  Without an id from
 * the caller, one per call.  A long id goes on a line of its own, as
 * msg-id's leading CFWS allows.
 */

static void
ngx_http_retell_mail_message_id(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m)
{
    size_t                        i, len, max;
    u_char                        c;
    const ngx_http_retell_str_t  *id;

    if (m->message_id.len) {
        id = &m->message_id;
        len = id->len;

    } else {
        id = &m->call_id;
        len = sizeof("retell-@localhost") - 1 + (id->len ? id->len : 7);
    }

    ngx_http_retell_mail_put_str(b, "Message-ID:");

    if (sizeof("Message-ID: <>") - 1 + len > NGX_HTTP_RETELL_MAIL_LINE) {
        ngx_http_retell_mail_put_str(b, "\r\n");
    }

    ngx_http_retell_mail_put_str(b, " <");

    if (id == &m->call_id) {
        ngx_http_retell_mail_put_str(b, "retell-");
    }

    if (id->len == 0) {
        ngx_http_retell_mail_put_str(b, "unknown");
    }

    /* the line " <...>" within RFC 5322's 998: a longer id is cut, stably */

    max = NGX_HTTP_RETELL_MAIL_HARD_LINE - sizeof(" <>") + 1
          - ((id == &m->call_id) ? sizeof("retell-@localhost") - 1 : 0);

    for (i = 0; i < id->len && i < max; i++) {
        c = id->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9')
              || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~.@", c) != NULL)))
        {
            c = '_';
        }

        ngx_http_retell_mail_put_char(b, c);
    }

    if (id == &m->call_id) {
        ngx_http_retell_mail_put_str(b, "@localhost");
    }

    ngx_http_retell_mail_put_str(b, ">\r\n");
}


/*
 * An unstructured header (RFC 5322 3.2.5) from a one-line value: plain
 * words folded at spaces when that is unambiguous and fits, otherwise
 * RFC 2047 B encoded-words of whole UTF-8 characters, one per line.
 */

static void
ngx_http_retell_mail_unstructured(ngx_http_retell_buf_t *b,
    const char *name, const ngx_http_retell_str_t *value)
{
    size_t         col, len, room;
    const u_char  *p, *q, *end;

    len = strlen(name);
    ngx_http_retell_mail_put(b, name, len);
    ngx_http_retell_mail_put_char(b, ':');
    col = len + 1;

    p = value->data;
    end = value->data + value->len;

    if (ngx_http_retell_mail_plain(name, value)) {

        while (p < end) {
            q = memchr(p, ' ', end - p);
            if (q == NULL) {
                q = end;
            }

            if (p != value->data
                && col + 1 + (q - p) > NGX_HTTP_RETELL_MAIL_LINE)
            {
                ngx_http_retell_mail_put_str(b, "\r\n");
                col = 0;
            }

            ngx_http_retell_mail_put_char(b, ' ');
            ngx_http_retell_mail_put(b, p, q - p);
            col += 1 + (q - p);

            p = (q < end) ? q + 1 : end;
        }

        ngx_http_retell_mail_put_str(b, "\r\n");
        return;
    }

    while (p < end) {

        /* a long name leaves the first word a line of its own */

        if (p != value->data
            || col + 1 + NGX_HTTP_RETELL_MAIL_WORD_WRAP + 8
               > NGX_HTTP_RETELL_MAIL_LINE)
        {
            ngx_http_retell_mail_put_str(b, "\r\n");
            col = 0;
        }

        /* base64 characters that fit both the line and the word limit */

        room = NGX_HTTP_RETELL_MAIL_LINE - col - 1
               - NGX_HTTP_RETELL_MAIL_WORD_WRAP;

        if (room > NGX_HTTP_RETELL_MAIL_WORD - NGX_HTTP_RETELL_MAIL_WORD_WRAP)
        {
            room = NGX_HTTP_RETELL_MAIL_WORD - NGX_HTTP_RETELL_MAIL_WORD_WRAP;
        }

        len = ngx_http_retell_mail_utf8_cut(p, end - p, room / 4 * 3);

        ngx_http_retell_mail_put_str(b, " =?UTF-8?B?");
        ngx_http_retell_mail_base64(b, p, len);
        ngx_http_retell_mail_put_str(b, "?=");

        p += len;
    }

    ngx_http_retell_mail_put_str(b, "\r\n");
}


/* printable ASCII words that fit a line, and nothing like "=?" */

static int
ngx_http_retell_mail_plain(const char *name,
    const ngx_http_retell_str_t *value)
{
    size_t         word, first;
    const u_char  *p, *end;

    first = strlen(name) + 1;
    word = 0;

    p = value->data;
    end = value->data + value->len;

    for ( /* void */ ; p < end; p++) {
        if (*p < 0x20 || *p > 0x7e || (*p == '=' && p + 1 < end && p[1] == '?'))
        {
            return 0;
        }

        if (*p == ' ') {
            first = 0;
            word = 0;
            continue;
        }

        if (first + 1 + ++word > NGX_HTTP_RETELL_MAIL_LINE) {
            return 0;
        }
    }

    return 1;
}


/* at most max bytes, not ending inside a UTF-8 sequence when valid */

static size_t
ngx_http_retell_mail_utf8_cut(const u_char *p, size_t len, size_t max)
{
    size_t  n;

    if (len <= max) {
        return len;
    }

    n = max;

    while (n > 0 && n + 3 > max && (p[n] & 0xc0) == 0x80) {
        n--;
    }

    if (n == 0 || p[n] < 0xc0) {
        return max;
    }

    return n;
}


static void
ngx_http_retell_mail_base64(ngx_http_retell_buf_t *b, const u_char *p,
    size_t len)
{
    u_char  out[4];

    static const u_char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    while (len >= 3) {
        out[0] = alphabet[p[0] >> 2];
        out[1] = alphabet[((p[0] & 0x03) << 4) | (p[1] >> 4)];
        out[2] = alphabet[((p[1] & 0x0f) << 2) | (p[2] >> 6)];
        out[3] = alphabet[p[2] & 0x3f];
        ngx_http_retell_mail_put(b, out, 4);

        p += 3;
        len -= 3;
    }

    if (len == 0) {
        return;
    }

    out[0] = alphabet[p[0] >> 2];

    if (len == 1) {
        out[1] = alphabet[(p[0] & 0x03) << 4];
        out[2] = '=';

    } else {
        out[1] = alphabet[((p[0] & 0x03) << 4) | (p[1] >> 4)];
        out[2] = alphabet[(p[1] & 0x0f) << 2];
    }

    out[3] = '=';
    ngx_http_retell_mail_put(b, out, 4);
}


/*
 * RFC 2045 6.7 on text with "\n" line ends: those become CRLF, lines are
 * soft-broken at 76 columns, and '=', whitespace before a line end, bytes
 * outside printable ASCII and controls other than TAB are =XX.
 */

static void
ngx_http_retell_mail_qp(ngx_http_retell_buf_t *b, const u_char *p,
    size_t len)
{
    size_t    i, col, n, max;
    u_char    c, out[3];
    unsigned  eol;

    col = 0;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c == '\n') {
            ngx_http_retell_mail_put_str(b, "\r\n");
            col = 0;
            continue;
        }

        eol = (i + 1 == len || p[i + 1] == '\n');

        if ((c >= 0x21 && c <= 0x7e && c != '=')
            || ((c == ' ' || c == '\t') && !eol))
        {
            out[0] = c;
            n = 1;

        } else {
            out[0] = '=';
            out[1] = ngx_http_retell_mail_hex[c >> 4];
            out[2] = ngx_http_retell_mail_hex[c & 0xf];
            n = 3;
        }

        /* the last character of a line needs no room for a soft break */

        max = eol ? NGX_HTTP_RETELL_MAIL_QP_LINE
                  : NGX_HTTP_RETELL_MAIL_QP_LINE - 1;

        if (col + n > max) {
            ngx_http_retell_mail_put_str(b, "=\r\n");
            col = 0;
        }

        ngx_http_retell_mail_put(b, out, n);
        col += n;
    }

    if (len == 0 || p[len - 1] != '\n') {
        ngx_http_retell_mail_put_str(b, "\r\n");
    }
}


void
ngx_http_retell_mail_put(ngx_http_retell_buf_t *b, const void *data,
    size_t len)
{
    if (b->pos != NULL && len) {
        memcpy(b->pos + b->len, data, len);
    }

    b->len += len;
}


void
ngx_http_retell_mail_put_char(ngx_http_retell_buf_t *b, u_char c)
{
    if (b->pos != NULL) {
        b->pos[b->len] = c;
    }

    b->len++;
}


int
ngx_http_retell_mail_valid_address(const u_char *addr, size_t len)
{
    size_t         i, local, label;
    u_char         c;
    const u_char  *at;

    if (addr == NULL || len == 0 || len > 254) {
        return 0;
    }

    at = memchr(addr, '@', len);
    if (at == NULL) {
        return 0;
    }

    /* dot-atom: atext runs joined by single dots (RFC 5322 3.4.1) */

    local = at - addr;

    if (local == 0 || local > 64 || addr[0] == '.' || addr[local - 1] == '.') {
        return 0;
    }

    for (i = 0; i < local; i++) {
        c = addr[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
        {
            continue;
        }

        if (c == '.' && addr[i + 1] != '.') {
            continue;
        }

        return 0;
    }

    /* a host name, as retell.valid_email() wants it: two labels at least */

    label = 0;
    at++;
    len -= local + 1;

    if (len == 0 || at[0] == '.' || at[len - 1] == '.'
        || memchr(at, '.', len) == NULL)
    {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = at[i];

        if (c == '.') {
            if (label == 0 || at[i - 1] == '-') {
                return 0;
            }

            label = 0;
            continue;
        }

        if (c == '-' && label == 0) {
            return 0;
        }

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            return 0;
        }

        if (++label > 63) {
            return 0;
        }
    }

    return at[len - 1] != '-';
}


/* a value meant for one line: every control character becomes a space */

void
ngx_http_retell_mail_put_line(ngx_http_retell_buf_t *b, const u_char *s,
    size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        ngx_http_retell_mail_put_char(b, (s[i] < 0x20 || s[i] == 0x7f)
                                         ? ' ' : s[i]);
    }
}
