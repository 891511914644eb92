/* Shared request handling of the backend's REST API; see api.h. */
#include "api.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define IDEMPOTENCY_KEY_MAX 255

backend_config_t backend_config;

const char *api_i64(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

bool api_parse_id(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return false;
    *out = v;
    return true;
}

int api_begin(http_req_t *req, api_ctx_t *ctx, bool with_body)
{
    backend_thread_t *thr = req->thread_ctx;
    const char *why = NULL;
    int rc;

    memset(ctx, 0, sizeof(*ctx));
    ctx->req = req;
    ctx->db = thr->db;

    rc = auth_verify_bearer(http_req_header(req, "authorization"), backend_config.jwt_secret,
                            backend_config.jwt_secret_len, time_now_usec() / 1000000, &ctx->claims,
                            &why);
    if (rc != 0) {
        log_info("auth", "request refused: %s", why ? why : "invalid token");
        http_add_header(req, "WWW-Authenticate", "Bearer");
        http_send_error(req, TODO_EUNAUTHORIZED, why, NULL);
        return -1;
    }
    if (req->nparams < 1 || strcmp(req->params[0], ctx->claims.sub) != 0) {
        http_send_error(req, TODO_EFORBIDDEN, "the token does not grant access to this user", NULL);
        return -1;
    }
    if (with_body) {
        if (!http_req_is_json(req)) {
            http_send_error(req, TODO_EUNSUPPORTED_MEDIA_TYPE, "the body must be application/json",
                            NULL);
            return -1;
        }
        if (json_parse(req->body, req->body_len, true, &ctx->body) != 0) {
            http_send_error(req, TODO_EINVALID_JSON, "the body must be a JSON object", NULL);
            return -1;
        }
    }
    rc = user_cache_record(thr->users, thr->db, &ctx->claims);
    if (rc != 0) {
        api_end(ctx);
        http_send_error(req, rc, NULL, NULL);
        return -1;
    }
    return 0;
}

void api_end(api_ctx_t *ctx)
{
    if (ctx->body)
        json_decref(ctx->body);
    ctx->body = NULL;
}

int api_field_error(api_result_t *out, const char *field, const char *message)
{
    json_errors_t e;
    json_errors_init(&e);
    json_errors_add(&e, field, message);
    if (out->errors)
        json_decref(out->errors);
    out->errors = json_incref(e.list);
    out->detail = message;
    json_errors_dispose(&e);
    return TODO_EVALIDATION_ERROR;
}

int api_validation_error(http_req_t *req, const json_errors_t *e)
{
    return http_send_error(req, TODO_EVALIDATION_ERROR, "some fields are invalid", e->list);
}

void api_precondition_read(http_req_t *req, api_precondition_t *p)
{
    const char *h = http_req_header(req, "if-match");
    memset(p, 0, sizeof(*p));
    if (!h)
        return;
    p->present = true;
    const char *s = h;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (!*s)
            break;
        if (*s == '*') {
            p->any = true;
            s++;
            continue;
        }
        bool quoted = *s == '"';
        if (quoted)
            s++;
        char *end = NULL;
        long v = isdigit((unsigned char)*s) ? strtol(s, &end, 10) : -1;
        if (v < 1 || v > INT32_MAX || (quoted && *end != '"'))
            return; /* malformed: matches nothing */
        s = end + (quoted ? 1 : 0);
        if (p->n < (int)(sizeof(p->versions) / sizeof(p->versions[0])))
            p->versions[p->n++] = (int)v;
    }
}

bool api_precondition_ok(const api_precondition_t *p, int version)
{
    if (!p->present || p->any)
        return true;
    for (int i = 0; i < p->n; i++)
        if (p->versions[i] == version)
            return true;
    return false;
}

typedef struct {
    api_ctx_t *ctx;
    api_op_fn op;
    void *arg;
    api_result_t *result;
    const char *key; /* Idempotency-Key or NULL */
    char hash[SHA256_DIGEST_LENGTH * 2 + 1];
    bool replayed;
} run_t;

static void request_hash(http_req_t *req, char out[SHA256_DIGEST_LENGTH * 2 + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    if (!sha || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(sha, req->method, strlen(req->method)) ||
        !EVP_DigestUpdate(sha, "\n", 1) || !EVP_DigestUpdate(sha, req->path, strlen(req->path)) ||
        !EVP_DigestUpdate(sha, "\n", 1) ||
        !EVP_DigestUpdate(sha, req->body ? req->body : "", req->body_len) ||
        !EVP_DigestFinal_ex(sha, md, NULL))
        abort(); /* only allocation can fail here */
    EVP_MD_CTX_free(sha);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void result_reset(api_result_t *r)
{
    free(r->body);
    if (r->errors)
        json_decref(r->errors);
    memset(r, 0, sizeof(*r));
}

/* Claims the idempotency key; sets run->replayed with the stored response when it was used. */
static int claim_key(db_t *db, run_t *run)
{
    PGresult *res = NULL;
    const char *user = run->ctx->claims.sub;
    const char *p[] = {user, run->key, run->hash};
    int rc = db_query(db,
                      "INSERT INTO backend.idempotency_keys (user_id, key, request_hash) "
                      "VALUES ($1, $2, $3) ON CONFLICT (user_id, key) DO UPDATE SET "
                      "request_hash = EXCLUDED.request_hash, status = NULL, body = NULL, "
                      "location = NULL, version = NULL, created_at = now() "
                      "WHERE idempotency_keys.created_at < now() - interval '24 hours' "
                      "RETURNING 1",
                      3, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) == 1)
        goto out; /* ours now */
    PQclear(res);
    res = NULL;
    rc = db_query(db,
                  "SELECT request_hash, status, body, location, version "
                  "FROM backend.idempotency_keys WHERE user_id = $1 AND key = $2",
                  2, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
        rc = TODO_EINTERNAL;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), run->hash) != 0) {
        rc = api_field_error(run->result, "Idempotency-Key",
                             "was already used with a different request");
        goto out;
    }
    run->replayed = true;
    run->result->status = atoi(PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2))
        run->result->body = xstrdup(PQgetvalue(res, 0, 2));
    snprintf(run->result->location, sizeof(run->result->location), "%s", PQgetvalue(res, 0, 3));
    run->result->version = PQgetisnull(res, 0, 4) ? 0 : atoi(PQgetvalue(res, 0, 4));
out:
    PQclear(res);
    return rc;
}

static int store_key(db_t *db, run_t *run)
{
    char status[24], version[24];
    api_result_t *r = run->result;
    const char *p[] = {run->ctx->claims.sub,
                       run->key,
                       api_i64(status, r->status),
                       r->body,
                       r->location,
                       r->version > 0 ? api_i64(version, r->version) : NULL};
    return db_query(db,
                    "UPDATE backend.idempotency_keys SET status = $3, body = $4, location = $5, "
                    "version = $6 WHERE user_id = $1 AND key = $2",
                    6, p, NULL);
}

static int run_tx(db_t *db, void *arg)
{
    run_t *run = arg;
    int rc;

    run->replayed = false;
    result_reset(run->result);
    if (run->key) {
        rc = claim_key(db, run);
        if (rc != 0 || run->replayed)
            return rc;
    }
    rc = run->op(run->ctx, run->arg, run->result);
    if (rc != 0)
        return rc;
    if (run->key)
        rc = store_key(db, run);
    return rc;
}

static bool key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
        return false;
    for (; *k; k++)
        if (*k < 0x21 || *k > 0x7e)
            return false;
    return true;
}

void api_changed(db_t *db)
{
    outbox_relay_signal(atomic_load(&backend_config.relay), db, "backend_outbox");
}

int api_run(api_ctx_t *ctx, api_op_fn op, void *arg)
{
    api_result_t result = {0};
    run_t run = {.ctx = ctx, .op = op, .arg = arg, .result = &result};
    http_req_t *req = ctx->req;
    int rc;

    if (strcmp(req->method, "POST") == 0)
        run.key = http_req_header(req, "idempotency-key");
    if (run.key) {
        if (!key_valid(run.key)) {
            rc = api_field_error(&result, "Idempotency-Key",
                                 "must be 1-255 visible ASCII characters");
            rc = http_send_error(req, rc, result.detail, result.errors);
            goto out;
        }
        request_hash(req, run.hash);
    }

    rc = db_tx(ctx->db, run_tx, &run);
    if (rc != 0) {
        rc = http_send_error(req, rc, result.detail, result.errors);
        goto out;
    }
    if (strcmp(req->method, "GET") != 0 && !run.replayed)
        api_changed(ctx->db);
    if (result.location[0])
        http_add_header(req, "Location", result.location);
    if (result.version > 0) {
        char etag[32];
        snprintf(etag, sizeof(etag), "\"%d\"", result.version);
        http_add_header(req, "ETag", etag);
    }
    if (run.replayed)
        http_add_header(req, "Idempotent-Replayed", "true");
    rc = http_respond(req, result.status, result.body ? "application/json" : NULL, result.body,
                      result.body ? strlen(result.body) : 0);
out:
    result_reset(&result);
    return rc;
}
