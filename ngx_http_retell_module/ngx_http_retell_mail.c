
/*
 * The notification email of docs/email.md.
 *
 * The caller's allocator can neither grow nor free a buffer, so every
 * result is produced by running the same code twice: once only counting
 * bytes, once writing them into a buffer of exactly that size.
 *
 * Header safety: every header value taken from a call is first reduced to
 * one line (control characters become spaces), then written either as
 * plain folded words or as RFC 2047 encoded-words; addresses that are not
 * plain addr-specs never reach the To header.  The body is plain text,
 * sent quoted-printable, so no byte of it can end the header block, look
 * like the end of DATA or break a line limit.
 */


#include "ngx_http_retell_mail_buf.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>


static int ngx_http_retell_mail_compose(const ngx_http_retell_mail_t *m,
    yajl_val data, ngx_http_retell_alloc_pt alloc, void *pool,
    ngx_http_retell_str_t *subject, ngx_http_retell_str_t *text,
    ngx_http_retell_str_t *message);
static int ngx_http_retell_mail_parse(const ngx_http_retell_str_t *json,
    ngx_http_retell_alloc_pt alloc, void *pool, yajl_val *data);
static int ngx_http_retell_mail_shallow(const u_char *json, size_t len);
static int ngx_http_retell_mail_oneline(const u_char *s, size_t len,
    ngx_http_retell_alloc_pt alloc, void *pool, ngx_http_retell_str_t *dst);
static size_t ngx_http_retell_mail_collapse(u_char *s, size_t len);

static void ngx_http_retell_mail_subject(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m);
static void ngx_http_retell_mail_text(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m, yajl_val data);
static void ngx_http_retell_mail_duration(ngx_http_retell_buf_t *b,
    const ngx_http_retell_str_t *ms);
static void ngx_http_retell_mail_flag(ngx_http_retell_buf_t *b,
    const char *label, const ngx_http_retell_str_t *s);
static void ngx_http_retell_mail_business(ngx_http_retell_buf_t *b,
    yajl_val data);
static void ngx_http_retell_mail_json(ngx_http_retell_buf_t *b, yajl_val v);
static void ngx_http_retell_mail_json_string(ngx_http_retell_buf_t *b,
    const char *s);


static void ngx_http_retell_mail_put_block(ngx_http_retell_buf_t *b,
    const u_char *s, size_t len);
static void ngx_http_retell_mail_field(ngx_http_retell_buf_t *b,
    const char *label, const ngx_http_retell_str_t *value);
static void ngx_http_retell_mail_title(ngx_http_retell_buf_t *b,
    const char *title);
static int ngx_http_retell_mail_is(const ngx_http_retell_str_t *s,
    const char *text);


int
ngx_http_retell_mail_format(const ngx_http_retell_mail_t *m,
    ngx_http_retell_alloc_pt alloc, void *pool,
    ngx_http_retell_str_t *subject, ngx_http_retell_str_t *text,
    ngx_http_retell_str_t *message)
{
    int       rc;
    yajl_val  data;

    if (ngx_http_retell_mail_parse(&m->custom_analysis_data, alloc, pool,
                                   &data)
        != 0)
    {
        return -1;
    }

    rc = ngx_http_retell_mail_compose(m, data, alloc, pool, subject, text,
                                      message);

    /* yajl allocates with malloc(): the tree never outlives the call */

    if (data != NULL) {
        yajl_tree_free(data);
    }

    return rc;
}


int
ngx_http_retell_mail_dot_stuff(const ngx_http_retell_str_t *message,
    ngx_http_retell_alloc_pt alloc, void *pool, ngx_http_retell_str_t *data)
{
    size_t         i, n;
    u_char        *d;
    const u_char  *s;

    s = message->data;
    n = message->len;

    for (i = 0; i < message->len; i++) {
        if (s[i] == '.' && (i == 0 || s[i - 1] == '\n')) {
            n++;
        }
    }

    if (message->len == 0) {
        n += sizeof(".\r\n") - 1;

    } else if (message->len >= 2 && s[message->len - 2] == '\r'
               && s[message->len - 1] == '\n')
    {
        n += sizeof(".\r\n") - 1;

    } else {
        n += sizeof("\r\n.\r\n") - 1;
    }

    d = alloc(pool, n + 1);
    if (d == NULL) {
        return -1;
    }

    data->data = d;

    for (i = 0; i < message->len; i++) {
        if (s[i] == '.' && (i == 0 || s[i - 1] == '\n')) {
            *d++ = '.';
        }

        *d++ = s[i];
    }

    if (message->len && (message->len < 2 || s[message->len - 2] != '\r'
                         || s[message->len - 1] != '\n'))
    {
        *d++ = '\r';
        *d++ = '\n';
    }

    memcpy(d, ".\r\n", sizeof(".\r\n"));

    data->len = n;

    return 0;
}


static int
ngx_http_retell_mail_compose(const ngx_http_retell_mail_t *m, yajl_val data,
    ngx_http_retell_alloc_pt alloc, void *pool,
    ngx_http_retell_str_t *subject, ngx_http_retell_str_t *text,
    ngx_http_retell_str_t *message)
{
    ngx_http_retell_str_t  call_id;
    ngx_http_retell_buf_t  b;

    /* the subject: one line, single spaces, nothing a header cannot hold */

    b.pos = NULL;
    b.len = 0;
    ngx_http_retell_mail_subject(&b, m);

    subject->data = alloc(pool, b.len + 1);
    if (subject->data == NULL) {
        return -1;
    }

    b.pos = subject->data;
    b.len = 0;
    ngx_http_retell_mail_subject(&b, m);

    subject->len = ngx_http_retell_mail_collapse(subject->data, b.len);
    subject->data[subject->len] = '\0';

    /* the text */

    b.pos = NULL;
    b.len = 0;
    ngx_http_retell_mail_text(&b, m, data);

    text->data = alloc(pool, b.len + 1);
    if (text->data == NULL) {
        return -1;
    }

    b.pos = text->data;
    b.len = 0;
    ngx_http_retell_mail_text(&b, m, data);

    text->len = b.len;
    text->data[text->len] = '\0';

    /* the message */

    if (ngx_http_retell_mail_oneline(m->call_id.data, m->call_id.len, alloc,
                                     pool, &call_id)
        != 0)
    {
        return -1;
    }

    b.pos = NULL;
    b.len = 0;
    ngx_http_retell_mail_message(&b, m, subject, &call_id, text);

    message->data = alloc(pool, b.len + 1);
    if (message->data == NULL) {
        return -1;
    }

    b.pos = message->data;
    b.len = 0;
    ngx_http_retell_mail_message(&b, m, subject, &call_id, text);

    message->len = b.len;
    message->data[message->len] = '\0';

    return 0;
}


/* *data: the object, or NULL when there is no usable one; -1 on no memory */

static int
ngx_http_retell_mail_parse(const ngx_http_retell_str_t *json,
    ngx_http_retell_alloc_pt alloc, void *pool, yajl_val *data)
{
    char      *copy;
    yajl_val   v;

    *data = NULL;

    if (json->len == 0 || !ngx_http_retell_mail_shallow(json->data, json->len))
    {
        return 0;
    }

    /* yajl_tree_parse() wants a NUL-terminated string */

    copy = alloc(pool, json->len + 1);
    if (copy == NULL) {
        return -1;
    }

    memcpy(copy, json->data, json->len);
    copy[json->len] = '\0';

    v = yajl_tree_parse(copy, NULL, 0);
    if (v == NULL) {
        return 0;
    }

    if (!YAJL_IS_OBJECT(v) || v->u.object.len == 0) {
        yajl_tree_free(v);
        return 0;
    }

    *data = v;

    return 0;
}


/*
 * yajl_tree_free() and the JSON writer here recurse: the nesting is
 * checked first, so text from anywhere cannot exhaust the stack.
 * yajl_tree_parse() takes comments, which this scan does not follow: a
 * "/" outside a string is refused (jsonb text never has one).
 */

static int
ngx_http_retell_mail_shallow(const u_char *json, size_t len)
{
    size_t    i, depth;
    unsigned  in_string;

    depth = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {

        if (in_string) {
            if (json[i] == '\\') {
                i++;

            } else if (json[i] == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (json[i]) {

        case '"':
            in_string = 1;
            break;

        case '/':
            return 0;

        case '{':
        case '[':
            if (++depth > NGX_HTTP_RETELL_MAX_DEPTH) {
                return 0;
            }
            break;

        case '}':
        case ']':
            if (depth) {
                depth--;
            }
            break;
        }
    }

    return 1;
}


/* a copy reduced to one line of single spaces, for a header value */

static int
ngx_http_retell_mail_oneline(const u_char *s, size_t len,
    ngx_http_retell_alloc_pt alloc, void *pool, ngx_http_retell_str_t *dst)
{
    ngx_http_retell_buf_t  b;

    dst->data = alloc(pool, len + 1);
    if (dst->data == NULL) {
        return -1;
    }

    b.pos = dst->data;
    b.len = 0;
    ngx_http_retell_mail_put_line(&b, s, len);

    dst->len = ngx_http_retell_mail_collapse(dst->data, len);
    dst->data[dst->len] = '\0';

    return 0;
}


/* runs of spaces become one and none is left at either end */

static size_t
ngx_http_retell_mail_collapse(u_char *s, size_t len)
{
    size_t   i;
    u_char  *d;

    d = s;

    for (i = 0; i < len; i++) {
        if (s[i] == ' ' && (d == s || d[-1] == ' ')) {
            continue;
        }

        *d++ = s[i];
    }

    if (d > s && d[-1] == ' ') {
        d--;
    }

    return d - s;
}


static void
ngx_http_retell_mail_subject(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m)
{
    if (ngx_http_retell_mail_is(&m->reason, "call_transfer")) {
        ngx_http_retell_mail_put_str(b, "[Call transferred] ");

    } else if (ngx_http_retell_mail_is(&m->reason, "action_required")) {
        ngx_http_retell_mail_put_str(b, "[Action required] ");

    } else if (ngx_http_retell_mail_is(&m->reason, "transfer_failed")) {
        ngx_http_retell_mail_put_str(b, "[Transfer failed] ");

    } else if (ngx_http_retell_mail_is(&m->reason, "call_failed")) {
        ngx_http_retell_mail_put_str(b, "[Call dropped] ");

    } else {
        ngx_http_retell_mail_put_str(b, "[Ticket needs attention] ");
    }

    if (ngx_http_retell_mail_is(&m->direction, "outbound")) {
        ngx_http_retell_mail_put_str(b, "Call with ");

    } else {
        ngx_http_retell_mail_put_str(b, "Call from ");
    }

    if (m->customer_name.len == 0 && m->customer_phone.len == 0) {
        ngx_http_retell_mail_put_str(b, "unknown number");
        return;
    }

    ngx_http_retell_mail_put_line(b, m->customer_name.data,
                                  m->customer_name.len);

    if (m->customer_name.len && m->customer_phone.len) {
        ngx_http_retell_mail_put_char(b, ' ');
    }

    ngx_http_retell_mail_put_line(b, m->customer_phone.data,
                                  m->customer_phone.len);
}


static void
ngx_http_retell_mail_text(ngx_http_retell_buf_t *b,
    const ngx_http_retell_mail_t *m, yajl_val data)
{
    if (ngx_http_retell_mail_is(&m->reason, "call_transfer")) {
        ngx_http_retell_mail_put_str(b,
                                 "The call was transferred to a person.\n");

    } else if (ngx_http_retell_mail_is(&m->reason, "action_required")) {
        ngx_http_retell_mail_put_str(b,
                 "Action required: the call analysis asks for follow-up.\n");

    } else if (ngx_http_retell_mail_is(&m->reason, "transfer_failed")) {
        ngx_http_retell_mail_put_str(b,
                 "The caller asked for a person and the transfer did not "
                 "connect: call them back.\n");

    } else if (ngx_http_retell_mail_is(&m->reason, "call_failed")) {
        ngx_http_retell_mail_put_str(b,
                 "The call was dropped by the phone platform before the "
                 "caller was heard out: call them back.\n");

    } else {
        ngx_http_retell_mail_put_str(b,
                                 "The ticket of this call needs attention.\n");
    }

    if (m->customer_name.len || m->customer_phone.len) {
        ngx_http_retell_mail_title(b, "Customer");
        ngx_http_retell_mail_field(b, "Name", &m->customer_name);
        ngx_http_retell_mail_field(b, "Phone", &m->customer_phone);
    }

    if (m->direction.len || m->call_id.len || m->company_name.len
        || m->started_at.len || m->duration_ms.len
        || m->disconnection_reason.len)
    {
        ngx_http_retell_mail_title(b, "Call");
        ngx_http_retell_mail_field(b, "Direction", &m->direction);
        ngx_http_retell_mail_field(b, "Call ID", &m->call_id);
        ngx_http_retell_mail_field(b, "Company", &m->company_name);
        ngx_http_retell_mail_field(b, "Started", &m->started_at);
        ngx_http_retell_mail_duration(b, &m->duration_ms);
        ngx_http_retell_mail_field(b, "How it ended",
                                   &m->disconnection_reason);
    }

    if (m->ticket_id.len || m->ticket_status.len || m->ticket_url.len) {
        ngx_http_retell_mail_title(b, "Ticket");
        ngx_http_retell_mail_field(b, "ID", &m->ticket_id);
        ngx_http_retell_mail_field(b, "Status", &m->ticket_status);
        ngx_http_retell_mail_field(b, "Link", &m->ticket_url);
    }

    if (m->call_summary.len) {
        ngx_http_retell_mail_title(b, "Summary");
        ngx_http_retell_mail_put_block(b, m->call_summary.data,
                                       m->call_summary.len);
    }

    if (m->user_sentiment.len || m->call_successful.len
        || m->in_voicemail.len)
    {
        ngx_http_retell_mail_title(b, "Analysis");
        ngx_http_retell_mail_field(b, "Sentiment", &m->user_sentiment);
        ngx_http_retell_mail_flag(b, "Successful", &m->call_successful);
        ngx_http_retell_mail_flag(b, "Voicemail", &m->in_voicemail);
    }

    if (data != NULL) {
        ngx_http_retell_mail_title(b, "Business data");
        ngx_http_retell_mail_business(b, data);
    }

    if (m->transcript.len) {
        ngx_http_retell_mail_title(b, "Transcript");
        ngx_http_retell_mail_put_block(b, m->transcript.data,
                                       m->transcript.len);
    }

    if (m->recording_url.len) {
        ngx_http_retell_mail_title(b, "Recording");
        ngx_http_retell_mail_put_line(b, m->recording_url.data,
                                      m->recording_url.len);
        ngx_http_retell_mail_put_char(b, '\n');

        /* a link that may be dead is not offered without a word */

        if (ngx_http_retell_mail_is(&m->recording_note, "storage")) {
            ngx_http_retell_mail_put_str(b,
                     "Retell keeps no recording of this call (its data "
                     "storage setting):\nthe link worked for 10 minutes "
                     "after the call only.\n");

        } else if (ngx_http_retell_mail_is(&m->recording_note, "age")) {
            ngx_http_retell_mail_put_str(b,
                     "The link may have expired: signed recording links "
                     "last 24 hours by\ndefault, and this call ended "
                     "longer ago.\n");
        }
    }
}


/* whole seconds, rounded; a value that is not a count is shown as given */

static void
ngx_http_retell_mail_duration(ngx_http_retell_buf_t *b,
    const ngx_http_retell_str_t *ms)
{
    int                 n;
    char                line[32];
    size_t              i;
    unsigned long long  v;

    if (ms->len == 0) {
        return;
    }

    v = 0;

    for (i = 0; i < ms->len && i < 18; i++) {
        if (ms->data[i] < '0' || ms->data[i] > '9') {
            break;
        }

        v = v * 10 + (ms->data[i] - '0');
    }

    ngx_http_retell_mail_put_str(b, "Duration: ");

    if (i < ms->len) {
        ngx_http_retell_mail_put_line(b, ms->data, ms->len);
        ngx_http_retell_mail_put_str(b, " ms\n");
        return;
    }

    n = snprintf(line, sizeof(line), "%llu s\n", (v + 500) / 1000);
    ngx_http_retell_mail_put(b, line, n);
}


/* PostgreSQL's "t" and "f" as yes and no */

static void
ngx_http_retell_mail_flag(ngx_http_retell_buf_t *b, const char *label,
    const ngx_http_retell_str_t *s)
{
    ngx_http_retell_str_t  yes_no;

    if (ngx_http_retell_mail_is(s, "t") || ngx_http_retell_mail_is(s, "true"))
    {
        yes_no.data = (u_char *) "yes";
        yes_no.len = 3;

    } else if (ngx_http_retell_mail_is(s, "f")
               || ngx_http_retell_mail_is(s, "false"))
    {
        yes_no.data = (u_char *) "no";
        yes_no.len = 2;

    } else {
        yes_no = *s;
    }

    ngx_http_retell_mail_field(b, label, &yes_no);
}


/* "key: value" in the object's order; strings as they are, the rest JSON */

static void
ngx_http_retell_mail_business(ngx_http_retell_buf_t *b, yajl_val data)
{
    size_t       i;
    yajl_val     v;
    const char  *key;

    for (i = 0; i < data->u.object.len; i++) {
        key = data->u.object.keys[i];
        v = data->u.object.values[i];

        ngx_http_retell_mail_put_line(b, (const u_char *) key, strlen(key));
        ngx_http_retell_mail_put_str(b, ": ");

        if (YAJL_IS_STRING(v)) {
            ngx_http_retell_mail_put_block(b, (const u_char *) v->u.string,
                                           strlen(v->u.string));

        } else {
            ngx_http_retell_mail_json(b, v);
            ngx_http_retell_mail_put_char(b, '\n');
        }
    }
}


/* compact JSON; the depth was bounded by ngx_http_retell_mail_shallow() */

static void
ngx_http_retell_mail_json(ngx_http_retell_buf_t *b, yajl_val v)
{
    size_t  i;

    switch (v->type) {

    case yajl_t_string:
        ngx_http_retell_mail_json_string(b, v->u.string);
        break;

    case yajl_t_number:
        ngx_http_retell_mail_put(b, v->u.number.r, strlen(v->u.number.r));
        break;

    case yajl_t_object:
        ngx_http_retell_mail_put_char(b, '{');

        for (i = 0; i < v->u.object.len; i++) {
            if (i) {
                ngx_http_retell_mail_put_char(b, ',');
            }

            ngx_http_retell_mail_json_string(b, v->u.object.keys[i]);
            ngx_http_retell_mail_put_char(b, ':');
            ngx_http_retell_mail_json(b, v->u.object.values[i]);
        }

        ngx_http_retell_mail_put_char(b, '}');
        break;

    case yajl_t_array:
        ngx_http_retell_mail_put_char(b, '[');

        for (i = 0; i < v->u.array.len; i++) {
            if (i) {
                ngx_http_retell_mail_put_char(b, ',');
            }

            ngx_http_retell_mail_json(b, v->u.array.values[i]);
        }

        ngx_http_retell_mail_put_char(b, ']');
        break;

    case yajl_t_true:
        ngx_http_retell_mail_put_str(b, "true");
        break;

    case yajl_t_false:
        ngx_http_retell_mail_put_str(b, "false");
        break;

    default:
        ngx_http_retell_mail_put_str(b, "null");
        break;
    }
}


static void
ngx_http_retell_mail_json_string(ngx_http_retell_buf_t *b, const char *s)
{
    u_char  c, esc[6];

    ngx_http_retell_mail_put_char(b, '"');

    for ( /* void */ ; *s; s++) {
        c = (u_char) *s;

        switch (c) {

        case '"':
        case '\\':
            ngx_http_retell_mail_put_char(b, '\\');
            ngx_http_retell_mail_put_char(b, c);
            break;

        case '\n':
            ngx_http_retell_mail_put_str(b, "\\n");
            break;

        case '\r':
            ngx_http_retell_mail_put_str(b, "\\r");
            break;

        case '\t':
            ngx_http_retell_mail_put_str(b, "\\t");
            break;

        default:
            if (c >= 0x20) {
                ngx_http_retell_mail_put_char(b, c);
                break;
            }

            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = ngx_http_retell_mail_hex[c >> 4];
            esc[5] = ngx_http_retell_mail_hex[c & 0xf];
            ngx_http_retell_mail_put(b, esc, 6);
        }
    }

    ngx_http_retell_mail_put_char(b, '"');
}


/*
 * A value of several lines: CRLF, CR and LF all become "\n", and the
 * block ends with one.  NUL becomes a space: the text is stored in a
 * PostgreSQL text column, which cannot hold it.
 */

static void
ngx_http_retell_mail_put_block(ngx_http_retell_buf_t *b, const u_char *s,
    size_t len)
{
    size_t  i;
    u_char  c;

    c = '\n';

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c == '\r') {
            if (i + 1 < len && s[i + 1] == '\n') {
                continue;
            }

            c = '\n';

        } else if (c == '\0') {
            c = ' ';
        }

        ngx_http_retell_mail_put_char(b, c);
    }

    if (c != '\n' || len == 0) {
        ngx_http_retell_mail_put_char(b, '\n');
    }
}


static void
ngx_http_retell_mail_field(ngx_http_retell_buf_t *b, const char *label,
    const ngx_http_retell_str_t *value)
{
    if (value->len == 0) {
        return;
    }

    ngx_http_retell_mail_put(b, label, strlen(label));
    ngx_http_retell_mail_put_str(b, ": ");
    ngx_http_retell_mail_put_line(b, value->data, value->len);
    ngx_http_retell_mail_put_char(b, '\n');
}


/* an empty line, the title, and a rule as long as the title */

static void
ngx_http_retell_mail_title(ngx_http_retell_buf_t *b, const char *title)
{
    size_t  i, len;

    len = strlen(title);

    ngx_http_retell_mail_put_char(b, '\n');
    ngx_http_retell_mail_put(b, title, len);
    ngx_http_retell_mail_put_char(b, '\n');

    for (i = 0; i < len; i++) {
        ngx_http_retell_mail_put_char(b, '-');
    }

    ngx_http_retell_mail_put_char(b, '\n');
}


static int
ngx_http_retell_mail_is(const ngx_http_retell_str_t *s, const char *text)
{
    size_t  len;

    len = strlen(text);

    return s->len == len && memcmp(s->data, text, len) == 0;
}
