/* PostgreSQL access through libpq: connection with bounded, throttled reconnection, SQLSTATE to
 * error mapping, a per-connection cache of prepared statements, the transaction helper with
 * retries (its BEGIN pipelined with the first statement), and migrations under an advisory
 * lock. */
#include "todo/db.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "todo/alloc.h"
#include "todo/log.h"

#define DB_RECONNECT_MS     250
#define DB_TX_RETRIES       3
#define DB_DEFAULT_TIMEOUT  10000
#define DB_DEFAULT_APP_NAME "todo"
#define DB_MSG_MAX          512
#define DB_STMT_CACHE       32 /* prepared statements per connection */
#define DB_STMT_NAME        24
#define DB_PIPELINE_MAX     2 /* statements sent together: BEGIN and the first of a transaction */

/* A statement prepared on the current connection. */
typedef struct {
    char *sql; /* its text (owned): the key */
    uint32_t hash;
    char name[DB_STMT_NAME];
} db_stmt_t;

struct db {
    char *url;
    char *app_name;
    int statement_timeout_ms;
    PGconn *conn;
    bool lost;            /* a statement failed with a connection error */
    bool in_tx;           /* inside db_tx: never reconnect */
    bool pinned;          /* session state matters (advisory lock): never reconnect */
    bool tx_retry;        /* the current transaction failed with 40001 or 40P01 */
    bool begin_pending;   /* inside db_tx, no statement sent yet: BEGIN goes with the first */
    bool cache_full_said; /* the warning that the statement cache is full was logged */
    bool attempted;       /* the last connection attempt failed */
    int64_t next_attempt; /* monotonic ms before which no new attempt is made */
    char sqlstate[6];
    char constraint[64];
    db_stmt_t stmts[DB_STMT_CACHE]; /* prepared on conn */
    int nstmts;
    unsigned stmt_seq; /* names todo_<n>, unique on conn */
    unsigned session;  /* counts connections made */
};

typedef enum {
    RUN_PARAMS,   /* extended protocol, unnamed statement */
    RUN_PREPARED, /* extended protocol, statement from the cache */
    RUN_SIMPLE    /* simple protocol: several statements, no parameters */
} run_mode_t;

/* One statement of a round trip: run sql (as the prepared statement name when name is set),
 * first preparing it when prepare is set. */
typedef struct {
    const char *sql;
    int nparams;
    const char *const *params;
    bool prepare;
    uint32_t hash;
    char name[DB_STMT_NAME];
} step_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies src into dst on one line: libpq messages end with a newline and may span several. */
static void one_line(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src && *src && n + 1 < cap; src++) {
        bool space = *src == ' ' || *src == '\n' || *src == '\r' || *src == '\t';
        if (!space)
            dst[n++] = *src;
        else if (n > 0 && dst[n - 1] != ' ')
            dst[n++] = ' ';
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static bool sqlstate_is(const char *state, const char *want)
{
    return state && strcmp(state, want) == 0;
}

/* SQLSTATEs after which the session is gone: connection exceptions and server shutdown. */
static bool connection_lost(const char *state)
{
    return state && (strncmp(state, "08", 2) == 0 || sqlstate_is(state, "57P01") ||
                     sqlstate_is(state, "57P02") || sqlstate_is(state, "57P03"));
}

static bool retryable(const char *state)
{
    return sqlstate_is(state, "40001") || sqlstate_is(state, "40P01");
}

static int map_sqlstate(const char *state)
{
    if (connection_lost(state) || sqlstate_is(state, "53300") || sqlstate_is(state, "57014"))
        return TODO_EUNAVAILABLE;
    if (sqlstate_is(state, "23505"))
        return TODO_ECONFLICT;
    return TODO_EINTERNAL;
}

/* Server notices (e.g. "schema already exists, skipping") go to the log, not to stderr raw. */
static void on_notice(void *arg, const PGresult *res)
{
    char msg[DB_MSG_MAX];
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    one_line(msg, sizeof(msg), PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    if (severity && strcmp(severity, "WARNING") == 0)
        log_warn("db", "server warning, SQLSTATE %s: %s", state ? state : "none", msg);
    else
        log_debug("db", "server notice: %s", msg);
}

/* Turns a statement's result into 0 or an error, recording SQLSTATE and constraint on failure. */
static int check_result(db_t *db, const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    char msg[DB_MSG_MAX];
    const char *state = NULL, *primary = NULL;
    int rc;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)
        return 0;
    if (res) {
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (!primary)
            primary = PQresultErrorMessage(res);
        copy_field(db->constraint, sizeof(db->constraint),
                   PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
    } else {
        db->constraint[0] = '\0';
    }
    if (!primary || !*primary)
        primary = PQerrorMessage(db->conn);
    copy_field(db->sqlstate, sizeof(db->sqlstate), state);
    one_line(msg, sizeof(msg), primary);

    if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR && st != PGRES_BAD_RESPONSE) {
        /* COPY and the like: not supported, and the session is left in a state of its own. */
        log_error("db", "unexpected result status %s", PQresStatus(st));
        db->lost = true;
        return TODO_EINTERNAL;
    }
    if (PQstatus(db->conn) == CONNECTION_BAD || connection_lost(state))
        db->lost = true;
    rc = db->lost ? TODO_EUNAVAILABLE : map_sqlstate(state);
    if (retryable(state) && db->in_tx)
        db->tx_retry = true;
    if (rc == TODO_EINTERNAL && !retryable(state))
        log_error("db", "query failed, SQLSTATE %s: %s", state ? state : "none", msg);
    else
        log_warn("db", "query failed, SQLSTATE %s: %s", state ? state : "none", msg);
    return rc;
}

static uint32_t text_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Forgets the statements prepared on a connection that is gone. */
static void forget_statements(db_t *db)
{
    for (int i = 0; i < db->nstmts; i++)
        free(db->stmts[i].sql);
    db->nstmts = 0;
    db->stmt_seq = 0;
}

/* Appends to steps (n so far) the step that runs sql: as a prepared statement when prepared (the
 * step prepares it first when the cache has no such statement yet and room for it), else
 * unnamed. Returns the new count. */
static int add_step(db_t *db, step_t *steps, int n, const char *sql, int nparams,
                    const char *const *params, bool prepared)
{
    step_t *st = &steps[n];
    int room = DB_STMT_CACHE - db->nstmts;

    *st = (step_t){.sql = sql, .nparams = nparams, .params = params};
    if (!prepared)
        return n + 1;
    st->hash = text_hash(sql);
    for (int i = 0; i < db->nstmts; i++) {
        if (db->stmts[i].hash == st->hash && strcmp(db->stmts[i].sql, sql) == 0) {
            memcpy(st->name, db->stmts[i].name, sizeof(st->name));
            return n + 1;
        }
    }
    for (int i = 0; i < n; i++)
        room -= steps[i].prepare;
    if (room <= 0) {
        if (!db->cache_full_said)
            log_warn("db", "%d statements prepared: further ones run unprepared", DB_STMT_CACHE);
        db->cache_full_said = true;
        return n + 1;
    }
    st->prepare = true;
    snprintf(st->name, sizeof(st->name), "todo_%u", db->stmt_seq++);
    return n + 1;
}

static void remember_statement(db_t *db, const step_t *st)
{
    db_stmt_t *e = &db->stmts[db->nstmts++];
    e->sql = xstrdup(st->sql);
    e->hash = st->hash;
    memcpy(e->name, st->name, sizeof(e->name));
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* The results of one request of a pipeline, up to its end (NULL): the first is kept. */
static PGresult *request_result(PGconn *conn)
{
    PGresult *first = PQgetResult(conn), *r;
    if (first)
        while ((r = PQgetResult(conn)) != NULL)
            PQclear(r);
    return first;
}

/* Sends the steps in one pipeline (one round trip) and waits for all of them. Returns the result
 * of the first request that failed, else the last step's; NULL when the connection broke.
 * Statements prepared by the steps are remembered. A step after a failed one is not run. */
static PGresult *pipeline(db_t *db, const step_t *steps, int n)
{
    PGconn *conn = db->conn;
    PGresult *res = NULL, *r;
    bool sent = PQenterPipelineMode(conn);

    for (int i = 0; sent && i < n; i++) {
        const step_t *st = &steps[i];
        if (st->prepare)
            sent = PQsendPrepare(conn, st->name, st->sql, 0, NULL);
        if (sent && st->name[0])
            sent = PQsendQueryPrepared(conn, st->name, st->nparams, st->params, NULL, NULL, 0);
        else if (sent)
            sent = PQsendQueryParams(conn, st->sql, st->nparams, NULL, st->params, NULL, NULL, 0);
    }
    if (sent && PQpipelineSync(conn)) {
        for (int i = 0; i < n; i++) {
            if (steps[i].prepare) {
                r = request_result(conn);
                if (r && result_ok(r))
                    remember_statement(db, &steps[i]);
                if (!res && (!r || !result_ok(r)))
                    res = r; /* the statement does not exist: its run below is aborted */
                else
                    PQclear(r);
            }
            r = request_result(conn);
            if (!res && (i == n - 1 || !r || !result_ok(r)))
                res = r;
            else
                PQclear(r);
        }
        r = PQgetResult(conn);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            sent = false;
        PQclear(r);
    }
    if (!PQexitPipelineMode(conn) || !sent) {
        /* Results may still be due: the session is of no further use. */
        if (PQstatus(conn) == CONNECTION_OK)
            log_warn("db", "pipeline failed: %s", PQerrorMessage(conn));
        db->lost = true;
    }
    return res;
}

/* Runs one statement on the current connection, never reconnecting; a BEGIN that db_tx left
 * pending goes with it. *out (when out is set) receives the result on success. */
static int run(db_t *db, const char *sql, int nparams, const char *const *params, run_mode_t mode,
               PGresult **out)
{
    int rc = TODO_EUNAVAILABLE, n = 0;
    PGresult *res = NULL;
    step_t steps[DB_PIPELINE_MAX];
    bool begin = db->begin_pending;

    db->begin_pending = false; /* even when this fails: COMMIT must not pass for a no-op */
    if (!db_connected(db))
        goto out;
    if (begin) {
        if (mode == RUN_SIMPLE) { /* the simple protocol cannot share a pipeline */
            rc = run(db, "BEGIN", 0, NULL, RUN_PREPARED, NULL);
            if (rc != 0)
                goto out;
        } else {
            n = add_step(db, steps, n, "BEGIN", 0, NULL, true);
        }
    }
    if (mode == RUN_SIMPLE) {
        res = PQexec(db->conn, sql);
    } else {
        n = add_step(db, steps, n, sql, nparams, params, mode == RUN_PREPARED);
        if (n > 1 || steps[0].prepare)
            res = pipeline(db, steps, n);
        else if (steps[0].name[0])
            res = PQexecPrepared(db->conn, steps[0].name, nparams, params, NULL, NULL, 0);
        else
            res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    }
    rc = check_result(db, res);
    if (rc == 0 && out) {
        *out = res;
        res = NULL;
    }
out:
    PQclear(res);
    return rc;
}

static void disconnect(db_t *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
    forget_statements(db);
}

static int set_statement_timeout(db_t *db, int ms)
{
    char value[24];
    const char *p[] = {value};
    snprintf(value, sizeof(value), "%d", ms);
    return run(db, "SELECT set_config('statement_timeout', $1, false)", 1, p, RUN_PARAMS, NULL);
}

static int open_conn(db_t *db)
{
    /* Defaults first: a later keyword wins, so the URL (expanded from dbname) may override. */
    const char *keys[] = {"connect_timeout",  "keepalives",
                          "keepalives_idle",  "keepalives_interval",
                          "keepalives_count", "fallback_application_name",
                          "dbname",           NULL};
    const char *values[] = {"5", "1", "30", "10", "3", db->app_name, db->url, NULL};
    char msg[DB_MSG_MAX];
    int rc = TODO_EUNAVAILABLE;
    PGconn *conn = PQconnectdbParams(keys, values, 1);

    if (!conn) {
        log_error("db", "cannot allocate a database connection");
        goto out;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(msg, sizeof(msg), PQerrorMessage(conn));
        log_warn("db", "cannot connect to the database: %s", msg);
        goto out;
    }
    PQsetNoticeReceiver(conn, on_notice, NULL);
    db->conn = conn;
    conn = NULL;
    db->lost = false;
    rc = set_statement_timeout(db, db->statement_timeout_ms);
    if (rc != 0) {
        disconnect(db);
        goto out;
    }
    db->session++;
    log_info("db", "connected to database %s on %s:%s", PQdb(db->conn), PQhost(db->conn),
             PQport(db->conn));
out:
    PQfinish(conn);
    return rc;
}

db_t *db_new(const char *url)
{
    db_t *db = xcalloc(1, sizeof(*db));
    db->url = xstrdup(url ? url : "");
    db->app_name = xstrdup(DB_DEFAULT_APP_NAME);
    db->statement_timeout_ms = DB_DEFAULT_TIMEOUT;
    return db;
}

void db_free(db_t *db)
{
    if (!db)
        return;
    disconnect(db);
    free(db->url);
    free(db->app_name);
    free(db);
}

void db_set_statement_timeout(db_t *db, int ms)
{
    db->statement_timeout_ms = ms < 0 ? 0 : ms;
}

void db_set_application_name(db_t *db, const char *name)
{
    free(db->app_name);
    db->app_name = xstrdup(name ? name : DB_DEFAULT_APP_NAME);
}

int db_connect(db_t *db)
{
    int rc = TODO_EUNAVAILABLE;

    if (db_connected(db))
        return 0;
    if (db->in_tx || db->pinned)
        goto out; /* the session is gone with its transaction or lock; the caller must know */
    if (db->attempted && now_ms() < db->next_attempt)
        goto out;
    disconnect(db);
    rc = open_conn(db);
    /* Only a failed attempt holds back the next one: a connection lost after a good one is
     * re-opened at once. */
    db->attempted = rc != 0;
    db->next_attempt = now_ms() + DB_RECONNECT_MS;
out:
    return rc;
}

unsigned db_session(const db_t *db)
{
    return db->session;
}

bool db_connected(const db_t *db)
{
    return db->conn && !db->lost && PQstatus(db->conn) == CONNECTION_OK;
}

int db_ping(db_t *db)
{
    return db_query(db, "SELECT 1", 0, NULL, NULL);
}

static int query(db_t *db, const char *sql, int nparams, const char *const *params, run_mode_t mode,
                 PGresult **out)
{
    int rc;

    if (out)
        *out = NULL;
    db->sqlstate[0] = db->constraint[0] = '\0';
    rc = db_connect(db);
    if (rc != 0) {
        db->begin_pending = false; /* the transaction is lost: its COMMIT must fail */
        return rc;
    }
    return run(db, sql, nparams, params, mode, out);
}

int db_query(db_t *db, const char *sql, int nparams, const char *const *params, PGresult **out)
{
    return query(db, sql, nparams, params, RUN_PARAMS, out);
}

int db_query_prepared(db_t *db, const char *sql, int nparams, const char *const *params,
                      PGresult **out)
{
    return query(db, sql, nparams, params, RUN_PREPARED, out);
}

const char *db_sqlstate(const db_t *db)
{
    return db->sqlstate;
}

const char *db_constraint(const db_t *db)
{
    return db->constraint;
}

/* ROLLBACK when the session is still there; keeps the error that caused it. */
static void rollback(db_t *db)
{
    char state[sizeof(db->sqlstate)], constraint[sizeof(db->constraint)];

    if (db->begin_pending) { /* nothing was sent */
        db->begin_pending = false;
        return;
    }
    if (!db_connected(db))
        return;
    memcpy(state, db->sqlstate, sizeof(state));
    memcpy(constraint, db->constraint, sizeof(constraint));
    if (run(db, "ROLLBACK", 0, NULL, RUN_PARAMS, NULL) != 0)
        log_warn("db", "ROLLBACK failed");
    memcpy(db->sqlstate, state, sizeof(state));
    memcpy(db->constraint, constraint, sizeof(constraint));
}

static int commit(db_t *db)
{
    int rc = TODO_EINTERNAL;
    PGresult *res = NULL;

    if (db->begin_pending) { /* nothing was sent, nothing to commit */
        db->begin_pending = false;
        return 0;
    }
    if (db_connected(db) && PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
        /* COMMIT would quietly roll back: a statement failed and fn went on as if not. */
        log_error("db", "a statement failed inside the transaction; rolling back");
        rollback(db);
        goto out;
    }
    rc = run(db, "COMMIT", 0, NULL, RUN_PREPARED, &res);
    if (rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        log_error("db", "COMMIT ended with %s", PQcmdStatus(res));
        rc = TODO_EINTERNAL;
    }
out:
    PQclear(res);
    return rc;
}

static int tx_once(db_t *db, db_tx_fn fn, void *arg)
{
    int rc;

    db->tx_retry = false;
    rc = db_connect(db);
    if (rc != 0)
        goto out;
    db->in_tx = true;
    db->begin_pending = true; /* sent with fn's first statement */
    rc = fn(db, arg);
    if (rc == 0)
        rc = commit(db);
    else
        rollback(db);
    db->in_tx = false;
    db->begin_pending = false;
out:
    return rc;
}

int db_tx(db_t *db, db_tx_fn fn, void *arg)
{
    int rc;

    if (db->in_tx) {
        log_error("db", "db_tx called inside a transaction");
        return TODO_EINTERNAL;
    }
    for (int attempt = 1;; attempt++) {
        rc = tx_once(db, fn, arg);
        if (rc == 0 || !db->tx_retry)
            break;
        if (attempt > DB_TX_RETRIES) {
            log_error("db", "transaction failed with SQLSTATE %s after %d attempts", db->sqlstate,
                      attempt);
            break;
        }
        log_warn("db", "transaction attempt %d failed with SQLSTATE %s; retrying", attempt,
                 db->sqlstate);
    }
    db->tx_retry = false;
    return rc;
}

bool db_in_tx(const db_t *db)
{
    return db->in_tx;
}

PGconn *db_conn(db_t *db)
{
    if (db->begin_pending && db_connected(db)) {
        db->begin_pending = false;
        if (run(db, "BEGIN", 0, NULL, RUN_PREPARED, NULL) != 0)
            log_warn("db", "BEGIN failed");
    }
    return db_connected(db) ? db->conn : NULL;
}

typedef struct {
    const db_migration_t *migration;
    const char *insert_sql;
} apply_t;

static int apply_migration(db_t *db, void *arg)
{
    const apply_t *a = arg;
    char version[24];
    const char *p[] = {version, a->migration->name};
    int rc;

    snprintf(version, sizeof(version), "%d", a->migration->version);
    rc = run(db, a->migration->sql, 0, NULL, RUN_SIMPLE, NULL);
    if (rc != 0)
        return rc;
    if (PQtransactionStatus(db->conn) != PQTRANS_INTRANS) {
        log_error("db", "migration %d ended its transaction", a->migration->version);
        return TODO_EINTERNAL;
    }
    return db_query(db, a->insert_sql, 2, p, NULL);
}

static bool recorded(const PGresult *res, int version)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strtol(PQgetvalue(res, i, 0), NULL, 10) == version)
            return true;
    return false;
}

int db_migrate(db_t *db, const char *schema, const db_migration_t *migrations, size_t n)
{
    static const char lock_sql[] =
        "SELECT pg_advisory_lock(hashtext('schema_migrations'), hashtext($1))";
    static const char unlock_sql[] =
        "SELECT pg_advisory_unlock(hashtext('schema_migrations'), hashtext($1))";
    const char *lock_params[] = {schema};
    int rc = TODO_EINTERNAL;
    bool locked = false;
    char *ident = NULL, *sql = NULL, *insert_sql = NULL;
    PGresult *res = NULL;
    size_t applied = 0;

    if (db->in_tx || db->pinned) {
        log_error("db", "db_migrate called inside a transaction");
        return TODO_EINTERNAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (migrations[i].version <= 0 ||
            (i > 0 && migrations[i].version <= migrations[i - 1].version)) {
            log_error("db", "migrations of schema %s are not in increasing order at %d", schema,
                      migrations[i].version);
            return TODO_EINTERNAL;
        }
    }
    rc = db_connect(db);
    if (rc != 0)
        goto out;
    db->pinned = true; /* the lock and the timeout belong to this session */
    ident = PQescapeIdentifier(db->conn, schema, strlen(schema));
    if (!ident) {
        log_error("db", "cannot quote schema name: %s", PQerrorMessage(db->conn));
        rc = TODO_EINTERNAL;
        goto out;
    }
    /* A migration (or waiting for another replica's) may outlast the statement timeout. */
    rc = set_statement_timeout(db, 0);
    if (rc != 0)
        goto out;
    rc = run(db, lock_sql, 1, lock_params, RUN_PARAMS, NULL);
    if (rc != 0)
        goto out;
    locked = true;

    sql = xasprintf("CREATE SCHEMA IF NOT EXISTS %s", ident);
    rc = run(db, sql, 0, NULL, RUN_PARAMS, NULL);
    if (rc != 0)
        goto out;
    free(sql);
    sql = xasprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations (version int PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                    ident);
    rc = run(db, sql, 0, NULL, RUN_PARAMS, NULL);
    if (rc != 0)
        goto out;
    free(sql);
    sql = xasprintf("SELECT version FROM %s.schema_migrations", ident);
    rc = run(db, sql, 0, NULL, RUN_PARAMS, &res);
    if (rc != 0)
        goto out;
    insert_sql =
        xasprintf("INSERT INTO %s.schema_migrations (version, name) VALUES ($1, $2)", ident);

    for (size_t i = 0; i < n; i++) {
        apply_t a = {.migration = &migrations[i], .insert_sql = insert_sql};
        if (recorded(res, migrations[i].version))
            continue;
        rc = db_tx(db, apply_migration, &a);
        if (rc != 0) {
            log_error("db", "migration %d (%s) of schema %s failed", migrations[i].version,
                      migrations[i].name, schema);
            goto out;
        }
        log_info("db", "applied migration %d (%s) to schema %s", migrations[i].version,
                 migrations[i].name, schema);
        applied++;
    }
    log_info("db", "schema %s is up to date (%zu of %zu migrations applied now)", schema, applied,
             n);
    rc = 0;
out:
    /* Should the session keep the lock or lose its timeout, close it: the next use reconnects. */
    if (locked && db_connected(db) && run(db, unlock_sql, 1, lock_params, RUN_PARAMS, NULL) != 0) {
        log_warn("db", "cannot release the migration lock of schema %s", schema);
        disconnect(db);
    }
    if (db_connected(db) && set_statement_timeout(db, db->statement_timeout_ms) != 0) {
        log_warn("db", "cannot restore the statement timeout");
        disconnect(db);
    }
    db->pinned = false;
    PQclear(res);
    PQfreemem(ident);
    free(sql);
    free(insert_sql);
    return rc;
}
