/* A client of the Dapr sidecar's HTTP API over libcurl (DAPR-CONTRACT.md): publish (single and
 * bulk), state (get, save, delete, transaction, with ETags), jobs (schedule, get, delete) and the
 * outbound health check. One client per thread: it keeps its connection to the sidecar open.
 * Every call has a timeout; a call that could not reach the sidecar is retried a bounded number
 * of times with backoff. */
#ifndef TODO_DAPR_H
#define TODO_DAPR_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "todo/config.h"
#include "todo/error.h"
#include "todo/json.h"

#define DAPR_ETAG_MAX       128
#define DAPR_ERROR_CODE_MAX 64

/* The sidecar settings every service reads from its environment (see DAPR_CONFIG_ENTRIES). */
typedef struct {
    int64_t http_port;      /* DAPR_HTTP_PORT, 3500 */
    const char *api_token;  /* DAPR_API_TOKEN: sent as dapr-api-token (NULL = none) */
    const char *app_token;  /* APP_API_TOKEN: required from the sidecar on app routes */
    const char *pubsub;     /* PUBSUB_NAME, "pubsub" */
    const char *statestore; /* STATESTORE_NAME, "statestore" */
} dapr_env_t;

/* Config table entries (config.h) filling the dapr_env_t that env points to. */
// clang-format off
#define DAPR_CONFIG_ENTRIES(env)                                                                   \
    {"DAPR_HTTP_PORT", CONFIG_INT, "3500", false, 1, 65535, "the Dapr sidecar's HTTP port",        \
     &(env)->http_port, NULL},                                                                     \
    {"DAPR_API_TOKEN", CONFIG_SECRET, NULL, false, 0, 4096,                                        \
     "token sent to the sidecar as dapr-api-token", &(env)->api_token, NULL},                      \
    {"APP_API_TOKEN", CONFIG_SECRET, NULL, false, 0, 4096,                                         \
     "token the sidecar must send on /dapr/subscribe, /events/... and /job/...", &(env)->app_token,    \
     NULL},                                                                                        \
    {"PUBSUB_NAME", CONFIG_STRING, "pubsub", false, 1, 128, "the pub/sub component's name",        \
     &(env)->pubsub, NULL},                                                                        \
    {"STATESTORE_NAME", CONFIG_STRING, "statestore", false, 1, 128,                                \
     "the state store component's name", &(env)->statestore, NULL}
// clang-format on

typedef struct dapr dapr_t;

typedef struct {
    const char *host;      /* default "127.0.0.1" */
    int port;              /* the sidecar's HTTP port */
    const char *api_token; /* NULL or "" = none */
    int timeout_ms;        /* per attempt; default 5000 */
    int retries;           /* extra attempts when the sidecar cannot be reached; default 3 */
} dapr_config_t;

/* new (strings copied); caller frees with dapr_free. */
dapr_t *dapr_new(const dapr_config_t *cfg);
void dapr_free(dapr_t *d);

/* The last call's HTTP status (0 when nothing was answered) and the errorCode of its error body
 * ("" when none), both borrowed until the next call. */
long dapr_status(const dapr_t *d);
const char *dapr_error_code(const dapr_t *d);

/* Results: 0 on the documented success; TODO_EUNAVAILABLE when the sidecar could not be reached,
 * timed out or answered 5xx; TODO_ENOT_FOUND for 404; TODO_ECONFLICT for 409; TODO_EFORBIDDEN for
 * 401/403; TODO_EBAD_REQUEST for another 4xx. */

/* Publishes one CloudEvent (JSON text, passed through as application/cloudevents+json, §1.3) to
 * topic with metadata.partitionKey = key (when not NULL) and the traceparent header (when not
 * NULL). */
int dapr_publish(dapr_t *d, const char *pubsub, const char *topic, const char *event, size_t len,
                 const char *key, const char *traceparent) TODO_WUR;

/* One entry of a bulk publish: a CloudEvent's JSON text and its partition key (may be NULL). */
typedef struct {
    const char *event;
    size_t len;
    const char *key;
} dapr_bulk_entry_t;

/* Publishes n entries in one request (§1.4). ok[i] tells which were accepted; returns 0 when all
 * were. A 500 naming failedEntries fails only those. */
int dapr_publish_bulk(dapr_t *d, const char *pubsub, const char *topic,
                      const dapr_bulk_entry_t *entries, size_t n, bool *ok) TODO_WUR;

/* The value (new, raw JSON text) and ETag of key; TODO_ENOT_FOUND when absent (204, §5.1). */
int dapr_state_get(dapr_t *d, const char *store, const char *key, char **value,
                   char etag[DAPR_ETAG_MAX]) TODO_WUR;
/* Saves value (JSON text) under key. etag NULL = none; first_write asks for first-write
 * concurrency (with no etag: insert only, §5.3); ttl_seconds > 0 sets metadata.ttlInSeconds.
 * TODO_ECONFLICT on an ETag mismatch (409). */
int dapr_state_save(dapr_t *d, const char *store, const char *key, const char *value,
                    const char *etag, bool first_write, int ttl_seconds) TODO_WUR;
/* Deletes key (If-Match etag when not NULL); absent keys are fine (204). */
int dapr_state_delete(dapr_t *d, const char *store, const char *key, const char *etag) TODO_WUR;
/* Runs operations (a JSON array of {"operation","request"}, borrowed) in one transaction. */
int dapr_state_transaction(dapr_t *d, const char *store, const json_t *operations) TODO_WUR;

/* Schedules the job name with body job (an object: schedule, dueTime, repeats, ttl, data,
 * overwrite, failurePolicy; borrowed) on /v1.0-alpha1/jobs (§6.1). TODO_ECONFLICT when it exists
 * and overwrite is not true. */
int dapr_job_schedule(dapr_t *d, const char *name, const json_t *job) TODO_WUR;
/* The job's JSON (new). A missing job is a 500 from daprd (§6.1): TODO_EUNAVAILABLE with
 * dapr_error_code "DAPR_SCHEDULER_GET_JOB". */
int dapr_job_get(dapr_t *d, const char *name, char **json) TODO_WUR;
int dapr_job_delete(dapr_t *d, const char *name) TODO_WUR;

/* One GET /v1.0/healthz/outbound: 0 when 204. */
int dapr_outbound_healthy(dapr_t *d) TODO_WUR;
/* Polls the outbound health with backoff (100 ms doubling to 2 s) until it is 204 (0), *stop
 * becomes true or timeout_ms passes (TODO_EUNAVAILABLE; timeout_ms < 0 waits forever). */
int dapr_wait_outbound(dapr_t *d, int64_t timeout_ms, const atomic_bool *stop) TODO_WUR;

#endif
