/* The pubsub.kafka component on librdkafka (DAPR-CONTRACT §3.3, §3.4, §3.6): a synchronous
 * idempotent producer, and one consumer in the component's group for all its subscribed topics
 * (one group member per component, as daprd's Kafka component), which hands each assigned
 * partition's messages to the topic's handler one at a time on the partition's own worker. */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "broker_impl.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define MODULE             "broker.kafka"
#define PUBLISH_TIMEOUT_MS 30000 /* delivery report deadline of a publish */
#define COMMIT_TIMEOUT_MS  10000
#define COMMITTED_MS       5000 /* reading the group's committed offsets at an assignment */
#define POLL_MS            100
#define MAX_SUBSCRIPTIONS  64
#define MAX_PARTITIONS     1024
#define QUEUE_HIGH         500       /* queued messages of a partition that pause its fetching */
#define QUEUE_LOW          50        /* ... and resume it */
#define QUEUE_HIGH_BYTES   (8 << 20) /* likewise for the queued bytes */
#define QUEUE_LOW_BYTES    (1 << 20)

typedef struct kafka_broker kafka_broker_t;

/* A subscribed topic and its handler; entries are never removed while the broker lives. */
typedef struct {
    char *name;
    broker_handler_fn fn;
    void *arg;
} kafka_topic_t;

/* One assigned partition's worker: the poll thread appends the partition's messages to its
 * queue; the worker hands them to the handler one at a time. */
typedef struct {
    kafka_broker_t *kb;
    const kafka_topic_t *topic; /* borrowed from kb->topics */
    int32_t partition;
    rd_kafka_queue_t *commit_queue;
    pthread_t thread;
    pthread_mutex_t lock; /* the fields below up to bytes */
    pthread_cond_t cond;  /* a message queued, or stop; also wakes a back-off wait */
    bool stop;
    bool paused;                /* fetching paused because the queue is long */
    rd_kafka_message_t **queue; /* ring buffer */
    size_t head, count, cap;
    size_t bytes; /* payload bytes queued */
    /* Written by the worker thread only, read once it was joined. */
    int64_t acked;     /* offset after the last ACKed message, -1 = none */
    int64_t committed; /* offset the last successful commit stored, -1 = none */
} kafka_worker_t;

/* A partition revoked while the offset after its last ACKed message was not committed (the
 * group was rebalancing); applied when the next assignment gives the partition back. */
typedef struct {
    const kafka_topic_t *topic;
    int32_t partition;
    int64_t offset;
} kafka_pending_t;

typedef enum { BACKOFF_CONSTANT, BACKOFF_EXPONENTIAL } backoff_policy_t;

struct kafka_broker {
    struct broker base;
    char *name;
    char *brokers;
    char *group;
    char *client_id;
    bool oldest;
    char *security_protocol; /* NULL = plaintext */
    char *sasl_mechanism, *sasl_username, *sasl_password;
    bool escape_headers;
    regex_t exclude_re;
    bool has_exclude;
    int session_timeout_ms, heartbeat_ms;
    /* Consumer retry loop (kit retry config from backOff* metadata). */
    bool retry_enabled;
    backoff_policy_t policy;
    int64_t duration_ms, initial_ms, max_interval_ms, max_elapsed_ms, max_retries;
    double multiplier, randomization;
    rd_kafka_t *producer;
    pthread_mutex_t subscribe_lock; /* serialises subscribe, start and stop */
    pthread_mutex_t lock;           /* topics, ntopics, started, stopped */
    kafka_topic_t topics[MAX_SUBSCRIPTIONS];
    size_t ntopics;
    bool started, stopped;
    /* The consumer: created by broker_start (or the first subscribe after it). */
    rd_kafka_t *consumer;
    pthread_t poll_thread;
    bool polling; /* poll thread started and not yet joined */
    atomic_bool stopping;
    /* Touched only by the poll thread (rebalance callback) or after it was joined. */
    kafka_worker_t *workers[MAX_PARTITIONS];
    size_t nworkers;
    kafka_pending_t pending[MAX_PARTITIONS];
    size_t npending;
};

/* A publish waiting for its delivery report; freed by whichever side lets go last. */
typedef struct {
    atomic_int refs;
    atomic_bool done;
    rd_kafka_resp_err_t err;
} delivery_t;

static void delivery_release(delivery_t *d)
{
    if (atomic_fetch_sub(&d->refs, 1) == 1)
        free(d);
}

/* ---- metadata ------------------------------------------------------------------------------ */

/* Component metadata keys are matched case-insensitively, as Dapr's decoder does. */
static const char *meta(const res_component_t *c, const char *key)
{
    for (size_t i = 0; i < c->nmeta; i++)
        if (c->meta[i].name && strcasecmp(c->meta[i].name, key) == 0)
            return c->meta[i].value && c->meta[i].value[0] ? c->meta[i].value : NULL;
    return NULL;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "t") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcasecmp(s, "f") == 0) {
        *out = false;
        return 0;
    }
    return TODO_EBAD_REQUEST;
}

static int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return TODO_EBAD_REQUEST;
    *out = v;
    return 0;
}

/* A Go duration ("100ms", "5s", "1m30s", "1.5h") or a bare integer of milliseconds → ms. */
static int parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3},  {"ms", 1},
                 {"s", 1000},  {"m", 60000}, {"h", 3600000}};
    double total = 0;
    const char *p = s;

    if (parse_int64(s, 0, INT64_MAX / 1000, out) == 0)
        return 0;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*p || strlen(s) > 64)
        return TODO_EBAD_REQUEST;
    while (*p) {
        char *end;
        double v;
        size_t best = 0, which = 0;
        if (*p < '0' || *p > '9')
            if (*p != '.')
                return TODO_EBAD_REQUEST;
        errno = 0;
        v = strtod(p, &end);
        if (errno || end == p || v < 0)
            return TODO_EBAD_REQUEST;
        p = end;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0 && n > best) {
                best = n;
                which = i;
            }
        }
        if (!best)
            return TODO_EBAD_REQUEST;
        total += v * units[which].ms;
        p += best;
    }
    if (total > 1e15)
        return TODO_EBAD_REQUEST;
    *out = (int64_t)llround(total);
    return 0;
}

static int meta_duration(const res_component_t *c, const char *key, int64_t *out, char **err)
{
    const char *v = meta(c, key);
    if (v && parse_duration_ms(v, out) != 0) {
        *err = xasprintf("component %s: metadata %s: '%s' is not a duration", c->name, key, v);
        return TODO_EBAD_REQUEST;
    }
    return 0;
}

static int meta_bool(const res_component_t *c, const char *key, bool *out, char **err)
{
    const char *v = meta(c, key);
    if (v && parse_bool(v, out) != 0) {
        *err = xasprintf("component %s: metadata %s: '%s' is not a boolean", c->name, key, v);
        return TODO_EBAD_REQUEST;
    }
    return 0;
}

static int meta_double(const res_component_t *c, const char *key, double *out, char **err)
{
    const char *v = meta(c, key);
    char *end;

    if (!v)
        return 0;
    errno = 0;
    *out = strtod(v, &end);
    if (errno || end == v || *end || *out < 0 || *out > 1e6) {
        *err = xasprintf("component %s: metadata %s: '%s' is not a number", c->name, key, v);
        return TODO_EBAD_REQUEST;
    }
    return 0;
}

/* The runtime's metadata templates (DAPR-CONTRACT §3.6): {uuid}, {podName} (POD_NAME),
 * {namespace} (NAMESPACE, default "default", then ".<app id>") and {appID}; a new string. */
static char *expand_templates(const char *v, const char *app_id)
{
    char *out = xstrdup(v);
    for (int guard = 0; guard < 16; guard++) {
        static const char *const names[] = {"{uuid}", "{podName}", "{namespace}", "{appID}"};
        char *at = NULL, *with = NULL;
        size_t which = 0;
        for (size_t i = 0; i < 4 && !at; i++)
            if ((at = strstr(out, names[i])))
                which = i;
        if (!at)
            break;
        if (which == 0) {
            char id[TODO_UUID_LEN];
            todo_uuid_v4(id);
            with = xstrdup(id);
        } else if (which == 1) {
            with = xstrdup(getenv("POD_NAME") ? getenv("POD_NAME") : "");
        } else if (which == 2) {
            const char *ns = getenv("NAMESPACE");
            with = xasprintf("%s.%s", ns && *ns ? ns : "default", app_id ? app_id : "");
        } else {
            with = xstrdup(app_id ? app_id : "");
        }
        char *next = xasprintf("%.*s%s%s", (int)(at - out), out, with, at + strlen(names[which]));
        free(with);
        free(out);
        out = next;
    }
    return out;
}

/* authType none|password (SASL); DAPR-CONTRACT §3.6. Other auth types are not supported here. */
static int configure_auth(kafka_broker_t *kb, const res_component_t *c, char **err)
{
    const char *auth = meta(c, "authType");
    bool disable_tls = false;

    if (!auth)
        auth = meta(c, "saslUsername") ? "password" : "none";
    if (strcasecmp(auth, "none") == 0)
        return 0;
    if (strcasecmp(auth, "password") != 0) {
        *err = xasprintf("component %s: authType '%s' is not supported by this sidecar "
                         "(none, password)",
                         c->name, auth);
        return TODO_EBAD_REQUEST;
    }
    if (meta_bool(c, "disableTls", &disable_tls, err) != 0)
        return TODO_EBAD_REQUEST;
    const char *user = meta(c, "saslUsername"), *pass = meta(c, "saslPassword");
    const char *mech = meta(c, "saslMechanism");
    if (!user || !pass) {
        *err = xasprintf("component %s: authType password needs saslUsername and saslPassword",
                         c->name);
        return TODO_EBAD_REQUEST;
    }
    if (!mech || strcasecmp(mech, "PLAIN") == 0)
        kb->sasl_mechanism = xstrdup("PLAIN");
    else if (strcasecmp(mech, "SHA-256") == 0 || strcasecmp(mech, "SCRAM-SHA-256") == 0)
        kb->sasl_mechanism = xstrdup("SCRAM-SHA-256");
    else if (strcasecmp(mech, "SHA-512") == 0 || strcasecmp(mech, "SCRAM-SHA-512") == 0)
        kb->sasl_mechanism = xstrdup("SCRAM-SHA-512");
    else {
        *err = xasprintf("component %s: saslMechanism '%s' is not supported "
                         "(PLAIN, SHA-256, SHA-512)",
                         c->name, mech);
        return TODO_EBAD_REQUEST;
    }
    kb->security_protocol = xstrdup(disable_tls ? "sasl_plaintext" : "sasl_ssl");
    kb->sasl_username = xstrdup(user);
    kb->sasl_password = xstrdup(pass);
    return 0;
}

/* ---- librdkafka configuration ---------------------------------------------------------------- */

static void rk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* Connection losses are routine (a broker restarts, a test stops the cluster): warn at most.
     * FAIL lines repeat what rk_error reports. */
    if (level <= LOG_WARNING && strcmp(fac, "FAIL") != 0)
        log_warn(MODULE, "librdkafka %s %s: %s", rd_kafka_name(rk), fac, buf);
    else if (level <= LOG_NOTICE)
        log_info(MODULE, "librdkafka %s %s: %s", rd_kafka_name(rk), fac, buf);
    else
        log_debug(MODULE, "librdkafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

static void rk_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        log_error(MODULE, "%s: fatal error %s: %s", rd_kafka_name(rk), rd_kafka_err2name(orig),
                  buf);
        return;
    }
    log_warn(MODULE, "%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(err), reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char **err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        *err = xasprintf("librdkafka %s=%s: %s", name, value, errstr);
        return TODO_EBAD_REQUEST;
    }
    return 0;
}

/* The settings producer and consumers share (brokers, client id, security). */
static int conf_common(const kafka_broker_t *kb, rd_kafka_conf_t *conf, char **err)
{
    if (conf_set(conf, "bootstrap.servers", kb->brokers, err) ||
        conf_set(conf, "client.id", kb->client_id, err) ||
        conf_set(conf, "socket.timeout.ms", "10000", err) ||
        conf_set(conf, "socket.connection.setup.timeout.ms", "10000", err) ||
        conf_set(conf, "reconnect.backoff.max.ms", "1000", err))
        return TODO_EBAD_REQUEST;
    if (kb->security_protocol && (conf_set(conf, "security.protocol", kb->security_protocol, err) ||
                                  conf_set(conf, "sasl.mechanisms", kb->sasl_mechanism, err) ||
                                  conf_set(conf, "sasl.username", kb->sasl_username, err) ||
                                  conf_set(conf, "sasl.password", kb->sasl_password, err)))
        return TODO_EBAD_REQUEST;
    rd_kafka_conf_set_log_cb(conf, rk_log);
    rd_kafka_conf_set_error_cb(conf, rk_error);
    return 0;
}

static void dr_msg(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_t *d = m->_private;
    if (!d)
        return;
    d->err = m->err;
    atomic_store(&d->done, true);
    delivery_release(d);
}

static rd_kafka_t *producer_new(const kafka_broker_t *kb, char **err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    char errstr[512], timeout[32];

    snprintf(timeout, sizeof(timeout), "%d", PUBLISH_TIMEOUT_MS);
    /* producerRequiredAcks "all" (§3.6), idempotent so that retries keep order and add no
     * duplicates; linger 0: every publish is synchronous anyway. */
    if (conf_common(kb, conf, err) || conf_set(conf, "acks", "all", err) ||
        conf_set(conf, "enable.idempotence", "true", err) ||
        conf_set(conf, "linger.ms", "0", err) ||
        conf_set(conf, "message.timeout.ms", timeout, err) ||
        conf_set(conf, "message.max.bytes", "5242880", err))
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        *err = xasprintf("component %s: producer: %s", kb->name, errstr);
        goto fail;
    }
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- publish --------------------------------------------------------------------------------- */

/* DAPR-CONTRACT §3.6: the record value is the message bytes; every request metadata entry is a
 * record header unless excludeHeaderMetaRegex matches it; partitionKey (or __key) is also the
 * record key. */
static int kafka_publish(broker_t *b, const broker_msg_t *msg)
{
    kafka_broker_t *kb = (kafka_broker_t *)b;
    int rc = TODO_EUNAVAILABLE;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(msg->nheaders ? msg->nheaders : 1);
    const char *key = msg->key;
    delivery_t *d = NULL;
    rd_kafka_resp_err_t err;
    int64_t deadline;

    if (!msg->topic || !*msg->topic) {
        rc = TODO_EBAD_REQUEST;
        goto out;
    }
    for (size_t i = 0; i < msg->nheaders && i < BROKER_MAX_HEADERS; i++) {
        const broker_header_t *h = &msg->headers[i];
        if (!h->name || !h->value)
            continue;
        if (!key && (strcmp(h->name, "partitionKey") == 0 || strcmp(h->name, "__key") == 0))
            key = h->value;
        if (kb->has_exclude && regexec(&kb->exclude_re, h->name, 0, NULL, 0) == 0)
            continue;
        rd_kafka_header_add(hdrs, h->name, -1, h->value, -1);
    }
    d = xcalloc(1, sizeof(*d));
    atomic_init(&d->refs, 2); /* this call and the delivery report */
    err = rd_kafka_producev(
        kb->producer, RD_KAFKA_V_TOPIC(msg->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)msg->value, msg->len), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err) {
        log_warn(MODULE, "%s: publish to %s: %s", kb->name, msg->topic, rd_kafka_err2str(err));
        atomic_store(&d->refs, 1);
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            rc = TODO_EPAYLOAD_TOO_LARGE;
        goto out;
    }
    hdrs = NULL; /* the message owns them now */
    deadline = time_mono_usec() + (int64_t)(PUBLISH_TIMEOUT_MS + 5000) * 1000;
    while (!atomic_load(&d->done) && time_mono_usec() < deadline)
        rd_kafka_poll(kb->producer, 50);
    if (!atomic_load(&d->done)) {
        log_warn(MODULE, "%s: publish to %s: no delivery report within %d ms", kb->name, msg->topic,
                 PUBLISH_TIMEOUT_MS + 5000);
        goto out;
    }
    if (d->err) {
        log_warn(MODULE, "%s: publish to %s failed: %s", kb->name, msg->topic,
                 rd_kafka_err2str(d->err));
        if (d->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            rc = TODO_EPAYLOAD_TOO_LARGE;
        goto out;
    }
    rc = 0;
out:
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (d)
        delivery_release(d);
    return rc;
}

/* ---- consume --------------------------------------------------------------------------------- */

/* Go's url.QueryEscape of s into a new string. */
static char *query_escape(const char *s, size_t n)
{
    char *out = xmalloc(n * 3 + 1), *p = out;
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *p++ = (char)ch;
        } else if (ch == ' ') {
            *p++ = '+';
        } else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return out;
}

/* Strings owned by one message view. */
typedef struct {
    char *owned[BROKER_MAX_HEADERS + 1];
    size_t nowned;
} strings_t;

static const char *keep(strings_t *st, char *s)
{
    st->owned[st->nowned++] = s;
    return s;
}

static void set_header(broker_msg_t *out, const char *name, const char *value)
{
    for (size_t i = 0; i < out->nheaders; i++)
        if (strcmp(out->headers[i].name, name) == 0) {
            out->headers[i].value = value; /* later entries win, as in a Go map */
            return;
        }
    if (out->nheaders < BROKER_MAX_HEADERS) {
        out->headers[out->nheaders].name = name;
        out->headers[out->nheaders].value = value;
        out->nheaders++;
    }
}

/* DAPR-CONTRACT §3.6 (consumer.go GetEventMetadata): __key (when the record has one), __offset,
 * __topic, __timestamp (ms), __partition, then every record header. */
static void message_view(const kafka_broker_t *kb, const rd_kafka_message_t *m, broker_msg_t *out,
                         strings_t *st, char nums[3][24])
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_timestamp_type_t tstype;

    memset(out, 0, sizeof(*out));
    st->nowned = 0;
    out->topic = rd_kafka_topic_name(m->rkt);
    out->value = m->payload;
    out->len = m->len;
    if (m->key) {
        out->key = keep(st, xstrndup(m->key, m->key_len));
        set_header(out, "__key", out->key);
    }
    snprintf(nums[0], 24, "%" PRId64, m->offset);
    snprintf(nums[1], 24, "%" PRId64, rd_kafka_message_timestamp(m, &tstype));
    snprintf(nums[2], 24, "%" PRId32, m->partition);
    set_header(out, "__offset", nums[0]);
    set_header(out, "__topic", out->topic);
    set_header(out, "__timestamp", nums[1]);
    set_header(out, "__partition", nums[2]);
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0; i++) {
            if (st->nowned >= BROKER_MAX_HEADERS || out->nheaders >= BROKER_MAX_HEADERS) {
                log_warn(MODULE,
                         "%s: record %s/%" PRId32 "/%" PRId64 " has more than %d headers; "
                         "the rest are dropped",
                         kb->name, out->topic, m->partition, m->offset, BROKER_MAX_HEADERS);
                break;
            }
            size_t n = val ? strnlen(val, size) : 0;
            char *v =
                kb->escape_headers ? query_escape(val ? val : "", n) : xstrndup(val ? val : "", n);
            set_header(out, name, keep(st, v));
        }
    }
}

static void strings_dispose(strings_t *st)
{
    for (size_t i = 0; i < st->nowned; i++)
        free(st->owned[i]);
    st->nowned = 0;
}

/* Waits ms or until the worker (or the whole consumer) is told to stop; true when stopping. */
static bool wait_or_stop(kafka_worker_t *w, int64_t ms)
{
    int64_t deadline = time_mono_usec() + ms * 1000;
    bool stop = false;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        stop = w->stop || atomic_load(&w->kb->stopping);
        int64_t left = deadline - time_mono_usec();
        if (stop || left <= 0)
            break;
        /* Slices of at most 100 ms, so that a stop of the consumer is seen promptly. */
        if (left > 100000)
            left = 100000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(left % 1000000) * 1000L;
        ts.tv_sec += left / 1000000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    pthread_mutex_unlock(&w->lock);
    return stop;
}

typedef enum { HANDLED_ACK, HANDLED_GAVE_UP, HANDLED_ABORTED } handled_t;

/* Calls the handler until it ACKs, the retry policy gives up, or the worker stops.
 * DAPR-CONTRACT §3.6: consumeRetryEnabled (default true) retries with the backOff* policy,
 * default constant 5 s forever; when retries run out the message is logged and skipped. */
static handled_t handle_message(kafka_worker_t *w, const rd_kafka_message_t *m)
{
    const kafka_broker_t *kb = w->kb;
    broker_msg_t view;
    strings_t st;
    char nums[3][24];
    handled_t result = HANDLED_GAVE_UP;
    int64_t attempt = 0, start = time_mono_usec() / 1000;
    double interval = (double)kb->initial_ms;

    message_view(kb, m, &view, &st, nums);
    for (;;) {
        if (w->topic->fn(&view, w->topic->arg) == BROKER_ACK) {
            result = HANDLED_ACK;
            break;
        }
        if (!kb->retry_enabled) {
            log_error(MODULE, "%s: error processing Kafka message %s/%" PRId32 "/%" PRId64,
                      kb->name, view.topic, m->partition, m->offset);
            break;
        }
        if (kb->max_retries >= 0 && attempt >= kb->max_retries) {
            log_error(MODULE,
                      "%s: too many failed attempts at processing Kafka message "
                      "%s/%" PRId32 "/%" PRId64 ": skipped",
                      kb->name, view.topic, m->partition, m->offset);
            break;
        }
        int64_t wait_ms = kb->duration_ms;
        if (kb->policy == BACKOFF_EXPONENTIAL) {
            double delta = kb->randomization * interval;
            double lo = interval - delta, span = 2 * delta;
            wait_ms = (int64_t)(lo + span * ((double)random() / (double)RAND_MAX));
            interval = interval * kb->multiplier;
            if (interval > (double)kb->max_interval_ms)
                interval = (double)kb->max_interval_ms;
            if (kb->max_elapsed_ms > 0 &&
                time_mono_usec() / 1000 - start + wait_ms > kb->max_elapsed_ms) {
                log_error(MODULE,
                          "%s: retries of Kafka message %s/%" PRId32 "/%" PRId64
                          " exceeded %" PRId64 " ms: skipped",
                          kb->name, view.topic, m->partition, m->offset, kb->max_elapsed_ms);
                break;
            }
        }
        log_warn(MODULE,
                 "%s: processing Kafka message %s/%" PRId32 "/%" PRId64
                 " failed; retrying in %" PRId64 " ms",
                 kb->name, view.topic, m->partition, m->offset, wait_ms);
        if (wait_or_stop(w, wait_ms)) {
            result = HANDLED_ABORTED;
            break;
        }
        attempt++;
    }
    strings_dispose(&st);
    return result;
}

/* Commits offset+1 of m and waits for the coordinator's answer (bounded); true when stored. */
static bool commit_message(kafka_worker_t *w, const rd_kafka_message_t *m)
{
    kafka_broker_t *kb = w->kb;
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;
    rd_kafka_event_t *ev;

    rd_kafka_topic_partition_list_add(offs, w->topic->name, m->partition)->offset = m->offset + 1;
    err = rd_kafka_commit_queue(kb->consumer, offs, w->commit_queue, NULL, NULL);
    if (!err) {
        ev = rd_kafka_queue_poll(w->commit_queue, COMMIT_TIMEOUT_MS);
        if (!ev)
            err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        else {
            err = rd_kafka_event_error(ev);
            if (!err) {
                const rd_kafka_topic_partition_list_t *res =
                    rd_kafka_event_topic_partition_list(ev);
                if (res && res->cnt > 0)
                    err = res->elems[0].err;
            }
            rd_kafka_event_destroy(ev);
        }
    }
    /* A commit refused while the group rebalances is made good at the next assignment when the
     * partition comes back (resume_pending); otherwise the next owner gets the message again. */
    if (err)
        log_warn(MODULE,
                 "%s: commit of %s/%" PRId32 " offset %" PRId64 ": %s (kept for the next "
                 "assignment, or the message may be delivered again)",
                 kb->name, w->topic->name, m->partition, m->offset + 1, rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(offs);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Pauses or resumes fetching of the worker's partition; called with w->lock held (librdkafka
 * only queues an operation, it calls nothing of ours). */
static void set_paused(kafka_worker_t *w, bool pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(l, w->topic->name, w->partition);
    err = pause ? rd_kafka_pause_partitions(w->kb->consumer, l)
                : rd_kafka_resume_partitions(w->kb->consumer, l);
    if (err)
        log_warn(MODULE, "%s: %s %s/%" PRId32 ": %s", w->kb->name, pause ? "pausing" : "resuming",
                 w->topic->name, w->partition, rd_kafka_err2str(err));
    else
        log_debug(MODULE, "%s: %s %s/%" PRId32 " with %zu message(s) queued", w->kb->name,
                  pause ? "paused" : "resumed", w->topic->name, w->partition, w->count);
    w->paused = pause;
    rd_kafka_topic_partition_list_destroy(l);
}

/* A partition's messages, one at a time, in offset order (DAPR-CONTRACT §3.4). */
static void *worker_main(void *arg)
{
    kafka_worker_t *w = arg;

    pthread_mutex_lock(&w->lock);
    /* A stop of the consumer (broker_stop) ends the worker after its in-flight message. */
    while (!w->stop && !atomic_load(&w->kb->stopping)) {
        if (w->count == 0) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        rd_kafka_message_t *m = w->queue[w->head];
        w->head = (w->head + 1) % w->cap;
        w->count--;
        w->bytes -= m->len;
        if (w->paused && w->count <= QUEUE_LOW && w->bytes <= QUEUE_LOW_BYTES)
            set_paused(w, false);
        pthread_mutex_unlock(&w->lock);

        handled_t h = handle_message(w, m);
        /* Skipped messages are not committed themselves; the next ACK commits past them. */
        if (h == HANDLED_ACK) {
            w->acked = m->offset + 1;
            if (commit_message(w, m))
                w->committed = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Appends a message of the worker's partition (takes m); pauses fetching when the queue is
 * long so that memory stays bounded. */
static void worker_push(kafka_worker_t *w, rd_kafka_message_t *m)
{
    pthread_mutex_lock(&w->lock);
    if (w->count == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        rd_kafka_message_t **q = xcalloc(cap, sizeof(*q));
        for (size_t i = 0; i < w->count; i++)
            q[i] = w->queue[(w->head + i) % w->cap];
        free(w->queue);
        w->queue = q;
        w->cap = cap;
        w->head = 0;
    }
    w->queue[(w->head + w->count) % w->cap] = m;
    w->count++;
    w->bytes += m->len;
    if (!w->paused && (w->count >= QUEUE_HIGH || w->bytes >= QUEUE_HIGH_BYTES))
        set_paused(w, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void worker_stop_signal(kafka_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* Joins a worker (after its in-flight message), drops what it had not started (uncommitted, so
 * the partition's next owner gets it) and frees it. On a revoke, an ACKed offset that could not
 * be committed is kept in kb->pending. */
static void worker_free(kafka_worker_t *w, bool revoked)
{
    kafka_broker_t *kb = w->kb;

    pthread_join(w->thread, NULL);
    if (revoked && w->acked > w->committed && kb->npending < MAX_PARTITIONS)
        kb->pending[kb->npending++] =
            (kafka_pending_t){.topic = w->topic, .partition = w->partition, .offset = w->acked};
    if (w->paused)
        set_paused(w, false);
    for (size_t i = 0; i < w->count; i++)
        rd_kafka_message_destroy(w->queue[(w->head + i) % w->cap]);
    free(w->queue);
    rd_kafka_queue_destroy(w->commit_queue);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

/* Stops the workers of parts (all when NULL), each after its in-flight message; they finish in
 * parallel. */
static void stop_workers(kafka_broker_t *kb, const rd_kafka_topic_partition_list_t *parts)
{
    size_t kept = 0;
    bool stopped[MAX_PARTITIONS];

    for (size_t i = 0; i < kb->nworkers; i++) {
        kafka_worker_t *w = kb->workers[i];
        bool match = !parts;
        for (int j = 0; parts && j < parts->cnt; j++)
            if (parts->elems[j].partition == w->partition &&
                strcmp(parts->elems[j].topic, w->topic->name) == 0)
                match = true;
        stopped[i] = match;
        if (match)
            worker_stop_signal(w);
    }
    for (size_t i = 0; i < kb->nworkers; i++) {
        kafka_worker_t *w = kb->workers[i];
        if (stopped[i])
            worker_free(w, parts != NULL);
        else
            kb->workers[kept++] = w;
    }
    kb->nworkers = kept;
}

static kafka_worker_t *find_worker(kafka_broker_t *kb, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < kb->nworkers; i++)
        if (kb->workers[i]->partition == partition &&
            strcmp(kb->workers[i]->topic->name, topic) == 0)
            return kb->workers[i];
    return NULL;
}

/* The subscribed topic named name (borrowed), or NULL. */
static const kafka_topic_t *find_topic(kafka_broker_t *kb, const char *name)
{
    const kafka_topic_t *t = NULL;

    pthread_mutex_lock(&kb->lock);
    for (size_t i = 0; i < kb->ntopics && !t; i++)
        if (strcmp(kb->topics[i].name, name) == 0)
            t = &kb->topics[i];
    pthread_mutex_unlock(&kb->lock);
    return t;
}

static int start_worker(kafka_broker_t *kb, const kafka_topic_t *t, int32_t partition)
{
    kafka_worker_t *w;
    pthread_condattr_t ca;

    if (kb->nworkers == MAX_PARTITIONS || find_worker(kb, t->name, partition))
        return TODO_EINTERNAL;
    w = xcalloc(1, sizeof(*w));
    w->kb = kb;
    w->topic = t;
    w->partition = partition;
    w->acked = -1;
    w->committed = -1;
    w->commit_queue = rd_kafka_queue_new(kb->consumer);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        rd_kafka_queue_destroy(w->commit_queue);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return TODO_EINTERNAL;
    }
    kb->workers[kb->nworkers++] = w;
    return 0;
}

/* A partition given back by the assignment right after the revoke that left an ACKed offset
 * uncommitted starts after that message, and the offset is committed now, unless the group
 * committed further meanwhile. librdkafka's mock cluster refuses commits while the group is
 * joining, where Kafka accepts them (in PreparingRebalance) and sarama commits before it
 * rejoins: without this, every rebalance would deliver again what daprd does not. */
static void resume_pending(kafka_broker_t *kb, rd_kafka_t *rk,
                           rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *query = NULL, *commit = NULL;
    rd_kafka_resp_err_t err;

    if (kb->npending == 0)
        return;
    query = rd_kafka_topic_partition_list_new((int)kb->npending);
    for (size_t i = 0; i < kb->npending; i++)
        for (int j = 0; j < parts->cnt; j++)
            if (parts->elems[j].partition == kb->pending[i].partition &&
                strcmp(parts->elems[j].topic, kb->pending[i].topic->name) == 0)
                rd_kafka_topic_partition_list_add(query, parts->elems[j].topic,
                                                  parts->elems[j].partition);
    if (query->cnt == 0)
        goto out;
    err = rd_kafka_committed(rk, query, COMMITTED_MS);
    log_debug(MODULE, "%s: reading %d committed offset(s): %s", kb->name, query->cnt,
              rd_kafka_err2str(err));
    if (err) {
        log_warn(MODULE, "%s: reading the committed offsets of group %s: %s", kb->name, kb->group,
                 rd_kafka_err2str(err));
        goto out;
    }
    commit = rd_kafka_topic_partition_list_new(query->cnt);
    for (int q = 0; q < query->cnt; q++) {
        const rd_kafka_topic_partition_t *c = &query->elems[q];
        int64_t want = -1;
        for (size_t i = 0; i < kb->npending; i++)
            if (kb->pending[i].partition == c->partition &&
                strcmp(kb->pending[i].topic->name, c->topic) == 0)
                want = kb->pending[i].offset;
        log_debug(MODULE,
                  "%s: %s/%" PRId32 ": committed offset %" PRId64 " (%s), handled up to %" PRId64,
                  kb->name, c->topic, c->partition, c->offset, rd_kafka_err2str(c->err), want);
        if (c->err || (c->offset >= 0 && c->offset >= want))
            continue;
        for (int j = 0; j < parts->cnt; j++)
            if (parts->elems[j].partition == c->partition &&
                strcmp(parts->elems[j].topic, c->topic) == 0)
                parts->elems[j].offset = want;
        rd_kafka_topic_partition_list_add(commit, c->topic, c->partition)->offset = want;
        log_info(MODULE,
                 "%s: %s/%" PRId32 " resumes at offset %" PRId64
                 ", after the message handled before the rebalance",
                 kb->name, c->topic, c->partition, want);
    }
    if (commit->cnt > 0 && (err = rd_kafka_commit(rk, commit, 1)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_warn(MODULE, "%s: committing the resumed offsets: %s", kb->name, rd_kafka_err2str(err));
out:
    kb->npending = 0; /* partitions not given back now belong to other members */
    if (query)
        rd_kafka_topic_partition_list_destroy(query);
    if (commit)
        rd_kafka_topic_partition_list_destroy(commit);
}

/* Logs what an assignment or revoke did: one line in all (also for none), one per topic. */
static void log_partitions(kafka_broker_t *kb, const char *what,
                           const rd_kafka_topic_partition_list_t *parts)
{
    log_info(MODULE, "%s: group %s %s %d partition(s) in all", kb->name, kb->group, what,
             parts ? parts->cnt : 0);
    for (int i = 0; parts && i < parts->cnt; i++) {
        bool first = true;
        int n = 0;
        for (int j = 0; j < parts->cnt; j++) {
            if (strcmp(parts->elems[j].topic, parts->elems[i].topic) != 0)
                continue;
            first = first && j >= i;
            n++;
        }
        if (first)
            log_info(MODULE, "%s: group %s %s %d partition(s) of %s", kb->name, kb->group, what, n,
                     parts->elems[i].topic);
    }
}

/* Eager rebalance: a revoke stops the partitions' workers after their in-flight message (what
 * they had queued is dropped, uncommitted: the next owner gets it); an assignment starts a worker
 * per partition. */
static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_broker_t *kb = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        resume_pending(kb, rk, parts);
        for (int i = 0; i < parts->cnt; i++) {
            const kafka_topic_t *t = find_topic(kb, parts->elems[i].topic);
            if (!t || start_worker(kb, t, parts->elems[i].partition) != 0)
                log_error(MODULE,
                          "%s: no worker for %s/%" PRId32 "; its messages are left to "
                          "other members",
                          kb->name, parts->elems[i].topic, parts->elems[i].partition);
        }
        rd_kafka_assign(rk, parts);
        log_partitions(kb, "assigned", parts);
    } else {
        log_partitions(kb, "revoking", parts); /* each after its delivery in flight */
        stop_workers(kb, parts);
        rd_kafka_assign(rk, NULL);
        log_info(MODULE, "%s: group %s revoked %d partition(s)", kb->name, kb->group,
                 parts ? parts->cnt : 0);
    }
}

/* Serves the consumer: rebalances, errors, and messages dispatched to their partition's
 * worker. */
static void *poll_main(void *arg)
{
    kafka_broker_t *kb = arg;

    while (!atomic_load(&kb->stopping)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kb->consumer, POLL_MS);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn(MODULE, "%s: consumer of group %s: %s", kb->name, kb->group,
                         rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        const char *topic = rd_kafka_topic_name(m->rkt);
        kafka_worker_t *w = find_worker(kb, topic, m->partition);
        if (!w) {
            /* A partition no longer ours: not committed, so its owner gets the message. */
            log_debug(MODULE, "%s: message of unassigned %s/%" PRId32 " dropped", kb->name, topic,
                      m->partition);
            rd_kafka_message_destroy(m);
            continue;
        }
        worker_push(w, m);
    }
    return NULL;
}

/* Subscribes the consumer to every topic in kb->topics, creating it (and its poll thread) the
 * first time; called with subscribe_lock held. */
static int consumer_subscribe(kafka_broker_t *kb)
{
    int rc = TODO_EINTERNAL;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t kerr;
    char errstr[512], num[24], *err = NULL;
    size_t n;

    if (!kb->consumer) {
        conf = rd_kafka_conf_new();
        if (conf_common(kb, conf, &err) || conf_set(conf, "group.id", kb->group, &err) ||
            /* DAPR-CONTRACT §3.6: initialOffset applies to a group without committed offsets. */
            conf_set(conf, "auto.offset.reset", kb->oldest ? "earliest" : "latest", &err) ||
            conf_set(conf, "enable.auto.commit", "false", &err) ||
            conf_set(conf, "enable.auto.offset.store", "false", &err) ||
            conf_set(conf, "allow.auto.create.topics", "true", &err) ||
            conf_set(conf, "partition.assignment.strategy", "range,roundrobin", &err) ||
            conf_set(conf, "queued.max.messages.kbytes", "4096", &err) ||
            conf_set(conf, "fetch.wait.max.ms", "100", &err) ||
            conf_set(conf, "topic.metadata.refresh.interval.ms", "10000", &err))
            goto out;
        snprintf(num, sizeof(num), "%d", kb->session_timeout_ms);
        if (conf_set(conf, "session.timeout.ms", num, &err))
            goto out;
        snprintf(num, sizeof(num), "%d", kb->heartbeat_ms);
        if (conf_set(conf, "heartbeat.interval.ms", num, &err))
            goto out;
        rd_kafka_conf_set_rebalance_cb(conf, rebalance);
        rd_kafka_conf_set_opaque(conf, kb);
        kb->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!kb->consumer) {
            log_error(MODULE, "%s: consumer: %s", kb->name, errstr);
            goto out;
        }
        conf = NULL;
        rd_kafka_poll_set_consumer(kb->consumer);
    }
    pthread_mutex_lock(&kb->lock);
    n = kb->ntopics;
    topics = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(topics, kb->topics[i].name, RD_KAFKA_PARTITION_UA);
    pthread_mutex_unlock(&kb->lock);
    if ((kerr = rd_kafka_subscribe(kb->consumer, topics)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error(MODULE, "%s: subscribe: %s", kb->name, rd_kafka_err2str(kerr));
        goto out;
    }
    if (!kb->polling) {
        if (pthread_create(&kb->poll_thread, NULL, poll_main, kb) != 0) {
            log_error(MODULE, "%s: cannot start the consumer thread", kb->name);
            goto out;
        }
        kb->polling = true;
    }
    log_info(MODULE, "%s: consuming %zu topic(s) in group %s", kb->name, n, kb->group);
    rc = 0;
out:
    if (err) {
        log_error(MODULE, "%s: %s", kb->name, err);
        free(err);
    }
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    return rc;
}

static int kafka_subscribe(broker_t *b, const char *topic, broker_handler_fn fn, void *arg)
{
    kafka_broker_t *kb = (kafka_broker_t *)b;
    int rc = TODO_EINTERNAL;
    bool started;

    if (!topic || !*topic || strlen(topic) > 249)
        return TODO_EBAD_REQUEST;
    pthread_mutex_lock(&kb->subscribe_lock);
    pthread_mutex_lock(&kb->lock);
    if (kb->stopped) {
        rc = TODO_EUNAVAILABLE;
        goto unlock;
    }
    for (size_t i = 0; i < kb->ntopics; i++)
        if (strcmp(kb->topics[i].name, topic) == 0) {
            log_error(MODULE, "%s: topic %s is already subscribed", kb->name, topic);
            rc = TODO_ECONFLICT;
            goto unlock;
        }
    if (kb->ntopics == MAX_SUBSCRIPTIONS) {
        log_error(MODULE, "%s: more than %d topics subscribed", kb->name, MAX_SUBSCRIPTIONS);
        goto unlock;
    }
    kb->topics[kb->ntopics++] = (kafka_topic_t){.name = xstrdup(topic), .fn = fn, .arg = arg};
    started = kb->started;
    pthread_mutex_unlock(&kb->lock);
    log_info(MODULE, "%s: subscribed to %s in group %s", kb->name, topic, kb->group);
    /* After broker_start the consumer re-subscribes at once (the group rebalances). */
    rc = started ? consumer_subscribe(kb) : 0;
    pthread_mutex_unlock(&kb->subscribe_lock);
    return rc;
unlock:
    pthread_mutex_unlock(&kb->lock);
    pthread_mutex_unlock(&kb->subscribe_lock);
    return rc;
}

/* One join of the group with every topic subscribed so far. */
static int kafka_start(broker_t *b)
{
    kafka_broker_t *kb = (kafka_broker_t *)b;
    int rc = 0;
    bool any;

    pthread_mutex_lock(&kb->subscribe_lock);
    pthread_mutex_lock(&kb->lock);
    if (kb->stopped) {
        pthread_mutex_unlock(&kb->lock);
        pthread_mutex_unlock(&kb->subscribe_lock);
        return TODO_EUNAVAILABLE;
    }
    any = !kb->started && kb->ntopics > 0;
    kb->started = true;
    pthread_mutex_unlock(&kb->lock);
    if (any)
        rc = consumer_subscribe(kb);
    pthread_mutex_unlock(&kb->subscribe_lock);
    return rc;
}

/* Stops consuming: the poll thread, then the workers (each after its in-flight message, in
 * parallel), then leaves the group. */
static void kafka_stop(broker_t *b)
{
    kafka_broker_t *kb = (kafka_broker_t *)b;
    rd_kafka_resp_err_t err;

    atomic_store(&kb->stopping, true); /* in-flight retries and back-offs end now */
    pthread_mutex_lock(&kb->subscribe_lock);
    pthread_mutex_lock(&kb->lock);
    kb->stopped = true;
    pthread_mutex_unlock(&kb->lock);
    if (kb->polling) {
        pthread_join(kb->poll_thread, NULL);
        kb->polling = false;
        stop_workers(kb, NULL);
        err = rd_kafka_consumer_close(kb->consumer);
        if (err)
            log_warn(MODULE, "%s: closing the consumer: %s", kb->name, rd_kafka_err2str(err));
    }
    pthread_mutex_unlock(&kb->subscribe_lock);
}

static void kafka_free(broker_t *b)
{
    kafka_broker_t *kb = (kafka_broker_t *)b;

    kafka_stop(b);
    if (kb->consumer)
        rd_kafka_destroy(kb->consumer);
    for (size_t i = 0; i < kb->ntopics; i++)
        free(kb->topics[i].name);
    if (kb->producer) {
        if (rd_kafka_flush(kb->producer, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_warn(MODULE, "%s: undelivered messages at close", kb->name);
        rd_kafka_destroy(kb->producer);
    }
    if (kb->has_exclude)
        regfree(&kb->exclude_re);
    pthread_mutex_destroy(&kb->lock);
    pthread_mutex_destroy(&kb->subscribe_lock);
    free(kb->name);
    free(kb->brokers);
    free(kb->group);
    free(kb->client_id);
    free(kb->security_protocol);
    free(kb->sasl_mechanism);
    free(kb->sasl_username);
    free(kb->sasl_password);
    free(kb);
}

static const struct broker_ops kafka_ops = {
    .free = kafka_free,
    .publish = kafka_publish,
    .subscribe = kafka_subscribe,
    .start = kafka_start,
    .stop = kafka_stop,
};

static int configure_retry(kafka_broker_t *kb, const res_component_t *c, char **err)
{
    const char *policy = meta(c, "backOffPolicy");
    const char *retries = meta(c, "backOffMaxRetries");

    /* kit retry.DefaultConfig: constant 5 s, exponential 500 ms × 1.5 ± 50 % up to 60 s for at
     * most 15 min, maxRetries -1 = forever. */
    kb->retry_enabled = true;
    kb->policy = BACKOFF_CONSTANT;
    kb->duration_ms = 5000;
    kb->initial_ms = 500;
    kb->max_interval_ms = 60000;
    kb->max_elapsed_ms = 15 * 60000;
    kb->multiplier = 1.5;
    kb->randomization = 0.5;
    kb->max_retries = -1;
    if (meta_bool(c, "consumeRetryEnabled", &kb->retry_enabled, err))
        return TODO_EBAD_REQUEST;
    if (policy && strcasecmp(policy, "exponential") == 0)
        kb->policy = BACKOFF_EXPONENTIAL;
    else if (policy && strcasecmp(policy, "constant") != 0) {
        *err =
            xasprintf("component %s: backOffPolicy '%s' (constant, exponential)", c->name, policy);
        return TODO_EBAD_REQUEST;
    }
    if (retries && parse_int64(retries, -1, INT32_MAX, &kb->max_retries) != 0) {
        *err = xasprintf("component %s: backOffMaxRetries '%s' is not an integer ≥ -1", c->name,
                         retries);
        return TODO_EBAD_REQUEST;
    }
    if (meta_duration(c, "backOffDuration", &kb->duration_ms, err) ||
        meta_duration(c, "backOffInitialInterval", &kb->initial_ms, err) ||
        meta_duration(c, "backOffMaxInterval", &kb->max_interval_ms, err) ||
        meta_duration(c, "backOffMaxElapsedTime", &kb->max_elapsed_ms, err) ||
        meta_double(c, "backOffMultiplier", &kb->multiplier, err) ||
        meta_double(c, "backOffRandomizationFactor", &kb->randomization, err))
        return TODO_EBAD_REQUEST;
    if (kb->randomization > 1)
        kb->randomization = 1;
    return 0;
}

broker_t *broker_kafka_new(const res_component_t *c, const char *app_id, char **err)
{
    kafka_broker_t *kb = xcalloc(1, sizeof(*kb));
    const char *v;
    int64_t ms;

    *err = NULL;
    kb->base.ops = &kafka_ops;
    kb->name = xstrdup(c->name ? c->name : "kafka");
    pthread_mutex_init(&kb->lock, NULL);
    pthread_mutex_init(&kb->subscribe_lock, NULL);
    atomic_init(&kb->stopping, false);

    if (!(v = meta(c, "brokers"))) {
        *err = xasprintf("component %s: metadata brokers is required", kb->name);
        goto fail;
    }
    /* "host1:9092, host2:9092" → librdkafka's list without spaces. */
    kb->brokers = xmalloc(strlen(v) + 1);
    {
        char *p = kb->brokers;
        for (const char *s = v; *s; s++)
            if (*s != ' ' && *s != '\t')
                *p++ = *s;
        *p = '\0';
    }
    /* DAPR-CONTRACT §3.6: consumerGroup, else consumerID, which the runtime sets to the app id. */
    if ((v = meta(c, "consumerGroup")) || (v = meta(c, "consumerID")))
        kb->group = expand_templates(v, app_id);
    else if (app_id && *app_id)
        kb->group = xstrdup(app_id);
    else {
        *err = xasprintf("component %s: no consumerGroup, consumerID or app id", kb->name);
        goto fail;
    }
    kb->client_id = expand_templates((v = meta(c, "clientID")) ? v : "sarama", app_id);
    kb->oldest = false;
    if ((v = meta(c, "initialOffset"))) {
        if (strcasecmp(v, "oldest") == 0)
            kb->oldest = true;
        else if (strcasecmp(v, "newest") != 0) {
            *err = xasprintf("component %s: initialOffset '%s' (newest, oldest)", kb->name, v);
            goto fail;
        }
    }
    if (configure_auth(kb, c, err) || configure_retry(kb, c, err) ||
        meta_bool(c, "escapeHeaders", &kb->escape_headers, err))
        goto fail;
    /* Group joins on the mock cluster wait up to session timeout - 1 s for members to rejoin:
     * a short session keeps rebalances quick. sessionTimeout/heartbeatInterval override. */
    kb->session_timeout_ms = 6000;
    kb->heartbeat_ms = 1000;
    ms = kb->session_timeout_ms;
    if (meta_duration(c, "sessionTimeout", &ms, err))
        goto fail;
    if (ms < 1000 || ms > 3600000) {
        *err = xasprintf("component %s: sessionTimeout out of range 1s..1h", kb->name);
        goto fail;
    }
    kb->session_timeout_ms = (int)ms;
    ms = kb->heartbeat_ms;
    if (meta_duration(c, "heartbeatInterval", &ms, err))
        goto fail;
    if (ms < 100 || ms >= kb->session_timeout_ms) {
        *err = xasprintf("component %s: heartbeatInterval must be 100ms..sessionTimeout", kb->name);
        goto fail;
    }
    kb->heartbeat_ms = (int)ms;
    if ((v = meta(c, "excludeHeaderMetaRegex"))) {
        if (regcomp(&kb->exclude_re, v, REG_EXTENDED | REG_NOSUB) != 0) {
            *err = xasprintf("component %s: excludeHeaderMetaRegex '%s' does not compile", kb->name,
                             v);
            goto fail;
        }
        kb->has_exclude = true;
    }
    if (!(kb->producer = producer_new(kb, err)))
        goto fail;
    log_info(MODULE, "%s: brokers %s, group %s, client id %s, initial offset %s", kb->name,
             kb->brokers, kb->group, kb->client_id, kb->oldest ? "oldest" : "newest");
    return &kb->base;
fail:
    kafka_free(&kb->base);
    return NULL;
}
