/* Unit tests of common/src/metrics.c: the rendered Prometheus text of counters, gauges and
 * histograms, registration that finds what exists, and updates from several threads. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "todo/buf.h"
#include "todo/metrics.h"

static char *render(void)
{
    buf_t b;
    buf_init(&b, 0);
    CHECK_INT(metrics_render(&b), 0);
    char *text = buf_steal(&b);
    buf_dispose(&b);
    return text;
}

static double queue_depth(void *arg)
{
    return *(double *)arg;
}

static void test_render(void)
{
    double depth = 2.5;
    metrics_reset();
    metrics_counter_t *a = metrics_counter("jobs_total", "Jobs done", "kind=\"a\"");
    metrics_counter_t *b =
        metrics_counter("jobs_total", "ignored: the family has its help", "kind=\"b\"");
    metrics_counter_t *plain =
        metrics_counter("restarts_total", "Restarts\\with \"quotes\"\nand a newline", "");
    CHECK(metrics_counter("jobs_total", "Jobs done", "kind=\"a\"") == a);
    metrics_counter_add(a, 3);
    metrics_counter_add(a, 2);
    metrics_counter_add(b, 1);
    metrics_counter_add(NULL, 1);
    metrics_counter_add(plain, 0);
    metrics_gauge_fn("queue_depth", "Items waiting", "", queue_depth, &depth);
    metrics_histogram_t *h = metrics_histogram("op_seconds", "Operation time", "op=\"x\"");
    CHECK(metrics_histogram("op_seconds", "Operation time", "op=\"x\"") == h);
    metrics_histogram_observe(h, 0.0002); /* first bucket */
    metrics_histogram_observe(h, 0.001);  /* exactly on a bound: that bucket */
    metrics_histogram_observe(h, 0.3);
    metrics_histogram_observe(h, 42); /* above every bound */
    metrics_histogram_observe(h, -1); /* counted as 0 */
    metrics_histogram_t *bare = metrics_histogram("wait_seconds", "Wait", "");
    metrics_histogram_observe(bare, 1.5);

    char *text = render();
    const char *want = "# HELP jobs_total Jobs done\n"
                       "# TYPE jobs_total counter\n"
                       "jobs_total{kind=\"a\"} 5\n"
                       "jobs_total{kind=\"b\"} 1\n"
                       "# HELP restarts_total Restarts\\\\with \"quotes\"\\nand a newline\n"
                       "# TYPE restarts_total counter\n"
                       "restarts_total 0\n"
                       "# HELP queue_depth Items waiting\n"
                       "# TYPE queue_depth gauge\n"
                       "queue_depth 2.5\n"
                       "# HELP op_seconds Operation time\n"
                       "# TYPE op_seconds histogram\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.0005\"} 2\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.001\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.0025\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.005\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.01\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.025\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.05\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.1\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.25\"} 3\n"
                       "op_seconds_bucket{op=\"x\",le=\"0.5\"} 4\n"
                       "op_seconds_bucket{op=\"x\",le=\"1\"} 4\n"
                       "op_seconds_bucket{op=\"x\",le=\"2.5\"} 4\n"
                       "op_seconds_bucket{op=\"x\",le=\"5\"} 4\n"
                       "op_seconds_bucket{op=\"x\",le=\"10\"} 4\n"
                       "op_seconds_bucket{op=\"x\",le=\"+Inf\"} 5\n"
                       "op_seconds_sum{op=\"x\"} 42.301200000\n"
                       "op_seconds_count{op=\"x\"} 5\n"
                       "# HELP wait_seconds Wait\n"
                       "# TYPE wait_seconds histogram\n"
                       "wait_seconds_bucket{le=\"0.0005\"} 0\n"
                       "wait_seconds_bucket{le=\"0.001\"} 0\n"
                       "wait_seconds_bucket{le=\"0.0025\"} 0\n"
                       "wait_seconds_bucket{le=\"0.005\"} 0\n"
                       "wait_seconds_bucket{le=\"0.01\"} 0\n"
                       "wait_seconds_bucket{le=\"0.025\"} 0\n"
                       "wait_seconds_bucket{le=\"0.05\"} 0\n"
                       "wait_seconds_bucket{le=\"0.1\"} 0\n"
                       "wait_seconds_bucket{le=\"0.25\"} 0\n"
                       "wait_seconds_bucket{le=\"0.5\"} 0\n"
                       "wait_seconds_bucket{le=\"1\"} 0\n"
                       "wait_seconds_bucket{le=\"2.5\"} 1\n"
                       "wait_seconds_bucket{le=\"5\"} 1\n"
                       "wait_seconds_bucket{le=\"10\"} 1\n"
                       "wait_seconds_bucket{le=\"+Inf\"} 1\n"
                       "wait_seconds_sum 1.500000000\n"
                       "wait_seconds_count 1\n";
    CHECK_STR(text, want);
    free(text);

    /* the gauge is read at render time; special values are spelled the Prometheus way */
    depth = INFINITY;
    text = render();
    CHECK(strstr(text, "\nqueue_depth +Inf\n") != NULL);
    free(text);
    depth = -7;
    text = render();
    CHECK(strstr(text, "\nqueue_depth -7\n") != NULL);
    free(text);

    metrics_reset();
    text = render();
    CHECK_STR(text, "");
    free(text);
}

/* A render into a buffer with too small a limit fails instead of truncating silently. */
static void test_limit(void)
{
    buf_t b;
    metrics_reset();
    metrics_counter_add(metrics_counter("x_total", "X", ""), 1);
    buf_init(&b, 10);
    CHECK_INT(metrics_render(&b), TODO_EPAYLOAD_TOO_LARGE);
    buf_dispose(&b);
    metrics_reset();
}

#define THREADS 4
#define ADDS    100000

static void *add_many(void *arg)
{
    metrics_counter_t *c = metrics_counter("hits_total", "Hits", "");
    metrics_histogram_t *h = metrics_histogram("lat_seconds", "Latency", "");
    for (int i = 0; i < ADDS; i++) {
        metrics_counter_add(c, 1);
        metrics_histogram_observe(h, 0.003);
    }
    return arg;
}

static void test_threads(void)
{
    pthread_t t[THREADS];
    metrics_reset();
    for (int i = 0; i < THREADS; i++)
        CHECK_INT(pthread_create(&t[i], NULL, add_many, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *text = render();
    char want[64];
    snprintf(want, sizeof(want), "\nhits_total %d\n", THREADS * ADDS);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof(want), "\nlat_seconds_count %d\n", THREADS * ADDS);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof(want), "lat_seconds_bucket{le=\"0.0025\"} 0\n");
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof(want), "lat_seconds_bucket{le=\"0.005\"} %d\n", THREADS * ADDS);
    CHECK(strstr(text, want) != NULL);
    snprintf(want, sizeof(want), "\nlat_seconds_sum %d.000000000\n", THREADS * ADDS * 3 / 1000);
    CHECK(strstr(text, want) != NULL);
    free(text);
    metrics_reset();
}

int main(void)
{
    test_render();
    test_limit();
    test_threads();
    return check_exit();
}
