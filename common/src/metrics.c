/* The process-wide metrics registry: families of series kept in registration order under one
 * mutex (taken only to register, render or reset); the values themselves are atomics. */
#include "todo/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/log.h"

/* Upper bounds of the latency buckets in seconds; one more bucket counts what is above. */
static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

struct metrics_counter {
    _Atomic uint64_t value;
};

struct metrics_histogram {
    _Atomic uint64_t buckets[NBUCKETS + 1]; /* not cumulative; the last one is above 10 s */
    _Atomic uint64_t sum_ns;
};

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct series {
    struct series *next;
    char *labels;
    union {
        metrics_counter_t counter;
        metrics_histogram_t histogram;
        struct {
            double (*fn)(void *arg);
            void *arg;
        } gauge;
    } u;
} series_t;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    kind_t kind;
    series_t *first;
    series_t **last;
} family_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t *families;
static family_t **families_last = &families;

static const char *kind_name(kind_t kind)
{
    return kind == KIND_COUNTER ? "counter" : kind == KIND_GAUGE ? "gauge" : "histogram";
}

/* Finds or creates the series name{labels}; the caller holds registry_lock. A name registered
 * before with another kind is a programming error. */
static series_t *find_series(const char *name, const char *help, const char *labels, kind_t kind)
{
    family_t *f;
    series_t *s;

    if (!labels)
        labels = "";
    for (f = families; f; f = f->next) {
        if (strcmp(f->name, name) == 0)
            break;
    }
    if (!f) {
        f = xcalloc(1, sizeof(*f));
        f->name = xstrdup(name);
        f->help = xstrdup(help ? help : "");
        f->kind = kind;
        f->last = &f->first;
        *families_last = f;
        families_last = &f->next;
    } else if (f->kind != kind) {
        log_error("metrics", "metric %s registered as a %s and as a %s", name, kind_name(f->kind),
                  kind_name(kind));
        abort();
    }
    for (s = f->first; s; s = s->next) {
        if (strcmp(s->labels, labels) == 0)
            return s;
    }
    s = xcalloc(1, sizeof(*s));
    s->labels = xstrdup(labels);
    *f->last = s;
    f->last = &s->next;
    return s;
}

metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&registry_lock);
    series_t *s = find_series(name, help, labels, KIND_COUNTER);
    pthread_mutex_unlock(&registry_lock);
    return &s->u.counter;
}

void metrics_counter_add(metrics_counter_t *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metrics_gauge_fn(const char *name, const char *help, const char *labels,
                      double (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&registry_lock);
    series_t *s = find_series(name, help, labels, KIND_GAUGE);
    s->u.gauge.fn = fn;
    s->u.gauge.arg = arg;
    pthread_mutex_unlock(&registry_lock);
}

metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&registry_lock);
    series_t *s = find_series(name, help, labels, KIND_HISTOGRAM);
    pthread_mutex_unlock(&registry_lock);
    return &s->u.histogram;
}

void metrics_histogram_observe(metrics_histogram_t *h, double seconds)
{
    size_t i = 0;
    if (!h)
        return;
    if (!(seconds >= 0)) /* negative or NaN */
        seconds = 0;
    while (i < NBUCKETS && seconds > bucket_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    double ns = seconds * 1e9;
    uint64_t add = ns < 1e18 ? (uint64_t)(ns + 0.5) : UINT64_C(1000000000000000000);
    atomic_fetch_add_explicit(&h->sum_ns, add, memory_order_relaxed);
}

/* HELP text with backslashes and newlines escaped, as the format requires. */
static int put_help(buf_t *out, const char *name, const char *help)
{
    int rc = buf_printf(out, "# HELP %s ", name);
    for (const char *p = help; rc == 0 && *p; p++) {
        if (*p == '\\')
            rc = buf_puts(out, "\\\\");
        else if (*p == '\n')
            rc = buf_puts(out, "\\n");
        else
            rc = buf_append(out, p, 1);
    }
    return rc ? rc : buf_puts(out, "\n");
}

static int put_double(buf_t *out, double v)
{
    if (isnan(v))
        return buf_puts(out, "NaN");
    if (isinf(v))
        return buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    return buf_printf(out, "%.15g", v);
}

/* "{labels}" or "", so that every sample line reads name{labels} value. */
static int put_labels(buf_t *out, const char *labels)
{
    return labels[0] ? buf_printf(out, "{%s}", labels) : 0;
}

static int put_histogram(buf_t *out, const char *name, const series_t *s)
{
    const metrics_histogram_t *h = &s->u.histogram;
    const char *sep = s->labels[0] ? "," : "";
    uint64_t cumulative = 0;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i <= NBUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < NBUCKETS)
            rc = buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, s->labels, sep,
                            bucket_bounds[i], cumulative);
        else
            rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, s->labels, sep,
                            cumulative);
    }
    uint64_t sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    if (rc == 0)
        rc = buf_printf(out, "%s_sum", name);
    if (rc == 0)
        rc = put_labels(out, s->labels);
    if (rc == 0)
        rc = buf_printf(out, " %" PRIu64 ".%09" PRIu64 "\n%s_count", sum_ns / 1000000000,
                        sum_ns % 1000000000, name);
    if (rc == 0)
        rc = put_labels(out, s->labels);
    if (rc == 0)
        rc = buf_printf(out, " %" PRIu64 "\n", cumulative);
    return rc;
}

static int put_series(buf_t *out, const family_t *f, const series_t *s)
{
    int rc;
    if (f->kind == KIND_HISTOGRAM)
        return put_histogram(out, f->name, s);
    rc = buf_puts(out, f->name);
    if (rc == 0)
        rc = put_labels(out, s->labels);
    if (rc == 0)
        rc = buf_puts(out, " ");
    if (rc == 0) {
        if (f->kind == KIND_COUNTER)
            rc = buf_printf(out, "%" PRIu64,
                            atomic_load_explicit(&s->u.counter.value, memory_order_relaxed));
        else
            rc = put_double(out, s->u.gauge.fn ? s->u.gauge.fn(s->u.gauge.arg) : NAN);
    }
    return rc ? rc : buf_puts(out, "\n");
}

int metrics_render(buf_t *out)
{
    int rc = 0;
    pthread_mutex_lock(&registry_lock);
    for (const family_t *f = families; rc == 0 && f; f = f->next) {
        rc = put_help(out, f->name, f->help);
        if (rc == 0)
            rc = buf_printf(out, "# TYPE %s %s\n", f->name, kind_name(f->kind));
        for (const series_t *s = f->first; rc == 0 && s; s = s->next)
            rc = put_series(out, f, s);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    while (families) {
        family_t *f = families;
        families = f->next;
        while (f->first) {
            series_t *s = f->first;
            f->first = s->next;
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    families_last = &families;
    pthread_mutex_unlock(&registry_lock);
}
