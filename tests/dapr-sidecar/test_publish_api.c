/* Unit tests of publish_api.c's pure parts: metadata.* query parameters (DAPR-CONTRACT §0.2),
 * the rawPayload flag (§1.1) and publishing topic scopes (§1.5). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "publish_api.h"

static void test_query_metadata(void)
{
    broker_header_t m[8];
    size_t n = publish_query_metadata("metadata.partitionKey=k1&x=1&metadata.rawPayload=true&"
                                      "metadata.partitionKey=k2&metadata.a%20b=c+d%2Fe&"
                                      "metadata.bad=%zz&metadata.semi=a;b&metadata.empty&"
                                      "metadata.=v&Metadata.upper=1",
                                      m, 8);
    CHECK_INT(n, 5);
    CHECK_STR(m[0].name, "partitionKey");
    CHECK_STR(m[0].value, "k1"); /* first value wins */
    CHECK_STR(m[1].name, "rawPayload");
    CHECK_STR(m[1].value, "true");
    CHECK_STR(m[2].name, "a b");
    CHECK_STR(m[2].value, "c d/e");
    CHECK_STR(m[3].name, "empty");
    CHECK_STR(m[3].value, "");
    CHECK_STR(m[4].name, "");
    CHECK_STR(m[4].value, "v");
    publish_metadata_free(m, n);

    CHECK_INT(publish_query_metadata("", m, 8), 0);
    CHECK_INT(publish_query_metadata(NULL, m, 8), 0);
    n = publish_query_metadata("metadata.a=1&metadata.b=2&metadata.c=3", m, 2);
    CHECK_INT(n, 2);
    publish_metadata_free(m, n);
}

static void test_raw_payload(void)
{
    bool raw = true;
    CHECK(publish_raw_payload(NULL, 0, &raw));
    CHECK(!raw);
    const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    const char *no[] = {"0", "f", "F", "FALSE", "false", "False", ""};
    for (size_t i = 0; i < 6; i++) {
        broker_header_t m[] = {{"rawPayload", yes[i]}};
        CHECK(publish_raw_payload(m, 1, &raw));
        CHECK(raw);
    }
    for (size_t i = 0; i < 7; i++) {
        broker_header_t m[] = {{"rawPayload", no[i]}};
        CHECK(publish_raw_payload(m, 1, &raw));
        CHECK(!raw);
    }
    const char *bad[] = {"yes", "tRUE", "2", " true"};
    for (size_t i = 0; i < 4; i++) {
        broker_header_t m[] = {{"rawPayload", bad[i]}};
        CHECK(!publish_raw_payload(m, 1, &raw));
    }
}

static res_component_t component(const char *k1, const char *v1, const char *k2, const char *v2)
{
    res_component_t c;
    memset(&c, 0, sizeof(c));
    c.name = "pubsub";
    c.type = "pubsub.kafka";
    if (k1)
        c.meta[c.nmeta++] = (res_meta_t){(char *)k1, (char *)v1};
    if (k2)
        c.meta[c.nmeta++] = (res_meta_t){(char *)k2, (char *)v2};
    return c;
}

static void test_scopes(void)
{
    res_component_t c = component(NULL, NULL, NULL, NULL);
    CHECK(publish_topic_allowed(&c, "app1", "anything"));

    /* publishingScopes: listed apps get their topics; unlisted apps all; spaces stripped; app
     * ids compared case-insensitively; "app=" allows nothing */
    c = component("publishingScopes", "app1=t1, t2;App2=t3;app3=", NULL, NULL);
    CHECK(publish_topic_allowed(&c, "app1", "t1"));
    CHECK(publish_topic_allowed(&c, "app1", "t2"));
    CHECK(!publish_topic_allowed(&c, "app1", "t3"));
    CHECK(publish_topic_allowed(&c, "app2", "t3"));
    CHECK(!publish_topic_allowed(&c, "app2", "t1"));
    CHECK(!publish_topic_allowed(&c, "app3", "t1"));
    CHECK(publish_topic_allowed(&c, "app4", "t1"));

    /* allowedTopics: only those, for everyone */
    c = component("allowedTopics", "t1,t2", NULL, NULL);
    CHECK(publish_topic_allowed(&c, "app1", "t1"));
    CHECK(!publish_topic_allowed(&c, "app1", "t9"));
    c = component("allowedTopics", "t1,t2", "publishingScopes", "app1=t2");
    CHECK(!publish_topic_allowed(&c, "app1", "t1"));
    CHECK(publish_topic_allowed(&c, "app1", "t2"));
    CHECK(publish_topic_allowed(&c, "app2", "t1"));

    /* protectedTopics: need an explicit scope */
    c = component("protectedTopics", "secret", "publishingScopes", "app1=secret");
    CHECK(publish_topic_allowed(&c, "app1", "secret"));
    CHECK(!publish_topic_allowed(&c, "app2", "secret"));
    CHECK(publish_topic_allowed(&c, "app2", "open"));
}

int main(void)
{
    test_query_metadata();
    test_raw_payload();
    test_scopes();
    return check_exit();
}
