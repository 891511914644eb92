/* Unit tests of cloudevent.c: the wrapping rules of DAPR-CONTRACT §1.2, the completion of app
 * CloudEvents of §1.3, bulk entry conversion of §1.4, rawPayload delivery envelopes of §3.1 and
 * the Go-style JSON writing they share. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cloudevent.h"
#include "todo/uuid.h"

#define TP  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define NOW 1795000000000000LL /* 2026-11-19T…Z */

static json_t *envelope(const char *ct, const char *body, size_t len, const broker_header_t *meta,
                        size_t nmeta)
{
    cloudevent_req_t r = {.app_id = "checkout",
                          .pubsubname = "pubsub",
                          .topic = "orders",
                          .content_type = ct,
                          .traceparent = TP,
                          .tracestate = "k=v",
                          .data = body,
                          .len = len,
                          .meta = meta,
                          .nmeta = nmeta,
                          .now_usec = NOW};
    char *out = NULL, *err = NULL;
    size_t n;
    int rc = cloudevent_envelope(&r, &out, &n, &err);
    CHECK_INT(rc, 0);
    if (rc)
        fprintf(stderr, "envelope error: %s\n", err ? err : "");
    json_t *v = out ? json_loadb(out, n, 0, NULL) : NULL;
    CHECK(v != NULL);
    free(out);
    free(err);
    return v;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_content_type(void)
{
    CHECK(cloudevent_content_type_is("application/json", "application/json"));
    CHECK(cloudevent_content_type_is("Application/JSON; charset=utf-8", "application/json"));
    CHECK(!cloudevent_content_type_is("application/json ; x", "application/json"));
    CHECK(!cloudevent_content_type_is("application/x+json", "application/json"));
    CHECK(!cloudevent_content_type_is("application/jsonx", "application/json"));
    CHECK(!cloudevent_content_type_is(NULL, "application/json"));
}

static void test_wrap(void)
{
    /* §1.2: every field, application/json parsed into data */
    json_t *v = envelope("application/json", "{\"a\": [1, 2.5, \"x\"]}", 20, NULL, 0);
    CHECK(todo_uuid_valid(str(v, "id")));
    CHECK_STR(str(v, "specversion"), "1.0");
    CHECK_STR(str(v, "source"), "checkout");
    CHECK_STR(str(v, "type"), "com.dapr.event.sent");
    CHECK_STR(str(v, "datacontenttype"), "application/json");
    CHECK_STR(str(v, "topic"), "orders");
    CHECK_STR(str(v, "pubsubname"), "pubsub");
    CHECK_STR(str(v, "traceid"), TP);
    CHECK_STR(str(v, "traceparent"), TP);
    CHECK_STR(str(v, "tracestate"), "k=v");
    CHECK(json_is_object(json_object_get(v, "data")));
    CHECK(json_object_get(v, "data_base64") == NULL);
    CHECK(json_object_get(v, "subject") == NULL);
    CHECK(json_object_get(v, "expiration") == NULL);
    CHECK_INT(json_object_size(v), 12);
    json_decref(v);

    /* the content type kept verbatim, parameters ignored for the data rule */
    v = envelope("Application/JSON; charset=utf-8", "7", 1, NULL, 0);
    CHECK_STR(str(v, "datacontenttype"), "Application/JSON; charset=utf-8");
    CHECK_INT(json_integer_value(json_object_get(v, "data")), 7);
    json_decref(v);

    /* application/json that does not parse → data is the body as a string */
    v = envelope("application/json", "{oops", 5, NULL, 0);
    CHECK_STR(str(v, "data"), "{oops");
    json_decref(v);
    v = envelope("application/json", "", 0, NULL, 0);
    CHECK_STR(str(v, "data"), "");
    json_decref(v);

    /* no Content-Type → text/plain and a string */
    v = envelope(NULL, "{\"a\":1}", 7, NULL, 0);
    CHECK_STR(str(v, "datacontenttype"), "text/plain");
    CHECK_STR(str(v, "data"), "{\"a\":1}");
    json_decref(v);
    v = envelope("", "hi", 2, NULL, 0);
    CHECK_STR(str(v, "datacontenttype"), "text/plain");
    json_decref(v);

    /* application/...+json and xml are strings, not JSON */
    v = envelope("application/x+json", "{\"a\":1}", 7, NULL, 0);
    CHECK_STR(str(v, "data"), "{\"a\":1}");
    json_decref(v);
    v = envelope("application/xml", "<a/>", 4, NULL, 0);
    CHECK_STR(str(v, "data"), "<a/>");
    json_decref(v);

    /* octet-stream → data_base64 only */
    v = envelope("application/octet-stream", "\x00\x01\xff", 3, NULL, 0);
    CHECK_STR(str(v, "data_base64"), "AAH/");
    CHECK(json_object_get(v, "data") == NULL);
    json_decref(v);

    /* invalid UTF-8 in a string body → U+FFFD per byte */
    v = envelope("text/plain",
                 "a\xff"
                 "b",
                 3, NULL, 0);
    CHECK_STR(str(v, "data"), "a\xEF\xBF\xBD"
                              "b");
    json_decref(v);
}

static void test_overrides(void)
{
    broker_header_t m[] = {{"cloudevent.id", "my-id"},
                           {"CloudEvent.Source", "src"},
                           {"cloudevent.type", "t.created"},
                           {"cloudevent.subject", "subj"},
                           {"cloudevent.traceparent", "tp-override"},
                           {"cloudevent.tracestate", "ts"}};
    json_t *v = envelope("text/plain", "x", 1, m, 6);
    CHECK_STR(str(v, "id"), "my-id");
    CHECK_STR(str(v, "source"), "src");
    CHECK_STR(str(v, "type"), "t.created");
    CHECK_STR(str(v, "subject"), "subj");
    CHECK_STR(str(v, "traceid"), "tp-override");
    CHECK_STR(str(v, "traceparent"), "tp-override");
    CHECK_STR(str(v, "tracestate"), "ts");
    json_decref(v);

    broker_header_t t[] = {{"cloudevent.traceid", "tid"}};
    v = envelope("text/plain", "x", 1, t, 1);
    CHECK_STR(str(v, "traceid"), "tid");
    CHECK_STR(str(v, "traceparent"), "tid");
    json_decref(v);

    /* source defaults to "Dapr" without an app-id */
    cloudevent_req_t r = {.pubsubname = "p", .topic = "t", .data = "", .now_usec = NOW};
    char *out, *err;
    size_t n;
    CHECK_INT(cloudevent_envelope(&r, &out, &n, &err), 0);
    v = json_loadb(out, n, 0, NULL);
    CHECK_STR(str(v, "source"), "Dapr");
    CHECK_STR(str(v, "traceid"), "");
    CHECK_STR(str(v, "tracestate"), "");
    json_decref(v);
    free(out);
}

static void test_time(void)
{
    char t[32];
    setenv("TZ", "UTC", 1);
    tzset();
    cloudevent_format_local_time(0, t);
    CHECK_STR(t, "1970-01-01T00:00:00Z");
    setenv("TZ", "Europe/Rome", 1);
    tzset();
    cloudevent_format_local_time(1500000, t);
    CHECK_STR(t, "1970-01-01T01:00:01+01:00");
    setenv("TZ", "America/New_York", 1);
    tzset();
    cloudevent_format_local_time(0, t);
    CHECK_STR(t, "1969-12-31T19:00:00-05:00");
    json_t *v = envelope("text/plain", "x", 1, NULL, 0);
    CHECK(str(v, "time") && strlen(str(v, "time")) == 25);
    CHECK(strstr(str(v, "time"), "-05:00") != NULL);
    json_decref(v);
    setenv("TZ", "UTC", 1);
    tzset();
}

static void test_ttl(void)
{
    int64_t ttl = 0;
    broker_header_t a[] = {{"ttlInSeconds", "20"}};
    CHECK(cloudevent_ttl(a, 1, &ttl));
    CHECK_INT(ttl, 20000000);
    broker_header_t b[] = {{"ttl", "1m30s"}};
    CHECK(cloudevent_ttl(b, 1, &ttl));
    CHECK_INT(ttl, 90000000);
    broker_header_t c[] = {{"ttlInSeconds", "0"}};
    CHECK(!cloudevent_ttl(c, 1, &ttl));
    broker_header_t d[] = {{"ttlInSeconds", "-3"}};
    CHECK(!cloudevent_ttl(d, 1, &ttl));
    broker_header_t e[] = {{"ttlInSeconds", "soon"}};
    CHECK(!cloudevent_ttl(e, 1, &ttl));
    CHECK(!cloudevent_ttl(NULL, 0, &ttl));

    /* expiration = now(UTC) + ttl, seconds */
    json_t *v = envelope("text/plain", "x", 1, a, 1);
    CHECK_STR(str(v, "expiration"), "2026-11-18T11:07:00Z");
    CHECK(cloudevent_expired(v, NOW + 21000000));
    CHECK(!cloudevent_expired(v, NOW + 19000000));
    json_decref(v);
    v = envelope("text/plain", "x", 1, e, 1); /* invalid TTL: ignored */
    CHECK(json_object_get(v, "expiration") == NULL);
    CHECK(!cloudevent_expired(v, NOW));
    json_decref(v);
}

static void test_app_cloudevent(void)
{
    const char *ce = "{\"id\":\"e1\",\"source\":\"me\",\"type\":\"x.y\",\"specversion\":\"1.0\","
                     "\"topic\":\"wrong\",\"pubsubname\":\"wrong\",\"data\":{\"k\":1},"
                     "\"custom\":true}";
    broker_header_t m[] = {{"cloudevent.id", "ignored"}};
    json_t *v = envelope("application/cloudevents+json", ce, strlen(ce), m, 1);
    CHECK_STR(str(v, "id"), "e1");
    CHECK_STR(str(v, "source"), "me");
    CHECK_STR(str(v, "type"), "x.y");
    CHECK_STR(str(v, "topic"), "orders");
    CHECK_STR(str(v, "pubsubname"), "pubsub");
    CHECK_STR(str(v, "traceid"), TP);
    CHECK_STR(str(v, "traceparent"), TP);
    CHECK_STR(str(v, "tracestate"), "k=v");
    CHECK(json_is_true(json_object_get(v, "custom")));
    CHECK(json_is_string(json_object_get(v, "time")));
    CHECK(json_object_get(v, "datacontenttype") == NULL);
    json_decref(v);

    /* defaults; no id generated; a given traceid keeps traceparent absent */
    const char *bare = "{\"traceid\":\"mine\",\"time\":\"2020-01-01T00:00:00Z\"}";
    v = envelope("application/cloudevents+json; charset=utf-8", bare, strlen(bare), NULL, 0);
    CHECK(json_object_get(v, "id") == NULL);
    CHECK_STR(str(v, "source"), "Dapr");
    CHECK_STR(str(v, "type"), "com.dapr.event.sent");
    CHECK_STR(str(v, "specversion"), "1.0");
    CHECK_STR(str(v, "traceid"), "mine");
    CHECK(json_object_get(v, "traceparent") == NULL);
    CHECK_STR(str(v, "time"), "2020-01-01T00:00:00Z");
    json_decref(v);

    /* null is an empty event; TTL still applies */
    broker_header_t t[] = {{"ttlInSeconds", "5"}};
    v = envelope("application/cloudevents+json", "null", 4, t, 1);
    CHECK_STR(str(v, "topic"), "orders");
    CHECK(json_is_string(json_object_get(v, "expiration")));
    json_decref(v);

    /* not JSON, or not an object → TODO_EINVALID_JSON */
    const char *bad[] = {"{nope", "[1]", "\"s\"", ""};
    for (size_t i = 0; i < 4; i++) {
        cloudevent_req_t r = {.content_type = "application/cloudevents+json",
                              .pubsubname = "p",
                              .topic = "t",
                              .data = bad[i],
                              .len = strlen(bad[i])};
        char *out = NULL, *err = NULL;
        size_t n;
        CHECK_INT(cloudevent_envelope(&r, &out, &n, &err), TODO_EINVALID_JSON);
        CHECK(out == NULL);
        CHECK(err != NULL);
        free(err);
    }
}

static void test_dump(void)
{
    json_t *v = json_loads("{\"b\":\"<&>\\u2028\\u0001\\b\",\"a\":[1.5,0.1,100000.0,1e21,1e-7,-0.0,"
                           "123456789.125,3],\"c\":null,\"d\":true}",
                           0, NULL);
    size_t n;
    char *s = cloudevent_dump(v, &n);
    CHECK_STR(s, "{\"a\":[1.5,0.1,100000,1e+21,1e-07,-0,123456789.125,3],"
                 "\"b\":\"\\u003c\\u0026\\u003e\\u2028\\u0001\\b\",\"c\":null,\"d\":true}");
    CHECK_INT(n, strlen(s));
    free(s);
    json_decref(v);
}

static void test_bulk_bytes(void)
{
    char *out, *err;
    size_t n;
    json_t *b64 = json_string("aGk=");
    CHECK_INT(cloudevent_bulk_event_bytes(b64, "application/octet-stream", &out, &n, &err), 0);
    CHECK_INT(n, 2);
    CHECK(memcmp(out, "hi", 2) == 0);
    free(out);
    json_t *notb64 = json_string("a!==");
    CHECK_INT(cloudevent_bulk_event_bytes(notb64, "application/octet-stream", &out, &n, &err),
              TODO_EBAD_REQUEST);
    free(err);
    json_t *num = json_integer(5);
    CHECK_INT(cloudevent_bulk_event_bytes(num, "application/octet-stream", &out, &n, &err),
              TODO_EBAD_REQUEST);
    free(err);
    CHECK_INT(cloudevent_bulk_event_bytes(b64, "text/plain", &out, &n, &err), 0);
    CHECK_STR(out, "aGk=");
    free(out);
    CHECK_INT(cloudevent_bulk_event_bytes(b64, "application/xml", &out, &n, &err), 0);
    free(out);
    CHECK_INT(cloudevent_bulk_event_bytes(num, "text/plain", &out, &n, &err), TODO_EBAD_REQUEST);
    free(err);
    json_t *obj = json_loads("{\"z\":1,\"a\":\"<\"}", 0, NULL);
    CHECK_INT(cloudevent_bulk_event_bytes(obj, "application/json", &out, &n, &err), 0);
    CHECK_STR(out, "{\"a\":\"\\u003c\",\"z\":1}");
    free(out);
    CHECK_INT(cloudevent_bulk_event_bytes(b64, "application/cloudevents+json", &out, &n, &err), 0);
    CHECK_STR(out, "\"aGk=\"");
    free(out);
    CHECK_INT(cloudevent_bulk_event_bytes(obj, NULL, &out, &n, &err), TODO_EBAD_REQUEST);
    free(err);
    CHECK_INT(cloudevent_bulk_event_bytes(obj, "application/x+json", &out, &n, &err),
              TODO_EBAD_REQUEST);
    free(err);
    json_decref(b64);
    json_decref(notb64);
    json_decref(num);
    json_decref(obj);

    /* base64 strictness */
    const char *ok[] = {"", "AA==", "AAA=", "AAAA", "aGk=\r\n"};
    for (size_t i = 0; i < 5; i++) {
        CHECK(cloudevent_base64_decode(ok[i], strlen(ok[i]), &out, &n));
        free(out);
    }
    const char *badb[] = {"A", "AB=", "A===", "AB=C", "AB==AA==", "AB==", "AAB="};
    for (size_t i = 0; i < 7; i++)
        CHECK(!cloudevent_base64_decode(badb[i], strlen(badb[i]), &out, &n));
}

static void test_raw_payload(void)
{
    size_t n;
    char *s = cloudevent_from_raw_payload("hi", 2, "orders", "pubsub", NULL, NULL, &n);
    json_t *v = json_loadb(s, n, 0, NULL);
    CHECK(todo_uuid_valid(str(v, "id")));
    CHECK_STR(str(v, "datacontenttype"), "application/octet-stream");
    CHECK_STR(str(v, "source"), "Dapr");
    CHECK_STR(str(v, "type"), "com.dapr.event.sent");
    CHECK_STR(str(v, "specversion"), "1.0");
    CHECK_STR(str(v, "topic"), "orders");
    CHECK_STR(str(v, "pubsubname"), "pubsub");
    CHECK_STR(str(v, "data_base64"), "aGk=");
    CHECK(json_object_get(v, "traceid") == NULL);
    CHECK(json_object_get(v, "tracestate") == NULL);
    CHECK_INT(json_object_size(v), 8);
    json_decref(v);
    free(s);
    s = cloudevent_from_raw_payload("", 0, "o", "p", TP, "a=b", &n);
    v = json_loadb(s, n, 0, NULL);
    CHECK_STR(str(v, "traceid"), TP);
    CHECK_STR(str(v, "traceparent"), TP);
    CHECK_STR(str(v, "tracestate"), "a=b");
    json_decref(v);
    free(s);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    test_content_type();
    test_wrap();
    test_overrides();
    test_time();
    test_ttl();
    test_app_cloudevent();
    test_dump();
    test_bulk_bytes();
    test_raw_payload();
    return check_exit();
}
