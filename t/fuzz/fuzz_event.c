
/*
 * libFuzzer harness: ngx_http_retell_event_parse() on any body.
 *
 * The body is parsed four times: with a 160-byte error buffer, with none,
 * with a 3-byte one (the answers must agree), and with the allocator
 * failing after k allocations (the answer must be -2).  An accepted body
 * must then be one the module can store, and its event one the stored
 * text agrees with:
 *
 *   - every string field NUL-terminated, no NUL inside, within its bound,
 *     strict UTF-8 (D3); the JSON fields re-parse, objects where one is
 *     required;
 *   - the whole body one PostgreSQL's jsonb cast takes (the raw payload is
 *     stored as jsonb): strict UTF-8, \u surrogate escapes in pairs (D3),
 *     numbers numeric can hold (S1), only the four whitespace bytes JSON
 *     has (yajl takes \f and \v too: N1, found after the review);
 *   - the facts (action_required, qualified) what the stored texts say,
 *     read as jsonb reads them, the last of duplicate keys winning (D4),
 *     and every field the value the body has for it read that way.
 *
 * The oracles are written here, apart from the module's own checks: "the
 * parser refuses it (-1) or the result has the property".
 */


#include "fuzz.h"
#include "ngx_http_retell_event.h"

#include <strings.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>


#define ERR_LEN  160

/* PostgreSQL's numeric (numeric.c): the bounds of its input */
#define PG_WEIGHT_MAX_DIGIT  131071     /* |x| < 1e131072 */
#define PG_DSCALE_MAX        16383
#define PG_EXPONENT_MAX      1073741823 /* INT_MAX / 2, set_var_from_str */

#define INT_FIELD_MAX        999999999999999999LL   /* 18 digits */


typedef enum {
    K_STR = 0,
    K_INT,
    K_BOOL,
    K_ANY_JSON,
    K_OBJECT_JSON
} kind_e;


typedef struct {
    int          level;     /* 0 top, 1 call, 2 call.call_analysis */
    const char  *name;
    kind_e       kind;
    size_t       offset;
    size_t       max;
} field_t;


#define F(level, name, kind, max)                                             \
    { level, #name, kind, offsetof(ngx_http_retell_event_t, name), max }

#define SHORT  NGX_HTTP_RETELL_SHORT_MAX_LEN
#define ANY    ((size_t) -1)

static const field_t  fields[] = {
    F(0, event, K_STR, SHORT),
    F(1, call_id, K_STR, NGX_HTTP_RETELL_CALL_ID_MAX_LEN),
    F(1, agent_id, K_STR, SHORT),
    F(1, call_type, K_STR, SHORT),
    F(1, direction, K_STR, SHORT),
    F(1, from_number, K_STR, SHORT),
    F(1, to_number, K_STR, SHORT),
    F(1, call_status, K_STR, SHORT),
    F(1, disconnection_reason, K_STR, SHORT),
    F(1, transcript, K_STR, ANY),
    F(1, recording_url, K_STR, NGX_HTTP_RETELL_URL_MAX_LEN),
    F(1, transfer_destination, K_STR, SHORT),
    F(1, start_timestamp, K_INT, 0),
    F(1, end_timestamp, K_INT, 0),
    F(1, duration_ms, K_INT, 0),
    F(1, metadata, K_ANY_JSON, ANY),
    F(1, retell_llm_dynamic_variables, K_OBJECT_JSON, ANY),
    F(1, collected_dynamic_variables, K_OBJECT_JSON, ANY),
    F(2, call_summary, K_STR, ANY),
    F(2, user_sentiment, K_STR, SHORT),
    F(2, call_successful, K_BOOL, 0),
    F(2, in_voicemail, K_BOOL, 0),
    F(2, custom_analysis_data, K_OBJECT_JSON, ANY),
    { -1, NULL, 0, 0, 0 }
};


static const char  *level_path[] = { "", "call.", "call.call_analysis." };


/* S1: NULL when PostgreSQL's numeric takes the JSON number, else why not */

static const char *
pg_numeric_refuses(const u_char *p, size_t len)
{
    int          neg;
    size_t       i, int_start, int_len, frac_start, frac_len, k;
    long long    e, dscale, pos;

    i = 0;

    if (i < len && p[i] == '-') {
        i++;
    }

    int_start = i;

    while (i < len && p[i] >= '0' && p[i] <= '9') {
        i++;
    }

    int_len = i - int_start;
    frac_start = i;
    frac_len = 0;

    if (i < len && p[i] == '.') {
        frac_start = ++i;

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            i++;
        }

        frac_len = i - frac_start;
    }

    e = 0;

    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        neg = 0;

        if (i < len && (p[i] == '+' || p[i] == '-')) {
            neg = (p[i] == '-');
            i++;
        }

        for ( /* void */ ; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
            if (e < 100000000000LL) {      /* saturates, as strtol() does */
                e = e * 10 + (p[i] - '0');
            }
        }

        if (neg) {
            e = -e;
        }
    }

    if (e >= PG_EXPONENT_MAX || e <= -PG_EXPONENT_MAX) {
        return "its exponent is beyond INT_MAX/2";
    }

    /* the display scale counts the digits written, zeros included */

    dscale = (long long) frac_len - e;

    if (dscale > PG_DSCALE_MAX) {
        return "its display scale is over 16383";
    }

    /* the power of ten of the first significant digit */

    for (k = 0; k < int_len; k++) {
        if (p[int_start + k] != '0') {
            pos = (long long) (int_len - 1 - k) + e;
            goto found;
        }
    }

    for (k = 0; k < frac_len; k++) {
        if (p[frac_start + k] != '0') {
            pos = -(long long) (k + 1) + e;
            goto found;
        }
    }

    return NULL;        /* zero */

found:

    if (pos > PG_WEIGHT_MAX_DIGIT) {
        return "its magnitude is 1e131072 or more";
    }

    return NULL;
}


static int
hex4(const u_char *p, unsigned *v)
{
    int  i, c;

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
 * D3, S1 on the whole accepted body, which yajl has found to be JSON:
 * what PostgreSQL's JSON lexer adds to that, for p_payload::jsonb.
 */

static void
check_body_for_jsonb(const u_char *p, size_t len)
{
    size_t       i, j, bad;
    unsigned     u, lo;
    const char  *why;

    bad = fz_utf8_bad(p, len);
    FZ_CHECK(bad == len, "D3: body accepted with invalid UTF-8 at offset "
             "%zu: %s", bad, fz_show(p + bad, len - bad));

    for (i = 0; i < len; /* void */) {

        if (p[i] == '"') {
            for (i++; i < len && p[i] != '"'; /* void */) {
                if (p[i] != '\\') {
                    i++;
                    continue;
                }

                FZ_CHECK(i + 1 < len, "body accepted ending in a \\");

                if (p[i + 1] != 'u') {
                    i += 2;
                    continue;
                }

                FZ_CHECK(i + 6 <= len && hex4(p + i + 2, &u),
                         "body accepted with a broken \\u escape");
                FZ_CHECK(u != 0, "body accepted with \\u0000, which jsonb "
                         "refuses");
                FZ_CHECK(u < 0xdc00 || u > 0xdfff,
                         "D3: body accepted with a lone low surrogate escape "
                         "%s", fz_show(p + i, 6));

                if (u >= 0xd800 && u <= 0xdbff) {
                    FZ_CHECK(i + 12 <= len && p[i + 6] == '\\'
                             && p[i + 7] == 'u' && hex4(p + i + 8, &lo)
                             && lo >= 0xdc00 && lo <= 0xdfff,
                             "D3: body accepted with a high surrogate escape "
                             "not followed by a low one: %s",
                             fz_show(p + i, len - i < 12 ? len - i : 12));
                    i += 6;
                }

                i += 6;
            }

            i++;
            continue;
        }

        if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
            for (j = i; j < len && strchr("0123456789+-.eE", p[j]) != NULL
                        && p[j] != '\0';
                 j++)
            {
                /* void */
            }

            why = pg_numeric_refuses(p + i, j - i);
            FZ_CHECK(why == NULL, "S1: body accepted with the number %s, "
                     "which PostgreSQL's numeric refuses: %s",
                     fz_show(p + i, j - i), why);
            i = j;
            continue;
        }

        /* PostgreSQL's JSON whitespace is these four; yajl takes \f \v */

        FZ_CHECK(strchr(" \t\r\n{}[],:truefalsn", p[i]) != NULL
                 && p[i] != '\0',
                 "N1: body accepted with byte 0x%02x between tokens: yajl "
                 "takes \\f and \\v for whitespace, PostgreSQL's JSON "
                 "does not", p[i]);
        i++;
    }
}


/* a captured JSON text: one value, strict UTF-8, numbers jsonb takes */

typedef struct {
    const char  *name;
    int          depth;
    int          max_depth;
    int          first;         /* 0 none yet, else 'o', 'a' or 's' */
} json_walk_t;


static void
walk_value(json_walk_t *w, int type)
{
    if (w->first == 0) {
        w->first = type;
    }
}


static int
walk_null(void *ctx)
{
    walk_value(ctx, 's');
    return 1;
}


static int
walk_boolean(void *ctx, int v)
{
    (void) v;
    walk_value(ctx, 's');
    return 1;
}


static int
walk_number(void *ctx, const char *s, size_t len)
{
    const char   *why;
    json_walk_t  *w = ctx;

    walk_value(w, 's');

    why = pg_numeric_refuses((const u_char *) s, len);
    FZ_CHECK(why == NULL, "S1: %s keeps the number %s, which PostgreSQL's "
             "numeric refuses: %s", w->name, fz_show((const u_char *) s, len),
             why);

    return 1;
}


static int
walk_string(void *ctx, const u_char *s, size_t len)
{
    json_walk_t  *w = ctx;

    walk_value(w, 's');

    FZ_CHECK(memchr(s, '\0', len) == NULL, "%s keeps a string with a NUL",
             w->name);
    FZ_CHECK(fz_utf8_valid(s, len), "D3: %s keeps a string that is not "
             "strict UTF-8: %s", w->name, fz_show(s, len));

    return 1;
}


static int
walk_key(void *ctx, const u_char *s, size_t len)
{
    json_walk_t  *w = ctx;

    FZ_CHECK(memchr(s, '\0', len) == NULL, "%s keeps a key with a NUL",
             w->name);
    FZ_CHECK(fz_utf8_valid(s, len), "D3: %s keeps a key that is not "
             "strict UTF-8: %s", w->name, fz_show(s, len));

    return 1;
}


static int
walk_open(json_walk_t *w, int type)
{
    walk_value(w, type);

    if (++w->depth > w->max_depth) {
        w->max_depth = w->depth;
    }

    return 1;
}


static int
walk_start_map(void *ctx)
{
    return walk_open(ctx, 'o');
}


static int
walk_start_array(void *ctx)
{
    return walk_open(ctx, 'a');
}


static int
walk_close(void *ctx)
{
    ((json_walk_t *) ctx)->depth--;
    return 1;
}


static const yajl_callbacks  walk_callbacks = {
    walk_null, walk_boolean, NULL, NULL, walk_number, walk_string,
    walk_start_map, walk_key, walk_close, walk_start_array, walk_close
};


static void
check_json_text(const char *name, const ngx_http_retell_str_t *s,
    kind_e kind)
{
    yajl_handle  h;
    yajl_status  st;
    json_walk_t  w;

    memset(&w, 0, sizeof(json_walk_t));
    w.name = name;

    h = yajl_alloc(&walk_callbacks, NULL, &w);
    FZ_CHECK(h != NULL, "yajl_alloc");

    st = yajl_parse(h, s->data, s->len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    FZ_CHECK(st == yajl_status_ok, "%s is not one JSON value: %s", name,
             fz_show(s->data, s->len));
    FZ_CHECK(kind != K_OBJECT_JSON || w.first == 'o',
             "%s is not a JSON object: %s", name, fz_show(s->data, s->len));
    FZ_CHECK(w.max_depth <= NGX_HTTP_RETELL_MAX_DEPTH,
             "%s nests %d deep", name, w.max_depth);
}


/*
 * D4: the facts the rules read, again from the stored texts, as jsonb
 * reads them: of duplicate keys the last wins.
 */

typedef struct {
    int   value;        /* 1, 0 or ABSENT */
    int   invalid;      /* present and unusable */
} fact_t;

typedef struct {
    int          depth;
    int          key;           /* index into names, or -1 */
    const char  *names[3];
    fact_t       facts[3];
} fact_walk_t;


/* "true"/"false" in any case, trimmed: docs/data-and-rules.md's rule, again */

static int
boolean_text(const u_char *s, size_t len, int *value)
{
    static const char  ws[] = " \t\r\n";

    while (len && memchr(ws, s[0], 4) != NULL) {
        s++;
        len--;
    }

    while (len && memchr(ws, s[len - 1], 4) != NULL) {
        len--;
    }

    if (len == 4 && strncasecmp((const char *) s, "true", 4) == 0) {
        *value = 1;
        return 1;
    }

    if (len == 5 && strncasecmp((const char *) s, "false", 5) == 0) {
        *value = 0;
        return 1;
    }

    return 0;
}


static void
fact_set(fact_walk_t *w, int usable, int value)
{
    if (w->depth != 1 || w->key < 0) {
        return;
    }

    w->facts[w->key].value = usable ? value : NGX_HTTP_RETELL_ABSENT;
    w->facts[w->key].invalid = !usable;
    w->key = -1;
}


static int
fact_null(void *ctx)
{
    fact_set(ctx, 0, 0);
    return 1;
}


static int
fact_boolean(void *ctx, int v)
{
    fact_set(ctx, 1, v);
    return 1;
}


static int
fact_number(void *ctx, const char *s, size_t len)
{
    (void) s;
    (void) len;
    fact_set(ctx, 0, 0);
    return 1;
}


static int
fact_string(void *ctx, const u_char *s, size_t len)
{
    int  value, usable;

    usable = boolean_text(s, len, &value);
    fact_set(ctx, usable, usable ? value : 0);
    return 1;
}


static int
fact_open(void *ctx)
{
    fact_walk_t  *w = ctx;

    fact_set(w, 0, 0);
    w->depth++;
    return 1;
}


static int
fact_close(void *ctx)
{
    ((fact_walk_t *) ctx)->depth--;
    return 1;
}


static int
fact_key(void *ctx, const u_char *s, size_t len)
{
    int           i;
    fact_walk_t  *w = ctx;

    if (w->depth != 1) {
        return 1;
    }

    w->key = -1;

    for (i = 0; i < 3 && w->names[i]; i++) {
        if (strlen(w->names[i]) == len && memcmp(w->names[i], s, len) == 0) {
            w->key = i;
        }
    }

    return 1;
}


static const yajl_callbacks  fact_callbacks = {
    fact_null, fact_boolean, NULL, NULL, fact_number, fact_string,
    fact_open, fact_key, fact_close, fact_open, fact_close
};


static void
read_facts(const ngx_http_retell_str_t *s, fact_walk_t *w)
{
    int          i;
    yajl_handle  h;
    yajl_status  st;

    for (i = 0; i < 3; i++) {
        w->facts[i].value = NGX_HTTP_RETELL_ABSENT;
        w->facts[i].invalid = 0;
    }

    w->depth = 0;
    w->key = -1;

    if (s->data == NULL) {
        return;
    }

    h = yajl_alloc(&fact_callbacks, NULL, w);
    FZ_CHECK(h != NULL, "yajl_alloc");

    st = yajl_parse(h, s->data, s->len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    FZ_CHECK(st == yajl_status_ok, "stored JSON does not re-parse");
}


static void
check_facts(const ngx_http_retell_event_t *ev)
{
    int          want, want_invalid, qualified;
    fact_walk_t  a, c;

    memset(&a, 0, sizeof(fact_walk_t));
    a.names[0] = "action_required";
    a.names[1] = "qualified";
    a.names[2] = "lead_qualified";
    read_facts(&ev->custom_analysis_data, &a);

    memset(&c, 0, sizeof(fact_walk_t));
    c.names[0] = "action_required";
    read_facts(&ev->collected_dynamic_variables, &c);

    FZ_CHECK(ev->action_required_analysis == a.facts[0].value,
             "D4: action_required_analysis is %d, the stored "
             "custom_analysis_data (last key wins) says %d: %s",
             ev->action_required_analysis, a.facts[0].value,
             ev->custom_analysis_data.data
             ? fz_show(ev->custom_analysis_data.data,
                       ev->custom_analysis_data.len) : "(none)");

    FZ_CHECK(ev->action_required_collected == c.facts[0].value,
             "D4: action_required_collected is %d, the stored "
             "collected_dynamic_variables (last key wins) says %d",
             ev->action_required_collected, c.facts[0].value);

    /* the analysis data first, the collected variables second */

    if (a.facts[0].value != NGX_HTTP_RETELL_ABSENT) {
        want = a.facts[0].value;
        want_invalid = 0;

    } else {
        want = c.facts[0].value;
        want_invalid = (want == NGX_HTTP_RETELL_ABSENT)
                       && (a.facts[0].invalid || c.facts[0].invalid);
    }

    FZ_CHECK(ev->action_required == want, "D4: action_required is %d, the "
             "stored texts say %d", ev->action_required, want);
    FZ_CHECK(ev->action_required_invalid == (unsigned) want_invalid,
             "D4: action_required_invalid is %u, the stored texts say %d",
             ev->action_required_invalid, want_invalid);

    qualified = a.facts[1].value == 1 || a.facts[2].value == 1;

    FZ_CHECK(ev->qualified == (unsigned) qualified,
             "D4: qualified is %u, the stored custom_analysis_data (last "
             "key wins) says %d: %s", ev->qualified, qualified,
             ev->custom_analysis_data.data
             ? fz_show(ev->custom_analysis_data.data,
                       ev->custom_analysis_data.len) : "(none)");
}


/* D4: every field against the body read as jsonb reads it */

static yajl_val
last_key(yajl_val obj, const char *key)
{
    size_t    i;
    yajl_val  v;

    v = NULL;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            v = obj->u.object.values[i];
        }
    }

    return (v && YAJL_IS_NULL(v)) ? NULL : v;
}


static int
tree_equal(yajl_val a, yajl_val b)
{
    size_t  i;

    if (a->type != b->type) {
        return 0;
    }

    switch (a->type) {

    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;

    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;

    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return 0;
        }

        for (i = 0; i < a->u.object.len; i++) {
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0
                || !tree_equal(a->u.object.values[i], b->u.object.values[i]))
            {
                return 0;
            }
        }

        return 1;

    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return 0;
        }

        for (i = 0; i < a->u.array.len; i++) {
            if (!tree_equal(a->u.array.values[i], b->u.array.values[i])) {
                return 0;
            }
        }

        return 1;

    default:
        return 1;
    }
}


static void
check_field_last_wins(const ngx_http_retell_event_t *ev, const field_t *f,
    yajl_val v)
{
    int                           b;
    char                         *text;
    yajl_val                      t;
    long long                     n;
    const char                   *what;
    const ngx_http_retell_str_t  *s;
    const ngx_http_retell_int_t  *i;

    what = level_path[f->level];

    switch (f->kind) {

    case K_STR:
        s = (const void *) ((const u_char *) ev + f->offset);

        if (v == NULL) {
            FZ_CHECK(s->data == NULL, "D4: %s%s is \"%s\", but the body read "
                     "as jsonb reads it (last key wins) has none", what,
                     f->name, fz_show(s->data, s->len));
            return;
        }

        FZ_CHECK(YAJL_IS_STRING(v), "%s%s accepted, but its last value is "
                 "not a string", what, f->name);
        FZ_CHECK(s->data && strlen(v->u.string) == s->len
                 && memcmp(v->u.string, s->data, s->len) == 0,
                 "D4: %s%s is \"%s\", the body read as jsonb reads it (last "
                 "key wins) has \"%s\"", what, f->name,
                 s->data ? fz_show(s->data, s->len) : "(none)",
                 fz_show((const u_char *) v->u.string, strlen(v->u.string)));
        return;

    case K_INT:
        i = (const void *) ((const u_char *) ev + f->offset);

        if (v == NULL) {
            FZ_CHECK(!i->set, "D4: %s%s is %lld, but the body read as jsonb "
                     "reads it (last key wins) has none", what, f->name,
                     (long long) i->value);
            return;
        }

        FZ_CHECK(YAJL_IS_NUMBER(v), "%s%s accepted, but its last value is "
                 "not a number", what, f->name);
        n = strtoll(v->u.number.r, NULL, 10);
        FZ_CHECK(i->set && i->value == n, "D4: %s%s is %lld (set %u), the "
                 "body read as jsonb reads it (last key wins) has %s", what,
                 f->name, (long long) i->value, i->set, v->u.number.r);
        return;

    case K_BOOL:
        b = *(const int *) ((const u_char *) ev + f->offset);
        FZ_CHECK(v == NULL || YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v),
                 "%s%s accepted, but its last value is not a boolean", what,
                 f->name);
        FZ_CHECK(b == (v == NULL ? NGX_HTTP_RETELL_ABSENT : YAJL_IS_TRUE(v)),
                 "D4: %s%s is %d, the body read as jsonb reads it (last key "
                 "wins) has %s", what, f->name, b,
                 v == NULL ? "none" : YAJL_IS_TRUE(v) ? "true" : "false");
        return;

    default:
        s = (const void *) ((const u_char *) ev + f->offset);

        if (v == NULL) {
            FZ_CHECK(s->data == NULL, "D4: %s%s is %s, but the body read as "
                     "jsonb reads it (last key wins) has none", what,
                     f->name, fz_show(s->data, s->len));
            return;
        }

        FZ_CHECK(s->data != NULL, "D4: %s%s is missing, the body read as "
                 "jsonb reads it (last key wins) has one", what, f->name);

        text = fz_cstr(s->data, s->len);
        t = yajl_tree_parse(text, NULL, 0);
        free(text);

        FZ_CHECK(t != NULL, "%s%s does not re-parse", what, f->name);
        b = tree_equal(t, v);
        yajl_tree_free(t);

        FZ_CHECK(b, "D4: %s%s is %s, not the last value of its key in the "
                 "body", what, f->name, fz_show(s->data, s->len));
    }
}


static void
check_last_wins(const ngx_http_retell_event_t *ev, const u_char *body,
    size_t len)
{
    char            *text;
    yajl_val         top, call, analysis, v;
    const field_t   *f;

    text = fz_cstr(body, len);
    top = yajl_tree_parse(text, NULL, 0);
    free(text);

    FZ_CHECK(top != NULL && YAJL_IS_OBJECT(top),
             "an accepted body is not a JSON object to yajl_tree");

    call = last_key(top, "call");
    FZ_CHECK(call != NULL && YAJL_IS_OBJECT(call), "D4: accepted, but the "
             "last \"call\" of the body is not an object");

    analysis = last_key(call, "call_analysis");
    FZ_CHECK(analysis == NULL || YAJL_IS_OBJECT(analysis), "D4: accepted, "
             "but the last \"call.call_analysis\" is not an object");

    for (f = fields; f->name; f++) {
        v = last_key(f->level == 0 ? top : f->level == 1 ? call : analysis,
                     f->name);

        /* a transfer event's top-level destination stands in for none */
        if (strcmp(f->name, "transfer_destination") == 0
            && (v == NULL || YAJL_IS_NULL(v)))
        {
            continue;
        }

        check_field_last_wins(ev, f, v);
    }

    yajl_tree_free(top);
}


static void
check_event(const ngx_http_retell_event_t *ev, const u_char *body,
    size_t len)
{
    int                           t;
    char                          name[64];
    const field_t                *f;
    const ngx_http_retell_int_t  *i;
    const ngx_http_retell_str_t  *s;

    for (f = fields; f->name; f++) {
        snprintf(name, sizeof(name), "%s%s", level_path[f->level], f->name);

        if (f->kind == K_INT) {
            i = (const void *) ((const u_char *) ev + f->offset);
            FZ_CHECK(i->set || i->value == 0, "%s unset but %lld", name,
                     (long long) i->value);
            FZ_CHECK(i->value <= INT_FIELD_MAX && i->value >= -INT_FIELD_MAX,
                     "%s is %lld: more than 18 digits", name,
                     (long long) i->value);
            continue;
        }

        if (f->kind == K_BOOL) {
            t = *(const int *) ((const u_char *) ev + f->offset);
            FZ_CHECK(t == 0 || t == 1 || t == NGX_HTTP_RETELL_ABSENT,
                     "%s is %d", name, t);
            continue;
        }

        s = (const void *) ((const u_char *) ev + f->offset);

        if (s->data == NULL) {
            FZ_CHECK(s->len == 0, "%s absent with length %zu", name, s->len);
            continue;
        }

        FZ_CHECK(s->data[s->len] == '\0', "%s is not NUL-terminated", name);
        FZ_CHECK(memchr(s->data, '\0', s->len) == NULL, "%s has a NUL inside",
                 name);
        FZ_CHECK(s->len <= f->max, "%s is %zu bytes, over %zu", name, s->len,
                 f->max);
        FZ_CHECK(fz_utf8_valid(s->data, s->len), "D3: %s accepted but not "
                 "strict UTF-8 (PostgreSQL refuses it): %s", name,
                 fz_show(s->data, s->len));

        if (f->kind != K_STR) {
            check_json_text(name, s, f->kind);
        }
    }

    FZ_CHECK(ev->event.data != NULL, "accepted without an event");

    /* an event the module does not apply is acknowledged without a call */
    FZ_CHECK(!ngx_http_retell_event_applied((char *) ev->event.data)
             || (ev->call_id.data != NULL && ev->call_id.len > 0),
             "accepted without a call_id");

    t = NGX_HTTP_RETELL_EVENT_OTHER;

    if (strcmp((char *) ev->event.data, "call_started") == 0) {
        t = NGX_HTTP_RETELL_EVENT_CALL_STARTED;

    } else if (strcmp((char *) ev->event.data, "call_ended") == 0) {
        t = NGX_HTTP_RETELL_EVENT_CALL_ENDED;

    } else if (strcmp((char *) ev->event.data, "call_analyzed") == 0) {
        t = NGX_HTTP_RETELL_EVENT_CALL_ANALYZED;

    } else if (strcmp((char *) ev->event.data, "transfer_bridged") == 0) {
        t = NGX_HTTP_RETELL_EVENT_TRANSFER_BRIDGED;

    } else if (strcmp((char *) ev->event.data, "transfer_cancelled") == 0) {
        t = NGX_HTTP_RETELL_EVENT_TRANSFER_CANCELLED;
    }

    FZ_CHECK(ev->type == (ngx_http_retell_event_type_e) t,
             "type %d for event \"%s\"", ev->type, ev->event.data);

    /* an event the module does not apply is read no further, stored nowhere */
    if (ev->type == NGX_HTTP_RETELL_EVENT_OTHER) {
        return;
    }

    FZ_CHECK(ev->action_required == 0 || ev->action_required == 1
             || ev->action_required == NGX_HTTP_RETELL_ABSENT,
             "action_required is %d", ev->action_required);
    FZ_CHECK(ev->action_required_analysis == 0
             || ev->action_required_analysis == 1
             || ev->action_required_analysis == NGX_HTTP_RETELL_ABSENT,
             "action_required_analysis is %d", ev->action_required_analysis);
    FZ_CHECK(ev->action_required_collected == 0
             || ev->action_required_collected == 1
             || ev->action_required_collected == NGX_HTTP_RETELL_ABSENT,
             "action_required_collected is %d",
             ev->action_required_collected);
    FZ_CHECK(!ev->action_required_invalid
             || ev->action_required == NGX_HTTP_RETELL_ABSENT,
             "action_required both %d and invalid", ev->action_required);

    t = (ev->disconnection_reason.data != NULL
         && (strcmp((char *) ev->disconnection_reason.data, "call_transfer")
             == 0
             || strcmp((char *) ev->disconnection_reason.data,
                       "transfer_bridged") == 0))
        || ev->type == NGX_HTTP_RETELL_EVENT_TRANSFER_BRIDGED;

    FZ_CHECK(ev->transferred == (unsigned) t, "transferred is %u for \"%s\"",
             ev->transferred,
             ev->disconnection_reason.data
             ? (char *) ev->disconnection_reason.data : "(none)");

    check_body_for_jsonb(body, len);
    check_facts(ev);
    check_last_wins(ev, body, len);
}


/* the answer with an error buffer of err_len bytes (none when 0) */

static int
parse(const uint8_t *data, size_t size, ngx_http_retell_event_t *ev,
    fz_pool_t *pool, char *err, size_t err_len)
{
    int  rc;

    if (err_len) {
        memset(err, 'x', err_len);
    }

    rc = ngx_http_retell_event_parse(data, size, ev, fz_alloc, pool, err,
                                     err_len);

    if (err_len) {
        FZ_CHECK(memchr(err, '\0', err_len) != NULL,
                 "err of %zu bytes is not NUL-terminated", err_len);
    }

    return rc;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc, rc2;
    long                     allocations;
    char                    *err, *err3, name[NGX_HTTP_RETELL_SHORT_MAX_LEN];
    size_t                   i;
    fz_pool_t                pool, pool2;
    ngx_http_retell_event_t  ev, ev2;

    /* exact sizes, so that ASan sees a write past either buffer */
    err = malloc(ERR_LEN);
    err3 = malloc(3);
    FZ_CHECK(err && err3, "malloc");

    fz_pool_init(&pool, -1);
    rc = parse(data, size, &ev, &pool, err, ERR_LEN);
    allocations = pool.count;

    FZ_CHECK(rc == 0 || rc == -1, "rc %d with an allocator that never fails",
             rc);

    /* a message for the client: plain text, never the body's bytes */

    for (i = 0; err[i]; i++) {
        FZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f, "err has byte 0x%02x",
                 (u_char) err[i]);
    }

    FZ_CHECK(rc == 0 || err[0] != '\0', "refused without a message");
    FZ_CHECK(rc == -1 || err[0] == '\0', "accepted with a message: %s", err);

    if (rc == 0) {
        check_event(&ev, data, size);
    }

    /* the name read alone, for a refused body: bounded, NUL-free */

    if (ngx_http_retell_event_name(data, size, name, sizeof(name))) {
        FZ_CHECK(strlen(name) < sizeof(name), "name unterminated");
    }

    /* no error buffer: the same answer, the same event */

    fz_pool_init(&pool2, -1);
    rc2 = parse(data, size, &ev2, &pool2, NULL, 0);
    FZ_CHECK(rc2 == rc, "rc %d without an error buffer, %d with one", rc2,
             rc);

    if (rc == 0) {
        FZ_CHECK(ev2.call_id.len == ev.call_id.len
                 && (ev.call_id.len == 0
                     || memcmp(ev2.call_id.data, ev.call_id.data,
                               ev.call_id.len) == 0)
                 && ev2.type == ev.type
                 && ev2.action_required == ev.action_required
                 && ev2.qualified == ev.qualified,
                 "a second parse gives another event");
    }

    fz_pool_free(&pool2);
    fz_pool_free(&pool);

    /* a 3-byte buffer: the same answer, the message cut, terminated */

    fz_pool_init(&pool, -1);
    rc2 = parse(data, size, &ev2, &pool, err3, 3);
    fz_pool_free(&pool);

    FZ_CHECK(rc2 == rc, "rc %d with a 3-byte error buffer, %d with 160",
             rc2, rc);
    FZ_CHECK(strncmp(err3, err, 2) == 0 && strlen(err3) <= 2,
             "3-byte err \"%s\" is not the start of \"%s\"", err3, err);

    /* allocation k of n fails: -2, whatever else is wrong with the body */

    if (allocations > 0) {
        fz_pool_init(&pool, (long) (fz_hash(data, size) % allocations));
        rc2 = parse(data, size, &ev2, &pool, err, ERR_LEN);
        FZ_CHECK(rc2 == -2, "rc %d when allocation %ld of %ld fails", rc2,
                 pool.fail_after + 1, allocations);
        fz_pool_free(&pool);
    }

    free(err);
    free(err3);

    return 0;
}
