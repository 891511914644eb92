/* The publish API of the sidecar (DAPR-CONTRACT §1): single publish on /v1.0/publish and bulk
 * publish on /v1.0-alpha1/publish/bulk and /v1.0/publish/bulk, with CloudEvent wrapping,
 * metadata.* query parameters, topic scopes and daprd's status and error tables. */
#include "publish_api.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloudevent.h"
#include "sidecar.h"
#include "todo/alloc.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define MODULE           "publish"
#define METADATA_PREFIX  "metadata."
#define MAX_BULK_ENTRIES 1000

/* ---- request metadata --------------------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* url.QueryUnescape: '+' is a space, %XX must be well formed; NULL otherwise. */
static char *query_unescape(const char *s, size_t len)
{
    char *out = xmalloc(len + 1), *d = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            *d++ = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            *d++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *d++ = s[i];
        }
    }
    *d = '\0';
    return out;
}

size_t publish_query_metadata(const char *query, broker_header_t *out, size_t max)
{
    size_t n = 0;
    const size_t plen = strlen(METADATA_PREFIX);
    for (const char *p = query ? query : ""; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        char *key = NULL, *val = NULL;
        /* Go's ParseQuery rejects a pair with ';' or a bad escape and goes on */
        if (!memchr(p, ';', len) && (key = query_unescape(p, klen)) != NULL &&
            (val = eq ? query_unescape(eq + 1, len - klen - 1) : xstrdup("")) != NULL &&
            strncmp(key, METADATA_PREFIX, plen) == 0) {
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++)
                seen = strcmp(out[i].name, key + plen) == 0;
            if (!seen && n < max) {
                out[n].name = xstrdup(key + plen);
                out[n].value = val;
                val = NULL;
                n++;
            } else if (!seen) {
                log_warn(MODULE, "more than %zu metadata query parameters; '%s' ignored", max, key);
            }
        }
        free(key);
        free(val);
        p += len;
        if (*p == '&')
            p++;
    }
    return n;
}

void publish_metadata_free(broker_header_t *meta, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)meta[i].name);
        free((char *)meta[i].value);
    }
}

bool publish_raw_payload(const broker_header_t *meta, size_t n, bool *raw)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    const char *v = cloudevent_meta(meta, n, "rawPayload");
    *raw = false;
    if (!v || !*v)
        return true;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0) {
            *raw = true;
            return true;
        }
        if (strcmp(v, no[i]) == 0)
            return true;
    }
    return false;
}

/* ---- topic scopes (dapr pkg/scopes/scopes.go) --------------------------------------------- */

/* v with every space removed (new). */
static char *without_spaces(const char *v)
{
    char *s = xstrdup(v), *d = s;
    for (const char *p = v; *p; p++) {
        if (*p != ' ')
            *d++ = *p;
    }
    *d = '\0';
    return s;
}

/* True when topic is one of the ','-separated items of list[0..len). */
static bool in_list(const char *list, size_t len, const char *topic)
{
    size_t tlen = strlen(topic);
    const char *end = list + len;
    for (const char *p = list;;) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        size_t n = c ? (size_t)(c - p) : (size_t)(end - p);
        if (n == tlen && memcmp(p, topic, n) == 0)
            return true;
        if (!c)
            return false;
        p = c + 1;
    }
}

/* GetScopedTopics: 0 = the app has no scope (all topics), 1 = topic is scoped for the app,
 * -1 = the app has scopes that do not include topic. */
static int scoped(const res_component_t *c, const char *key, const char *app_id, const char *topic)
{
    const char *v = res_component_meta(c, key);
    int result = 0;
    if (!v || !*v)
        return 0;
    char *s = without_spaces(v);
    for (char *app = s, *next; app; app = next) {
        next = strchr(app, ';');
        if (next)
            *next++ = '\0';
        char *eq = strchr(app, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcasecmp(app, app_id ? app_id : "") != 0)
            continue;
        /* "app=t1,t2"; a second '=' ends the topics as strings.Split does */
        char *topics = eq + 1, *eq2 = strchr(topics, '=');
        size_t len = eq2 ? (size_t)(eq2 - topics) : strlen(topics);
        if (in_list(topics, len, topic)) {
            result = 1;
            break;
        }
        result = -1;
    }
    free(s);
    return result;
}

/* GetAllowedTopics / GetProtectedTopics: 0 = no list, 1 = listed, -1 = a list without it. */
static int listed(const res_component_t *c, const char *key, const char *topic)
{
    const char *v = res_component_meta(c, key);
    if (!v || !*v)
        return 0;
    char *s = without_spaces(v);
    int r = *s ? (in_list(s, strlen(s), topic) ? 1 : -1) : 0;
    free(s);
    return r;
}

bool publish_topic_allowed(const res_component_t *c, const char *app_id, const char *topic)
{
    if (listed(c, "allowedTopics", topic) < 0)
        return false;
    int scope = scoped(c, "publishingScopes", app_id, topic);
    /* protected topics need an explicit scope */
    if (listed(c, "protectedTopics", topic) > 0)
        return scope > 0;
    return scope >= 0;
}

/* ---- handlers ----------------------------------------------------------------------------- */

/* The error bodies of dapr pkg/api/errors/pubsub.go (rich errors, ResourceInfo of the pubsub). */
static int pubsub_error(http_req_t *req, int status, const char *code, const char *reason,
                        const char *pubsubname, const char *message)
{
    return sidecar_error(req, status, code, reason, "pubsub", pubsubname, message);
}

/* A new span of the request's trace for one bulk entry. */
static void child_traceparent(const char *tp, char out[56])
{
    char u[TODO_UUID_LEN];
    snprintf(out, 56, "%s", tp ? tp : "");
    if (strlen(out) != 55)
        return;
    todo_uuid_v4(u);
    for (int i = 0, j = 0; i < 16; j++) {
        if (u[j] != '-')
            out[36 + i++] = u[j];
    }
}

/* Common checks of validateAndGetPubsubAndTopic and the metadata; answers and returns NULL on
 * failure. */
static sidecar_pubsub_t *validate(http_req_t *req, sidecar_t *s, const char *pubsubname,
                                  const char *topic, int *rc)
{
    sidecar_pubsub_t *ps = sidecar_pubsub(s, pubsubname);
    char *msg;
    if (!ps) {
        msg = xasprintf("pubsub %s is not found", pubsubname);
        *rc = sidecar_error(req, 404, "ERR_PUBSUB_NOT_FOUND", "DAPR_PUBSUB_NOT_FOUND", NULL, NULL,
                            msg);
        free(msg);
        return NULL;
    }
    if (!*topic) {
        msg = xasprintf("topic is empty in pubsub %s", pubsubname);
        *rc = pubsub_error(req, 404, "ERR_TOPIC_NAME_EMPTY", "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
                           pubsubname, msg);
        free(msg);
        return NULL;
    }
    return ps;
}

static int metadata_error(http_req_t *req, const char *pubsubname, const broker_header_t *meta,
                          size_t nmeta)
{
    char *msg = xasprintf("failed deserializing metadata: rawPayload value must be a valid "
                          "boolean: actual is '%s'",
                          cloudevent_meta(meta, nmeta, "rawPayload"));
    int rc = pubsub_error(req, 400, "ERR_PUBSUB_REQUEST_METADATA",
                          "DAPR_PUBSUB_METADATA_DESERIALIZATION", pubsubname, msg);
    free(msg);
    return rc;
}

/* Publishes one record: partitionKey (or __key) is the record key, every metadata entry a
 * record header (§3.6). */
static int publish_record(sidecar_pubsub_t *ps, const char *topic, const void *data, size_t len,
                          const broker_header_t *meta, size_t nmeta)
{
    broker_msg_t m;
    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.key = cloudevent_meta(meta, nmeta, "partitionKey");
    if (!m.key)
        m.key = cloudevent_meta(meta, nmeta, "__key");
    m.value = data;
    m.len = len;
    for (size_t i = 0; i < nmeta && i < BROKER_MAX_HEADERS; i++)
        m.headers[m.nheaders++] = meta[i];
    return broker_publish(ps->broker, &m);
}

/* POST|PUT /v1.0/publish/{pubsubname}/{topic...} — DAPR-CONTRACT §1.1 (http.go onPublish). */
static int on_publish(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    const char *pubsubname = req->params[0], *topic = req->params[1];
    broker_header_t meta[BROKER_MAX_HEADERS];
    size_t nmeta = 0;
    char *data = NULL, *err = NULL, *msg = NULL;
    size_t len = 0;
    bool raw;
    int rc = 0;

    if (!sidecar_authorized(s, req))
        return 0;
    sidecar_pubsub_t *ps = validate(req, s, pubsubname, topic, &rc);
    if (!ps)
        goto out;
    nmeta = publish_query_metadata(req->query, meta, BROKER_MAX_HEADERS);
    if (!publish_raw_payload(meta, nmeta, &raw)) {
        rc = metadata_error(req, pubsubname, meta, nmeta);
        goto out;
    }
    if (!raw) {
        const char *ct = http_req_header(req, "content-type");
        const char *ts = http_req_header(req, "tracestate");
        cloudevent_req_t cr = {.app_id = s->opt.app_id,
                               .pubsubname = pubsubname,
                               .topic = topic,
                               .content_type = ct,
                               .traceparent = req->traceparent,
                               .tracestate = ts ? ts : "",
                               .data = req->body,
                               .len = req->body_len,
                               .meta = meta,
                               .nmeta = nmeta,
                               .now_usec = time_now_usec()};
        if (cloudevent_envelope(&cr, &data, &len, &err) != 0) {
            msg =
                xasprintf("error when marshalling cloud event envelope for topic %s pubsub %s: %s",
                          topic, pubsubname, err ? err : "");
            rc = pubsub_error(req, 500, "ERR_PUBSUB_CLOUD_EVENTS_SER",
                              "DAPR_PUBSUB_CLOUD_EVENT_CREATION", pubsubname, msg);
            goto out;
        }
    }
    if (!publish_topic_allowed(ps->component, s->opt.app_id, topic)) {
        msg = xasprintf("topic %s is not allowed for app id %s", topic, s->opt.app_id);
        rc = pubsub_error(req, 403, "ERR_PUBSUB_FORBIDDEN", "DAPR_PUBSUB_FORBIDDEN", pubsubname,
                          msg);
        goto out;
    }
    if (publish_record(ps, topic, raw ? req->body : data, raw ? req->body_len : len, meta, nmeta) !=
        0) {
        msg = xasprintf("error when publish to topic %s in pubsub %s: the broker did not accept "
                        "the message",
                        topic, pubsubname);
        rc = pubsub_error(req, 500, "ERR_PUBSUB_PUBLISH_MESSAGE", "DAPR_PUBSUB_PUBLISH_MESSAGE",
                          pubsubname, msg);
        goto out;
    }
    rc = http_respond(req, 204, NULL, NULL, 0);
out:
    publish_metadata_free(meta, nmeta);
    free(data);
    free(err);
    free(msg);
    return rc;
}

/* Go's json.Unmarshal matches struct fields case-insensitively. */
static json_t *get_fold(const json_t *obj, const char *key)
{
    const char *k;
    json_t *v, *found = json_object_get(obj, key);
    if (found)
        return found;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (strcasecmp(k, key) == 0)
            return v;
    }
    return NULL;
}

/* One bulk entry once converted. */
typedef struct {
    const char *entry_id;
    const char *content_type;
    char *bytes; /* the event bytes, then the envelope */
    size_t len;
    broker_header_t meta[BROKER_MAX_HEADERS]; /* borrowed strings */
    size_t nmeta;
} bulk_entry_t;

/* Checks the shape of the bulk body as Go's json.Unmarshal into []bulkPublishMessageEntry
 * would: an array (or null) of objects (or null) whose entryId and contentType are strings and
 * whose metadata is an object of strings. */
static bool bulk_shape_ok(const json_t *arr, char **why)
{
    if (json_is_null(arr))
        return true;
    if (!json_is_array(arr)) {
        *why = xstrdup("json: cannot unmarshal the body into a list of entries");
        return false;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i), *f;
        if (json_is_null(e))
            continue;
        if (!json_is_object(e)) {
            *why = xasprintf("json: entry %zu is not an object", i);
            return false;
        }
        const char *strs[] = {"entryId", "contentType"};
        for (size_t j = 0; j < 2; j++) {
            f = get_fold(e, strs[j]);
            if (f && !json_is_null(f) && !json_is_string(f)) {
                *why = xasprintf("json: entry %zu: %s is not a string", i, strs[j]);
                return false;
            }
        }
        f = get_fold(e, "metadata");
        if (f && !json_is_null(f)) {
            const char *k;
            json_t *v;
            if (!json_is_object(f)) {
                *why = xasprintf("json: entry %zu: metadata is not an object", i);
                return false;
            }
            json_object_foreach((json_t *)f, k, v)
            {
                if (!json_is_string(v)) {
                    *why = xasprintf("json: entry %zu: metadata %s is not a string", i, k);
                    return false;
                }
            }
        }
    }
    return true;
}

static const char *str_or_empty(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The bulk error body: {"failedEntries":[{"entryId","error"}],"errorCode"} (http.go). */
static int bulk_failed(http_req_t *req, int status, const char *code, json_t *failed)
{
    json_t *body = json_object();
    json_object_set(body, "failedEntries", failed);
    json_object_set_new(body, "errorCode", json_string(code));
    int rc = http_respond_json(req, status, body);
    json_decref(body);
    return rc;
}

/* POST|PUT /v1.0-alpha1/publish/bulk/… and /v1.0/publish/bulk/… — §1.4 (http.go
 * onBulkPublish). */
static int on_bulk_publish(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    const char *pubsubname = req->params[0], *topic = req->params[1];
    broker_header_t meta[BROKER_MAX_HEADERS];
    size_t nmeta = 0, n = 0;
    json_t *arr = NULL, *failed = json_array();
    bulk_entry_t *entries = NULL;
    char *why = NULL, *msg = NULL;
    json_error_t jerr;
    bool raw;
    int rc = 0;

    if (!sidecar_authorized(s, req))
        goto out;
    sidecar_pubsub_t *ps = validate(req, s, pubsubname, topic, &rc);
    if (!ps)
        goto out;
    nmeta = publish_query_metadata(req->query, meta, BROKER_MAX_HEADERS);
    if (!publish_raw_payload(meta, nmeta, &raw)) {
        rc = metadata_error(req, pubsubname, meta, nmeta);
        goto out;
    }
    arr = json_loadb(req->body, req->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!arr)
        why = xstrdup(jerr.text);
    if (!arr || !bulk_shape_ok(arr, &why) || json_array_size(arr) > MAX_BULK_ENTRIES) {
        msg = xasprintf("error when unmarshaling the request for topic %s pubsub %s: %s", topic,
                        pubsubname, why ? why : "too many entries");
        rc = pubsub_error(req, 400, "ERR_PUBSUB_EVENTS_SER", "DAPR_PUBSUB_UNMARSHAL_EVENTS",
                          pubsubname, msg);
        goto out;
    }
    n = json_array_size(arr);
    entries = xcalloc(n ? n : 1, sizeof(*entries));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        bulk_entry_t *be = &entries[i];
        be->entry_id = str_or_empty(json_is_object(e) ? get_fold(e, "entryId") : NULL);
        be->content_type = str_or_empty(json_is_object(e) ? get_fold(e, "contentType") : NULL);
        const json_t *ev = json_is_object(e) ? get_fold(e, "event") : NULL;
        json_t *null = json_null();
        if (cloudevent_bulk_event_bytes(ev ? ev : null, be->content_type, &be->bytes, &be->len,
                                        &why) != 0) {
            msg = xasprintf("error when marshalling events to bytes for topic %s pubsub %s: %s",
                            topic, pubsubname, why);
            rc = pubsub_error(req, 400, "ERR_PUBSUB_EVENTS_SER", "DAPR_PUBSUB_MARSHAL_EVENTS",
                              pubsubname, msg);
            goto out;
        }
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(entries[j].entry_id, be->entry_id) == 0;
        if (!*be->entry_id || dup) {
            msg = xasprintf("error when marshalling events to bytes for topic %s pubsub %s: "
                            "error: entryId is duplicated or not present for entry",
                            topic, pubsubname);
            rc = pubsub_error(req, 400, "ERR_PUBSUB_EVENTS_SER", "DAPR_PUBSUB_MARSHAL_EVENTS",
                              pubsubname, msg);
            goto out;
        }
        /* request metadata, then the entry's (which overrides) */
        for (size_t j = 0; j < nmeta; j++)
            be->meta[be->nmeta++] = meta[j];
        const json_t *em = json_is_object(e) ? get_fold(e, "metadata") : NULL;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)em, k, v)
        {
            size_t j = 0;
            while (j < be->nmeta && strcmp(be->meta[j].name, k) != 0)
                j++;
            if (j == be->nmeta && be->nmeta == BROKER_MAX_HEADERS)
                continue;
            be->meta[j].name = k;
            be->meta[j].value = json_string_value(v);
            if (j == be->nmeta)
                be->nmeta++;
        }
    }
    if (!raw) {
        const char *ts = http_req_header(req, "tracestate");
        for (size_t i = 0; i < n; i++) {
            bulk_entry_t *be = &entries[i];
            char tp[56], *env = NULL;
            size_t elen;
            child_traceparent(req->traceparent, tp);
            cloudevent_req_t cr = {.app_id = s->opt.app_id,
                                   .pubsubname = pubsubname,
                                   .topic = topic,
                                   .content_type = be->content_type,
                                   .traceparent = tp,
                                   .tracestate = ts ? ts : "",
                                   .data = be->bytes,
                                   .len = be->len,
                                   .meta = be->meta,
                                   .nmeta = be->nmeta,
                                   .now_usec = time_now_usec()};
            free(why);
            why = NULL;
            if (cloudevent_envelope(&cr, &env, &elen, &why) != 0) {
                msg = xasprintf("error when marshalling cloud event envelope for topic %s pubsub "
                                "%s: %s",
                                topic, pubsubname, why ? why : "");
                rc = pubsub_error(req, 500, "ERR_PUBSUB_CLOUD_EVENTS_SER",
                                  "DAPR_PUBSUB_CLOUD_EVENT_CREATION", pubsubname, msg);
                goto out;
            }
            free(be->bytes);
            be->bytes = env;
            be->len = elen;
        }
    }
    if (!publish_topic_allowed(ps->component, s->opt.app_id, topic)) {
        msg = xasprintf("topic %s is not allowed for app id %s", topic, s->opt.app_id);
        for (size_t i = 0; i < n; i++) {
            json_t *f = json_object();
            json_object_set_new(f, "entryId", json_string(entries[i].entry_id));
            json_object_set_new(f, "error", json_string(msg));
            json_array_append_new(failed, f);
        }
        rc = bulk_failed(req, 403, "ERR_PUBSUB_FORBIDDEN", failed);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bulk_entry_t *be = &entries[i];
        if (publish_record(ps, topic, be->bytes, be->len, be->meta, be->nmeta) != 0) {
            json_t *f = json_object();
            json_object_set_new(f, "entryId", json_string(be->entry_id));
            json_object_set_new(f, "error", json_string("the broker did not accept the message"));
            json_array_append_new(failed, f);
        }
    }
    if (json_array_size(failed) > 0)
        rc = bulk_failed(req, 500, "ERR_PUBSUB_PUBLISH_MESSAGE", failed);
    else
        rc = http_respond(req, 204, NULL, NULL, 0);
out:
    for (size_t i = 0; entries && i < n; i++)
        free(entries[i].bytes);
    free(entries);
    publish_metadata_free(meta, nmeta);
    json_decref(arr);
    json_decref(failed);
    free(why);
    free(msg);
    return rc;
}

int publish_api_register(sidecar_t *s)
{
    static const char *const methods[] = {"POST", "PUT"};
    int rc = 0;
    /* the bulk routes first: "bulk" would otherwise be read as a pubsub name (chi prefers the
     * literal segment) */
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        rc = http_server_route(s->server, methods[i],
                               "/v1.0-alpha1/publish/bulk/{pubsubname}/{topic*}", on_bulk_publish,
                               s);
        if (rc == 0)
            rc = http_server_route(s->server, methods[i],
                                   "/v1.0/publish/bulk/{pubsubname}/{topic*}", on_bulk_publish, s);
    }
    for (size_t i = 0; rc == 0 && i < 2; i++)
        rc = http_server_route(s->server, methods[i], "/v1.0/publish/{pubsubname}/{topic*}",
                               on_publish, s);
    return rc;
}
