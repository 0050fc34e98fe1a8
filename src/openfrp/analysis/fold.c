/* The analyzer's fast path: fold the lines of JSONL event logs into per-session aggregates in
 * one native pass, on several threads.
 *
 * A line is folded when it is an event as the writers write it (fold_line.c reads it): a JSON
 * object of the log's fields (in any order), strings without escapes, a timestamp in the
 * writer's UTC form, a known source and a code of the table. Of the rare events a session
 * lists and the events whose attributes a diagnosis rule reads, it keeps rows for SQL to
 * finish (native.py). Every other line (a bad one first) is passed back as it is, for the SQL
 * reader to aggregate; the two sets of aggregates are merged, so the answer is the SQL
 * reader's own. The aggregates are those of aggregates.aggregate_sql, which
 * tests/analysis/test_native.py holds this pass to, line form by line form.
 *
 * fold(paths, states, n_running, matched_events, matched_codes, code_low, code_bits, takeover,
 *      threads)
 *   -> None when a file cannot be folded here (unreadable, a line over MAX_LINE)
 *    | (columns: dict[str, list | bytes], texts: list[str], passed: list[bytes],
 *       read: list[(bytes, lines, ends with a newline)] of each file as far as it was folded)
 * Each thread's groups come out as they are: a session both threads saw is two rows (of the
 * same keys), which the caller merges as it merges a session whose rows disagree on a person.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fold_line.h"

#define MAX_LINE (8 << 20) /* a file with a longer line is left to the SQL reader's limits */
#define MAX_NAMES 64
#define EVENT_SLOTS 256

enum { S_FIRST, S_LAST, T_FIRST, T_LAST, CREATED, STARTED, END_TS, T_ATTEMPT, T_EST, S_OPENED,
       S_EST, N_TS };
static const char *TS_NAMES[N_TS] = {"s_first_ts", "s_last_ts", "t_first_ts", "t_last_ts",
                                     "created_at", "started_at", "server_end_ts", "t_attempt",
                                     "t_established", "s_opened", "s_established"};
static const char *TEXT_NAMES[] = {"session_id", "user", "account", "launchpad", "host",
                                   "client"};

/* What an event name means to the aggregates (aggregates.py names the same events). */
enum {
    E_CREATED = 1,
    E_STARTED = 2,
    E_ENDED = 4,
    E_ATTEMPT = 8,
    E_ESTABLISHED = 16,
    E_OPENED = 32,
    E_MATCHED = 64,     /* a rule reads its attributes: kept with them */
    E_RECOVERY = 128,   /* rare kind 1, any side, with attrs recovery_ms */
    E_RESUMED = 256,    /* rare kind 2 on the server's side */
    E_DISCONNECT = 512, /* rare kind 3 on the server's side, with a code but the takeover's */
    E_DROP = 1024,      /* rare kind 4, any side */
    E_RECONNECT = 2048, /* rare kind 5, any side */
};

typedef struct {
    Str name;
    int flags;
    int state; /* 1-based place among the terminal's states, 0: none */
} Event;

typedef struct {
    Event events[MAX_NAMES * 2 + 8];
    int n_events;
    int16_t slots[EVENT_SLOTS]; /* event index + 1 */
    int n_running;
    int64_t *matched_codes;
    int n_matched_codes;
    int64_t code_low, takeover; /* the takeover's code is no loss (aggregates.SERVER_LOSS) */
    uint64_t *code_bits; /* by code - code_low; 0: not a code of the table */
    int n_code_bits;
} Config;

typedef struct {
    uint32_t off; /* in the table's text */
    int32_t n;    /* -1: null */
} Text;

typedef struct {
    uint64_t hash;
    Text key[N_KEYS];
    Text client;
    int64_t rows;
    int32_t frp; /* 0: null */
    int64_t ts[N_TS];
    int64_t end_code, order, order_code;
    uint64_t code_mask; /* 0: null (every code has a bit) */
} Group;

/* A group's place in the hash table, with its hash's high bits to pass by other groups
 * without reading them. */
typedef struct {
    uint32_t group; /* index + 1, 0: empty */
    uint32_t tag;
} Slot;

typedef struct {
    uint32_t group;
    int32_t kind;
    int64_t ts;
    double ms; /* NaN: null */
} Rare;

/* An event a diagnosis rule may read the attributes of: the rule's SQL reads them. */
typedef struct {
    uint32_t group;
    int64_t code;
    Text event, source, attrs;
} Matched;

typedef struct {
    Group *groups;
    size_t n, cap;
    Matched *matched;
    size_t n_matched, matched_cap;
    Slot *slots;
    size_t n_slots;
    char *text;
    size_t text_len, text_cap;
    Rare *rare;
    size_t n_rare, rare_cap;
    char *out; /* lines passed back, each ending with a newline */
    size_t out_len, out_cap;
    int8_t follow[16]; /* the field that came after each in the last line (by field + 1) */
    int failed;
} Table;

typedef struct {
    const Config *config;
    const char *begin, *end;
    Table *table;
    size_t newlines; /* in [begin, end): the file's lines, for --state to number later ones */
} Job;

static int grow(void **buf, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return 0;
    size_t bigger = *cap ? *cap : 1024;
    while (bigger < need) bigger *= 2;
    void *p = realloc(*buf, bigger * item);
    if (!p) return -1;
    *buf = p;
    *cap = bigger;
    return 0;
}

static const Event *event_of(const Config *c, Str name) {
    size_t i = hash_bytes(name.p, name.n) & (EVENT_SLOTS - 1);
    for (; c->slots[i]; i = (i + 1) & (EVENT_SLOTS - 1))
        if (str_eq(c->events[c->slots[i] - 1].name, name)) return &c->events[c->slots[i] - 1];
    return NULL;
}

static int eq(Str s, const char *text, size_t n) {
    return s.n == (int32_t)n && bytes_eq(s.p, text, n);
}
#define EQ(s, text) eq(s, text, sizeof(text) - 1)

static Str text_of(const Table *t, Text x) {
    Str s = {x.n < 0 ? NULL : t->text + x.off, x.n};
    return s;
}

static int add_text(Table *t, Str s, Text *out) {
    out->n = s.n;
    out->off = (uint32_t)t->text_len;
    if (s.n <= 0) return 0;
    if (t->text_len + (size_t)s.n > UINT32_MAX) return -1;
    if (grow((void **)&t->text, &t->text_cap, t->text_len + s.n, 1)) return -1;
    memcpy(t->text + t->text_len, s.p, s.n);
    t->text_len += s.n;
    return 0;
}

static int rehash(Table *t) {
    size_t n_slots = t->n_slots ? t->n_slots * 2 : 1 << 16;
    Slot *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return -1;
    for (size_t g = 0; g < t->n; g++) {
        size_t i = t->groups[g].hash & (n_slots - 1);
        while (slots[i].group) i = (i + 1) & (n_slots - 1);
        slots[i] = (Slot){(uint32_t)(g + 1), (uint32_t)(t->groups[g].hash >> 32)};
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    return 0;
}

/* The group of these keys (hashed by the session's id alone), made when new; NULL when out
 * of memory. */
static Group *find_group(Table *t, const Str keys[N_KEYS], uint64_t h) {
    if ((t->n + 1) * 2 > t->n_slots && rehash(t)) return NULL;
    size_t i = h & (t->n_slots - 1);
    for (; t->slots[i].group; i = (i + 1) & (t->n_slots - 1)) {
        if (t->slots[i].tag != (uint32_t)(h >> 32)) continue;
        Group *g = &t->groups[t->slots[i].group - 1];
        if (g->hash != h) continue;
        int same = 1;
        for (int k = 0; k < N_KEYS && same; k++) same = str_eq(text_of(t, g->key[k]), keys[k]);
        if (same) return g;
    }
    if (t->n >= UINT32_MAX - 1 || grow((void **)&t->groups, &t->cap, t->n + 1, sizeof(Group)))
        return NULL;
    Group *g = &t->groups[t->n];
    memset(g, 0, sizeof *g);
    g->hash = h;
    for (int k = 0; k < N_KEYS; k++)
        if (add_text(t, keys[k], &g->key[k])) return NULL;
    g->client.n = -1;
    for (int k = 0; k < N_TS; k++) g->ts[k] = NONE;
    g->end_code = g->order = g->order_code = NONE;
    t->slots[i] = (Slot){(uint32_t)(++t->n), (uint32_t)(h >> 32)};
    return g;
}

/* Whether text `a` sorts before `b` as DuckDB sorts text (by bytes), a null `b` last. */
static int less(Str a, Str b) {
    if (b.n < 0) return 1;
    size_t n = (size_t)(a.n < b.n ? a.n : b.n);
    int c = n ? memcmp(a.p, b.p, n) : 0;
    return c < 0 || (c == 0 && a.n < b.n);
}

static void keep_min(int64_t *at, int64_t v) {
    if (*at == NONE || v < *at) *at = v;
}
static void keep_max(int64_t *at, int64_t v) {
    if (*at == NONE || v > *at) *at = v;
}

static int add_rare(Table *t, const Group *g, int kind, int64_t ts, double ms) {
    if (grow((void **)&t->rare, &t->rare_cap, t->n_rare + 1, sizeof(Rare))) return -1;
    t->rare[t->n_rare++] = (Rare){(uint32_t)(g - t->groups), kind, ts, ms};
    return 0;
}

static int add_matched(Table *t, const Group *g, const Line *x) {
    if (grow((void **)&t->matched, &t->matched_cap, t->n_matched + 1, sizeof(Matched))) return -1;
    Matched *m = &t->matched[t->n_matched];
    m->group = (uint32_t)(g - t->groups);
    m->code = x->code;
    Str attrs = {x->attrs, (int32_t)(x->attrs_end - x->attrs)};
    if (add_text(t, x->event, &m->event) || add_text(t, x->source, &m->source) ||
        add_text(t, attrs, &m->attrs))
        return -1;
    t->n_matched++;
    return 0;
}

/* Fold one line; 0 when it is to be passed back. */
static int fold_line(const Config *c, Table *t, const char *p, const char *end) {
    Line x;
    int64_t us;
    if (!line_parse(p, end, &x, t->follow)) return 0;
    /* The session's slot is fetched while the rest of the line is read: a session's events
     * are far apart in a fleet's log, so its slot is seldom in the cache. */
    uint64_t h = hash_bytes(x.keys[K_SESSION].p, x.keys[K_SESSION].n);
    if (t->n_slots) __builtin_prefetch(&t->slots[h & (t->n_slots - 1)]);
    if (!line_utc_time(x.ts, &us)) return 0;
    int terminal = EQ(x.source, "terminal"), server = EQ(x.source, "server");
    if (!terminal && !server && !EQ(x.source, "signaling")) return 0;
    const Event *e = event_of(c, x.event);
    int flags = e ? e->flags : 0;
    int matched = flags & E_MATCHED;
    uint64_t bit = 0;
    if (x.code != NONE) {
        int64_t i = x.code - c->code_low;
        if (i < 0 || i >= c->n_code_bits || !c->code_bits[i]) return 0; /* a bad line */
        bit = c->code_bits[i];
        for (int k = 0; k < c->n_matched_codes && !matched; k++)
            matched = c->matched_codes[k] == x.code;
    }
    Str client = {NULL, -1}, ms_text;
    int number = 0;
    if ((flags & E_ESTABLISHED) && (!line_attr(x.attrs, x.attrs_end, "client", &client, &number) ||
                                    number))
        return 0;
    double ms = NAN;
    if (flags & E_RECOVERY) {
        if (!line_attr(x.attrs, x.attrs_end, "recovery_ms", &ms_text, &number)) return 0;
        if (ms_text.n >= 0 && !number) return 0; /* a string: cast as the SQL reader does */
        if (number) {
            char buf[64];
            if (ms_text.n >= (int32_t)sizeof buf) return 0;
            memcpy(buf, ms_text.p, ms_text.n);
            buf[ms_text.n] = 0;
            ms = strtod(buf, NULL);
        }
    }

    Group *g = find_group(t, x.keys, h);
    if (!g || (client.n >= 0 && less(client, text_of(t, g->client)) &&
               add_text(t, client, &g->client))) {
        t->failed = 1;
        return 1;
    }
    g->rows++;
    if (x.frp && (!g->frp || x.frp < g->frp)) g->frp = (int32_t)x.frp; /* min(frp) */
    g->code_mask |= bit;
    int kind = 0;
    if (flags & E_RECOVERY) kind = 1;
    else if (!terminal && (flags & E_RESUMED)) kind = 2;
    else if (!terminal && (flags & E_DISCONNECT) && x.code != NONE && x.code != c->takeover)
        kind = 3;
    else if (flags & E_DROP) kind = 4;
    else if (flags & E_RECONNECT) kind = 5;
    if ((kind && add_rare(t, g, kind, us, ms)) || (matched && add_matched(t, g, &x))) {
        t->failed = 1;
        return 1;
    }
    if (terminal) {
        keep_min(&g->ts[T_FIRST], us);
        keep_max(&g->ts[T_LAST], us);
        if (flags & E_ATTEMPT) keep_min(&g->ts[T_ATTEMPT], us);
        if (flags & E_ESTABLISHED) keep_min(&g->ts[T_EST], us);
        if (e && e->state) {
            int64_t order = us * 32 + (e->state > c->n_running ? 16 : 0) + e->state;
            if (g->order == NONE || order > g->order) {
                g->order = order;
                g->order_code = x.code;
            }
        }
    } else {
        keep_min(&g->ts[S_FIRST], us);
        keep_max(&g->ts[S_LAST], us);
        if (flags & E_CREATED) keep_min(&g->ts[CREATED], us);
        if (flags & E_STARTED) keep_min(&g->ts[STARTED], us);
        if ((flags & E_ENDED) && (g->ts[END_TS] == NONE || us > g->ts[END_TS])) {
            g->ts[END_TS] = us;
            g->end_code = x.code;
        }
        if (server && (flags & E_OPENED)) keep_min(&g->ts[S_OPENED], us);
        if (server && (flags & E_ESTABLISHED)) keep_min(&g->ts[S_EST], us);
    }
    return 1;
}

#define WINDOW (32 << 20)

/* The mapped pages of [from, to) read in now (a fault per page cost a tenth of the pass)... */
static void populate(const char *from, const char *to, uintptr_t page) {
#ifdef MADV_POPULATE_READ
    uintptr_t a = (uintptr_t)from & ~(page - 1);
    if (to > from) madvise((void *)a, (uintptr_t)to - a, MADV_POPULATE_READ);
#else
    (void)from, (void)to, (void)page;
#endif
}

/* ...and let go once folded: mapped pages count as the process's memory until unmapped. */
static void release(const char *from, const char *to, uintptr_t page) {
    uintptr_t a = ((uintptr_t)from + page - 1) & ~(page - 1), b = (uintptr_t)to & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static void *run(void *arg) {
    Job *job = arg;
    Table *t = job->table;
    const char *p = job->begin, *window = job->begin;
    size_t newlines = 0; /* kept here: counted in the Job, beside the other threads' Jobs, the
                            cache line they share went back and forth at every line (+0.4 s) */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const char *next = job->end - window > WINDOW ? window + WINDOW : job->end;
    populate(window, next, page);
    while (p < job->end && !t->failed) {
        if (p >= next) {
            release(window, p, page);
            window = p;
            next = job->end - window > WINDOW ? window + WINDOW : job->end;
            populate(window, next, page);
        }
        const char *nl = memchr(p, '\n', (size_t)(job->end - p));
        const char *end = nl ? nl : job->end;
        newlines += nl != NULL;
        if (end - p > MAX_LINE) {
            t->failed = 1;
            break;
        }
        if (end > p && !fold_line(job->config, t, p, end)) {
            size_t n = (size_t)(end - p) + 1;
            if (grow((void **)&t->out, &t->out_cap, t->out_len + n, 1)) {
                t->failed = 1;
                break;
            }
            memcpy(t->out + t->out_len, p, n - 1);
            t->out[t->out_len + n - 1] = '\n';
            t->out_len += n;
        }
        p = nl ? nl + 1 : job->end;
    }
    release(window, job->end, page);
    job->newlines = newlines;
    return NULL;
}

static void free_table(Table *t) {
    free(t->groups);
    free(t->slots);
    free(t->text);
    free(t->rare);
    free(t->matched);
    free(t->out);
    memset(t, 0, sizeof *t);
}

/* Fold one file on `n` threads into tables[0..n); its passed-back lines into *passed and
 * what was read of it (a file may grow meanwhile) into *read: (bytes, lines, whether they end
 * with a newline). */
static int fold_file(const char *path, const Config *c, Table *tables, int n, PyObject **passed,
                     PyObject **read) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    const char *data = NULL;
    if (size) {
        void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return -1;
        }
        data = m;
    }
    close(fd);
    Job jobs[64];
    pthread_t threads[64];
    const char *at = data;
    for (int i = 0; i < n; i++) {
        const char *end = i == n - 1 ? data + size : data + size * (i + 1) / n;
        if (end < at) end = at;
        if (end < data + size && i < n - 1) {
            const char *nl = memchr(end, '\n', (size_t)(data + size - end));
            end = nl ? nl + 1 : data + size;
        }
        jobs[i] = (Job){c, at, end, &tables[i], 0};
        tables[i].out_len = 0;
        at = end;
    }
    int started = 0, failed = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (; started < n; started++)
        if (pthread_create(&threads[started], NULL, run, &jobs[started])) break;
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    Py_END_ALLOW_THREADS;
    int whole = size == 0 || data[size - 1] == '\n';
    if (size) munmap((void *)data, size);
    size_t total = 0, lines = whole ? 0 : 1;
    for (int i = 0; i < n; i++) {
        failed |= tables[i].failed;
        total += tables[i].out_len;
        lines += jobs[i].newlines;
    }
    if (started < n || failed) return -1;
    *read = Py_BuildValue("(nnO)", (Py_ssize_t)size, (Py_ssize_t)lines,
                          whole ? Py_True : Py_False);
    if (!*read) return -1;
    *passed = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!*passed) {
        Py_CLEAR(*read);
        return -1;
    }
    char *out = PyBytes_AS_STRING(*passed);
    for (int i = 0; i < n; i++) {
        memcpy(out, tables[i].out, tables[i].out_len);
        out += tables[i].out_len;
    }
    return 0;
}

/* The distinct texts of the person and client columns, each made a str once. */
typedef struct {
    PyObject *list;
    Str *keys;
    int32_t *slots; /* list index + 1 */
    size_t n_slots;
} Pool;

static int32_t pooled(Pool *pool, Str s) {
    if (s.n < 0) return -1;
    size_t i = hash_bytes(s.p, s.n) & (pool->n_slots - 1);
    for (; pool->slots[i]; i = (i + 1) & (pool->n_slots - 1))
        if (str_eq(pool->keys[pool->slots[i] - 1], s)) return pool->slots[i] - 1;
    Py_ssize_t n = PyList_GET_SIZE(pool->list);
    if ((size_t)(n + 1) * 2 > pool->n_slots) return -2;
    PyObject *text = PyUnicode_FromStringAndSize(s.p, s.n);
    if (!text || PyList_Append(pool->list, text)) {
        Py_XDECREF(text);
        return -2;
    }
    Py_DECREF(text);
    pool->keys[n] = s;
    pool->slots[i] = (int32_t)(n + 1);
    return (int32_t)n;
}

static PyObject *columns_of(const Table *tables, int n_tables) {
    size_t n = 0, n_rare = 0, n_matched = 0, texts = 0;
    for (int t = 0; t < n_tables; t++) {
        n += tables[t].n;
        n_rare += tables[t].n_rare;
        n_matched += tables[t].n_matched;
        texts += tables[t].n * N_KEYS + tables[t].n_matched * 2;
    }
    size_t n_slots = 1024;
    while (n_slots < texts * 2 + 2) n_slots *= 2;
    PyObject *dict = PyDict_New(), *ids = PyList_New((Py_ssize_t)n), *result = NULL;
    Pool pool = {PyList_New(0), malloc(n_slots / 2 * sizeof(Str)),
                 calloc(n_slots, sizeof(int32_t)), n_slots};
    size_t most = n > n_rare ? n : n_rare;
    most = most > n_matched ? most : n_matched;
    PyObject *attrs = PyList_New((Py_ssize_t)n_matched);
    int64_t *i64 = malloc((most ? most : 1) * sizeof(int64_t));
    int32_t *i32 = malloc((most ? most : 1) * sizeof(int32_t));
    double *f64 = malloc((most ? most : 1) * sizeof(double));
    if (!dict || !ids || !attrs || !pool.list || !pool.keys || !pool.slots || !i64 || !i32 ||
        !f64)
        goto done;
#define EACH(body)                                          \
    do {                                                    \
        size_t at = 0;                                      \
        for (int t = 0; t < n_tables; t++)                  \
            for (size_t i = 0; i < tables[t].n; i++, at++) { \
                const Table *tab = &tables[t];              \
                const Group *g = &tab->groups[i];           \
                (void)tab;                                  \
                body;                                       \
            }                                               \
    } while (0)
#define PUT(name, buf, count)                                                        \
    do {                                                                             \
        PyObject *col = PyBytes_FromStringAndSize((const char *)(buf),               \
                                                  (Py_ssize_t)((count) * sizeof *(buf))); \
        if (!col || PyDict_SetItemString(dict, name, col)) {                         \
            Py_XDECREF(col);                                                         \
            goto done;                                                               \
        }                                                                            \
        Py_DECREF(col);                                                              \
    } while (0)
    int bad = 0;
    EACH({
        Str s = text_of(tab, g->key[K_SESSION]);
        PyObject *id = PyUnicode_FromStringAndSize(s.p, s.n);
        if (!id) bad = 1;
        else PyList_SET_ITEM(ids, (Py_ssize_t)at, id);
    });
    if (bad || PyDict_SetItemString(dict, "session_id", ids)) goto done;
    for (int k = 1; k <= N_KEYS; k++) {
        EACH({
            i32[at] = pooled(&pool, text_of(tab, k == N_KEYS ? g->client : g->key[k]));
            if (i32[at] == -2) bad = 1;
        });
        if (bad) goto done;
        PUT(TEXT_NAMES[k], i32, n);
    }
    EACH(i32[at] = g->frp);
    PUT("frp", i32, n);
    EACH(i64[at] = g->rows);
    PUT("rows", i64, n);
    for (int k = 0; k < N_TS; k++) {
        EACH(i64[at] = g->ts[k]);
        PUT(TS_NAMES[k], i64, n);
    }
    EACH(i64[at] = g->end_code);
    PUT("server_end_code", i64, n);
    EACH(i64[at] = g->order);
    PUT("term_order", i64, n);
    EACH(i64[at] = g->order_code);
    PUT("term_state_code", i64, n);
    EACH(i64[at] = (int64_t)g->code_mask);
    PUT("code_mask", i64, n);
    size_t at = 0, first = 0;
    for (int t = 0; t < n_tables; t++) {
        for (size_t i = 0; i < tables[t].n_rare; i++, at++) {
            i64[at] = (int64_t)(first + tables[t].rare[i].group);
            i32[at] = tables[t].rare[i].kind;
        }
        first += tables[t].n;
    }
    PUT("rare_group", i64, n_rare);
    PUT("rare_kind", i32, n_rare);
    at = 0;
    for (int t = 0; t < n_tables; t++)
        for (size_t i = 0; i < tables[t].n_rare; i++, at++) {
            i64[at] = tables[t].rare[i].ts;
            f64[at] = tables[t].rare[i].ms;
        }
    PUT("rare_ts", i64, n_rare);
    PUT("rare_ms", f64, n_rare);
    /* The events a rule reads: their group, code, event, source and attributes. */
#define EACH_MATCHED(body)                                      \
    do {                                                        \
        size_t at = 0, first = 0;                               \
        for (int t = 0; t < n_tables; t++) {                    \
            const Table *tab = &tables[t];                      \
            for (size_t i = 0; i < tab->n_matched; i++, at++) { \
                const Matched *m = &tab->matched[i];            \
                body;                                           \
            }                                                   \
            first += tab->n;                                    \
        }                                                       \
    } while (0)
    EACH_MATCHED(i64[at] = (int64_t)(first + m->group));
    PUT("match_group", i64, n_matched);
    EACH_MATCHED(i64[at] = m->code);
    PUT("match_code", i64, n_matched);
    EACH_MATCHED({
        i32[at] = pooled(&pool, text_of(tab, m->event));
        if (i32[at] == -2) bad = 1;
    });
    if (bad) goto done;
    PUT("match_event", i32, n_matched);
    EACH_MATCHED({
        i32[at] = pooled(&pool, text_of(tab, m->source));
        if (i32[at] == -2) bad = 1;
    });
    if (bad) goto done;
    PUT("match_source", i32, n_matched);
    EACH_MATCHED({
        Str a = text_of(tab, m->attrs);
        PyObject *text = PyUnicode_FromStringAndSize(a.p, a.n);
        if (!text) bad = 1;
        else PyList_SET_ITEM(attrs, (Py_ssize_t)at, text);
    });
    if (bad || PyDict_SetItemString(dict, "match_attrs", attrs)) goto done;
#undef EACH_MATCHED
#undef PUT
#undef EACH
    result = Py_BuildValue("(OO)", dict, pool.list);
done:
    Py_XDECREF(dict);
    Py_XDECREF(ids);
    Py_XDECREF(attrs);
    Py_XDECREF(pool.list);
    free(pool.keys);
    free(pool.slots);
    free(i64);
    free(i32);
    free(f64);
    return result;
}

static int add_event(Config *c, Str s, int flags, int state) {
    size_t i = hash_bytes(s.p, s.n) & (EVENT_SLOTS - 1);
    for (; c->slots[i]; i = (i + 1) & (EVENT_SLOTS - 1))
        if (str_eq(c->events[c->slots[i] - 1].name, s)) {
            c->events[c->slots[i] - 1].flags |= flags;
            if (state) c->events[c->slots[i] - 1].state = state;
            return 0;
        }
    if (c->n_events >= (int)(sizeof c->events / sizeof c->events[0])) {
        PyErr_SetString(PyExc_ValueError, "too many event names");
        return -1;
    }
    c->events[c->n_events] = (Event){s, flags, state};
    c->slots[i] = (int16_t)(++c->n_events);
    return 0;
}

static int configure(Config *c, PyObject *states, PyObject *matched) {
    static const struct {
        const char *name;
        int flags;
    } known[] = {
        {"session.created", E_CREATED},       {"session.started", E_STARTED},
        {"session.ended", E_ENDED},           {"connect.attempt", E_ATTEMPT},
        {"connection.established", E_ESTABLISHED}, {"connection.opened", E_OPENED},
        {"reconnect.succeeded", E_RECOVERY},  {"session.resumed", E_RESUMED},
        {"session.disconnected", E_DISCONNECT}, {"connection.lost", E_DROP},
        {"ice.disconnected", E_DROP},         {"reconnect.attempt", E_RECONNECT},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        Str name = {known[i].name, (int32_t)strlen(known[i].name)};
        if (add_event(c, name, known[i].flags, 0)) return -1;
    }
    if (PyTuple_GET_SIZE(states) > MAX_NAMES || PyTuple_GET_SIZE(matched) > MAX_NAMES) {
        PyErr_SetString(PyExc_ValueError, "too many event names");
        return -1;
    }
    /* The names point into the str objects of the arguments, alive while fold() runs. */
    for (int pass = 0; pass < 2; pass++) {
        PyObject *names = pass ? matched : states;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
            Py_ssize_t size;
            const char *p = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names, i), &size);
            Str name = {p, (int32_t)size};
            if (!p || add_event(c, name, pass ? E_MATCHED : 0, pass ? 0 : (int)i + 1))
                return -1;
        }
    }
    return 0;
}

static PyObject *fold(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *paths, *states, *matched_events, *matched_codes, *code_bits;
    int n_running, threads;
    long long code_low, takeover;
    if (!PyArg_ParseTuple(args, "O!O!iO!O!LO!Li", &PyList_Type, &paths, &PyTuple_Type, &states,
                          &n_running, &PyTuple_Type, &matched_events, &PyTuple_Type,
                          &matched_codes, &code_low, &PyTuple_Type, &code_bits, &takeover,
                          &threads))
        return NULL;
    if (threads < 1 || threads > 64) {
        PyErr_SetString(PyExc_ValueError, "threads must be 1 to 64");
        return NULL;
    }
    Config *c = calloc(1, sizeof *c);
    if (!c) return PyErr_NoMemory();
    c->n_running = n_running;
    c->code_low = code_low;
    c->takeover = takeover;
    Py_ssize_t n_codes = PyTuple_GET_SIZE(matched_codes), n_bits = PyTuple_GET_SIZE(code_bits);
    c->matched_codes = calloc(n_codes + 1, sizeof(int64_t));
    c->code_bits = calloc(n_bits + 1, sizeof(uint64_t));
    Table *tables = calloc((size_t)threads, sizeof(Table));
    PyObject *passed = PyList_New(0), *extents = PyList_New(0), *result = NULL;
    if (!c->matched_codes || !c->code_bits || !tables || !passed || !extents) goto done;
    if (configure(c, states, matched_events)) goto done;
    c->n_matched_codes = (int)n_codes;
    for (Py_ssize_t i = 0; i < n_codes; i++)
        c->matched_codes[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(matched_codes, i));
    c->n_code_bits = (int)n_bits;
    for (Py_ssize_t i = 0; i < n_bits; i++) {
        PyObject *bit = PyTuple_GET_ITEM(code_bits, i);
        c->code_bits[i] = bit == Py_None ? 0 : PyLong_AsUnsignedLongLong(bit);
    }
    if (PyErr_Occurred()) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(paths); i++) {
        const char *path = PyUnicode_AsUTF8(PyList_GET_ITEM(paths, i));
        PyObject *lines = NULL, *read = NULL;
        if (!path) goto done;
        if (fold_file(path, c, tables, threads, &lines, &read)) {
            if (PyErr_Occurred()) goto done;
            Py_INCREF(Py_None);
            result = Py_None;
            goto done;
        }
        int bad = PyList_Append(passed, lines) || PyList_Append(extents, read);
        Py_DECREF(lines);
        Py_DECREF(read);
        if (bad) goto done;
    }
    PyObject *columns = columns_of(tables, threads);
    if (columns) {
        result = Py_BuildValue("(OOOO)", PyTuple_GET_ITEM(columns, 0),
                               PyTuple_GET_ITEM(columns, 1), passed, extents);
        Py_DECREF(columns);
    }
done:
    if (tables)
        for (int i = 0; i < threads; i++) free_table(&tables[i]);
    free(tables);
    free(c->matched_codes);
    free(c->code_bits);
    free(c);
    Py_XDECREF(passed);
    Py_XDECREF(extents);
    return result;
}

static PyMethodDef METHODS[] = {
    {"fold", fold, METH_VARARGS,
     "fold(paths, states, n_running, matched_events, matched_codes, code_low, code_bits, "
     "takeover, threads)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, .m_name = "_fold",
                                    .m_size = -1, .m_methods = METHODS};

PyMODINIT_FUNC PyInit__fold(void) {
    line_init();
    return PyModule_Create(&MODULE);
}
