/* Health and metadata endpoints of the sidecar double: /v1.0/healthz, /v1.0/healthz/outbound,
 * GET /v1.0/metadata and PUT /v1.0/metadata/{key} (DAPR-CONTRACT §8.2, §8.4). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sidecar.h"
#include "todo/alloc.h"
#include "todo/log.h"

#define RUNTIME_VERSION "1.18.3"
#define EXTENDED_MAX    64

/* The extended metadata set by PUT /v1.0/metadata/{key}: one sidecar per process. */
static pthread_mutex_t extended_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *extended; /* object, guarded by extended_mu */

/* A kit "rich" error with only an ErrorInfo whose metadata is meta (takes; NULL = null), as
 * dapr's HealthNotReady/HealthAppIDNotMatch/HealthOutboundNotReady build it (§0.1). */
static int health_error(http_req_t *req, const char *code, const char *message, json_t *meta)
{
    json_t *body = json_object(), *details = json_array(), *info = json_object();
    int rc;

    json_object_set_new(body, "errorCode", json_string(code));
    json_object_set_new(body, "message", json_string(message));
    json_object_set_new(info, "@type", json_string("type.googleapis.com/google.rpc.ErrorInfo"));
    json_object_set_new(info, "domain", json_string("dapr.io"));
    json_object_set_new(info, "metadata", meta ? meta : json_null());
    json_object_set_new(info, "reason", json_string(code));
    json_array_append_new(details, info);
    json_object_set_new(body, "details", details);
    rc = sidecar_respond_json(req, 500, body);
    json_decref(body);
    return rc;
}

static int on_healthz(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    const char *appid;

    /* §8.2: 204 once components, the HTTP server and the app channel are ready (and, with an
     * app, its subscriptions are loaded). */
    if (!atomic_load(&s->outbound_ready) || !atomic_load(&s->app_ready)) {
        const char *target = !atomic_load(&s->outbound_ready) ? "outbound" : "app";
        json_t *meta = json_object();
        char msg[64];
        snprintf(msg, sizeof(msg), "dapr is not ready: [%s]", target);
        json_object_set_new(meta, "unhealthyTargets", json_string(target));
        json_object_set_new(meta, "unhealthyTargetsCount", json_string("1"));
        return health_error(req, "ERR_HEALTH_NOT_READY", msg, meta);
    }
    appid = http_req_query_param(req, "appid");
    if (appid && strcmp(appid, s->opt.app_id) != 0) {
        json_t *meta = json_object();
        json_object_set_new(meta, "appID", json_string(s->opt.app_id));
        json_t *req_id = json_string(appid);
        json_object_set_new(meta, "requestedAppID", req_id ? req_id : json_string(""));
        return health_error(req, "ERR_HEALTH_APPID_NOT_MATCH", "dapr app-id does not match", meta);
    }
    return http_respond(req, 204, NULL, NULL, 0);
}

static int on_healthz_outbound(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    if (!atomic_load(&s->outbound_ready))
        return health_error(req, "ERR_OUTBOUND_HEALTH_NOT_READY", "dapr outbound is not ready",
                            NULL);
    return http_respond(req, 204, NULL, NULL, 0);
}

/* The capabilities daprd reports for a component type (its Features()). */
static void add_capabilities(json_t *comp, const res_component_t *c)
{
    static const struct {
        const char *type;
        const char *features[4];
    } known[] = {
        {"pubsub.kafka", {"BULK_PUBLISH"}},
        {"state.postgresql", {"ETAG", "TRANSACTIONAL", "TTL"}},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(known[i].type, c->type) != 0)
            continue;
        json_t *caps = json_array();
        for (size_t j = 0; j < 4 && known[i].features[j]; j++)
            json_array_append_new(caps, json_string(known[i].features[j]));
        if (strncmp(c->type, "state.", 6) == 0 && res_component_meta(c, "actorStateStore") &&
            strcasecmp(res_component_meta(c, "actorStateStore"), "true") == 0)
            json_array_append_new(caps, json_string("ACTOR"));
        json_object_set_new(comp, "capabilities", caps);
    }
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A Go map[string]string: keys sorted. */
static json_t *sorted_object(const json_t *obj)
{
    size_t n = json_object_size(obj), i = 0;
    const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
    const char *k;
    json_t *v, *out = json_object();
    json_object_foreach((json_t *)obj, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), cmp_keys);
    for (i = 0; i < n; i++)
        json_object_set(out, keys[i], json_object_get(obj, keys[i]));
    free(keys);
    return out;
}

static json_t *subscription_json(const res_subscription_t *sub)
{
    json_t *o = json_object();
    json_object_set_new(o, "pubsubname", json_string(sub->pubsubname ? sub->pubsubname : ""));
    json_object_set_new(o, "topic", json_string(sub->topic ? sub->topic : ""));
    if (sub->nmeta > 0) {
        json_t *m = json_object();
        for (size_t i = 0; i < sub->nmeta; i++)
            json_object_set_new(m, sub->meta[i].name,
                                json_string(sub->meta[i].value ? sub->meta[i].value : ""));
        json_object_set_new(o, "metadata", sorted_object(m));
        json_decref(m);
    }
    /* The default route is the last rule, with no match (§8.4; omitempty on match and path). */
    if (sub->nrules > 0 || sub->default_path) {
        json_t *rules = json_array();
        for (size_t i = 0; i < sub->nrules; i++) {
            json_t *r = json_object();
            if (sub->rules[i].match && *sub->rules[i].match)
                json_object_set_new(r, "match", json_string(sub->rules[i].match));
            if (sub->rules[i].path && *sub->rules[i].path)
                json_object_set_new(r, "path", json_string(sub->rules[i].path));
            json_array_append_new(rules, r);
        }
        if (sub->default_path) {
            json_t *r = json_object();
            if (*sub->default_path)
                json_object_set_new(r, "path", json_string(sub->default_path));
            json_array_append_new(rules, r);
        }
        json_object_set_new(o, "rules", rules);
    }
    json_object_set_new(o, "deadLetterTopic",
                        json_string(sub->dead_letter_topic ? sub->dead_letter_topic : ""));
    json_object_set_new(o, "type", json_string(sub->programmatic ? "PROGRAMMATIC" : "DECLARATIVE"));
    return o;
}

static int on_get_metadata(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    json_t *body, *comps, *ext, *acp, *actors;
    int rc;

    if (!sidecar_authorized(s, req))
        return 0;
    /* dapr pkg/api/http/metadata.go metadataResponse: fields in struct order, omitempty. */
    body = json_object();
    json_object_set_new(body, "id", json_string(s->opt.app_id));
    json_object_set_new(body, "runtimeVersion", json_string(RUNTIME_VERSION));
    comps = json_array();
    for (size_t i = 0; i < s->res.ncomponents; i++) {
        const res_component_t *c = &s->res.components[i];
        json_t *o = json_object();
        if (c->name && *c->name)
            json_object_set_new(o, "name", json_string(c->name));
        if (c->type && *c->type)
            json_object_set_new(o, "type", json_string(c->type));
        if (c->version && *c->version)
            json_object_set_new(o, "version", json_string(c->version));
        add_capabilities(o, c);
        json_array_append_new(comps, o);
    }
    if (json_array_size(comps) > 0)
        json_object_set(body, "components", comps);
    json_decref(comps);
    pthread_mutex_lock(&extended_mu);
    ext = extended ? json_deep_copy(extended) : json_object();
    pthread_mutex_unlock(&extended_mu);
    json_object_set_new(ext, "daprRuntimeVersion", json_string(RUNTIME_VERSION));
    json_object_set_new(body, "extended", sorted_object(ext));
    json_decref(ext);
    if (atomic_load(&s->app_ready) && s->nsubscriptions > 0) {
        json_t *subs = json_array();
        for (size_t i = 0; i < s->nsubscriptions; i++)
            json_array_append_new(subs, subscription_json(s->subscriptions[i]));
        json_object_set_new(body, "subscriptions", subs);
    }
    acp = json_object();
    if (s->opt.app_port > 0)
        json_object_set_new(acp, "port", json_integer(s->opt.app_port));
    json_object_set_new(acp, "protocol", json_string("http"));
    if (s->opt.app_channel_address && *s->opt.app_channel_address)
        json_object_set_new(acp, "channelAddress", json_string(s->opt.app_channel_address));
    if (s->opt.app_max_concurrency != 0)
        json_object_set_new(acp, "maxConcurrency", json_integer(s->opt.app_max_concurrency));
    json_object_set_new(body, "appConnectionProperties", acp);
    actors = json_object();
    json_object_set_new(actors, "runtimeStatus", json_string("DISABLED"));
    json_object_set_new(actors, "hostReady", json_false());
    json_object_set_new(body, "actorRuntime", actors);
    rc = sidecar_respond_json(req, 200, body);
    json_decref(body);
    return rc;
}

static int on_put_metadata(http_req_t *req)
{
    sidecar_t *s = req->route_arg;
    const char *key = req->params[0];
    json_t *value;

    if (!sidecar_authorized(s, req))
        return 0;
    /* universal SetMetadata: the raw body is the value; an empty key is a no-op. */
    value = json_stringn(req->body, req->body_len);
    if (!value) {
        /* Not UTF-8 (or a NUL): Go's encoder would write U+FFFD for each bad byte. */
        char *clean = xmalloc(req->body_len * 3 + 1), *d = clean;
        for (size_t i = 0; i < req->body_len; i++) {
            unsigned char c = (unsigned char)req->body[i];
            if (c >= 0x80 || c == 0) {
                memcpy(d, "\xEF\xBF\xBD", 3);
                d += 3;
            } else {
                *d++ = (char)c;
            }
        }
        *d = '\0';
        value = json_string(clean);
        free(clean);
    }
    pthread_mutex_lock(&extended_mu);
    if (!extended)
        extended = json_object();
    if (json_object_size(extended) < EXTENDED_MAX || json_object_get(extended, key))
        json_object_set_new(extended, key, value);
    else {
        json_decref(value);
        log_warn("meta", "extended metadata holds %d keys; %s is not stored", EXTENDED_MAX, key);
    }
    pthread_mutex_unlock(&extended_mu);
    return http_respond(req, 204, NULL, NULL, 0);
}

int meta_api_register(sidecar_t *s)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn fn;
    } routes[] = {
        {"GET", "/v1.0/healthz", on_healthz},
        {"GET", "/v1.0/healthz/outbound", on_healthz_outbound},
        {"GET", "/v1.0/metadata", on_get_metadata},
        {"PUT", "/v1.0/metadata/{key}", on_put_metadata},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = http_server_route(s->server, routes[i].method, routes[i].pattern, routes[i].fn, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void meta_api_dispose(void)
{
    pthread_mutex_lock(&extended_mu);
    json_decref(extended);
    extended = NULL;
    pthread_mutex_unlock(&extended_mu);
}
