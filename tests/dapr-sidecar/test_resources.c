/* Unit tests of resources.c and secrets.c: YAML fixtures written into a temporary folder, every
 * kind, both Subscription versions, scopes, secrets, errors, Go durations and the Resiliency
 * lookup chain. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "resources.h"
#include "secrets.h"
#include "todo/log.h"

static char root[256];
static int dir_seq;

/* A new empty folder below root (path in a static rotating buffer). */
static const char *new_dir(void)
{
    static char bufs[4][300];
    char *b = bufs[dir_seq % 4];
    snprintf(b, sizeof(bufs[0]), "%s/d%d", root, dir_seq++);
    if (mkdir(b, 0700) != 0)
        perror("mkdir");
    return b;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static int load1(const char *dir, const char *app, resources_t *r, char **err)
{
    const char *paths[] = {dir};
    return resources_load(paths, 1, app, r, err);
}

static void test_durations(void)
{
    int64_t ns = 0, ms = 0;
    CHECK_INT(res_duration_parse("1h2m3.5s", &ns), 0);
    CHECK_INT(ns, 3723500000000LL);
    CHECK_INT(res_duration_parse("500ms", &ns), 0);
    CHECK_INT(ns, 500000000LL);
    CHECK_INT(res_duration_parse("10s", &ns), 0);
    CHECK_INT(ns, 10000000000LL);
    CHECK_INT(res_duration_parse("0", &ns), 0);
    CHECK_INT(ns, 0);
    CHECK_INT(res_duration_parse("-1.5us", &ns), 0);
    CHECK_INT(ns, -1500);
    CHECK_INT(res_duration_parse("1\xc2\xb5s", &ns), 0);
    CHECK_INT(ns, 1000);
    CHECK_INT(res_duration_parse("2h45m", &ns), 0);
    CHECK_INT(ns, 9900000000000LL);
    CHECK_INT(res_duration_parse(".5s", &ns), 0);
    CHECK_INT(ns, 500000000);
    CHECK_INT(res_duration_parse("1.s", &ns), 0);
    CHECK_INT(ns, 1000000000);
    CHECK_INT(res_duration_parse("100ns", &ns), 0);
    CHECK_INT(ns, 100);
    CHECK_INT(res_duration_parse("2562047h47m16.854775807s", &ns), 0);
    CHECK_INT(ns, 9223372036854775807LL);
    /* Invalid as in Go: no unit, unknown unit, empty, lone dot, overflow. */
    CHECK(res_duration_parse("10", &ns) != 0);
    CHECK(res_duration_parse("", &ns) != 0);
    CHECK(res_duration_parse("5d", &ns) != 0);
    CHECK(res_duration_parse(".s", &ns) != 0);
    CHECK(res_duration_parse("s", &ns) != 0);
    CHECK(res_duration_parse("-", &ns) != 0);
    CHECK(res_duration_parse("1 s", &ns) != 0);
    CHECK(res_duration_parse("2562048h", &ns) != 0);
    CHECK(res_duration_parse("99999999999999999999s", &ns) != 0);
    /* Milliseconds helper: bare integers are ms. */
    CHECK_INT(res_duration_ms("1500", &ms), 0);
    CHECK_INT(ms, 1500);
    CHECK_INT(res_duration_ms("2s", &ms), 0);
    CHECK_INT(ms, 2000);
    CHECK_INT(res_duration_ms("1.9ms", &ms), 0);
    CHECK_INT(ms, 1);
    CHECK(res_duration_ms("abc", &ms) != 0);
    CHECK(res_duration_ms("", &ms) != 0);
}

static const char *ALL_KINDS = "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Component\n"
                               "metadata:\n"
                               "  name: pubsub\n"
                               "spec:\n"
                               "  type: pubsub.kafka\n"
                               "  version: v1\n"
                               "  metadata:\n"
                               "  - name: brokers\n"
                               "    value: \"127.0.0.1:9092\"\n"
                               "  - name: maxMessageBytes\n"
                               "    value: 1024\n"
                               "  - name: fromEnv\n"
                               "    envRef: TEST_RESOURCES_ENVREF\n"
                               "  - name: empty\n"
                               "---\n"
                               "apiVersion: dapr.io/v2alpha1\n"
                               "kind: Subscription\n"
                               "metadata:\n"
                               "  name: orders-v2\n"
                               "spec:\n"
                               "  pubsubname: pubsub\n"
                               "  topic: orders\n"
                               "  routes:\n"
                               "    rules:\n"
                               "    - match: event.type == \"order.created\"\n"
                               "      path: /created\n"
                               "    - match: event.type == \"order.deleted\"\n"
                               "      path: /deleted\n"
                               "    default: /orders\n"
                               "  deadLetterTopic: orders-dlq\n"
                               "  metadata:\n"
                               "    rawPayload: \"true\"\n"
                               "  bulkSubscribe:\n"
                               "    enabled: true\n"
                               "    maxMessagesCount: 50\n"
                               "    maxAwaitDurationMs: 200\n"
                               "scopes:\n"
                               "- app1\n"
                               "- app2\n"
                               "---\n"
                               "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Subscription\n"
                               "metadata:\n"
                               "  name: orders-v1\n"
                               "spec:\n"
                               "  pubsubname: pubsub\n"
                               "  topic: audit\n"
                               "  route: /audit\n"
                               "  deadLetterTopic: audit-dlq\n"
                               "---\n"
                               "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Configuration\n"
                               "metadata:\n"
                               "  name: cfg\n"
                               "spec: {}\n";

static void test_all_kinds(void)
{
    const char *d = new_dir();
    resources_t r;
    char *err = NULL;
    write_file(d, "a.yaml", ALL_KINDS);
    write_file(d, "b.yml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Resiliency\n"
               "metadata:\n"
               "  name: res\n"
               "spec:\n"
               "  policies:\n"
               "    timeouts:\n"
               "      general: 5s\n"
               "      bare: 750\n"
               "    retries:\n"
               "      pubsubRetry:\n"
               "        policy: exponential\n"
               "        maxInterval: 15s\n"
               "        maxRetries: 10\n"
               "        matching:\n"
               "          httpStatusCodes: \"500-599,429\"\n"
               "      plain: {}\n"
               "    circuitBreakers:\n"
               "      cb:\n"
               "        maxRequests: 2\n"
               "        interval: 8s\n"
               "        trip: consecutiveFailures > 8\n"
               "  targets:\n"
               "    components:\n"
               "      pubsub:\n"
               "        inbound:\n"
               "          retry: pubsubRetry\n"
               "          timeout: general\n"
               "        outbound:\n"
               "          retry: plain\n"
               "          circuitBreaker: cb\n");
    write_file(d, "notes.txt", "not yaml at all: [");
    setenv("TEST_RESOURCES_ENVREF", "from-env", 1);
    int rc = load1(d, "app1", &r, &err);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "load: %s\n", err);
        free(err);
        return;
    }
    CHECK_INT(r.ncomponents, 1);
    const res_component_t *c = resources_component(&r, "pubsub");
    CHECK(c != NULL);
    CHECK_STR(c->type, "pubsub.kafka");
    CHECK_STR(c->version, "v1");
    CHECK_STR(res_component_meta(c, "brokers"), "127.0.0.1:9092");
    CHECK_STR(res_component_meta(c, "maxMessageBytes"), "1024");
    CHECK_STR(res_component_meta(c, "fromEnv"), "from-env");
    CHECK_STR(res_component_meta(c, "empty"), "");
    CHECK(res_component_meta(c, "absent") == NULL);
    CHECK(resources_component(&r, "nope") == NULL);

    CHECK_INT(r.nsubscriptions, 2);
    const res_subscription_t *s2 = &r.subscriptions[0], *s1 = &r.subscriptions[1];
    CHECK_STR(s2->name, "orders-v2");
    CHECK_STR(s2->pubsubname, "pubsub");
    CHECK_STR(s2->topic, "orders");
    CHECK_INT(s2->nrules, 2);
    CHECK_STR(s2->rules[0].match, "event.type == \"order.created\"");
    CHECK_STR(s2->rules[0].path, "/created");
    CHECK_STR(s2->rules[1].path, "/deleted");
    CHECK_STR(s2->default_path, "/orders");
    CHECK_STR(s2->dead_letter_topic, "orders-dlq");
    CHECK_INT(s2->nmeta, 1);
    CHECK_STR(s2->meta[0].name, "rawPayload");
    CHECK_STR(s2->meta[0].value, "true");
    CHECK(s2->bulk_enabled);
    CHECK_INT(s2->bulk_max_messages, 50);
    CHECK_INT(s2->bulk_max_await_ms, 200);
    CHECK(!s2->programmatic);
    CHECK_STR(s1->name, "orders-v1");
    CHECK_STR(s1->topic, "audit");
    CHECK_INT(s1->nrules, 0);
    CHECK_STR(s1->default_path, "/audit");
    CHECK_STR(s1->dead_letter_topic, "audit-dlq");
    CHECK(!s1->bulk_enabled);

    CHECK_INT(r.nresiliencies, 1);
    const res_resiliency_t *x = &r.resiliencies[0];
    CHECK_INT(x->ntimeouts, 2);
    CHECK_INT(x->nretries, 2);
    CHECK_INT(x->ncircuit_breakers, 1);
    CHECK_INT(x->circuit_breakers[0].max_requests, 2);
    CHECK_INT(x->circuit_breakers[0].interval_ms, 8000);
    CHECK_INT(x->circuit_breakers[0].timeout_ms, 60000);
    CHECK_STR(x->circuit_breakers[0].trip, "consecutiveFailures > 8");
    const res_retry_t *rt = resources_inbound_retry(&r, "pubsub");
    CHECK(rt != NULL);
    if (rt) {
        CHECK_STR(rt->name, "pubsubRetry");
        CHECK_INT(rt->policy, RES_RETRY_EXPONENTIAL);
        CHECK_INT(rt->max_interval_ms, 15000);
        CHECK_INT(rt->max_retries, 10);
        CHECK_INT(rt->duration_ms, 5000);
        CHECK_STR(rt->http_status_codes, "500-599,429");
    }
    const res_timeout_t *to = resources_inbound_timeout(&r, "pubsub");
    CHECK(to != NULL);
    if (to)
        CHECK_INT(to->ms, 5000);
    for (size_t i = 0; i < x->nretries; i++)
        if (strcmp(x->retries[i].name, "plain") == 0) {
            CHECK_INT(x->retries[i].policy, RES_RETRY_CONSTANT);
            CHECK_INT(x->retries[i].duration_ms, 5000);
            CHECK_INT(x->retries[i].max_interval_ms, 60000);
            CHECK_INT(x->retries[i].max_retries, -1);
            CHECK(x->retries[i].http_status_codes == NULL);
        }
    for (size_t i = 0; i < x->ntimeouts; i++)
        if (strcmp(x->timeouts[i].name, "bare") == 0)
            CHECK_INT(x->timeouts[i].ms, 750);
    /* No target for another component and no defaults: NULL. */
    CHECK(resources_inbound_retry(&r, "other") == NULL);
    CHECK(resources_inbound_timeout(&r, "other") == NULL);
    resources_dispose(&r);

    /* Another app: the v2 subscription is scoped away. */
    CHECK_INT(load1(d, "app3", &r, &err), 0);
    CHECK_INT(r.nsubscriptions, 1);
    if (r.nsubscriptions == 1)
        CHECK_STR(r.subscriptions[0].name, "orders-v1");
    resources_dispose(&r);
}

static void test_scopes_and_namespace(void)
{
    const char *d = new_dir();
    resources_t r;
    char *err = NULL;
    write_file(d, "c.yaml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: onlyb}\n"
               "spec: {type: pubsub.redis, version: v1, metadata: []}\n"
               "scopes: [b]\n"
               "---\n"
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: other-type}\n"
               "spec: {type: bindings.smtp, version: v1, metadata: []}\n"
               "scopes: [b]\n"
               "---\n"
               "apiVersion: dapr.io/v2alpha1\n"
               "kind: Subscription\n"
               "metadata: {name: ns-sub, namespace: prod}\n"
               "spec: {pubsubname: p, topic: t, routes: {default: /t}}\n"
               "---\n"
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Resiliency\n"
               "metadata: {name: r2}\n"
               "spec: {policies: {}, targets: {}}\n");
    unsetenv("NAMESPACE");
    CHECK_INT(load1(d, "a", &r, &err), 0);
    CHECK_INT(r.ncomponents, 0); /* scoped to b; the unsupported type is not even looked at */
    CHECK_INT(r.nsubscriptions, 1);
    CHECK_INT(r.nresiliencies, 0); /* a Resiliency after the first document is ignored */
    resources_dispose(&r);
    setenv("NAMESPACE", "dev", 1);
    CHECK_INT(load1(d, "a", &r, &err), 0);
    CHECK_INT(r.nsubscriptions, 0);
    resources_dispose(&r);
    setenv("NAMESPACE", "prod", 1);
    CHECK_INT(load1(d, "a", &r, &err), 0);
    CHECK_INT(r.nsubscriptions, 1);
    resources_dispose(&r);
    unsetenv("NAMESPACE");
    /* App b loads the unsupported type → error naming file and type. */
    CHECK(load1(d, "b", &r, &err) != 0);
    CHECK(err && strstr(err, "c.yaml") && strstr(err, "bindings.smtp"));
    free(err);
    err = NULL;
}

static void test_secrets(void)
{
    const char *d = new_dir();
    resources_t r;
    char *err = NULL;
    char secrets_path[400], yaml[2048];
    snprintf(secrets_path, sizeof(secrets_path), "%s/secrets.json", d);
    write_file(d, "secrets.json",
               "{\"db\": {\"password\": \"pw1\", \"user\": \"u\"}, \"token\": \"t0\","
               " \"n\": 5, \"list\": [\"x\", \"y\"]}");
    setenv("TEST_RESOURCES_SECRET", "env-secret", 1);
    /* The consumer comes first in file order; the stores load first regardless. */
    write_file(d, "a-consumer.yaml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: statestore}\n"
               "auth: {secretStore: filestore}\n"
               "spec:\n"
               "  type: state.postgresql\n"
               "  version: v2\n"
               "  metadata:\n"
               "  - name: connectionString\n"
               "    secretKeyRef: {name: \"db:password\", key: \"db:password\"}\n"
               "  - name: token\n"
               "    secretKeyRef: {name: token}\n"
               "  - name: second\n"
               "    secretKeyRef: {name: \"list:1\"}\n"
               "---\n"
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: redis}\n"
               "auth: {secretStore: envstore}\n"
               "spec:\n"
               "  type: pubsub.redis\n"
               "  version: v1\n"
               "  metadata:\n"
               "  - name: redisPassword\n"
               "    secretKeyRef: {name: TEST_RESOURCES_SECRET, key: TEST_RESOURCES_SECRET}\n");
    snprintf(yaml, sizeof(yaml),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: filestore}\n"
             "spec:\n"
             "  type: secretstores.local.file\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - name: secretsFile\n"
             "    value: %s\n"
             "---\n"
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: envstore}\n"
             "spec: {type: secretstores.local.env, version: v1, metadata: []}\n",
             secrets_path);
    write_file(d, "z-stores.yaml", yaml);
    int rc = load1(d, "app", &r, &err);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "load: %s\n", err);
        free(err);
        return;
    }
    const res_component_t *st = resources_component(&r, "statestore");
    CHECK_STR(res_component_meta(st, "connectionString"), "pw1");
    CHECK_STR(res_component_meta(st, "token"), "t0");
    CHECK_STR(res_component_meta(st, "second"), "y");
    CHECK_STR(res_component_meta(resources_component(&r, "redis"), "redisPassword"), "env-secret");
    /* Direct store reads. */
    json_t *v = NULL;
    CHECK_INT(secrets_get(resources_component(&r, "filestore"), "n", &v, &err), 0);
    /* Go's fmt.Sprintf("%s", 5.0), as the file store formats non-strings. */
    CHECK_STR(json_string_value(json_object_get(v, "n")), "%!s(float64=5)");
    json_decref(v);
    CHECK_INT(secrets_get(resources_component(&r, "filestore"), "missing", &v, &err),
              TODO_ENOT_FOUND);
    free(err);
    err = NULL;
    CHECK_INT(secrets_bulk(resources_component(&r, "filestore"), &v, &err), 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(v, "db:user"), "db:user")), "u");
    json_decref(v);
    CHECK_INT(secrets_get(resources_component(&r, "envstore"), "TEST_RESOURCES_SECRET", &v, &err),
              0);
    CHECK_STR(json_string_value(json_object_get(v, "TEST_RESOURCES_SECRET")), "env-secret");
    json_decref(v);
    /* DAPR_* and APP_API_TOKEN are never handed out; unset variables are "". */
    setenv("DAPR_API_TOKEN", "hidden", 1);
    CHECK_INT(secrets_get(resources_component(&r, "envstore"), "DAPR_API_TOKEN", &v, &err), 0);
    CHECK_STR(json_string_value(json_object_get(v, "DAPR_API_TOKEN")), "");
    json_decref(v);
    CHECK_INT(secrets_get(resources_component(&r, "envstore"), "TEST_RESOURCES_UNSET", &v, &err),
              0);
    CHECK_STR(json_string_value(json_object_get(v, "TEST_RESOURCES_UNSET")), "");
    json_decref(v);
    CHECK_INT(secrets_bulk(resources_component(&r, "envstore"), &v, &err), 0);
    CHECK(json_object_get(v, "TEST_RESOURCES_SECRET") != NULL);
    CHECK(json_object_get(v, "DAPR_API_TOKEN") == NULL);
    json_decref(v);
    unsetenv("DAPR_API_TOKEN");
    resources_dispose(&r);

    /* The env store's prefix. */
    const char *dp = new_dir();
    write_file(dp, "p.yaml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: penv}\n"
               "spec:\n"
               "  type: secretstores.local.env\n"
               "  version: v1\n"
               "  metadata:\n"
               "  - {name: prefix, value: TEST_RESOURCES_}\n");
    CHECK_INT(load1(dp, "app", &r, &err), 0);
    CHECK_INT(secrets_get(resources_component(&r, "penv"), "SECRET", &v, &err), 0);
    CHECK_STR(json_string_value(json_object_get(v, "SECRET")), "env-secret");
    json_decref(v);
    CHECK_INT(secrets_bulk(resources_component(&r, "penv"), &v, &err), 0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(v, "SECRET"), "SECRET")),
              "env-secret");
    CHECK(json_object_get(v, "PATH") == NULL);
    json_decref(v);
    resources_dispose(&r);

    /* multiValued with another separator. */
    const char *d2 = new_dir();
    snprintf(secrets_path, sizeof(secrets_path), "%s/s.json", d2);
    write_file(d2, "s.json",
               "{\"db\": {\"password\": \"pw1\", \"nested\": {\"k\": \"v\"}},"
               " \"one\": \"single\", \"num\": 3}");
    snprintf(yaml, sizeof(yaml),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: fs}\n"
             "spec:\n"
             "  type: secretstores.local.file\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - {name: secretsFile, value: \"%s\"}\n"
             "  - {name: multiValued, value: \"true\"}\n"
             "  - {name: nestedSeparator, value: \".\"}\n"
             "---\n"
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: c}\n"
             "auth: {secretStore: fs}\n"
             "spec:\n"
             "  type: pubsub.redis\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - name: a\n"
             "    secretKeyRef: {name: db, key: password}\n"
             "  - name: b\n"
             "    secretKeyRef: {name: db, key: nested.k}\n",
             secrets_path);
    write_file(d2, "x.yaml", yaml);
    rc = load1(d2, "app", &r, &err);
    CHECK_INT(rc, 0);
    if (rc == 0) {
        CHECK_STR(res_component_meta(resources_component(&r, "c"), "a"), "pw1");
        CHECK_STR(res_component_meta(resources_component(&r, "c"), "b"), "v");
        json_t *all = NULL;
        CHECK_INT(secrets_bulk(resources_component(&r, "fs"), &all, &err), 0);
        CHECK_STR(json_string_value(json_object_get(json_object_get(all, "one"), "one")), "single");
        CHECK(json_object_get(all, "num") == NULL); /* not a string or object: left out */
        CHECK_INT(json_object_size(json_object_get(all, "db")), 2);
        json_decref(all);
        resources_dispose(&r);
    } else {
        fprintf(stderr, "load: %s\n", err);
        free(err);
        err = NULL;
    }

    /* secretKeyRef without auth.secretStore, unknown store, missing key → errors. */
    const char *d3 = new_dir();
    write_file(d3, "x.yaml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: c}\n"
               "spec:\n"
               "  type: pubsub.redis\n"
               "  version: v1\n"
               "  metadata:\n"
               "  - name: a\n"
               "    secretKeyRef: {name: db}\n");
    CHECK(load1(d3, "app", &r, &err) != 0);
    CHECK(err && strstr(err, "auth.secretStore"));
    free(err);
    err = NULL;
    const char *d4 = new_dir();
    write_file(d4, "x.yaml",
               "apiVersion: dapr.io/v1alpha1\n"
               "kind: Component\n"
               "metadata: {name: c}\n"
               "auth: {secretStore: nostore}\n"
               "spec:\n"
               "  type: pubsub.redis\n"
               "  version: v1\n"
               "  metadata:\n"
               "  - name: a\n"
               "    secretKeyRef: {name: db}\n");
    CHECK(load1(d4, "app", &r, &err) != 0);
    CHECK(err && strstr(err, "nostore"));
    free(err);
    err = NULL;
    snprintf(yaml, sizeof(yaml),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: fs}\n"
             "spec:\n"
             "  type: secretstores.local.file\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - {name: secretsFile, value: \"%s\"}\n"
             "---\n"
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: c}\n"
             "auth: {secretStore: fs}\n"
             "spec:\n"
             "  type: pubsub.redis\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - name: a\n"
             "    secretKeyRef: {name: nothere}\n",
             secrets_path);
    const char *d5 = new_dir();
    write_file(d5, "x.yaml", yaml);
    CHECK(load1(d5, "app", &r, &err) != 0);
    CHECK(err && strstr(err, "nothere"));
    free(err);
    err = NULL;
}

static void expect_error(const char *yaml, const char *needle)
{
    const char *d = new_dir();
    resources_t r;
    char *err = NULL;
    write_file(d, "bad.yaml", yaml);
    int rc = load1(d, "app", &r, &err);
    CHECK(rc != 0);
    if (rc == 0) {
        resources_dispose(&r);
        fprintf(stderr, "expected an error containing '%s'\n", needle);
        return;
    }
    CHECK(err != NULL && strstr(err, "bad.yaml") != NULL);
    if (!err || !strstr(err, needle)) {
        CHECK(0);
        fprintf(stderr, "error '%s' lacks '%s'\n", err ? err : "(null)", needle);
    }
    free(err);
}

static void test_errors(void)
{
    /* Malformed YAML. */
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: [x\n",
                 "malformed YAML");
    /* Unknown component type. */
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n"
                 "spec: {type: state.redis, version: v1, metadata: []}\n",
                 "state.redis");
    /* ... unless ignoreErrors. */
    {
        const char *d = new_dir();
        resources_t r;
        char *err = NULL;
        write_file(d, "ok.yaml",
                   "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n"
                   "spec: {type: state.redis, version: v1, ignoreErrors: true, metadata: []}\n");
        CHECK_INT(load1(d, "app", &r, &err), 0);
        CHECK_INT(r.ncomponents, 0);
        resources_dispose(&r);
    }
    /* Duplicate subscription name, across documents. */
    expect_error("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                 "spec: {pubsubname: p, topic: t, routes: {default: /a}}\n---\n"
                 "apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                 "spec: {pubsubname: p, topic: u, route: /b}\n",
                 "duplicate");
    /* v1alpha1 requires route; both require pubsubname and topic. */
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                 "spec: {pubsubname: p, topic: t}\n",
                 "route is required");
    expect_error("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {name: s}\n"
                 "spec: {topic: t, routes: {default: /a}}\n",
                 "pubsubname is required");
    /* Resiliency: unknown retry policy kind, bad duration, undefined policy name. */
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
                 "spec:\n  policies:\n    retries:\n      x: {policy: linear}\n  targets: {}\n",
                 "linear");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
                 "spec:\n  policies:\n    timeouts:\n      x: 5 seconds\n  targets: {}\n",
                 "not a duration");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
                 "spec:\n  policies: {}\n  targets:\n    components:\n      p:\n"
                 "        inbound: {retry: missing}\n",
                 "missing");
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
                 "spec:\n  policies:\n    retries:\n      x:\n        matching:\n"
                 "          httpStatusCodes: \"600\"\n  targets: {}\n",
                 "httpStatusCodes");
    /* Component without a name. */
    expect_error("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {}\n"
                 "spec: {type: pubsub.redis}\n",
                 "name is required");

    /* A missing folder is an error too. */
    resources_t r;
    char *err = NULL;
    const char *paths[] = {"/nonexistent/resources/folder"};
    CHECK(resources_load(paths, 1, "app", &r, &err) != 0);
    CHECK(err && strstr(err, "/nonexistent/resources/folder"));
    free(err);
}

static void test_lookup_chain(void)
{
    static const char *const levels[] = {
        "DefaultRetryPolicy",
        "DefaultComponentRetryPolicy",
        "DefaultComponentInboundRetryPolicy",
        "DefaultPubsubComponentInboundRetryPolicy",
    };
    static const char *const tlevels[] = {
        "DefaultTimeoutPolicy",
        "DefaultComponentTimeoutPolicy",
        "DefaultComponentInboundTimeoutPolicy",
        "DefaultPubsubComponentInboundTimeoutPolicy",
    };
    /* Add the templates one by one, least specific first: each new one must win. */
    for (size_t n = 1; n <= 4; n++) {
        const char *d = new_dir();
        char yaml[4096];
        size_t off = (size_t)snprintf(yaml, sizeof(yaml),
                                      "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\n"
                                      "metadata: {name: chain}\nspec:\n  policies:\n"
                                      "    retries:\n");
        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "      %s: {maxRetries: %zu}\n",
                                    levels[i], i);
        off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "    timeouts:\n");
        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "      %s: %zus\n", tlevels[i],
                                    i + 1);
        snprintf(yaml + off, sizeof(yaml) - off,
                 "      named: 42ms\n"
                 "  targets:\n    components:\n      named-pubsub:\n"
                 "        inbound: {timeout: named}\n");
        write_file(d, "r.yaml", yaml);
        resources_t r;
        char *err = NULL;
        int rc = load1(d, "app", &r, &err);
        CHECK_INT(rc, 0);
        if (rc) {
            fprintf(stderr, "load: %s\n", err);
            free(err);
            continue;
        }
        const res_retry_t *rt = resources_inbound_retry(&r, "somepubsub");
        CHECK(rt != NULL);
        if (rt)
            CHECK_STR(rt->name, levels[n - 1]);
        const res_timeout_t *to = resources_inbound_timeout(&r, "somepubsub");
        CHECK(to != NULL);
        if (to)
            CHECK_INT(to->ms, (int64_t)n * 1000);
        /* The named target's timeout beats the templates; its retry falls back to them. */
        to = resources_inbound_timeout(&r, "named-pubsub");
        CHECK(to != NULL);
        if (to)
            CHECK_INT(to->ms, 42);
        rt = resources_inbound_retry(&r, "named-pubsub");
        CHECK(rt != NULL);
        if (rt)
            CHECK_STR(rt->name, levels[n - 1]);
        resources_dispose(&r);
    }
}

int main(void)
{
    log_init("test_resources", LOG_LEVEL_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/test_resources.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_durations();
    test_all_kinds();
    test_scopes_and_namespace();
    test_secrets();
    test_errors();
    test_lookup_chain();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_exit();
}
