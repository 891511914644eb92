/* The trigger loop: polls the jobs store every 50–150 ms while the app is ready, delivers each
 * claimed trigger as POST /job/<name> with the raw data (DAPR-CONTRACT §6.2), treats 2xx and 404
 * as done and anything else as a failure for the failure policy (§6.3). A second thread renews
 * the lease of the trigger being delivered, so a sidecar that dies loses it within seconds. */
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_channel.h"
#include "jobs_store.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define POLL_MS         100 /* mean poll interval */
#define CLAIM_MAX       16
#define LEASE_USEC      (INT64_C(5) * 1000000) /* renewed every second while delivering */
#define RENEW_MS        1000
#define CALL_TIMEOUT_MS 60000
#define PATH_MAX_LEN    4096

struct scheduler {
    sidecar_t *s;
    jobs_store_t *store;   /* claims and outcomes (trigger thread) */
    jobs_store_t *renewer; /* lease renewals (renew thread) */
    pthread_t thread, renew_thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    char token[TODO_UUID_LEN]; /* lease being delivered under, "" when none (guarded by mu) */
    char instance[TODO_UUID_LEN];
    unsigned seed; /* poll jitter (trigger thread only) */
};

const char *scheduler_namespace(void)
{
    const char *ns = getenv("NAMESPACE");
    return ns && *ns ? ns : "default";
}

/* Waits up to ms or until stop; true when stopping. */
static bool wait_ms(scheduler_t *sch, int64_t ms)
{
    struct timespec ts;
    bool stop;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&sch->mu);
    while (!sch->stop && pthread_cond_timedwait(&sch->cond, &sch->mu, &ts) != ETIMEDOUT) {
    }
    stop = sch->stop;
    pthread_mutex_unlock(&sch->mu);
    return stop;
}

static bool stopping(scheduler_t *sch)
{
    bool stop;
    pthread_mutex_lock(&sch->mu);
    stop = sch->stop;
    pthread_mutex_unlock(&sch->mu);
    return stop;
}

/* "/job/" + name with the bytes a URL path cannot carry percent-encoded (as Go's URL path). */
static int job_path(const char *name, char out[PATH_MAX_LEN])
{
    static const char keep[] = "-._~!$&'()*+,;=:@";
    size_t o = (size_t)snprintf(out, PATH_MAX_LEN, "/job/");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (o + 4 >= PATH_MAX_LEN)
            return TODO_EBAD_REQUEST;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(keep, *p))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, 4, "%%%02X", *p);
    }
    out[o] = '\0';
    return 0;
}

/* One delivery attempt; true when the trigger is done (2xx, or 404 which daprd also treats as
 * success, §6.2). */
static bool deliver(scheduler_t *sch, const jobs_trigger_t *t)
{
    char path[PATH_MAX_LEN];
    broker_header_t hdr[1] = {{"Content-Type", "application/json"}};
    app_response_t resp;
    const char *body = t->job.data ? t->job.data : ""; /* no data → empty body (v1.18.3) */
    bool ok = false;
    memset(&resp, 0, sizeof(resp));
    if (job_path(t->job.name, path) != 0) {
        log_warn("jobs", "job name too long for a trigger path: %.64s…", t->job.name);
        return false;
    }
    if (app_channel_call(sch->s, "POST", path, hdr, 1, body, strlen(body), CALL_TIMEOUT_MS,
                         &resp) == 0 &&
        !resp.transport_error)
        ok = (resp.status >= 200 && resp.status < 300) || resp.status == 404;
    log_debug("jobs", "trigger %s attempt %d: status %d", t->job.name, t->attempt + 1, resp.status);
    app_response_dispose(&resp);
    return ok;
}

static void set_token(scheduler_t *sch, const char *token)
{
    pthread_mutex_lock(&sch->mu);
    snprintf(sch->token, sizeof(sch->token), "%s", token ? token : "");
    pthread_mutex_unlock(&sch->mu);
}

static void *renew_main(void *arg)
{
    scheduler_t *sch = arg;
    char token[TODO_UUID_LEN];
    while (!wait_ms(sch, RENEW_MS)) {
        pthread_mutex_lock(&sch->mu);
        memcpy(token, sch->token, sizeof(token));
        pthread_mutex_unlock(&sch->mu);
        if (token[0] && jobs_store_renew(sch->renewer, token, time_now_usec() + LEASE_USEC) != 0)
            log_warn("jobs", "could not renew the lease of a trigger in delivery");
    }
    return NULL;
}

static void *scheduler_main(void *arg)
{
    scheduler_t *sch = arg;
    jobs_trigger_t batch[CLAIM_MAX];
    bool opened = false;
    while (!stopping(sch)) {
        size_t n = 0, i;
        if (!opened) {
            if (jobs_store_open(sch->store) != 0) {
                log_warn("jobs", "scheduler database unavailable; retrying");
                if (wait_ms(sch, 1000))
                    break;
                continue;
            }
            opened = true;
        }
        /* §6.3: a sidecar takes no triggers while its app is not ready; the triggers stay due
         * and another replica, or this one later, fires them. */
        if (!atomic_load(&sch->s->app_ready)) {
            if (wait_ms(sch, POLL_MS))
                break;
            continue;
        }
        if (jobs_store_claim(sch->store, time_now_usec(), LEASE_USEC, batch, CLAIM_MAX, &n) != 0) {
            log_warn("jobs", "claiming due triggers failed");
            if (wait_ms(sch, 1000))
                break;
            continue;
        }
        for (i = 0; i < n; i++) {
            if (stopping(sch) || !atomic_load(&sch->s->app_ready)) {
                if (jobs_store_release(sch->store, &batch[i]) != 0)
                    log_warn("jobs", "could not give back the trigger of %s", batch[i].job.name);
                continue;
            }
            set_token(sch, batch[i].lease_token);
            bool ok = deliver(sch, &batch[i]);
            if (jobs_store_finish(sch->store, &batch[i], ok, time_now_usec()) != 0)
                log_warn("jobs", "could not record the trigger of %s (it will fire again)",
                         batch[i].job.name);
            set_token(sch, NULL);
        }
        for (i = 0; i < n; i++)
            jobs_trigger_dispose(&batch[i]);
        /* Polls 50–150 ms apart, at random, so that the replicas of an app id take turns rather
         * than the quickest one taking every trigger (daprd round-robins them, §6.3). */
        if (n < CLAIM_MAX && wait_ms(sch, POLL_MS / 2 + rand_r(&sch->seed) % POLL_MS))
            break;
    }
    return NULL;
}

int scheduler_start(sidecar_t *s, scheduler_t **out)
{
    int rc = TODO_EINTERNAL;
    scheduler_t *sch = NULL;
    bool main_started = false;
    *out = NULL;
    if (!s->opt.scheduler_database_url || !*s->opt.scheduler_database_url)
        return 0;
    sch = xcalloc(1, sizeof(*sch));
    sch->s = s;
    todo_uuid_v4(sch->instance);
    for (const char *p = sch->instance; *p; p++)
        sch->seed = sch->seed * 31u + (unsigned char)*p;
    sch->store = jobs_store_new(s->opt.scheduler_database_url, s->opt.app_id, scheduler_namespace(),
                                sch->instance);
    sch->renewer = jobs_store_new(s->opt.scheduler_database_url, s->opt.app_id,
                                  scheduler_namespace(), sch->instance);
    pthread_mutex_init(&sch->mu, NULL);
    pthread_cond_init(&sch->cond, NULL);
    if (pthread_create(&sch->thread, NULL, scheduler_main, sch) != 0)
        goto out;
    main_started = true;
    if (pthread_create(&sch->renew_thread, NULL, renew_main, sch) != 0)
        goto out;
    *out = sch;
    sch = NULL;
    rc = 0;
out:
    if (sch) {
        pthread_mutex_lock(&sch->mu);
        sch->stop = true;
        pthread_cond_broadcast(&sch->cond);
        pthread_mutex_unlock(&sch->mu);
        if (main_started)
            pthread_join(sch->thread, NULL);
        jobs_store_free(sch->store);
        jobs_store_free(sch->renewer);
        pthread_cond_destroy(&sch->cond);
        pthread_mutex_destroy(&sch->mu);
        free(sch);
    }
    return rc;
}

void scheduler_stop(scheduler_t *sch)
{
    if (!sch)
        return;
    pthread_mutex_lock(&sch->mu);
    sch->stop = true;
    pthread_cond_broadcast(&sch->cond);
    pthread_mutex_unlock(&sch->mu);
    pthread_join(sch->thread, NULL);
    pthread_join(sch->renew_thread, NULL);
    jobs_store_free(sch->store);
    jobs_store_free(sch->renewer);
    pthread_cond_destroy(&sch->cond);
    pthread_mutex_destroy(&sch->mu);
    free(sch);
}
