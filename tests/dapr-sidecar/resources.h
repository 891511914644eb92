/* The Dapr resources a sidecar loads from its --resources-path folders: Components, Subscriptions
 * (v1alpha1 and v2alpha1) and Resiliencies, read with libyaml; other kinds are skipped with a log
 * line. Secret references (secretKeyRef + auth.secretStore) are resolved against the loaded
 * secret stores (secretstores.local.env, secretstores.local.file). DAPR-CONTRACT §2.2, §4, §9.2. */
#ifndef SIDECAR_RESOURCES_H
#define SIDECAR_RESOURCES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "todo/error.h"

#define RES_MAX_META  64
#define RES_MAX_RULES 16

typedef struct {
    char *name;
    char *value; /* resolved (secrets already looked up) */
} res_meta_t;

typedef struct {
    char *name;    /* metadata.name */
    char *type;    /* spec.type, e.g. "pubsub.kafka" */
    char *version; /* spec.version */
    res_meta_t meta[RES_MAX_META];
    size_t nmeta;
    char **scopes; /* app-ids allowed to load it; NULL/0 = all */
    size_t nscopes;
    char *secret_store; /* auth.secretStore, or NULL */
    char *file;         /* the file it was read from */
} res_component_t;

typedef struct {
    char *match; /* "" = matches everything; else `event.type == "…"` */
    char *path;
} res_rule_t;

/* One subscription, declarative or programmatic (same shape). */
typedef struct {
    char *name; /* declarative: metadata.name; programmatic: "" */
    char *pubsubname;
    char *topic;
    res_rule_t rules[RES_MAX_RULES];
    size_t nrules;
    char *default_path; /* routes.default, or route when routes.default is empty; may be NULL */
    char *dead_letter_topic; /* may be NULL */
    res_meta_t meta[RES_MAX_META];
    size_t nmeta;
    bool programmatic;
    /* bulkSubscribe (§2.3); the maxima are 0 when not given. */
    bool bulk_enabled;
    int64_t bulk_max_messages;
    int64_t bulk_max_await_ms;
} res_subscription_t;

typedef enum { RES_RETRY_CONSTANT, RES_RETRY_EXPONENTIAL } res_retry_policy_t;

typedef struct {
    char *name;
    res_retry_policy_t policy;
    int64_t duration_ms;     /* constant interval (default 5 s) */
    int64_t max_interval_ms; /* exponential cap (default 60 s) */
    int64_t max_retries;     /* -1 unlimited (default), 0 none */
    char *http_status_codes; /* matching.httpStatusCodes, e.g. "500-599,429", or NULL */
} res_retry_t;

typedef struct {
    char *name;
    int64_t ms;
} res_timeout_t;

/* A circuit breaker policy: parsed and kept, not applied by the double. */
typedef struct {
    char *name;
    int64_t max_requests; /* default 1 */
    int64_t interval_ms;  /* default 0 */
    int64_t timeout_ms;   /* default 60 s */
    char *trip;           /* CEL, or NULL */
} res_circuit_breaker_t;

/* The inbound/outbound policy names of one component target. */
typedef struct {
    char *component;
    char *inbound_retry, *inbound_timeout, *inbound_circuit_breaker;
    char *outbound_retry, *outbound_timeout, *outbound_circuit_breaker;
} res_component_target_t;

typedef struct {
    char *name;
    char **scopes;
    size_t nscopes;
    res_retry_t *retries;
    size_t nretries;
    res_timeout_t *timeouts;
    size_t ntimeouts;
    res_circuit_breaker_t *circuit_breakers;
    size_t ncircuit_breakers;
    res_component_target_t *targets;
    size_t ntargets;
} res_resiliency_t;

typedef struct {
    res_component_t *components;
    size_t ncomponents;
    res_subscription_t *subscriptions; /* declarative ones, scoped to this app */
    size_t nsubscriptions;
    res_resiliency_t *resiliencies;
    size_t nresiliencies;
} resources_t;

/* Loads every *.yaml|*.yml of the folders (each file: one or more YAML documents), keeping what is
 * scoped to app_id. Unknown component types and malformed resources → error with a clear message
 * in *err (new). */
int resources_load(const char *const *paths, size_t npaths, const char *app_id, resources_t *out,
                   char **err) TODO_WUR;
void resources_dispose(resources_t *r);

/* Lookups (borrowed; NULL when absent). */
const res_component_t *resources_component(const resources_t *r, const char *name);
/* The value of metadata key (an exact match first, else case-insensitive, as Dapr decodes). */
const char *res_component_meta(const res_component_t *c, const char *key);
/* The inbound retry/timeout of a pub/sub component per DAPR-CONTRACT §4 (named target, else the
 * Default… templates); NULL = none (one attempt / no per-attempt deadline). */
const res_retry_t *resources_inbound_retry(const resources_t *r, const char *component);
const res_timeout_t *resources_inbound_timeout(const resources_t *r, const char *component);

/* A Go duration ("1h2m3.5s", "500ms", "-1.5us", "0") → nanoseconds, as Go's time.ParseDuration:
 * units ns, us (µs, μs), ms, s, m, h; TODO_EBAD_REQUEST when malformed or out of range. */
int res_duration_parse(const char *s, int64_t *out_ns) TODO_WUR;
/* A bare integer of milliseconds, else a Go duration → milliseconds (truncated). */
int res_duration_ms(const char *s, int64_t *out_ms) TODO_WUR;

#endif
