/* The state.postgresql store of the sidecar double in components-contrib's v2 layout: tables and
 * migration bookkeeping as v2 creates them, the v2 statements for get/set/delete/transactions,
 * expiry, the clean-up thread, and the pure helpers of the State API. DAPR-CONTRACT §5.3–§5.5. */
#include "state_store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "todo/alloc.h"
#include "todo/db.h"
#include "todo/log.h"

#define POOL_IDLE_MAX 16
#define NAME_MAX_LEN  128

struct state_store {
    char *url;
    char *table;      /* tablePrefix + "state" */
    char *meta_table; /* metadataTableName */
    char *prefix;     /* tablePrefix (for the metadata keys) */
    int64_t timeout_ms;
    int64_t cleanup_ms;
    pthread_mutex_t mu; /* guards idle, migrated */
    db_t *idle[POOL_IDLE_MAX];
    size_t nidle;
    bool migrated;
    /* The clean-up thread. */
    pthread_t gc;
    bool gc_running;
    bool gc_stop;
    pthread_cond_t gc_cond;
};

static void set_err(char err[STATE_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_err(char err[STATE_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(err, STATE_ERR_MAX, fmt, ap);
    va_end(ap);
}

/* ---- Configuration ---- */

/* Go's time.ParseDuration for the units daprd's components use; *ms rounded down. */
static bool parse_go_duration(const char *s, int64_t *ms)
{
    double total_ns = 0;
    bool neg = false;
    const char *p = s;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *ms = 0;
        return true;
    }
    if (!*p)
        return false;
    while (*p) {
        char *end = NULL;
        double v;
        if (!(isdigit((unsigned char)*p) || *p == '.'))
            return false;
        errno = 0;
        v = strtod(p, &end);
        if (end == p || errno != 0)
            return false;
        p = end;
        if (strncmp(p, "ns", 2) == 0) {
            total_ns += v;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0 || strncmp(p, "\xc2\xb5s", 3) == 0 ||
                   strncmp(p, "\xce\xbcs", 3) == 0) {
            total_ns += v * 1e3;
            p += *p == 'u' ? 2 : 3;
        } else if (strncmp(p, "ms", 2) == 0) {
            total_ns += v * 1e6;
            p += 2;
        } else if (*p == 's') {
            total_ns += v * 1e9;
            p++;
        } else if (*p == 'm') {
            total_ns += v * 60e9;
            p++;
        } else if (*p == 'h') {
            total_ns += v * 3600e9;
            p++;
        } else {
            return false;
        }
    }
    if (total_ns > 9.2e18)
        return false;
    *ms = (int64_t)(total_ns / 1e6);
    if (neg)
        *ms = -*ms;
    return true;
}

/* dapr/kit's duration decoding: a Go duration, else whole seconds; "" = 0. */
static bool parse_kit_duration(const char *s, int64_t *ms)
{
    char *end = NULL;
    long long v;

    if (!*s) {
        *ms = 0;
        return true;
    }
    if (parse_go_duration(s, ms))
        return true;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end || v > INT64_MAX / 1000 || v < INT64_MIN / 1000)
        return false;
    *ms = (int64_t)v * 1000;
    return true;
}

static const char *meta_find(const char *const *names, const char *const *values, size_t n,
                             const char *name, const char *alias)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(names[i], name) == 0)
            return values[i];
    for (size_t i = 0; alias && i < n; i++)
        if (strcasecmp(names[i], alias) == 0)
            return values[i];
    return NULL;
}

int state_store_config_parse(const char *const *names, const char *const *values, size_t n,
                             state_store_config_t *cfg, char err[STATE_ERR_MAX])
{
    int rc = TODO_EBAD_REQUEST;
    const char *v;

    cfg->connection_string = meta_find(names, values, n, "connectionString", NULL);
    cfg->table_prefix = "";
    cfg->metadata_table = "dapr_metadata";
    cfg->timeout_ms = 20000;
    cfg->cleanup_interval_ms = 3600000;
    if ((v = meta_find(names, values, n, "tablePrefix", NULL)))
        cfg->table_prefix = v;
    if ((v = meta_find(names, values, n, "metadataTableName", NULL)))
        cfg->metadata_table = v;
    if ((v = meta_find(names, values, n, "timeout", "timeoutInSeconds")) &&
        !parse_kit_duration(v, &cfg->timeout_ms)) {
        set_err(err, "invalid value for 'timeout': %s", v);
        goto out;
    }
    if (cfg->timeout_ms < 1000) {
        set_err(err, "invalid value for 'timeout': must be greater than 1s");
        goto out;
    }
    if ((v = meta_find(names, values, n, "cleanupInterval", "cleanupIntervalInSeconds"))) {
        if (!parse_kit_duration(v, &cfg->cleanup_interval_ms)) {
            set_err(err, "invalid value for 'cleanupInterval': %s", v);
            goto out;
        }
        if (cfg->cleanup_interval_ms <= 0) /* non-positive disables the clean-up */
            cfg->cleanup_interval_ms = 0;
    }
    if (!cfg->connection_string || !*cfg->connection_string) {
        set_err(err, "missing connection string");
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/* Table names are put into SQL text as v2 does (it cannot bind them); allow only plain or
 * schema-qualified identifiers so that nothing else can get in. */
static bool valid_table_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.'))
            return false;
    return s[0] != '.' && s[n - 1] != '.';
}

/* ---- Connections: one per calling thread at a time, from a small pool ---- */

static db_t *acquire(state_store_t *s)
{
    db_t *db = NULL;

    pthread_mutex_lock(&s->mu);
    if (s->nidle > 0)
        db = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->mu);
    if (!db) {
        db = db_new(s->url);
        db_set_statement_timeout(db, s->timeout_ms > INT32_MAX ? 0 : (int)s->timeout_ms);
        db_set_application_name(db, "dapr-sidecar");
    }
    return db;
}

static void release(state_store_t *s, db_t *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->nidle < POOL_IDLE_MAX) {
        s->idle[s->nidle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    db_free(db);
}

static void db_err(char err[STATE_ERR_MAX], db_t *db, int rc, const char *what)
{
    if (rc == TODO_EUNAVAILABLE)
        set_err(err, "%s: the database is unavailable", what);
    else
        set_err(err, "%s: database error (SQLSTATE %s)", what, db_sqlstate(db));
}

/* ---- Migration (v2: common/component/sql/migrations/postgres + state/postgresql/v2) ---- */

typedef struct {
    state_store_t *s;
    char *err;
} migrate_arg_t;

static int migrate_locked(db_t *db, void *argp)
{
    migrate_arg_t *a = argp;
    state_store_t *s = a->s;
    int rc;
    PGresult *res = NULL;
    char *sql = NULL, *version_key = xasprintf("migrations-state-v2-%s", s->prefix);
    const char *p[] = {version_key};
    long level = 0;

    /* The row lock on 'lock' serialises concurrent sidecars, as v2's migrator does. */
    sql = xasprintf("SELECT value FROM %s WHERE key = 'lock' FOR UPDATE", s->meta_table);
    rc = db_query(db, sql, 0, NULL, NULL);
    if (rc != 0)
        goto out;
    free(sql);
    sql = xasprintf("SELECT value FROM %s WHERE key = $1", s->meta_table);
    rc = db_query(db, sql, 1, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) > 0) {
        char *end = NULL;
        level = strtol(PQgetvalue(res, 0, 0), &end, 10);
        if (!end || *end || level < 0) {
            set_err(a->err, "invalid migration level found in metadata table: %s",
                    PQgetvalue(res, 0, 0));
            rc = TODO_EINTERNAL;
            goto out;
        }
    }
    if (level < 1) {
        /* Migration 1 of state/postgresql/v2, column for column. */
        log_info("state", "Creating state table: '%s'", s->table);
        free(sql);
        sql = xasprintf("CREATE TABLE IF NOT EXISTS %s (\n"
                        "  key text NOT NULL PRIMARY KEY,\n"
                        "  value bytea NOT NULL,\n"
                        "  etag uuid NOT NULL DEFAULT gen_random_uuid(),\n"
                        "  created_at timestamp with time zone NOT NULL DEFAULT now(),\n"
                        "  updated_at timestamp with time zone,\n"
                        "  expires_at timestamp with time zone\n"
                        ")",
                        s->table);
        rc = db_query(db, sql, 0, NULL, NULL);
        if (rc != 0)
            goto out;
        free(sql);
        sql = xasprintf("CREATE INDEX ON %s (expires_at)", s->table);
        rc = db_query(db, sql, 0, NULL, NULL);
        if (rc != 0)
            goto out;
        free(sql);
        sql = xasprintf("INSERT INTO %s (key, value) VALUES ($1, '1') "
                        "ON CONFLICT (key) DO UPDATE SET value = '1'",
                        s->meta_table);
        rc = db_query(db, sql, 1, p, NULL);
        if (rc != 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0 && a->err[0] == '\0')
        db_err(a->err, db, rc, "failed to perform migrations");
    PQclear(res);
    free(sql);
    free(version_key);
    return rc;
}

static int migrate(state_store_t *s, db_t *db, char err[STATE_ERR_MAX])
{
    int rc = 0;
    char *sql = NULL;
    migrate_arg_t a = {s, err};
    bool done;

    pthread_mutex_lock(&s->mu);
    done = s->migrated;
    pthread_mutex_unlock(&s->mu);
    if (done)
        goto out;
    err[0] = '\0';
    log_info("state", "Creating metadata table '%s'", s->meta_table);
    /* Sidecars starting together race on the creation: IF NOT EXISTS does not make it atomic
     * (42P07, or 23505 on pg_type). v2 retries up to 3 times; here the loser's error is also
     * caught in the statement, so that it is no error in the log. */
    sql = xasprintf("DO $do$ BEGIN CREATE TABLE IF NOT EXISTS %s (\n  key text NOT NULL PRIMARY "
                    "KEY,\n  value text NOT NULL\n); EXCEPTION WHEN duplicate_table OR "
                    "unique_violation THEN NULL; END $do$",
                    s->meta_table);
    for (int i = 0; i < 3; i++) {
        rc = db_query(db, sql, 0, NULL, NULL);
        if (rc != TODO_ECONFLICT)
            break;
    }
    if (rc != 0) {
        db_err(err, db, rc, "failed to create metadata table");
        goto out;
    }
    free(sql);
    sql = xasprintf("INSERT INTO %s (key, value) VALUES ('lock', 'lock') "
                    "ON CONFLICT (key) DO NOTHING",
                    s->meta_table);
    rc = db_query(db, sql, 0, NULL, NULL);
    if (rc != 0) {
        db_err(err, db, rc, "failed to ensure lock row 'lock' exists");
        goto out;
    }
    rc = db_tx(db, migrate_locked, &a);
    if (rc != 0) {
        if (!err[0])
            db_err(err, db, rc, "failed to perform migrations");
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    s->migrated = true;
    pthread_mutex_unlock(&s->mu);
out:
    free(sql);
    return rc;
}

/* A connection with the tables in place (created on first use when start-up could not). */
static int ready_db(state_store_t *s, db_t **out, char err[STATE_ERR_MAX])
{
    db_t *db = acquire(s);
    int rc = migrate(s, db, err);
    if (rc != 0) {
        release(s, db);
        return rc;
    }
    *out = db;
    return 0;
}

/* ---- Clean-up ---- */

int state_store_cleanup(state_store_t *s, int64_t *deleted)
{
    int rc;
    db_t *db = NULL;
    PGresult *res = NULL;
    char *sql = NULL, interval[24], err[STATE_ERR_MAX];
    const char *p[] = {interval};

    *deleted = -1;
    if (s->cleanup_ms <= 0)
        return 0; /* clean-up disabled: v2 has no garbage collector then */
    rc = ready_db(s, &db, err);
    if (rc != 0)
        goto out;
    /* Only when the last clean-up (by any sidecar) is older than the interval, less 100 ms. */
    snprintf(interval, sizeof(interval), "%" PRId64, s->cleanup_ms - 100);
    sql = xasprintf("INSERT INTO %1$s (key, value) VALUES ('last-cleanup-state-v2-%2$s', "
                    "now()::text) ON CONFLICT (key) DO UPDATE SET value = now()::text "
                    "WHERE (EXTRACT('epoch' FROM now() - %1$s.value::timestamp with time zone) "
                    "* 1000)::bigint > $1",
                    s->meta_table, s->prefix);
    rc = db_query(db, sql, 1, p, &res);
    if (rc != 0)
        goto out;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        goto out;
    PQclear(res);
    res = NULL;
    free(sql);
    sql = xasprintf("DELETE FROM %s WHERE expires_at IS NOT NULL AND expires_at < now()", s->table);
    rc = db_query(db, sql, 0, NULL, &res);
    if (rc != 0)
        goto out;
    *deleted = strtoll(PQcmdTuples(res), NULL, 10);
    log_info("state", "Removed %" PRId64 " expired rows", *deleted);
out:
    PQclear(res);
    free(sql);
    release(s, db);
    return rc;
}

static void *gc_main(void *arg)
{
    state_store_t *s = arg;
    struct timespec until;

    log_info("state", "Schedule expired data clean up every %" PRId64 " ms", s->cleanup_ms);
    pthread_mutex_lock(&s->mu);
    while (!s->gc_stop) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += s->cleanup_ms / 1000;
        until.tv_nsec += (s->cleanup_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!s->gc_stop && pthread_cond_timedwait(&s->gc_cond, &s->mu, &until) == 0) {
        }
        if (s->gc_stop)
            break;
        pthread_mutex_unlock(&s->mu);
        int64_t deleted;
        if (state_store_cleanup(s, &deleted) != 0)
            log_warn("state", "Error removing expired data from %s", s->table);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- Life cycle ---- */

int state_store_new(const state_store_config_t *cfg, state_store_t **out, char err[STATE_ERR_MAX])
{
    int rc = TODO_EBAD_REQUEST;
    state_store_t *s = NULL;
    db_t *db = NULL;
    pthread_condattr_t ca;

    *out = NULL;
    err[0] = '\0';
    if (!cfg->connection_string || !*cfg->connection_string) {
        set_err(err, "missing connection string");
        goto out;
    }
    s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->gc_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->url = xstrdup(cfg->connection_string);
    s->prefix = xstrdup(cfg->table_prefix ? cfg->table_prefix : "");
    s->table = xasprintf("%sstate", s->prefix);
    s->meta_table = xstrdup(cfg->metadata_table ? cfg->metadata_table : "dapr_metadata");
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 20000;
    s->cleanup_ms = cfg->cleanup_interval_ms > 0 ? cfg->cleanup_interval_ms : 0;
    if (!valid_table_name(s->table) || !valid_table_name(s->meta_table)) {
        set_err(err, "invalid table name '%s' or '%s': letters, digits, '_' and '.' only", s->table,
                s->meta_table);
        goto out;
    }
    db = acquire(s);
    rc = db_connect(db);
    if (rc != 0) {
        set_err(err, "failed to connect to the database");
        goto out;
    }
    rc = migrate(s, db, err);
    if (rc != 0)
        goto out;
    if (s->cleanup_ms > 0) {
        if (pthread_create(&s->gc, NULL, gc_main, s) != 0) {
            set_err(err, "cannot start the clean-up thread");
            rc = TODO_EINTERNAL;
            goto out;
        }
        s->gc_running = true;
    }
    release(s, db);
    db = NULL;
    *out = s;
    s = NULL;
    rc = 0;
out:
    if (s && db)
        release(s, db);
    state_store_free(s);
    return rc;
}

void state_store_free(state_store_t *s)
{
    if (!s)
        return;
    if (s->gc_running) {
        pthread_mutex_lock(&s->mu);
        s->gc_stop = true;
        pthread_cond_broadcast(&s->gc_cond);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->gc, NULL);
    }
    for (size_t i = 0; i < s->nidle; i++)
        db_free(s->idle[i]);
    pthread_cond_destroy(&s->gc_cond);
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s->table);
    free(s->meta_table);
    free(s->prefix);
    free(s);
}

const char *state_store_table(const state_store_t *s)
{
    return s->table;
}

/* ---- Items ---- */

void state_item_dispose(state_item_t *it)
{
    if (!it)
        return;
    free(it->key);
    free(it->value);
    memset(it, 0, sizeof(*it));
}

void state_items_free(state_item_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        state_item_dispose(&items[i]);
    free(items);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Fills it from a row of (key, encode(value,'hex'), etag, expires) at row r. */
static void read_row(const PGresult *res, int r, state_item_t *it)
{
    const char *hex = PQgetvalue(res, r, 1);
    size_t n = strlen(hex) / 2;

    it->key = xstrdup(PQgetvalue(res, r, 0));
    it->found = true;
    it->value = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        it->value[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    it->value[n] = '\0';
    it->value_len = n;
    snprintf(it->etag, sizeof(it->etag), "%s", PQgetvalue(res, r, 2));
    snprintf(it->expires, sizeof(it->expires), "%s",
             PQgetisnull(res, r, 3) ? "" : PQgetvalue(res, r, 3));
}

#define SELECT_COLS                           \
    "key, encode(value, 'hex'), etag::text, " \
    "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

int state_store_get(state_store_t *s, const char *key, state_item_t *out, char err[STATE_ERR_MAX])
{
    int rc;
    db_t *db = NULL;
    PGresult *res = NULL;
    char *sql = NULL;
    const char *p[] = {key};

    memset(out, 0, sizeof(*out));
    if (!*key) {
        set_err(err, "missing key in get operation");
        rc = TODO_EBAD_REQUEST;
        goto out;
    }
    rc = ready_db(s, &db, err);
    if (rc != 0)
        goto out;
    sql = xasprintf("SELECT " SELECT_COLS " FROM %s WHERE key = $1 "
                    "AND (expires_at IS NULL OR expires_at >= now())",
                    s->table);
    rc = db_query(db, sql, 1, p, &res);
    if (rc != 0) {
        db_err(err, db, rc, "get");
        goto out;
    }
    if (PQntuples(res) > 0)
        read_row(res, 0, out);
    else
        out->key = xstrdup(key);
out:
    PQclear(res);
    free(sql);
    release(s, db);
    return rc;
}

/* A text[] literal of keys: {"a","b"} with '"' and '\' escaped. */
static int array_literal(const char *const *keys, size_t n, buf_t *b)
{
    int rc = buf_puts(b, "{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = buf_puts(b, i ? ",\"" : "\"");
        for (const char *k = keys[i]; rc == 0 && *k; k++) {
            if (*k == '"' || *k == '\\')
                rc = buf_append(b, "\\", 1);
            if (rc == 0)
                rc = buf_append(b, k, 1);
        }
        if (rc == 0)
            rc = buf_puts(b, "\"");
    }
    if (rc == 0)
        rc = buf_puts(b, "}");
    return rc;
}

int state_store_bulk_get(state_store_t *s, const char *const *keys, size_t n, state_item_t **out,
                         size_t *nout, char err[STATE_ERR_MAX])
{
    int rc = 0;
    db_t *db = NULL;
    PGresult *res = NULL;
    char *sql = NULL;
    buf_t arr;
    state_item_t *items = NULL;
    size_t count = 0;

    buf_init(&arr, 0);
    *out = NULL;
    *nout = 0;
    if (n == 0)
        goto out;
    rc = array_literal(keys, n, &arr);
    if (rc != 0)
        goto out;
    rc = ready_db(s, &db, err);
    if (rc != 0)
        goto out;
    sql = xasprintf("SELECT " SELECT_COLS " FROM %s WHERE key = ANY($1) "
                    "AND (expires_at IS NULL OR expires_at >= now())",
                    s->table);
    {
        const char *p[] = {arr.data};
        rc = db_query(db, sql, 1, p, &res);
    }
    if (rc != 0) {
        db_err(err, db, rc, "bulk get");
        goto out;
    }
    items = xcalloc(n, sizeof(*items));
    /* v2's BulkGet: the rows found, then each requested key not found (DAPR-CONTRACT §5.1). */
    for (int r = 0; r < PQntuples(res) && count < n; r++)
        read_row(res, r, &items[count++]);
    for (size_t i = 0; i < n && count < n; i++) {
        bool found = false;
        for (int r = 0; r < PQntuples(res) && !found; r++)
            found = strcmp(PQgetvalue(res, r, 0), keys[i]) == 0;
        if (!found)
            items[count++].key = xstrdup(keys[i]);
    }
    *out = items;
    *nout = count;
    items = NULL;
out:
    state_items_free(items, n);
    PQclear(res);
    free(sql);
    buf_dispose(&arr);
    release(s, db);
    return rc;
}

/* ---- Writes ---- */

static bool option_ok(const char *v, const char *a, const char *b)
{
    return !v || !*v || strcmp(v, a) == 0 || strcmp(v, b) == 0;
}

/* v2's doSet on db (inside or outside a transaction). */
static int do_set(state_store_t *s, db_t *db, const state_set_t *req, char err[STATE_ERR_MAX])
{
    int rc = TODO_EBAD_REQUEST;
    PGresult *res = NULL;
    char *sql = NULL, *hex = NULL, expires[64], etag[STATE_ETAG_LEN];
    bool has_ttl = false, has_etag = req->etag && *req->etag;
    int64_t ttl = 0;
    static const char digits[] = "0123456789abcdef";

    if (!req->key || !*req->key) {
        set_err(err, "missing key in set operation");
        goto out;
    }
    if (!option_ok(req->consistency, "strong", "eventual")) {
        set_err(err, "unrecognized consistency model '%s'", req->consistency);
        goto out;
    }
    if (!option_ok(req->concurrency, "first-write", "last-write")) {
        set_err(err, "unrecognized concurrency model '%s'", req->concurrency);
        goto out;
    }
    {
        char terr[STATE_ERR_MAX];
        if (state_parse_ttl(req->ttl, &has_ttl, &ttl, terr) != 0) {
            set_err(err, "error parsing TTL: %s", terr);
            goto out;
        }
    }
    if (has_etag) {
        char eerr[STATE_ERR_MAX];
        if (!state_parse_etag(req->etag, etag, eerr)) {
            /* v2: an ETag that is not a UUID is an ETag mismatch (409), DAPR-CONTRACT §5.5. */
            set_err(err, "possible etag mismatch. error from state store: %s", eerr);
            rc = TODO_ECONFLICT;
            goto out;
        }
    }
    if (has_ttl && ttl > 0)
        snprintf(expires, sizeof(expires), "now() + interval '%" PRId64 " seconds'", ttl);
    else
        snprintf(expires, sizeof(expires), "NULL");
    hex = xmalloc(2 * req->value_len + 3);
    hex[0] = '\\';
    hex[1] = 'x';
    for (size_t i = 0; i < req->value_len; i++) {
        hex[2 + 2 * i] = digits[(unsigned char)req->value[i] >> 4];
        hex[3 + 2 * i] = digits[(unsigned char)req->value[i] & 15];
    }
    hex[2 + 2 * req->value_len] = '\0';
    if (!has_etag) {
        /* An upsert either way: with first-write it may only replace an expired row. */
        bool first = req->concurrency && strcmp(req->concurrency, "first-write") == 0;
        const char *p[] = {req->key, hex};
        sql = xasprintf("INSERT INTO %s AS t (key, value, etag, expires_at) "
                        "VALUES ($1, $2, gen_random_uuid(), %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = now(), "
                        "etag = gen_random_uuid(), expires_at = %s%s",
                        s->table, expires, expires,
                        first ? " WHERE (t.expires_at IS NOT NULL AND t.expires_at < now())" : "");
        rc = db_query(db, sql, 2, p, &res);
    } else {
        const char *p[] = {req->key, hex, etag};
        sql = xasprintf("UPDATE %s SET value = $2, updated_at = now(), etag = gen_random_uuid(), "
                        "expires_at = %s WHERE key = $1 AND etag = $3 "
                        "AND (expires_at IS NULL OR expires_at >= now())",
                        s->table, expires);
        rc = db_query(db, sql, 3, p, &res);
    }
    if (rc != 0) {
        db_err(err, db, rc, "set");
        goto out;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        if (has_etag) {
            set_err(err, "possible etag mismatch. error from state store");
            rc = TODO_ECONFLICT;
        } else {
            /* DAPR-CONTRACT §5.3: first-write on an existing key is a 500, not a 409. */
            set_err(err, "no item was updated");
            rc = TODO_EINTERNAL;
        }
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    free(sql);
    free(hex);
    return rc;
}

/* v2's doDelete: an absent key is fine unless an ETag was given. */
static int do_delete(state_store_t *s, db_t *db, const state_del_t *req, char err[STATE_ERR_MAX])
{
    int rc = TODO_EBAD_REQUEST;
    PGresult *res = NULL;
    char *sql = NULL, etag[STATE_ETAG_LEN];
    bool has_etag = req->etag && *req->etag;

    if (!req->key || !*req->key) {
        set_err(err, "missing key in delete operation");
        goto out;
    }
    if (has_etag) {
        char eerr[STATE_ERR_MAX];
        if (!state_parse_etag(req->etag, etag, eerr)) {
            set_err(err, "possible etag mismatch. error from state store: %s", eerr);
            rc = TODO_ECONFLICT;
            goto out;
        }
        const char *p[] = {req->key, etag};
        sql = xasprintf("DELETE FROM %s WHERE key = $1 AND etag = $2", s->table);
        rc = db_query(db, sql, 2, p, &res);
    } else {
        const char *p[] = {req->key};
        sql = xasprintf("DELETE FROM %s WHERE key = $1", s->table);
        rc = db_query(db, sql, 1, p, &res);
    }
    if (rc != 0) {
        db_err(err, db, rc, "delete");
        goto out;
    }
    if (has_etag && strcmp(PQcmdTuples(res), "1") != 0) {
        set_err(err, "possible etag mismatch. error from state store");
        rc = TODO_ECONFLICT;
        goto out;
    }
    rc = 0;
out:
    PQclear(res);
    free(sql);
    return rc;
}

int state_store_set(state_store_t *s, const state_set_t *req, char err[STATE_ERR_MAX])
{
    db_t *db = NULL;
    int rc = ready_db(s, &db, err);
    if (rc == 0)
        rc = do_set(s, db, req, err);
    release(s, db);
    return rc;
}

int state_store_delete(state_store_t *s, const state_del_t *req, char err[STATE_ERR_MAX])
{
    db_t *db = NULL;
    int rc = ready_db(s, &db, err);
    if (rc == 0)
        rc = do_delete(s, db, req, err);
    release(s, db);
    return rc;
}

typedef struct {
    state_store_t *s;
    const state_op_t *ops;
    size_t n;
    char *err;
} tx_arg_t;

static int tx_ops(db_t *db, void *argp)
{
    tx_arg_t *a = argp;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < a->n; i++)
        rc = a->ops[i].is_delete ? do_delete(a->s, db, &a->ops[i].del, a->err)
                                 : do_set(a->s, db, &a->ops[i].set, a->err);
    return rc;
}

int state_store_transact(state_store_t *s, const state_op_t *ops, size_t n, char err[STATE_ERR_MAX])
{
    db_t *db = NULL;
    int rc = 0;
    tx_arg_t a = {s, ops, n, err};

    if (n == 0)
        goto out;
    rc = ready_db(s, &db, err);
    if (rc != 0)
        goto out;
    err[0] = '\0';
    if (n == 1) {
        rc = tx_ops(db, &a); /* v2 runs a single operation without a transaction */
        goto out;
    }
    rc = db_tx(db, tx_ops, &a);
    if (rc != 0 && !err[0])
        db_err(err, db, rc, "transaction");
out:
    release(s, db);
    return rc;
}

/* ---- Pure helpers ---- */

bool state_key_legal(const char *key, char err[STATE_ERR_MAX])
{
    if (strstr(key, STATE_SEPARATOR)) {
        set_err(err, "input key/keyPrefix '%s' can't contain '%s'", key, STATE_SEPARATOR);
        return false;
    }
    return true;
}

int state_key_prefix(const char *strategy, const char *store, const char *app_id, const char *ns,
                     char **out, char err[STATE_ERR_MAX])
{
    char *lower = NULL;
    int rc = TODO_EBAD_REQUEST;

    *out = NULL;
    if (!strategy || !*strategy) {
        lower = xstrdup("appid");
    } else {
        if (!state_key_legal(strategy, err))
            goto out;
        lower = xstrdup(strategy);
        for (char *p = lower; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    if (strcmp(lower, "none") == 0)
        *out = xstrdup("");
    else if (strcmp(lower, "name") == 0)
        *out = xasprintf("%s" STATE_SEPARATOR, store);
    else if (strcmp(lower, "appid") == 0)
        *out = app_id && *app_id ? xasprintf("%s" STATE_SEPARATOR, app_id) : xstrdup("");
    else if (strcmp(lower, "namespace") == 0) {
        if (!app_id || !*app_id)
            *out = xstrdup("");
        else if (ns && *ns)
            *out = xasprintf("%s.%s" STATE_SEPARATOR, ns, app_id);
        else
            *out = xasprintf("%s" STATE_SEPARATOR, app_id);
    } else
        *out = xasprintf("%s" STATE_SEPARATOR, lower);
    rc = 0;
out:
    free(lower);
    return rc;
}

char *state_original_key(const char *stored)
{
    const char *a = strstr(stored, STATE_SEPARATOR), *b;
    if (!a)
        return xstrdup(stored);
    a += strlen(STATE_SEPARATOR);
    b = strstr(a, STATE_SEPARATOR);
    return b ? xstrndup(a, (size_t)(b - a)) : xstrdup(a);
}

int state_parse_ttl(const char *v, bool *has, int64_t *seconds, char err[STATE_ERR_MAX])
{
    const char *p = v;
    bool neg = false;
    uint64_t acc = 0;
    bool range = false;

    *has = false;
    if (!v || !*v)
        return 0;
    /* strconv.ParseInt(v, 10, 0): optional sign, then decimal digits only. */
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!*p)
        goto syntax;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            goto syntax;
        if (acc > (UINT64_MAX - 9) / 10)
            range = true;
        else
            acc = acc * 10 + (uint64_t)(*p - '0');
    }
    if (range || acc > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
        set_err(err,
                "incorrect value for metadata 'ttlInSeconds': strconv.ParseInt: parsing "
                "\"%s\": value out of range",
                v);
        return TODO_EBAD_REQUEST;
    }
    if ((neg && acc > 1) || (!neg && acc > INT32_MAX)) {
        set_err(err, "incorrect value for metadata 'ttlInSeconds': must be -1 or greater");
        return TODO_EBAD_REQUEST;
    }
    *has = true;
    *seconds = neg ? -(int64_t)acc : (int64_t)acc;
    return 0;
syntax:
    set_err(err,
            "incorrect value for metadata 'ttlInSeconds': strconv.ParseInt: parsing \"%s\": "
            "invalid syntax",
            v);
    return TODO_EBAD_REQUEST;
}

bool state_parse_etag(const char *s, char out[STATE_ETAG_LEN], char err[STATE_ERR_MAX])
{
    size_t n = strlen(s);
    char hex[33];
    size_t h = 0;
    const char *p = s;

    switch (n) {
    case 36: /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */
        break;
    case 45: /* urn:uuid:xxxxxxxx-… */
        if (strncasecmp(s, "urn:uuid:", 9) != 0) {
            set_err(err, "invalid urn prefix: \"%.9s\"", s);
            return false;
        }
        p = s + 9;
        break;
    case 38: /* {xxxxxxxx-…}: like google/uuid, the enclosing characters are not checked */
        p = s + 1;
        break;
    case 32: /* 32 hex digits */
        for (size_t i = 0; i < 32; i++) {
            if (hexval(s[i]) < 0)
                goto format;
            hex[h++] = (char)tolower((unsigned char)s[i]);
        }
        goto done;
    default:
        set_err(err, "invalid UUID length: %zu", n);
        return false;
    }
    if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-')
        goto format;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            continue;
        if (hexval(p[i]) < 0)
            goto format;
        hex[h++] = (char)tolower((unsigned char)p[i]);
    }
done:
    hex[32] = '\0';
    snprintf(out, STATE_ETAG_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    return true;
format:
    set_err(err, "invalid UUID format");
    return false;
}

int state_json_string(const char *s, size_t len, buf_t *out)
{
    static const char hexd[] = "0123456789abcdef";
    int rc = buf_append(out, "\"", 1);

    for (size_t i = 0; rc == 0 && i < len;) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                rc = buf_append(out, s + i, 1);
            } else if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                rc = buf_append(out, esc, 2);
            } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
                esc[0] = '\\';
                esc[1] = c == '\n'   ? 'n'
                         : c == '\r' ? 'r'
                         : c == '\t' ? 't'
                         : c == '\b' ? 'b'
                                     : 'f';
                rc = buf_append(out, esc, 2);
            } else {
                snprintf(esc, sizeof(esc), "\\u00%c%c", hexd[c >> 4], hexd[c & 15]);
                rc = buf_append(out, esc, 6);
            }
            i++;
            continue;
        }
        /* U+2028 and U+2029 are escaped; other (valid, jansson-checked) UTF-8 passes. */
        if (i + 2 < len && c == 0xe2 && (unsigned char)s[i + 1] == 0x80 &&
            ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
            rc = buf_puts(out, (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
            i += 3;
            continue;
        }
        rc = buf_append(out, s + i, 1);
        i++;
    }
    if (rc == 0)
        rc = buf_append(out, "\"", 1);
    return rc;
}

/* Go's strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json uses it. */
static int go_float(double f, buf_t *out)
{
    char tmp[40], digits[24], res[400];
    int exp10 = 0, nd = 0, prec;
    double a = fabs(f);

    if (f == 0)
        return buf_puts(out, signbit(f) ? "-0" : "0");
    /* Shortest digits that read back as f. */
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, a);
        if (strtod(tmp, NULL) == a)
            break;
    }
    nd = 0;
    for (const char *p = tmp; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p))
            digits[nd++] = *p;
    digits[nd] = '\0';
    exp10 = atoi(strchr(tmp, 'e') + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = '\0';
    size_t r = 0;
    if (signbit(f))
        res[r++] = '-';
    if (a < 1e-6 || a >= 1e21) {
        res[r++] = digits[0];
        if (nd > 1) {
            res[r++] = '.';
            for (int i = 1; i < nd; i++)
                res[r++] = digits[i];
        }
        /* Go writes at least two exponent digits, then json drops a leading 0 of e-0X. */
        int ae = exp10 < 0 ? -exp10 : exp10;
        if (exp10 < 0)
            r += (size_t)snprintf(res + r, sizeof(res) - r, "e-%d", ae);
        else
            r += (size_t)snprintf(res + r, sizeof(res) - r, "e+%02d", ae);
    } else if (exp10 >= 0) {
        for (int i = 0; i <= exp10; i++)
            res[r++] = i < nd ? digits[i] : '0';
        if (nd > exp10 + 1) {
            res[r++] = '.';
            for (int i = exp10 + 1; i < nd; i++)
                res[r++] = digits[i];
        }
    } else {
        res[r++] = '0';
        res[r++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            res[r++] = '0';
        for (int i = 0; i < nd; i++)
            res[r++] = digits[i];
    }
    return buf_append(out, res, r);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int state_json_marshal(const json_t *v, buf_t *out)
{
    int rc = 0;

    switch (json_typeof(v)) {
    case JSON_NULL:
        return buf_puts(out, "null");
    case JSON_TRUE:
        return buf_puts(out, "true");
    case JSON_FALSE:
        return buf_puts(out, "false");
    case JSON_INTEGER:
        return go_float((double)json_integer_value(v), out);
    case JSON_REAL:
        return go_float(json_real_value(v), out);
    case JSON_STRING:
        return state_json_string(json_string_value(v), json_string_length(v), out);
    case JSON_ARRAY:
        rc = buf_puts(out, "[");
        for (size_t i = 0; rc == 0 && i < json_array_size(v); i++) {
            if (i)
                rc = buf_puts(out, ",");
            if (rc == 0)
                rc = state_json_marshal(json_array_get(v, i), out);
        }
        return rc == 0 ? buf_puts(out, "]") : rc;
    case JSON_OBJECT: {
        /* Go marshals map[string]any with its keys sorted. */
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        rc = buf_puts(out, "{");
        for (i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = buf_puts(out, ",");
            if (rc == 0)
                rc = state_json_string(keys[i], strlen(keys[i]), out);
            if (rc == 0)
                rc = buf_puts(out, ":");
            if (rc == 0)
                rc = state_json_marshal(json_object_get(v, keys[i]), out);
        }
        free(keys);
        return rc == 0 ? buf_puts(out, "}") : rc;
    }
    }
    return TODO_EINTERNAL;
}
