/* todo-notification: keeps the reminders projection from task-events, and on the triggers of the
 * Dapr jobs reminder-sweep (every few seconds) and reminder-<task_id> (one-shot, at remind_at)
 * turns due reminders into todo.reminder.due events, which its outbox relay publishes to
 * task-reminders. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reminders.h"
#include "todo/config.h"
#include "todo/dapr.h"
#include "todo/db.h"
#include "todo/http_server.h"
#include "todo/log.h"
#include "todo/outbox.h"
#include "todo/service.h"
#include "todo/shutdown.h"
#include "todo/subscriber.h"

#define SERVICE        "notification"
#define SWEEP_JOB      "reminder-sweep"
#define CLAIM_BATCH    500
#define CLAIM_ROUNDS   20 /* per trigger: 10,000 reminders at most, the rest on the next */
#define JOB_PREFIX     "reminder-"
#define DURATION_MAX_S (366LL * 86400)

extern const db_migration_t notification_migrations[];
extern const unsigned notification_migrations_count;

static struct {
    int64_t port, threads, workers, max_body, drain_seconds, catchup_s;
    const char *database_url, *log_level, *sweep_schedule, *catchup, *link_base;
    dapr_env_t dapr;
} cfg;

/* What each worker thread owns. */
typedef struct {
    db_t *db;
    dapr_t *dapr;
} worker_t;

/* "24h", "90m", "45s", "2h30m" or plain seconds → seconds; -1 when malformed. */
static int64_t parse_duration(const char *s)
{
    int64_t total = 0;
    if (!s || !*s)
        return -1;
    while (*s) {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (end == s || n < 0 || n > DURATION_MAX_S)
            return -1;
        int64_t unit = *end == 'h' ? 3600 : *end == 'm' ? 60 : 1;
        if (*end == 'h' || *end == 'm' || *end == 's')
            end++;
        else if (*end != '\0')
            return -1;
        total += (int64_t)n * unit;
        if (total > DURATION_MAX_S)
            return -1;
        s = end;
    }
    return total;
}

static const char *check_duration(const char *v)
{
    return parse_duration(v) >= 0 ? NULL : "must be a duration such as 24h, 90m or 3600s";
}

static const config_entry_t config_table[] = {
    {"PORT", CONFIG_INT, "8001", false, 0, 65535, "HTTP port", &cfg.port, NULL},
    {"DATABASE_URL", CONFIG_SECRET, NULL, true, 1, 4096, "PostgreSQL connection URL",
     &cfg.database_url, NULL},
    {"THREADS", CONFIG_INT, "1", false, 1, 64, "event loop threads", &cfg.threads, NULL},
    {"WORKERS", CONFIG_INT, "4", false, 1, 256,
     "threads that handle deliveries and job triggers, each with its own database connection",
     &cfg.workers, NULL},
    {"LOG_LEVEL", CONFIG_STRING, "info", false, 0, 0, "debug, info, warn or error", &cfg.log_level,
     service_check_log_level},
    {"MAX_BODY_BYTES", CONFIG_INT, "262144", false, 1024, 16777216, "request body cap in bytes",
     &cfg.max_body, NULL},
    {"SHUTDOWN_DRAIN_SECONDS", CONFIG_INT, "10", false, 0, 300,
     "how long shutdown waits for work in flight (and then for the outbox)", &cfg.drain_seconds,
     NULL},
    {"REMINDER_SWEEP_SCHEDULE", CONFIG_STRING, "@every 5s", false, 1, 128,
     "schedule of the reminder-sweep job (Dapr jobs: 6-field cron or @every <duration>)",
     &cfg.sweep_schedule, NULL},
    {"REMINDER_CATCHUP", CONFIG_STRING, "24h", false, 1, 32,
     "reminders due longer ago than this when first claimed are marked missed, not sent",
     &cfg.catchup, check_duration},
    {"TASK_LINK_BASE", CONFIG_STRING, "http://localhost:8000/tasks/", false, 1, 512,
     "the link in a reminder mail: this followed by the task id", &cfg.link_base, NULL},
    DAPR_CONFIG_ENTRIES(&cfg.dapr),
};

static atomic_bool migrated, started, stopping;
static _Atomic(outbox_relay_t *) relay_now; /* for the wake-ups after a claim */
static _Atomic(http_server_t *) server;

static dapr_config_t sidecar_config(void)
{
    return (dapr_config_t){.port = (int)cfg.dapr.http_port, .api_token = cfg.dapr.api_token};
}

static int thread_init(int index, void **ctx, void *arg)
{
    worker_t *w = calloc(1, sizeof(*w));
    dapr_config_t dc = sidecar_config();
    if (!w)
        return TODO_EINTERNAL;
    w->db = db_new(cfg.database_url);
    db_set_application_name(w->db, "todo-notification");
    w->dapr = dapr_new(&dc);
    if (!w->dapr) {
        db_free(w->db);
        free(w);
        return TODO_EINTERNAL;
    }
    if (db_connect(w->db) != 0)
        log_warn("db", "worker %d: database not reachable yet; will retry", index);
    *ctx = w;
    return 0;
}

static void thread_dispose(void *ctx, void *arg)
{
    worker_t *w = ctx;
    if (!w)
        return;
    db_free(w->db);
    dapr_free(w->dapr);
    free(w);
}

static db_t *db_of(void *ctx)
{
    return ((worker_t *)ctx)->db;
}

static bool ready(void *ctx, void *arg, const char **why)
{
    worker_t *w = ctx;
    if (!atomic_load(&started)) {
        *why = atomic_load(&migrated) ? "waiting for the Dapr sidecar" : "migrations not applied";
        return false;
    }
    if (db_ping(w->db) != 0) {
        *why = "database unreachable";
        return false;
    }
    return true;
}

/* ---- task-events → the projection, and the one-shot job of each armed reminder ---- */

static void job_name(int64_t task_id, char *out, size_t n)
{
    snprintf(out, n, JOB_PREFIX "%" PRId64, task_id);
}

static delivery_t on_task_event(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg)
{
    worker_t *w = thread_ctx;
    reminder_change_t ch;
    char name[48];

    if (strncmp(ev->type, "todo.task.", 10) != 0)
        return DELIVERY_SUCCESS;
    int rc = reminders_apply(db, ev, &ch);
    if (rc == TODO_EVALIDATION_ERROR) {
        log_warn("reminders", "event %s (%s): data is not a task snapshot", ev->id, ev->type);
        return DELIVERY_DROP;
    }
    if (rc != 0)
        return DELIVERY_RETRY;
    job_name(ch.task_id, name, sizeof(name));
    /* The job only makes a reminder punctual: the sweep finds every due reminder anyway, so a
     * failed job call is logged, not retried. (A job left behind finds nothing to claim.) */
    if (ch.action == REMINDER_ARM) {
        json_t *job = json_pack("{s:s, s:b, s:{s:I}}", "dueTime", ch.remind_at, "overwrite", 1,
                                "data", "task_id", (json_int_t)ch.task_id);
        if (dapr_job_schedule(w->dapr, name, job) != 0)
            log_warn("reminders",
                     "task %" PRId64 ": scheduling job %s failed; the sweep will "
                     "send the reminder",
                     ch.task_id, name);
        else
            log_info("reminders", "task %" PRId64 ": reminder armed for %s", ch.task_id,
                     ch.remind_at);
        json_decref(job);
    } else if (ch.action == REMINDER_CANCEL) {
        if (dapr_job_delete(w->dapr, name) != 0)
            log_warn("reminders", "task %" PRId64 ": deleting job %s failed", ch.task_id, name);
        else
            log_info("reminders", "task %" PRId64 ": reminder cancelled", ch.task_id);
    }
    return DELIVERY_SUCCESS;
}

static const subscription_t subscriptions[] = {
    {"task-events", "notification.reminders", on_task_event, NULL},
};

/* ---- job triggers: the claim step ---- */

typedef struct {
    int sent, missed;
} claim_t;

static int claim_tx(db_t *db, void *arg)
{
    claim_t *c = arg;
    return reminders_claim_due(db, cfg.catchup_s, cfg.link_base, CLAIM_BATCH, &c->sent, &c->missed);
}

/* POST /job/{name} (DAPR-CONTRACT §6.2): both jobs run the claim step. 2xx ends the trigger; a
 * database failure answers 500 so that the job's failure policy tries again. */
static int on_job(http_req_t *req)
{
    worker_t *w = req->thread_ctx;
    const char *name = req->params[0];
    int sent = 0, missed = 0, rc = 0;

    if (!subscriber_token_ok(req, cfg.dapr.app_token))
        return http_send_error(req, TODO_EUNAUTHORIZED, "invalid app token", NULL);
    if (strncmp(name, JOB_PREFIX, strlen(JOB_PREFIX)) != 0)
        log_warn("jobs", "trigger of unknown job %s: running the claim step", name);
    for (int round = 0; round < CLAIM_ROUNDS; round++) {
        claim_t c = {0, 0};
        rc = db_tx(w->db, claim_tx, &c);
        if (rc != 0)
            break;
        sent += c.sent;
        missed += c.missed;
        if (c.sent + c.missed < CLAIM_BATCH)
            break;
    }
    if (sent)
        outbox_relay_signal(atomic_load(&relay_now), w->db, "notification_outbox");
    if (sent || missed)
        log_info("jobs", "%s: %d reminders due, %d missed (older than %s)", name, sent, missed,
                 cfg.catchup);
    if (rc != 0) {
        log_warn("jobs", "%s: claim step failed (%s)", name, todo_err_code(rc));
        return http_send_error(req, TODO_EUNAVAILABLE, "database unavailable", NULL);
    }
    json_t *o = json_pack("{s:i, s:i}", "sent", sent, "missed", missed);
    rc = http_respond_json(req, 200, o);
    json_decref(o);
    return rc;
}

/* ---- start-up ---- */

static void on_signal(void *arg)
{
    log_info("main", "shutting down");
    atomic_store(&stopping, true);
    if (server)
        http_server_stop(server);
}

/* Waits for the sidecar, then registers the sweep (overwrite: every replica may; with data, as
 * a data-less HTTP job is never delivered by daprd before 1.18.3, and with no ttl: §6.1/§6.2). */
static int register_sweep(void)
{
    dapr_config_t dc = sidecar_config();
    dapr_t *d = dapr_new(&dc);
    int64_t delay = 250;
    int rc = d ? service_wait_sidecar(&dc, &stopping) : TODO_EINTERNAL;
    json_t *job = json_pack("{s:s, s:b, s:{s:s}}", "schedule", cfg.sweep_schedule, "overwrite", 1,
                            "data", "job", SWEEP_JOB);
    while (rc == 0 && !atomic_load(&stopping)) {
        rc = dapr_job_schedule(d, SWEEP_JOB, job);
        if (rc == 0) {
            log_info("main", "job %s scheduled (%s)", SWEEP_JOB, cfg.sweep_schedule);
            break;
        }
        if (rc == TODO_EBAD_REQUEST) {
            log_error("main", "the sidecar refuses the schedule %s of %s", cfg.sweep_schedule,
                      SWEEP_JOB);
            break;
        }
        log_warn("main", "scheduling %s failed (%s); retrying in %lld ms", SWEEP_JOB,
                 todo_err_code(rc), (long long)delay);
        service_pause(delay, &stopping);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
        rc = 0;
    }
    json_decref(job);
    dapr_free(d);
    return atomic_load(&stopping) ? TODO_EUNAVAILABLE : rc;
}

int main(int argc, char **argv)
{
    size_t nconfig = sizeof(config_table) / sizeof(config_table[0]);
    int code = config_main(SERVICE, config_table, nconfig, argc, argv);
    if (code >= 0)
        return code;
    service_log_init(SERVICE, cfg.log_level, config_table, nconfig);
    cfg.catchup_s = parse_duration(cfg.catchup);

    if (shutdown_start(on_signal, NULL) != 0)
        return 1;
    subscriber_config_t sc = {
        .pubsub = cfg.dapr.pubsub,
        .app_token = cfg.dapr.app_token,
        .processed_table = "notification.processed_events",
        .db_of = db_of,
    };
    subscriber_t *subs =
        subscriber_new(&sc, subscriptions, sizeof(subscriptions) / sizeof(subscriptions[0]));
    http_server_config_t hc = {
        .service = SERVICE,
        .port = (int)cfg.port,
        .threads = (int)cfg.threads,
        .workers = (int)cfg.workers,
        .max_body = (size_t)cfg.max_body,
        .drain_ms = cfg.drain_seconds * 1000,
        .thread_init = thread_init,
        .thread_dispose = thread_dispose,
        .ready = ready,
    };
    /* The routes exist before any job does: a trigger to a missing route is a 404, which Dapr
     * takes for success (§6.2). */
    server = http_server_new(&hc);
    if (!server || subscriber_register(subs, server) != 0 ||
        http_server_route(server, "POST", "/job/{name}", on_job, NULL) != 0 ||
        http_server_start(server) != 0) {
        log_error("main", "could not start the HTTP server on port %lld", (long long)cfg.port);
        http_server_free(server);
        subscriber_free(subs);
        return 1;
    }
    log_info("main", "listening on port %d", http_server_port(server));

    outbox_relay_t *relay = NULL;
    int rc = service_migrate(cfg.database_url, "notification", notification_migrations,
                             notification_migrations_count, &stopping);
    if (rc == 0) {
        atomic_store(&migrated, true);
        rc = register_sweep();
    }
    if (rc == 0) {
        outbox_config_t oc = {
            .database_url = cfg.database_url,
            .table = "notification.outbox",
            .channel = "notification_outbox",
            .bus = {.pubsub = cfg.dapr.pubsub, .dapr = sidecar_config()},
        };
        relay = outbox_relay_start(&oc);
        atomic_store(&relay_now, relay);
        rc = relay ? 0 : TODO_EINTERNAL;
    }
    if (rc == 0) {
        atomic_store(&started, true);
        log_info("main", "ready");
    } else if (!atomic_load(&stopping)) {
        log_error("main", "start-up failed (%s); stopping", todo_err_code(rc));
        http_server_stop(server);
    }
    http_server_join(server);
    http_server_free(server);
    subscriber_free(subs);
    atomic_store(&relay_now, NULL); /* the workers have ended with the server */
    outbox_relay_stop(relay, cfg.drain_seconds * 1000);
    log_info("main", "stopped");
    return rc == 0 || shutdown_requested() ? 0 : 1;
}
