/* The state.postgresql (v2 layout) state store of the sidecar double, independent of HTTP: its
 * tables, the get/set/delete/transaction semantics of components-contrib's v2 store, expiry and
 * the background clean-up, plus the pure helpers of the State API (key prefixes, TTL and ETag
 * parsing, Go-compatible JSON re-marshalling). DAPR-CONTRACT §5.3–§5.5. */
#ifndef SIDECAR_STATE_STORE_H
#define SIDECAR_STATE_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "todo/buf.h"
#include "todo/error.h"
#include "todo/json.h"

#define STATE_ERR_MAX    1024
#define STATE_ETAG_LEN   37 /* a UUID's 36 characters and the NUL */
#define STATE_EXPIRE_LEN 32 /* "YYYY-MM-DDTHH:MM:SSZ" and room */
#define STATE_SEPARATOR  "||"

typedef struct state_store state_store_t;

/* The component metadata a v2 store reads (strings borrowed for state_store_new only). */
typedef struct {
    const char *connection_string;
    const char *table_prefix;    /* tablePrefix, default "" → table "state" */
    const char *metadata_table;  /* metadataTableName, default "dapr_metadata" */
    int64_t timeout_ms;          /* timeout, default 20 s, at least 1 s */
    int64_t cleanup_interval_ms; /* cleanupInterval, default 1 h; 0 = no clean-up */
} state_store_config_t;

/* Reads tablePrefix, metadataTableName, timeout (alias timeoutInSeconds) and cleanupInterval
 * (alias cleanupIntervalInSeconds) from name/value pairs (case-insensitive names), each duration
 * a Go duration ("20s", "1h30m") or whole seconds, like dapr/kit's metadata decoder. The
 * connection string comes from connectionString. Strings stay borrowed from names/values.
 * TODO_EBAD_REQUEST with a message in err when a value is malformed. */
int state_store_config_parse(const char *const *names, const char *const *values, size_t n,
                             state_store_config_t *cfg, char err[STATE_ERR_MAX]) TODO_WUR;

/* new: a store (state_store_free). Connects, creates the metadata table and the state table as
 * v2's migration does, and starts the clean-up thread when cleanup_interval_ms > 0.
 * TODO_EBAD_REQUEST (bad table names) or TODO_EUNAVAILABLE (database unreachable) with err. */
int state_store_new(const state_store_config_t *cfg, state_store_t **out,
                    char err[STATE_ERR_MAX]) TODO_WUR;
/* Stops the clean-up thread and closes the connections; NULL is a no-op. */
void state_store_free(state_store_t *s);
/* The state table's name (borrowed, valid for the store's life). */
const char *state_store_table(const state_store_t *s);
/* Runs the clean-up once now (as the background thread does every interval): deletes expired
 * rows when the last clean-up recorded in the metadata table is older than the interval.
 * *deleted gets the count (-1 when skipped because another clean-up ran too recently, or when
 * the clean-up is disabled). */
int state_store_cleanup(state_store_t *s, int64_t *deleted) TODO_WUR;

/* Results: 0, TODO_ECONFLICT for an ETag mismatch (including an ETag that is not a UUID), or
 * another error (the API answers 500) with a message in err. */

/* One item read from the store. */
typedef struct {
    char *key; /* stored key (new) */
    bool found;
    char *value; /* value bytes (new), NULL when not found */
    size_t value_len;
    char etag[STATE_ETAG_LEN];
    char expires[STATE_EXPIRE_LEN]; /* ttlExpireTime (RFC 3339, UTC), "" when none */
} state_item_t;

void state_item_dispose(state_item_t *it);
void state_items_free(state_item_t *items, size_t n);

/* Reads key; an expired row is absent (found false). */
int state_store_get(state_store_t *s, const char *key, state_item_t *out,
                    char err[STATE_ERR_MAX]) TODO_WUR;
/* Reads keys in one query like v2's BulkGet: the rows found first (database order), then one
 * item per missing requested key in request order. *out (new, state_items_free) has *nout ≤ n
 * entries. */
int state_store_bulk_get(state_store_t *s, const char *const *keys, size_t n, state_item_t **out,
                         size_t *nout, char err[STATE_ERR_MAX]) TODO_WUR;

/* A save (upsert) request (all borrowed). */
typedef struct {
    const char *key;
    const char *value; /* bytes to store */
    size_t value_len;
    const char *etag;        /* NULL or "" = none */
    const char *concurrency; /* NULL, "", "first-write", "last-write" */
    const char *consistency; /* NULL, "", "strong", "eventual" */
    const char *ttl;         /* metadata ttlInSeconds, NULL when absent */
} state_set_t;

/* A delete request (all borrowed). */
typedef struct {
    const char *key;
    const char *etag; /* NULL or "" = none */
} state_del_t;

typedef struct {
    bool is_delete;
    state_set_t set;
    state_del_t del;
} state_op_t;

int state_store_set(state_store_t *s, const state_set_t *req, char err[STATE_ERR_MAX]) TODO_WUR;
int state_store_delete(state_store_t *s, const state_del_t *req, char err[STATE_ERR_MAX]) TODO_WUR;
/* All operations in one database transaction (one operation: none needed); the first failure
 * rolls everything back and is returned. */
int state_store_transact(state_store_t *s, const state_op_t *ops, size_t n,
                         char err[STATE_ERR_MAX]) TODO_WUR;

/* ---- Pure helpers ---- */

/* The key prefix of DAPR-CONTRACT §5.4 for a store: strategy is the component's keyPrefix value
 * (NULL/"" = appid; compared lower-cased): "appid" → "<app_id>||" ("" when app_id is empty),
 * "name" → "<store>||", "namespace" → "<ns>.<app_id>||" (appid's when ns is empty), "none" → "",
 * anything else → "<lower-cased value>||". *out is new. TODO_EBAD_REQUEST with err when the value
 * contains "||". */
int state_key_prefix(const char *strategy, const char *store, const char *app_id, const char *ns,
                     char **out, char err[STATE_ERR_MAX]) TODO_WUR;
/* True when key may be used (no "||"); else fills err with daprd's message. */
bool state_key_legal(const char *key, char err[STATE_ERR_MAX]);
/* The key the app sees for a stored key (daprd's GetOriginalStateKey): the part after the first
 * "||" up to the next one, or the whole key without "||". *out is new. */
char *state_original_key(const char *stored);
/* ttlInSeconds (cc state/utils/ttl.go): NULL or "" → *has = false; an integer -1 … 2^31-1 →
 * *seconds; else TODO_EBAD_REQUEST with err. */
int state_parse_ttl(const char *v, bool *has, int64_t *seconds, char err[STATE_ERR_MAX]) TODO_WUR;
/* An ETag as github.com/google/uuid Parse accepts it (canonical, {…}, urn:uuid:…, 32 hex digits)
 * in canonical lower-case form; false with Go's message in err otherwise. */
bool state_parse_etag(const char *s, char out[STATE_ETAG_LEN], char err[STATE_ERR_MAX]);
/* Appends v as Go's encoding/json Marshal writes a value decoded into `any`: object keys sorted,
 * numbers as float64, <>& and U+2028/U+2029 escaped. TODO_EPAYLOAD_TOO_LARGE at out's limit. */
int state_json_marshal(const json_t *v, buf_t *out) TODO_WUR;
/* Appends s (len bytes) as a Go JSON string literal. */
int state_json_string(const char *s, size_t len, buf_t *out) TODO_WUR;

#endif
