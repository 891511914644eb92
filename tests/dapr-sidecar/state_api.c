/* The Dapr State API of the sidecar double (DAPR-CONTRACT §5.1–§5.4): save, get, bulk get,
 * delete and transactions on /v1.0/state/{store}, with daprd's request decoding, key prefixes,
 * query metadata and error table, over the state.postgresql v2 store of state_store.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sidecar.h"
#include "state_store.h"
#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"

#define MAX_ITEMS 10000 /* items of one save, keys of one bulk get, operations of a transaction */

/* ---- Request metadata: query parameters metadata.<k> (first value wins), DAPR-CONTRACT §0.2 */

static int unhex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Go's url.QueryUnescape of s[0..n): '+' is a space; false on a bad %XX. *out is new. */
static bool query_unescape(const char *s, size_t n, char **out)
{
    char *d = xmalloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int a, b;
            if (i + 2 >= n) {
                free(d);
                return false;
            }
            a = unhex(s[i + 1]);
            b = unhex(s[i + 2]);
            if (a < 0 || b < 0) {
                free(d);
                return false;
            }
            d[j++] = (char)(a << 4 | b);
            i += 2;
        } else {
            d[j++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return true;
}

/* new: {name: value} of the query's metadata.* parameters. */
static json_t *query_metadata(const char *q)
{
    json_t *m = json_object();
    while (q && *q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        char *k = NULL, *v = NULL;
        /* Go's ParseQuery skips pairs with a ';' or a bad escape. */
        if (!memchr(q, ';', len) && query_unescape(q, klen, &k) &&
            query_unescape(eq ? eq + 1 : q + len, eq ? len - klen - 1 : 0, &v) &&
            strncmp(k, "metadata.", 9) == 0 && !json_object_get(m, k + 9))
            json_object_set_new(m, k + 9, json_string(v));
        free(k);
        free(v);
        q += len;
        if (*q == '&')
            q++;
    }
    return m;
}

/* ---- Decoding as Go's encoding/json does into daprd's request structs ---- */

static const char *go_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "null";
    default:
        return "number";
    }
}

/* The value of obj's member matching name case-insensitively; the last such member wins, as
 * Go assigns each matching member in document order. Borrowed; NULL when absent. */
static json_t *go_field(const json_t *obj, const char *name)
{
    const char *k;
    json_t *v, *found = NULL;
    json_object_foreach((json_t *)obj, k, v) if (strcasecmp(k, name) == 0) found = v;
    return found;
}

typedef struct {
    char err[STATE_ERR_MAX]; /* the first type error, "" when none */
} go_dec_t;

static void type_error(go_dec_t *d, const json_t *v, const char *field, const char *type)
{
    if (d->err[0])
        return;
    snprintf(d->err, sizeof(d->err), "json: cannot unmarshal %s into Go struct field %s of type %s",
             go_kind(v), field, type);
}

/* A string field: NULL when absent or null. */
static const char *go_string(go_dec_t *d, const json_t *obj, const char *name, const char *path)
{
    json_t *v = go_field(obj, name);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        type_error(d, v, path, "string");
        return NULL;
    }
    return json_string_value(v);
}

/* A map[string]string field: new object of strings (null members read as ""), NULL when absent. */
static json_t *go_string_map(go_dec_t *d, const json_t *obj, const char *name, const char *path)
{
    json_t *v = go_field(obj, name), *m, *x;
    const char *k;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_object(v)) {
        type_error(d, v, path, "map[string]string");
        return NULL;
    }
    m = json_object();
    json_object_foreach(v, k, x)
    {
        if (json_is_string(x))
            json_object_set(m, k, x);
        else if (json_is_null(x))
            json_object_set_new(m, k, json_string(""));
        else
            type_error(d, x, path, "string");
    }
    return m;
}

/* Merges the query metadata into m (query wins); returns m, or a copy of q when m is NULL. */
static json_t *merge_meta(json_t *m, json_t *q)
{
    if (!m)
        return json_copy(q);
    json_object_update(m, q);
    return m;
}

static const char *meta_get(const json_t *m, const char *k)
{
    json_t *v = m ? json_object_get(m, k) : NULL;
    return v ? json_string_value(v) : NULL;
}

/* One decoded save or transaction item with the storage for a state_set_t/state_del_t. */
typedef struct {
    char *key;   /* stored key (prefix applied), new */
    char *value; /* Go-marshalled value, new */
    size_t value_len;
    const char *etag; /* borrowed from the request JSON */
    const char *concurrency, *consistency;
    json_t *meta; /* merged metadata (owned) */
} item_t;

static void item_dispose(item_t *it)
{
    free(it->key);
    free(it->value);
    json_decref(it->meta);
}

/* ---- Responses ---- */

/* A "rich" dapr/kit error body of the state API (DAPR-CONTRACT §0.1) byte for byte as kit's
 * JSONErrorValue marshals it, with what sidecar_error() cannot express: the ErrorInfo metadata
 * ({"appID": …} or null) and the google.rpc.BadRequest field violation of an illegal key. Details
 * come in the order dapr's StateStoreError.build adds them: BadRequest, ResourceInfo, ErrorInfo;
 * each detail is a Go map, so its keys are sorted. */
static int state_rich_error(http_req_t *req, int status, const char *code, const char *reason,
                            const char *app_id, const char *resource, const char *field,
                            const char *message)
{
    buf_t b;
    int rc;
    bool ok;

    buf_init(&b, 0);
    ok = buf_puts(&b, "{\"errorCode\":") == 0 && state_json_string(code, strlen(code), &b) == 0 &&
         buf_puts(&b, ",\"message\":") == 0 &&
         state_json_string(message, strlen(message), &b) == 0 &&
         buf_puts(&b, ",\"details\":[") == 0;
    if (ok && field)
        ok = buf_puts(&b, "{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\","
                          "\"field_violations\":[{\"field\":") == 0 &&
             state_json_string(field, strlen(field), &b) == 0 &&
             buf_puts(&b, ",\"description\":") == 0 &&
             state_json_string(message, strlen(message), &b) == 0 && buf_puts(&b, "}]},") == 0;
    if (ok && resource)
        ok = buf_puts(&b, "{\"@type\":\"type.googleapis.com/google.rpc.ResourceInfo\","
                          "\"description\":\"\",\"owner\":\"\",\"resource_name\":") == 0 &&
             state_json_string(resource, strlen(resource), &b) == 0 &&
             buf_puts(&b, ",\"resource_type\":\"state\"},") == 0;
    if (ok)
        ok = buf_puts(&b, "{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                          "\"domain\":\"dapr.io\",\"metadata\":") == 0;
    if (ok && app_id && *app_id)
        ok = buf_puts(&b, "{\"appID\":") == 0 &&
             state_json_string(app_id, strlen(app_id), &b) == 0 && buf_puts(&b, "}") == 0;
    else if (ok)
        ok = buf_puts(&b, "null") == 0;
    if (ok)
        ok = buf_puts(&b, ",\"reason\":") == 0 &&
             state_json_string(reason, strlen(reason), &b) == 0 && buf_puts(&b, "}]}") == 0;
    rc = ok ? http_respond(req, status, "application/json", b.data, b.len) : TODO_EINTERNAL;
    buf_dispose(&b);
    return rc;
}

static int not_configured_or_found(sidecar_t *s, http_req_t *req, const char *store,
                                   sidecar_statestore_t **out)
{
    char msg[512];
    *out = NULL;
    if (s->nstatestores == 0) {
        snprintf(msg, sizeof(msg), "state store %s is not configured", store);
        return state_rich_error(req, 500, "ERR_STATE_STORE_NOT_CONFIGURED",
                                "DAPR_STATE_NOT_CONFIGURED", s->opt.app_id, NULL, NULL, msg);
    }
    *out = sidecar_statestore(s, store);
    if (!*out) {
        snprintf(msg, sizeof(msg), "state store %s is not found", store);
        return state_rich_error(req, 400, "ERR_STATE_STORE_NOT_FOUND", "DAPR_STATE_NOT_FOUND",
                                s->opt.app_id, NULL, NULL, msg);
    }
    return 0;
}

/* The stored key for key, or NULL after answering 400 DAPR_STATE_ILLEGAL_KEY (§5.2). */
static char *modified_key(http_req_t *req, sidecar_statestore_t *ss, const char *key, int *rc)
{
    char err[STATE_ERR_MAX];
    if (!state_key_legal(key, err)) {
        *rc = state_rich_error(req, 400, "ERR_MALFORMED_REQUEST", "DAPR_STATE_ILLEGAL_KEY", NULL,
                               ss->component->name, key, err);
        return NULL;
    }
    return xasprintf("%s%s", ss->key_prefix, key);
}

/* 400 ERR_MALFORMED_REQUEST; prefixed with daprd's ErrMalformedRequest text when asked. */
static int malformed(http_req_t *req, bool prefixed, const char *detail)
{
    char msg[STATE_ERR_MAX + 64];
    snprintf(msg, sizeof(msg), "%s%s", prefixed ? "failed deserializing HTTP body: " : "", detail);
    return sidecar_error(req, 400, "ERR_MALFORMED_REQUEST", NULL, NULL, NULL, msg);
}

/* Parses the body as Go's json.Decoder.Decode does: the first JSON value, trailing bytes ignored;
 * numbers as float64. NULL with a message in err for an empty or malformed body. */
static json_t *decode_body(http_req_t *req, char err[STATE_ERR_MAX])
{
    json_error_t je;
    json_t *v;
    size_t i = 0;
    while (i < req->body_len && isspace((unsigned char)req->body[i]))
        i++;
    if (i == req->body_len) {
        snprintf(err, STATE_ERR_MAX, "EOF");
        return NULL;
    }
    v = json_loadb(
        req->body, req->body_len,
        JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    if (!v)
        snprintf(err, STATE_ERR_MAX, "%s", je.text);
    return v;
}

static int marshal_value(const json_t *v, item_t *it)
{
    buf_t b;
    int rc;
    buf_init(&b, 0);
    rc = v ? state_json_marshal(v, &b) : buf_puts(&b, "null");
    if (rc == 0) {
        it->value_len = b.len;
        it->value = buf_steal(&b);
    }
    buf_dispose(&b);
    return rc;
}

/* ---- POST|PUT /v1.0/state/{store} ---- */

static int on_save(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    const char *store = req->params[0];
    int rc = 0;
    json_t *body = NULL, *qmeta = NULL;
    item_t *items = NULL;
    size_t n = 0;
    char err[STATE_ERR_MAX];
    go_dec_t d = {{0}};
    buf_t errs;

    buf_init(&errs, 0);
    if (!sidecar_authorized(s, req))
        goto out;
    rc = not_configured_or_found(s, req, store, &ss);
    if (!ss)
        goto out;
    body = decode_body(req, err);
    if (!body) {
        rc = malformed(req, false, err);
        goto out;
    }
    if (json_is_null(body) || (json_is_array(body) && json_array_size(body) == 0)) {
        rc = http_respond(req, 204, NULL, NULL, 0); /* nothing to save */
        goto out;
    }
    if (!json_is_array(body)) {
        snprintf(err, sizeof(err),
                 "json: cannot unmarshal %s into Go value of type []state.SetRequest",
                 go_kind(body));
        rc = malformed(req, false, err);
        goto out;
    }
    if (json_array_size(body) > MAX_ITEMS) {
        rc = malformed(req, false, "too many items");
        goto out;
    }
    qmeta = query_metadata(req->query);
    n = json_array_size(body);
    items = xcalloc(n, sizeof(*items));
    /* Decoding first (Go reports the first type error after decoding everything). */
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(body, i), *opt;
        if (json_is_null(o))
            continue;
        if (!json_is_object(o)) {
            if (!d.err[0])
                snprintf(d.err, sizeof(d.err),
                         "json: cannot unmarshal %s into Go value of type state.SetRequest",
                         go_kind(o));
            continue;
        }
        go_string(&d, o, "key", "SetRequest.key");
        items[i].etag = go_string(&d, o, "etag", "SetRequest.etag");
        go_string(&d, o, "contentType", "SetRequest.contentType");
        items[i].meta = go_string_map(&d, o, "metadata", "SetRequest.metadata");
        opt = go_field(o, "options");
        if (opt && !json_is_null(opt)) {
            if (!json_is_object(opt)) {
                type_error(&d, opt, "SetRequest.options", "state.SetStateOption");
            } else {
                items[i].concurrency =
                    go_string(&d, opt, "Concurrency", "SetRequest.options.Concurrency");
                items[i].consistency =
                    go_string(&d, opt, "Consistency", "SetRequest.options.Consistency");
            }
        }
    }
    if (d.err[0]) {
        rc = malformed(req, false, d.err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(body, i);
        const char *key = json_is_object(o) ? go_string(&d, o, "key", "") : NULL;
        if (!key || !*key) {
            rc = malformed(req, false, "\"key\" is a required field");
            goto out;
        }
        items[i].meta = merge_meta(items[i].meta, qmeta);
        items[i].key = modified_key(req, ss, key, &rc);
        if (!items[i].key)
            goto out;
        if (marshal_value(json_is_object(o) ? go_field(o, "value") : NULL, &items[i]) != 0) {
            rc = TODO_EINTERNAL;
            goto out;
        }
    }
    /* One item: Set; several: each Set on its own (v2's default BulkSet), errors joined; an ETag
     * error among them makes the answer a 409 (DAPR-CONTRACT §5.2). */
    {
        bool conflict = false;
        char conflict_msg[STATE_ERR_MAX] = "";
        for (size_t i = 0; i < n; i++) {
            state_set_t r = {items[i].key,
                             items[i].value,
                             items[i].value_len,
                             items[i].etag,
                             items[i].concurrency,
                             items[i].consistency,
                             meta_get(items[i].meta, "ttlInSeconds")};
            int src = state_store_set(ss->store, &r, err);
            if (src == 0)
                continue;
            if (src == TODO_ECONFLICT && !conflict) {
                conflict = true;
                snprintf(conflict_msg, sizeof(conflict_msg), "%s", err);
            }
            if ((errs.len && buf_puts(&errs, "\n") != 0) || buf_puts(&errs, err) != 0)
                break;
        }
        if (conflict || errs.len) {
            char *msg = xasprintf("failed saving state in state store %s: %s", store,
                                  conflict ? conflict_msg : errs.data);
            rc = sidecar_error(req, conflict ? 409 : 500, "ERR_STATE_SAVE", NULL, NULL, NULL, msg);
            free(msg);
            goto out;
        }
    }
    rc = http_respond(req, 204, NULL, NULL, 0);
out:
    for (size_t i = 0; items && i < n; i++)
        item_dispose(&items[i]);
    free(items);
    json_decref(body);
    json_decref(qmeta);
    buf_dispose(&errs);
    return rc;
}

/* ---- GET /v1.0/state/{store}/{key} ---- */

static int on_get(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    const char *store = req->params[0], *key = req->params[1];
    int rc = 0;
    char *k = NULL, err[STATE_ERR_MAX];
    state_item_t it = {0};

    if (!sidecar_authorized(s, req))
        goto out;
    rc = not_configured_or_found(s, req, store, &ss);
    if (!ss)
        goto out;
    k = modified_key(req, ss, key, &rc);
    if (!k)
        goto out;
    if (state_store_get(ss->store, k, &it, err) != 0) {
        char *msg = xasprintf("fail to get %s from state store %s: %s", key, store, err);
        rc = sidecar_error(req, 500, "ERR_STATE_GET", NULL, NULL, NULL, msg);
        free(msg);
        goto out;
    }
    if (!it.found) {
        rc = http_respond(req, 204, NULL, NULL, 0); /* DAPR-CONTRACT §14.11: 204, not 404 */
        goto out;
    }
    http_add_header(req, "ETag", it.etag);
    if (it.expires[0])
        http_add_header(req, "metadata.ttlExpireTime", it.expires);
    rc = http_respond(req, 200, "application/json", it.value, it.value_len);
out:
    state_item_dispose(&it);
    free(k);
    return rc;
}

/* ---- DELETE /v1.0/state/{store}/{key} ---- */

static int on_delete(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    const char *store = req->params[0], *key = req->params[1];
    int rc = 0, src;
    char *k = NULL, err[STATE_ERR_MAX];
    state_del_t d = {0};

    if (!sidecar_authorized(s, req))
        goto out;
    rc = not_configured_or_found(s, req, store, &ss);
    if (!ss)
        goto out;
    k = modified_key(req, ss, key, &rc);
    if (!k)
        goto out;
    /* The presence of If-Match gives the ETag (an empty one counts as none), §5.1. */
    d.key = k;
    d.etag = http_req_header(req, "If-Match");
    src = state_store_delete(ss->store, &d, err);
    if (src != 0) {
        char *msg = xasprintf("failed deleting state with key %s: %s", key, err);
        rc = sidecar_error(req, src == TODO_ECONFLICT ? 409 : 500, "ERR_STATE_DELETE", NULL, NULL,
                           NULL, msg);
        free(msg);
        goto out;
    }
    rc = http_respond(req, 204, NULL, NULL, 0);
out:
    free(k);
    return rc;
}

/* ---- POST|PUT /v1.0/state/{store}/bulk ---- */

static int on_bulk(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    const char *store = req->params[0];
    int rc = 0;
    json_t *body = NULL, *keys = NULL, *v;
    char **mkeys = NULL, err[STATE_ERR_MAX];
    size_t n = 0, nitems = 0;
    state_item_t *items = NULL;
    buf_t b;
    go_dec_t d = {{0}};

    buf_init(&b, 0);
    if (!sidecar_authorized(s, req))
        goto out;
    rc = not_configured_or_found(s, req, store, &ss);
    if (!ss)
        goto out;
    body = decode_body(req, err);
    if (!body) {
        rc = malformed(req, true, err);
        goto out;
    }
    if (!json_is_null(body) && !json_is_object(body)) {
        snprintf(err, sizeof(err),
                 "json: cannot unmarshal %s into Go value of type http.BulkGetRequest",
                 go_kind(body));
        rc = malformed(req, true, err);
        goto out;
    }
    if (json_is_object(body)) {
        json_t *m = go_string_map(&d, body, "metadata", "BulkGetRequest.metadata");
        json_decref(m); /* v2 reads no bulk-get metadata */
        v = go_field(body, "parallelism");
        if (v && !json_is_null(v) &&
            (!json_is_number(v) || json_number_value(v) != (double)(long long)json_number_value(v)))
            type_error(&d, v, "BulkGetRequest.parallelism", "int");
        keys = go_field(body, "keys");
        if (keys && !json_is_null(keys) && !json_is_array(keys)) {
            type_error(&d, keys, "BulkGetRequest.keys", "[]string");
            keys = NULL;
        }
        for (size_t i = 0; keys && i < json_array_size(keys); i++)
            if (!json_is_string(json_array_get(keys, i)) && !json_is_null(json_array_get(keys, i)))
                type_error(&d, json_array_get(keys, i), "BulkGetRequest.keys", "string");
    }
    if (d.err[0]) {
        rc = malformed(req, true, d.err);
        goto out;
    }
    n = keys && json_is_array(keys) ? json_array_size(keys) : 0;
    if (n > MAX_ITEMS) {
        rc = malformed(req, true, "too many keys");
        goto out;
    }
    mkeys = xcalloc(n ? n : 1, sizeof(*mkeys));
    for (size_t i = 0; i < n; i++) {
        const char *key = json_string_value(json_array_get(keys, i));
        mkeys[i] = modified_key(req, ss, key ? key : "", &rc);
        if (!mkeys[i])
            goto out;
    }
    if (n > 0 &&
        state_store_bulk_get(ss->store, (const char *const *)mkeys, n, &items, &nitems, err) != 0) {
        rc = sidecar_error(req, 500, "ERR_STATE_BULK_GET", NULL, NULL, NULL, err);
        goto out;
    }
    /* [{key, data, etag, metadata}], missing keys with only key (§5.1); json.Encoder adds \n. */
    rc = buf_puts(&b, "[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *orig = i < nitems ? state_original_key(items[i].key) : xstrdup("");
        rc = buf_puts(&b, i ? ",{\"key\":" : "{\"key\":");
        if (rc == 0)
            rc = state_json_string(orig, strlen(orig), &b);
        free(orig);
        if (rc == 0 && i < nitems && items[i].found) {
            rc = buf_puts(&b, ",\"data\":");
            if (rc == 0)
                rc = buf_append(&b, items[i].value, items[i].value_len);
            if (rc == 0)
                rc = buf_puts(&b, ",\"etag\":");
            if (rc == 0)
                rc = state_json_string(items[i].etag, strlen(items[i].etag), &b);
            if (rc == 0 && items[i].expires[0])
                rc = buf_printf(&b, ",\"metadata\":{\"ttlExpireTime\":\"%s\"}", items[i].expires);
        }
        if (rc == 0)
            rc = buf_puts(&b, "}");
    }
    if (rc == 0)
        rc = buf_puts(&b, "]\n");
    if (rc == 0)
        rc = http_respond(req, 200, "application/json", b.data, b.len);
out:
    for (size_t i = 0; mkeys && i < n; i++)
        free(mkeys[i]);
    free(mkeys);
    state_items_free(items, nitems);
    json_decref(body);
    buf_dispose(&b);
    return rc;
}

/* ---- POST|PUT /v1.0/state/{store}/transaction ---- */

/* mapstructure.Decode of a string field (field names match case-insensitively). */
static bool ms_string(const json_t *obj, const char *field, const char **out, char err[])
{
    json_t *v = go_field(obj, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(err, STATE_ERR_MAX,
                 "1 error(s) decoding:\n\n* '%s' expected type 'string', got unconvertible type "
                 "'%s'",
                 field,
                 json_is_number(v)    ? "float64"
                 : json_is_boolean(v) ? "bool"
                 : json_is_array(v)   ? "[]interface {}"
                                      : "map[string]interface {}");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static int on_transaction(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    const char *store = req->params[0];
    int rc = 0;
    json_t *body = NULL, *qmeta = NULL, *ops = NULL;
    item_t *items = NULL;
    state_op_t *sops = NULL;
    size_t n = 0;
    char err[STATE_ERR_MAX] = "";
    go_dec_t d = {{0}};

    if (!sidecar_authorized(s, req))
        goto out;
    rc = not_configured_or_found(s, req, store, &ss);
    if (!ss)
        goto out;
    body = decode_body(req, err);
    if (!body) {
        rc = malformed(req, true, err);
        goto out;
    }
    if (!json_is_null(body) && !json_is_object(body)) {
        snprintf(err, sizeof(err),
                 "json: cannot unmarshal %s into Go value of type http.stateTransactionRequestBody",
                 go_kind(body));
        rc = malformed(req, true, err);
        goto out;
    }
    if (json_is_object(body)) {
        json_t *m = go_string_map(&d, body, "metadata", "stateTransactionRequestBody.metadata");
        json_decref(m); /* v2 reads no transaction-level metadata */
        ops = go_field(body, "operations");
        if (ops && !json_is_null(ops) && !json_is_array(ops)) {
            type_error(&d, ops, "stateTransactionRequestBody.operations",
                       "[]http.stateTransactionRequestBodyOperation");
            ops = NULL;
        }
        for (size_t i = 0; ops && i < json_array_size(ops); i++) {
            json_t *o = json_array_get(ops, i);
            if (json_is_null(o))
                continue;
            if (!json_is_object(o))
                type_error(&d, o, "stateTransactionRequestBody.operations",
                           "http.stateTransactionRequestBodyOperation");
            else
                go_string(&d, o, "operation", "stateTransactionRequestBodyOperation.operation");
        }
    }
    if (d.err[0]) {
        rc = malformed(req, true, d.err);
        goto out;
    }
    n = ops && json_is_array(ops) ? json_array_size(ops) : 0;
    if (n == 0) {
        rc = http_respond(req, 204, NULL, NULL, 0);
        goto out;
    }
    if (n > MAX_ITEMS) {
        rc = malformed(req, true, "too many operations");
        goto out;
    }
    qmeta = query_metadata(req->query);
    items = xcalloc(n, sizeof(*items));
    sops = xcalloc(n, sizeof(*sops));
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(ops, i);
        json_t *r = json_is_object(o) ? go_field(o, "request") : NULL;
        const char *op = json_is_object(o) ? go_string(&d, o, "operation", "") : NULL;
        const char *key = NULL;
        bool del;
        if (!op)
            op = "";
        if (strcmp(op, "upsert") != 0 && strcmp(op, "delete") != 0) {
            char *msg = xasprintf("operation type %s not supported", op);
            rc =
                sidecar_error(req, 400, "ERR_NOT_SUPPORTED_STATE_OPERATION", NULL, NULL, NULL, msg);
            free(msg);
            goto out;
        }
        del = op[0] == 'd';
        if (r && !json_is_null(r) && !json_is_object(r)) {
            snprintf(err, sizeof(err), "'' expected a map, got '%s'",
                     json_is_array(r)    ? "slice"
                     : json_is_string(r) ? "string"
                     : json_is_number(r) ? "float64"
                                         : "bool");
            rc = malformed(req, true, err);
            goto out;
        }
        if (r && json_is_object(r)) {
            json_t *opt = go_field(r, "Options");
            json_t *meta = go_field(r, "Metadata");
            if (!ms_string(r, "Key", &key, err) || !ms_string(r, "ETag", &items[i].etag, err)) {
                rc = malformed(req, true, err);
                goto out;
            }
            if (opt && json_is_object(opt) &&
                (!ms_string(opt, "Concurrency", &items[i].concurrency, err) ||
                 !ms_string(opt, "Consistency", &items[i].consistency, err))) {
                rc = malformed(req, true, err);
                goto out;
            }
            if (meta && json_is_object(meta)) {
                const char *mk;
                json_t *mv;
                items[i].meta = json_object();
                json_object_foreach(meta, mk, mv)
                {
                    if (!json_is_string(mv)) {
                        snprintf(err, sizeof(err),
                                 "1 error(s) decoding:\n\n* 'Metadata[%s]' expected type "
                                 "'string', got unconvertible type '%s'",
                                 mk, go_kind(mv));
                        rc = malformed(req, true, err);
                        goto out;
                    }
                    json_object_set(items[i].meta, mk, mv);
                }
            }
        }
        items[i].key = modified_key(req, ss, key ? key : "", &rc);
        if (!items[i].key)
            goto out;
        /* Operations get the query metadata merged in (query wins), not the body's. */
        items[i].meta = merge_meta(items[i].meta, qmeta);
        sops[i].is_delete = del;
        if (del) {
            sops[i].del.key = items[i].key;
            sops[i].del.etag = items[i].etag;
        } else {
            if (marshal_value(r && json_is_object(r) ? go_field(r, "Value") : NULL, &items[i]) !=
                0) {
                rc = TODO_EINTERNAL;
                goto out;
            }
            sops[i].set = (state_set_t){items[i].key,
                                        items[i].value,
                                        items[i].value_len,
                                        items[i].etag,
                                        items[i].concurrency,
                                        items[i].consistency,
                                        meta_get(items[i].meta, "ttlInSeconds")};
        }
    }
    /* Any failure, an ETag mismatch included, is a 500 (DAPR-CONTRACT §5.2, §13.2). */
    if (state_store_transact(ss->store, sops, n, err) != 0) {
        char *msg = xasprintf("error while executing state transaction: %s", err);
        rc = sidecar_error(req, 500, "ERR_STATE_TRANSACTION", NULL, NULL, NULL, msg);
        free(msg);
        goto out;
    }
    rc = http_respond(req, 204, NULL, NULL, 0);
out:
    for (size_t i = 0; items && i < n; i++)
        item_dispose(&items[i]);
    free(items);
    free(sops);
    json_decref(body);
    json_decref(qmeta);
    return rc;
}

/* ---- POST|PUT /v1.0-alpha1/state/{store}/query ---- */

/* The v2 store has no query capability (DAPR-CONTRACT §5.5), so daprd answers every query on it
 * with apierrors' QueryUnsupported once the store is found. */
static int on_query(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    sidecar_statestore_t *ss = NULL;
    int rc = 0;

    if (!sidecar_authorized(s, req))
        return 0;
    rc = not_configured_or_found(s, req, req->params[0], &ss);
    if (!ss)
        return rc;
    return state_rich_error(req, 500, "ERR_STATE_STORE_NOT_SUPPORTED",
                            "DAPR_STATE_QUERYING_NOT_SUPPORTED", NULL, ss->component->name, NULL,
                            "state store does not support querying");
}

/* ---- Registration and the store registry ---- */

int state_api_register(sidecar_t *s)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"POST", "/v1.0/state/{store}/bulk", on_bulk},
        {"PUT", "/v1.0/state/{store}/bulk", on_bulk},
        {"POST", "/v1.0/state/{store}/transaction", on_transaction},
        {"PUT", "/v1.0/state/{store}/transaction", on_transaction},
        {"POST", "/v1.0/state/{store}", on_save},
        {"PUT", "/v1.0/state/{store}", on_save},
        {"GET", "/v1.0/state/{store}/{key}", on_get},
        {"DELETE", "/v1.0/state/{store}/{key}", on_delete},
        {"POST", "/v1.0-alpha1/state/{store}/query", on_query},
        {"PUT", "/v1.0-alpha1/state/{store}/query", on_query},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = http_server_route(s->server, routes[i].method, routes[i].pattern, routes[i].fn, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const char *component_meta(const res_component_t *c, const char *name)
{
    for (size_t i = 0; i < c->nmeta; i++)
        if (strcasecmp(c->meta[i].name, name) == 0)
            return c->meta[i].value;
    return NULL;
}

int state_stores_init(sidecar_t *s)
{
    int rc = 0;

    for (size_t i = 0; i < s->res.ncomponents && rc == 0; i++) {
        const res_component_t *c = &s->res.components[i];
        const char *names[RES_MAX_META], *values[RES_MAX_META];
        state_store_config_t cfg;
        char err[STATE_ERR_MAX] = "";
        sidecar_statestore_t *ss;

        if (strcmp(c->type, "state.postgresql") != 0)
            continue;
        if (s->nstatestores >= SIDECAR_MAX_COMPONENTS) {
            log_error("state", "too many state stores (at most %d)", SIDECAR_MAX_COMPONENTS);
            rc = TODO_EBAD_REQUEST;
            break;
        }
        if (c->version && strcmp(c->version, "v2") != 0)
            log_warn("state",
                     "state store %s: version %s requested; this double implements only the v2 "
                     "table layout",
                     c->name, c->version);
        for (size_t j = 0; j < c->nmeta && j < RES_MAX_META; j++) {
            names[j] = c->meta[j].name;
            values[j] = c->meta[j].value ? c->meta[j].value : "";
        }
        ss = &s->statestores[s->nstatestores];
        memset(ss, 0, sizeof(*ss));
        ss->component = c;
        rc = state_store_config_parse(names, values, c->nmeta, &cfg, err);
        if (rc == 0)
            rc = state_key_prefix(component_meta(c, "keyPrefix"), c->name, s->opt.app_id,
                                  getenv("NAMESPACE"), &ss->key_prefix, err);
        if (rc == 0)
            rc = state_store_new(&cfg, &ss->store, err);
        if (rc != 0) {
            log_error("state", "state store %s cannot be initialised: %s", c->name, err);
            free(ss->key_prefix);
            ss->key_prefix = NULL;
            break;
        }
        ss->connection_string = xstrdup(cfg.connection_string);
        ss->table = xstrdup(state_store_table(ss->store));
        s->nstatestores++;
        log_info("state", "state store %s ready (table %s, key prefix \"%s\")", c->name, ss->table,
                 ss->key_prefix);
    }
    return rc;
}

void state_stores_dispose(sidecar_t *s)
{
    for (size_t i = 0; i < s->nstatestores; i++) {
        sidecar_statestore_t *ss = &s->statestores[i];
        state_store_free(ss->store);
        free(ss->connection_string);
        free(ss->table);
        free(ss->key_prefix);
        memset(ss, 0, sizeof(*ss));
    }
    s->nstatestores = 0;
}
