/* Reading one line of an event log as the fold takes it: strict, and 0 wherever the SQL
 * reader might read the line otherwise, so that the fold passes it back. */
#include "fold_line.h"

#define MAX_DEPTH 64 /* of arrays and objects in attrs */

#define LIT(p, end, s) \
    ((size_t)((end) - (*p)) >= sizeof(s) - 1 && !memcmp(*p, s, sizeof(s) - 1) \
         ? (*p += sizeof(s) - 1, 1)                                             \
         : 0)

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* A string without escapes, control characters or non-ASCII bytes (or null, if nullable):
 * eight bytes at a time, the first byte that is a quote, a backslash, below 0x20 or above
 * 0x7f ends the plain run. */
static inline int plain_string(const char **p, const char *end, Str *out, int nullable) {
    if (nullable && LIT(p, end, "null")) {
        out->p = NULL;
        out->n = -1;
        return 1;
    }
    if (*p >= end || **p != '"') return 0;
    const char *s = *p + 1, *q = s;
    while (end - q >= 8) {
        uint64_t x;
        memcpy(&x, q, 8);
        uint64_t quote = x ^ (ONES * '"'), slash = x ^ (ONES * '\\');
        uint64_t m = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) |
                     ((x - ONES * 0x20) & ~x) | x;
        m &= HIGHS;
        if (m) {
            q += __builtin_ctzll(m) / 8;
            goto found;
        }
        q += 8;
    }
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
           (unsigned char)*q < 0x80)
        q++;
found:
    if (q >= end || *q != '"') return 0;
    out->p = s;
    out->n = (int32_t)(q - s);
    *p = q + 1;
    return 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON integer as the SQL reader types it exactly (no fraction, exponent or "-0"). */
static int plain_int(const char **p, const char *end, int64_t *out) {
    const char *s = *p;
    int neg = s < end && *s == '-';
    if (neg) s++;
    if (s >= end || !is_digit(*s)) return 0;
    if (*s == '0' && (neg || (s + 1 < end && is_digit(s[1])))) return 0;
    int64_t v = 0;
    int digits = 0;
    while (s < end && is_digit(*s)) {
        if (++digits > 15) return 0;
        v = v * 10 + (*s++ - '0');
    }
    if (s < end && (*s == '.' || *s == 'e' || *s == 'E')) return 0;
    *out = neg ? -v : v;
    *p = s;
    return 1;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" (the writer's form), in microseconds since the epoch. */
int line_utc_time(Str t, int64_t *us) {
    if (t.n < 20 || t.n > 27 || t.p[t.n - 1] != 'Z') return 0;
    const char *s = t.p;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return 0;
    int y = num(s, 4), mo = num(s + 5, 2), d = num(s + 8, 2);
    int h = num(s + 11, 2), mi = num(s + 14, 2), se = num(s + 17, 2);
    if (y < 1000 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 59)
        return 0;
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[mo - 1] + (mo == 2 && leap)) return 0;
    int64_t frac = 0;
    int len = t.n - 20; /* the fraction with its dot */
    if (len > 0) {
        if (s[19] != '.' || len < 2) return 0;
        int f = num(s + 20, len - 1);
        if (f < 0) return 0;
        frac = f;
        for (int i = len - 1; i < 6; i++) frac *= 10;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *us = ((days * 24 + h) * 60 + mi) * 60 * 1000000LL + se * 1000000LL + frac;
    return 1;
}

static void ws(const char **p, const char *end) {
    while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) ++*p;
}

static int hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The end of a JSON number at *p (-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?), or NULL. */
static const char *number_end(const char *s, const char *end) {
    if (s < end && *s == '-') s++;
    if (s >= end || !is_digit(*s)) return NULL;
    if (*s == '0') s++;
    else
        while (s < end && is_digit(*s)) s++;
    if (s < end && *s == '.') {
        s++;
        if (s >= end || !is_digit(*s)) return NULL;
        while (s < end && is_digit(*s)) s++;
    }
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < end && (*s == '+' || *s == '-')) s++;
        if (s >= end || !is_digit(*s)) return NULL;
        while (s < end && is_digit(*s)) s++;
    }
    return s;
}

/* Any JSON value, checked (not kept); escapes allowed, non-ASCII bytes not. */
static int skip_value(const char **p, const char *end, int depth) {
    if (depth > MAX_DEPTH || *p >= end) return 0;
    char c = **p;
    if (c == '"') {
        for (++*p; *p < end; ++*p) {
            unsigned char ch = (unsigned char)**p;
            if (ch == '"') {
                ++*p;
                return 1;
            }
            if (ch < 0x20 || ch >= 0x80) return 0;
            if (ch != '\\') continue;
            if (++*p >= end) return 0;
            if (**p == 'u') {
                if (end - *p < 5 || !hex((*p)[1]) || !hex((*p)[2]) || !hex((*p)[3]) ||
                    !hex((*p)[4]))
                    return 0;
                *p += 4;
            } else if (!memchr("\"\\/bfnrt", **p, 8)) {
                return 0;
            }
        }
        return 0;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        ++*p;
        ws(p, end);
        if (*p < end && **p == close) {
            ++*p;
            return 1;
        }
        for (;;) {
            if (c == '{') {
                if (*p >= end || **p != '"' || !skip_value(p, end, depth + 1)) return 0;
                ws(p, end);
                if (*p >= end || **p != ':') return 0;
                ++*p;
                ws(p, end);
            }
            if (!skip_value(p, end, depth + 1)) return 0;
            ws(p, end);
            if (*p < end && **p == ',') {
                ++*p;
                ws(p, end);
                continue;
            }
            if (*p < end && **p == close) {
                ++*p;
                return 1;
            }
            return 0;
        }
    }
    if (LIT(p, end, "true") || LIT(p, end, "false") || LIT(p, end, "null")) return 1;
    const char *s = number_end(*p, end);
    if (!s) return 0;
    *p = s;
    return 1;
}

/* The text of top-level key `key` of a flat object, as `->>` gives it: 1 with a plain string,
 * a plain non-negative number (`number` set) or nothing (n = -1, also for a JSON null); 0 when
 * this cannot tell (another kind of value, a key written with escapes, a repeated key). */
int line_attr(const char *p, const char *end, const char *key, Str *value, int *number) {
    size_t key_n = strlen(key);
    int found = 0;
    value->p = NULL;
    value->n = -1;
    *number = 0;
    p++;
    ws(&p, end);
    if (p < end && *p == '}') return 1;
    for (;;) {
        Str name;
        if (!plain_string(&p, end, &name, 0)) return 0;
        ws(&p, end);
        if (p >= end || *p != ':') return 0;
        p++;
        ws(&p, end);
        if ((size_t)name.n == key_n && !memcmp(name.p, key, key_n)) {
            if (found++) return 0;
            const char *s = p < end && is_digit(*p) ? number_end(p, end) : NULL;
            if (s) {
                *value = (Str){p, (int32_t)(s - p)};
                *number = 1;
                p = s;
            } else if (!plain_string(&p, end, value, 1)) {
                return 0;
            }
        } else if (!skip_value(&p, end, 1)) {
            return 0;
        }
        ws(&p, end);
        if (p < end && *p == ',') {
            p++;
            ws(&p, end);
            continue;
        }
        return p < end && *p == '}';
    }
}

/* The event log's fields (events.FIELDS), and how the fold reads each. */
enum { F_TS, F_SOURCE, F_HOST, F_SESSION, F_CONNECTION, F_PREVIOUS, F_USER, F_ACCOUNT,
       F_LAUNCHPAD, F_FRP, F_EVENT, F_CODE, F_SEVERITY, F_MESSAGE, F_ATTRS, N_FIELDS };
static const char *FIELD_NAMES[N_FIELDS] = {
    "ts", "source", "host", "session_id", "connection_id", "previous_connection_id", "user",
    "account", "launchpad", "frp", "event", "code", "severity", "message", "attrs"};

static int FIELDS_BY_LENGTH[32][3]; /* field + 1, by the name's length: set at import */
static size_t FIELD_LENGTHS[N_FIELDS];

static int field_of(Str key) {
    if (key.n <= 0 || key.n >= 32) return -1;
    for (int i = 0; i < 3 && FIELDS_BY_LENGTH[key.n][i]; i++) {
        int f = FIELDS_BY_LENGTH[key.n][i] - 1;
        if (bytes_eq(key.p, FIELD_NAMES[f], (size_t)key.n)) return f;
    }
    return -1;
}

/* A JSON object of the event log's fields, each once, in any order, whitespace or not (a
 * missing field is null, as the SQL reader has it). 0 for anything else: another field, a
 * value of another type, a string with escapes, a timestamp's absence. */
int line_parse(const char *p, const char *end, Line *x, int8_t *follow) {
    Str text;
    unsigned seen = 0;
    int last = 0; /* the field before, + 1 */
    memset(x, 0, sizeof *x);
    for (int k = 0; k < N_KEYS; k++) x->keys[k].n = -1;
    x->code = NONE;
    ws(&p, end);
    if (p >= end || *p != '{') return 0;
    p++;
    ws(&p, end);
    while (p < end && *p != '}') {
        /* A writer names the fields in one order: the field that followed this one in the
         * last line is tried first, with one comparison instead of a scan and a look-up. */
        int f = follow[last] - 1;
        size_t n = f >= 0 ? FIELD_LENGTHS[f] : 0;
        if (f >= 0 && (size_t)(end - p) > n + 2 && p[0] == '"' && p[n + 1] == '"' &&
            bytes_eq(p + 1, FIELD_NAMES[f], n)) {
            p += n + 2;
        } else {
            Str key;
            if (!plain_string(&p, end, &key, 0) || (f = field_of(key)) < 0) return 0;
            follow[last] = (int8_t)(f + 1);
        }
        if (seen & (1u << f)) return 0;
        seen |= 1u << f;
        last = f + 1;
        ws(&p, end);
        if (p >= end || *p != ':') return 0;
        p++;
        ws(&p, end);
        switch (f) {
        case F_TS:
            if (!plain_string(&p, end, &x->ts, 0)) return 0;
            break;
        case F_SOURCE:
            if (!plain_string(&p, end, &x->source, 0)) return 0;
            break;
        case F_EVENT:
            if (!plain_string(&p, end, &x->event, 0)) return 0;
            break;
        case F_HOST:
        case F_SESSION:
        case F_USER:
        case F_ACCOUNT:
        case F_LAUNCHPAD: {
            int k = f == F_HOST      ? K_HOST
                    : f == F_SESSION ? K_SESSION
                    : f == F_USER    ? K_USER
                    : f == F_ACCOUNT ? K_ACCOUNT
                                     : K_LAUNCHPAD;
            if (!plain_string(&p, end, &x->keys[k], 1)) return 0;
            break;
        }
        case F_FRP:
            if (LIT(&p, end, "7")) x->frp = 7;
            else if (LIT(&p, end, "8")) x->frp = 8;
            else if (!LIT(&p, end, "null")) return 0;
            if (p < end && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E')) return 0;
            break;
        case F_CODE:
            if (!LIT(&p, end, "null") && !plain_int(&p, end, &x->code)) return 0;
            break;
        case F_ATTRS:
            if (p >= end || *p != '{') return 0;
            x->attrs = p;
            if (!skip_value(&p, end, 1)) return 0;
            x->attrs_end = p;
            break;
        default: /* connection ids, severity, message: read, not kept */
            if (!plain_string(&p, end, &text, 1)) return 0;
        }
        ws(&p, end);
        if (p < end && *p == ',') {
            p++;
            ws(&p, end);
            if (p >= end || *p != '"') return 0;
        } else if (p >= end || *p != '}') {
            return 0;
        }
    }
    if (p >= end || *p != '}') return 0;
    p++;
    ws(&p, end);
    /* The fold needs the time, side, event, session and attributes object. */
    return p == end && x->ts.p && x->source.p && x->event.p && x->keys[K_SESSION].n >= 0 &&
           x->attrs;
}

void line_init(void) {
    for (int f = 0; f < N_FIELDS; f++) {
        FIELD_LENGTHS[f] = strlen(FIELD_NAMES[f]);
        int *same = FIELDS_BY_LENGTH[FIELD_LENGTHS[f]];
        int i = 0;
        while (same[i]) i++;
        same[i] = f + 1;
    }
}
