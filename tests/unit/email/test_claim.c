/* Tests of services/email/claim.c: the record's JSON both ways, the judgement of a found record,
 * and the claim protocol over the Dapr client against an in-process fake of the state API with
 * state.postgresql's rules (first-write of an existing key → 500, wrong ETag → 409, a new ETag
 * per write) and injected faults: a store that is down, a save applied whose answer is lost, a
 * write by someone else between the read and the take-over. */
#include "email/claim.h"

#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "todo/alloc.h"
#include "todo/http_server.h"
#include "todo/log.h"
#include "todo/timeutil.h"

#define SEC      INT64_C(1000000)
#define STORE    "statestore"
#define MAX_KEYS 32

/* ---- the fake state API ---- */

static struct {
    pthread_mutex_t lock;
    struct {
        char *key, *value;
        char etag[TODO_UUID_LEN];
    } rows[MAX_KEYS];
    int n;
    int saves, gets;
    bool down;                /* every call 500 */
    int lose_next_save_reply; /* apply the save, answer 500 */
    bool bump_after_get;      /* after the next GET, someone else writes the row */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int find(const char *key)
{
    for (int i = 0; i < fake.n; i++)
        if (strcmp(fake.rows[i].key, key) == 0)
            return i;
    return -1;
}

static void put(const char *key, const char *value)
{
    int i = find(key);
    if (i < 0) {
        i = fake.n++;
        fake.rows[i].key = xstrdup(key);
    } else {
        free(fake.rows[i].value);
    }
    fake.rows[i].value = xstrdup(value);
    todo_uuid_v4(fake.rows[i].etag);
}

static void fake_reset(void)
{
    pthread_mutex_lock(&fake.lock);
    for (int i = 0; i < fake.n; i++) {
        free(fake.rows[i].key);
        free(fake.rows[i].value);
    }
    fake.n = fake.saves = fake.gets = 0;
    fake.down = fake.bump_after_get = false;
    fake.lose_next_save_reply = 0;
    pthread_mutex_unlock(&fake.lock);
}

static int error_reply(http_req_t *req, int status, const char *code)
{
    char *body = xasprintf("{\"errorCode\":\"%s\",\"message\":\"fake\"}", code);
    int rc = http_respond(req, status, "application/json", body, strlen(body));
    free(body);
    return rc;
}

static int on_save(http_req_t *req)
{
    json_t *arr = NULL, *item;
    size_t i;
    int status = 204;
    if (json_parse(req->body, req->body_len, false, &arr) != 0 || !json_is_array(arr))
        return error_reply(req, 400, "ERR_MALFORMED_REQUEST");
    pthread_mutex_lock(&fake.lock);
    fake.saves++;
    if (fake.down)
        status = 500;
    json_array_foreach(arr, i, item)
    {
        if (status != 204)
            break;
        const char *key = json_string_value(json_object_get(item, "key"));
        const char *etag = json_string_value(json_object_get(item, "etag"));
        const char *conc =
            json_string_value(json_object_get(json_object_get(item, "options"), "concurrency"));
        char *value = json_dump(json_object_get(item, "value"));
        int row = find(key);
        if (etag && (row < 0 || strcmp(fake.rows[row].etag, etag) != 0))
            status = 409;
        else if (!etag && conc && strcmp(conc, "first-write") == 0 && row >= 0)
            status = 500; /* DAPR-CONTRACT §5.3 */
        else
            put(key, value);
        free(value);
    }
    if (status == 204 && fake.lose_next_save_reply > 0) {
        fake.lose_next_save_reply--;
        status = 500;
    }
    pthread_mutex_unlock(&fake.lock);
    json_decref(arr);
    if (status == 204)
        return http_respond(req, 204, NULL, NULL, 0);
    return error_reply(req, status, "ERR_STATE_SAVE");
}

static int on_get(http_req_t *req)
{
    const char *key = req->params[1];
    char *value = NULL, etag[TODO_UUID_LEN] = "";
    bool down;
    pthread_mutex_lock(&fake.lock);
    fake.gets++;
    down = fake.down;
    int row = find(key);
    if (row >= 0 && !down) {
        value = xstrdup(fake.rows[row].value);
        snprintf(etag, sizeof(etag), "%s", fake.rows[row].etag);
        if (fake.bump_after_get) {
            fake.bump_after_get = false;
            todo_uuid_v4(fake.rows[row].etag); /* someone else's write */
        }
    }
    pthread_mutex_unlock(&fake.lock);
    if (down)
        return error_reply(req, 500, "ERR_STATE_GET");
    if (!value)
        return http_respond(req, 204, NULL, NULL, 0);
    http_add_header(req, "ETag", etag);
    int rc = http_respond(req, 200, "application/json", value, strlen(value));
    free(value);
    return rc;
}

/* The stored record of key (parsed), false when absent. */
static bool stored(const char *key, claim_record_t *r)
{
    bool found = false;
    pthread_mutex_lock(&fake.lock);
    int row = find(key);
    if (row >= 0)
        found = claim_record_parse(fake.rows[row].value, strlen(fake.rows[row].value), r) == 0;
    pthread_mutex_unlock(&fake.lock);
    return found;
}

static void plant(const char *key, const claim_record_t *r)
{
    char *json = claim_record_json(r);
    pthread_mutex_lock(&fake.lock);
    put(key, json);
    pthread_mutex_unlock(&fake.lock);
    free(json);
}

/* ---- records and judgements ---- */

static claim_record_t sample(claim_status_t status)
{
    claim_record_t r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    snprintf(r.owner, sizeof(r.owner), "11111111-1111-4111-8111-111111111111");
    snprintf(r.instance, sizeof(r.instance), "email-b:8002");
    snprintf(r.boot, sizeof(r.boot), "22222222-2222-4222-8222-222222222222");
    r.claimed_at = INT64_C(1795419900) * SEC;
    r.lease_until = r.claimed_at + 60 * SEC;
    r.attempts = 2;
    r.task_id = 42;
    return r;
}

static void test_record(void)
{
    claim_record_t r = sample(CLAIM_SENT), back;
    r.finished_at = r.claimed_at + 2 * SEC;
    snprintf(r.detail, sizeof(r.detail), "250 2.0.0 Message accepted \"for\" delivery");
    char *json = claim_record_json(&r);
    CHECK_STR(json, "{\"version\":1,\"status\":\"sent\","
                    "\"owner\":\"11111111-1111-4111-8111-111111111111\","
                    "\"instance\":\"email-b:8002\","
                    "\"boot\":\"22222222-2222-4222-8222-222222222222\","
                    "\"claimed_at\":\"2026-11-23T07:45:00Z\","
                    "\"lease_until\":\"2026-11-23T07:46:00Z\",\"attempts\":2,\"task_id\":42,"
                    "\"finished_at\":\"2026-11-23T07:45:02Z\","
                    "\"detail\":\"250 2.0.0 Message accepted \\\"for\\\" delivery\"}");
    CHECK_INT(claim_record_parse(json, strlen(json), &back), 0);
    CHECK_INT(back.status, CLAIM_SENT);
    CHECK_STR(back.owner, r.owner);
    CHECK_STR(back.instance, r.instance);
    CHECK_STR(back.boot, r.boot);
    CHECK_INT(back.claimed_at, r.claimed_at);
    CHECK_INT(back.lease_until, r.lease_until);
    CHECK_INT(back.finished_at, r.finished_at);
    CHECK_INT(back.attempts, 2);
    CHECK_INT(back.task_id, 42);
    CHECK_STR(back.detail, r.detail);
    free(json);

    /* Without the optional members; keys in another order (as a store may give them back). */
    const char *sorted = "{\"attempts\":1,\"boot\":\"b\",\"claimed_at\":\"2026-11-23T07:45:00Z\","
                         "\"instance\":\"i\",\"lease_until\":\"2026-11-23T07:46:00.5Z\","
                         "\"owner\":\"o\",\"status\":\"sending\",\"task_id\":7,\"version\":1}";
    CHECK_INT(claim_record_parse(sorted, strlen(sorted), &back), 0);
    CHECK_INT(back.status, CLAIM_SENDING);
    CHECK_INT(back.finished_at, 0);
    CHECK_STR(back.detail, "");
    CHECK_INT(back.lease_until, INT64_C(1795419960) * SEC + 500000);

    const char *bad[] = {
        "",
        "[]",
        "\"sent\"",
        "{}",
        "{\"status\":\"done\",\"owner\":\"o\",\"instance\":\"i\",\"boot\":\"b\","
        "\"claimed_at\":\"2026-11-23T07:45:00Z\",\"lease_until\":\"2026-11-23T07:46:00Z\","
        "\"attempts\":1,\"task_id\":7}",
        "{\"status\":\"sent\",\"owner\":\"o\",\"instance\":\"i\",\"boot\":\"b\","
        "\"claimed_at\":\"yesterday\",\"lease_until\":\"2026-11-23T07:46:00Z\","
        "\"attempts\":1,\"task_id\":7}",
        "{\"status\":\"sent\",\"owner\":\"o\",\"instance\":\"i\",\"boot\":\"b\","
        "\"claimed_at\":\"2026-11-23T07:45:00Z\",\"lease_until\":\"2026-11-23T07:46:00Z\","
        "\"attempts\":\"1\",\"task_id\":7}",
        "{\"status\":\"sent\",\"instance\":\"i\",\"boot\":\"b\","
        "\"claimed_at\":\"2026-11-23T07:45:00Z\",\"lease_until\":\"2026-11-23T07:46:00Z\","
        "\"attempts\":1,\"task_id\":7}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_INT(claim_record_parse(bad[i], strlen(bad[i]), &back), TODO_EVALIDATION_ERROR);
}

static void test_judge(void)
{
    claim_self_t self = {"email-a:8002", "33333333-3333-4333-8333-333333333333"};
    claim_record_t r = sample(CLAIM_SENT);
    int64_t during = r.claimed_at + 10 * SEC, after = r.lease_until;

    CHECK_INT(claim_judge(&r, &self, "x", during), CLAIM_JUDGE_SENT);
    CHECK_INT(claim_judge(&r, &self, r.owner, after), CLAIM_JUDGE_SENT);
    r.status = CLAIM_FAILED;
    CHECK_INT(claim_judge(&r, &self, "x", after), CLAIM_JUDGE_FAILED);
    r.status = CLAIM_RETRY;
    CHECK_INT(claim_judge(&r, &self, "x", during), CLAIM_JUDGE_TAKE);
    r.status = CLAIM_SENDING;
    CHECK_INT(claim_judge(&r, &self, "x", during), CLAIM_JUDGE_BUSY);
    CHECK_INT(claim_judge(&r, &self, "x", r.lease_until - 1), CLAIM_JUDGE_BUSY);
    CHECK_INT(claim_judge(&r, &self, "x", after), CLAIM_JUDGE_TAKE);
    CHECK_INT(claim_judge(&r, &self, r.owner, during), CLAIM_JUDGE_MINE);
    CHECK_INT(claim_judge(&r, &self, NULL, during), CLAIM_JUDGE_BUSY);
    /* This instance's own name with another run: that run is over. */
    snprintf(r.instance, sizeof(r.instance), "%s", self.instance);
    CHECK_INT(claim_judge(&r, &self, "x", during), CLAIM_JUDGE_TAKE);
    /* This very run (another thread of it): busy. */
    snprintf(r.boot, sizeof(r.boot), "%s", self.boot);
    CHECK_INT(claim_judge(&r, &self, "x", during), CLAIM_JUDGE_BUSY);
}

/* ---- the protocol ---- */

static void test_protocol(int port)
{
    dapr_config_t dc = {.port = port, .timeout_ms = 3000, .retries = -1};
    dapr_t *d = dapr_new(&dc);
    claim_ctx_t c = {.dapr = d,
                     .store = STORE,
                     .lease_usec = 60 * SEC,
                     .ttl_seconds = 3600,
                     .self = {"email-a:8002", "33333333-3333-4333-8333-333333333333"}};
    claim_t cl, other;
    claim_record_t r;
    const char *key = CLAIM_KEY_PREFIX "ev1";

    /* A new event: claimed, the ETag read back, then marked sent with it. */
    fake_reset();
    int64_t before = time_now_usec();
    CHECK_INT(claim_acquire(&c, "ev1", 42, &cl), CLAIM_ACQUIRED);
    CHECK_STR(cl.key, key);
    CHECK(cl.etag[0] != '\0');
    CHECK(stored(key, &r));
    CHECK_INT(r.status, CLAIM_SENDING);
    CHECK_STR(r.owner, cl.rec.owner);
    CHECK_STR(r.instance, "email-a:8002");
    CHECK_INT(r.attempts, 1);
    CHECK_INT(r.task_id, 42);
    CHECK(r.lease_until >= before + 60 * SEC - SEC && r.lease_until <= time_now_usec() + 60 * SEC);
    CHECK_INT(fake.saves, 1);
    CHECK_INT(fake.gets, 1);

    /* Meanwhile another attempt finds it being sent. */
    CHECK_INT(claim_acquire(&c, "ev1", 42, &other), CLAIM_BUSY);
    CHECK_STR(other.rec.owner, cl.rec.owner);

    CHECK_INT(claim_finish(&c, &cl, CLAIM_SENT, "250 OK"), 0);
    CHECK(stored(key, &r));
    CHECK_INT(r.status, CLAIM_SENT);
    CHECK_STR(r.detail, "250 OK");
    CHECK(r.finished_at >= before);
    /* A second finish with the spent ETag is refused. */
    CHECK_INT(claim_finish(&c, &cl, CLAIM_SENT, "250 OK"), TODO_ECONFLICT);

    /* Delivered again after it was sent. */
    CHECK_INT(claim_acquire(&c, "ev1", 42, &other), CLAIM_WAS_SENT);
    CHECK_INT(other.rec.status, CLAIM_SENT);

    /* A passing failure releases the claim; the next attempt takes it over at once. */
    fake_reset();
    CHECK_INT(claim_acquire(&c, "ev2", 7, &cl), CLAIM_ACQUIRED);
    CHECK_INT(claim_finish(&c, &cl, CLAIM_RETRY, "RCPT TO: 451 try later"), 0);
    CHECK(stored(CLAIM_KEY_PREFIX "ev2", &r));
    CHECK_INT(r.status, CLAIM_RETRY);
    CHECK_INT(claim_acquire(&c, "ev2", 7, &cl), CLAIM_ACQUIRED);
    CHECK(stored(CLAIM_KEY_PREFIX "ev2", &r));
    CHECK_INT(r.status, CLAIM_SENDING);
    CHECK_INT(r.attempts, 2);
    CHECK_STR(r.owner, cl.rec.owner);
    CHECK_INT(claim_finish(&c, &cl, CLAIM_FAILED, "RCPT TO: 550 no such user"), 0);
    CHECK_INT(claim_acquire(&c, "ev2", 7, &other), CLAIM_WAS_FAILED);
    CHECK_STR(other.rec.detail, "RCPT TO: 550 no such user");

    /* Another replica's claim: busy within its lease, taken over after it. */
    fake_reset();
    claim_record_t planted = sample(CLAIM_SENDING);
    planted.claimed_at = time_now_usec() - 10 * SEC;
    planted.lease_until = planted.claimed_at + 60 * SEC;
    plant(CLAIM_KEY_PREFIX "ev3", &planted);
    CHECK_INT(claim_acquire(&c, "ev3", 42, &cl), CLAIM_BUSY);
    CHECK_STR(cl.rec.instance, "email-b:8002");
    planted.lease_until = time_now_usec() - 1;
    plant(CLAIM_KEY_PREFIX "ev3", &planted);
    CHECK_INT(claim_acquire(&c, "ev3", 42, &cl), CLAIM_ACQUIRED);
    CHECK(stored(CLAIM_KEY_PREFIX "ev3", &r));
    CHECK_STR(r.owner, cl.rec.owner);
    CHECK_STR(r.instance, "email-a:8002");
    CHECK_INT(r.attempts, 3);
    CHECK_INT(claim_finish(&c, &cl, CLAIM_SENT, "250 OK"), 0);

    /* A claim of an earlier run of this instance (it crashed): taken over within its lease. */
    fake_reset();
    planted = sample(CLAIM_SENDING);
    snprintf(planted.instance, sizeof(planted.instance), "email-a:8002");
    planted.claimed_at = time_now_usec();
    planted.lease_until = planted.claimed_at + 60 * SEC;
    plant(CLAIM_KEY_PREFIX "ev4", &planted);
    CHECK_INT(claim_acquire(&c, "ev4", 42, &cl), CLAIM_ACQUIRED);
    /* ... but one of this very run is not. */
    CHECK_INT(claim_acquire(&c, "ev4", 42, &other), CLAIM_BUSY);

    /* Someone else writes between our read and our take-over: 409, busy. */
    fake_reset();
    planted = sample(CLAIM_RETRY);
    plant(CLAIM_KEY_PREFIX "ev5", &planted);
    fake.bump_after_get = true;
    CHECK_INT(claim_acquire(&c, "ev5", 42, &cl), CLAIM_BUSY);
    CHECK(stored(CLAIM_KEY_PREFIX "ev5", &r));
    CHECK_INT(r.status, CLAIM_RETRY); /* untouched by us */

    /* Our first-write was applied but its answer lost: the record read back is ours. */
    fake_reset();
    fake.lose_next_save_reply = 1;
    CHECK_INT(claim_acquire(&c, "ev6", 42, &cl), CLAIM_ACQUIRED);
    CHECK(cl.etag[0] != '\0');
    CHECK_INT(claim_finish(&c, &cl, CLAIM_SENT, "250 OK"), 0);
    CHECK(stored(CLAIM_KEY_PREFIX "ev6", &r));
    CHECK_INT(r.status, CLAIM_SENT);

    /* The store is down: nothing can be claimed, nothing is assumed. */
    fake_reset();
    fake.down = true;
    CHECK_INT(claim_acquire(&c, "ev7", 42, &cl), CLAIM_UNAVAILABLE);
    fake.down = false;
    CHECK(!stored(CLAIM_KEY_PREFIX "ev7", &r));
    /* ... or fails between the claim and its finish: the finish says so. */
    CHECK_INT(claim_acquire(&c, "ev7", 42, &cl), CLAIM_ACQUIRED);
    fake.down = true;
    CHECK(claim_finish(&c, &cl, CLAIM_SENT, "250 OK") != 0);
    fake.down = false;

    /* Something that is no record. */
    fake_reset();
    pthread_mutex_lock(&fake.lock);
    put(CLAIM_KEY_PREFIX "ev8", "{\"hello\":\"world\"}");
    pthread_mutex_unlock(&fake.lock);
    CHECK_INT(claim_acquire(&c, "ev8", 42, &cl), CLAIM_UNREADABLE);

    /* A malformed event is recorded as failed only when it has no record. */
    fake_reset();
    CHECK_INT(claim_record_refusal(&c, "ev9", "email is not a usable address"), 0);
    CHECK(stored(CLAIM_KEY_PREFIX "ev9", &r));
    CHECK_INT(r.status, CLAIM_FAILED);
    CHECK_STR(r.detail, "malformed event: email is not a usable address");
    CHECK_INT(claim_acquire(&c, "ev9", 42, &cl), CLAIM_WAS_FAILED);
    CHECK_INT(claim_acquire(&c, "ev10", 42, &cl), CLAIM_ACQUIRED);
    CHECK_INT(claim_finish(&c, &cl, CLAIM_SENT, "250 OK"), 0);
    CHECK(claim_record_refusal(&c, "ev10", "x") != 0);
    CHECK(stored(CLAIM_KEY_PREFIX "ev10", &r));
    CHECK_INT(r.status, CLAIM_SENT);

    fake_reset();
    dapr_free(d);
}

int main(void)
{
    log_init("test", LOG_LEVEL_ERROR);
    test_record();
    test_judge();

    http_server_config_t hc = {.service = "fake-sidecar",
                               .host = "127.0.0.1",
                               .port = 0,
                               .threads = 1,
                               .max_body = 1 << 20,
                               .drain_ms = 1000,
                               .no_builtin_routes = true};
    http_server_t *srv = http_server_new(&hc);
    CHECK(srv != NULL);
    if (srv && http_server_route(srv, "POST", "/v1.0/state/{store}", on_save, NULL) == 0 &&
        http_server_route(srv, "GET", "/v1.0/state/{store}/{key}", on_get, NULL) == 0 &&
        http_server_start(srv) == 0) {
        test_protocol(http_server_port(srv));
    } else {
        CHECK(!"the fake state API did not start");
    }
    http_server_free(srv);
    return check_exit();
}
