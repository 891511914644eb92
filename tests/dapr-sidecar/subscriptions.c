/* Subscriptions of the sidecar double: GET /dapr/subscribe replies read as dapr's
 * GetSubscriptionsHTTP reads them, the `event.type == "…"` rule subset, the merge with declarative
 * subscriptions and topic scopes. DAPR-CONTRACT §2.1, §2.2, §1.5. */
#include "subscriptions.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/log.h"

/* ---- Go encoding/json reading of []SubscriptionJSON ---- */

/* The value of the key of obj that Go would decode into field name: keys are matched case-
 * insensitively, and when several match, the last one decoded wins. */
static json_t *field(const json_t *obj, const char *name)
{
    const char *key;
    json_t *v, *found = NULL;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcasecmp(key, name) == 0)
            found = v;
    }
    return found;
}

/* A Go string field: absent or null leave it "" (NULL here); a non-string is an error. */
static bool get_string(const json_t *obj, const char *name, char **out, char **err)
{
    json_t *v = field(obj, name);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        *err = xasprintf("json: cannot unmarshal into Go struct field .%s of type string", name);
        return false;
    }
    free(*out);
    *out = xstrdup(json_string_value(v));
    return true;
}

static bool get_int32(const json_t *obj, const char *name, int64_t *out, char **err)
{
    json_t *v = field(obj, name);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX) {
        *err = xasprintf("json: cannot unmarshal into Go struct field .%s of type int32", name);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static void sub_dispose(res_subscription_t *s)
{
    free(s->name);
    free(s->pubsubname);
    free(s->topic);
    for (size_t i = 0; i < s->nrules; i++) {
        free(s->rules[i].match);
        free(s->rules[i].path);
    }
    free(s->default_path);
    free(s->dead_letter_topic);
    for (size_t i = 0; i < s->nmeta; i++) {
        free(s->meta[i].name);
        free(s->meta[i].value);
    }
    memset(s, 0, sizeof(*s));
}

void subscriptions_free_list(res_subscription_t *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        sub_dispose(&list[i]);
    free(list);
}

static char *trimmed(const char *s)
{
    size_t n;
    while (*s && isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return xstrndup(s, n);
}

/* One element of the array into sub (zeroed by the caller). */
static bool read_entry(const json_t *e, res_subscription_t *sub, char **err)
{
    json_t *meta, *routes, *bulk;
    char *route = NULL, *def = NULL;
    bool ok = false;

    sub->programmatic = true;
    sub->name = xstrdup("");
    if (json_is_null(e)) {
        ok = true;
        goto out;
    }
    if (!json_is_object(e)) {
        *err = xstrdup("json: cannot unmarshal a non-object into Go value of type "
                       "pubsub.SubscriptionJSON");
        goto out;
    }
    if (!get_string(e, "pubsubname", &sub->pubsubname, err) ||
        !get_string(e, "topic", &sub->topic, err) ||
        !get_string(e, "deadLetterTopic", &sub->dead_letter_topic, err) ||
        !get_string(e, "route", &route, err))
        goto out;
    meta = field(e, "metadata");
    if (meta && !json_is_null(meta)) {
        const char *k;
        json_t *v;
        if (!json_is_object(meta)) {
            *err = xstrdup("json: cannot unmarshal into Go struct field .metadata of type "
                           "map[string]string");
            goto out;
        }
        json_object_foreach(meta, k, v)
        {
            if (!json_is_string(v) && !json_is_null(v)) {
                *err = xasprintf("json: cannot unmarshal into Go struct field .metadata.%s of "
                                 "type string",
                                 k);
                goto out;
            }
            if (sub->nmeta >= RES_MAX_META) {
                *err = xasprintf("more than %d metadata entries", RES_MAX_META);
                goto out;
            }
            sub->meta[sub->nmeta].name = xstrdup(k);
            sub->meta[sub->nmeta].value = xstrdup(json_is_string(v) ? json_string_value(v) : "");
            sub->nmeta++;
        }
    }
    routes = field(e, "routes");
    if (routes && !json_is_null(routes)) {
        json_t *rules;
        if (!json_is_object(routes)) {
            *err = xstrdup("json: cannot unmarshal into Go struct field .routes of type "
                           "pubsub.RoutesJSON");
            goto out;
        }
        if (!get_string(routes, "default", &def, err))
            goto out;
        rules = field(routes, "rules");
        if (rules && !json_is_null(rules)) {
            size_t i;
            json_t *r;
            if (!json_is_array(rules)) {
                *err = xstrdup("json: cannot unmarshal into Go struct field .routes.rules of "
                               "type []*pubsub.RuleJSON");
                goto out;
            }
            json_array_foreach(rules, i, r)
            {
                char *match = NULL, *path = NULL;
                if (!json_is_object(r)) {
                    *err = xstrdup("a rule of routes.rules is not an object");
                    goto out;
                }
                if (sub->nrules >= RES_MAX_RULES) {
                    *err = xasprintf("more than %d rules", RES_MAX_RULES);
                    goto out;
                }
                if (!get_string(r, "match", &match, err) || !get_string(r, "path", &path, err)) {
                    free(match);
                    free(path);
                    goto out;
                }
                /* createRoutingRule trims the match; an empty one matches everything. */
                sub->rules[sub->nrules].match = trimmed(match ? match : "");
                sub->rules[sub->nrules].path = path ? path : xstrdup("");
                sub->nrules++;
                free(match);
            }
        }
    }
    bulk = field(e, "bulkSubscribe");
    if (bulk && !json_is_null(bulk)) {
        json_t *en;
        if (!json_is_object(bulk)) {
            *err = xstrdup("json: cannot unmarshal into Go struct field .bulkSubscribe of type "
                           "pubsub.BulkSubscribeJSON");
            goto out;
        }
        en = field(bulk, "enabled");
        if (en && !json_is_null(en)) {
            if (!json_is_boolean(en)) {
                *err = xstrdup("json: cannot unmarshal into Go struct field .bulkSubscribe.enabled "
                               "of type bool");
                goto out;
            }
            sub->bulk_enabled = json_is_true(en);
        }
        if (!get_int32(bulk, "maxMessagesCount", &sub->bulk_max_messages, err) ||
            !get_int32(bulk, "maxAwaitDurationMs", &sub->bulk_max_await_ms, err))
            goto out;
    }
    /* DAPR-CONTRACT §2.1: routes.default beats route; route only when default is empty. */
    if (def && *def) {
        sub->default_path = def;
        def = NULL;
    } else if (route && *route) {
        sub->default_path = route;
        route = NULL;
    }
    ok = true;
out:
    free(route);
    free(def);
    return ok;
}

int subscriptions_parse(const char *body, size_t len, res_subscription_t **out, size_t *n,
                        char **err)
{
    int rc = TODO_EINVALID_JSON;
    json_error_t jerr;
    json_t *root = NULL;
    res_subscription_t *list = NULL;
    size_t count = 0, kept = 0;

    *out = NULL;
    *n = 0;
    *err = NULL;
    /* json.Decoder.Decode: the first value only; an empty body is io.EOF. */
    root = json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &jerr);
    if (!root) {
        size_t i = 0;
        while (i < len && isspace((unsigned char)body[i]))
            i++;
        *err = i == len ? xstrdup("EOF") : xasprintf("invalid JSON: %s", jerr.text);
        goto out;
    }
    if (json_is_null(root)) {
        rc = 0;
        goto out;
    }
    if (!json_is_array(root)) {
        *err = xstrdup("json: cannot unmarshal a non-array into Go value of type "
                       "[]pubsub.SubscriptionJSON");
        goto out;
    }
    count = json_array_size(root);
    if (count > SIDECAR_MAX_SUBSCRIPTIONS) {
        *err = xasprintf("the app returned %zu subscriptions; the double keeps at most %d", count,
                         SIDECAR_MAX_SUBSCRIPTIONS);
        goto out;
    }
    list = xcalloc(count ? count : 1, sizeof(*list));
    for (size_t i = 0; i < count; i++) {
        res_subscription_t *sub = &list[kept];
        char *why = NULL;
        if (!read_entry(json_array_get(root, i), sub, err)) {
            sub_dispose(sub);
            goto out;
        }
        if (sub->nrules == 0 && !sub->default_path) {
            /* filterSubscriptions */
            log_warn("subscriptions",
                     "topic %s has an empty routes. removing from subscriptions list",
                     sub->topic ? sub->topic : "");
            sub_dispose(sub);
            continue;
        }
        if (!subscriptions_supported(sub, &why)) {
            log_error("subscriptions",
                      "refusing the subscription to topic %s of pubsub %s from /dapr/subscribe: %s",
                      sub->topic ? sub->topic : "", sub->pubsubname ? sub->pubsubname : "", why);
            free(why);
            sub_dispose(sub);
            continue;
        }
        if (!sub->pubsubname)
            sub->pubsubname = xstrdup("");
        if (!sub->topic)
            sub->topic = xstrdup("");
        kept++;
    }
    *out = list;
    *n = kept;
    list = NULL;
    count = 0;
    rc = 0;
out:
    if (list)
        subscriptions_free_list(list, kept);
    json_decref(root);
    return rc;
}

/* ---- rules ---- */

bool subscriptions_match_parse(const char *match, char **type)
{
    static const char lhs[] = "event.type";
    const char *p = match ? match : "";
    buf_t b;
    char quote;
    bool ok = false;

    *type = NULL;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return true;
    buf_init(&b, 4096);
    if (strncmp(p, lhs, sizeof(lhs) - 1) != 0)
        goto out;
    p += sizeof(lhs) - 1;
    while (isspace((unsigned char)*p))
        p++;
    if (strncmp(p, "==", 2) != 0)
        goto out;
    p += 2;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '"' && *p != '\'')
        goto out;
    quote = *p++;
    for (; *p && *p != quote; p++) {
        char c = *p;
        if (c == '\\') {
            c = *++p;
            if (c != '\\' && c != '"' && c != '\'')
                goto out;
        }
        if (buf_append(&b, &c, 1) != 0)
            goto out;
    }
    if (*p != quote)
        goto out;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    if (*p)
        goto out;
    *type = buf_steal(&b);
    if (!*type)
        *type = xstrdup("");
    ok = true;
out:
    buf_dispose(&b);
    return ok;
}

bool subscriptions_supported(const res_subscription_t *sub, char **why)
{
    *why = NULL;
    for (size_t i = 0; i < sub->nrules; i++) {
        char *type = NULL;
        if (!subscriptions_match_parse(sub->rules[i].match, &type)) {
            *why = xasprintf("the rule match `%s` is not supported by the sidecar double (only "
                             "`event.type == \"…\"` and an empty match are)",
                             sub->rules[i].match);
            return false;
        }
        free(type);
    }
    return true;
}

const char *subscriptions_route(const res_subscription_t *sub, const json_t *event)
{
    for (size_t i = 0; i < sub->nrules; i++) {
        char *type = NULL;
        const char *path = sub->rules[i].path ? sub->rules[i].path : "";
        if (!subscriptions_match_parse(sub->rules[i].match, &type))
            return NULL; /* refused at load; never here */
        if (!type)
            return path;
        /* CEL over {"event": <cloudevent>}: a missing key is an evaluation error; a type of
         * another JSON kind is simply unequal (heterogeneous equality). */
        json_t *t = json_is_object(event) ? json_object_get(event, "type") : NULL;
        if (!t) {
            free(type);
            return NULL;
        }
        bool hit = json_is_string(t) && strcmp(json_string_value(t), type) == 0;
        free(type);
        if (hit)
            return path;
    }
    return sub->default_path ? sub->default_path : "";
}

/* ---- merge and scopes ---- */

static bool same_target(const res_subscription_t *a, const res_subscription_t *b)
{
    return strcmp(a->pubsubname ? a->pubsubname : "", b->pubsubname ? b->pubsubname : "") == 0 &&
           strcmp(a->topic ? a->topic : "", b->topic ? b->topic : "") == 0;
}

void subscriptions_merge(sidecar_t *s, res_subscription_t *list, size_t n)
{
    subscriptions_dispose(s);
    s->programmatic = list;
    s->nprogrammatic = n;
    for (size_t i = 0; i < n && s->nsubscriptions < SIDECAR_MAX_SUBSCRIPTIONS; i++)
        s->subscriptions[s->nsubscriptions++] = &list[i];
    for (size_t i = 0; i < s->res.nsubscriptions; i++) {
        res_subscription_t *d = &s->res.subscriptions[i];
        bool shadowed = false;
        char *why = NULL;
        for (size_t j = 0; j < n && !shadowed; j++)
            shadowed = same_target(d, &list[j]);
        if (shadowed) {
            log_info("subscriptions",
                     "declarative subscription %s (pubsub %s, topic %s) is replaced by the app's "
                     "programmatic one",
                     d->name ? d->name : "", d->pubsubname, d->topic);
            continue;
        }
        if (!subscriptions_supported(d, &why)) {
            log_error("subscriptions", "refusing the declarative subscription %s: %s",
                      d->name ? d->name : "", why);
            free(why);
            continue;
        }
        if (s->nsubscriptions >= SIDECAR_MAX_SUBSCRIPTIONS) {
            log_error("subscriptions", "more than %d subscriptions; %s is ignored",
                      SIDECAR_MAX_SUBSCRIPTIONS, d->name ? d->name : "");
            continue;
        }
        s->subscriptions[s->nsubscriptions++] = d;
    }
}

void subscriptions_dispose(sidecar_t *s)
{
    subscriptions_free_list(s->programmatic, s->nprogrammatic);
    s->programmatic = NULL;
    s->nprogrammatic = 0;
    s->nsubscriptions = 0;
}

/* The component metadata value of key (case-insensitive), or NULL. */
static const char *meta_ci(const res_component_t *c, const char *key)
{
    for (size_t i = 0; i < c->nmeta; i++) {
        if (strcasecmp(c->meta[i].name, key) == 0)
            return c->meta[i].value;
    }
    return NULL;
}

/* True when the comma list (spaces removed) holds topic; *any = the list has an entry. */
static bool list_has(const char *list, size_t len, const char *topic, bool *any)
{
    size_t tlen = strlen(topic);
    size_t i = 0;
    bool found = false;
    while (i <= len) {
        char item[512];
        size_t k = 0;
        for (; i < len && list[i] != ','; i++) {
            if (list[i] != ' ' && k + 1 < sizeof(item))
                item[k++] = list[i];
        }
        i++;
        item[k] = '\0';
        if (k > 0) {
            *any = true;
            if (k == tlen && memcmp(item, topic, k) == 0)
                found = true;
        }
    }
    return found;
}

bool subscriptions_topic_allowed(const res_component_t *c, const char *app_id, const char *topic)
{
    const char *allowed = meta_ci(c, "allowedTopics");
    const char *protected_topics = meta_ci(c, "protectedTopics");
    const char *scopes = meta_ci(c, "subscriptionScopes");
    bool any = false, in_protected = false, scoped_any = false, in_scope = false;

    if (allowed && *allowed) {
        bool listed = list_has(allowed, strlen(allowed), topic, &any);
        if (any && !listed)
            return false;
    }
    if (protected_topics && *protected_topics)
        in_protected = list_has(protected_topics, strlen(protected_topics), topic, &any);
    if (scopes && *scopes) {
        /* "app1=t1,t2;app2=t3": the topics of this app (GetScopedTopics). */
        const char *p = scopes;
        while (*p) {
            size_t n = strcspn(p, ";");
            const char *eq = memchr(p, '=', n);
            if (eq) {
                char app[256];
                size_t k = 0;
                for (const char *q = p; q < eq; q++) {
                    if (*q != ' ' && k + 1 < sizeof(app))
                        app[k++] = *q;
                }
                app[k] = '\0';
                if (strcmp(app, app_id) == 0 &&
                    list_has(eq + 1, (size_t)(p + n - eq - 1), topic, &scoped_any))
                    in_scope = true;
            }
            p += n;
            if (*p == ';')
                p++;
        }
    }
    if (!in_protected && !scoped_any)
        return true;
    return in_scope;
}
