/* Reading one line of an event log as the fold takes it (fold_line.c): what the line says,
 * or 0 for a line the fold passes back to the SQL reader. */
#ifndef OPENFRP_FOLD_LINE_H
#define OPENFRP_FOLD_LINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NONE INT64_MIN /* no value: an integer field that was null */

typedef struct {
    const char *p;
    int32_t n; /* -1: null */
} Str;

enum { K_SESSION, K_USER, K_ACCOUNT, K_LAUNCHPAD, K_HOST, N_KEYS };

static inline uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        h = (h ^ x) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t x = 0;
    memcpy(&x, p, n);
    h = (h ^ x) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* Equal bytes, compared eight at a time in line: the names and keys compared per line are
 * short, and a call to memcmp for each cost a sixth of the pass. */
static inline int bytes_eq(const char *a, const char *b, size_t n) {
    uint64_t x, y;
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n; a++, b++, n--)
        if (*a != *b) return 0;
    return 1;
}

static inline int str_eq(Str a, Str b) {
    return a.n == b.n && (a.n <= 0 || bytes_eq(a.p, b.p, (size_t)a.n));
}

/* The line's fields, when it is an event in the form the writers use (code: NONE if null). */
typedef struct {
    Str ts, source, keys[N_KEYS], event;
    int64_t frp, code;
    const char *attrs, *attrs_end;
} Line;

/* The line's fields: an event as the writers write it, a JSON object of the log's fields (in
 * any order); `follow` is the caller's memory of the order the fields came in last. */
int line_parse(const char *p, const char *end, Line *x, int8_t *follow);
/* A timestamp in the writer's UTC form, in microseconds since the epoch. */
int line_utc_time(Str t, int64_t *us);
/* The text of top-level key `key` of a flat object, as `->>` gives it (see fold_line.c). */
int line_attr(const char *p, const char *end, const char *key, Str *value, int *number);
/* Once, before any line is read. */
void line_init(void);

#endif
