/* secretstores.local.env and secretstores.local.file: reading one secret or all of them as JSON
 * objects of string values. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "secrets.h"
#include "todo/alloc.h"

#define MAX_DEPTH 32
#define MAX_KEYS  10000

extern char **environ;

bool secrets_is_store(const res_component_t *c)
{
    return c && c->type &&
           (strcmp(c->type, "secretstores.local.env") == 0 ||
            strcmp(c->type, "secretstores.local.file") == 0);
}

/* cc env store isKeyAllowed: APP_API_TOKEN and DAPR_* (any case) are never handed out. */
static bool env_allowed(const char *var)
{
    return strcasecmp(var, "APP_API_TOKEN") != 0 && strncasecmp(var, "DAPR_", 5) != 0;
}

static bool meta_true(const res_component_t *c, const char *key)
{
    const char *v = res_component_meta(c, key);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0 ||
                 strcmp(v, "1") == 0 || strcmp(v, "t") == 0 || strcmp(v, "T") == 0);
}

/* Reads the whole secretsFile (bounded) and parses it as a JSON object. */
static int read_secrets_file(const res_component_t *c, json_t **out, char **err)
{
    int rc = TODO_EINTERNAL;
    const char *path = res_component_meta(c, "secretsFile");
    FILE *f = NULL;
    char *data = NULL;
    struct stat st;

    if (!path || !*path) {
        *err = xasprintf("secret store %s: metadata secretsFile is required", c->name);
        goto out;
    }
    f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0) {
        *err = xasprintf("secret store %s: cannot open %s: %s", c->name, path, strerror(errno));
        goto out;
    }
    if (st.st_size < 0 || (size_t)st.st_size > SECRETS_MAX_FILE) {
        *err = xasprintf("secret store %s: %s is larger than %u bytes", c->name, path,
                         SECRETS_MAX_FILE);
        goto out;
    }
    data = xmalloc((size_t)st.st_size + 1);
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    if (n != (size_t)st.st_size) {
        *err = xasprintf("secret store %s: cannot read %s", c->name, path);
        goto out;
    }
    if (json_parse(data, n, true, out) != 0) {
        *err = xasprintf("secret store %s: %s is not a JSON object", c->name, path);
        goto out;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    free(data);
    return rc;
}

/* Adds the leaves of v below prefix to dst as strings, joining keys with sep. */
static int flatten(json_t *dst, const char *prefix, json_t *v, const char *sep, int depth)
{
    if (depth > MAX_DEPTH || json_object_size(dst) > MAX_KEYS)
        return TODO_EBAD_REQUEST;
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child)
        {
            char *p = prefix ? xasprintf("%s%s%s", prefix, sep, k) : xstrdup(k);
            int rc = flatten(dst, p, child, sep, depth + 1);
            free(p);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            char *p = prefix ? xasprintf("%s%s%zu", prefix, sep, i) : xasprintf("%zu", i);
            int rc = flatten(dst, p, child, sep, depth + 1);
            free(p);
            if (rc)
                return rc;
        }
        return 0;
    }
    /* cc filestore visitPrimitive formats with Go's fmt.Sprintf("%s", v): only strings come
     * out plain; numbers, booleans and null keep Go's bad-verb text. */
    char *s;
    if (json_is_string(v))
        s = xstrdup(json_string_value(v));
    else if (json_is_null(v))
        s = xstrdup("%!s(<nil>)");
    else if (json_is_boolean(v))
        s = xstrdup(json_is_true(v) ? "%!s(bool=true)" : "%!s(bool=false)");
    else if (json_is_integer(v))
        s = xasprintf("%%!s(float64=%" JSON_INTEGER_FORMAT ")", json_integer_value(v));
    else
        s = xasprintf("%%!s(float64=%.17g)", json_real_value(v));
    json_object_set_new(dst, prefix ? prefix : "", json_string(s));
    free(s);
    return 0;
}

static const char *separator(const res_component_t *c)
{
    const char *sep = res_component_meta(c, "nestedSeparator");
    return sep && *sep ? sep : ":";
}

/* All secrets of a local.file store as {name: {key: value}}. */
static int file_all(const res_component_t *c, json_t **out, char **err)
{
    int rc;
    json_t *doc = NULL, *all = json_object();
    const char *sep = separator(c);

    rc = read_secrets_file(c, &doc, err);
    if (rc)
        goto out;
    if (meta_true(c, "multiValued")) {
        const char *k;
        json_t *v;
        /* cc filestore Init: top-level strings are one-key secrets, objects are flattened into
         * the keys of one secret, anything else is left out. */
        json_object_foreach(doc, k, v)
        {
            if (!json_is_object(v) && !json_is_string(v))
                continue;
            json_t *keys = json_object();
            if (json_is_object(v))
                rc = flatten(keys, NULL, v, sep, 1);
            else
                json_object_set(keys, k, v);
            json_object_set_new(all, k, keys);
            if (rc)
                break;
        }
    } else {
        json_t *flat = json_object();
        rc = flatten(flat, NULL, doc, sep, 0);
        const char *k;
        json_t *v;
        json_object_foreach(flat, k, v)
        {
            json_t *one = json_object();
            json_object_set(one, k, v);
            json_object_set_new(all, k, one);
        }
        json_decref(flat);
    }
    if (rc) {
        *err = xasprintf("secret store %s: secretsFile is nested too deeply or too large", c->name);
        goto out;
    }
    *out = all;
    all = NULL;
out:
    json_decref(doc);
    json_decref(all);
    return rc;
}

int secrets_get(const res_component_t *store, const char *name, json_t **out, char **err)
{
    int rc = TODO_EBAD_REQUEST;
    json_t *all = NULL;

    *out = NULL;
    if (!secrets_is_store(store)) {
        *err = xasprintf("component %s is not a supported secret store",
                         store && store->name ? store->name : "?");
        goto out;
    }
    if (strcmp(store->type, "secretstores.local.env") == 0) {
        const char *prefix = res_component_meta(store, "prefix");
        char *var = xasprintf("%s%s", prefix ? prefix : "", name);
        const char *v = env_allowed(var) ? getenv(var) : NULL;
        *out = json_object();
        json_object_set_new(*out, name, json_string(v ? v : ""));
        free(var);
        rc = 0;
        goto out;
    }
    rc = file_all(store, &all, err);
    if (rc)
        goto out;
    json_t *one = json_object_get(all, name);
    if (!one) {
        *err = xasprintf("secret store %s: secret %s not found", store->name, name);
        rc = TODO_ENOT_FOUND;
        goto out;
    }
    *out = json_incref(one);
    rc = 0;
out:
    json_decref(all);
    return rc;
}

int secrets_bulk(const res_component_t *store, json_t **out, char **err)
{
    *out = NULL;
    if (!secrets_is_store(store)) {
        *err = xasprintf("component %s is not a supported secret store",
                         store && store->name ? store->name : "?");
        return TODO_EBAD_REQUEST;
    }
    if (strcmp(store->type, "secretstores.local.file") == 0)
        return file_all(store, out, err);
    json_t *all = json_object();
    const char *prefix = res_component_meta(store, "prefix");
    size_t lp = prefix ? strlen(prefix) : 0;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        size_t kl = (size_t)(eq - *e);
        if (lp && (kl <= lp || strncmp(*e, prefix, lp) != 0))
            continue;
        char *var = xstrndup(*e, kl);
        bool allowed = env_allowed(var);
        free(var);
        if (!allowed)
            continue;
        char *k = xstrndup(*e + lp, kl - lp);
        json_t *one = json_object();
        json_object_set_new(one, k, json_string(eq + 1));
        json_object_set_new(all, k, one);
        free(k);
    }
    *out = all;
    return 0;
}
