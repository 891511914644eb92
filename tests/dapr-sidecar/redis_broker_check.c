/* The C half of tests/integration/test_sidecar_redis_broker.py: drives the pubsub.redis broker
 * (broker_redis.c through broker.h) against a running redis-server. One scenario per run:
 *   redis_broker_check HOST:PORT roundtrip|competing|fanout|fail|overrun|config
 *   redis_broker_check HOST:PORT publish TOPIC VALUE...
 *   redis_broker_check HOST:PORT consume TOPIC GROUP PROCESSING_TIMEOUT REDELIVER_INTERVAL
 *                      [--hang VALUE]
 *     (prints "got VALUE" per message, "hanging VALUE" before blocking forever on VALUE) */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
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

#define MAX_CALLS 4096
#define WAIT_MS   20000

static const char *hostport;

/* ---- components ------------------------------------------------------------------------------ */

static void comp_init(res_component_t *c, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->name = xstrdup(name);
    c->type = xstrdup("pubsub.redis");
    c->version = xstrdup("v1");
    c->meta[0].name = xstrdup("redisHost");
    c->meta[0].value = xstrdup(hostport);
    c->nmeta = 1;
}

static void comp_set(res_component_t *c, const char *k, const char *v)
{
    for (size_t i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i].name, k) == 0) {
            free(c->meta[i].value);
            c->meta[i].value = xstrdup(v);
            return;
        }
    c->meta[c->nmeta].name = xstrdup(k);
    c->meta[c->nmeta].value = xstrdup(v);
    c->nmeta++;
}

static void comp_dispose(res_component_t *c)
{
    free(c->name);
    free(c->type);
    free(c->version);
    for (size_t i = 0; i < c->nmeta; i++) {
        free(c->meta[i].name);
        free(c->meta[i].value);
    }
}

static broker_t *new_broker(res_component_t *c, const char *app_id)
{
    char *err = NULL;
    broker_t *b = broker_new(c, app_id, &err);
    if (!b) {
        fprintf(stderr, "broker_new: %s\n", err ? err : "?");
        free(err);
        exit(2);
    }
    return b;
}

/* ---- a recording handler --------------------------------------------------------------------- */

typedef struct {
    char *value;
    size_t len;
    char *headers;            /* "name=value\n" per header, sorted as received */
    int64_t deadline_left_ms; /* -1 when the message carried no deadline */
} call_t;

typedef struct rec rec_t;
typedef broker_result_t (*behave_fn)(rec_t *r, const char *value, int n);

struct rec {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    call_t calls[MAX_CALLS];
    size_t n;
    behave_fn behave;
    int done; /* handler calls that returned */
};

static void rec_init(rec_t *r, behave_fn behave)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->behave = behave;
}

static void rec_dispose(rec_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->calls[i].value);
        free(r->calls[i].headers);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

static int count_value_locked(rec_t *r, const char *v)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->calls[i].value, v) == 0)
            n++;
    return n;
}

static broker_result_t handler(const broker_msg_t *m, void *arg)
{
    rec_t *r = arg;
    char hdrs[4096] = "";
    size_t off = 0;
    for (size_t i = 0; i < m->nheaders && off < sizeof(hdrs); i++)
        off += (size_t)snprintf(hdrs + off, sizeof(hdrs) - off, "%s=%s\n", m->headers[i].name,
                                m->headers[i].value);
    char *value = xmalloc(m->len + 1);
    memcpy(value, m->value, m->len);
    value[m->len] = '\0';
    pthread_mutex_lock(&r->lock);
    int n = count_value_locked(r, value);
    if (r->n < MAX_CALLS) {
        r->calls[r->n].value = xstrdup(value);
        r->calls[r->n].len = m->len;
        r->calls[r->n].headers = xstrdup(hdrs);
        r->calls[r->n].deadline_left_ms =
            m->deadline_usec ? (m->deadline_usec - time_mono_usec()) / 1000 : -1;
        r->n++;
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    broker_result_t res = r->behave ? r->behave(r, value, n) : BROKER_ACK;
    free(value);
    pthread_mutex_lock(&r->lock);
    r->done++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return res;
}

/* Waits until pred(r) holds (checked under the lock) or WAIT_MS pass; the final value. */
static bool rec_wait(rec_t *r, bool (*pred)(rec_t *, const void *), const void *arg)
{
    int64_t deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
    pthread_mutex_lock(&r->lock);
    bool ok;
    while (!(ok = pred(r, arg)) && time_mono_usec() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static bool has_calls(rec_t *r, const void *n)
{
    return r->n >= *(const size_t *)n;
}

static bool has_done(rec_t *r, const void *n)
{
    return r->done >= *(const int *)n;
}

static int count_value(rec_t *r, const char *v)
{
    pthread_mutex_lock(&r->lock);
    int n = count_value_locked(r, v);
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- raw Redis ------------------------------------------------------------------------------- */

static redisContext *raw(void)
{
    char host[256];
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), (struct timeval){5, 0});
    if (!c || c->err) {
        fprintf(stderr, "cannot connect to redis\n");
        exit(2);
    }
    redisSetTimeout(c, (struct timeval){5, 0});
    return c;
}

static long long pending_count(const char *topic, const char *group)
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "XPENDING %s %s", topic, group);
    long long n = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return n;
}

static void publish(broker_t *b, const char *topic, const void *v, size_t len,
                    const broker_header_t *h, size_t nh)
{
    broker_msg_t m = {.topic = topic, .value = v, .len = len};
    for (size_t i = 0; i < nh; i++)
        m.headers[m.nheaders++] = h[i];
    CHECK_INT(broker_publish(b, &m), 0);
}

static void publish_str(broker_t *b, const char *topic, const char *v)
{
    publish(b, topic, v, strlen(v), NULL, 0);
}

/* ---- scenarios ------------------------------------------------------------------------------- */

static void roundtrip(void)
{
    res_component_t c;
    rec_t r;
    comp_init(&c, "pubsub");
    comp_set(&c, "maxLenApprox", "10");
    rec_init(&r, NULL);
    broker_t *b = new_broker(&c, "app-rt");
    CHECK_INT(broker_subscribe(b, "rt", handler, &r), 0);
    /* The stream and the group exist once subscribe returned (MKSTREAM). */
    CHECK_INT(pending_count("rt", "app-rt"), 0);

    static const char payload[] = "{\"a\":1}\0binary\xff";
    broker_header_t h[] = {{"partitionKey", "k1"}, {"traceparent", "00-abc-def-01"}};
    publish(b, "rt", payload, sizeof(payload) - 1, h, 2);
    size_t one = 1;
    CHECK(rec_wait(&r, has_calls, &one));
    pthread_mutex_lock(&r.lock);
    if (r.n >= 1) {
        CHECK_INT(r.calls[0].len, sizeof(payload) - 1);
        CHECK_STR(r.calls[0].headers, "partitionKey=k1\ntraceparent=00-abc-def-01\n");
        /* The default processingTimeout (60 s) is the handler's deadline. */
        CHECK(r.calls[0].deadline_left_ms > 50000 && r.calls[0].deadline_left_ms <= 60000);
    }
    pthread_mutex_unlock(&r.lock);
    int done1 = 1;
    CHECK(rec_wait(&r, has_done, &done1));

    /* The entry holds exactly the fields data and metadata, as Dapr writes them. */
    redisContext *rc = raw();
    redisReply *x = redisCommand(rc, "XRANGE rt - +");
    CHECK(x && x->type == REDIS_REPLY_ARRAY && x->elements == 1);
    if (x && x->type == REDIS_REPLY_ARRAY && x->elements == 1) {
        redisReply *f = x->element[0]->element[1];
        CHECK_INT(f->elements, 4);
        if (f->elements == 4) {
            CHECK_STR(f->element[0]->str, "data");
            CHECK_INT(f->element[1]->len, sizeof(payload) - 1);
            CHECK(memcmp(f->element[1]->str, payload, sizeof(payload) - 1) == 0);
            CHECK_STR(f->element[2]->str, "metadata");
            CHECK_STR(f->element[3]->str,
                      "{\"partitionKey\":\"k1\",\"traceparent\":\"00-abc-def-01\"}");
        }
    }
    if (x)
        freeReplyObject(x);
    /* Acknowledged after the handler's ACK. */
    bool acked = false;
    for (int i = 0; i < 400 && !acked; i++) {
        acked = pending_count("rt", "app-rt") == 0;
        if (!acked)
            usleep(10000);
    }
    CHECK(acked);

    /* A message without metadata headers still carries "metadata" "{}". */
    publish_str(b, "rt", "plain");
    size_t two = 2;
    CHECK(rec_wait(&r, has_calls, &two));
    pthread_mutex_lock(&r.lock);
    if (r.n >= 2)
        CHECK_STR(r.calls[1].headers, "");
    pthread_mutex_unlock(&r.lock);

    /* MAXLEN ~ 10 trims the stream (approximately: whole macro nodes). */
    for (int i = 0; i < 300; i++)
        publish_str(b, "trim", "x");
    x = redisCommand(rc, "XLEN trim");
    CHECK(x && x->type == REDIS_REPLY_INTEGER && x->integer < 300);
    if (x)
        freeReplyObject(x);
    redisFree(rc);
    broker_free(b);
    rec_dispose(&r);
    comp_dispose(&c);
}

static void competing(void)
{
    res_component_t c;
    rec_t r1, r2;
    comp_init(&c, "pubsub");
    rec_init(&r1, NULL);
    rec_init(&r2, NULL);
    broker_t *b1 = new_broker(&c, "app-comp"), *b2 = new_broker(&c, "app-comp");
    CHECK_INT(broker_subscribe(b1, "comp", handler, &r1), 0);
    CHECK_INT(broker_subscribe(b2, "comp", handler, &r2), 0);
    enum { N = 60 };
    char v[32];
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "m%d", i);
        publish_str(b1, "comp", v);
    }
    int64_t deadline = time_mono_usec() + (int64_t)WAIT_MS * 1000;
    size_t total = 0;
    while (time_mono_usec() < deadline) {
        pthread_mutex_lock(&r1.lock);
        total = r1.n;
        pthread_mutex_unlock(&r1.lock);
        pthread_mutex_lock(&r2.lock);
        total += r2.n;
        pthread_mutex_unlock(&r2.lock);
        if (total >= N)
            break;
        usleep(10000);
    }
    CHECK_INT(total, N);
    broker_stop(b1);
    broker_stop(b2);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "m%d", i);
        CHECK_INT(count_value(&r1, v) + count_value(&r2, v), 1);
    }
    printf("competing: %zu + %zu\n", r1.n, r2.n);
    broker_free(b1);
    broker_free(b2);
    rec_dispose(&r1);
    rec_dispose(&r2);
    comp_dispose(&c);
}

static void fanout(void)
{
    res_component_t c1, c2;
    rec_t r1, r2;
    comp_init(&c1, "pubsub");
    comp_init(&c2, "pubsub");
    comp_set(&c2, "consumerID", "explicit-{appID}");
    rec_init(&r1, NULL);
    rec_init(&r2, NULL);
    broker_t *b1 = new_broker(&c1, "app-a"), *b2 = new_broker(&c2, "app-b");
    CHECK_INT(broker_subscribe(b1, "fan", handler, &r1), 0);
    CHECK_INT(broker_subscribe(b2, "fan", handler, &r2), 0);
    enum { N = 20 };
    char v[32];
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "f%d", i);
        publish_str(b1, "fan", v);
    }
    size_t n = N;
    CHECK(rec_wait(&r1, has_calls, &n));
    CHECK(rec_wait(&r2, has_calls, &n));
    broker_stop(b1);
    broker_stop(b2);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "f%d", i);
        CHECK_INT(count_value(&r1, v), 1);
        CHECK_INT(count_value(&r2, v), 1);
    }
    /* The groups are the app id and the expanded consumerID. */
    CHECK(pending_count("fan", "app-a") == 0);
    CHECK(pending_count("fan", "explicit-app-b") == 0);
    broker_free(b1);
    broker_free(b2);
    rec_dispose(&r1);
    rec_dispose(&r2);
    comp_dispose(&c1);
    comp_dispose(&c2);
}

static broker_result_t fail_bad(rec_t *r, const char *value, int n)
{
    (void)r;
    (void)n;
    return strcmp(value, "bad") == 0 ? BROKER_FAIL : BROKER_ACK;
}

/* DAPR-CONTRACT §3.3: a quick failure is acknowledged (gone), never redelivered. */
static void fail(void)
{
    res_component_t c;
    rec_t r;
    comp_init(&c, "pubsub");
    comp_set(&c, "processingTimeout", "300");
    comp_set(&c, "redeliverInterval", "100");
    rec_init(&r, fail_bad);
    broker_t *b = new_broker(&c, "app-fail");
    CHECK_INT(broker_subscribe(b, "failing", handler, &r), 0);
    publish_str(b, "failing", "bad");
    int one = 1;
    CHECK(rec_wait(&r, has_done, &one));
    bool acked = false;
    for (int i = 0; i < 400 && !acked; i++) {
        acked = pending_count("failing", "app-fail") == 0;
        if (!acked)
            usleep(10000);
    }
    CHECK(acked);
    /* Messages after it flow, and "bad" was handled exactly once. */
    publish_str(b, "failing", "good");
    size_t two = 2;
    CHECK(rec_wait(&r, has_calls, &two));
    broker_stop(b);
    CHECK_INT(count_value(&r, "bad"), 1);
    CHECK_INT(count_value(&r, "good"), 1);
    broker_free(b);
    rec_dispose(&r);
    comp_dispose(&c);
}

static broker_result_t slow_first(rec_t *r, const char *value, int n)
{
    (void)r;
    if (strcmp(value, "slow") == 0 && n == 0) {
        usleep(500 * 1000); /* longer than processingTimeout */
        return BROKER_FAIL;
    }
    return BROKER_ACK;
}

/* DAPR-CONTRACT §3.3: a failure after processingTimeout leaves the message pending; the reclaim
 * loop redelivers it. */
static void overrun(void)
{
    res_component_t c;
    rec_t r;
    comp_init(&c, "pubsub");
    comp_set(&c, "processingTimeout", "300ms");
    comp_set(&c, "redeliverInterval", "200");
    rec_init(&r, slow_first);
    broker_t *b = new_broker(&c, "app-overrun");
    CHECK_INT(broker_subscribe(b, "overrun", handler, &r), 0);
    publish_str(b, "overrun", "slow");
    int two = 2;
    CHECK(rec_wait(&r, has_done, &two));
    CHECK_INT(count_value(&r, "slow"), 2);
    bool acked = false;
    for (int i = 0; i < 400 && !acked; i++) {
        acked = pending_count("overrun", "app-overrun") == 0;
        if (!acked)
            usleep(10000);
    }
    CHECK(acked);
    broker_free(b);
    rec_dispose(&r);
    comp_dispose(&c);
}

static void expect_config_error(const char *k, const char *v, const char *needle)
{
    res_component_t c;
    char *err = NULL;
    comp_init(&c, "pubsub");
    if (k)
        comp_set(&c, k, v);
    broker_t *b = broker_new(&c, "app", &err);
    CHECK(b == NULL);
    CHECK(err && strstr(err, needle));
    if (!err || !strstr(err, needle))
        fprintf(stderr, "error '%s' lacks '%s'\n", err ? err : "(null)", needle);
    broker_free(b);
    free(err);
    comp_dispose(&c);
}

static void config(void)
{
    expect_config_error("processingTimeout", "soon", "processingTimeout");
    expect_config_error("concurrency", "0", "concurrency");
    expect_config_error("maxLenApprox", "-1", "maxLenApprox");
    expect_config_error("redisType", "cluster", "cluster");
    expect_config_error("enableTLS", "true", "enableTLS");
    expect_config_error("redisHost", "localhost", "host:port");
    expect_config_error("redisHost", "localhost:notaport", "host:port");
    /* redeliverInterval takes milliseconds only; "30s" is ignored with a warning. */
    {
        res_component_t ok;
        char *e = NULL;
        comp_init(&ok, "pubsub");
        comp_set(&ok, "redeliverInterval", "30s");
        broker_t *b = broker_new(&ok, "app", &e);
        CHECK(b != NULL);
        broker_free(b);
        free(e);
        comp_dispose(&ok);
    }
    /* Nothing listens there: init fails as Dapr's does on a failed PING. */
    res_component_t c;
    char *err = NULL;
    comp_init(&c, "pubsub");
    free(c.meta[0].value);
    c.meta[0].value = xstrdup("127.0.0.1:1");
    CHECK(broker_new(&c, "app", &err) == NULL);
    CHECK(err && strstr(err, "error connecting to redis"));
    free(err);
    comp_dispose(&c);
}

/* ---- the process scenarios of the Python half ------------------------------------------------ */

static const char *hang_value;

static broker_result_t print_and_maybe_hang(rec_t *r, const char *value, int n)
{
    (void)r;
    (void)n;
    if (hang_value && strcmp(value, hang_value) == 0) {
        printf("hanging %s\n", value);
        fflush(stdout);
        for (;;)
            pause();
    }
    printf("got %s\n", value);
    fflush(stdout);
    return BROKER_ACK;
}

static int consume(int argc, char **argv)
{
    if (argc < 7)
        return 2;
    res_component_t c;
    rec_t r;
    comp_init(&c, "pubsub");
    comp_set(&c, "consumerID", argv[4]);
    comp_set(&c, "processingTimeout", argv[5]);
    comp_set(&c, "redeliverInterval", argv[6]);
    if (argc >= 9 && strcmp(argv[7], "--hang") == 0)
        hang_value = argv[8];
    rec_init(&r, print_and_maybe_hang);
    broker_t *b = new_broker(&c, "consumer-app");
    if (broker_subscribe(b, argv[3], handler, &r) != 0)
        return 1;
    printf("subscribed\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof(line), stdin)) /* runs until stdin closes */
        ;
    broker_free(b);
    rec_dispose(&r);
    comp_dispose(&c);
    return 0;
}

static int publish_cmd(int argc, char **argv)
{
    res_component_t c;
    comp_init(&c, "pubsub");
    broker_t *b = new_broker(&c, "publisher-app");
    for (int i = 4; i < argc; i++)
        publish_str(b, argv[3], argv[i]);
    broker_free(b);
    comp_dispose(&c);
    return check_exit();
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST:PORT SCENARIO ...\n", argv[0]);
        return 2;
    }
    log_init("redis_broker_check", LOG_LEVEL_WARN);
    hostport = argv[1];
    const char *s = argv[2];
    if (strcmp(s, "consume") == 0)
        return consume(argc, argv);
    if (strcmp(s, "publish") == 0)
        return publish_cmd(argc, argv);
    if (strcmp(s, "roundtrip") == 0)
        roundtrip();
    else if (strcmp(s, "competing") == 0)
        competing();
    else if (strcmp(s, "fanout") == 0)
        fanout();
    else if (strcmp(s, "fail") == 0)
        fail();
    else if (strcmp(s, "overrun") == 0)
        overrun();
    else if (strcmp(s, "config") == 0)
        config();
    else {
        fprintf(stderr, "unknown scenario %s\n", s);
        return 2;
    }
    return check_exit();
}
