/* What every API module of the sidecar double shares: component lookups, the two Dapr error body
 * shapes (DAPR-CONTRACT §0.1), the API token check (§8.5) and Go-style JSON output. */
#include "sidecar.h"

#include <stdlib.h>
#include <string.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"

sidecar_pubsub_t *sidecar_pubsub(sidecar_t *s, const char *name)
{
    for (size_t i = 0; name && i < s->npubsubs; i++) {
        if (strcmp(s->pubsubs[i].component->name, name) == 0)
            return &s->pubsubs[i];
    }
    return NULL;
}

sidecar_statestore_t *sidecar_statestore(sidecar_t *s, const char *name)
{
    for (size_t i = 0; name && i < s->nstatestores; i++) {
        if (strcmp(s->statestores[i].component->name, name) == 0)
            return &s->statestores[i];
    }
    return NULL;
}

char *sidecar_json_dump(const json_t *v, size_t *len)
{
    char *compact = json_dump(v), *out;
    buf_t b;
    size_t i;
    int rc = 0;

    /* Outside strings a JSON text holds none of these bytes, so escaping them everywhere is
     * escaping them inside strings, as Go's encoding/json does (HTMLEscape + U+2028/U+2029). */
    buf_init(&b, 0);
    for (i = 0; compact[i] && rc == 0; i++) {
        unsigned char c = (unsigned char)compact[i];
        if (c == '<')
            rc = buf_puts(&b, "\\u003c");
        else if (c == '>')
            rc = buf_puts(&b, "\\u003e");
        else if (c == '&')
            rc = buf_puts(&b, "\\u0026");
        else if (c == 0xE2 && (unsigned char)compact[i + 1] == 0x80 &&
                 ((unsigned char)compact[i + 2] == 0xA8 || (unsigned char)compact[i + 2] == 0xA9)) {
            rc = buf_puts(&b, (unsigned char)compact[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
            i += 2;
        } else
            rc = buf_append(&b, &compact[i], 1);
    }
    free(compact);
    if (rc != 0) {
        buf_dispose(&b);
        abort(); /* an unlimited buffer only fails on allocation, which aborts first */
    }
    *len = b.len;
    out = buf_steal(&b);
    buf_dispose(&b);
    return out;
}

int sidecar_respond_json(http_req_t *req, int status, const json_t *v)
{
    size_t len;
    char *body = sidecar_json_dump(v, &len);
    int rc = http_respond(req, status, "application/json", body, len);
    free(body);
    return rc;
}

/* A JSON string of s, or of s with invalid UTF-8 replaced, as Go writes U+FFFD for it. */
static json_t *go_string(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (!v) {
        buf_t b;
        buf_init(&b, 0);
        for (const char *p = s; *p; p++) {
            int rc =
                ((unsigned char)*p < 0x80) ? buf_append(&b, p, 1) : buf_puts(&b, "\xEF\xBF\xBD");
            if (rc != 0)
                break;
        }
        v = json_string(b.data ? b.data : "");
        buf_dispose(&b);
    }
    return v;
}

int sidecar_error(http_req_t *req, int status, const char *error_code, const char *reason,
                  const char *resource_type, const char *resource_name, const char *message)
{
    json_t *body = json_object();
    int rc;

    /* Both shapes are Go structs whose fields come in this order; each detail of the rich form
     * is a Go map, so its keys are sorted (kit errors.go JSONErrorValue). DAPR-CONTRACT §0.1. */
    json_object_set_new(body, "errorCode", go_string(error_code ? error_code : reason));
    json_object_set_new(body, "message", go_string(message));
    if (reason) {
        json_t *details = json_array(), *info = json_object();
        json_object_set_new(info, "@type", json_string("type.googleapis.com/google.rpc.ErrorInfo"));
        json_object_set_new(info, "domain", json_string("dapr.io"));
        json_object_set_new(info, "metadata", json_null());
        json_object_set_new(info, "reason", go_string(reason));
        json_array_append_new(details, info);
        if (resource_type) {
            json_t *res = json_object();
            json_object_set_new(res, "@type",
                                json_string("type.googleapis.com/google.rpc.ResourceInfo"));
            json_object_set_new(res, "description", json_string(""));
            json_object_set_new(res, "owner", json_string(""));
            json_object_set_new(res, "resource_name", go_string(resource_name));
            json_object_set_new(res, "resource_type", go_string(resource_type));
            json_array_append_new(details, res);
        }
        json_object_set_new(body, "details", details);
    }
    rc = sidecar_respond_json(req, status, body);
    json_decref(body);
    return rc;
}

/* Compares without an early exit, so the time taken does not tell how much of a guess was right. */
static bool same_token(const char *given, const char *want)
{
    size_t n = strlen(want), m = strlen(given);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(want[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

bool sidecar_authorized(sidecar_t *s, http_req_t *req)
{
    const char *want = s->opt.dapr_api_token, *given;

    if (!want || !*want)
        return true;
    /* DAPR-CONTRACT §8.5: GET /v1.0/healthz and /v1.0/healthz/outbound need no token. */
    if (strcmp(req->method, "GET") == 0 && (strcmp(req->path, "/v1.0/healthz") == 0 ||
                                            strcmp(req->path, "/v1.0/healthz/outbound") == 0))
        return true;
    given = http_req_header(req, "dapr-api-token");
    if (given && same_token(given, want))
        return true;
    /* Go's http.Error: text/plain, nosniff, the message and a newline (§0.1). */
    http_add_header(req, "x-content-type-options", "nosniff");
    static const char msg[] = "invalid api token\n";
    (void)http_respond(req, 401, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
    log_debug("sidecar", "%s %s: invalid api token", req->method, req->path);
    return false;
}
