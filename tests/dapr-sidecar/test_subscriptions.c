/* Unit test of subscriptions.c: GET /dapr/subscribe replies as daprd reads them (DAPR-CONTRACT
 * §2.1), the `event.type == "…"` rule subset, route choice, the merge and topic scopes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "subscriptions.h"
#include "todo/alloc.h"
#include "todo/log.h"

static int parse(const char *body, res_subscription_t **list, size_t *n)
{
    char *err = NULL;
    int rc = subscriptions_parse(body, strlen(body), list, n, &err);
    free(err);
    return rc;
}

static void test_parse_shapes(void)
{
    res_subscription_t *l = NULL;
    size_t n = 99;

    /* routes.default beats route; route alone is the default; keys are case-insensitive. */
    CHECK_INT(parse("[{\"pubsubname\":\"ps\",\"topic\":\"a\",\"route\":\"/r\","
                    "\"routes\":{\"default\":\"/d\"}},"
                    "{\"PubSubName\":\"ps\",\"TOPIC\":\"b\",\"Route\":\"/only\","
                    "\"deadLetterTopic\":\"dlq\",\"metadata\":{\"rawPayload\":\"true\"}},"
                    "{\"pubsubname\":\"ps\",\"topic\":\"c\",\"routes\":{\"rules\":["
                    "{\"match\":\"  event.type == \\\"x\\\" \",\"path\":\"/x\"}],\"default\":\"\"},"
                    "\"route\":\"/fallback\",\"bulkSubscribe\":{\"enabled\":true,"
                    "\"maxMessagesCount\":5}}] trailing ignored",
                    &l, &n),
              0);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(l[0].default_path, "/d");
        CHECK_INT(l[0].nrules, 0);
        CHECK(l[0].programmatic);
        CHECK_STR(l[1].pubsubname, "ps");
        CHECK_STR(l[1].topic, "b");
        CHECK_STR(l[1].default_path, "/only");
        CHECK_STR(l[1].dead_letter_topic, "dlq");
        CHECK_INT(l[1].nmeta, 1);
        CHECK_STR(l[1].meta[0].name, "rawPayload");
        CHECK_INT(l[2].nrules, 1);
        CHECK_STR(l[2].rules[0].match, "event.type == \"x\"");
        CHECK_STR(l[2].default_path, "/fallback");
        CHECK(l[2].bulk_enabled);
        CHECK_INT(l[2].bulk_max_messages, 5);
    }
    subscriptions_free_list(l, n);

    /* No route at all: dropped. null / [] / null entries: none. */
    CHECK_INT(parse("[{\"pubsubname\":\"ps\",\"topic\":\"a\"},null]", &l, &n), 0);
    CHECK_INT(n, 0);
    subscriptions_free_list(l, n);
    CHECK_INT(parse("null", &l, &n), 0);
    CHECK_INT(n, 0);
    subscriptions_free_list(l, n);
    CHECK_INT(parse(" []", &l, &n), 0);
    CHECK_INT(n, 0);
    subscriptions_free_list(l, n);

    /* Unusable replies: empty body (EOF), not JSON, not an array, a wrong type anywhere. */
    CHECK(parse("", &l, &n) != 0);
    CHECK(parse("  ", &l, &n) != 0);
    CHECK(parse("nope", &l, &n) != 0);
    CHECK(parse("{\"pubsubname\":\"ps\"}", &l, &n) != 0);
    CHECK(parse("[{\"pubsubname\":\"ps\",\"topic\":5,\"route\":\"/a\"}]", &l, &n) != 0);
    CHECK(parse("[{\"pubsubname\":\"ps\",\"topic\":\"t\",\"route\":\"/a\",\"metadata\":{\"k\":1}}]",
                &l, &n) != 0);
    CHECK(parse("[{\"topic\":\"t\",\"route\":\"/a\",\"bulkSubscribe\":{\"maxMessagesCount\":1.5}}]",
                &l, &n) != 0);
    CHECK(l == NULL);

    /* An unsupported CEL expression refuses that subscription only. */
    CHECK_INT(parse("[{\"pubsubname\":\"ps\",\"topic\":\"a\",\"routes\":{\"rules\":[{\"match\":"
                    "\"event.data.kind == 'y'\",\"path\":\"/y\"}],\"default\":\"/d\"}},"
                    "{\"pubsubname\":\"ps\",\"topic\":\"b\",\"route\":\"/b\"}]",
                    &l, &n),
              0);
    CHECK_INT(n, 1);
    if (n == 1)
        CHECK_STR(l[0].topic, "b");
    subscriptions_free_list(l, n);
}

static void test_match_parse(void)
{
    char *t = NULL;
    CHECK(subscriptions_match_parse("", &t) && t == NULL);
    CHECK(subscriptions_match_parse("   ", &t) && t == NULL);
    CHECK(subscriptions_match_parse("event.type == \"order.created\"", &t));
    CHECK_STR(t, "order.created");
    free(t);
    CHECK(subscriptions_match_parse("event.type=='a\\'b'", &t));
    CHECK_STR(t, "a'b");
    free(t);
    CHECK(subscriptions_match_parse("event.type == \"\"", &t));
    CHECK_STR(t, "");
    free(t);
    CHECK(!subscriptions_match_parse("event.type != \"a\"", &t));
    CHECK(!subscriptions_match_parse("event.type == \"a\" && true", &t));
    CHECK(!subscriptions_match_parse("event.type == \"a", &t));
    CHECK(!subscriptions_match_parse("event.source == \"a\"", &t));
    CHECK(!subscriptions_match_parse("event.type == \"\\n\"", &t));
    CHECK(!subscriptions_match_parse("true", &t));
}

static void test_route(void)
{
    res_subscription_t *l = NULL;
    size_t n = 0;
    json_t *ev = NULL;

    CHECK_INT(parse("[{\"pubsubname\":\"ps\",\"topic\":\"a\",\"routes\":{\"rules\":["
                    "{\"match\":\"event.type == \\\"x\\\"\",\"path\":\"/x\"},"
                    "{\"match\":\"event.type == \\\"y\\\"\",\"path\":\"/y\"}],"
                    "\"default\":\"/d\"}},"
                    "{\"pubsubname\":\"ps\",\"topic\":\"b\",\"routes\":{\"rules\":["
                    "{\"match\":\"event.type == \\\"x\\\"\",\"path\":\"/x\"}]}},"
                    "{\"pubsubname\":\"ps\",\"topic\":\"c\",\"routes\":{\"rules\":["
                    "{\"match\":\"\",\"path\":\"/all\"}]}}]",
                    &l, &n),
              0);
    CHECK_INT(n, 3);
    if (n != 3)
        goto out;
    CHECK(json_parse("{\"type\":\"y\"}", 12, true, &ev) == 0);
    CHECK_STR(subscriptions_route(&l[0], ev), "/y");
    CHECK_STR(subscriptions_route(&l[1], ev), ""); /* no match: ack and drop */
    CHECK_STR(subscriptions_route(&l[2], ev), "/all");
    json_decref(ev);
    CHECK(json_parse("{\"type\":\"z\"}", 12, true, &ev) == 0);
    CHECK_STR(subscriptions_route(&l[0], ev), "/d");
    json_decref(ev);
    CHECK(json_parse("{\"type\":5}", 10, true, &ev) == 0);
    CHECK_STR(subscriptions_route(&l[0], ev), "/d");
    json_decref(ev);
    /* No `type`: a CEL evaluation error, unless no rule needs the event. */
    CHECK(json_parse("{\"id\":\"1\"}", 10, true, &ev) == 0);
    CHECK(subscriptions_route(&l[0], ev) == NULL);
    CHECK_STR(subscriptions_route(&l[2], ev), "/all");
    json_decref(ev);
    CHECK(subscriptions_route(&l[0], NULL) == NULL);
out:
    subscriptions_free_list(l, n);
}

static void test_merge(void)
{
    sidecar_t s;
    res_subscription_t decl[3];
    res_subscription_t *l = NULL;
    size_t n = 0;

    memset(&s, 0, sizeof(s));
    memset(decl, 0, sizeof(decl));
    decl[0].name = "d0";
    decl[0].pubsubname = "ps";
    decl[0].topic = "a";
    decl[0].default_path = "/decl-a";
    decl[1].name = "d1";
    decl[1].pubsubname = "ps";
    decl[1].topic = "other";
    decl[1].default_path = "/decl-other";
    decl[2].name = "d2";
    decl[2].pubsubname = "ps";
    decl[2].topic = "cel";
    decl[2].nrules = 1;
    decl[2].rules[0].match = "event.data.x > 1";
    decl[2].rules[0].path = "/p";
    s.res.subscriptions = decl;
    s.res.nsubscriptions = 3;
    CHECK_INT(parse("[{\"pubsubname\":\"ps\",\"topic\":\"a\",\"route\":\"/prog-a\"}]", &l, &n), 0);
    subscriptions_merge(&s, l, n);
    CHECK_INT(s.nsubscriptions, 2);
    if (s.nsubscriptions == 2) {
        CHECK_STR(s.subscriptions[0]->default_path, "/prog-a");
        CHECK(s.subscriptions[0]->programmatic);
        CHECK_STR(s.subscriptions[1]->default_path, "/decl-other");
    }
    subscriptions_dispose(&s);
    CHECK_INT(s.nsubscriptions, 0);
}

static void test_scopes(void)
{
    res_component_t c;
    memset(&c, 0, sizeof(c));
    CHECK(subscriptions_topic_allowed(&c, "app", "t"));
    c.meta[0].name = "allowedTopics";
    c.meta[0].value = "t1, t2";
    c.nmeta = 1;
    CHECK(subscriptions_topic_allowed(&c, "app", "t2"));
    CHECK(!subscriptions_topic_allowed(&c, "app", "t3"));
    c.meta[1].name = "SubscriptionScopes";
    c.meta[1].value = "app=t1;other=t2";
    c.nmeta = 2;
    CHECK(subscriptions_topic_allowed(&c, "app", "t1"));
    CHECK(!subscriptions_topic_allowed(&c, "app", "t2"));
    CHECK(subscriptions_topic_allowed(&c, "third", "t2")); /* not listed: no scope applies */
    c.meta[0].name = "protectedTopics";
    c.meta[0].value = "t9";
    c.meta[1].value = "other=t2";
    CHECK(!subscriptions_topic_allowed(&c, "app", "t9"));
    CHECK(subscriptions_topic_allowed(&c, "app", "t8"));
}

int main(void)
{
    log_init("test_subscriptions", LOG_LEVEL_ERROR);
    test_parse_shapes();
    test_match_parse();
    test_route();
    test_merge();
    test_scopes();
    return check_exit();
}
