/* todo-email: mails each todo.reminder.due event of task-reminders once, over SMTP, keeping a
 * delivery record per event in the Dapr state store (docs/email.md). Nothing in PostgreSQL. */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mail.h"
#include "mailer.h"
#include "reminder.h"
#include "smtp.h"
#include "todo/config.h"
#include "todo/dapr.h"
#include "todo/http_server.h"
#include "todo/log.h"
#include "todo/service.h"
#include "todo/shutdown.h"
#include "todo/subscriber.h"
#include "todo/uuid.h"

#define SERVICE     "email"
#define TOPIC       "task-reminders"
#define LEASE_SPARE 5 /* seconds a lease must exceed the SMTP timeout by */

static struct {
    int64_t port, threads, workers, max_body, drain_seconds;
    const char *log_level;
    dapr_env_t dapr;
    bool use_dapr, require_tls;
    const char *smtp_url, *smtp_user, *smtp_password, *mail_from, *mail_from_name, *ca_file;
    int64_t connect_timeout, smtp_timeout, lease, record_ttl;
    const char *instance;
} cfg;

static const char *check_use_dapr(const char *v)
{
    bool off = strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
               strcasecmp(v, "off") == 0;
    return off ? "false is not supported by todo-email (its records live in the Dapr state store)"
               : NULL;
}

static const char *check_address(const char *v)
{
    return reminder_address_valid(v) ? NULL : "must be a plain address such as todo@example.com";
}

static const char *check_from_name(const char *v)
{
    return mail_from_name_valid(v) ? NULL
                                   : "must be UTF-8 without control characters, quotes or "
                                     "backslashes";
}

static const char *check_instance(const char *v)
{
    for (; *v; v++)
        if (*v <= 0x20 || *v >= 0x7f)
            return "must be printable ASCII without spaces";
    return NULL;
}

/* Runs after SMTP_TIMEOUT_SECONDS was read (the table is read in order). */
static const char *check_lease(const char *v)
{
    long long lease = strtoll(v, NULL, 10);
    return lease >= cfg.smtp_timeout + LEASE_SPARE
               ? NULL
               : "must be at least SMTP_TIMEOUT_SECONDS + 5, so that a mail is out before its "
                 "claim can be taken over";
}

// clang-format off
static const config_entry_t config_table[] = {
    {"PORT", CONFIG_INT, "8002", false, 0, 65535, "HTTP port", &cfg.port, NULL},
    {"THREADS", CONFIG_INT, "1", false, 1, 64, "event loop threads", &cfg.threads, NULL},
    {"WORKERS", CONFIG_INT, "4", false, 1, 256,
     "threads that handle deliveries, each with its own sidecar and SMTP connection",
     &cfg.workers, NULL},
    {"LOG_LEVEL", CONFIG_STRING, "info", false, 0, 0, "debug, info, warn or error", &cfg.log_level,
     service_check_log_level},
    {"MAX_BODY_BYTES", CONFIG_INT, "262144", false, 1024, 16777216, "request body cap in bytes",
     &cfg.max_body, NULL},
    {"SHUTDOWN_DRAIN_SECONDS", CONFIG_INT, "10", false, 0, 300,
     "how long shutdown waits for deliveries in flight", &cfg.drain_seconds, NULL},
    {"USE_DAPR", CONFIG_BOOL, "true", false, 0, 0, "must be true (the only mode of todo-email)",
     &cfg.use_dapr, check_use_dapr},
    DAPR_CONFIG_ENTRIES(&cfg.dapr),
    {"SMTP_URL", CONFIG_STRING, "smtp://127.0.0.1:25", false, 1, 1024,
     "smtp://host[:port] (STARTTLS when offered) or smtps://host[:port]", &cfg.smtp_url,
     smtp_url_check},
    {"SMTP_USER", CONFIG_SECRET, NULL, false, 0, 256, "SMTP AUTH user name (unset: no AUTH)",
     &cfg.smtp_user, NULL},
    {"SMTP_PASSWORD", CONFIG_SECRET, NULL, false, 0, 1024, "SMTP AUTH password",
     &cfg.smtp_password, NULL},
    {"SMTP_REQUIRE_TLS", CONFIG_BOOL, "false", false, 0, 0,
     "with smtp://: fail unless STARTTLS succeeds", &cfg.require_tls, NULL},
    {"SMTP_CA_FILE", CONFIG_STRING, NULL, false, 1, 4096,
     "CA bundle to verify the SMTP server with (unset: the system's)", &cfg.ca_file, NULL},
    {"SMTP_CONNECT_TIMEOUT_SECONDS", CONFIG_INT, "5", false, 1, 300,
     "time limit to connect to the SMTP server", &cfg.connect_timeout, NULL},
    {"SMTP_TIMEOUT_SECONDS", CONFIG_INT, "8", false, 1, 600,
     "time limit of one SMTP session (one mail); keep it below the sidecar's delivery timeout",
     &cfg.smtp_timeout, NULL},
    {"MAIL_FROM", CONFIG_STRING, NULL, true, 3, REMINDER_ADDRESS_MAX,
     "sender address (envelope and From)", &cfg.mail_from, check_address},
    {"MAIL_FROM_NAME", CONFIG_STRING, "Todo", false, 1, MAIL_FROM_NAME_MAX,
     "sender display name", &cfg.mail_from_name, check_from_name},
    {"CLAIM_LEASE_SECONDS", CONFIG_INT, "20", false, 2, 86400,
     "how long a claim on an event keeps other replicas from sending it; keep it below the "
     "sidecar's retry window", &cfg.lease,
     check_lease},
    {"DELIVERY_RECORD_TTL_SECONDS", CONFIG_INT, "2592000", false, 0, 2147483647,
     "how long delivery records are kept (0: for good)", &cfg.record_ttl, NULL},
    {"INSTANCE_NAME", CONFIG_STRING, NULL, false, 1, 128,
     "this process's name among the replicas, stable across restarts (unset: host:PORT)",
     &cfg.instance, check_instance},
};
// clang-format on

static atomic_bool sidecar_ready, stopping;
static _Atomic(http_server_t *) server;
static mailer_config_t mailer_cfg;

static int thread_init(int index, void **ctx, void *arg)
{
    mailer_t *m = mailer_new(&mailer_cfg);
    if (!m)
        return TODO_EINTERNAL;
    *ctx = m;
    return 0;
}

static void thread_dispose(void *ctx, void *arg)
{
    mailer_free(ctx);
}

static bool ready(void *ctx, void *arg, const char **why)
{
    if (!atomic_load(&sidecar_ready)) {
        *why = "waiting for the Dapr sidecar";
        return false;
    }
    return true;
}

static delivery_t on_reminder(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg)
{
    return mailer_handle(thread_ctx, ev);
}

static const subscription_t subscriptions[] = {
    {TOPIC, "email", on_reminder, NULL},
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
    char host[256], instance[300], boot[TODO_UUID_LEN];
    int code = config_main(SERVICE, config_table, nconfig, argc, argv);
    if (code >= 0)
        return code;
    service_log_init(SERVICE, cfg.log_level, config_table, nconfig);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("main", "libcurl cannot be initialised");
        return 1;
    }
    if (!cfg.instance) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(instance, sizeof(instance), "%s:%lld", host, (long long)cfg.port);
        for (char *c = instance; *c; c++)
            if (*c <= 0x20 || *c >= 0x7f)
                *c = '_'; /* as check_instance() wants it */
        cfg.instance = instance;
    }
    todo_uuid_v4(boot);
    log_info("main", "instance %s, run %s", cfg.instance, boot);

    mailer_cfg = (mailer_config_t){
        .dapr = {.port = (int)cfg.dapr.http_port, .api_token = cfg.dapr.api_token},
        .store = cfg.dapr.statestore,
        .smtp = {.url = cfg.smtp_url,
                 .user = cfg.smtp_user,
                 .password = cfg.smtp_password,
                 .from = cfg.mail_from,
                 .require_tls = cfg.require_tls,
                 .ca_file = cfg.ca_file,
                 .connect_timeout_ms = cfg.connect_timeout * 1000,
                 .timeout_ms = cfg.smtp_timeout * 1000},
        .from_name = cfg.mail_from_name,
        .lease_seconds = cfg.lease,
        .record_ttl = cfg.record_ttl,
        .instance = cfg.instance,
        .boot = boot,
    };

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
        curl_global_cleanup();
        return 1;
    }
    log_info("main", "listening on port %d", http_server_port(server));

    int rc = service_wait_sidecar(&mailer_cfg.dapr, &stopping);
    if (rc == 0) {
        atomic_store(&sidecar_ready, true);
        log_info("main", "ready");
    }
    http_server_join(server);
    http_server_free(server);
    subscriber_free(subs);
    curl_global_cleanup();
    log_info("main", "stopped");
    return rc == 0 || shutdown_requested() ? 0 : 1;
}
