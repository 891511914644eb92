/* The C half of tests/integration/test_sidecar_kafka_broker.py: drives the pubsub.kafka broker
 * (broker_kafka.c through broker.h) against a running kafka-mock. One scenario per run:
 *   kafka_broker_check BOOTSTRAP roundtrip|ordering|bulk|giveup|competing|fanout|offsets|handoff
 *   kafka_broker_check BOOTSTRAP publish TOPIC KEY VALUE...
 *   kafka_broker_check BOOTSTRAP consume TOPIC GROUP [--hang VALUE]   (prints "got VALUE") */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "check.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define MAX_CALLS 1024
#define WAIT_MS   60000 /* group joins on the mock take seconds; rebalances after a kill longer */

static const char *bootstrap;

/* ---- a recording handler ------------------------------------------------------------------- */

typedef struct {
    char *value;
    char *key; /* NULL when the record has none */
    int partition;
    int64_t offset;
    int64_t at_ms; /* monotonic */
    char *headers; /* "name=value\n" per header, in order */
} call_t;

typedef struct rec rec_t;
/* Decides what the handler answers for a call (n = earlier calls with the same value). */
typedef broker_result_t (*behave_fn)(rec_t *r, const call_t *c, int n);

struct rec {
    const char *name;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    call_t calls[MAX_CALLS];
    size_t n;
    behave_fn behave;
    /* blocking behaviour */
    const char *block_value;
    bool blocked; /* the handler is inside block_value */
    bool release; /* let it go */
    broker_result_t release_result;
    atomic_bool returned; /* the blocked call returned */
};

static void rec_init(rec_t *r, const char *name, behave_fn behave)
{
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->behave = behave;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void rec_dispose(rec_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->calls[i].value);
        free(r->calls[i].key);
        free(r->calls[i].headers);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

static const char *header(const broker_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->nheaders; i++)
        if (strcmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

static broker_result_t record(const broker_msg_t *m, void *arg)
{
    rec_t *r = arg;
    call_t c = {0};
    size_t hlen = 0;
    int same = 0;
    broker_result_t res = BROKER_ACK;

    c.value = xstrndup(m->value, m->len);
    c.key = m->key ? xstrdup(m->key) : NULL;
    c.partition = atoi(header(m, "__partition") ? header(m, "__partition") : "-1");
    c.offset = atoll(header(m, "__offset") ? header(m, "__offset") : "-1");
    c.at_ms = time_mono_usec() / 1000;
    for (size_t i = 0; i < m->nheaders; i++)
        hlen += strlen(m->headers[i].name) + strlen(m->headers[i].value) + 2;
    c.headers = xcalloc(1, hlen + 1);
    for (size_t i = 0; i < m->nheaders; i++) {
        strcat(c.headers, m->headers[i].name);
        strcat(c.headers, "=");
        strcat(c.headers, m->headers[i].value);
        strcat(c.headers, "\n");
    }
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->calls[i].value, c.value) == 0)
            same++;
    if (r->n < MAX_CALLS) {
        r->calls[r->n++] = c;
    } else {
        free(c.value);
        free(c.key);
        free(c.headers);
    }
    const call_t *cp = &r->calls[r->n - 1];
    if (r->block_value && strcmp(cp->value, r->block_value) == 0 && !r->release) {
        int64_t deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
        r->blocked = true;
        pthread_cond_broadcast(&r->cond);
        while (!r->release && time_mono_usec() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        res = r->release_result;
        r->blocked = false;
        atomic_store(&r->returned, true);
    } else if (r->behave) {
        res = r->behave(r, cp, same);
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return res;
}

static int count_locked(rec_t *r, const char *value)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->calls[i].value, value) == 0)
            n++;
    return n;
}

static int count(rec_t *r, const char *value)
{
    pthread_mutex_lock(&r->lock);
    int n = count_locked(r, value);
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Waits until value was handled at least times times (false on timeout). */
static bool wait_count(rec_t *r, const char *value, int times, int timeout_ms)
{
    int64_t deadline = time_mono_usec() + (int64_t)timeout_ms * 1000;
    bool ok;

    pthread_mutex_lock(&r->lock);
    while (!(ok = count_locked(r, value) >= times) && time_mono_usec() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok && timeout_ms >= 1000)
        fprintf(stderr, "%s: timed out waiting for %s ×%d (have %d)\n", r->name, value, times,
                count(r, value));
    return ok;
}

static bool wait_blocked(rec_t *r, int timeout_ms)
{
    int64_t deadline = time_mono_usec() + (int64_t)timeout_ms * 1000;
    bool ok;

    pthread_mutex_lock(&r->lock);
    while (!(ok = r->blocked) && time_mono_usec() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static void release(rec_t *r, broker_result_t result)
{
    pthread_mutex_lock(&r->lock);
    r->release = true;
    r->release_result = result;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* ---- brokers -------------------------------------------------------------------------------- */

/* A pubsub.kafka component with brokers = bootstrap and the given key/value pairs. */
static res_component_t component(const char *name, const char *const *kv)
{
    res_component_t c;
    memset(&c, 0, sizeof(c));
    c.name = (char *)name;
    c.type = (char *)"pubsub.kafka";
    c.version = (char *)"v1";
    c.meta[c.nmeta].name = (char *)"brokers";
    c.meta[c.nmeta++].value = (char *)bootstrap;
    for (size_t i = 0; kv && kv[i]; i += 2) {
        c.meta[c.nmeta].name = (char *)kv[i];
        c.meta[c.nmeta++].value = (char *)kv[i + 1];
    }
    return c;
}

static broker_t *new_broker(const char *name, const char *const *kv)
{
    res_component_t c = component(name, kv);
    char *err = NULL;
    broker_t *b = broker_new(&c, "check-app", &err);
    if (!b) {
        fprintf(stderr, "broker_new: %s\n", err ? err : "?");
        free(err);
        exit(1);
    }
    return b;
}

static int publish(broker_t *b, const char *topic, const char *key, const char *value)
{
    broker_msg_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.key = key;
    m.value = value;
    m.len = strlen(value);
    return broker_publish(b, &m);
}

/* Publishes probes (keys cycling over 16 values) until every recorder has handled one: then each
 * consumer has its assignment (initialOffset newest loses what came before). */
static bool await_assignments(broker_t *pub, const char *topic, rec_t **recs, size_t nrecs)
{
    int64_t deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
    for (int i = 0; time_mono_usec() < deadline; i++) {
        char key[32];
        bool all = true;
        snprintf(key, sizeof(key), "probe-%d", i % 16);
        if (publish(pub, topic, key, "probe") != 0)
            return false;
        for (size_t j = 0; j < nrecs; j++)
            if (!wait_count(recs[j], "probe", 1, j == 0 ? 200 : 1))
                all = false;
        if (all)
            return true;
    }
    fprintf(stderr, "not every consumer got an assignment of %s\n", topic);
    return false;
}

/* ---- scenarios ----------------------------------------------------------------------------- */

/* Round trip: value bytes, key and headers exact (DAPR-CONTRACT §3.6). */
static void roundtrip(void)
{
    static const char *const kv[] = {"consumerGroup", "rt-g", "initialOffset", "oldest", NULL};
    broker_t *b = new_broker("kafka-pubsub", kv);
    rec_t r;
    broker_msg_t m;
    int64_t before = time_now_usec() / 1000, after;
    static const char value[] = "{\"hello\":\"wörld\"}\0tail";

    rec_init(&r, "rt", NULL);
    CHECK_INT(broker_subscribe(b, "rt", record, &r), 0);
    CHECK_INT(broker_subscribe(b, "rt", record, &r), TODO_ECONFLICT);
    CHECK_INT(broker_start(b), 0);

    memset(&m, 0, sizeof(m));
    m.topic = "rt";
    m.value = value;
    m.len = sizeof(value) - 1; /* with the NUL inside */
    m.headers[0] = (broker_header_t){"partitionKey", "order-17"};
    m.headers[1] = (broker_header_t){"x-custom", "a b/c"};
    m.headers[2] =
        (broker_header_t){"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"};
    m.nheaders = 3;
    CHECK_INT(broker_publish(b, &m), 0); /* key from partitionKey */
    CHECK_INT(publish(b, "rt", "explicit", "second"), 0);
    CHECK_INT(publish(b, "rt", NULL, "third"), 0);
    after = time_now_usec() / 1000;

    CHECK(wait_count(&r, "third", 1, WAIT_MS));
    CHECK(wait_count(&r, "second", 1, 1000));
    pthread_mutex_lock(&r.lock);
    const call_t *first = NULL, *second = NULL, *third = NULL;
    for (size_t i = 0; i < r.n; i++) {
        if (r.calls[i].value && strcmp(r.calls[i].value, "{\"hello\":\"wörld\"}") == 0)
            first = &r.calls[i];
        if (strcmp(r.calls[i].value, "second") == 0)
            second = &r.calls[i];
        if (strcmp(r.calls[i].value, "third") == 0)
            third = &r.calls[i];
    }
    CHECK_INT(r.n, 3);
    CHECK(first != NULL);
    CHECK(second != NULL);
    CHECK(third != NULL);
    if (first && second && third) {
        char expect[1024];
        char *ts = strstr(first->headers, "__timestamp=");
        long long t = ts ? atoll(ts + strlen("__timestamp=")) : 0;
        CHECK(t >= before && t <= after);
        /* Same partition (one key would not guarantee it, but offsets show the order). */
        snprintf(expect, sizeof(expect),
                 "__key=order-17\n__offset=%" PRId64 "\n__topic=rt\n__timestamp=%lld\n"
                 "__partition=%d\npartitionKey=order-17\nx-custom=a b/c\n"
                 "traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n",
                 first->offset, t, first->partition);
        CHECK_STR(first->headers, expect);
        CHECK_STR(first->key, "order-17");
        CHECK_STR(second->key, "explicit");
        CHECK(strstr(second->headers, "__key=explicit\n") == second->headers);
        CHECK(third->key == NULL);
        CHECK(strstr(third->headers, "__key=") == NULL);
        CHECK(strncmp(third->headers, "__offset=", 9) == 0);
    }
    pthread_mutex_unlock(&r.lock);
    /* A topic subscribed after broker_start is consumed at once (the group rebalances). */
    CHECK_INT(broker_subscribe(b, "rt-late", record, &r), 0);
    CHECK_INT(publish(b, "rt-late", NULL, "late"), 0);
    CHECK(wait_count(&r, "late", 1, WAIT_MS));
    CHECK_INT(count(&r, "third"), 1);
    broker_free(b);
    rec_dispose(&r);
}

/* Exact value bytes with an embedded NUL: a handler that compares lengths. */
static atomic_size_t seen_len;
static broker_result_t record_len(const broker_msg_t *m, void *arg)
{
    if (m->len == 5 && memcmp(m->value, "a\0b\0c", 5) == 0)
        atomic_store(&seen_len, m->len);
    return BROKER_ACK;
}

static void binary_value(void)
{
    static const char *const kv[] = {"consumerGroup", "bin-g", "initialOffset", "oldest", NULL};
    broker_t *b = new_broker("kafka-pubsub", kv);
    broker_msg_t m;
    int64_t deadline;

    CHECK_INT(broker_subscribe(b, "bin", record_len, NULL), 0);
    CHECK_INT(broker_start(b), 0);
    memset(&m, 0, sizeof(m));
    m.topic = "bin";
    m.value = "a\0b\0c";
    m.len = 5;
    CHECK_INT(broker_publish(b, &m), 0);
    deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
    while (atomic_load(&seen_len) != 5 && time_mono_usec() < deadline)
        usleep(20000);
    CHECK_INT(atomic_load(&seen_len), 5);
    broker_free(b);
}

/* "A3" fails 3 times, "B5" twice; everything else is ACKed. */
static broker_result_t fail_some(rec_t *r, const call_t *c, int n)
{
    if (strcmp(c->value, "A3") == 0 && n < 3)
        return BROKER_FAIL;
    if (strcmp(c->value, "B5") == 0 && n < 2)
        return BROKER_FAIL;
    return BROKER_ACK;
}

/* One partition's messages one at a time in order, a failing one retried every backOffDuration
 * and blocking those behind it; another partition goes on meanwhile. */
static void ordering(void)
{
    static const char *const kv[] = {
        "consumerGroup", "ord-g", "initialOffset", "oldest", "backOffDuration", "100ms", NULL};
    broker_t *b = new_broker("kafka-pubsub", kv);
    rec_t r;
    char v[16];

    rec_init(&r, "ord", fail_some);
    for (int i = 0; i < 10; i++) {
        snprintf(v, sizeof(v), "A%d", i);
        CHECK_INT(publish(b, "ord", "key-A", v), 0);
        snprintf(v, sizeof(v), "B%d", i);
        CHECK_INT(publish(b, "ord", "key-B", v), 0);
    }
    CHECK_INT(broker_subscribe(b, "ord", record, &r), 0);
    CHECK_INT(broker_start(b), 0);
    CHECK(wait_count(&r, "A9", 1, WAIT_MS));
    CHECK(wait_count(&r, "B9", 1, WAIT_MS));

    pthread_mutex_lock(&r.lock);
    CHECK_INT(r.n, 25);
    /* Per key: the exact sequence of handler calls. */
    const char *expect_a[] = {"A0", "A1", "A2", "A3", "A3", "A3", "A3",
                              "A4", "A5", "A6", "A7", "A8", "A9"};
    const char *expect_b[] = {"B0", "B1", "B2", "B3", "B4", "B5",
                              "B5", "B5", "B6", "B7", "B8", "B9"};
    size_t ia = 0, ib = 0;
    int64_t last_a3 = -1;
    for (size_t i = 0; i < r.n; i++) {
        const call_t *c = &r.calls[i];
        if (c->value[0] == 'A') {
            if (ia < 13)
                CHECK_STR(c->value, expect_a[ia]);
            ia++;
            if (strcmp(c->value, "A3") == 0) {
                if (last_a3 >= 0)
                    CHECK(c->at_ms - last_a3 >= 90); /* backOffDuration 100ms */
                last_a3 = c->at_ms;
            }
        } else {
            if (ib < 12)
                CHECK_STR(c->value, expect_b[ib]);
            ib++;
        }
    }
    CHECK_INT(ia, 13);
    CHECK_INT(ib, 12);
    pthread_mutex_unlock(&r.lock);

    /* Partitions run concurrently: with "block" held on its partition, a message of another
     * partition is handled meanwhile. */
    r.block_value = "block";
    r.release_result = BROKER_ACK;
    CHECK_INT(publish(b, "ord", "key-A", "block"), 0);
    CHECK(wait_blocked(&r, WAIT_MS));
    int block_partition = -1, other = 0;
    pthread_mutex_lock(&r.lock);
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.calls[i].value, "block") == 0)
            block_partition = r.calls[i].partition;
    pthread_mutex_unlock(&r.lock);
    CHECK_INT(publish(b, "ord", "key-A", "after-block"), 0); /* same partition: must wait */
    for (int i = 0; i < 16; i++) {
        char key[16];
        snprintf(key, sizeof(key), "other-%d", i);
        CHECK_INT(publish(b, "ord", key, key), 0);
    }
    /* Some "other-*" lands on the other partition and is handled while "block" is held. */
    int64_t deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
    while (other == 0 && time_mono_usec() < deadline) {
        (void)wait_count(&r, "other-0", 1, 50);
        pthread_mutex_lock(&r.lock);
        for (size_t j = 0; j < r.n; j++)
            if (strncmp(r.calls[j].value, "other-", 6) == 0) {
                CHECK(r.calls[j].partition != block_partition);
                other++;
            }
        pthread_mutex_unlock(&r.lock);
    }
    CHECK(other > 0);
    CHECK_INT(count(&r, "after-block"), 0); /* still behind "block" */
    CHECK(!atomic_load(&r.returned));
    release(&r, BROKER_ACK);
    CHECK(wait_count(&r, "after-block", 1, WAIT_MS));
    for (int i = 0; i < 16; i++) {
        char key[16];
        snprintf(key, sizeof(key), "other-%d", i);
        CHECK(wait_count(&r, key, 1, WAIT_MS));
    }
    broker_free(b);
    rec_dispose(&r);
}

/* A slow handler: the poll thread fetches faster than the worker hands over. */
static broker_result_t slow_ack(rec_t *r, const call_t *c, int n)
{
    usleep(2000);
    return BROKER_ACK;
}

/* More messages on one partition than a worker queues (fetching pauses and resumes): all handled
 * once, in offset order. */
static void bulk(void)
{
    static const char *const kv[] = {"consumerGroup", "bulk-g", "initialOffset", "oldest", NULL};
    broker_t *b = new_broker("kafka-pubsub", kv);
    rec_t *r = xcalloc(1, sizeof(*r));
    enum { N = 1000 };

    rec_init(r, "bulk", slow_ack);
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "b%d", i);
        if (publish(b, "bulk", "one-key", v) != 0) {
            CHECK(0);
            break;
        }
    }
    CHECK_INT(broker_subscribe(b, "bulk", record, r), 0);
    CHECK_INT(broker_start(b), 0);
    char last[16];
    snprintf(last, sizeof(last), "b%d", N - 1);
    CHECK(wait_count(r, last, 1, WAIT_MS));
    broker_stop(b);
    pthread_mutex_lock(&r->lock);
    CHECK_INT(r->n, N);
    for (size_t i = 0; i < r->n && i < N; i++) {
        char v[16];
        snprintf(v, sizeof(v), "b%zu", i);
        CHECK_STR(r->calls[i].value, v);
        CHECK_INT(r->calls[i].offset, (int64_t)i);
    }
    pthread_mutex_unlock(&r->lock);
    broker_free(b);
    rec_dispose(r);
    free(r);
}

static broker_result_t fail_bad(rec_t *r, const call_t *c, int n)
{
    return strncmp(c->value, "bad", 3) == 0 ? BROKER_FAIL : BROKER_ACK;
}

/* backOffMaxRetries 2: three calls, then skipped and the next message handled; with
 * consumeRetryEnabled false: one call. */
static void giveup(void)
{
    static const char *const kv1[] = {"consumerGroup",
                                      "gu-g",
                                      "initialOffset",
                                      "oldest",
                                      "backOffDuration",
                                      "50ms",
                                      "backOffMaxRetries",
                                      "2",
                                      NULL};
    static const char *const kv2[] = {
        "consumerGroup", "gu2-g", "initialOffset", "oldest", "consumeRetryEnabled", "false", NULL};
    broker_t *b = new_broker("kafka-pubsub", kv1);
    broker_t *b2 = new_broker("kafka-pubsub", kv2);
    rec_t r, r2;

    rec_init(&r, "giveup", fail_bad);
    rec_init(&r2, "noretry", fail_bad);
    CHECK_INT(publish(b, "gu", "k", "bad-1"), 0);
    CHECK_INT(publish(b, "gu", "k", "good-1"), 0);
    CHECK_INT(broker_subscribe(b, "gu", record, &r), 0);
    CHECK_INT(broker_subscribe(b2, "gu", record, &r2), 0);
    CHECK_INT(broker_start(b), 0);
    CHECK_INT(broker_start(b2), 0);
    CHECK(wait_count(&r, "good-1", 1, WAIT_MS));
    CHECK_INT(count(&r, "bad-1"), 3);
    CHECK(wait_count(&r2, "good-1", 1, WAIT_MS));
    CHECK_INT(count(&r2, "bad-1"), 1);
    broker_free(b);
    broker_free(b2);

    /* Default policy (constant 5 s, forever): broker_stop does not sit out the back-off. */
    static const char *const kv3[] = {"consumerGroup", "gu3-g", "initialOffset", "oldest", NULL};
    broker_t *b3 = new_broker("kafka-pubsub", kv3);
    rec_t r3;
    rec_init(&r3, "default-backoff", fail_bad);
    CHECK_INT(broker_subscribe(b3, "gu", record, &r3), 0);
    CHECK_INT(broker_start(b3), 0);
    CHECK(wait_count(&r3, "bad-1", 1, WAIT_MS));
    int64_t t0 = time_mono_usec();
    broker_stop(b3);
    int64_t stop_ms = (time_mono_usec() - t0) / 1000;
    printf("giveup: stop during a 5 s back-off took %" PRId64 " ms\n", stop_ms);
    CHECK(stop_ms < 4000);
    CHECK_INT(count(&r3, "bad-1"), 1);
    CHECK_INT(count(&r3, "good-1"), 0); /* blocked behind bad-1 */
    printf("giveup: stop during a 5 s back-off took %" PRId64 " ms\n", stop_ms);
    CHECK(stop_ms < 4000);
    CHECK_INT(count(&r3, "bad-1"), 1);
    CHECK_INT(count(&r3, "good-1"), 0); /* blocked behind bad-1 */
    for (size_t i = 0; i < r3.n; i++)
        fprintf(stderr, "r3 %s p%d o%" PRId64 " t%" PRId64 "\n", r3.calls[i].value,
                r3.calls[i].partition, r3.calls[i].offset, r3.calls[i].at_ms);
    broker_free(b3);
    rec_dispose(&r);
    rec_dispose(&r2);
    rec_dispose(&r3);
}

/* Two brokers, one group: after both have assignments each message is handled once in total. */
static void competing(void)
{
    /* One group: the app id "check-app", once through the {appID} template, once by default
     * (DAPR-CONTRACT §3.6). */
    static const char *const kvx[] = {"consumerGroup", "{appID}", NULL};
    static const char *const kvy[] = {"clientID", "y", NULL};
    broker_t *x = new_broker("kafka-pubsub", kvx), *y = new_broker("kafka-pubsub", kvy);
    rec_t rx, ry;
    rec_t *recs[2] = {&rx, &ry};
    int nx = 0, ny = 0;

    rec_init(&rx, "x", NULL);
    rec_init(&ry, "y", NULL);
    CHECK_INT(broker_subscribe(x, "comp", record, &rx), 0);
    CHECK_INT(broker_subscribe(y, "comp", record, &ry), 0);
    CHECK_INT(broker_start(x), 0);
    CHECK_INT(broker_start(y), 0);
    CHECK(await_assignments(x, "comp", recs, 2));
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        CHECK_INT(publish(x, "comp", v, v), 0);
    }
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        int64_t deadline = time_mono_usec() + 30000000;
        while (count(&rx, v) + count(&ry, v) < 1 && time_mono_usec() < deadline)
            (void)wait_count(&rx, v, 1, 50);
    }
    broker_stop(x);
    broker_stop(y);
    for (int i = 0; i < 20; i++) {
        char v[16];
        snprintf(v, sizeof(v), "m%d", i);
        int cx = count(&rx, v), cy = count(&ry, v);
        if (cx + cy != 1)
            fprintf(stderr, "%s handled %d + %d times\n", v, cx, cy);
        CHECK_INT(cx + cy, 1);
        nx += cx;
        ny += cy;
    }
    printf("competing: x handled %d, y handled %d\n", nx, ny);
    CHECK(nx > 0);
    CHECK(ny > 0);
    broker_free(x);
    broker_free(y);
    rec_dispose(&rx);
    rec_dispose(&ry);
}

/* Two groups (two app ids): each gets every message. */
static void fanout(void)
{
    /* consumerGroup wins over consumerID. */
    static const char *const kva[] = {"consumerGroup", "fan-a", "consumerID", "fan-b", NULL};
    static const char *const kvb[] = {"consumerID", "fan-b", NULL};
    broker_t *a = new_broker("kafka-pubsub", kva), *b = new_broker("kafka-pubsub", kvb);
    rec_t ra, rb;
    rec_t *recs[2] = {&ra, &rb};

    rec_init(&ra, "a", NULL);
    rec_init(&rb, "b", NULL);
    CHECK_INT(broker_subscribe(a, "fan", record, &ra), 0);
    CHECK_INT(broker_subscribe(b, "fan", record, &rb), 0);
    CHECK_INT(broker_start(a), 0);
    CHECK_INT(broker_start(b), 0);
    CHECK(await_assignments(a, "fan", recs, 2));
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof(v), "f%d", i);
        CHECK_INT(publish(a, "fan", v, v), 0);
    }
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof(v), "f%d", i);
        CHECK(wait_count(&ra, v, 1, 30000));
        CHECK(wait_count(&rb, v, 1, 30000));
    }
    broker_stop(a);
    broker_stop(b);
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof(v), "f%d", i);
        CHECK_INT(count(&ra, v), 1);
        CHECK_INT(count(&rb, v), 1);
    }
    broker_free(a);
    broker_free(b);
    rec_dispose(&ra);
    rec_dispose(&rb);
}

/* initialOffset: oldest sees what was published before the group existed, newest does not
 * (DAPR-CONTRACT §3.6, §14 item 14). */
static void offsets(void)
{
    static const char *const kvo[] = {"consumerGroup", "offs-oldest", "initialOffset", "oldest",
                                      NULL};
    static const char *const kvn[] = {"consumerGroup", "offs-newest", NULL};
    broker_t *o = new_broker("kafka-pubsub", kvo), *n = new_broker("kafka-pubsub", kvn);
    rec_t ro, rn;
    rec_t *recs[1] = {&rn};

    rec_init(&ro, "oldest", NULL);
    rec_init(&rn, "newest", NULL);
    CHECK_INT(publish(o, "offs", "k", "early-1"), 0);
    CHECK_INT(publish(o, "offs", "k", "early-2"), 0);
    CHECK_INT(broker_subscribe(o, "offs", record, &ro), 0);
    CHECK_INT(broker_subscribe(n, "offs", record, &rn), 0);
    CHECK_INT(broker_start(o), 0);
    CHECK_INT(broker_start(n), 0);
    CHECK(await_assignments(n, "offs", recs, 1));
    CHECK_INT(publish(n, "offs", "k", "late"), 0);
    CHECK(wait_count(&rn, "late", 1, 30000));
    CHECK(wait_count(&ro, "late", 1, 30000));
    CHECK_INT(count(&ro, "early-1"), 1);
    CHECK_INT(count(&ro, "early-2"), 1);
    CHECK_INT(count(&rn, "early-1"), 0);
    CHECK_INT(count(&rn, "early-2"), 0);
    broker_free(o);
    broker_free(n);
    rec_dispose(&ro);
    rec_dispose(&rn);
}

typedef struct {
    broker_t *b;
    atomic_bool done;
} freer_t;

static void *free_broker(void *arg)
{
    freer_t *f = arg;
    broker_free(f->b);
    atomic_store(&f->done, true);
    return NULL;
}

/* A broker freed while its handler is inside a message (that then fails): broker_free waits for
 * the handler, commits nothing for it, and the next member of the group gets it again. */
static void handoff(void)
{
    static const char *const kv[] = {
        "consumerGroup", "ho-g", "initialOffset", "oldest", "backOffDuration", "100ms", NULL};
    broker_t *x = new_broker("kafka-pubsub", kv);
    rec_t rx, ry;
    freer_t f = {.b = x};
    pthread_t t;

    rec_init(&rx, "x", NULL);
    rec_init(&ry, "y", NULL);
    rx.block_value = "stuck";
    rx.release_result = BROKER_FAIL;
    CHECK_INT(publish(x, "ho", "k", "before"), 0);
    CHECK_INT(publish(x, "ho", "k", "stuck"), 0);
    CHECK_INT(publish(x, "ho", "k", "after"), 0);
    CHECK_INT(broker_subscribe(x, "ho", record, &rx), 0);
    CHECK_INT(broker_start(x), 0);
    CHECK(wait_blocked(&rx, WAIT_MS));
    CHECK_INT(pthread_create(&t, NULL, free_broker, &f), 0);
    /* broker_free must wait for the handler in flight. */
    usleep(300000);
    CHECK(!atomic_load(&f.done));
    release(&rx, BROKER_FAIL);
    pthread_join(t, NULL);
    CHECK(atomic_load(&rx.returned));
    CHECK_INT(count(&rx, "after"), 0);

    broker_t *y = new_broker("kafka-pubsub", kv);
    CHECK_INT(broker_subscribe(y, "ho", record, &ry), 0);
    CHECK_INT(broker_start(y), 0);
    CHECK(wait_count(&ry, "after", 1, WAIT_MS));
    CHECK_INT(count(&ry, "before"), 0); /* committed by x */
    CHECK_INT(count(&ry, "stuck"), 1);
    broker_free(y);
    rec_dispose(&rx);
    rec_dispose(&ry);
}

/* ---- processes for the kill test ------------------------------------------------------------ */

static int cmd_publish(int argc, char **argv)
{
    broker_t *b = new_broker("kafka-pubsub", NULL);
    int rc = 0;
    for (int i = 2; i < argc; i++)
        if (publish(b, argv[0], argv[1], argv[i]) != 0) {
            fprintf(stderr, "publish %s failed\n", argv[i]);
            rc = 1;
        }
    broker_free(b);
    return rc;
}

static const char *hang_value;

static broker_result_t print_and_maybe_hang(const broker_msg_t *m, void *arg)
{
    printf("got %.*s\n", (int)m->len, (const char *)m->value);
    fflush(stdout);
    if (hang_value && m->len == strlen(hang_value) && memcmp(m->value, hang_value, m->len) == 0)
        for (;;)
            pause(); /* until killed */
    return BROKER_ACK;
}

static int cmd_consume(int argc, char **argv)
{
    const char *kv[] = {"consumerGroup", argv[1], "initialOffset", "oldest", NULL};
    broker_t *b;
    char line[64];

    if (argc >= 4 && strcmp(argv[2], "--hang") == 0)
        hang_value = argv[3];
    b = new_broker("kafka-pubsub", kv);
    if (broker_subscribe(b, argv[0], print_and_maybe_hang, NULL) != 0 || broker_start(b) != 0)
        return 1;
    printf("subscribed\n");
    fflush(stdout);
    /* Runs until stdin closes (or the process is killed). */
    while (fgets(line, sizeof(line), stdin))
        ;
    broker_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kafka_broker_check BOOTSTRAP SCENARIO [ARGS]\n");
        return 2;
    }
    log_level_t level = LOG_LEVEL_INFO;
    if (getenv("CHECK_LOG_LEVEL") && log_level_parse(getenv("CHECK_LOG_LEVEL"), &level) != 0)
        level = LOG_LEVEL_INFO;
    log_init("kafka_broker_check", level);
    bootstrap = argv[1];
    const char *s = argv[2];
    if (strcmp(s, "publish") == 0 && argc >= 6)
        return cmd_publish(argc - 3, argv + 3);
    if (strcmp(s, "consume") == 0 && argc >= 5)
        return cmd_consume(argc - 3, argv + 3);
    if (strcmp(s, "roundtrip") == 0) {
        roundtrip();
        binary_value();
    } else if (strcmp(s, "ordering") == 0)
        ordering();
    else if (strcmp(s, "bulk") == 0)
        bulk();
    else if (strcmp(s, "giveup") == 0)
        giveup();
    else if (strcmp(s, "competing") == 0)
        competing();
    else if (strcmp(s, "fanout") == 0)
        fanout();
    else if (strcmp(s, "offsets") == 0)
        offsets();
    else if (strcmp(s, "handoff") == 0)
        handoff();
    else {
        fprintf(stderr, "unknown scenario %s\n", s);
        return 2;
    }
    return check_exit();
}
