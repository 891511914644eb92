/* What every REST handler of the backend shares: authentication and authorisation of the
 * /api/{user_id}/… path, the JSON body, If-Match preconditions, and running an operation in one
 * transaction with Idempotency-Key replay for POSTs. */
#ifndef BACKEND_API_H
#define BACKEND_API_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "todo/auth.h"
#include "todo/db.h"
#include "todo/http_server.h"
#include "todo/json.h"
#include "todo/outbox.h"
#include "user_cache.h"

/* What each worker thread (which runs the handlers) owns. */
typedef struct {
    db_t *db;
    user_cache_t *users;
} backend_thread_t;

/* Process-wide settings the handlers read (set once by main before the server starts). */
typedef struct {
    const unsigned char *jwt_secret;
    size_t jwt_secret_len;
    _Atomic(outbox_relay_t *) relay; /* set once the relay runs: woken after each change */
} backend_config_t;

extern backend_config_t backend_config;

/* One request being handled. */
typedef struct {
    http_req_t *req;
    db_t *db;
    auth_claims_t claims; /* claims.sub is the user */
    json_t *body;         /* parsed body (owned) when the route takes one */
} api_ctx_t;

/* The outcome of an operation: a response to send, or an error with details. */
typedef struct {
    int status;                       /* 200, 201, 204 */
    char *body;                       /* JSON text (owned), NULL for 204 */
    char location[AUTH_SUB_MAX + 64]; /* Location header when not empty */
    int version;                      /* ETag "<version>" when > 0 */
    const char *detail;               /* for errors: static text */
    json_t *errors;                   /* for 422: [{field, message}] (owned) */
} api_result_t;

/* Authenticates the bearer token, checks that the path's {user_id} (params[0]) is its sub (403
 * otherwise), records the user, and, when with_body, requires a JSON content type (415) and parses
 * the body (400). Returns 0 to go on, or -1 when it has answered the request with an error (the
 * handler then returns 0). */
int api_begin(http_req_t *req, api_ctx_t *ctx, bool with_body) TODO_WUR;
void api_end(api_ctx_t *ctx);

/* An operation run inside the request's transaction. Fills out and returns 0, or returns an
 * error (with out->detail/errors when useful); the transaction then rolls back. */
typedef int (*api_op_fn)(api_ctx_t *ctx, void *arg, api_result_t *out);

/* Wakes the outbox relay after a committed change (outbox_relay_signal). */
void api_changed(db_t *db);

/* Runs op in one transaction and responds; a change other than a GET's wakes the outbox relay. With
 * an Idempotency-Key header on a POST the key is claimed in the same transaction: a key seen before
 * for this user within 24 h replays the first response (and runs nothing); the same key with
 * another request body → 422. */
int api_run(api_ctx_t *ctx, api_op_fn op, void *arg);

/* Makes out a 422 with one field error; returns TODO_EVALIDATION_ERROR. */
int api_field_error(api_result_t *out, const char *field, const char *message);

/* Responds 422 with e's errors. */
int api_validation_error(http_req_t *req, const json_errors_t *e);

/* A positive 63-bit id from a path segment, or false. */
bool api_parse_id(const char *s, int64_t *out);

/* If-Match of the request. */
typedef struct {
    bool present;
    bool any;
    int versions[8];
    int n;
} api_precondition_t;

/* Reads If-Match: "N" (or W/-less N) entries or *. Malformed → TODO_EPRECONDITION_FAILED never
 * matches (kept as present with no versions). */
void api_precondition_read(http_req_t *req, api_precondition_t *p);
/* True when there is no If-Match or it names version (or is *). */
bool api_precondition_ok(const api_precondition_t *p, int version);

/* Formats an int64 into buf (for query parameters). */
const char *api_i64(char buf[24], int64_t v);

#endif
