/* JSON through jansson, behind a thin wrapper: bounded parsing with clear errors, typed field
 * reading that collects validation errors, and compact dumping. Only this header and
 * json.c include <jansson.h>; the rest of the project uses jansson's json_t through it. */
#ifndef TODO_JSON_H
#define TODO_JSON_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "todo/error.h"

/* Parses exactly len bytes (no NUL needed, nothing may follow the value); duplicate keys and
 * \u0000 in strings are rejected. The top level must be an object when want_object. On failure
 * TODO_EINVALID_JSON and *out = NULL. *out is new. */
int json_parse(const char *data, size_t len, bool want_object, json_t **out) TODO_WUR;

/* Compact, key order preserved (new; free()). Aborts on allocation failure. */
char *json_dump(const json_t *v);

/* Validation errors collected while reading a request: [{field, message}]. */
typedef struct {
    json_t *list; /* array, owned */
} json_errors_t;

void json_errors_init(json_errors_t *e);
void json_errors_dispose(json_errors_t *e);
void json_errors_add(json_errors_t *e, const char *field, const char *message);
bool json_errors_any(const json_errors_t *e);

/* Field readers for request objects: JSON_FIELD_ABSENT when obj has no such key, JSON_FIELD_NULL
 * when its value is null, JSON_FIELD_VALUE when it has the type (then *out is set; a string is
 * borrowed from obj), else JSON_FIELD_WRONG_TYPE after adding {key, "must be a string" (an
 * integer, a boolean)} to e (e may be NULL). *out is untouched unless JSON_FIELD_VALUE. */
typedef enum {
    JSON_FIELD_ABSENT,
    JSON_FIELD_NULL,
    JSON_FIELD_VALUE,
    JSON_FIELD_WRONG_TYPE
} json_field_t;
json_field_t json_get_string(const json_t *obj, const char *key, const char **out,
                             json_errors_t *e);
json_field_t json_get_int(const json_t *obj, const char *key, int64_t *out, json_errors_t *e);
json_field_t json_get_bool(const json_t *obj, const char *key, bool *out, json_errors_t *e);

/* Checks that obj has no keys other than the NULL-terminated list; adds {key, "is not a known
 * field"} per other key. */
void json_reject_unknown(const json_t *obj, const char *const *allowed, json_errors_t *e);

/* Length of s in Unicode code points (s is valid UTF-8 from jansson). */
size_t json_utf8_length(const char *s);

#endif
