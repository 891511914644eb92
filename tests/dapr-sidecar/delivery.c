/* Delivery of broker messages to the app (DAPR-CONTRACT §3): the request of §3.1, the reply
 * table of §3.2, inbound Resiliency retries (§4), dead-lettering (§3.3) and the
 * --app-max-concurrency bound. Runs on the broker's consumer threads. */
#include "delivery.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cloudevent.h"
#include "resiliency.h"
#include "subscriptions.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/shutdown.h"
#include "todo/timeutil.h"

#define MODULE          "delivery"
#define SLEEP_SLICE_MS  20
#define HEADER_NAME_MAX 256

/* ---- judging ------------------------------------------------------------------------------ */

delivery_verdict_t delivery_judge(const app_response_t *r, int *code)
{
    *code = 0;
    if (r->transport_error || r->status == 0)
        return DELIVERY_RETRY;
    if (r->status >= 200 && r->status <= 299) {
        /* json.NewDecoder(body).Decode(&AppResponse{Status string}): only the first value is
         * read; EOF or any decoding error → success */
        json_error_t jerr;
        json_t *v =
            r->body ? json_loadb(r->body, r->len,
                                 JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &jerr)
                    : NULL;
        const char *status = "";
        bool decoded = json_is_object(v) || json_is_null(v);
        if (json_is_object(v)) {
            /* keys match case-insensitively; the last matching key wins */
            const char *k;
            json_t *x;
            json_object_foreach(v, k, x)
            {
                if (strcasecmp(k, "status") != 0)
                    continue;
                if (json_is_string(x))
                    status = json_string_value(x);
                else if (json_is_null(x))
                    ; /* null leaves the field as it was */
                else
                    decoded = false; /* a type error fails the whole decoding */
            }
        }
        delivery_verdict_t verdict = DELIVERY_SUCCESS;
        if (decoded && *status && strcmp(status, "SUCCESS") != 0)
            verdict = strcmp(status, "DROP") == 0 ? DELIVERY_DROP : DELIVERY_RETRY;
        json_decref(v);
        return verdict;
    }
    if (r->status == 404)
        return DELIVERY_DROP;
    *code = r->status;
    return DELIVERY_RETRY;
}

void delivery_header_name(const char *name, char *out, size_t size)
{
    static const char token[] = "!#$%&'*+-.^_`|~";
    size_t n = 0;
    bool valid = true, upper = true;
    if (size == 0)
        return;
    for (const char *p = name; *p && n + 1 < size; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !strchr(token, c))
            valid = false;
        out[n++] = c;
    }
    out[n] = '\0';
    if (!valid)
        return; /* CanonicalMIMEHeaderKey leaves such names alone */
    for (size_t i = 0; i < n; i++) {
        if (upper && out[i] >= 'a' && out[i] <= 'z')
            out[i] = (char)(out[i] - 'a' + 'A');
        upper = out[i] == '-';
    }
}

/* ---- the concurrency bound ---------------------------------------------------------------- */

static pthread_mutex_t sem_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sem_ready;
static sem_t app_sem;
static int app_sem_limit; /* ≤ 0: unlimited; fixed once sem_ready */

/* DAPR-CONTRACT §3.1: at most --app-max-concurrency calls to the app at once, across every
 * subscription (one counting semaphore; the sidecar is one per process). */
static void concurrency_enter(const sidecar_t *s)
{
    pthread_mutex_lock(&sem_lock);
    if (!sem_ready) {
        app_sem_limit = s->opt.app_max_concurrency;
        if (app_sem_limit > 0 && sem_init(&app_sem, 0, (unsigned)app_sem_limit) != 0)
            app_sem_limit = 0;
        sem_ready = true;
    }
    pthread_mutex_unlock(&sem_lock);
    if (app_sem_limit > 0) {
        while (sem_wait(&app_sem) != 0 && errno == EINTR) {
        }
    }
}

static void concurrency_leave(void)
{
    if (app_sem_limit > 0)
        sem_post(&app_sem);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static bool stopping(const sidecar_t *s)
{
    return shutdown_requested() || (s->server && http_server_stopping(s->server));
}

/* Sleeps ms unless the sidecar starts stopping; false then. */
static bool pause_ms(const sidecar_t *s, int64_t ms)
{
    int64_t end = time_mono_usec() + ms * 1000;
    for (;;) {
        if (stopping(s))
            return false;
        int64_t left = end - time_mono_usec();
        if (left <= 0)
            return true;
        int64_t slice = left < SLEEP_SLICE_MS * 1000 ? left : SLEEP_SLICE_MS * 1000;
        struct timespec ts = {.tv_sec = (time_t)(slice / 1000000),
                              .tv_nsec = (long)(slice % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static double random_unit(void)
{
    static __thread unsigned seed;
    if (seed == 0)
        seed = (unsigned)time_mono_usec() ^ (unsigned)(uintptr_t)&seed;
    return (double)rand_r(&seed) / ((double)RAND_MAX + 1.0);
}

static const char *header_value(const broker_msg_t *msg, const char *name)
{
    for (size_t i = 0; i < msg->nheaders; i++) {
        if (msg->headers[i].name && strcasecmp(msg->headers[i].name, name) == 0)
            return msg->headers[i].value;
    }
    return NULL;
}

static bool meta_true(const res_subscription_t *sub, const char *key)
{
    for (size_t i = 0; i < sub->nmeta; i++) {
        if (sub->meta[i].name && strcmp(sub->meta[i].name, key) == 0) {
            const char *v = sub->meta[i].value ? sub->meta[i].value : "";
            static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
            for (size_t j = 0; j < sizeof(yes) / sizeof(yes[0]); j++) {
                if (strcmp(v, yes[j]) == 0)
                    return true;
            }
            return false;
        }
    }
    return false;
}

int delivery_dead_letter(sidecar_t *s, sidecar_pubsub_t *ps, const char *topic,
                         const broker_msg_t *msg)
{
    (void)s;
    /* §3.3 sendToDeadLetter: the original bytes and metadata, not re-wrapped; the metadata's
     * partitionKey/__key stays the record key */
    broker_msg_t dl = *msg;
    dl.topic = topic;
    dl.key = msg->key;
    return broker_publish(ps->broker, &dl);
}

/* The message could not be handled as it should (§3.3): the DLQ when configured, else the
 * error goes back to the component. */
static broker_result_t give_up(delivery_target_t *t, const broker_msg_t *msg, const char *why)
{
    const char *dlq = t->subscription->dead_letter_topic;
    if (stopping(t->sidecar)) {
        /* §3.3.4: during shutdown no DLQ; the component redelivers */
        log_info(MODULE, "%s/%s: %s; shutting down, left to the component",
                 t->pubsub->component->name, msg->topic, why);
        return BROKER_FAIL;
    }
    if (dlq && *dlq) {
        if (delivery_dead_letter(t->sidecar, t->pubsub, dlq, msg) == 0) {
            log_warn(MODULE, "%s/%s: %s; sent to dead-letter topic %s", t->pubsub->component->name,
                     msg->topic, why, dlq);
            return BROKER_ACK;
        }
        log_error(MODULE, "%s/%s: %s; publishing to dead-letter topic %s failed",
                  t->pubsub->component->name, msg->topic, why, dlq);
        return BROKER_FAIL;
    }
    log_warn(MODULE, "%s/%s: %s; error returned to the component", t->pubsub->component->name,
             msg->topic, why);
    return BROKER_FAIL;
}

/* Dropped (§3.2 DROP/404, no route, expired): acked, and a copy to the DLQ when configured. */
static broker_result_t drop(delivery_target_t *t, const broker_msg_t *msg, const char *why)
{
    const char *dlq = t->subscription->dead_letter_topic;
    if (dlq && *dlq && !stopping(t->sidecar)) {
        if (delivery_dead_letter(t->sidecar, t->pubsub, dlq, msg) != 0)
            log_error(MODULE, "%s/%s: %s; publishing to dead-letter topic %s failed",
                      t->pubsub->component->name, msg->topic, why, dlq);
        else
            log_warn(MODULE, "%s/%s: %s; sent to dead-letter topic %s", t->pubsub->component->name,
                     msg->topic, why, dlq);
    } else {
        log_warn(MODULE, "%s/%s: %s; dropped", t->pubsub->component->name, msg->topic, why);
    }
    return BROKER_ACK;
}

/* ---- the handler -------------------------------------------------------------------------- */

broker_result_t delivery_handle(const broker_msg_t *msg, void *arg)
{
    delivery_target_t *t = arg;
    sidecar_t *s = t->sidecar;
    const res_subscription_t *sub = t->subscription;
    const char *pubsubname = t->pubsub->component->name;
    broker_result_t result = BROKER_FAIL;
    json_t *event = NULL;
    char *wrapped = NULL, *path = NULL;
    const void *body = msg->value;
    size_t len = msg->len;
    char names[BROKER_MAX_HEADERS + 3][HEADER_NAME_MAX];
    broker_header_t headers[BROKER_MAX_HEADERS + 4];
    size_t nh = 0;
    const char *traceparent = NULL, *tracestate = NULL;

    if (meta_true(sub, "rawPayload")) {
        /* §3.1 (envelope.go FromRawPayload): a new CE around the broker bytes */
        wrapped = cloudevent_from_raw_payload(msg->value, msg->len, msg->topic, pubsubname,
                                              header_value(msg, "traceparent"),
                                              header_value(msg, "tracestate"), &len);
        body = wrapped;
        event = json_loadb(wrapped, len, 0, NULL);
    } else {
        json_error_t jerr;
        event = json_loadb(msg->value, msg->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (json_is_null(event)) {
            json_decref(event);
            event = json_object();
        }
        if (!json_is_object(event)) {
            /* §3.1: not a JSON object → deserialization error */
            result = give_up(t, msg, "the message is not a JSON object (deserialization error)");
            goto out;
        }
        if (cloudevent_expired(event, time_now_usec())) {
            result = drop(t, msg, "the message expired");
            goto out;
        }
    }
    const char *route = subscriptions_route(sub, event);
    if (!route) {
        result = give_up(t, msg, "a routing rule cannot be evaluated (the event has no type)");
        goto out;
    }
    if (!*route) {
        result = drop(t, msg, "no route matches the event");
        goto out;
    }
    path = route[0] == '/' ? xstrdup(route) : xasprintf("/%s", route);

    /* §3.1 headers: Content-Type, Pubsubname, the message metadata, the trace context */
    headers[nh++] = (broker_header_t){"Content-Type", CLOUDEVENT_CONTENT_TYPE};
    headers[nh++] = (broker_header_t){"Pubsubname", pubsubname};
    for (size_t i = 0; i < msg->nheaders && nh < BROKER_MAX_HEADERS + 1; i++) {
        const char *n = msg->headers[i].name;
        if (!n || !msg->headers[i].value || strcasecmp(n, "content-length") == 0 ||
            strcasecmp(n, "content-type") == 0 || strcasecmp(n, "traceparent") == 0 ||
            strcasecmp(n, "tracestate") == 0 || strcasecmp(n, "pubsubname") == 0)
            continue;
        delivery_header_name(n, names[nh], HEADER_NAME_MAX);
        headers[nh] = (broker_header_t){names[nh], msg->headers[i].value};
        nh++;
    }
    {
        const json_t *tp = json_object_get(event, "traceparent");
        if (!json_is_string(tp) || !*json_string_value(tp))
            tp = json_object_get(event, "traceid");
        const json_t *ts = json_object_get(event, "tracestate");
        traceparent = json_is_string(tp) && *json_string_value(tp) ? json_string_value(tp) : NULL;
        tracestate = json_is_string(ts) && *json_string_value(ts) ? json_string_value(ts) : NULL;
    }
    if (traceparent)
        headers[nh++] = (broker_header_t){"traceparent", traceparent};
    if (tracestate)
        headers[nh++] = (broker_header_t){"tracestate", tracestate};

    /* §3.3 + §4: the component's inbound policy around each attempt */
    const res_retry_t *policy = resources_inbound_retry(&s->res, pubsubname);
    const res_timeout_t *timeout = resources_inbound_timeout(&s->res, pubsubname);
    resiliency_backoff_t backoff;
    resiliency_backoff_init(&backoff, policy);
    int64_t start = time_mono_usec();
    for (int attempt = 1;; attempt++) {
        app_response_t resp;
        int code = 0;
        int64_t attempt_ms = timeout ? timeout->ms : 0;
        /* The component's deadline (Redis processingTimeout, §3.3) bounds the handler context in
         * daprd: the call to the app is cut there and no retry starts after it. */
        if (msg->deadline_usec) {
            int64_t left_ms = (msg->deadline_usec - time_mono_usec() + 999) / 1000;
            if (left_ms <= 0) {
                result = give_up(t, msg, "the component's processing deadline passed");
                goto out;
            }
            if (attempt_ms <= 0 || left_ms < attempt_ms)
                attempt_ms = left_ms;
        }
        concurrency_enter(s);
        int rc = app_channel_call(s, "POST", path, headers, nh, body, len, attempt_ms, &resp);
        concurrency_leave();
        if (rc != 0) {
            resp.transport_error = true;
            resp.status = 0;
        }
        delivery_verdict_t v = delivery_judge(&resp, &code);
        log_debug(MODULE, "%s/%s → %s attempt %d: status %d, %s", pubsubname, msg->topic, path,
                  attempt, resp.status,
                  v == DELIVERY_SUCCESS ? "success"
                  : v == DELIVERY_DROP  ? "drop"
                                        : "retry");
        int status = resp.status;
        app_response_dispose(&resp);
        if (v == DELIVERY_SUCCESS) {
            result = BROKER_ACK;
            goto out;
        }
        if (v == DELIVERY_DROP) {
            result =
                drop(t, msg, status == 404 ? "the app answered 404" : "the app asked to drop it");
            goto out;
        }
        if (code != 0 && policy) {
            int m = resiliency_http_code_matches(policy->http_status_codes, code);
            if (m == 0) {
                result = give_up(t, msg, "the app's status is not retriable by the policy");
                goto out;
            }
        }
        int64_t delay =
            resiliency_backoff_next(&backoff, random_unit(), (time_mono_usec() - start) / 1000);
        if (delay < 0) {
            char why[96];
            snprintf(why, sizeof(why), "delivery failed after %d attempt(s)", attempt);
            result = give_up(t, msg, why);
            goto out;
        }
        if (msg->deadline_usec && time_mono_usec() + delay * 1000 > msg->deadline_usec)
            delay = (msg->deadline_usec - time_mono_usec()) / 1000 + 1; /* then give up */
        if (delay < 0)
            delay = 0;
        if (!pause_ms(s, delay)) {
            result = BROKER_FAIL; /* shutting down: no DLQ, the component redelivers */
            goto out;
        }
    }
out:
    json_decref(event);
    free(wrapped);
    free(path);
    return result;
}
