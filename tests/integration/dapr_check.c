/* The C side of tests/integration/test_dapr_client.py: checks common/src/dapr.c and bus.c against
 * a dapr-sidecar (the double of DAPR-CONTRACT.md) whose HTTP port is argv[1], with a pub/sub
 * component "pubsub" and a state store "statestore" loaded and a jobs store, and whose API token
 * is argv[2]. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "todo/bus.h"
#include "todo/dapr.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

static int port;
static const char *token;

static dapr_t *client(const char *tok)
{
    dapr_config_t c = {.port = port, .api_token = tok, .timeout_ms = 5000};
    return dapr_new(&c);
}

static char *event_text(const char *id)
{
    json_t *data = json_pack("{s:s}", "check", id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", id,
                          "source", "todo/check", "type", "todo.check", "datacontenttype",
                          "application/json", "data", data);
    char *s = json_dump(o);
    json_decref(o);
    json_decref(data);
    return s;
}

static void test_publish(dapr_t *d)
{
    char id[TODO_UUID_LEN];
    todo_uuid_v4(id);
    char *ev = event_text(id);
    CHECK_INT(dapr_outbound_healthy(d), TODO_OK);
    CHECK_INT(dapr_publish(d, "pubsub", "client-check", ev, strlen(ev), "key-1",
                           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
              TODO_OK);
    CHECK_INT(dapr_status(d), 204);
    /* §1.1: an unknown component is 404 ERR_PUBSUB_NOT_FOUND */
    CHECK_INT(dapr_publish(d, "nosuch", "client-check", ev, strlen(ev), NULL, NULL),
              TODO_ENOT_FOUND);
    CHECK_STR(dapr_error_code(d), "ERR_PUBSUB_NOT_FOUND");
    /* §1.1: a CloudEvent body that is not JSON is 500 */
    CHECK_INT(dapr_publish(d, "pubsub", "client-check", "{nope", 5, NULL, NULL), TODO_EUNAVAILABLE);
    CHECK_INT(dapr_status(d), 500);

    /* bulk: every entry accepted; then the bus groups runs of one topic */
    char *evs[3];
    dapr_bulk_entry_t e[3];
    bool ok[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        char bid[TODO_UUID_LEN];
        todo_uuid_v4(bid);
        evs[i] = event_text(bid);
        e[i] = (dapr_bulk_entry_t){evs[i], strlen(evs[i]), i == 1 ? NULL : "key-b"};
    }
    CHECK_INT(dapr_publish_bulk(d, "pubsub", "client-check", e, 3, ok), TODO_OK);
    CHECK(ok[0] && ok[1] && ok[2]);
    CHECK_INT(dapr_publish_bulk(d, "nosuch", "client-check", e, 3, ok), TODO_ENOT_FOUND);
    CHECK(!ok[0] && !ok[1] && !ok[2]);

    bus_config_t bc = {.pubsub = "pubsub", .dapr = {.port = port, .api_token = token}};
    bus_t *bus = bus_new(&bc);
    bus_message_t m[4] = {{"client-check", "k", evs[0], strlen(evs[0])},
                          {"client-check", "k", evs[1], strlen(evs[1])},
                          {"client-other", NULL, evs[2], strlen(evs[2])},
                          {"client-check", "k", ev, strlen(ev)}};
    bool mok[4] = {false, false, false, false};
    CHECK_INT(bus_publish(bus, m, 4, mok, NULL), TODO_OK);
    CHECK(mok[0] && mok[1] && mok[2] && mok[3]);
    bus_free(bus);
    for (int i = 0; i < 3; i++)
        free(evs[i]);
    free(ev);
}

static void test_state(dapr_t *d)
{
    char etag[DAPR_ETAG_MAX], etag2[DAPR_ETAG_MAX];
    char *v = NULL;

    (void)!dapr_state_delete(d, "statestore", "check-a", NULL);
    CHECK_INT(dapr_state_get(d, "statestore", "check-a", &v, etag), TODO_ENOT_FOUND);
    CHECK(v == NULL);
    CHECK_INT(dapr_state_save(d, "statestore", "check-a", "{\"n\":1}", NULL, true, 0), TODO_OK);
    CHECK_INT(dapr_state_get(d, "statestore", "check-a", &v, etag), TODO_OK);
    CHECK_STR(v, "{\"n\":1}");
    CHECK(etag[0] != '\0');
    free(v);
    /* §5.3: first-write of an existing key without an ETag fails (500 for state.postgresql) */
    CHECK(dapr_state_save(d, "statestore", "check-a", "{\"n\":2}", NULL, true, 0) != TODO_OK);
    /* a stale ETag: 409 */
    CHECK_INT(dapr_state_save(d, "statestore", "check-a", "{\"n\":2}",
                              "00000000-0000-4000-8000-000000000000", true, 0),
              TODO_ECONFLICT);
    CHECK_INT(dapr_state_save(d, "statestore", "check-a", "{\"n\":2}", etag, true, 0), TODO_OK);
    CHECK_INT(dapr_state_get(d, "statestore", "check-a", &v, etag2), TODO_OK);
    CHECK_STR(v, "{\"n\":2}");
    CHECK(strcmp(etag, etag2) != 0);
    free(v);
    CHECK_INT(dapr_state_delete(d, "statestore", "check-a", etag), TODO_ECONFLICT);
    CHECK_INT(dapr_state_delete(d, "statestore", "check-a", etag2), TODO_OK);
    CHECK_INT(dapr_state_get(d, "statestore", "check-a", &v, NULL), TODO_ENOT_FOUND);
    /* a value that is not JSON never reaches the sidecar */
    CHECK_INT(dapr_state_save(d, "statestore", "check-a", "not json", NULL, false, 0),
              TODO_EBAD_REQUEST);
    /* TTL */
    CHECK_INT(dapr_state_save(d, "statestore", "check-ttl", "\"x\"", NULL, false, 3600), TODO_OK);
    CHECK_INT(dapr_state_get(d, "statestore", "check-ttl", &v, NULL), TODO_OK);
    CHECK_STR(v, "\"x\"");
    free(v);
    /* a transaction */
    json_t *ops = json_pack("[{s:s, s:{s:s, s:{s:i}}}, {s:s, s:{s:s}}]", "operation", "upsert",
                            "request", "key", "check-b", "value", "b", 2, "operation", "delete",
                            "request", "key", "check-ttl");
    CHECK_INT(dapr_state_transaction(d, "statestore", ops), TODO_OK);
    json_decref(ops);
    CHECK_INT(dapr_state_get(d, "statestore", "check-b", &v, NULL), TODO_OK);
    CHECK_STR(v, "{\"b\":2}");
    free(v);
    CHECK_INT(dapr_state_get(d, "statestore", "check-ttl", &v, NULL), TODO_ENOT_FOUND);
    /* §5.2: an unknown store is 400 */
    CHECK_INT(dapr_state_get(d, "nosuch", "k", &v, NULL), TODO_EBAD_REQUEST);
    CHECK_STR(dapr_error_code(d), "ERR_STATE_STORE_NOT_FOUND");
}

static void test_jobs(dapr_t *d)
{
    char *json = NULL;
    json_t *job = json_pack("{s:s, s:{s:s}}", "dueTime", "1h", "data", "k", "v");
    (void)!dapr_job_delete(d, "client-check-job");
    CHECK_INT(dapr_job_schedule(d, "client-check-job", job), TODO_OK);
    /* §6.1: the name exists and overwrite is not true → 409 */
    CHECK_INT(dapr_job_schedule(d, "client-check-job", job), TODO_ECONFLICT);
    json_object_set_new(job, "overwrite", json_true());
    CHECK_INT(dapr_job_schedule(d, "client-check-job", job), TODO_OK);
    CHECK_INT(dapr_job_get(d, "client-check-job", &json), TODO_OK);
    CHECK(json && strstr(json, "client-check-job") != NULL);
    free(json);
    CHECK_INT(dapr_job_delete(d, "client-check-job"), TODO_OK);
    /* §6.1: a missing job is a 500 DAPR_SCHEDULER_GET_JOB; a second delete is 204 */
    CHECK_INT(dapr_job_get(d, "client-check-job", &json), TODO_EUNAVAILABLE);
    CHECK_STR(dapr_error_code(d), "DAPR_SCHEDULER_GET_JOB");
    CHECK(json == NULL);
    CHECK_INT(dapr_job_delete(d, "client-check-job"), TODO_OK);
    /* §6.1: neither schedule nor dueTime */
    json_t *empty = json_object();
    CHECK_INT(dapr_job_schedule(d, "client-check-job", empty), TODO_EBAD_REQUEST);
    json_decref(empty);
    json_decref(job);
}

static void test_tokens_and_unreachable(void)
{
    dapr_t *wrong = client("wrong-token");
    CHECK_INT(dapr_state_get(wrong, "statestore", "k", &(char *){NULL}, NULL), TODO_EFORBIDDEN);
    CHECK_INT(dapr_status(wrong), 401);
    /* health is not behind the token (§8.5) */
    CHECK_INT(dapr_outbound_healthy(wrong), TODO_OK);
    dapr_free(wrong);

    /* nothing listens: bounded retries, then TODO_EUNAVAILABLE */
    dapr_config_t c = {.port = 1, .timeout_ms = 1000, .retries = 2};
    dapr_t *gone = dapr_new(&c);
    int64_t t = time_mono_usec();
    CHECK_INT(dapr_publish(gone, "pubsub", "t", "{}", 2, NULL, NULL), TODO_EUNAVAILABLE);
    CHECK_INT(dapr_status(gone), 0);
    int64_t ms = (time_mono_usec() - t) / 1000;
    CHECK(ms >= 150 && ms < 3000); /* 50 + 100 ms of backoff between the three attempts */
    atomic_bool stop = false;
    t = time_mono_usec();
    CHECK_INT(dapr_wait_outbound(gone, 300, &stop), TODO_EUNAVAILABLE);
    CHECK((time_mono_usec() - t) / 1000 < 3000);
    atomic_store(&stop, true);
    CHECK_INT(dapr_wait_outbound(gone, -1, &stop), TODO_EUNAVAILABLE);
    dapr_free(gone);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s SIDECAR_HTTP_PORT API_TOKEN\n", argv[0]);
        return 2;
    }
    log_init("dapr_check", LOG_LEVEL_INFO);
    port = atoi(argv[1]);
    token = argv[2];
    dapr_t *d = client(token);
    test_publish(d);
    test_state(d);
    test_jobs(d);
    test_tokens_and_unreachable();
    dapr_free(d);
    return check_exit();
}
