/* The JSON wrapper over jansson: strict, length-bounded parsing, compact dumping, and typed
 * reading of request fields that collects {field, message} validation errors. */
#include "todo/json.h"

#include <stdlib.h>
#include <string.h>

#include "todo/log.h"

__attribute__((noreturn)) static void json_oom(void)
{
    log_write(LOG_LEVEL_ERROR, "json", "out of memory building JSON");
    abort();
}

int json_parse(const char *data, size_t len, bool want_object, json_t **out)
{
    json_error_t err;
    *out = NULL;
    if (!data)
        return TODO_EINVALID_JSON;
    /* The whole buffer must be one value: jansson rejects trailing data unless told otherwise. */
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!v)
        return TODO_EINVALID_JSON;
    if (want_object && !json_is_object(v)) {
        json_decref(v);
        return TODO_EINVALID_JSON;
    }
    *out = v;
    return 0;
}

char *json_dump(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s)
        json_oom();
    return s;
}

void json_errors_init(json_errors_t *e)
{
    e->list = json_array();
    if (!e->list)
        json_oom();
}

void json_errors_dispose(json_errors_t *e)
{
    json_decref(e->list);
    e->list = NULL;
}

/* A JSON string for s; text that is not UTF-8 (never expected) is replaced, not lost silently. */
static json_t *string_or_placeholder(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (!v)
        v = json_string("(invalid text)");
    if (!v)
        json_oom();
    return v;
}

void json_errors_add(json_errors_t *e, const char *field, const char *message)
{
    if (!e)
        return;
    if (!e->list)
        json_errors_init(e);
    json_t *item = json_object();
    if (!item)
        json_oom();
    if (json_object_set_new(item, "field", string_or_placeholder(field)) != 0 ||
        json_object_set_new(item, "message", string_or_placeholder(message)) != 0 ||
        json_array_append_new(e->list, item) != 0)
        json_oom();
}

bool json_errors_any(const json_errors_t *e)
{
    return e && e->list && json_array_size(e->list) > 0;
}

/* Present-or-not and null handling shared by the typed readers. */
static json_field_t lookup(const json_t *obj, const char *key, const json_t **v)
{
    *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (!*v)
        return JSON_FIELD_ABSENT;
    if (json_is_null(*v))
        return JSON_FIELD_NULL;
    return JSON_FIELD_VALUE;
}

json_field_t json_get_string(const json_t *obj, const char *key, const char **out, json_errors_t *e)
{
    const json_t *v;
    json_field_t k = lookup(obj, key, &v);
    if (k != JSON_FIELD_VALUE)
        return k;
    if (!json_is_string(v)) {
        json_errors_add(e, key, "must be a string");
        return JSON_FIELD_WRONG_TYPE;
    }
    *out = json_string_value(v);
    return JSON_FIELD_VALUE;
}

json_field_t json_get_int(const json_t *obj, const char *key, int64_t *out, json_errors_t *e)
{
    const json_t *v;
    json_field_t k = lookup(obj, key, &v);
    if (k != JSON_FIELD_VALUE)
        return k;
    if (!json_is_integer(v)) {
        json_errors_add(e, key, "must be an integer");
        return JSON_FIELD_WRONG_TYPE;
    }
    *out = (int64_t)json_integer_value(v);
    return JSON_FIELD_VALUE;
}

json_field_t json_get_bool(const json_t *obj, const char *key, bool *out, json_errors_t *e)
{
    const json_t *v;
    json_field_t k = lookup(obj, key, &v);
    if (k != JSON_FIELD_VALUE)
        return k;
    if (!json_is_boolean(v)) {
        json_errors_add(e, key, "must be a boolean");
        return JSON_FIELD_WRONG_TYPE;
    }
    *out = json_is_true(v);
    return JSON_FIELD_VALUE;
}

void json_reject_unknown(const json_t *obj, const char *const *allowed, json_errors_t *e)
{
    const char *key;
    const json_t *v;
    if (!json_is_object(obj))
        return;
    /* jansson's iteration macros take a non-const object; nothing is modified. */
    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; a && *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known)
            json_errors_add(e, key, "is not a known field");
    }
}

size_t json_utf8_length(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}
