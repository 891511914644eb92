/* Unit tests of the pure helpers of state_store.c: Go-compatible JSON re-marshalling, ETag and
 * ttlInSeconds parsing, key prefixes (DAPR-CONTRACT §5.4) and the component metadata. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "state_store.h"
#include "todo/alloc.h"

/* v re-marshalled as daprd stores a value decoded from the request JSON text. */
static char *remarshal(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &je);
    buf_t b;
    char *out;
    if (!v)
        return xstrdup("<parse error>");
    buf_init(&b, 0);
    if (state_json_marshal(v, &b) != 0)
        out = xstrdup("<marshal error>");
    else
        out = b.len ? buf_steal(&b) : xstrdup("");
    buf_dispose(&b);
    json_decref(v);
    return out;
}

#define CHECK_REMARSHAL(in, want)   \
    do {                            \
        char *got_ = remarshal(in); \
        CHECK_STR(got_, want);      \
        free(got_);                 \
    } while (0)

static void test_marshal(void)
{
    CHECK_REMARSHAL("\"x\"", "\"x\"");
    CHECK_REMARSHAL("{\"b\":1,\"a\":[true,false,null]}", "{\"a\":[true,false,null],\"b\":1}");
    CHECK_REMARSHAL("{ \"z\" : { \"y\" : 2 , \"x\" : \"s\" } }", "{\"z\":{\"x\":\"s\",\"y\":2}}");
    CHECK_REMARSHAL("1.0", "1");
    CHECK_REMARSHAL("1.5", "1.5");
    CHECK_REMARSHAL("-0.25", "-0.25");
    CHECK_REMARSHAL("100", "100");
    CHECK_REMARSHAL("1e20", "100000000000000000000");
    CHECK_REMARSHAL("1e21", "1e+21");
    CHECK_REMARSHAL("1.5e300", "1.5e+300");
    CHECK_REMARSHAL("0.000001", "0.000001");
    CHECK_REMARSHAL("0.0000001", "1e-7");
    CHECK_REMARSHAL("1.234e-10", "1.234e-10");
    CHECK_REMARSHAL("0.1", "0.1");
    CHECK_REMARSHAL("12345678901234567890", "12345678901234567000");
    CHECK_REMARSHAL("3.141592653589793", "3.141592653589793");
    CHECK_REMARSHAL("0", "0");
    CHECK_REMARSHAL("-0.0", "-0");
    /* Go's HTML-safe escaping and short escapes (Go ≥ 1.22 writes \b and \f). */
    CHECK_REMARSHAL("\"<a&b>\"", "\"\\u003ca\\u0026b\\u003e\"");
    CHECK_REMARSHAL("\"q\\\"s\\\\ n\\n\\t\\r\\b\\f\\u0001\"",
                    "\"q\\\"s\\\\ n\\n\\t\\r\\b\\f\\u0001\"");
    CHECK_REMARSHAL("\"\\u2028\\u2029\"", "\"\\u2028\\u2029\"");
    CHECK_REMARSHAL("\"caf\\u00e9 \\/\"", "\"caf\xc3\xa9 /\"");
    CHECK_REMARSHAL("\"nul\\u0000x\"", "\"nul\\u0000x\"");
    CHECK_REMARSHAL("[]", "[]");
    CHECK_REMARSHAL("{}", "{}");
}

static void test_etag(void)
{
    char out[STATE_ETAG_LEN], err[STATE_ERR_MAX];
    CHECK(state_parse_etag("0F8FAD5B-D9CB-469F-A165-70867728950E", out, err));
    CHECK_STR(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    CHECK(state_parse_etag("{0f8fad5b-d9cb-469f-a165-70867728950e}", out, err));
    CHECK_STR(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    CHECK(state_parse_etag("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", out, err));
    CHECK_STR(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    CHECK(state_parse_etag("0f8fad5bd9cb469fa16570867728950e", out, err));
    CHECK_STR(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    CHECK(!state_parse_etag("123", out, err));
    CHECK_STR(err, "invalid UUID length: 3");
    CHECK(!state_parse_etag("0f8fad5b-d9cb-469f-a165-70867728950g", out, err));
    CHECK_STR(err, "invalid UUID format");
    CHECK(!state_parse_etag("0f8fad5b_d9cb-469f-a165-70867728950e", out, err));
    CHECK(state_parse_etag("\"0f8fad5b-d9cb-469f-a165-70867728950e\"", out, err));
    CHECK_STR(out, "0f8fad5b-d9cb-469f-a165-70867728950e");
    CHECK(!state_parse_etag("urx:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", out, err));
    CHECK_STR(err, "invalid urn prefix: \"urx:uuid:\"");
}

static void test_ttl(void)
{
    bool has;
    int64_t v = 0;
    char err[STATE_ERR_MAX];
    CHECK_INT(state_parse_ttl(NULL, &has, &v, err), 0);
    CHECK(!has);
    CHECK_INT(state_parse_ttl("", &has, &v, err), 0);
    CHECK(!has);
    CHECK_INT(state_parse_ttl("10", &has, &v, err), 0);
    CHECK(has);
    CHECK_INT(v, 10);
    CHECK_INT(state_parse_ttl("-1", &has, &v, err), 0);
    CHECK_INT(v, -1);
    CHECK_INT(state_parse_ttl("+5", &has, &v, err), 0);
    CHECK_INT(v, 5);
    CHECK_INT(state_parse_ttl("0", &has, &v, err), 0);
    CHECK_INT(v, 0);
    CHECK_INT(state_parse_ttl("-2", &has, &v, err), TODO_EBAD_REQUEST);
    CHECK_STR(err, "incorrect value for metadata 'ttlInSeconds': must be -1 or greater");
    CHECK_INT(state_parse_ttl("2147483648", &has, &v, err), TODO_EBAD_REQUEST);
    CHECK_INT(state_parse_ttl("1.5", &has, &v, err), TODO_EBAD_REQUEST);
    CHECK_STR(err, "incorrect value for metadata 'ttlInSeconds': strconv.ParseInt: parsing "
                   "\"1.5\": invalid syntax");
    CHECK_INT(state_parse_ttl("1s", &has, &v, err), TODO_EBAD_REQUEST);
    CHECK_INT(state_parse_ttl("99999999999999999999", &has, &v, err), TODO_EBAD_REQUEST);
}

#define CHECK_PREFIX(strategy, ns, want)                                         \
    do {                                                                         \
        char *p_ = NULL, err_[STATE_ERR_MAX];                                    \
        CHECK_INT(state_key_prefix(strategy, "store", "app", ns, &p_, err_), 0); \
        CHECK_STR(p_, want);                                                     \
        free(p_);                                                                \
    } while (0)

static void test_prefix(void)
{
    char *p = NULL, err[STATE_ERR_MAX];
    CHECK_PREFIX(NULL, NULL, "app||");
    CHECK_PREFIX("", NULL, "app||");
    CHECK_PREFIX("AppID", NULL, "app||");
    CHECK_PREFIX("name", NULL, "store||");
    CHECK_PREFIX("none", NULL, "");
    CHECK_PREFIX("namespace", "ns1", "ns1.app||");
    CHECK_PREFIX("namespace", NULL, "app||");
    CHECK_PREFIX("MyPrefix", NULL, "myprefix||");
    CHECK_INT(state_key_prefix("a||b", "store", "app", NULL, &p, err), TODO_EBAD_REQUEST);
    CHECK(p == NULL);
    CHECK_INT(state_key_prefix("appid", "store", "", NULL, &p, err), 0);
    CHECK_STR(p, "");
    free(p);
    CHECK(state_key_legal("a|b", err));
    CHECK(!state_key_legal("a||b", err));
    CHECK_STR(err, "input key/keyPrefix 'a||b' can't contain '||'");

    p = state_original_key("app||key");
    CHECK_STR(p, "key");
    free(p);
    p = state_original_key("plain");
    CHECK_STR(p, "plain");
    free(p);
    p = state_original_key("app||actor||id");
    CHECK_STR(p, "actor");
    free(p);
}

static void test_config(void)
{
    state_store_config_t cfg;
    char err[STATE_ERR_MAX];
    const char *n1[] = {"ConnectionString"}, *v1[] = {"postgres://x"};
    CHECK_INT(state_store_config_parse(n1, v1, 1, &cfg, err), 0);
    CHECK_STR(cfg.connection_string, "postgres://x");
    CHECK_STR(cfg.table_prefix, "");
    CHECK_STR(cfg.metadata_table, "dapr_metadata");
    CHECK_INT(cfg.timeout_ms, 20000);
    CHECK_INT(cfg.cleanup_interval_ms, 3600000);

    const char *n2[] = {"connectionString", "tablePrefix", "metadataTableName", "timeout",
                        "cleanupInterval"};
    const char *v2[] = {"postgres://x", "app_", "meta", "1m30s", "10"};
    CHECK_INT(state_store_config_parse(n2, v2, 5, &cfg, err), 0);
    CHECK_STR(cfg.table_prefix, "app_");
    CHECK_STR(cfg.metadata_table, "meta");
    CHECK_INT(cfg.timeout_ms, 90000);
    CHECK_INT(cfg.cleanup_interval_ms, 10000);

    const char *n3[] = {"connectionString", "timeoutInSeconds", "cleanupIntervalInSeconds"};
    const char *v3[] = {"postgres://x", "30", "-1"};
    CHECK_INT(state_store_config_parse(n3, v3, 3, &cfg, err), 0);
    CHECK_INT(cfg.timeout_ms, 30000);
    CHECK_INT(cfg.cleanup_interval_ms, 0);

    const char *v4[] = {"postgres://x", "500ms", "1h"};
    CHECK_INT(state_store_config_parse(n3, v4, 3, &cfg, err), TODO_EBAD_REQUEST);
    const char *v5[] = {"postgres://x", "soon", "1h"};
    CHECK_INT(state_store_config_parse(n3, v5, 3, &cfg, err), TODO_EBAD_REQUEST);
    CHECK_INT(state_store_config_parse(n3 + 1, v3 + 1, 2, &cfg, err), TODO_EBAD_REQUEST);
}

int main(void)
{
    test_marshal();
    test_etag();
    test_ttl();
    test_prefix();
    test_config();
    return check_exit();
}
