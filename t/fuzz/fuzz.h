
/*
 * Shared by the libFuzzer harnesses in t/fuzz/: the failure report, an
 * allocator that can be told to fail, and the checks of more than one
 * harness.
 *
 * A broken invariant prints "INVARIANT FAILED" and a reason, then aborts,
 * so that libFuzzer keeps the input as a crash.  Every allocation is its
 * own malloc() of exactly the size asked for, so that ASan sees a read or
 * write of even one byte past an end.
 */


#ifndef _FUZZ_H_INCLUDED_
#define _FUZZ_H_INCLUDED_


#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>


#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fz_fail(__FILE__, __LINE__, __VA_ARGS__);                         \
        }                                                                     \
    } while (0)


static inline void fz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

static inline void
fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "\nINVARIANT FAILED %s:%d: ", file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n");

    abort();
}


/*
 * The pool: every block is kept in a list outside the blocks themselves
 * (a header in front of a block would hide an underrun from ASan), and
 * freed at once.  fail_after: allocations that succeed; -1 for all.
 */

typedef struct {
    void     **blocks;
    size_t     n;
    size_t     cap;
    long       fail_after;
    long       count;
} fz_pool_t;


static inline void
fz_pool_init(fz_pool_t *pool, long fail_after)
{
    memset(pool, 0, sizeof(fz_pool_t));
    pool->fail_after = fail_after;
}


static inline void *
fz_alloc(void *ctx, size_t size)
{
    void       *p, **blocks;
    fz_pool_t  *pool = ctx;

    if (pool->fail_after >= 0 && pool->count >= pool->fail_after) {
        return NULL;
    }

    if (pool->n == pool->cap) {
        pool->cap = pool->cap ? 2 * pool->cap : 64;
        blocks = realloc(pool->blocks, pool->cap * sizeof(void *));
        if (blocks == NULL) {
            abort();
        }

        pool->blocks = blocks;
    }

    /* malloc(0) is a block of no bytes for ASan: any access is caught */
    p = malloc(size);
    if (p == NULL && size) {
        abort();
    }

    pool->blocks[pool->n++] = p;
    pool->count++;

    return p;
}


static inline void
fz_pool_free(fz_pool_t *pool)
{
    size_t  i;

    for (i = 0; i < pool->n; i++) {
        free(pool->blocks[i]);
    }

    free(pool->blocks);
    memset(pool, 0, sizeof(fz_pool_t));
}


/* an exact-size copy, with no NUL after it */

static inline u_char *
fz_copy(const void *data, size_t len)
{
    u_char  *p;

    p = malloc(len ? len : 1);
    if (p == NULL) {
        abort();
    }

    memcpy(p, data, len);

    return p;
}


/* a NUL-terminated copy, for yajl_tree_parse() */

static inline char *
fz_cstr(const void *data, size_t len)
{
    char  *p;

    p = malloc(len + 1);
    if (p == NULL) {
        abort();
    }

    memcpy(p, data, len);
    p[len] = '\0';

    return p;
}


/* FNV-1a: a stable choice (which allocation fails, which bit flips) */

static inline uint32_t
fz_hash(const uint8_t *p, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }

    return h;
}


/*
 * Strict UTF-8 (RFC 3629, Unicode table 3-7): no overlong forms, no
 * surrogates, nothing past U+10FFFF; what PostgreSQL takes as UTF8.
 * Returns the offset of the first byte that is not, or len.  Written
 * apart from the module's own check on purpose.
 */

static inline size_t
fz_utf8_bad(const u_char *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {

        if (p[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            n = 2;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            n = 3;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            n = 4;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return i;
        }

        if (len - i < n) {
            return i;
        }

        for (k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return i;
            }

            cp = cp << 6 | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return i;
        }
    }

    return len;
}


static inline int
fz_utf8_valid(const u_char *p, size_t len)
{
    return fz_utf8_bad(p, len) == len;
}


/* up to 48 bytes of s, escaped, for a message; four calls per message */

static inline const char *
fz_show(const u_char *s, size_t len)
{
    char        *buf;
    size_t       i, n;
    static int   next;
    static char  bufs[4][48 * 4 + 24];

    buf = bufs[next++ % 4];
    n = 0;

    for (i = 0; i < len && i < 48; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            buf[n++] = s[i];

        } else {
            n += snprintf(buf + n, sizeof(bufs[0]) - n, "\\x%02x", s[i]);
        }
    }

    if (i < len) {
        n += snprintf(buf + n, sizeof(bufs[0]) - n, "...(%zu bytes)", len);
    }

    buf[n] = '\0';

    return buf;
}


#endif /* _FUZZ_H_INCLUDED_ */
