/* todo-recurring: reacts to completed recurring tasks on task-events by publishing their series'
 * next occurrence (todo.recurrence.next) to task-recurrence. Stateless: when publishing fails the
 * delivery is answered RETRY, so nothing is lost. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "next_event.h"
#include "todo/recurrence.h"
#include "todo/bus.h"
#include "todo/config.h"
#include "todo/dapr.h"
#include "todo/http_server.h"
#include "todo/log.h"
#include "todo/service.h"
#include "todo/shutdown.h"
#include "todo/subscriber.h"
#include "todo/uuid.h"

#define SERVICE      "recurring"
#define SOURCE       "todo/recurring"
#define OUTPUT_TOPIC "task-recurrence"

static struct {
    int64_t port, threads, workers, max_body, drain_seconds;
    const char *log_level;
    dapr_env_t dapr;
} cfg;

static const config_entry_t config_table[] = {
    {"PORT", CONFIG_INT, "8003", false, 0, 65535, "HTTP port", &cfg.port, NULL},
    {"THREADS", CONFIG_INT, "1", false, 1, 64, "event loop threads", &cfg.threads, NULL},
    {"WORKERS", CONFIG_INT, "4", false, 1, 256,
     "threads that handle deliveries, each with its own sidecar connection", &cfg.workers, NULL},
    {"LOG_LEVEL", CONFIG_STRING, "info", false, 0, 0, "debug, info, warn or error", &cfg.log_level,
     service_check_log_level},
    {"MAX_BODY_BYTES", CONFIG_INT, "262144", false, 1024, 16777216, "request body cap in bytes",
     &cfg.max_body, NULL},
    {"SHUTDOWN_DRAIN_SECONDS", CONFIG_INT, "10", false, 0, 300,
     "how long shutdown waits for deliveries in flight", &cfg.drain_seconds, NULL},
    DAPR_CONFIG_ENTRIES(&cfg.dapr),
};

static atomic_bool sidecar_ready, stopping;
static _Atomic(http_server_t *) server;

static dapr_config_t sidecar_config(void)
{
    return (dapr_config_t){.port = (int)cfg.dapr.http_port, .api_token = cfg.dapr.api_token};
}

static int thread_init(int index, void **ctx, void *arg)
{
    bus_config_t bc = {.pubsub = cfg.dapr.pubsub, .dapr = sidecar_config()};
    bus_t *bus = bus_new(&bc);
    if (!bus)
        return TODO_EINTERNAL;
    *ctx = bus;
    return 0;
}

static void thread_dispose(void *ctx, void *arg)
{
    bus_free(ctx);
}

static bool ready(void *ctx, void *arg, const char **why)
{
    if (!atomic_load(&sidecar_ready)) {
        *why = "waiting for the Dapr sidecar";
        return false;
    }
    return true;
}

/* task-events: only completions of recurring tasks matter; everything else is acknowledged. */
static delivery_t on_task_event(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg)
{
    bus_t *bus = thread_ctx;
    json_t *data = NULL;
    char id[TODO_UUID_LEN], subject[32];
    const char *why = NULL;
    delivery_t result = DELIVERY_SUCCESS;

    if (strcmp(ev->type, "todo.task.completed") != 0)
        return DELIVERY_SUCCESS;
    int rc = next_event_data(ev->data, &data, id, &why);
    if (rc == TODO_ENOT_FOUND) {
        log_info("recurring", "event %s: no next occurrence (no rule, or the series ended)",
                 ev->id);
        return DELIVERY_SUCCESS;
    }
    if (rc != 0) {
        log_warn("recurring", "event %s: %s", ev->id, why ? why : todo_err_code(rc));
        return rc == TODO_EVALIDATION_ERROR ? DELIVERY_DROP : DELIVERY_RETRY;
    }
    snprintf(subject, sizeof(subject), "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(data, "previous_task_id")));
    char *event =
        cloudevent_build(id, SOURCE, "todo.recurrence.next", subject, ev->traceparent, data);
    const char *series = json_string_value(json_object_get(data, "series_id"));
    bus_message_t m = {OUTPUT_TOPIC, series, event, strlen(event)};
    rc = bus_publish(bus, &m, 1, NULL, ev->traceparent);
    if (rc != 0) {
        log_warn("recurring", "event %s: publishing occurrence %lld of series %s failed (%s)",
                 ev->id, (long long)json_integer_value(json_object_get(data, "occurrence")), series,
                 todo_err_code(rc));
        result = DELIVERY_RETRY;
    } else {
        log_info("recurring", "series %s: occurrence %lld due %s published as %s", series,
                 (long long)json_integer_value(json_object_get(data, "occurrence")),
                 json_string_value(json_object_get(json_object_get(data, "task"), "due_at")), id);
    }
    free(event);
    json_decref(data);
    return result;
}

static const subscription_t subscriptions[] = {
    {"task-events", "recurring", on_task_event, NULL},
};

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
    recurrence_init();

    if (shutdown_start(on_signal, NULL) != 0)
        return 1;
    subscriber_config_t sc = {.pubsub = cfg.dapr.pubsub, .app_token = cfg.dapr.app_token};
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
    server = http_server_new(&hc);
    if (!server || subscriber_register(subs, server) != 0 || http_server_start(server) != 0) {
        log_error("main", "could not start the HTTP server on port %lld", (long long)cfg.port);
        http_server_free(server);
        subscriber_free(subs);
        return 1;
    }
    log_info("main", "listening on port %d", http_server_port(server));

    dapr_config_t dc = sidecar_config();
    int rc = service_wait_sidecar(&dc, &stopping);
    if (rc == 0) {
        atomic_store(&sidecar_ready, true);
        log_info("main", "ready");
    }
    http_server_join(server);
    http_server_free(server);
    subscriber_free(subs);
    log_info("main", "stopped");
    return rc == 0 || shutdown_requested() ? 0 : 1;
}
