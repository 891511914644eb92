/* todo-backend: the task API. Reads its configuration, listens, applies its migrations, waits for
 * the Dapr sidecar, starts the outbox relay, serves until SIGTERM/SIGINT, then drains the HTTP
 * server and the outbox and exits. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "api_labels.h"
#include "api_tasks.h"
#include "series.h"
#include "todo/config.h"
#include "todo/dapr.h"
#include "todo/db.h"
#include "todo/http_server.h"
#include "todo/log.h"
#include "todo/outbox.h"
#include "todo/service.h"
#include "todo/shutdown.h"
#include "todo/subscriber.h"

#define SERVICE "backend"

extern const db_migration_t backend_migrations[];
extern const unsigned backend_migrations_count;

static struct {
    int64_t port, threads, workers, max_body, drain_seconds, outbox_retention;
    const char *database_url, *jwt_secret, *log_level;
    dapr_env_t dapr;
} cfg;

static const config_entry_t config_table[] = {
    {"PORT", CONFIG_INT, "8000", false, 0, 65535, "HTTP port", &cfg.port, NULL},
    {"DATABASE_URL", CONFIG_SECRET, NULL, true, 1, 4096,
     "PostgreSQL connection URL (postgresql://user:password@host:port/db)", &cfg.database_url,
     NULL},
    {"JWT_SECRET", CONFIG_SECRET, NULL, true, 32, 4096,
     "HS256 secret of the bearer tokens (at least 32 bytes)", &cfg.jwt_secret, NULL},
    {"THREADS", CONFIG_INT, "0", false, 0, 256, "event loop threads (0 = number of cores)",
     &cfg.threads, NULL},
    {"WORKERS", CONFIG_INT, "0", false, 0, 256,
     "threads that run requests, each with its own database connection (0 = 4 per core)",
     &cfg.workers, NULL},
    {"LOG_LEVEL", CONFIG_STRING, "info", false, 0, 0, "debug, info, warn or error", &cfg.log_level,
     service_check_log_level},
    {"MAX_BODY_BYTES", CONFIG_INT, "65536", false, 1024, 16777216, "request body cap in bytes",
     &cfg.max_body, NULL},
    {"SHUTDOWN_DRAIN_SECONDS", CONFIG_INT, "10", false, 0, 300,
     "how long shutdown waits for requests in flight (and then for the outbox)", &cfg.drain_seconds,
     NULL},
    {"OUTBOX_RETENTION_SECONDS", CONFIG_INT, "86400", false, 1, 31536000,
     "published outbox rows are deleted after this long", &cfg.outbox_retention, NULL},
    DAPR_CONFIG_ENTRIES(&cfg.dapr),
};

/* What the backend consumes: the next occurrences the recurring service computes. */
static const subscription_t subscriptions[] = {
    {"task-recurrence", "backend.series", series_on_next, NULL},
};

static atomic_bool migrated, sidecar_ready, stopping;
static _Atomic(http_server_t *) server;

static int thread_init(int index, void **ctx, void *arg)
{
    backend_thread_t *t = calloc(1, sizeof(*t));
    if (!t)
        return TODO_EINTERNAL;
    t->db = db_new(cfg.database_url);
    t->users = user_cache_new();
    if (db_connect(t->db) != 0)
        log_warn("db", "worker %d: database not reachable yet; will retry", index);
    *ctx = t;
    return 0;
}

static void thread_dispose(void *ctx, void *arg)
{
    backend_thread_t *t = ctx;
    if (!t)
        return;
    db_free(t->db);
    user_cache_free(t->users);
    free(t);
}

static db_t *db_of(void *ctx)
{
    return ((backend_thread_t *)ctx)->db;
}

/* A next occurrence was created: its event is in the outbox. */
static void after_event(void *ctx, db_t *db)
{
    api_changed(db);
}

static bool ready(void *ctx, void *arg, const char **why)
{
    backend_thread_t *t = ctx;
    if (!atomic_load(&migrated)) {
        *why = "migrations not applied yet";
        return false;
    }
    if (!atomic_load(&sidecar_ready)) {
        *why = "waiting for the Dapr sidecar";
        return false;
    }
    if (db_ping(t->db) != 0) {
        *why = "database unreachable";
        return false;
    }
    return true;
}

static void on_signal(void *arg)
{
    log_info("main", "shutting down");
    atomic_store(&stopping, true);
    if (server)
        http_server_stop(server);
}

int main(int argc, char **argv)
{
    size_t nconfig = sizeof(config_table) / sizeof(config_table[0]);
    int code = config_main(SERVICE, config_table, nconfig, argc, argv);
    if (code >= 0)
        return code;
    service_log_init(SERVICE, cfg.log_level, config_table, nconfig);

    backend_config.jwt_secret = (const unsigned char *)cfg.jwt_secret;
    backend_config.jwt_secret_len = strlen(cfg.jwt_secret);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (cfg.threads == 0)
        cfg.threads = cores;
    if (cfg.workers == 0)
        cfg.workers = 4 * cores;

    if (shutdown_start(on_signal, NULL) != 0)
        return 1;
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
    subscriber_config_t sc = {
        .pubsub = cfg.dapr.pubsub,
        .app_token = cfg.dapr.app_token,
        .processed_table = "backend.processed_events",
        .db_of = db_of,
        .after_commit = after_event,
    };
    subscriber_t *subs =
        subscriber_new(&sc, subscriptions, sizeof(subscriptions) / sizeof(subscriptions[0]));
    server = http_server_new(&hc);
    if (!server || api_tasks_register(server) != 0 || api_labels_register(server) != 0 ||
        subscriber_register(subs, server) != 0 || http_server_start(server) != 0) {
        log_error("main", "could not start the HTTP server on port %lld", (long long)cfg.port);
        http_server_free(server);
        subscriber_free(subs);
        return 1;
    }
    log_info("main", "listening on port %d with %lld loops and %lld workers",
             http_server_port(server), (long long)cfg.threads, (long long)cfg.workers);

    /* SYSTEM.md §5: listen first, then the database, then the sidecar's outbound health
     * (never /v1.0/healthz, which waits for this app: DAPR-CONTRACT §8.2), then the relay. */
    outbox_relay_t *relay = NULL;
    dapr_config_t dc = {.port = (int)cfg.dapr.http_port, .api_token = cfg.dapr.api_token};
    int rc = service_migrate(cfg.database_url, "backend", backend_migrations,
                             backend_migrations_count, &stopping);
    if (rc == 0) {
        atomic_store(&migrated, true);
        rc = service_wait_sidecar(&dc, &stopping);
    }
    if (rc == 0) {
        outbox_config_t oc = {
            .database_url = cfg.database_url,
            .table = "backend.outbox",
            .channel = "backend_outbox",
            .bus = {.pubsub = cfg.dapr.pubsub, .dapr = dc},
            .retention_s = cfg.outbox_retention,
        };
        relay = outbox_relay_start(&oc);
        atomic_store(&backend_config.relay, relay);
        rc = relay ? 0 : TODO_EINTERNAL;
    }
    if (rc == 0) {
        atomic_store(&sidecar_ready, true);
        log_info("main", "ready");
    } else if (!shutdown_requested()) {
        log_error("main", "start-up failed (%s); stopping", todo_err_code(rc));
        http_server_stop(server);
    }
    http_server_join(server);
    http_server_free(server);
    subscriber_free(subs);
    /* The changes of the last requests are in the outbox: publish them before leaving. */
    atomic_store(&backend_config.relay, NULL); /* the workers have ended with the server */
    outbox_relay_stop(relay, cfg.drain_seconds * 1000);
    log_info("main", "stopped");
    return rc == 0 || shutdown_requested() ? 0 : 1;
}
