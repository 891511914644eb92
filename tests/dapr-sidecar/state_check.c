/* state_check: the C half of tests/integration/test_sidecar_state.py. Drives state_store.c
 * against the real PostgreSQL whose URL is argv[1]: the v2 tables, first-write and ETag rules,
 * deletes, transaction atomicity, TTL expiry and the clean-up (DAPR-CONTRACT §5.3–§5.5). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "state_store.h"
#include "todo/db.h"
#include "todo/log.h"
#include "todo/timeutil.h"

static const char *url;
static db_t *raw; /* a connection of the check itself, to look at the tables */

static state_store_t *open_store(const char *prefix, const char *cleanup)
{
    const char *names[] = {"connectionString", "tablePrefix", "cleanupInterval"};
    const char *values[] = {url, prefix, cleanup};
    state_store_config_t cfg;
    state_store_t *s = NULL;
    char err[STATE_ERR_MAX] = "";
    int rc = state_store_config_parse(names, values, 3, &cfg, err);
    if (rc == 0)
        rc = state_store_new(&cfg, &s, err);
    if (rc != 0)
        fprintf(stderr, "cannot open the store: %s\n", err);
    return s;
}

/* The first field of the first row of sql, or "" (static storage). */
static const char *scalar(const char *sql)
{
    static char out[1024];
    PGresult *res = NULL;
    out[0] = '\0';
    if (db_query(raw, sql, 0, NULL, &res) == 0 && PQntuples(res) > 0)
        snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static int set_value(state_store_t *s, const char *key, const char *value, const char *etag,
                     const char *concurrency, const char *ttl, char err[STATE_ERR_MAX])
{
    state_set_t r = {key, value, strlen(value), etag, concurrency, NULL, ttl};
    return state_store_set(s, &r, err);
}

static bool get_item(state_store_t *s, const char *key, state_item_t *it)
{
    char err[STATE_ERR_MAX];
    int rc = state_store_get(s, key, it, err);
    CHECK_INT(rc, 0);
    return rc == 0 && it->found;
}

static void test_tables(void)
{
    state_store_t *s = open_store("", "0");
    CHECK(s != NULL);
    /* The v2 DDL column for column (state/postgresql/v2 migration 1). */
    CHECK_STR(scalar("SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || "
                     "' ' || coalesce(column_default, '-'), ', ' ORDER BY ordinal_position) "
                     "FROM information_schema.columns WHERE table_name = 'state'"),
              "key text NO -, value bytea NO -, etag uuid NO gen_random_uuid(), "
              "created_at timestamp with time zone NO now(), "
              "updated_at timestamp with time zone YES -, "
              "expires_at timestamp with time zone YES -");
    CHECK_STR(scalar("SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a ON "
                     "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = "
                     "'state'::regclass AND i.indisprimary"),
              "key");
    CHECK_STR(scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'state' AND indexdef LIKE "
                     "'%(expires_at)%'"),
              "1");
    CHECK_STR(scalar("SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY "
                     "ordinal_position) FROM information_schema.columns WHERE table_name = "
                     "'dapr_metadata'"),
              "key text, value text");
    CHECK_STR(scalar("SELECT value FROM dapr_metadata WHERE key = 'migrations-state-v2-'"), "1");
    CHECK_STR(scalar("SELECT value FROM dapr_metadata WHERE key = 'lock'"), "lock");
    state_store_free(s);
    /* Opening again migrates nothing and keeps the data. */
    s = open_store("", "0");
    CHECK(s != NULL);
    state_store_free(s);
}

static void *open_concurrently(void *arg)
{
    return open_store((const char *)arg, "0");
}

static void test_concurrent_creation(void)
{
    pthread_t t[4];
    void *stores[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, open_concurrently, "race_");
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &stores[i]);
        CHECK(stores[i] != NULL);
        state_store_free(stores[i]);
    }
    CHECK_STR(scalar("SELECT value FROM dapr_metadata WHERE key = 'migrations-state-v2-race_'"),
              "1");
    CHECK_STR(scalar("SELECT to_regclass('race_state') IS NOT NULL"), "t");
}

static void test_set_get(state_store_t *s)
{
    char err[STATE_ERR_MAX];
    state_item_t it = {0}, it2 = {0};

    CHECK(!get_item(s, "sg||missing", &it));
    state_item_dispose(&it);
    CHECK_INT(set_value(s, "sg||a", "{\"x\":1}", NULL, NULL, NULL, err), 0);
    CHECK(get_item(s, "sg||a", &it));
    CHECK_STR(it.value, "{\"x\":1}");
    CHECK_INT(it.value_len, 7);
    CHECK_INT(strlen(it.etag), 36);
    CHECK_STR(it.expires, "");
    /* Last-write (default) replaces and gives a new ETag; updated_at is set. */
    CHECK_INT(set_value(s, "sg||a", "\"y\"", NULL, "last-write", NULL, err), 0);
    CHECK(get_item(s, "sg||a", &it2));
    CHECK_STR(it2.value, "\"y\"");
    CHECK(strcmp(it.etag, it2.etag) != 0);
    CHECK_STR(scalar("SELECT updated_at IS NOT NULL AND created_at <= now() FROM state "
                     "WHERE key = 'sg||a'"),
              "t");
    state_item_dispose(&it);
    state_item_dispose(&it2);
    /* Binary-safe bytes. */
    {
        state_set_t r = {"sg||bin", "a\0b", 3, NULL, NULL, NULL, NULL};
        CHECK_INT(state_store_set(s, &r, err), 0);
        CHECK(get_item(s, "sg||bin", &it));
        CHECK_INT(it.value_len, 3);
        CHECK(memcmp(it.value, "a\0b", 3) == 0);
        state_item_dispose(&it);
    }
    /* Options are checked. */
    CHECK_INT(set_value(s, "sg||o", "1", NULL, "sometimes", NULL, err), TODO_EBAD_REQUEST);
    CHECK_STR(err, "unrecognized concurrency model 'sometimes'");
    {
        state_set_t r = {"sg||o", "1", 1, NULL, NULL, "maybe", NULL};
        CHECK(state_store_set(s, &r, err) != 0);
        CHECK_STR(err, "unrecognized consistency model 'maybe'");
    }
}

static void test_first_write(state_store_t *s)
{
    char err[STATE_ERR_MAX];
    CHECK_INT(set_value(s, "fw||k", "1", NULL, "first-write", NULL, err), 0);
    /* DAPR-CONTRACT §5.3: the second first-write without ETag fails with "no item was updated"
     * (a 500, not a 409). */
    CHECK_INT(set_value(s, "fw||k", "2", NULL, "first-write", NULL, err), TODO_EINTERNAL);
    CHECK_STR(err, "no item was updated");
    CHECK_STR(scalar("SELECT convert_from(value, 'UTF8') FROM state WHERE key = 'fw||k'"), "1");
}

static void test_etags(state_store_t *s)
{
    char err[STATE_ERR_MAX], old[STATE_ETAG_LEN], upper[STATE_ETAG_LEN];
    state_item_t it = {0};

    CHECK_INT(set_value(s, "et||k", "1", NULL, NULL, NULL, err), 0);
    CHECK(get_item(s, "et||k", &it));
    snprintf(old, sizeof(old), "%s", it.etag);
    state_item_dispose(&it);
    CHECK_INT(set_value(s, "et||k", "2", old, NULL, NULL, err), 0);
    CHECK_INT(set_value(s, "et||k", "3", old, NULL, NULL, err), TODO_ECONFLICT);
    CHECK_STR(err, "possible etag mismatch. error from state store");
    CHECK_INT(set_value(s, "et||k", "3", "not-a-uuid", NULL, NULL, err), TODO_ECONFLICT);
    CHECK_STR(err, "possible etag mismatch. error from state store: invalid UUID length: 10");
    /* An ETag on a missing key: nothing to update → mismatch. */
    CHECK_INT(set_value(s, "et||none", "3", old, NULL, NULL, err), TODO_ECONFLICT);
    CHECK(!get_item(s, "et||none", &it));
    state_item_dispose(&it);
    /* With an ETag, first-write updates like last-write when it matches. */
    CHECK(get_item(s, "et||k", &it));
    for (size_t i = 0; i < 37; i++)
        upper[i] = (char)(it.etag[i] >= 'a' && it.etag[i] <= 'f' ? it.etag[i] - 32 : it.etag[i]);
    state_item_dispose(&it);
    CHECK_INT(set_value(s, "et||k", "4", upper, "first-write", NULL, err), 0);
    CHECK(get_item(s, "et||k", &it));
    CHECK_STR(it.value, "4");
    /* Deletes: wrong ETag → mismatch; right one deletes; absent key without ETag is fine. */
    {
        state_del_t d = {"et||k", old};
        CHECK_INT(state_store_delete(s, &d, err), TODO_ECONFLICT);
        d.etag = "xyz";
        CHECK_INT(state_store_delete(s, &d, err), TODO_ECONFLICT);
        d.etag = it.etag;
        CHECK_INT(state_store_delete(s, &d, err), 0);
        CHECK_INT(state_store_delete(s, &d, err), TODO_ECONFLICT);
        d.etag = NULL;
        CHECK_INT(state_store_delete(s, &d, err), 0);
        d.etag = "";
        CHECK_INT(state_store_delete(s, &d, err), 0);
    }
    state_item_dispose(&it);
    CHECK(!get_item(s, "et||k", &it));
    state_item_dispose(&it);
}

static void test_transactions(state_store_t *s)
{
    char err[STATE_ERR_MAX];
    state_item_t it = {0};
    state_op_t ops[3];

    CHECK_INT(set_value(s, "tx||keep", "\"old\"", NULL, NULL, NULL, err), 0);
    /* An ETag mismatch in the middle rolls back the whole transaction. */
    memset(ops, 0, sizeof(ops));
    ops[0].set = (state_set_t){"tx||a", "1", 1, NULL, NULL, NULL, NULL};
    ops[1].is_delete = true;
    ops[1].del = (state_del_t){"tx||keep", NULL};
    ops[2].set =
        (state_set_t){"tx||keep", "2", 1, "00000000-0000-0000-0000-000000000000", NULL, NULL, NULL};
    CHECK_INT(state_store_transact(s, ops, 3, err), TODO_ECONFLICT);
    CHECK_STR(err, "possible etag mismatch. error from state store");
    CHECK(!get_item(s, "tx||a", &it));
    state_item_dispose(&it);
    CHECK(get_item(s, "tx||keep", &it));
    CHECK_STR(it.value, "\"old\"");
    state_item_dispose(&it);
    /* A first-write conflict fails it too. */
    ops[1].is_delete = false;
    ops[1].set = (state_set_t){"tx||keep", "3", 1, NULL, "first-write", NULL, NULL};
    CHECK_INT(state_store_transact(s, ops, 2, err), TODO_EINTERNAL);
    CHECK_STR(err, "no item was updated");
    CHECK(!get_item(s, "tx||a", &it));
    state_item_dispose(&it);
    /* All good: everything applied. */
    ops[1].is_delete = true;
    ops[1].del = (state_del_t){"tx||keep", NULL};
    CHECK_INT(state_store_transact(s, ops, 2, err), 0);
    CHECK(get_item(s, "tx||a", &it));
    state_item_dispose(&it);
    CHECK(!get_item(s, "tx||keep", &it));
    state_item_dispose(&it);
    CHECK_INT(state_store_transact(s, ops, 0, err), 0);
}

static void test_bulk(state_store_t *s)
{
    char err[STATE_ERR_MAX];
    state_item_t *items = NULL;
    size_t n = 0;
    const char *keys[] = {"bk||missing1", "bk||a", "bk||missing2", "bk||b"};

    CHECK_INT(set_value(s, "bk||a", "\"A\"", NULL, NULL, NULL, err), 0);
    CHECK_INT(set_value(s, "bk||b", "\"B\"", NULL, NULL, "3600", err), 0);
    CHECK_INT(state_store_bulk_get(s, keys, 4, &items, &n, err), 0);
    CHECK_INT(n, 4);
    if (n == 4) {
        /* Found rows first, then the missing keys in request order (v2 BulkGet). */
        CHECK(items[0].found && items[1].found);
        CHECK(strcmp(items[0].key, "bk||a") == 0 || strcmp(items[0].key, "bk||b") == 0);
        CHECK(!items[2].found);
        CHECK_STR(items[2].key, "bk||missing1");
        CHECK(!items[3].found);
        CHECK_STR(items[3].key, "bk||missing2");
        for (int i = 0; i < 2; i++) {
            if (strcmp(items[i].key, "bk||b") == 0) {
                CHECK_STR(items[i].value, "\"B\"");
                CHECK_INT(strlen(items[i].expires), 20);
            } else {
                CHECK_STR(items[i].expires, "");
            }
        }
    }
    state_items_free(items, n);
    CHECK_INT(state_store_bulk_get(s, keys, 0, &items, &n, err), 0);
    CHECK_INT(n, 0);
    state_items_free(items, n);
}

static void test_ttl(state_store_t *s)
{
    char err[STATE_ERR_MAX];
    state_item_t it = {0};
    int64_t deadline, now, usec = 0, deleted = 0;
    bool gone = false;

    CHECK_INT(set_value(s, "ttl||x", "1", NULL, NULL, "abc", err), TODO_EBAD_REQUEST);
    CHECK_STR(err, "error parsing TTL: incorrect value for metadata 'ttlInSeconds': "
                   "strconv.ParseInt: parsing \"abc\": invalid syntax");
    CHECK_INT(set_value(s, "ttl||x", "1", NULL, NULL, "-2", err), TODO_EBAD_REQUEST);
    CHECK_INT(set_value(s, "ttl||never", "1", NULL, NULL, "-1", err), 0);
    CHECK_STR(scalar("SELECT expires_at IS NULL FROM state WHERE key = 'ttl||never'"), "t");
    CHECK_INT(set_value(s, "ttl||zero", "1", NULL, NULL, "0", err), 0);
    CHECK_STR(scalar("SELECT expires_at IS NULL FROM state WHERE key = 'ttl||zero'"), "t");

    CHECK_INT(set_value(s, "ttl||x", "1", NULL, NULL, "1", err), 0);
    CHECK(get_item(s, "ttl||x", &it));
    CHECK_INT(time_parse_rfc3339(it.expires, &usec), 0);
    now = time_now_usec();
    CHECK(usec > now - 2000000 && usec <= now + 2000000);
    state_item_dispose(&it);
    /* Expired rows are never returned, even before the clean-up removes them. */
    deadline = time_mono_usec() + 10 * 1000000;
    while (!gone && time_mono_usec() < deadline) {
        gone = !get_item(s, "ttl||x", &it);
        state_item_dispose(&it);
        if (!gone) {
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(gone);
    CHECK_STR(scalar("SELECT count(*) FROM state WHERE key = 'ttl||x'"), "1");
    {
        const char *keys[] = {"ttl||x"};
        state_item_t *items = NULL;
        size_t n = 0;
        CHECK_INT(state_store_bulk_get(s, keys, 1, &items, &n, err), 0);
        CHECK(n == 1 && !items[0].found);
        state_items_free(items, n);
    }
    /* first-write may replace an expired row. */
    CHECK_INT(set_value(s, "ttl||x", "2", NULL, "first-write", "1", err), 0);
    CHECK_STR(scalar("SELECT convert_from(value, 'UTF8') FROM state WHERE key = 'ttl||x'"), "2");
    /* With the clean-up disabled, running it does nothing. */
    CHECK_INT(state_store_cleanup(s, &deleted), 0);
    CHECK_INT(deleted, -1);
    CHECK_STR(scalar("SELECT count(*) FROM state WHERE key = 'ttl||x'"), "1");
}

static void test_manual_cleanup(void)
{
    char err[STATE_ERR_MAX];
    int64_t deleted = 0;
    state_store_t *s = open_store("man_", "1h");

    CHECK(s != NULL);
    if (!s)
        return;
    /* The first run records its time and deletes the expired rows; an immediate second run is
     * skipped because the last one is too recent (v2's UpdateLastCleanupQuery). */
    CHECK_INT(set_value(s, "man||y", "1", NULL, NULL, "1", err), 0);
    CHECK_INT(set_value(s, "man||keep", "1", NULL, NULL, "3600", err), 0);
    CHECK_INT(db_query(raw,
                       "UPDATE man_state SET expires_at = now() - interval '1 second' "
                       "WHERE key = 'man||y'",
                       0, NULL, NULL),
              0);
    CHECK_INT(state_store_cleanup(s, &deleted), 0);
    CHECK_INT(deleted, 1);
    CHECK_STR(scalar("SELECT string_agg(key, ',') FROM man_state"), "man||keep");
    CHECK_STR(scalar("SELECT count(*) FROM dapr_metadata WHERE key = 'last-cleanup-state-v2-man_'"),
              "1");
    CHECK_INT(state_store_cleanup(s, &deleted), 0);
    CHECK_INT(deleted, -1);
    state_store_free(s);
}

static void test_background_cleanup(void)
{
    char err[STATE_ERR_MAX];
    state_store_t *s = open_store("gc_", "1s");
    int64_t deadline;
    bool gone = false;

    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_INT(set_value(s, "gc||x", "1", NULL, NULL, "1", err), 0);
    CHECK_INT(set_value(s, "gc||keep", "1", NULL, NULL, NULL, err), 0);
    deadline = time_mono_usec() + 20 * 1000000;
    while (!gone && time_mono_usec() < deadline) {
        gone = strcmp(scalar("SELECT count(*) FROM gc_state WHERE key = 'gc||x'"), "0") == 0;
        if (!gone) {
            struct timespec ts = {0, 100 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(gone);
    CHECK_STR(scalar("SELECT count(*) FROM gc_state WHERE key = 'gc||keep'"), "1");
    state_store_free(s); /* joins the clean-up thread */
}

int main(int argc, char **argv)
{
    state_store_t *s;

    if (argc < 2) {
        fprintf(stderr, "usage: %s POSTGRES_URL\n", argv[0]);
        return 2;
    }
    log_init("state_check", LOG_LEVEL_WARN);
    url = argv[1];
    raw = db_new(url);
    test_tables();
    test_concurrent_creation();
    s = open_store("", "0");
    CHECK(s != NULL);
    if (s) {
        test_set_get(s);
        test_first_write(s);
        test_etags(s);
        test_transactions(s);
        test_bulk(s);
        test_ttl(s);
        state_store_free(s);
    }
    test_manual_cleanup();
    test_background_cleanup();
    db_free(raw);
    return check_exit();
}
