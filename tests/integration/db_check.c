/* The C side of tests/integration/test_db.py: checks common/src/db.c against the PostgreSQL server
 * at the URL it is given, or (--restart-probe) answers one query per stdin line while the test
 * stops and starts that server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "todo/alloc.h"
#include "todo/db.h"
#include "todo/log.h"

#define CHECK_RANGE(v, lo, hi)                                                                 \
    do {                                                                                       \
        long long range_v_ = (long long)(v);                                                   \
        check_count++;                                                                         \
        if (range_v_ < (long long)(lo) || range_v_ >= (long long)(hi)) {                       \
            check_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s = %lld, not in [%lld, %lld)\n", __FILE__, __LINE__, #v, \
                    range_v_, (long long)(lo), (long long)(hi));                               \
        }                                                                                      \
    } while (0)

#define EXEC(db, sql) CHECK_INT(db_query((db), (sql), 0, NULL, NULL), TODO_OK)

/* Checks the first field of the first row of sql's result against want (NULL: no value). */
#define CHECK_SCALAR(db, sql, n, params, want)                \
    do {                                                      \
        char *scalar_v_ = scalar((db), (sql), (n), (params)); \
        CHECK_STR(scalar_v_, (want));                         \
        free(scalar_v_);                                      \
    } while (0)

static const char *url;

/* A name with accents, CJK and a character outside the BMP: 22 characters, more bytes. */
static const char unicode_name[] = "Zoë Ångström — 日本語 ✓ 🚀";
#define UNICODE_NAME_CHARS "22"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* First field of the first row of sql's result (new), NULL when the query fails or has no row. */
static char *scalar(db_t *db, const char *sql, int n, const char *const *params)
{
    PGresult *res = NULL;
    char *v = NULL;
    if (db_query(db, sql, n, params, &res) == 0 && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* The value of a connection option as libpq resolved it (new, NULL when unset). */
static char *conn_option(PGconn *conn, const char *key)
{
    PQconninfoOption *opts = conn ? PQconninfo(conn) : NULL;
    char *v = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val)
            v = xstrdup(o->val);
    PQconninfoFree(opts);
    return v;
}

static void check_option(PGconn *conn, const char *key, const char *want)
{
    char *v = conn_option(conn, key);
    CHECK_STR(v, want);
    free(v);
}

static void check_connect(void)
{
    db_t *db = db_new(url), *db2 = NULL, *db3 = NULL;
    char *conninfo = NULL, *url3 = NULL;
    PGconn *c;

    CHECK(!db_connected(db));
    CHECK(db_conn(db) == NULL);
    CHECK_STR(db_sqlstate(db), "");
    CHECK_INT(db_connect(db), TODO_OK);
    CHECK(db_connected(db));
    CHECK_INT(db_connect(db), TODO_OK);
    CHECK_INT(db_ping(db), TODO_OK);
    CHECK(!db_in_tx(db));
    CHECK_SCALAR(db, "SHOW statement_timeout", 0, NULL, "10s");
    CHECK_SCALAR(db, "SHOW application_name", 0, NULL, "todo");
    c = db_conn(db);
    CHECK(c != NULL);
    check_option(c, "connect_timeout", "5");
    check_option(c, "keepalives", "1");
    if (!c)
        goto out;

    /* A conninfo string works as well as a URL; the session settings are applied. */
    conninfo =
        xasprintf("host=%s port=%s dbname=%s user=%s", PQhost(c), PQport(c), PQdb(c), PQuser(c));
    db2 = db_new(conninfo);
    db_set_application_name(db2, "db_check");
    db_set_statement_timeout(db2, 1500);
    CHECK_INT(db_connect(db2), TODO_OK);
    CHECK_SCALAR(db2, "SHOW application_name", 0, NULL, "db_check");
    CHECK_SCALAR(db2, "SHOW statement_timeout", 0, NULL, "1500ms");

    /* Settings in the URL win over the defaults. */
    url3 = xasprintf("%s%sapplication_name=from_url&connect_timeout=7", url,
                     strchr(url, '?') ? "&" : "?");
    db3 = db_new(url3);
    CHECK_INT(db_connect(db3), TODO_OK);
    CHECK_SCALAR(db3, "SHOW application_name", 0, NULL, "from_url");
    check_option(db_conn(db3), "connect_timeout", "7");
out:
    db_free(db);
    db_free(db2);
    db_free(db3);
    free(conninfo);
    free(url3);
}

static void check_params(db_t *db)
{
    const char *row[] = {"1", unicode_name, NULL};
    const char *id[] = {"1"};
    const char *null_param[] = {NULL};
    const char *hostile[] = {"2", "x'); DROP TABLE people; --", "a\\b\"c"};
    PGresult *res = NULL;

    EXEC(db, "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, note text, "
             "CONSTRAINT people_name_key UNIQUE (name))");
    CHECK_INT(db_query(db, "INSERT INTO people (id, name, note) VALUES ($1, $2, $3)", 3, row, NULL),
              TODO_OK);
    CHECK_INT(
        db_query(db, "SELECT name, note, char_length(name) FROM people WHERE id = $1", 1, id, &res),
        TODO_OK);
    CHECK(res != NULL);
    if (res) {
        CHECK_INT(PQntuples(res), 1);
        CHECK_STR(PQgetvalue(res, 0, 0), unicode_name);
        CHECK(PQgetisnull(res, 0, 1));
        CHECK_STR(PQgetvalue(res, 0, 2), UNICODE_NAME_CHARS);
    }
    PQclear(res);
    CHECK_SCALAR(db, "SELECT ($1::text IS NULL)::text", 1, null_param, "true");

    /* Parameters are data, whatever they look like. */
    CHECK_INT(
        db_query(db, "INSERT INTO people (id, name, note) VALUES ($1, $2, $3)", 3, hostile, NULL),
        TODO_OK);
    CHECK_SCALAR(db, "SELECT name FROM people WHERE id = 2", 0, NULL, hostile[1]);
    CHECK_SCALAR(db, "SELECT note FROM people WHERE id = 2", 0, NULL, hostile[2]);

    /* Extended protocol: one statement per query. */
    CHECK_INT(db_query(db, "SELECT 1; SELECT 2", 0, NULL, NULL), TODO_EINTERNAL);
    CHECK_STR(db_sqlstate(db), "42601");
    CHECK_INT(db_query(db, "SELEKT 1", 0, NULL, NULL), TODO_EINTERNAL);
    CHECK_STR(db_sqlstate(db), "42601");
    CHECK_STR(db_constraint(db), "");
    CHECK_INT(db_ping(db), TODO_OK);
    CHECK_STR(db_sqlstate(db), "");
}

static void check_conflict(db_t *db)
{
    const char *same_name[] = {"3", unicode_name};
    const char *same_id[] = {"1", "someone else"};
    PGresult *res = NULL;

    CHECK_INT(db_query(db, "INSERT INTO people (id, name) VALUES ($1, $2) RETURNING id", 2,
                       same_name, &res),
              TODO_ECONFLICT);
    CHECK(res == NULL);
    CHECK_STR(db_sqlstate(db), "23505");
    CHECK_STR(db_constraint(db), "people_name_key");
    CHECK_INT(db_query(db, "INSERT INTO people (id, name) VALUES ($1, $2)", 2, same_id, NULL),
              TODO_ECONFLICT);
    CHECK_STR(db_constraint(db), "people_pkey");
    CHECK(db_connected(db));
    CHECK_SCALAR(db, "SELECT count(*) FROM people", 0, NULL, "2");
}

typedef struct {
    int base;        /* ids base and base + 1 are inserted */
    int result;      /* what fn returns at the end */
    bool bad_query;  /* run a failing query */
    bool swallow;    /* ... and go on as if it had worked */
    bool conflict;   /* insert a duplicate name */
    bool nested;     /* call db_tx inside */
    bool seen_in_tx; /* db_in_tx() inside fn */
    int nested_rc;
} tx_arg_t;

static int noop_tx(db_t *db, void *arg)
{
    return 0;
}

static int insert_two(db_t *db, void *arg)
{
    tx_arg_t *a = arg;
    char id[2][16], name[2][32];
    int rc = 0;

    a->seen_in_tx = db_in_tx(db);
    for (int i = 0; i < 2; i++) {
        snprintf(id[i], sizeof(id[i]), "%d", a->base + i);
        snprintf(name[i], sizeof(name[i]), "tx-%d", a->base + i);
        const char *p[] = {id[i], name[i]};
        rc = db_query(db, "INSERT INTO people (id, name) VALUES ($1, $2)", 2, p, NULL);
        if (rc != 0)
            return rc;
    }
    if (a->bad_query) {
        rc = db_query(db, "SELECT * FROM no_such_table", 0, NULL, NULL);
        if (!a->swallow)
            return rc;
    }
    if (a->conflict) {
        const char *p[] = {"999", name[0]};
        return db_query(db, "INSERT INTO people (id, name) VALUES ($1, $2)", 2, p, NULL);
    }
    if (a->nested)
        a->nested_rc = db_tx(db, noop_tx, NULL);
    return a->result;
}

static char *count_ids(db_t *db, int base)
{
    char lo[16], hi[16];
    const char *p[] = {lo, hi};
    snprintf(lo, sizeof(lo), "%d", base);
    snprintf(hi, sizeof(hi), "%d", base + 1);
    return scalar(db, "SELECT count(*) FROM people WHERE id BETWEEN $1 AND $2", 2, p);
}

#define CHECK_ROWS(db, base, want)             \
    do {                                       \
        char *rows_ = count_ids((db), (base)); \
        CHECK_STR(rows_, (want));              \
        free(rows_);                           \
    } while (0)

static void check_tx(db_t *db)
{
    tx_arg_t commit = {.base = 10};
    CHECK_INT(db_tx(db, insert_two, &commit), TODO_OK);
    CHECK(commit.seen_in_tx);
    CHECK(!db_in_tx(db));
    CHECK_ROWS(db, 10, "2");

    tx_arg_t by_result = {.base = 20, .result = TODO_ENOT_FOUND};
    CHECK_INT(db_tx(db, insert_two, &by_result), TODO_ENOT_FOUND);
    CHECK(!db_in_tx(db));
    CHECK_ROWS(db, 20, "0");

    tx_arg_t by_query = {.base = 30, .bad_query = true};
    CHECK_INT(db_tx(db, insert_two, &by_query), TODO_EINTERNAL);
    CHECK_STR(db_sqlstate(db), "42P01");
    CHECK_ROWS(db, 30, "0");

    /* fn ignored a failed statement and asked to commit: the transaction cannot commit. */
    tx_arg_t swallowed = {.base = 40, .bad_query = true, .swallow = true};
    CHECK_INT(db_tx(db, insert_two, &swallowed), TODO_EINTERNAL);
    CHECK_ROWS(db, 40, "0");

    tx_arg_t conflict = {.base = 50, .conflict = true};
    CHECK_INT(db_tx(db, insert_two, &conflict), TODO_ECONFLICT);
    CHECK_STR(db_sqlstate(db), "23505");
    CHECK_STR(db_constraint(db), "people_name_key");
    CHECK_ROWS(db, 50, "0");

    tx_arg_t nested = {.base = 60, .nested = true};
    CHECK_INT(db_tx(db, insert_two, &nested), TODO_OK);
    CHECK_INT(nested.nested_rc, TODO_EINTERNAL);
    CHECK_ROWS(db, 60, "2");

    CHECK(db_conn(db) && PQtransactionStatus(db_conn(db)) == PQTRANS_IDLE);
}

static int insert_deferred(db_t *db, void *arg)
{
    int rc = db_query(db, "INSERT INTO deferred (v) VALUES (1)", 0, NULL, NULL);
    if (rc == 0)
        rc = db_query(db, "INSERT INTO deferred (v) VALUES (1)", 0, NULL, NULL);
    return rc;
}

/* A constraint checked at COMMIT: the failure of COMMIT is what db_tx reports. */
static void check_commit_failure(db_t *db)
{
    EXEC(db, "CREATE TABLE deferred (v int, "
             "CONSTRAINT deferred_v_key UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)");
    CHECK_INT(db_tx(db, insert_deferred, NULL), TODO_ECONFLICT);
    CHECK_STR(db_sqlstate(db), "23505");
    CHECK_STR(db_constraint(db), "deferred_v_key");
    CHECK_SCALAR(db, "SELECT count(*) FROM deferred", 0, NULL, "0");
}

typedef struct {
    db_t *other;
    int attempts;
    int interfere;      /* attempts during which the other connection updates the row */
    bool deadlock;      /* raise deadlock_detected in the first attempt */
    bool not_retryable; /* fail with an error that is not retried */
} retry_arg_t;

static int bump(db_t *db, void *arg)
{
    retry_arg_t *r = arg;
    char *seen;
    int rc;

    r->attempts++;
    rc = db_query(db, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL, NULL);
    if (rc != 0)
        return rc;
    if (r->deadlock && r->attempts == 1)
        return db_query(db,
                        "DO $$ BEGIN RAISE EXCEPTION 'simulated deadlock' "
                        "USING ERRCODE = 'deadlock_detected'; END $$",
                        0, NULL, NULL);
    if (r->not_retryable)
        return db_query(db, "SELECT * FROM no_such_table", 0, NULL, NULL);
    seen = scalar(db, "SELECT value FROM counter WHERE id = 1", 0, NULL); /* takes the snapshot */
    CHECK(seen != NULL);
    free(seen);
    if (r->attempts <= r->interfere)
        CHECK_INT(db_query(r->other, "UPDATE counter SET value = value + 100 WHERE id = 1", 0, NULL,
                           NULL),
                  TODO_OK);
    return db_query(db, "UPDATE counter SET value = value + 1 WHERE id = 1", 0, NULL, NULL);
}

static void check_retry(db_t *db)
{
    db_t *other = db_new(url);

    EXEC(db, "CREATE TABLE counter (id int PRIMARY KEY, value int NOT NULL)");
    EXEC(db, "INSERT INTO counter VALUES (1, 0)");

    /* A concurrent update after our snapshot: 40001 once, then the retry succeeds. */
    retry_arg_t once = {.other = other, .interfere = 1};
    CHECK_INT(db_tx(db, bump, &once), TODO_OK);
    CHECK_INT(once.attempts, 2);
    CHECK_SCALAR(db, "SELECT value FROM counter WHERE id = 1", 0, NULL, "101");

    /* Interference every time: the first attempt and three retries, then the error. */
    retry_arg_t always = {.other = other, .interfere = 100};
    CHECK_INT(db_tx(db, bump, &always), TODO_EINTERNAL);
    CHECK_INT(always.attempts, 4);
    CHECK_STR(db_sqlstate(db), "40001");
    CHECK_SCALAR(db, "SELECT value FROM counter WHERE id = 1", 0, NULL, "501");

    retry_arg_t deadlock = {.other = other, .deadlock = true};
    CHECK_INT(db_tx(db, bump, &deadlock), TODO_OK);
    CHECK_INT(deadlock.attempts, 2);
    CHECK_SCALAR(db, "SELECT value FROM counter WHERE id = 1", 0, NULL, "502");

    retry_arg_t other_error = {.other = other, .not_retryable = true};
    CHECK_INT(db_tx(db, bump, &other_error), TODO_EINTERNAL);
    CHECK_INT(other_error.attempts, 1);
    db_free(other);
}

/* Terminates db's server process from other and waits until it is gone. */
static void kill_backend(db_t *db, db_t *other)
{
    char *pid = scalar(db, "SELECT pg_backend_pid()", 0, NULL);
    const char *p[] = {pid};
    CHECK(pid != NULL);
    if (pid)
        CHECK_SCALAR(other, "SELECT pg_terminate_backend($1::int, 10000)::text", 1, p, "true");
    free(pid);
}

typedef struct {
    db_t *other;
    int first, second, reconnect;
    bool connected;
} lost_arg_t;

static int lose_in_tx(db_t *db, void *arg)
{
    lost_arg_t *a = arg;
    const char *p[] = {"70", "lost-70"};
    CHECK_INT(db_query(db, "INSERT INTO people (id, name) VALUES ($1, $2)", 2, p, NULL), TODO_OK);
    kill_backend(db, a->other);
    a->first = db_query(db, "SELECT 1", 0, NULL, NULL);
    sleep_ms(300); /* past the reconnection window: only the transaction forbids reconnecting */
    a->second = db_query(db, "SELECT 1", 0, NULL, NULL);
    a->reconnect = db_connect(db);
    a->connected = db_connected(db);
    return a->second;
}

static void check_lost_connection(void)
{
    db_t *db = db_new(url), *other = db_new(url);
    char *pid = NULL, *pid2 = NULL;

    CHECK_INT(db_connect(db), TODO_OK);
    pid = scalar(db, "SELECT pg_backend_pid()", 0, NULL);
    kill_backend(db, other);
    CHECK_INT(db_query(db, "SELECT 1", 0, NULL, NULL), TODO_EUNAVAILABLE);
    CHECK(!db_connected(db));
    CHECK(db_conn(db) == NULL);
    sleep_ms(300);
    CHECK_INT(db_ping(db), TODO_OK);
    CHECK(db_connected(db));
    pid2 = scalar(db, "SELECT pg_backend_pid()", 0, NULL);
    CHECK(pid && pid2 && strcmp(pid, pid2) != 0);
    CHECK_SCALAR(db, "SHOW statement_timeout", 0, NULL, "10s");

    lost_arg_t a = {.other = other};
    CHECK_INT(db_tx(db, lose_in_tx, &a), TODO_EUNAVAILABLE);
    CHECK_INT(a.first, TODO_EUNAVAILABLE);
    CHECK_INT(a.second, TODO_EUNAVAILABLE);
    CHECK_INT(a.reconnect, TODO_EUNAVAILABLE);
    CHECK(!a.connected);
    CHECK(!db_in_tx(db));
    /* Outside the transaction the next query reconnects at once (last attempt long ago). */
    CHECK_INT(db_ping(db), TODO_OK);
    CHECK_ROWS(db, 70, "0");
    free(pid);
    free(pid2);
    db_free(db);
    db_free(other);
}

static int sleep_in_tx(db_t *db, void *arg)
{
    return db_query(db, "SELECT pg_sleep(5)", 0, NULL, NULL);
}

static void check_statement_timeout(void)
{
    db_t *db = db_new(url);
    int64_t t;

    db_set_statement_timeout(db, 200);
    CHECK_SCALAR(db, "SHOW statement_timeout", 0, NULL, "200ms");
    t = now_ms();
    CHECK_INT(db_query(db, "SELECT pg_sleep(5)", 0, NULL, NULL), TODO_EUNAVAILABLE);
    CHECK_RANGE(now_ms() - t, 150, 3000);
    CHECK_STR(db_sqlstate(db), "57014");
    CHECK(db_connected(db));
    CHECK_INT(db_ping(db), TODO_OK);
    t = now_ms();
    CHECK_INT(db_tx(db, sleep_in_tx, NULL), TODO_EUNAVAILABLE);
    CHECK_RANGE(now_ms() - t, 150, 3000);
    CHECK_INT(db_ping(db), TODO_OK);
    db_free(db);
}

static const db_migration_t migrations[] = {
    {1, "items",
     "CREATE TABLE \"db-check\".items (id int PRIMARY KEY);\n"
     "CREATE TABLE \"db-check\".applied (version int);\n"
     "INSERT INTO \"db-check\".applied VALUES (1);\n"},
    {2, "item_name",
     "ALTER TABLE \"db-check\".items ADD COLUMN name text;\n"
     "INSERT INTO \"db-check\".applied VALUES (2);\n"},
    {3, "item_note",
     "ALTER TABLE \"db-check\".items ADD COLUMN note text;\n"
     "INSERT INTO \"db-check\".applied VALUES (3);\n"},
    {4, "broken",
     "CREATE TABLE \"db-check\".partial (v int);\n"
     "INSERT INTO \"db-check\".applied VALUES (4);\n"
     "SELECT no_such_function();\n"},
};

static const char recorded_sql[] =
    "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
    "FROM \"db-check\".schema_migrations WHERE applied_at IS NOT NULL";
static const char applied_sql[] =
    "SELECT string_agg(version::text, ',' ORDER BY version) FROM \"db-check\".applied";

static void check_migrations(void)
{
    db_t *db = db_new(url), *other = db_new(url);
    const db_migration_t unordered[] = {migrations[1], migrations[0]};

    CHECK_INT(db_migrate(db, "db-check", migrations, 2), TODO_OK);
    CHECK_SCALAR(db, recorded_sql, 0, NULL, "1:items,2:item_name");
    CHECK_SCALAR(db, applied_sql, 0, NULL, "1,2");

    /* Idempotent: nothing runs again. */
    CHECK_INT(db_migrate(db, "db-check", migrations, 2), TODO_OK);
    CHECK_SCALAR(db, recorded_sql, 0, NULL, "1:items,2:item_name");
    CHECK_SCALAR(db, applied_sql, 0, NULL, "1,2");

    /* Only the new one runs. */
    CHECK_INT(db_migrate(db, "db-check", migrations, 3), TODO_OK);
    CHECK_SCALAR(db, recorded_sql, 0, NULL, "1:items,2:item_name,3:item_note");
    CHECK_SCALAR(db, applied_sql, 0, NULL, "1,2,3");

    /* A failing migration leaves nothing behind and releases the lock. */
    CHECK_INT(db_migrate(db, "db-check", migrations, 4), TODO_EINTERNAL);
    CHECK_SCALAR(db, recorded_sql, 0, NULL, "1:items,2:item_name,3:item_note");
    CHECK_SCALAR(db, applied_sql, 0, NULL, "1,2,3");
    CHECK_SCALAR(db, "SELECT (to_regclass('\"db-check\".partial') IS NULL)::text", 0, NULL, "true");
    CHECK_SCALAR(other, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", 0, NULL, "0");
    CHECK_SCALAR(db, "SHOW statement_timeout", 0, NULL, "10s");
    CHECK(db_connected(db));
    CHECK(!db_in_tx(db));

    CHECK_INT(db_migrate(db, "db-check", unordered, 2), TODO_EINTERNAL);
    CHECK_SCALAR(db, recorded_sql, 0, NULL, "1:items,2:item_name,3:item_note");
    db_free(db);
    db_free(other);
}

static const db_migration_t concurrent_migrations[] = {
    {1, "slow",
     "CREATE TABLE db_check_concurrent.log (version int);\n"
     "SELECT pg_sleep(0.3);\n"
     "INSERT INTO db_check_concurrent.log VALUES (1);\n"},
    {2, "second",
     "CREATE TABLE db_check_concurrent.other (v int);\n"
     "INSERT INTO db_check_concurrent.log VALUES (2);\n"},
};

#define MIGRATORS 4

typedef struct {
    pthread_barrier_t *start;
    int connect_rc;
    int migrate_rc;
} migrator_t;

static void *migrate_thread(void *arg)
{
    migrator_t *m = arg;
    db_t *db = db_new(url);
    m->connect_rc = db_connect(db);
    pthread_barrier_wait(m->start);
    m->migrate_rc = db_migrate(db, "db_check_concurrent", concurrent_migrations, 2);
    db_free(db);
    return NULL;
}

/* Replicas starting together: each migration applied exactly once (a second CREATE TABLE
 * would fail the migration and its INSERT would show twice). */
static void check_concurrent_migrations(void)
{
    pthread_barrier_t start;
    pthread_t threads[MIGRATORS];
    migrator_t m[MIGRATORS];
    db_t *db = db_new(url);

    pthread_barrier_init(&start, NULL, MIGRATORS);
    for (int i = 0; i < MIGRATORS; i++) {
        m[i] = (migrator_t){.start = &start, .connect_rc = -1, .migrate_rc = -1};
        CHECK_INT(pthread_create(&threads[i], NULL, migrate_thread, &m[i]), 0);
    }
    for (int i = 0; i < MIGRATORS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_INT(m[i].connect_rc, TODO_OK);
        CHECK_INT(m[i].migrate_rc, TODO_OK);
    }
    pthread_barrier_destroy(&start);
    CHECK_SCALAR(db,
                 "SELECT string_agg(version::text, ',' ORDER BY version) "
                 "FROM db_check_concurrent.log",
                 0, NULL, "1,2");
    CHECK_SCALAR(db,
                 "SELECT string_agg(version::text, ',' ORDER BY version) "
                 "FROM db_check_concurrent.schema_migrations",
                 0, NULL, "1,2");
    db_free(db);
}

/* A server that accepts TCP connections and never answers: each connection attempt lasts the
 * connect timeout, so whether an attempt was made shows in the time a call takes. */
static void check_reconnect_spacing(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *silent = NULL;
    db_t *db = NULL;
    int64_t t;

    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    CHECK_INT(listen(fd, 16), 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    silent = xasprintf("postgresql://nobody@127.0.0.1:%d/none?connect_timeout=2&sslmode=disable&"
                       "gssencmode=disable",
                       ntohs(addr.sin_port));
    db = db_new(silent);

    /* The URL's connect_timeout (2 s, counted in whole seconds by libpq) replaces the 5 s. */
    t = now_ms();
    CHECK_INT(db_connect(db), TODO_EUNAVAILABLE);
    CHECK_RANGE(now_ms() - t, 900, 4000);
    /* Within 250 ms of that attempt: no new attempt, an answer at once. */
    t = now_ms();
    CHECK_INT(db_query(db, "SELECT 1", 0, NULL, NULL), TODO_EUNAVAILABLE);
    CHECK_INT(db_connect(db), TODO_EUNAVAILABLE);
    CHECK_INT(db_ping(db), TODO_EUNAVAILABLE);
    CHECK_RANGE(now_ms() - t, 0, 200);
    CHECK(!db_connected(db));
    /* After the window a new attempt is made. */
    sleep_ms(300);
    t = now_ms();
    CHECK_INT(db_connect(db), TODO_EUNAVAILABLE);
    CHECK_RANGE(now_ms() - t, 900, 4000);
    db_free(db);
    free(silent);
    close(fd);
}

static int hold_tx(db_t *db, void *arg)
{
    char line[64];
    int64_t t;
    int rc2, rc = db_query(db, "SELECT 1", 0, NULL, NULL);

    printf("in-tx %s\n", todo_err_code(rc));
    fflush(stdout);
    if (rc != 0 || !fgets(line, sizeof(line), stdin))
        return rc ? rc : TODO_EINTERNAL;
    /* The second query shows whether the first one's failure led to a silent reconnection. */
    t = now_ms();
    rc = db_query(db, "SELECT 1", 0, NULL, NULL);
    rc2 = db_query(db, "SELECT 1", 0, NULL, NULL);
    printf("in-tx-query %s %s %lld\n", todo_err_code(rc), todo_err_code(rc2),
           (long long)(now_ms() - t));
    fflush(stdout);
    return rc ? rc : rc2;
}

/* One line in, one line out: "query" → "query <code> <ms>"; "hold" → "in-tx <code>", then after
 * any line "in-tx-query <code> <code> <ms>" (two queries) and "tx <code>"; "quit" ends. */
static int restart_probe(void)
{
    db_t *db = db_new(url);
    char line[64];
    int rc = db_connect(db);

    printf("ready %s\n", todo_err_code(rc));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "query") == 0) {
            int64_t t = now_ms();
            rc = db_query(db, "SELECT 1", 0, NULL, NULL);
            printf("query %s %lld\n", todo_err_code(rc), (long long)(now_ms() - t));
        } else if (strcmp(line, "hold") == 0) {
            rc = db_tx(db, hold_tx, NULL);
            printf("tx %s\n", todo_err_code(rc));
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            printf("unknown %s\n", line);
        }
        fflush(stdout);
    }
    db_free(db);
    return 0;
}

int main(int argc, char **argv)
{
    db_t *db;

    if (argc < 2) {
        fprintf(stderr, "usage: %s DATABASE_URL [--restart-probe]\n", argv[0]);
        return 2;
    }
    url = argv[1];
    log_init("db_check", LOG_LEVEL_INFO);
    if (argc > 2 && strcmp(argv[2], "--restart-probe") == 0)
        return restart_probe();

    check_connect();
    db = db_new(url);
    check_params(db);
    check_conflict(db);
    check_tx(db);
    check_commit_failure(db);
    check_retry(db);
    db_free(db);
    check_lost_connection();
    check_statement_timeout();
    check_migrations();
    check_concurrent_migrations();
    check_reconnect_spacing();
    return check_exit();
}
