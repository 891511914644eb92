/* Process-wide metrics in the Prometheus text format: counters, gauges read through a callback,
 * and histograms, all safe to update from any thread without locks (atomics). */
#ifndef TODO_METRICS_H
#define TODO_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "todo/buf.h"

typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_histogram metrics_histogram_t;

/* Registers (or finds) the counter name{labels}; labels is the label text without braces, e.g.
 * "route=\"/api\",code=\"200\"", or "" for none. The registry owns it for the process lifetime.
 * A name registered before as another kind of metric aborts the process. */
metrics_counter_t *metrics_counter(const char *name, const char *help, const char *labels);
void metrics_counter_add(metrics_counter_t *c, uint64_t n);

/* A gauge whose value is read when /metrics is rendered. fn is called on the rendering thread
 * with the registry locked, so it must not register metrics itself. Registering the same
 * name{labels} again replaces fn and arg. */
void metrics_gauge_fn(const char *name, const char *help, const char *labels,
                      double (*fn)(void *arg), void *arg);

/* Histogram of seconds with the default latency buckets (0.5 ms … 10 s), registered (or found)
 * like a counter. */
metrics_histogram_t *metrics_histogram(const char *name, const char *help, const char *labels);
void metrics_histogram_observe(metrics_histogram_t *h, double seconds);

/* Appends every registered metric in the Prometheus text exposition format 0.0.4. */
int metrics_render(buf_t *out) TODO_WUR;

/* Forgets every metric (tests only): every pointer handed out before becomes invalid. */
void metrics_reset(void);

#endif
