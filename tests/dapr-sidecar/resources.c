/* Loading of the --resources-path folders with libyaml: Components, Subscriptions (v1alpha1,
 * v2alpha1) and Resiliencies scoped to the app, secretKeyRef resolution against the loaded secret
 * stores, the inbound Resiliency lookup chain, and Go durations. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "resources.h"
#include "secrets.h"
#include "todo/alloc.h"
#include "todo/log.h"

#define MODULE         "resources"
#define MAX_FILE_BYTES (4u * 1024u * 1024u)
#define MAX_FILES      1024
#define MAX_ITEMS      1024 /* components, subscriptions, resiliencies, policies per resiliency */
#define MAX_SCOPES     256

typedef struct {
    size_t comp, meta;
    char *store, *name, *key;
} secret_ref_t;

typedef struct {
    const char *app_id;
    resources_t *r;
    char **err;
    const char *file;    /* current file (borrowed) */
    size_t doc;          /* index of the current document in its file */
    yaml_document_t *yd; /* current document (borrowed) */
    secret_ref_t *refs;
    size_t nrefs;
    char **sub_names; /* every declarative subscription name seen, for duplicates */
    size_t nsub_names;
} loader_t;

static const char *const SUPPORTED_TYPES[] = {
    "pubsub.kafka",
    "pubsub.redis",
    "state.postgresql",
    "secretstores.local.env",
    "secretstores.local.file",
};

/* ---- Go durations ---------------------------------------------------------------------------- */

int res_duration_parse(const char *s, int64_t *out_ns)
{
    /* DAPR-CONTRACT §4: durations are Go time.ParseDuration strings. */
    const uint64_t max = (uint64_t)1 << 63; /* |INT64_MIN| */
    const char *p = s;
    bool neg = false;
    uint64_t total = 0;

    if (!s)
        return TODO_EBAD_REQUEST;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    if (!*p)
        return TODO_EBAD_REQUEST;
    while (*p) {
        uint64_t whole = 0, frac = 0;
        double scale = 1;
        bool digits = false, fdigits = false;
        while (*p >= '0' && *p <= '9') {
            if (whole > (max - 9) / 10)
                return TODO_EBAD_REQUEST;
            whole = whole * 10 + (uint64_t)(*p++ - '0');
            digits = true;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (frac < (uint64_t)1e17) { /* further digits cannot matter at ns precision */
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                p++;
                fdigits = true;
            }
        }
        if (!digits && !fdigits)
            return TODO_EBAD_REQUEST;
        const char *u = p;
        while (*p && *p != '.' && !(*p >= '0' && *p <= '9'))
            p++;
        size_t ul = (size_t)(p - u);
        uint64_t unit;
        if (ul == 2 && memcmp(u, "ns", 2) == 0)
            unit = 1;
        else if ((ul == 2 && memcmp(u, "us", 2) == 0) ||
                 (ul == 3 && memcmp(u, "\xc2\xb5s", 3) == 0) || /* U+00B5 micro sign */
                 (ul == 3 && memcmp(u, "\xce\xbcs", 3) == 0))   /* U+03BC Greek mu */
            unit = 1000;
        else if (ul == 2 && memcmp(u, "ms", 2) == 0)
            unit = 1000000;
        else if (ul == 1 && *u == 's')
            unit = 1000000000;
        else if (ul == 1 && *u == 'm')
            unit = 60ull * 1000000000;
        else if (ul == 1 && *u == 'h')
            unit = 3600ull * 1000000000;
        else
            return TODO_EBAD_REQUEST; /* missing or unknown unit */
        if (whole > max / unit)
            return TODO_EBAD_REQUEST;
        uint64_t v = whole * unit;
        if (fdigits && frac) {
            v += (uint64_t)((double)frac * ((double)unit / scale));
            if (v > max)
                return TODO_EBAD_REQUEST;
        }
        if (v > max - total)
            return TODO_EBAD_REQUEST;
        total += v;
    }
    if (!neg && total > max - 1)
        return TODO_EBAD_REQUEST;
    *out_ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}

int res_duration_ms(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return TODO_EBAD_REQUEST;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    bool all_digits = *p != '\0';
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            all_digits = false;
    if (all_digits) {
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || *end)
            return TODO_EBAD_REQUEST;
        *out_ms = v;
        return 0;
    }
    int64_t ns;
    if (res_duration_parse(s, &ns) != 0)
        return TODO_EBAD_REQUEST;
    *out_ms = ns / 1000000;
    return 0;
}

/* ---- errors and YAML helpers ----------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int fail(loader_t *L, const char *fmt, ...)
{
    if (*L->err == NULL) {
        va_list ap;
        char msg[1024];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        *L->err = xasprintf("%s: %s", L->file ? L->file : "resources", msg);
    }
    return TODO_EBAD_REQUEST;
}

static yaml_node_t *get(loader_t *L, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(L->yd, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(L->yd, p->value);
    }
    return NULL;
}

static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* The text of a scalar ("" for a null), NULL when n is absent or not a scalar. */
static const char *scalar(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    return is_null(n) ? "" : (const char *)n->data.scalar.value;
}

/* Reads an optional string field: absent/null → NULL; a non-scalar → error. */
static int opt_string(loader_t *L, yaml_node_t *map, const char *key, const char *what,
                      const char **out)
{
    yaml_node_t *n = get(L, map, key);
    *out = NULL;
    if (!n || is_null(n))
        return 0;
    if (n->type != YAML_SCALAR_NODE)
        return fail(L, "%s: %s must be a string", what, key);
    *out = (const char *)n->data.scalar.value;
    return 0;
}

static int req_string(loader_t *L, yaml_node_t *map, const char *key, const char *what,
                      const char **out)
{
    if (opt_string(L, map, key, what, out))
        return TODO_EBAD_REQUEST;
    if (!*out || !**out)
        return fail(L, "%s: %s is required", what, key);
    return 0;
}

static int opt_int(loader_t *L, yaml_node_t *map, const char *key, const char *what, int64_t *out)
{
    const char *s;
    if (opt_string(L, map, key, what, &s))
        return TODO_EBAD_REQUEST;
    if (!s)
        return 0;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return fail(L, "%s: %s '%s' is not an integer", what, key, s);
    *out = v;
    return 0;
}

static int opt_duration_ms(loader_t *L, yaml_node_t *map, const char *key, const char *what,
                           int64_t *out)
{
    const char *s;
    if (opt_string(L, map, key, what, &s))
        return TODO_EBAD_REQUEST;
    if (s && res_duration_ms(s, out) != 0)
        return fail(L, "%s: %s '%s' is not a duration", what, key, s);
    return 0;
}

static int read_scopes(loader_t *L, yaml_node_t *root, const char *what, char ***out, size_t *n)
{
    yaml_node_t *s = get(L, root, "scopes");
    *out = NULL;
    *n = 0;
    if (!s || is_null(s))
        return 0;
    if (s->type != YAML_SEQUENCE_NODE)
        return fail(L, "%s: scopes must be a list", what);
    size_t count = (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
    if (count > MAX_SCOPES)
        return fail(L, "%s: more than %d scopes", what, MAX_SCOPES);
    *out = xcalloc(count ? count : 1, sizeof(char *));
    for (yaml_node_item_t *it = s->data.sequence.items.start; it < s->data.sequence.items.top;
         it++) {
        const char *v = scalar(yaml_document_get_node(L->yd, *it));
        if (!v)
            return fail(L, "%s: every scope must be a string", what);
        (*out)[(*n)++] = xstrdup(v);
    }
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool in_scope(char **scopes, size_t n, const char *app_id)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (app_id && strcmp(scopes[i], app_id) == 0)
            return true;
    return false;
}

/* Grows *arr (elements of size sz) to hold one more than *n; false past MAX_ITEMS. */
static bool grow(void **arr, size_t n, size_t sz)
{
    if (n >= MAX_ITEMS)
        return false;
    if ((n & (n - 1)) == 0) { /* 0, 1, 2, 4, 8, …: double */
        *arr = xrealloc(*arr, (n ? n * 2 : 1) * sz);
    }
    return true;
}

static void meta_dispose(res_meta_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].value);
    }
}

/* ---- Component ------------------------------------------------------------------------------- */

static void component_dispose(res_component_t *c)
{
    free(c->name);
    free(c->type);
    free(c->version);
    meta_dispose(c->meta, c->nmeta);
    free_strv(c->scopes, c->nscopes);
    free(c->secret_store);
    free(c->file);
    memset(c, 0, sizeof(*c));
}

static bool type_supported(const char *type)
{
    for (size_t i = 0; i < sizeof(SUPPORTED_TYPES) / sizeof(SUPPORTED_TYPES[0]); i++)
        if (strcmp(type, SUPPORTED_TYPES[i]) == 0)
            return true;
    return false;
}

/* DAPR-CONTRACT §9.2. */
static int load_component(loader_t *L, yaml_node_t *root)
{
    int rc = TODO_EBAD_REQUEST;
    res_component_t c = {0};
    secret_ref_t *refs = NULL;
    size_t nrefs = 0;
    const char *name, *type, *version, *store;
    yaml_node_t *md = get(L, root, "metadata"), *spec = get(L, root, "spec");

    if (req_string(L, md, "name", "Component", &name))
        goto out;
    char what[300];
    snprintf(what, sizeof(what), "Component %s", name);
    if (!spec || spec->type != YAML_MAPPING_NODE) {
        fail(L, "%s: spec is required", what);
        goto out;
    }
    if (req_string(L, spec, "type", what, &type) || opt_string(L, spec, "version", what, &version))
        goto out;
    if (opt_string(L, get(L, root, "auth"), "secretStore", what, &store))
        goto out;
    c.name = xstrdup(name);
    c.type = xstrdup(type);
    c.version = xstrdup(version ? version : "");
    c.secret_store = store && *store ? xstrdup(store) : NULL;
    c.file = xstrdup(L->file);
    if (read_scopes(L, root, what, &c.scopes, &c.nscopes))
        goto out;

    yaml_node_t *meta = get(L, spec, "metadata");
    if (meta && !is_null(meta) && meta->type != YAML_SEQUENCE_NODE) {
        fail(L, "%s: spec.metadata must be a list", what);
        goto out;
    }
    if (meta && meta->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = meta->data.sequence.items.start;
             it < meta->data.sequence.items.top; it++) {
            yaml_node_t *item = yaml_document_get_node(L->yd, *it);
            const char *mname, *env;
            if (!item || item->type != YAML_MAPPING_NODE) {
                fail(L, "%s: every spec.metadata item must be a map", what);
                goto out;
            }
            if (req_string(L, item, "name", what, &mname) ||
                opt_string(L, item, "envRef", what, &env))
                goto out;
            if (c.nmeta >= RES_MAX_META) {
                fail(L, "%s: more than %d metadata items", what, RES_MAX_META);
                goto out;
            }
            res_meta_t *m = &c.meta[c.nmeta++];
            m->name = xstrdup(mname);
            yaml_node_t *ref = get(L, item, "secretKeyRef");
            yaml_node_t *value = get(L, item, "value");
            if (ref && !is_null(ref)) {
                const char *sname, *skey;
                if (ref->type != YAML_MAPPING_NODE) {
                    fail(L, "%s: metadata %s: secretKeyRef must be a map", what, mname);
                    goto out;
                }
                if (req_string(L, ref, "name", what, &sname) ||
                    opt_string(L, ref, "key", what, &skey))
                    goto out;
                /* Self-hosted daprd leaves a reference without auth.secretStore unresolved; the
                 * double refuses it so that a mistake is seen at start-up. */
                if (!c.secret_store) {
                    fail(L, "%s: metadata %s uses secretKeyRef but auth.secretStore is not set",
                         what, mname);
                    goto out;
                }
                refs = xrealloc(refs, (nrefs + 1) * sizeof(*refs));
                refs[nrefs++] = (secret_ref_t){.meta = c.nmeta - 1,
                                               .store = xstrdup(c.secret_store),
                                               .name = xstrdup(sname),
                                               .key = xstrdup(skey && *skey ? skey : sname)};
                m->value = xstrdup("");
            } else if (value && !is_null(value)) {
                if (value->type != YAML_SCALAR_NODE) {
                    fail(L, "%s: metadata %s: only scalar values are supported", what, mname);
                    goto out;
                }
                m->value = xstrdup((const char *)value->data.scalar.value);
            } else if (env && *env) {
                const char *v = getenv(env);
                m->value = xstrdup(v ? v : "");
            } else {
                m->value = xstrdup("");
            }
        }
    }

    if (!in_scope(c.scopes, c.nscopes, L->app_id)) {
        log_info(MODULE, "%s: component %s is not scoped to app %s; skipped", L->file, name,
                 L->app_id ? L->app_id : "");
        rc = 0;
        goto out;
    }
    if (!type_supported(c.type)) {
        const char *ignore = scalar(get(L, spec, "ignoreErrors"));
        if (ignore && strcmp(ignore, "true") == 0) {
            /* daprd goes on without a component that fails to initialise when ignoreErrors. */
            log_warn(MODULE,
                     "%s: %s: type %s is not supported by the sidecar double; skipped "
                     "(spec.ignoreErrors)",
                     L->file, what, c.type);
            rc = 0;
            goto out;
        }
        fail(L,
             "%s: type %s is not supported by the sidecar double (supported: pubsub.kafka, "
             "pubsub.redis, state.postgresql, secretstores.local.env, "
             "secretstores.local.file)",
             what, c.type);
        goto out;
    }
    if (resources_component(L->r, c.name)) {
        fail(L, "%s: a component of that name is already loaded", what);
        goto out;
    }
    resources_t *r = L->r;
    if (!grow((void **)&r->components, r->ncomponents, sizeof(res_component_t))) {
        fail(L, "more than %d components", MAX_ITEMS);
        goto out;
    }
    L->refs = xrealloc(L->refs, (L->nrefs + nrefs + 1) * sizeof(*L->refs));
    for (size_t i = 0; i < nrefs; i++) {
        refs[i].comp = r->ncomponents;
        L->refs[L->nrefs++] = refs[i];
    }
    nrefs = 0;
    r->components[r->ncomponents++] = c;
    memset(&c, 0, sizeof(c));
    rc = 0;
out:
    for (size_t i = 0; i < nrefs; i++) {
        free(refs[i].store);
        free(refs[i].name);
        free(refs[i].key);
    }
    free(refs);
    component_dispose(&c);
    return rc;
}

/* ---- Subscription ---------------------------------------------------------------------------- */

static void subscription_dispose(res_subscription_t *s)
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
    meta_dispose(s->meta, s->nmeta);
    memset(s, 0, sizeof(*s));
}

/* DAPR-CONTRACT §2.2: v2alpha1 (routes) or v1alpha1 (route), top-level scopes. */
static int load_subscription(loader_t *L, yaml_node_t *root, bool v1)
{
    int rc = TODO_EBAD_REQUEST;
    res_subscription_t s = {0};
    char **scopes = NULL;
    size_t nscopes = 0;
    const char *name, *ns, *pubsub, *topic, *dlq;
    yaml_node_t *md = get(L, root, "metadata"), *spec = get(L, root, "spec");

    if (req_string(L, md, "name", "Subscription", &name) ||
        opt_string(L, md, "namespace", "Subscription", &ns))
        goto out;
    char what[300];
    snprintf(what, sizeof(what), "Subscription %s", name);
    for (size_t i = 0; i < L->nsub_names; i++)
        if (strcmp(L->sub_names[i], name) == 0) {
            fail(L, "%s: duplicate subscription name", what);
            goto out;
        }
    if (L->nsub_names >= MAX_ITEMS) {
        fail(L, "more than %d subscriptions", MAX_ITEMS);
        goto out;
    }
    L->sub_names = xrealloc(L->sub_names, (L->nsub_names + 1) * sizeof(char *));
    L->sub_names[L->nsub_names++] = xstrdup(name);

    if (!spec || spec->type != YAML_MAPPING_NODE) {
        fail(L, "%s: spec is required", what);
        goto out;
    }
    if (req_string(L, spec, "pubsubname", what, &pubsub) ||
        req_string(L, spec, "topic", what, &topic) ||
        opt_string(L, spec, "deadLetterTopic", what, &dlq))
        goto out;
    s.name = xstrdup(name);
    s.pubsubname = xstrdup(pubsub);
    s.topic = xstrdup(topic);
    s.dead_letter_topic = dlq && *dlq ? xstrdup(dlq) : NULL;
    if (v1) {
        const char *route;
        if (req_string(L, spec, "route", what, &route))
            goto out;
        s.default_path = xstrdup(route);
    } else {
        yaml_node_t *routes = get(L, spec, "routes");
        const char *def;
        if (!routes || routes->type != YAML_MAPPING_NODE) {
            fail(L, "%s: spec.routes is required", what);
            goto out;
        }
        if (opt_string(L, routes, "default", what, &def))
            goto out;
        s.default_path = def && *def ? xstrdup(def) : NULL;
        yaml_node_t *rules = get(L, routes, "rules");
        if (rules && !is_null(rules)) {
            if (rules->type != YAML_SEQUENCE_NODE) {
                fail(L, "%s: routes.rules must be a list", what);
                goto out;
            }
            for (yaml_node_item_t *it = rules->data.sequence.items.start;
                 it < rules->data.sequence.items.top; it++) {
                yaml_node_t *rule = yaml_document_get_node(L->yd, *it);
                const char *match, *path;
                if (!rule || rule->type != YAML_MAPPING_NODE) {
                    fail(L, "%s: every routes.rules item must be a map", what);
                    goto out;
                }
                if (opt_string(L, rule, "match", what, &match) ||
                    opt_string(L, rule, "path", what, &path))
                    goto out;
                if (s.nrules >= RES_MAX_RULES) {
                    fail(L, "%s: more than %d rules", what, RES_MAX_RULES);
                    goto out;
                }
                s.rules[s.nrules].match = xstrdup(match ? match : "");
                s.rules[s.nrules].path = xstrdup(path ? path : "");
                s.nrules++;
            }
        }
    }
    yaml_node_t *meta = get(L, spec, "metadata");
    if (meta && !is_null(meta)) {
        if (meta->type != YAML_MAPPING_NODE) {
            fail(L, "%s: spec.metadata must be a map", what);
            goto out;
        }
        for (yaml_node_pair_t *p = meta->data.mapping.pairs.start; p < meta->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(yaml_document_get_node(L->yd, p->key));
            const char *v = scalar(yaml_document_get_node(L->yd, p->value));
            if (!k || !v) {
                fail(L, "%s: spec.metadata must map strings to strings", what);
                goto out;
            }
            if (s.nmeta >= RES_MAX_META) {
                fail(L, "%s: more than %d metadata entries", what, RES_MAX_META);
                goto out;
            }
            s.meta[s.nmeta].name = xstrdup(k);
            s.meta[s.nmeta].value = xstrdup(v);
            s.nmeta++;
        }
    }
    yaml_node_t *bulk = get(L, spec, "bulkSubscribe");
    if (bulk && !is_null(bulk)) {
        const char *enabled;
        if (bulk->type != YAML_MAPPING_NODE) {
            fail(L, "%s: bulkSubscribe must be a map", what);
            goto out;
        }
        if (opt_string(L, bulk, "enabled", what, &enabled) ||
            opt_int(L, bulk, "maxMessagesCount", what, &s.bulk_max_messages) ||
            opt_int(L, bulk, "maxAwaitDurationMs", what, &s.bulk_max_await_ms))
            goto out;
        if (!enabled) {
            fail(L, "%s: bulkSubscribe.enabled is required", what);
            goto out;
        }
        s.bulk_enabled = strcmp(enabled, "true") == 0 || strcmp(enabled, "True") == 0;
    }
    if (read_scopes(L, root, what, &scopes, &nscopes))
        goto out;

    const char *env_ns = getenv("NAMESPACE");
    if (!in_scope(scopes, nscopes, L->app_id)) {
        log_info(MODULE, "%s: subscription %s is not scoped to app %s; skipped", L->file, name,
                 L->app_id ? L->app_id : "");
    } else if (env_ns && *env_ns && ns && *ns && strcmp(env_ns, ns) != 0) {
        log_info(MODULE, "%s: subscription %s is in namespace %s, not %s; skipped", L->file, name,
                 ns, env_ns);
    } else if (s.nrules == 0 && !s.default_path) {
        log_warn(MODULE, "%s: subscription %s has no routes; skipped", L->file, name);
    } else {
        resources_t *r = L->r;
        if (!grow((void **)&r->subscriptions, r->nsubscriptions, sizeof(res_subscription_t))) {
            fail(L, "more than %d subscriptions", MAX_ITEMS);
            goto out;
        }
        r->subscriptions[r->nsubscriptions++] = s;
        memset(&s, 0, sizeof(s));
    }
    rc = 0;
out:
    free_strv(scopes, nscopes);
    subscription_dispose(&s);
    return rc;
}

/* ---- Resiliency ------------------------------------------------------------------------------ */

static void resiliency_dispose(res_resiliency_t *x)
{
    free(x->name);
    free_strv(x->scopes, x->nscopes);
    for (size_t i = 0; i < x->nretries; i++) {
        free(x->retries[i].name);
        free(x->retries[i].http_status_codes);
    }
    free(x->retries);
    for (size_t i = 0; i < x->ntimeouts; i++)
        free(x->timeouts[i].name);
    free(x->timeouts);
    for (size_t i = 0; i < x->ncircuit_breakers; i++) {
        free(x->circuit_breakers[i].name);
        free(x->circuit_breakers[i].trip);
    }
    free(x->circuit_breakers);
    for (size_t i = 0; i < x->ntargets; i++) {
        res_component_target_t *t = &x->targets[i];
        free(t->component);
        free(t->inbound_retry);
        free(t->inbound_timeout);
        free(t->inbound_circuit_breaker);
        free(t->outbound_retry);
        free(t->outbound_timeout);
        free(t->outbound_circuit_breaker);
    }
    free(x->targets);
    memset(x, 0, sizeof(*x));
}

/* "500-599,429": codes or ranges within 100–599 (DAPR-CONTRACT §4 matching). */
static bool status_codes_valid(const char *s)
{
    const char *p = s;
    if (!*p)
        return false;
    while (*p) {
        char *end;
        long lo = strtol(p, &end, 10), hi;
        if (end == p || lo < 100 || lo > 599)
            return false;
        p = end;
        hi = lo;
        if (*p == '-') {
            p++;
            hi = strtol(p, &end, 10);
            if (end == p || hi < lo || hi > 599)
                return false;
            p = end;
        }
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return false;
        while (*p == ' ')
            p++;
    }
    return true;
}

static int load_retry(loader_t *L, const char *name, yaml_node_t *def, res_retry_t *r)
{
    char what[300];
    const char *policy, *codes;
    snprintf(what, sizeof(what), "Resiliency retry %s", name);
    r->name = xstrdup(name);
    r->policy = RES_RETRY_CONSTANT;
    r->duration_ms = 5000;
    r->max_interval_ms = 60000;
    r->max_retries = -1;
    if (!def || def->type != YAML_MAPPING_NODE)
        return fail(L, "%s: must be a map", what);
    if (opt_string(L, def, "policy", what, &policy) ||
        opt_duration_ms(L, def, "duration", what, &r->duration_ms) ||
        opt_duration_ms(L, def, "maxInterval", what, &r->max_interval_ms) ||
        opt_int(L, def, "maxRetries", what, &r->max_retries) ||
        opt_string(L, get(L, def, "matching"), "httpStatusCodes", what, &codes))
        return TODO_EBAD_REQUEST;
    if (policy && *policy) {
        if (strcmp(policy, "constant") == 0)
            r->policy = RES_RETRY_CONSTANT;
        else if (strcmp(policy, "exponential") == 0)
            r->policy = RES_RETRY_EXPONENTIAL;
        else
            return fail(L, "%s: policy '%s' is not constant or exponential", what, policy);
    }
    if (codes && *codes) {
        if (!status_codes_valid(codes))
            return fail(L,
                        "%s: matching.httpStatusCodes '%s' is not a list of codes or ranges "
                        "within 100-599",
                        what, codes);
        r->http_status_codes = xstrdup(codes);
    }
    return 0;
}

static int load_cb(loader_t *L, const char *name, yaml_node_t *def, res_circuit_breaker_t *cb)
{
    char what[300];
    const char *trip;
    snprintf(what, sizeof(what), "Resiliency circuit breaker %s", name);
    cb->name = xstrdup(name);
    cb->max_requests = 1;
    cb->interval_ms = 0;
    cb->timeout_ms = 60000;
    if (!def || def->type != YAML_MAPPING_NODE)
        return fail(L, "%s: must be a map", what);
    if (opt_int(L, def, "maxRequests", what, &cb->max_requests) ||
        opt_duration_ms(L, def, "interval", what, &cb->interval_ms) ||
        opt_duration_ms(L, def, "timeout", what, &cb->timeout_ms) ||
        opt_string(L, def, "trip", what, &trip))
        return TODO_EBAD_REQUEST;
    cb->trip = trip && *trip ? xstrdup(trip) : NULL;
    return 0;
}

static int direction_names(loader_t *L, yaml_node_t *dir, const char *what, char **retry,
                           char **timeout, char **cb)
{
    const char *r, *t, *c;
    if (!dir || is_null(dir))
        return 0;
    if (dir->type != YAML_MAPPING_NODE)
        return fail(L, "%s: inbound/outbound must be maps", what);
    if (opt_string(L, dir, "retry", what, &r) || opt_string(L, dir, "timeout", what, &t) ||
        opt_string(L, dir, "circuitBreaker", what, &c))
        return TODO_EBAD_REQUEST;
    *retry = r && *r ? xstrdup(r) : NULL;
    *timeout = t && *t ? xstrdup(t) : NULL;
    *cb = c && *c ? xstrdup(c) : NULL;
    return 0;
}

static bool has_retry(const res_resiliency_t *x, const char *n)
{
    for (size_t i = 0; i < x->nretries; i++)
        if (strcmp(x->retries[i].name, n) == 0)
            return true;
    return false;
}

static bool has_timeout(const res_resiliency_t *x, const char *n)
{
    for (size_t i = 0; i < x->ntimeouts; i++)
        if (strcmp(x->timeouts[i].name, n) == 0)
            return true;
    return false;
}

static bool has_cb(const res_resiliency_t *x, const char *n)
{
    for (size_t i = 0; i < x->ncircuit_breakers; i++)
        if (strcmp(x->circuit_breakers[i].name, n) == 0)
            return true;
    return false;
}

/* DAPR-CONTRACT §4. */
static int load_resiliency(loader_t *L, yaml_node_t *root)
{
    int rc = TODO_EBAD_REQUEST;
    res_resiliency_t x = {0};
    const char *name;
    yaml_node_t *spec = get(L, root, "spec");

    if (req_string(L, get(L, root, "metadata"), "name", "Resiliency", &name))
        goto out;
    char what[300];
    snprintf(what, sizeof(what), "Resiliency %s", name);
    x.name = xstrdup(name);
    if (read_scopes(L, root, what, &x.scopes, &x.nscopes))
        goto out;
    if (!in_scope(x.scopes, x.nscopes, L->app_id)) {
        log_info(MODULE, "%s: resiliency %s is not scoped to app %s; skipped", L->file, name,
                 L->app_id ? L->app_id : "");
        rc = 0;
        goto out;
    }
    yaml_node_t *policies = get(L, spec, "policies");
    if (!policies || policies->type != YAML_MAPPING_NODE) {
        fail(L, "%s: spec.policies is required", what);
        goto out;
    }
    yaml_node_t *timeouts = get(L, policies, "timeouts"), *retries = get(L, policies, "retries"),
                *cbs = get(L, policies, "circuitBreakers");
    if (timeouts && timeouts->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = timeouts->data.mapping.pairs.start;
             p < timeouts->data.mapping.pairs.top; p++) {
            const char *k = scalar(yaml_document_get_node(L->yd, p->key));
            const char *v = scalar(yaml_document_get_node(L->yd, p->value));
            int64_t ms;
            if (!k || !v || res_duration_ms(v, &ms) != 0) {
                fail(L, "%s: timeout %s: '%s' is not a duration", what, k ? k : "?", v ? v : "?");
                goto out;
            }
            if (!grow((void **)&x.timeouts, x.ntimeouts, sizeof(res_timeout_t))) {
                fail(L, "%s: too many timeouts", what);
                goto out;
            }
            x.timeouts[x.ntimeouts++] = (res_timeout_t){.name = xstrdup(k), .ms = ms};
        }
    } else if (timeouts && !is_null(timeouts)) {
        fail(L, "%s: policies.timeouts must be a map", what);
        goto out;
    }
    if (retries && retries->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = retries->data.mapping.pairs.start;
             p < retries->data.mapping.pairs.top; p++) {
            const char *k = scalar(yaml_document_get_node(L->yd, p->key));
            if (!k || !grow((void **)&x.retries, x.nretries, sizeof(res_retry_t))) {
                fail(L, "%s: bad or too many retries", what);
                goto out;
            }
            memset(&x.retries[x.nretries], 0, sizeof(res_retry_t));
            x.nretries++;
            if (load_retry(L, k, yaml_document_get_node(L->yd, p->value),
                           &x.retries[x.nretries - 1]))
                goto out;
        }
    } else if (retries && !is_null(retries)) {
        fail(L, "%s: policies.retries must be a map", what);
        goto out;
    }
    if (cbs && cbs->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = cbs->data.mapping.pairs.start; p < cbs->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(yaml_document_get_node(L->yd, p->key));
            if (!k || !grow((void **)&x.circuit_breakers, x.ncircuit_breakers,
                            sizeof(res_circuit_breaker_t))) {
                fail(L, "%s: bad or too many circuit breakers", what);
                goto out;
            }
            memset(&x.circuit_breakers[x.ncircuit_breakers], 0, sizeof(res_circuit_breaker_t));
            x.ncircuit_breakers++;
            if (load_cb(L, k, yaml_document_get_node(L->yd, p->value),
                        &x.circuit_breakers[x.ncircuit_breakers - 1]))
                goto out;
        }
    } else if (cbs && !is_null(cbs)) {
        fail(L, "%s: policies.circuitBreakers must be a map", what);
        goto out;
    }

    yaml_node_t *targets = get(L, spec, "targets");
    if (!targets || targets->type != YAML_MAPPING_NODE) {
        fail(L, "%s: spec.targets is required", what);
        goto out;
    }
    yaml_node_t *comps = get(L, targets, "components");
    if (comps && comps->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = comps->data.mapping.pairs.start;
             p < comps->data.mapping.pairs.top; p++) {
            const char *k = scalar(yaml_document_get_node(L->yd, p->key));
            yaml_node_t *def = yaml_document_get_node(L->yd, p->value);
            if (!k || !grow((void **)&x.targets, x.ntargets, sizeof(res_component_target_t))) {
                fail(L, "%s: bad or too many component targets", what);
                goto out;
            }
            res_component_target_t *t = &x.targets[x.ntargets++];
            memset(t, 0, sizeof(*t));
            t->component = xstrdup(k);
            if (direction_names(L, get(L, def, "inbound"), what, &t->inbound_retry,
                                &t->inbound_timeout, &t->inbound_circuit_breaker) ||
                direction_names(L, get(L, def, "outbound"), what, &t->outbound_retry,
                                &t->outbound_timeout, &t->outbound_circuit_breaker))
                goto out;
            const char *bad = NULL;
            if (t->inbound_retry && !has_retry(&x, t->inbound_retry))
                bad = t->inbound_retry;
            else if (t->outbound_retry && !has_retry(&x, t->outbound_retry))
                bad = t->outbound_retry;
            else if (t->inbound_timeout && !has_timeout(&x, t->inbound_timeout))
                bad = t->inbound_timeout;
            else if (t->outbound_timeout && !has_timeout(&x, t->outbound_timeout))
                bad = t->outbound_timeout;
            else if (t->inbound_circuit_breaker && !has_cb(&x, t->inbound_circuit_breaker))
                bad = t->inbound_circuit_breaker;
            else if (t->outbound_circuit_breaker && !has_cb(&x, t->outbound_circuit_breaker))
                bad = t->outbound_circuit_breaker;
            if (bad) {
                fail(L, "%s: target component %s names policy %s, which is not defined", what, k,
                     bad);
                goto out;
            }
        }
    } else if (comps && !is_null(comps)) {
        fail(L, "%s: targets.components must be a map", what);
        goto out;
    }

    resources_t *r = L->r;
    if (!grow((void **)&r->resiliencies, r->nresiliencies, sizeof(res_resiliency_t))) {
        fail(L, "more than %d resiliencies", MAX_ITEMS);
        goto out;
    }
    r->resiliencies[r->nresiliencies++] = x;
    memset(&x, 0, sizeof(x));
    rc = 0;
out:
    resiliency_dispose(&x);
    return rc;
}

/* ---- files ----------------------------------------------------------------------------------- */

static int load_document(loader_t *L, yaml_node_t *root)
{
    if (!root || root->type != YAML_MAPPING_NODE) {
        if (!is_null(root))
            log_info(MODULE, "%s: document %zu is not a map; skipped", L->file, L->doc + 1);
        return 0;
    }
    const char *kind = scalar(get(L, root, "kind"));
    const char *api = scalar(get(L, root, "apiVersion"));
    kind = kind ? kind : "";
    api = api ? api : "";
    /* daprd's loader keeps a manifest only when both apiVersion and kind match. */
    if (strcmp(kind, "Component") == 0 && strcmp(api, "dapr.io/v1alpha1") == 0)
        return load_component(L, root);
    if (strcmp(kind, "Subscription") == 0 && strcmp(api, "dapr.io/v2alpha1") == 0)
        return load_subscription(L, root, false);
    if (strcmp(kind, "Subscription") == 0 && strcmp(api, "dapr.io/v1alpha1") == 0)
        return load_subscription(L, root, true);
    if (strcmp(kind, "Resiliency") == 0 && strcmp(api, "dapr.io/v1alpha1") == 0) {
        /* DAPR-CONTRACT §4: daprd parses a Resiliency file as one YAML document. */
        if (L->doc > 0) {
            log_warn(MODULE,
                     "%s: Resiliency in document %zu skipped: daprd reads a Resiliency only as "
                     "the first document of its file",
                     L->file, L->doc + 1);
            return 0;
        }
        return load_resiliency(L, root);
    }
    log_info(MODULE,
             "%s: kind '%s' (apiVersion '%s') is not loaded by the sidecar double; "
             "skipped",
             L->file, kind, api);
    return 0;
}

static int load_file(loader_t *L, const char *path)
{
    int rc = TODO_EBAD_REQUEST;
    FILE *f = NULL;
    unsigned char *data = NULL;
    struct stat st;
    yaml_parser_t parser;
    bool parser_ok = false;

    L->file = path;
    f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0) {
        fail(L, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (st.st_size < 0 || (size_t)st.st_size > MAX_FILE_BYTES) {
        fail(L, "larger than %u bytes", MAX_FILE_BYTES);
        goto out;
    }
    data = xmalloc((size_t)st.st_size + 1);
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size) {
        fail(L, "cannot read");
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        fail(L, "cannot initialise the YAML parser");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, data, n);
    for (L->doc = 0;; L->doc++) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            fail(L, "malformed YAML at line %zu column %zu: %s%s%s",
                 (size_t)parser.problem_mark.line + 1, (size_t)parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "error", parser.context ? " " : "",
                 parser.context ? parser.context : "");
            goto out;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) { /* end of stream */
            yaml_document_delete(&doc);
            break;
        }
        L->yd = &doc;
        int drc = load_document(L, root);
        L->yd = NULL;
        yaml_document_delete(&doc);
        if (drc)
            goto out;
        if (L->doc >= MAX_ITEMS) {
            fail(L, "more than %d documents", MAX_ITEMS);
            goto out;
        }
    }
    rc = 0;
out:
    if (parser_ok)
        yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    free(data);
    L->file = NULL;
    return rc;
}

static bool is_yaml(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir(loader_t *L, const char *dir)
{
    int rc = TODO_EBAD_REQUEST;
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0;

    if (!d) {
        L->file = dir;
        fail(L, "cannot open resources folder: %s", strerror(errno));
        L->file = NULL;
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || strcmp(e->d_name, "..") == 0))
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (!is_yaml(e->d_name)) {
            log_warn(MODULE, "%s: not a YAML file; not loaded", path);
            free(path);
            continue;
        }
        if (n >= MAX_FILES) {
            free(path);
            L->file = dir;
            fail(L, "more than %d YAML files", MAX_FILES);
            L->file = NULL;
            goto out;
        }
        names = xrealloc(names, (n + 1) * sizeof(char *));
        names[n++] = path;
    }
    if (n > 0) /* daprd reads a folder in file name order */
        qsort(names, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (load_file(L, names[i]))
            goto out;
    rc = 0;
out:
    if (d)
        closedir(d);
    free_strv(names, n);
    return rc;
}

/* Looks up every secretKeyRef once all secret stores are loaded (file order does not matter). */
static int resolve_secrets(loader_t *L)
{
    resources_t *r = L->r;
    for (size_t i = 0; i < L->nrefs; i++) {
        secret_ref_t *ref = &L->refs[i];
        res_component_t *c = &r->components[ref->comp];
        const res_component_t *store = resources_component(r, ref->store);
        json_t *secret = NULL;
        char *serr = NULL;
        L->file = c->file;
        if (!store || !secrets_is_store(store))
            return fail(L, "Component %s: secret store %s (auth.secretStore) is not loaded",
                        c->name, ref->store);
        if (secrets_get(store, ref->name, &secret, &serr) != 0) {
            fail(L, "Component %s: metadata %s: %s", c->name, c->meta[ref->meta].name,
                 serr ? serr : "secret lookup failed");
            free(serr);
            return TODO_EBAD_REQUEST;
        }
        const char *v = json_string_value(json_object_get(secret, ref->key));
        if (!v) {
            json_decref(secret);
            return fail(L, "Component %s: metadata %s: secret %s has no key %s in store %s",
                        c->name, c->meta[ref->meta].name, ref->name, ref->key, ref->store);
        }
        free(c->meta[ref->meta].value);
        c->meta[ref->meta].value = xstrdup(v);
        json_decref(secret);
        L->file = NULL;
    }
    return 0;
}

int resources_load(const char *const *paths, size_t npaths, const char *app_id, resources_t *out,
                   char **err)
{
    int rc = TODO_EBAD_REQUEST;
    loader_t L = {.app_id = app_id, .r = out, .err = err};

    memset(out, 0, sizeof(*out));
    *err = NULL;
    for (size_t i = 0; i < npaths; i++)
        if (load_dir(&L, paths[i]))
            goto out;
    if (resolve_secrets(&L))
        goto out;
    log_info(MODULE, "loaded %zu components, %zu subscriptions, %zu resiliencies", out->ncomponents,
             out->nsubscriptions, out->nresiliencies);
    rc = 0;
out:
    for (size_t i = 0; i < L.nrefs; i++) {
        free(L.refs[i].store);
        free(L.refs[i].name);
        free(L.refs[i].key);
    }
    free(L.refs);
    free_strv(L.sub_names, L.nsub_names);
    if (rc) {
        if (!*err)
            *err = xstrdup("resources could not be loaded");
        resources_dispose(out);
    }
    return rc;
}

void resources_dispose(resources_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ncomponents; i++)
        component_dispose(&r->components[i]);
    free(r->components);
    for (size_t i = 0; i < r->nsubscriptions; i++)
        subscription_dispose(&r->subscriptions[i]);
    free(r->subscriptions);
    for (size_t i = 0; i < r->nresiliencies; i++)
        resiliency_dispose(&r->resiliencies[i]);
    free(r->resiliencies);
    memset(r, 0, sizeof(*r));
}

/* ---- lookups --------------------------------------------------------------------------------- */

const res_component_t *resources_component(const resources_t *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->ncomponents; i++)
        if (strcmp(r->components[i].name, name) == 0)
            return &r->components[i];
    return NULL;
}

const char *res_component_meta(const res_component_t *c, const char *key)
{
    for (size_t i = 0; c && key && i < c->nmeta; i++)
        if (strcmp(c->meta[i].name, key) == 0)
            return c->meta[i].value;
    /* Dapr decodes component metadata into structs case-insensitively. */
    for (size_t i = 0; c && key && i < c->nmeta; i++)
        if (strcasecmp(c->meta[i].name, key) == 0)
            return c->meta[i].value;
    return NULL;
}

static const res_retry_t *find_retry(const resources_t *r, const char *name)
{
    for (size_t i = 0; i < r->nresiliencies; i++)
        for (size_t j = 0; j < r->resiliencies[i].nretries; j++)
            if (strcmp(r->resiliencies[i].retries[j].name, name) == 0)
                return &r->resiliencies[i].retries[j];
    return NULL;
}

static const res_timeout_t *find_timeout(const resources_t *r, const char *name)
{
    for (size_t i = 0; i < r->nresiliencies; i++)
        for (size_t j = 0; j < r->resiliencies[i].ntimeouts; j++)
            if (strcmp(r->resiliencies[i].timeouts[j].name, name) == 0)
                return &r->resiliencies[i].timeouts[j];
    return NULL;
}

static const res_component_target_t *find_target(const resources_t *r, const char *component,
                                                 bool want_retry)
{
    for (size_t i = 0; i < r->nresiliencies; i++)
        for (size_t j = 0; j < r->resiliencies[i].ntargets; j++) {
            const res_component_target_t *t = &r->resiliencies[i].targets[j];
            if (strcmp(t->component, component) == 0 &&
                (want_retry ? t->inbound_retry != NULL : t->inbound_timeout != NULL))
                return t;
        }
    return NULL;
}

/* DAPR-CONTRACT §3.3 (1) and §4: the named inbound policy of the component target, else the
 * first default template that exists, most specific first. */
const res_retry_t *resources_inbound_retry(const resources_t *r, const char *component)
{
    static const char *const defaults[] = {
        "DefaultPubsubComponentInboundRetryPolicy",
        "DefaultComponentInboundRetryPolicy",
        "DefaultComponentRetryPolicy",
        "DefaultRetryPolicy",
    };
    if (!r)
        return NULL;
    const res_component_target_t *t = component ? find_target(r, component, true) : NULL;
    if (t) {
        const res_retry_t *p = find_retry(r, t->inbound_retry);
        if (p)
            return p;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        const res_retry_t *p = find_retry(r, defaults[i]);
        if (p)
            return p;
    }
    return NULL;
}

const res_timeout_t *resources_inbound_timeout(const resources_t *r, const char *component)
{
    static const char *const defaults[] = {
        "DefaultPubsubComponentInboundTimeoutPolicy",
        "DefaultComponentInboundTimeoutPolicy",
        "DefaultComponentTimeoutPolicy",
        "DefaultTimeoutPolicy",
    };
    if (!r)
        return NULL;
    const res_component_target_t *t = component ? find_target(r, component, false) : NULL;
    if (t) {
        const res_timeout_t *p = find_timeout(r, t->inbound_timeout);
        if (p)
            return p;
    }
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        const res_timeout_t *p = find_timeout(r, defaults[i]);
        if (p)
            return p;
    }
    return NULL;
}
