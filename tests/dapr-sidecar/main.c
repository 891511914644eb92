/* dapr-sidecar: a double of daprd for tests and local runs. Reads daprd's flags, loads the
 * resources, builds the brokers and state stores, serves Dapr's HTTP API, then follows the
 * start-up order of DAPR-CONTRACT §8.2 towards the app, and shuts down in order on SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_channel.h"
#include "delivery.h"
#include "scheduler.h"
#include "sidecar.h"
#include "subscriptions.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/shutdown.h"

#define RUNTIME_VERSION   "1.18.3"
#define SERVER_THREADS    4
#define MAX_BODY          (4u << 20) /* daprd's default --max-body-size 4Mi (§0.2) */
#define DRAIN_MS          5000
#define PROBE_INTERVAL_MS 100
#define APP_CALL_MS       60000
#define INIT_RETRIES      3   /* DaprBuiltInInitializationRetries (§2.1) */
#define INIT_BACKOFF_MS   500 /* first interval; × 1.5 each retry, at most 10 s */
#define INIT_BACKOFF_MAX  10000

static const char usage_text[] =
    "Usage: dapr-sidecar [flags]\n"
    "A double of the Dapr sidecar (daprd " RUNTIME_VERSION ") for tests and local runs.\n\n"
    "  --app-id ID                  the app's id\n"
    "  --app-port PORT              the app's HTTP port (0 = no app)\n"
    "  --app-channel-address ADDR   where the app listens (default 127.0.0.1)\n"
    "  --dapr-http-port PORT        the sidecar's HTTP port (default 3500)\n"
    "  --resources-path DIR         a folder of Component/Subscription/Resiliency YAML "
    "(repeatable)\n"
    "  --app-max-concurrency N      deliveries in flight to the app (default -1 = unlimited)\n"
    "  --log-level LEVEL            debug, info, warn, error or fatal (default info)\n"
    "  --scheduler-database-url URL PostgreSQL of the jobs store shared by replicas\n"
    "  --help, --version\n\n"
    "Environment: APP_API_TOKEN (sent to the app), DAPR_API_TOKEN (required from the app).\n"
    "Flags may be written -flag, --flag, -flag=value or --flag=value, as daprd takes them.\n";

/* What the start-up thread and main share. */
typedef struct {
    sidecar_t s;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;                /* guarded by mu */
    atomic_bool cancel_calls; /* abandons the start-up thread's calls to the app */
    pthread_t app_thread;
    bool app_thread_started;
} runtime_t;

static runtime_t rt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void on_signal(void *arg)
{
    runtime_t *r = arg;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    atomic_store(&r->cancel_calls, true);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Waits ms, or less when stopping; true when stopping. */
static bool wait_ms(runtime_t *r, int64_t ms)
{
    struct timespec ts;
    bool stop;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->stop && pthread_cond_timedwait(&r->cond, &r->mu, &ts) != ETIMEDOUT) {
    }
    stop = r->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* ---- command line ---- */

static bool parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

enum {
    OPT_APP_ID = 1,
    OPT_APP_PORT,
    OPT_APP_CHANNEL_ADDRESS,
    OPT_HTTP_PORT,
    OPT_RESOURCES_PATH,
    OPT_MAX_CONCURRENCY,
    OPT_LOG_LEVEL,
    OPT_SCHEDULER_DB,
    OPT_HELP,
    OPT_VERSION,
};

/* 0 = run, 1 = done (help/version printed), 2 = bad arguments (message printed). */
static int parse_args(int argc, char **argv, sidecar_options_t *o, log_level_t *level)
{
    static const struct option opts[] = {
        {"app-id", required_argument, NULL, OPT_APP_ID},
        {"app-port", required_argument, NULL, OPT_APP_PORT},
        {"app-channel-address", required_argument, NULL, OPT_APP_CHANNEL_ADDRESS},
        {"dapr-http-port", required_argument, NULL, OPT_HTTP_PORT},
        {"resources-path", required_argument, NULL, OPT_RESOURCES_PATH},
        {"app-max-concurrency", required_argument, NULL, OPT_MAX_CONCURRENCY},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"scheduler-database-url", required_argument, NULL, OPT_SCHEDULER_DB},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->app_id = "";
    o->app_channel_address = "127.0.0.1";
    o->http_port = 3500;
    o->app_max_concurrency = -1;
    o->log_level = "info";
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case OPT_APP_ID:
            o->app_id = optarg;
            break;
        case OPT_APP_PORT:
            if (!parse_int(optarg, 0, 65535, &o->app_port)) {
                fprintf(stderr,
                        "dapr-sidecar: invalid value \"%s\" for --app-port: a port 0-65535\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_APP_CHANNEL_ADDRESS:
            if (!*optarg) {
                fprintf(stderr, "dapr-sidecar: --app-channel-address must not be empty\n");
                return 2;
            }
            o->app_channel_address = optarg;
            break;
        case OPT_HTTP_PORT:
            if (!parse_int(optarg, 0, 65535, &o->http_port)) {
                fprintf(stderr,
                        "dapr-sidecar: invalid value \"%s\" for --dapr-http-port: a port 0-65535\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_RESOURCES_PATH:
            if (o->nresources_paths >= SIDECAR_MAX_PATHS) {
                fprintf(stderr, "dapr-sidecar: at most %d --resources-path flags\n",
                        SIDECAR_MAX_PATHS);
                return 2;
            }
            o->resources_paths[o->nresources_paths++] = optarg;
            break;
        case OPT_MAX_CONCURRENCY:
            /* As daprd, only a positive value limits (-1 and 0 do not). */
            if (!parse_int(optarg, -1, INT_MAX, &o->app_max_concurrency)) {
                fprintf(stderr,
                        "dapr-sidecar: invalid value \"%s\" for --app-max-concurrency: -1 "
                        "(unlimited) or a number of requests\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_LOG_LEVEL:
            o->log_level = optarg;
            if (strcmp(optarg, "fatal") == 0) {
                *level = LOG_LEVEL_ERROR;
            } else if (log_level_parse(optarg, level) != 0) {
                fprintf(stderr,
                        "dapr-sidecar: invalid value \"%s\" for --log-level: debug, info, warn, "
                        "error or fatal\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_SCHEDULER_DB:
            o->scheduler_database_url = optarg;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return 1;
        case OPT_VERSION:
            puts(RUNTIME_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "dapr-sidecar: flag needs an argument: %s\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return 2;
        default:
            fprintf(stderr, "dapr-sidecar: flag provided but not defined: %s\n", argv[optind - 1]);
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dapr-sidecar: unexpected argument: %s\n", argv[optind]);
        fputs(usage_text, stderr);
        return 2;
    }
    return 0;
}

/* ---- start-up towards the app (§8.2) ---- */

/* GET /dapr/subscribe with the retries of transport errors and the status semantics of §2.1;
 * *list is new. */
static void fetch_subscriptions(runtime_t *r, res_subscription_t **list, size_t *n)
{
    sidecar_t *s = &r->s;
    broker_header_t hdr[2] = {{"dapr-app-id", s->opt.app_id}, {"Content-Type", "application/json"}};
    app_response_t resp;
    int64_t backoff = INIT_BACKOFF_MS;
    char *err = NULL;

    *list = NULL;
    *n = 0;
    memset(&resp, 0, sizeof(resp));
    for (int attempt = 0;; attempt++) {
        if (app_channel_call_cancellable(s, "GET", "/dapr/subscribe", hdr, 2, NULL, 0, APP_CALL_MS,
                                         &r->cancel_calls, &resp) != 0) {
            log_error("subscriptions", "cannot call GET /dapr/subscribe");
            return;
        }
        if (!resp.transport_error)
            break;
        app_response_dispose(&resp);
        if (attempt >= INIT_RETRIES) {
            log_error("subscriptions",
                      "error getting topic list from app: GET /dapr/subscribe "
                      "failed %d times",
                      attempt + 1);
            return;
        }
        if (wait_ms(r, backoff))
            return;
        backoff = backoff * 3 / 2 > INIT_BACKOFF_MAX ? INIT_BACKOFF_MAX : backoff * 3 / 2;
    }
    /* §2.1: exactly 200 is parsed; 404 means none; any other status (204 too) is an error
     * that leaves the app without programmatic subscriptions. */
    if (resp.status == 200) {
        if (subscriptions_parse(resp.body, resp.len, list, n, &err) != 0) {
            log_error("subscriptions", "error getting topics from app: %s", err);
            free(err);
        }
    } else if (resp.status == 404) {
        log_debug("subscriptions", "user app did not subscribe to any topic");
    } else {
        log_error("subscriptions", "app returned http status code %d from subscription endpoint",
                  resp.status);
    }
    app_response_dispose(&resp);
}

/* broker_subscribe for each effective subscription, then broker_start for each pub/sub. */
static void start_subscriptions(sidecar_t *s)
{
    delivery_target_t *targets =
        xcalloc(s->nsubscriptions ? s->nsubscriptions : 1, sizeof(*targets));
    s->delivery_targets = targets;
    s->ndelivery_targets = s->nsubscriptions;
    for (size_t i = 0; i < s->nsubscriptions; i++) {
        const res_subscription_t *sub = s->subscriptions[i];
        sidecar_pubsub_t *ps = sidecar_pubsub(s, sub->pubsubname);
        if (!ps) {
            log_warn("subscriptions", "topic %s: pubsub %s is not loaded; not subscribing",
                     sub->topic, sub->pubsubname);
            continue;
        }
        if (!subscriptions_topic_allowed(ps->component, s->opt.app_id, sub->topic)) {
            log_warn("subscriptions", "subscribing to topic=%s on pubsub=%s is not allowed",
                     sub->topic, sub->pubsubname);
            continue;
        }
        targets[i].sidecar = s;
        targets[i].pubsub = ps;
        targets[i].subscription = sub;
        if (broker_subscribe(ps->broker, sub->topic, delivery_handle, &targets[i]) != 0)
            log_error("subscriptions", "cannot subscribe to topic %s on pubsub %s", sub->topic,
                      sub->pubsubname);
        else
            log_info("subscriptions", "subscribed to topic %s on pubsub %s (%s)", sub->topic,
                     sub->pubsubname, sub->programmatic ? "programmatic" : "declarative");
    }
    /* Each component joins its consumer group once, with all its topics. */
    for (size_t i = 0; i < s->npubsubs; i++)
        if (broker_start(s->pubsubs[i].broker) != 0)
            log_error("subscriptions", "pubsub %s cannot start consuming",
                      s->pubsubs[i].component->name);
}

static void *app_start_main(void *arg)
{
    runtime_t *r = arg;
    sidecar_t *s = &r->s;
    broker_header_t hdr[2] = {{"dapr-app-id", s->opt.app_id}, {"Content-Type", "application/json"}};
    app_response_t resp;
    res_subscription_t *list = NULL;
    size_t n = 0;
    json_t *cfg = NULL;

    /* §8.2: poll a TCP connection to the app port every 100 ms. */
    while (!app_channel_port_open(s)) {
        if (wait_ms(r, PROBE_INTERVAL_MS))
            goto out;
    }
    log_info("sidecar", "app port %d is open", s->opt.app_port);
    /* GET /dapr/config: a non-200 reply is ignored; a 200 must be JSON. */
    if (app_channel_call_cancellable(s, "GET", "/dapr/config", hdr, 2, NULL, 0, APP_CALL_MS,
                                     &r->cancel_calls, &resp) == 0) {
        if (resp.status == 200 && json_parse(resp.body, resp.len, false, &cfg) != 0)
            log_warn("sidecar", "GET /dapr/config answered 200 with a body that is not JSON");
        json_decref(cfg);
        app_response_dispose(&resp);
    }
    if (wait_ms(r, 0))
        goto out;
    /* §2.1: /dapr/subscribe only when some pub/sub component is loaded. */
    if (s->npubsubs > 0)
        fetch_subscriptions(r, &list, &n);
    if (wait_ms(r, 0)) {
        subscriptions_free_list(list, n);
        goto out;
    }
    subscriptions_merge(s, list, n);
    start_subscriptions(s);
    atomic_store(&s->app_ready, true);
    log_info("sidecar", "app channel ready: %zu subscriptions; /v1.0/healthz is 204",
             s->nsubscriptions);
out:
    app_channel_thread_done();
    return NULL;
}

/* ---- life cycle ---- */

static int build_pubsubs(sidecar_t *s)
{
    for (size_t i = 0; i < s->res.ncomponents; i++) {
        const res_component_t *c = &s->res.components[i];
        char *err = NULL;
        broker_t *b;
        if (strncmp(c->type, "pubsub.", 7) != 0)
            continue;
        if (s->npubsubs >= SIDECAR_MAX_COMPONENTS) {
            log_error("sidecar", "too many pub/sub components (at most %d)",
                      SIDECAR_MAX_COMPONENTS);
            return TODO_EBAD_REQUEST;
        }
        b = broker_new(c, s->opt.app_id, &err);
        if (!b) {
            log_error("sidecar", "pub/sub %s cannot be initialised: %s", c->name,
                      err ? err : "unknown error");
            free(err);
            return TODO_EBAD_REQUEST;
        }
        s->pubsubs[s->npubsubs].component = c;
        s->pubsubs[s->npubsubs].broker = b;
        s->npubsubs++;
        log_info("sidecar", "pub/sub %s (%s) ready", c->name, c->type);
    }
    return 0;
}

int main(int argc, char **argv)
{
    sidecar_t *s = &rt.s;
    log_level_t level = LOG_LEVEL_INFO;
    scheduler_t *sch = NULL;
    char *err = NULL;
    int rc, exit_code = 1;

    rc = parse_args(argc, argv, &s->opt, &level);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    log_init("dapr-sidecar", level);
    s->opt.app_api_token = getenv("APP_API_TOKEN");
    s->opt.dapr_api_token = getenv("DAPR_API_TOKEN");
    atomic_init(&s->outbound_ready, false);
    atomic_init(&s->app_ready, false);
    if (shutdown_start(on_signal, &rt) != 0) {
        log_error("sidecar", "cannot start the signal thread");
        return 1;
    }
    log_info("sidecar",
             "starting: app-id %s, app port %d at %s, HTTP port %d, %zu resources paths, "
             "app max concurrency %d, app token %s, API token %s",
             s->opt.app_id, s->opt.app_port, s->opt.app_channel_address, s->opt.http_port,
             s->opt.nresources_paths, s->opt.app_max_concurrency,
             s->opt.app_api_token && *s->opt.app_api_token ? "set" : "unset",
             s->opt.dapr_api_token && *s->opt.dapr_api_token ? "set" : "unset");

    /* §8.2 order: resources, components, the HTTP server, then the app. */
    if (resources_load((const char *const *)s->opt.resources_paths, s->opt.nresources_paths,
                       s->opt.app_id, &s->res, &err) != 0) {
        log_error("sidecar", "cannot load the resources: %s", err ? err : "unknown error");
        free(err);
        goto out;
    }
    if (build_pubsubs(s) != 0 || state_stores_init(s) != 0)
        goto out;
    http_server_config_t cfg = {
        .service = "dapr-sidecar",
        .host = "127.0.0.1",
        .port = s->opt.http_port,
        .threads = SERVER_THREADS,
        .max_body = MAX_BODY,
        .drain_ms = DRAIN_MS,
        .no_builtin_routes = true,
    };
    s->server = http_server_new(&cfg);
    if (!s->server)
        goto out;
    if (meta_api_register(s) != 0 || publish_api_register(s) != 0 || state_api_register(s) != 0 ||
        jobs_api_register(s) != 0) {
        log_error("sidecar", "cannot register the API routes");
        goto out;
    }
    if (http_server_start(s->server) != 0)
        goto out;
    atomic_store(&s->outbound_ready, true);
    log_info("sidecar", "dapr-sidecar %s listening on 127.0.0.1 port %d", RUNTIME_VERSION,
             http_server_port(s->server));

    if (s->opt.app_port > 0) {
        if (scheduler_start(s, &sch) != 0)
            goto out;
        if (pthread_create(&rt.app_thread, NULL, app_start_main, &rt) != 0) {
            log_error("sidecar", "cannot start the app start-up thread");
            goto out;
        }
        rt.app_thread_started = true;
    } else {
        /* No app: no subscriptions and no job triggers; ready once the server is up. */
        atomic_store(&s->app_ready, true);
    }

    pthread_mutex_lock(&rt.mu);
    while (!rt.stop)
        pthread_cond_wait(&rt.cond, &rt.mu);
    pthread_mutex_unlock(&rt.mu);
    log_info("sidecar", "shutting down");
    exit_code = 0;
out:
    if (exit_code != 0)
        on_signal(&rt); /* stops the start-up thread */
    if (rt.app_thread_started)
        pthread_join(rt.app_thread, NULL);
    /* Stop consuming first (in-flight deliveries finish), then the job triggers, then the API. */
    for (size_t i = 0; i < s->npubsubs; i++)
        broker_stop(s->pubsubs[i].broker);
    scheduler_stop(sch);
    if (s->server) {
        http_server_stop(s->server);
        http_server_join(s->server);
    }
    for (size_t i = 0; i < s->npubsubs; i++)
        broker_free(s->pubsubs[i].broker);
    s->npubsubs = 0;
    http_server_free(s->server);
    state_stores_dispose(s);
    subscriptions_dispose(s);
    free(s->delivery_targets);
    resources_dispose(&s->res);
    meta_api_dispose();
    app_channel_thread_done();
    log_info("sidecar", "stopped");
    return exit_code;
}
