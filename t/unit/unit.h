
/*
 * A minimal check harness for the module's pure C logic.  Each test
 * program ends with the line "N passed, M failed" and exits non-zero
 * when any check failed.
 */


#ifndef _UNIT_H_INCLUDED_
#define _UNIT_H_INCLUDED_


#include <stdio.h>
#include <string.h>


static int  unit_passed;
static int  unit_failed;


#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (cond) {                                                           \
            unit_passed++;                                                    \
        } else {                                                              \
            unit_failed++;                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

#define CHECK_STR(got, want, what)                                            \
    unit_check_str((const char *) (got), (want), (what), __FILE__, __LINE__)

static inline void
unit_check_str(const char *got, const char *want, const char *what,
    const char *file, int line)
{
    if (got != NULL && strcmp(got, want) == 0) {
        unit_passed++;
        return;
    }

    unit_failed++;
    printf("FAIL %s:%d: %s: got \"%s\", want \"%s\"\n", file, line, what,
           got ? got : "(null)", want);
}


#define UNIT_DONE()                                                           \
    (printf("%d passed, %d failed\n", unit_passed, unit_failed),             \
     unit_failed ? 1 : 0)


#endif /* _UNIT_H_INCLUDED_ */
