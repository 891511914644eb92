/* The pubsub.redis component on hiredis and Redis Streams (DAPR-CONTRACT §3.3, §3.4): XADD with the
 * fields data and metadata, a consumer group per consumerID read with XREADGROUP, `concurrency`
 * workers, and a reclaim loop that redelivers messages pending longer than processingTimeout. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "broker_impl.h"
#include "todo/alloc.h"
#include "todo/json.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define MODULE             "broker.redis"
#define MAX_SUBSCRIPTIONS  64
#define MAX_CONCURRENCY    1024
#define MAX_QUEUE_DEPTH    100000
#define MAX_BLOCK_MS       1000 /* XREADGROUP BLOCK cap, so that stop is prompt */
#define MAX_RECLAIM_ROUNDS 1000
#define BACKOFF_MIN_MS     100
#define BACKOFF_MAX_MS     5000
#define MAX_METADATA_JSON  (1024 * 1024)

typedef struct redis_broker redis_broker_t;

/* One subscribed stream: its poll and reclaim threads. */
typedef struct {
    redis_broker_t *rb;
    char *topic;
    broker_handler_fn fn;
    void *arg;
    pthread_t poll_thread, reclaim_thread;
    bool poll_started, reclaim_started;
} redis_sub_t;

/* A message waiting for a worker. */
typedef struct {
    redis_sub_t *sub;
    char *id;
    char *data;
    size_t len;
    json_t *metadata; /* object of strings, or NULL */
} redis_item_t;

struct redis_broker {
    struct broker base;
    char *name;
    char *host;
    int port;
    char *username, *password;
    int64_t db;
    char *group;    /* consumerID: the consumer group */
    char *consumer; /* the consumer name: consumerID too, as Dapr's component */
    int64_t dial_timeout_ms, read_timeout_ms, write_timeout_ms;
    int64_t processing_timeout_ms, redeliver_interval_ms;
    int64_t queue_depth, concurrency, max_len_approx;

    pthread_mutex_t pub_lock; /* guards pub */
    redisContext *pub;

    pthread_mutex_t lock;                     /* guards the queue, subs and stopping */
    pthread_cond_t not_empty, not_full, wake; /* wake: stop signal for back-off sleeps */
    redis_item_t *queue;
    size_t qhead, qlen;
    redis_sub_t *subs[MAX_SUBSCRIPTIONS];
    size_t nsubs;
    bool stopping;
    bool stopped; /* threads joined */
    pthread_t *workers;
    size_t nworkers;
};

/* ---- configuration --------------------------------------------------------------------------- */

static const char *meta(const res_component_t *c, const char *key)
{
    const char *v = res_component_meta(c, key);
    return v && *v ? v : NULL;
}

static int meta_int(const res_component_t *c, const char *key, int64_t min, int64_t max,
                    int64_t *out, char **err)
{
    const char *v = meta(c, key);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        *err =
            xasprintf("component %s: metadata %s '%s' must be an integer in %" PRId64 "..%" PRId64,
                      c->name, key, v, min, max);
        return TODO_EBAD_REQUEST;
    }
    *out = n;
    return 0;
}

/* processingTimeout, redeliverInterval, …: a bare integer is milliseconds (Dapr's legacy rule),
 * else a Go duration. */
static int meta_ms(const res_component_t *c, const char *key, int64_t *out, char **err)
{
    const char *v = meta(c, key);
    int64_t ms;
    if (!v)
        return 0;
    if (res_duration_ms(v, &ms) != 0 || ms < 0) {
        *err = xasprintf("component %s: metadata %s '%s' is not a duration", c->name, key, v);
        return TODO_EBAD_REQUEST;
    }
    *out = ms;
    return 0;
}

/* redeliverInterval: only an unsigned integer of milliseconds counts. In the released components
 * (up to cc 1.18.x) Settings.RedeliverInterval is tagged mapstructure:"-", so a duration string
 * such as "30s" is silently dropped and the default stays; the double does the same, with a
 * warning. */
static int redeliver_interval(const res_component_t *c, int64_t *out)
{
    const char *v = meta(c, "redeliverInterval");
    if (!v)
        return 0;
    bool digits = true;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            digits = false;
    char *end;
    errno = 0;
    unsigned long long ms = digits ? strtoull(v, &end, 10) : 0;
    if (!digits || errno || ms > INT64_MAX / 1000) {
        log_warn(MODULE,
                 "component %s: redeliverInterval '%s' is not a number of milliseconds; ignored "
                 "as daprd does, %" PRId64 " ms stays",
                 c->name, v, *out);
        return 0;
    }
    *out = (int64_t)ms;
    return 0;
}

static bool meta_true(const res_component_t *c, const char *key)
{
    const char *v = meta(c, key);
    return v && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "t") == 0);
}

/* The runtime's metadata templates (DAPR-CONTRACT §3.6): {uuid}, {podName}, {namespace},
 * {appID}; a new string. */
static char *expand_templates(const char *v, const char *app_id)
{
    char *s = xstrdup(v);
    static const char *const names[] = {"{uuid}", "{podName}", "{namespace}", "{appID}"};
    for (size_t i = 0; i < 4; i++) {
        char *at;
        int guard = 0;
        while ((at = strstr(s, names[i])) != NULL && guard++ < 16) {
            char *with;
            if (i == 0) {
                char id[TODO_UUID_LEN];
                todo_uuid_v4(id);
                with = xstrdup(id);
            } else if (i == 1) {
                const char *p = getenv("POD_NAME");
                with = xstrdup(p ? p : "");
            } else if (i == 2) {
                const char *ns = getenv("NAMESPACE");
                with = xasprintf("%s.%s", ns && *ns ? ns : "default", app_id ? app_id : "");
            } else {
                with = xstrdup(app_id ? app_id : "");
            }
            *at = '\0';
            char *n = xasprintf("%s%s%s", s, with, at + strlen(names[i]));
            free(with);
            free(s);
            s = n;
        }
    }
    return s;
}

static int configure(redis_broker_t *rb, const res_component_t *c, const char *app_id, char **err)
{
    const char *v;

    if (!(v = meta(c, "redisHost"))) {
        *err = xasprintf("component %s: metadata redisHost is required", c->name);
        return TODO_EBAD_REQUEST;
    }
    /* host:port as go-redis dials it; "[v6]:port" too. */
    const char *colon = strrchr(v, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == v || !end || *end || end == colon + 1 || port <= 0 || port > 65535) {
        *err = xasprintf("component %s: redisHost '%s' is not host:port", c->name, v);
        return TODO_EBAD_REQUEST;
    }
    if (v[0] == '[' && colon[-1] == ']')
        rb->host = xstrndup(v + 1, (size_t)(colon - v - 2));
    else
        rb->host = xstrndup(v, (size_t)(colon - v));
    rb->port = (int)port;
    if ((v = meta(c, "redisType")) && strcasecmp(v, "node") != 0) {
        *err = xasprintf("component %s: redisType %s is not supported by the sidecar double",
                         c->name, v);
        return TODO_EBAD_REQUEST;
    }
    if (meta_true(c, "enableTLS") || meta_true(c, "failover") || meta_true(c, "useEntraID")) {
        *err = xasprintf("component %s: enableTLS, failover and useEntraID are not supported by "
                         "the sidecar double",
                         c->name);
        return TODO_EBAD_REQUEST;
    }
    rb->password = (v = meta(c, "redisPassword")) ? xstrdup(v) : NULL;
    rb->username = (v = meta(c, "redisUsername")) ? xstrdup(v) : NULL;
    /* consumerID defaults to the app id (DAPR-CONTRACT §3.6, set by the runtime). */
    if ((v = meta(c, "consumerID")))
        rb->group = expand_templates(v, app_id);
    else if (app_id && *app_id)
        rb->group = xstrdup(app_id);
    else {
        *err = xasprintf("component %s: consumerID is empty and there is no app id", c->name);
        return TODO_EBAD_REQUEST;
    }
    rb->consumer = xstrdup(rb->group);
    /* Defaults of cc common/component/redis ParseClientFromProperties (pubsub) and Settings:
     * processingTimeout 60 s and redeliverInterval 15 s (metadata.yaml and DAPR-CONTRACT §3.3
     * state them the other way round; the code wins). */
    rb->processing_timeout_ms = 60000;
    rb->redeliver_interval_ms = 15000;
    rb->queue_depth = 100;
    rb->concurrency = 10;
    rb->max_len_approx = 0;
    rb->dial_timeout_ms = 5000;
    rb->read_timeout_ms = 3000;
    rb->write_timeout_ms = -1;
    if (meta_int(c, "redisDB", 0, 1 << 20, &rb->db, err) ||
        meta_ms(c, "processingTimeout", &rb->processing_timeout_ms, err) ||
        redeliver_interval(c, &rb->redeliver_interval_ms) ||
        meta_int(c, "queueDepth", 1, MAX_QUEUE_DEPTH, &rb->queue_depth, err) ||
        meta_int(c, "concurrency", 1, MAX_CONCURRENCY, &rb->concurrency, err) ||
        meta_int(c, "maxLenApprox", 0, INT64_MAX, &rb->max_len_approx, err) ||
        meta_ms(c, "dialTimeout", &rb->dial_timeout_ms, err) ||
        meta_ms(c, "readTimeout", &rb->read_timeout_ms, err) ||
        meta_ms(c, "writeTimeout", &rb->write_timeout_ms, err))
        return TODO_EBAD_REQUEST;
    if (rb->dial_timeout_ms <= 0)
        rb->dial_timeout_ms = 5000;
    if (rb->read_timeout_ms <= 0)
        rb->read_timeout_ms = 3000;
    if (rb->write_timeout_ms <= 0)
        rb->write_timeout_ms = rb->read_timeout_ms;
    return 0;
}

/* ---- connections ----------------------------------------------------------------------------- */

static struct timeval tv_ms(int64_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* One command, binary-safe; NULL when the connection broke or timed out (see ctx->errstr). */
static redisReply *command_argv(redisContext *ctx, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(ctx, argc, argv, lens);
}

/* Connects, authenticates and selects the database; the socket timeout is read_ms (reads and
 * writes). NULL with *err (new) on failure. */
static redisContext *rconnect(redis_broker_t *rb, int64_t read_ms, char **err)
{
    redisContext *ctx = redisConnectWithTimeout(rb->host, rb->port, tv_ms(rb->dial_timeout_ms));
    redisReply *r = NULL;

    if (!ctx || ctx->err) {
        *err = xasprintf("redis streams: error connecting to redis at %s:%d: %s", rb->host,
                         rb->port, ctx ? ctx->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(ctx, tv_ms(read_ms)) != REDIS_OK) {
        *err = xasprintf("redis streams: cannot set the socket timeout: %s", ctx->errstr);
        goto fail;
    }
    if (rb->password) {
        if (rb->username) {
            const char *argv[] = {"AUTH", rb->username, rb->password};
            r = command_argv(ctx, 3, argv, NULL);
        } else {
            const char *argv[] = {"AUTH", rb->password};
            r = command_argv(ctx, 2, argv, NULL);
        }
        if (!r || r->type == REDIS_REPLY_ERROR) {
            *err = xasprintf("redis streams: AUTH failed: %s", r ? r->str : ctx->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (rb->db != 0) {
        r = redisCommand(ctx, "SELECT %" PRId64, rb->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            *err = xasprintf("redis streams: SELECT %" PRId64 " failed: %s", rb->db,
                             r ? r->str : ctx->errstr);
            goto fail;
        }
        freeReplyObject(r);
        r = NULL;
    }
    return ctx;
fail:
    if (r)
        freeReplyObject(r);
    if (ctx)
        redisFree(ctx);
    return NULL;
}

/* Sleeps ms or until stop; false when stopping. */
static bool nap(redis_broker_t *rb, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rb->lock);
    while (!rb->stopping) {
        if (pthread_cond_timedwait(&rb->wake, &rb->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool go_on = !rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return go_on;
}

static bool stopping(redis_broker_t *rb)
{
    pthread_mutex_lock(&rb->lock);
    bool s = rb->stopping;
    pthread_mutex_unlock(&rb->lock);
    return s;
}

/* ---- publish --------------------------------------------------------------------------------- */

static int redis_publish(broker_t *b, const broker_msg_t *msg)
{
    redis_broker_t *rb = (redis_broker_t *)b;
    int rc = TODO_EUNAVAILABLE;
    json_t *md = json_object();
    char *md_text = NULL, *maxlen = NULL, *err = NULL;
    redisReply *r = NULL;

    /* Dapr serialises the request metadata as JSON into the field "metadata" next to "data"
     * (cc pubsub/redis/redis.go Publish). */
    for (size_t i = 0; i < msg->nheaders; i++)
        if (msg->headers[i].name && msg->headers[i].value)
            json_object_set_new(md, msg->headers[i].name, json_string(msg->headers[i].value));
    md_text = json_dump(md);

    const char *argv[10];
    size_t lens[10];
    int argc = 0;
#define ARG(s, n)           \
    do {                    \
        argv[argc] = (s);   \
        lens[argc++] = (n); \
    } while (0)
    ARG("XADD", 4);
    ARG(msg->topic, strlen(msg->topic));
    if (rb->max_len_approx > 0) {
        maxlen = xasprintf("%" PRId64, rb->max_len_approx);
        ARG("MAXLEN", 6);
        ARG("~", 1);
        ARG(maxlen, strlen(maxlen));
    }
    ARG("*", 1);
    ARG("data", 4);
    ARG(msg->value ? (const char *)msg->value : "", msg->value ? msg->len : 0);
    ARG("metadata", 8);
    ARG(md_text, strlen(md_text));
#undef ARG

    pthread_mutex_lock(&rb->pub_lock);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!rb->pub) {
            free(err);
            err = NULL;
            rb->pub = rconnect(rb, rb->write_timeout_ms, &err);
            if (!rb->pub)
                continue;
        }
        r = command_argv(rb->pub, argc, argv, lens);
        if (r)
            break;
        /* A broken connection: reconnect once and try again. */
        free(err);
        err = xstrdup(rb->pub->errstr);
        redisFree(rb->pub);
        rb->pub = NULL;
    }
    pthread_mutex_unlock(&rb->pub_lock);
    if (!r) {
        log_error(MODULE, "component %s: redis streams: error from publish to %s: %s", rb->name,
                  msg->topic, err ? err : "no reply");
        goto out;
    }
    if (r->type != REDIS_REPLY_STRING) {
        log_error(MODULE, "component %s: redis streams: error from publish to %s: %s", rb->name,
                  msg->topic, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        goto out;
    }
    rc = 0;
out:
    if (r)
        freeReplyObject(r);
    json_decref(md);
    free(md_text);
    free(maxlen);
    free(err);
    return rc;
}

/* ---- consuming ------------------------------------------------------------------------------- */

static void item_dispose(redis_item_t *it)
{
    free(it->id);
    free(it->data);
    json_decref(it->metadata);
    memset(it, 0, sizeof(*it));
}

/* Builds an item from one stream entry [id, [field, value, …]]; false for a malformed entry. */
static bool item_from_entry(redis_sub_t *sub, const redisReply *e, redis_item_t *it)
{
    memset(it, 0, sizeof(*it));
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return false;
    it->sub = sub;
    it->id = xstrndup(e->element[0]->str, e->element[0]->len);
    const redisReply *f = e->element[1];
    if (f->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            const redisReply *k = f->element[i], *v = f->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (k->len == 4 && memcmp(k->str, "data", 4) == 0 && !it->data) {
                it->data = xmalloc(v->len + 1);
                memcpy(it->data, v->str, v->len);
                it->data[v->len] = '\0';
                it->len = v->len;
            } else if (k->len == 8 && memcmp(k->str, "metadata", 8) == 0 && !it->metadata) {
                json_t *md = NULL;
                bool ok = v->len <= MAX_METADATA_JSON && json_parse(v->str, v->len, true, &md) == 0;
                const char *mk;
                json_t *mv;
                if (ok)
                    json_object_foreach(md, mk, mv) if (!json_is_string(mv)) ok = false;
                if (ok) {
                    it->metadata = md;
                } else {
                    /* As Dapr: the message is still delivered, without metadata. */
                    log_warn(MODULE, "redis streams: could not extract metadata for message %s",
                             it->id);
                    json_decref(md);
                }
            }
        }
    }
    if (!it->data)
        it->data = xstrdup("");
    return true;
}

/* Queues the entries of a reply array for the workers (blocks while the queue is full); false
 * when stopping. */
static bool enqueue_entries(redis_sub_t *sub, const redisReply *entries)
{
    redis_broker_t *rb = sub->rb;
    for (size_t i = 0; i < entries->elements; i++) {
        redis_item_t it;
        if (!item_from_entry(sub, entries->element[i], &it))
            continue; /* a deleted entry (nil) */
        pthread_mutex_lock(&rb->lock);
        while (!rb->stopping && rb->qlen == (size_t)rb->queue_depth)
            pthread_cond_wait(&rb->not_full, &rb->lock);
        if (rb->stopping) {
            pthread_mutex_unlock(&rb->lock);
            item_dispose(&it); /* stays pending in Redis: reclaimed later */
            return false;
        }
        rb->queue[(rb->qhead + rb->qlen) % (size_t)rb->queue_depth] = it;
        rb->qlen++;
        pthread_cond_signal(&rb->not_empty);
        pthread_mutex_unlock(&rb->lock);
    }
    return true;
}

/* XGROUP CREATE <topic> <group> 0 MKSTREAM, BUSYGROUP ignored (cc CreateConsumerGroup: start "0",
 * so a new group also sees what the stream already holds). */
static int create_group(redis_broker_t *rb, redisContext *ctx, const char *topic, char **err)
{
    const char *argv[] = {"XGROUP", "CREATE", topic, rb->group, "0", "MKSTREAM"};
    redisReply *r = command_argv(ctx, 6, argv, NULL);
    int rc = 0;
    if (!r) {
        *err = xasprintf("redis streams: XGROUP CREATE %s %s: %s", topic, rb->group, ctx->errstr);
        return TODO_EUNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        *err = xasprintf("redis streams: XGROUP CREATE %s %s: %s", topic, rb->group, r->str);
        rc = TODO_EUNAVAILABLE;
    }
    freeReplyObject(r);
    return rc;
}

static void *poll_main(void *arg)
{
    redis_sub_t *sub = arg;
    redis_broker_t *rb = sub->rb;
    redisContext *ctx = NULL;
    int64_t backoff = BACKOFF_MIN_MS;
    int64_t block = rb->read_timeout_ms < MAX_BLOCK_MS ? rb->read_timeout_ms : MAX_BLOCK_MS;
    char count[32], block_s[32];

    snprintf(count, sizeof(count), "%" PRId64, rb->queue_depth);
    snprintf(block_s, sizeof(block_s), "%" PRId64, block);
    while (!stopping(rb)) {
        char *err = NULL;
        if (!ctx) {
            ctx = rconnect(rb, block + rb->read_timeout_ms, &err);
            if (!ctx) {
                log_warn(MODULE, "component %s: %s; retrying in %" PRId64 " ms", rb->name, err,
                         backoff);
                free(err);
                if (!nap(rb, backoff))
                    break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
        }
        const char *argv[] = {"XREADGROUP", "GROUP", rb->group, rb->consumer, "COUNT", count,
                              "BLOCK",      block_s, "STREAMS", sub->topic,   ">"};
        redisReply *r = command_argv(ctx, 11, argv, NULL);
        if (!r) {
            log_warn(MODULE, "component %s: redis streams: error reading from stream %s: %s",
                     rb->name, sub->topic, ctx->errstr);
            redisFree(ctx);
            ctx = NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            if (strstr(r->str, "NOGROUP")) {
                /* As Dapr: the group or stream was deleted (or the server lost data). */
                log_warn(MODULE,
                         "component %s: redis streams: consumer group %s does not exist "
                         "for stream %s; recreating it",
                         rb->name, rb->group, sub->topic);
                if (create_group(rb, ctx, sub->topic, &err) != 0) {
                    log_error(MODULE, "component %s: %s", rb->name, err);
                    free(err);
                }
            } else {
                log_error(MODULE, "component %s: redis streams: error reading from stream %s: %s",
                          rb->name, sub->topic, r->str);
            }
            freeReplyObject(r);
            if (!nap(rb, backoff))
                break;
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        backoff = BACKOFF_MIN_MS;
        /* [[stream, [[id, [f, v, …]], …]], …] or nil after BLOCK */
        if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *s = r->element[i];
                if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
                    s->element[1]->type == REDIS_REPLY_ARRAY)
                    enqueue_entries(sub, s->element[1]);
            }
        }
        freeReplyObject(r);
    }
    if (ctx)
        redisFree(ctx);
    return NULL;
}

/* One pass of XAUTOCLAIM over the group's pending entries idle ≥ processingTimeout; claimed
 * entries go to the workers again. Redis ≥ 7 also drops deleted entries from the PEL here. */
static void reclaim_once(redis_sub_t *sub, redisContext **ctxp)
{
    redis_broker_t *rb = sub->rb;
    char idle[32], count[32], *cursor = xstrdup("0-0");

    snprintf(idle, sizeof(idle), "%" PRId64, rb->processing_timeout_ms);
    snprintf(count, sizeof(count), "%" PRId64, rb->queue_depth);
    for (int round = 0; round < MAX_RECLAIM_ROUNDS && !stopping(rb); round++) {
        const char *argv[] = {"XAUTOCLAIM", sub->topic, rb->group, rb->consumer,
                              idle,         cursor,     "COUNT",   count};
        redisReply *r = command_argv(*ctxp, 8, argv, NULL);
        if (!r) {
            log_warn(MODULE, "component %s: error reclaiming pending messages of %s: %s", rb->name,
                     sub->topic, (*ctxp)->errstr);
            redisFree(*ctxp);
            *ctxp = NULL;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOGROUP") == NULL)
                log_error(MODULE, "component %s: error reclaiming pending messages of %s: %s",
                          rb->name, sub->topic, r->str);
            freeReplyObject(r);
            break;
        }
        if (r->element[1]->elements > 0)
            log_info(MODULE,
                     "component %s: redelivering %zu message(s) of %s pending longer "
                     "than %" PRId64 " ms",
                     rb->name, r->element[1]->elements, sub->topic, rb->processing_timeout_ms);
        bool go_on = enqueue_entries(sub, r->element[1]);
        free(cursor);
        cursor = xstrndup(r->element[0]->str, r->element[0]->len);
        freeReplyObject(r);
        if (!go_on || strcmp(cursor, "0-0") == 0)
            break;
    }
    free(cursor);
}

static void *reclaim_main(void *arg)
{
    redis_sub_t *sub = arg;
    redis_broker_t *rb = sub->rb;
    redisContext *ctx = NULL;

    /* As Dapr: an initial pass, then one every redeliverInterval. */
    do {
        if (!ctx) {
            char *err = NULL;
            ctx = rconnect(rb, rb->read_timeout_ms, &err);
            if (!ctx) {
                log_warn(MODULE, "component %s: %s", rb->name, err);
                free(err);
                continue;
            }
        }
        reclaim_once(sub, &ctx);
    } while (nap(rb, rb->redeliver_interval_ms));
    if (ctx)
        redisFree(ctx);
    return NULL;
}

static void xack(redis_broker_t *rb, redisContext **ctxp, const redis_item_t *it)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!*ctxp) {
            char *err = NULL;
            *ctxp = rconnect(rb, rb->read_timeout_ms, &err);
            if (!*ctxp) {
                log_error(MODULE, "component %s: error acknowledging message %s: %s", rb->name,
                          it->id, err);
                free(err);
                continue;
            }
        }
        const char *argv[] = {"XACK", it->sub->topic, rb->group, it->id};
        redisReply *r = command_argv(*ctxp, 4, argv, NULL);
        if (!r) {
            redisFree(*ctxp);
            *ctxp = NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR)
            log_error(MODULE, "component %s: error acknowledging message %s: %s", rb->name, it->id,
                      r->str);
        freeReplyObject(r);
        return;
    }
}

static void process(redis_broker_t *rb, redisContext **ctxp, redis_item_t *it)
{
    broker_msg_t msg = {.topic = it->sub->topic, .value = it->data, .len = it->len};
    const char *k;
    json_t *v;
    if (it->metadata)
        json_object_foreach(it->metadata, k, v)
        {
            if (msg.nheaders >= BROKER_MAX_HEADERS)
                break;
            msg.headers[msg.nheaders].name = k;
            msg.headers[msg.nheaders].value = json_string_value(v);
            msg.nheaders++;
        }
    int64_t start = time_mono_usec();
    /* As cc processMessage: the handler context gets the processingTimeout deadline only when
     * redelivery is on (both processingTimeout and redeliverInterval non-zero). */
    bool deadline = rb->processing_timeout_ms > 0 && rb->redeliver_interval_ms > 0;
    if (deadline)
        msg.deadline_usec = start + rb->processing_timeout_ms * 1000;
    broker_result_t res = it->sub->fn(&msg, it->sub->arg);
    int64_t elapsed_ms = (time_mono_usec() - start) / 1000;
    if (res == BROKER_FAIL && deadline && time_mono_usec() >= msg.deadline_usec) {
        /* DAPR-CONTRACT §3.3: the handler overran processingTimeout, so the message stays
         * pending and the reclaim loop redelivers it. */
        log_warn(MODULE,
                 "component %s: message %s of %s failed after %" PRId64
                 " ms (processingTimeout %" PRId64 " ms); left pending for redelivery",
                 rb->name, it->id, it->sub->topic, elapsed_ms, rb->processing_timeout_ms);
        return;
    }
    if (res == BROKER_FAIL)
        /* DAPR-CONTRACT §3.3: Dapr ≥ 1.17 acknowledges a failed message: it is gone. */
        log_error(MODULE,
                  "component %s: error processing message %s of %s; acknowledged "
                  "(dropped)",
                  rb->name, it->id, it->sub->topic);
    xack(rb, ctxp, it);
}

static void *worker_main(void *arg)
{
    redis_broker_t *rb = arg;
    redisContext *ctx = NULL;
    for (;;) {
        redis_item_t it;
        pthread_mutex_lock(&rb->lock);
        while (!rb->stopping && rb->qlen == 0)
            pthread_cond_wait(&rb->not_empty, &rb->lock);
        if (rb->stopping) {
            pthread_mutex_unlock(&rb->lock);
            break;
        }
        it = rb->queue[rb->qhead];
        rb->qhead = (rb->qhead + 1) % (size_t)rb->queue_depth;
        rb->qlen--;
        pthread_cond_signal(&rb->not_full);
        pthread_mutex_unlock(&rb->lock);
        process(rb, &ctx, &it);
        item_dispose(&it);
    }
    if (ctx)
        redisFree(ctx);
    return NULL;
}

static int redis_subscribe(broker_t *b, const char *topic, broker_handler_fn fn, void *arg)
{
    redis_broker_t *rb = (redis_broker_t *)b;
    int rc = TODO_EUNAVAILABLE;
    redisContext *ctx = NULL;
    redis_sub_t *sub = NULL;
    char *err = NULL;

    if (!topic || !*topic || !fn)
        return TODO_EBAD_REQUEST;
    ctx = rconnect(rb, rb->read_timeout_ms, &err);
    if (!ctx || create_group(rb, ctx, topic, &err) != 0) {
        log_error(MODULE, "component %s: subscribe to %s: %s", rb->name, topic, err);
        goto out;
    }
    sub = xcalloc(1, sizeof(*sub));
    sub->rb = rb;
    sub->topic = xstrdup(topic);
    sub->fn = fn;
    sub->arg = arg;
    pthread_mutex_lock(&rb->lock);
    if (rb->stopping || rb->nsubs >= MAX_SUBSCRIPTIONS) {
        pthread_mutex_unlock(&rb->lock);
        log_error(MODULE, "component %s: subscribe to %s: broker stopped or too many topics",
                  rb->name, topic);
        goto out;
    }
    rb->subs[rb->nsubs++] = sub;
    if (pthread_create(&sub->poll_thread, NULL, poll_main, sub) == 0)
        sub->poll_started = true;
    if (rb->processing_timeout_ms > 0 && rb->redeliver_interval_ms > 0 &&
        pthread_create(&sub->reclaim_thread, NULL, reclaim_main, sub) == 0)
        sub->reclaim_started = true;
    pthread_mutex_unlock(&rb->lock);
    if (!sub->poll_started) {
        sub = NULL; /* owned by rb now; freed with it */
        log_error(MODULE, "component %s: cannot start the consumer of %s", rb->name, topic);
        goto out;
    }
    log_info(MODULE, "component %s: consuming %s in group %s", rb->name, topic, rb->group);
    sub = NULL;
    rc = 0;
out:
    if (sub) {
        free(sub->topic);
        free(sub);
    }
    if (ctx)
        redisFree(ctx);
    free(err);
    return rc;
}

static void redis_stop(broker_t *b)
{
    redis_broker_t *rb = (redis_broker_t *)b;
    pthread_mutex_lock(&rb->lock);
    if (rb->stopped) {
        pthread_mutex_unlock(&rb->lock);
        return;
    }
    rb->stopping = true;
    pthread_cond_broadcast(&rb->not_empty);
    pthread_cond_broadcast(&rb->not_full);
    pthread_cond_broadcast(&rb->wake);
    pthread_mutex_unlock(&rb->lock);
    for (size_t i = 0; i < rb->nsubs; i++) {
        if (rb->subs[i]->poll_started)
            pthread_join(rb->subs[i]->poll_thread, NULL);
        if (rb->subs[i]->reclaim_started)
            pthread_join(rb->subs[i]->reclaim_thread, NULL);
        rb->subs[i]->poll_started = rb->subs[i]->reclaim_started = false;
    }
    /* In-flight handlers finish; queued messages stay pending in Redis. */
    for (size_t i = 0; i < rb->nworkers; i++)
        pthread_join(rb->workers[i], NULL);
    rb->nworkers = 0;
    pthread_mutex_lock(&rb->lock);
    while (rb->qlen > 0) {
        item_dispose(&rb->queue[rb->qhead]);
        rb->qhead = (rb->qhead + 1) % (size_t)rb->queue_depth;
        rb->qlen--;
    }
    rb->stopped = true;
    pthread_mutex_unlock(&rb->lock);
}

static void redis_free(broker_t *b)
{
    redis_broker_t *rb = (redis_broker_t *)b;
    redis_stop(b);
    for (size_t i = 0; i < rb->nsubs; i++) {
        free(rb->subs[i]->topic);
        free(rb->subs[i]);
    }
    if (rb->pub)
        redisFree(rb->pub);
    pthread_mutex_destroy(&rb->pub_lock);
    pthread_mutex_destroy(&rb->lock);
    pthread_cond_destroy(&rb->not_empty);
    pthread_cond_destroy(&rb->not_full);
    pthread_cond_destroy(&rb->wake);
    free(rb->queue);
    free(rb->workers);
    free(rb->name);
    free(rb->host);
    free(rb->username);
    free(rb->password);
    free(rb->group);
    free(rb->consumer);
    free(rb);
}

static const struct broker_ops redis_ops = {
    .free = redis_free,
    .publish = redis_publish,
    .subscribe = redis_subscribe,
    .stop = redis_stop,
};

broker_t *broker_redis_new(const res_component_t *c, const char *app_id, char **err)
{
    redis_broker_t *rb = xcalloc(1, sizeof(*rb));
    pthread_condattr_t ca;

    *err = NULL;
    rb->base.ops = &redis_ops;
    rb->name = xstrdup(c->name ? c->name : "?");
    pthread_mutex_init(&rb->pub_lock, NULL);
    pthread_mutex_init(&rb->lock, NULL);
    pthread_cond_init(&rb->not_empty, NULL);
    pthread_cond_init(&rb->not_full, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rb->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (configure(rb, c, app_id, err))
        goto fail;
    /* As Dapr's Init: the component fails when Redis does not answer a PING. */
    rb->pub = rconnect(rb, rb->write_timeout_ms, err);
    if (!rb->pub)
        goto fail;
    redisReply *r = redisCommand(rb->pub, "PING");
    if (!r || r->type == REDIS_REPLY_ERROR) {
        *err = xasprintf("redis streams: error connecting to redis at %s:%d: %s", rb->host,
                         rb->port, r ? r->str : rb->pub->errstr);
        if (r)
            freeReplyObject(r);
        goto fail;
    }
    freeReplyObject(r);
    rb->queue = xcalloc((size_t)rb->queue_depth, sizeof(redis_item_t));
    rb->workers = xcalloc((size_t)rb->concurrency, sizeof(pthread_t));
    for (int64_t i = 0; i < rb->concurrency; i++) {
        if (pthread_create(&rb->workers[rb->nworkers], NULL, worker_main, rb) != 0) {
            *err = xasprintf("component %s: cannot start worker threads", rb->name);
            goto fail;
        }
        rb->nworkers++;
    }
    log_info(MODULE,
             "component %s: redis streams at %s:%d, group %s, concurrency %" PRId64
             ", processingTimeout %" PRId64 " ms, redeliverInterval %" PRId64 " ms",
             rb->name, rb->host, rb->port, rb->group, rb->concurrency, rb->processing_timeout_ms,
             rb->redeliver_interval_ms);
    return &rb->base;
fail:
    if (!*err)
        *err = xasprintf("component %s: cannot be initialised", rb->name);
    redis_free(&rb->base);
    return NULL;
}
