/* Unit test of common/src/json.c: strict parsing (duplicates, trailing data, exact length, top
 * level), compact dumping, typed field readers with their errors, unknown keys, UTF-8 length. */
#include <stdlib.h>

#include "check.h"
#include "todo/json.h"

/* rc of json_parse over a C string; checks that *out is set exactly on success. */
static int parse(const char *s, bool want_object)
{
    json_t *v = (json_t *)1;
    int rc = json_parse(s, strlen(s), want_object, &v);
    CHECK(rc == 0 ? v != NULL : v == NULL);
    json_decref(v);
    return rc;
}

/* The error list as compact JSON (new). */
static char *errors_text(const json_errors_t *e)
{
    return json_dump(e->list);
}

int main(void)
{
    json_t *v = NULL;

    CHECK_INT(parse("{\"a\":1,\"b\":[true,null]}", true), 0);
    CHECK_INT(parse("  {}  \n", true), 0);
    CHECK_INT(parse("[1,2]", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("[1,2]", false), 0);
    CHECK_INT(parse("\"text\"", false), 0);
    CHECK_INT(parse("12", false), 0);
    CHECK_INT(parse("12", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("null", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("   ", false), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":1,\"a\":2}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":{\"b\":1,\"b\":1}}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{} {}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{}x", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":1,}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{'a':1}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":\"\\u0000\"}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":\"\xff\"}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":99999999999999999999999}", true), TODO_EINVALID_JSON);
    CHECK_INT(parse("{\"a\":NaN}", true), TODO_EINVALID_JSON);

    /* Exactly len bytes are read: what follows is ignored, a cut value is an error, and a NUL
     * inside the length is not the end. */
    const char *padded = "{\"a\":1}GARBAGE";
    CHECK_INT(json_parse(padded, 7, true, &v), 0);
    CHECK_INT(json_integer_value(json_object_get(v, "a")), 1);
    json_decref(v);
    CHECK_INT(json_parse(padded, 6, true, &v), TODO_EINVALID_JSON);
    CHECK(v == NULL);
    CHECK_INT(json_parse("{}\0{}", 5, true, &v), TODO_EINVALID_JSON);
    CHECK_INT(json_parse(NULL, 0, false, &v), TODO_EINVALID_JSON);

    /* Dump: compact, in insertion order, UTF-8 kept. */
    const char *spaced = "{ \"z\" : 1, \"a\" : [ 1 , \"é\" ], \"m\" : null }";
    CHECK_INT(json_parse(spaced, strlen(spaced), true, &v), 0);
    char *d = json_dump(v);
    CHECK_STR(d, "{\"z\":1,\"a\":[1,\"é\"],\"m\":null}");
    free(d);
    json_decref(v);

    /* Field readers. */
    const char *body = "{\"s\":\"str\",\"i\":-5,\"b\":false,\"n\":null,\"f\":1.5,\"big\":"
                       "9007199254740993,\"arr\":[],\"t\":true}";
    CHECK_INT(json_parse(body, strlen(body), true, &v), 0);
    json_errors_t e;
    json_errors_init(&e);
    CHECK(!json_errors_any(&e));

    const char *s = "untouched";
    int64_t i = 77;
    bool b = true;
    CHECK_INT(json_get_string(v, "s", &s, &e), JSON_FIELD_VALUE);
    CHECK_STR(s, "str");
    CHECK_INT(json_get_int(v, "i", &i, &e), JSON_FIELD_VALUE);
    CHECK_INT(i, -5);
    CHECK_INT(json_get_int(v, "big", &i, &e), JSON_FIELD_VALUE);
    CHECK_INT(i, 9007199254740993LL);
    CHECK_INT(json_get_bool(v, "b", &b, &e), JSON_FIELD_VALUE);
    CHECK(!b);
    CHECK_INT(json_get_bool(v, "t", &b, &e), JSON_FIELD_VALUE);
    CHECK(b);
    CHECK(!json_errors_any(&e));

    s = "untouched";
    i = 77;
    CHECK_INT(json_get_string(v, "missing", &s, &e), JSON_FIELD_ABSENT);
    CHECK_INT(json_get_string(v, "n", &s, &e), JSON_FIELD_NULL);
    CHECK_INT(json_get_int(v, "n", &i, &e), JSON_FIELD_NULL);
    CHECK_INT(json_get_bool(v, "n", &b, &e), JSON_FIELD_NULL);
    CHECK_STR(s, "untouched");
    CHECK_INT(i, 77);
    CHECK(!json_errors_any(&e));

    CHECK_INT(json_get_string(v, "i", &s, &e), JSON_FIELD_WRONG_TYPE);
    CHECK_INT(json_get_int(v, "f", &i, &e), JSON_FIELD_WRONG_TYPE); /* 1.5 is not an integer */
    CHECK_INT(json_get_int(v, "s", &i, &e), JSON_FIELD_WRONG_TYPE);
    CHECK_INT(json_get_bool(v, "i", &b, &e), JSON_FIELD_WRONG_TYPE);
    CHECK_INT(json_get_string(v, "arr", &s, NULL), JSON_FIELD_WRONG_TYPE); /* no error list */
    CHECK_STR(s, "untouched");
    CHECK_INT(i, 77);
    CHECK(json_errors_any(&e));
    d = errors_text(&e);
    CHECK_STR(d, "[{\"field\":\"i\",\"message\":\"must be a string\"},"
                 "{\"field\":\"f\",\"message\":\"must be an integer\"},"
                 "{\"field\":\"s\",\"message\":\"must be an integer\"},"
                 "{\"field\":\"i\",\"message\":\"must be a boolean\"}]");
    free(d);
    json_errors_dispose(&e);
    CHECK(e.list == NULL);
    json_errors_dispose(&e);

    /* Not an object: every key reads as absent. */
    json_t *arr = json_object_get(v, "arr");
    CHECK_INT(json_get_string(arr, "s", &s, NULL), JSON_FIELD_ABSENT);
    CHECK_INT(json_get_int(NULL, "s", &i, NULL), JSON_FIELD_ABSENT);

    /* Unknown keys, in order. */
    json_errors_init(&e);
    static const char *const allowed[] = {"s", "i", "b", "n", "f", NULL};
    json_reject_unknown(v, allowed, &e);
    d = errors_text(&e);
    CHECK_STR(d, "[{\"field\":\"big\",\"message\":\"is not a known field\"},"
                 "{\"field\":\"arr\",\"message\":\"is not a known field\"},"
                 "{\"field\":\"t\",\"message\":\"is not a known field\"}]");
    free(d);
    json_errors_dispose(&e);
    json_errors_init(&e);
    static const char *const all[] = {"t", "arr", "big", "f", "n", "b", "i", "s", NULL};
    json_reject_unknown(v, all, &e);
    CHECK(!json_errors_any(&e));
    json_errors_add(&e, "x.y", "is odd");
    d = errors_text(&e);
    CHECK_STR(d, "[{\"field\":\"x.y\",\"message\":\"is odd\"}]");
    free(d);
    json_errors_dispose(&e);
    json_decref(v);

    /* Code points, not bytes. */
    CHECK_INT(json_utf8_length(""), 0);
    CHECK_INT(json_utf8_length("abc"), 3);
    CHECK_INT(json_utf8_length("h\xc3\xa9llo"), 5);
    CHECK_INT(json_utf8_length("\xe6\x97\xa5\xe6\x9c\xac"), 2);
    CHECK_INT(json_utf8_length("\xf0\x9f\x98\x80!"), 2);
    CHECK_INT(json_utf8_length(NULL), 0);
    return check_exit();
}
