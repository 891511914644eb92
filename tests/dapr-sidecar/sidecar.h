/* The sidecar double's shared state: its command line, the loaded resources, the brokers and
 * state stores built from them, and the readiness flags of the start-up order (DAPR-CONTRACT
 * §8.2). Each API module registers its routes on the sidecar's HTTP server. */
#ifndef SIDECAR_SIDECAR_H
#define SIDECAR_SIDECAR_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "resources.h"
#include "todo/http_server.h"

#define SIDECAR_MAX_PATHS         8
#define SIDECAR_MAX_COMPONENTS    16
#define SIDECAR_MAX_SUBSCRIPTIONS 32

typedef struct {
    char *app_id;
    int app_port; /* 0 = no app */
    char *app_channel_address;
    int http_port;
    int app_max_concurrency; /* -1 = unlimited */
    char *resources_paths[SIDECAR_MAX_PATHS];
    size_t nresources_paths;
    char *scheduler_database_url; /* jobs store shared by replicas; NULL = jobs API off */
    char *log_level;
    const char *app_api_token;  /* APP_API_TOKEN: sent to the app */
    const char *dapr_api_token; /* DAPR_API_TOKEN: required from the app */
} sidecar_options_t;

/* A pub/sub component with its broker. */
typedef struct {
    const res_component_t *component;
    broker_t *broker;
} sidecar_pubsub_t;

/* A state store component (state.postgresql). */
typedef struct {
    const res_component_t *component;
    char *connection_string;
    char *table;               /* tablePrefix + "state" */
    char *key_prefix;          /* "" for none, else prefix followed by "||" */
    struct state_store *store; /* the v2 store (state_store.h) */
} sidecar_statestore_t;

typedef struct sidecar {
    sidecar_options_t opt;
    resources_t res;
    sidecar_pubsub_t pubsubs[SIDECAR_MAX_COMPONENTS];
    size_t npubsubs;
    sidecar_statestore_t statestores[SIDECAR_MAX_COMPONENTS];
    size_t nstatestores;
    /* Effective subscriptions: programmatic ones from GET /dapr/subscribe win over declarative
     * ones for the same pubsub+topic (§2). */
    res_subscription_t *subscriptions[SIDECAR_MAX_SUBSCRIPTIONS];
    size_t nsubscriptions;
    /* The programmatic ones (owned; subscriptions_dispose) and the delivery targets handed to
     * the brokers (owned, delivery_target_t[]; they outlive the brokers' consumers). */
    res_subscription_t *programmatic;
    size_t nprogrammatic;
    void *delivery_targets;
    size_t ndelivery_targets;
    http_server_t *server;
    atomic_bool outbound_ready; /* components initialised: /v1.0/healthz/outbound 204 */
    atomic_bool app_ready;      /* app port answered and subscriptions loaded: /v1.0/healthz 204 */
} sidecar_t;

/* Lookups (borrowed; NULL when absent). */
sidecar_pubsub_t *sidecar_pubsub(sidecar_t *s, const char *name);
sidecar_statestore_t *sidecar_statestore(sidecar_t *s, const char *name);

/* The Dapr error bodies of DAPR-CONTRACT §0.1: legacy {errorCode, message} when reason is NULL,
 * else the rich form with an ErrorInfo detail (and a ResourceInfo when resource_type is given). */
int sidecar_error(http_req_t *req, int status, const char *error_code, const char *reason,
                  const char *resource_type, const char *resource_name, const char *message);
/* v as Go's encoding/json writes it (compact, '<' '>' '&' U+2028 U+2029 escaped; new, *len);
 * the key order is v's own, so build objects in the Go struct's field order, or sorted for a Go
 * map. sidecar_respond_json answers with it as application/json. */
char *sidecar_json_dump(const json_t *v, size_t *len);
int sidecar_respond_json(http_req_t *req, int status, const json_t *v);
/* Checks dapr-api-token against DAPR_API_TOKEN when set (§8.5); false after answering 401
 * "invalid api token\n" as text/plain. */
bool sidecar_authorized(sidecar_t *s, http_req_t *req);

/* Route registration of each API module. */
int publish_api_register(sidecar_t *s) TODO_WUR;
int state_api_register(sidecar_t *s) TODO_WUR;
/* Builds s->statestores from the loaded components of type state.postgresql (connects, creates
 * the v2 tables, starts their clean-up); an error (logged) when one cannot be set up, as daprd
 * fails on a component that does not initialise. state_stores_dispose frees them. */
int state_stores_init(sidecar_t *s) TODO_WUR;
void state_stores_dispose(sidecar_t *s);
int jobs_api_register(sidecar_t *s) TODO_WUR;
int meta_api_register(sidecar_t *s) TODO_WUR;
/* Frees the extended metadata that PUT /v1.0/metadata/{key} stored. */
void meta_api_dispose(void);

#endif
