/* Jobs in PostgreSQL, per app id and namespace (the Scheduler's key app||ns||appid||name,
 * DAPR-CONTRACT §6.1), with lease-based claiming of due triggers (FOR UPDATE SKIP LOCKED) so
 * that each occurrence reaches one replica, and the occurrence arithmetic of §6.1/§6.3. */
#include "jobs_store.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/db.h"
#include "todo/log.h"

#define JOBS_SCHEMA "dapr_scheduler"
#define JOBS_COLUMNS                                                                     \
    "name, schedule, due_time, repeats, ttl, data, failure_policy, created_us, due_us, " \
    "expires_us, tick_us, attempt, fired_count"

struct jobs_store {
    char *app_id;
    char *ns;
    char *owner;
    db_t *db;
    pthread_mutex_t mu; /* guards db */
};

static const db_migration_t migrations[] = {
    {1, "jobs",
     "CREATE TABLE " JOBS_SCHEMA ".jobs ("
     " app_id text NOT NULL,"
     " namespace text NOT NULL,"
     " name text NOT NULL,"
     " schedule text,"
     " due_time text,"  /* as submitted */
     " repeats bigint," /* NULL = unlimited */
     " ttl text,"       /* as submitted */
     " data text,"      /* normalised JSON of the value; NULL = none */
     " failure_policy text NOT NULL,"
     " created_us bigint NOT NULL," /* times: microseconds since the epoch */
     " due_us bigint,"
     " expires_us bigint,"
     " tick_us bigint NOT NULL,"      /* the occurrence being fired next */
     " next_fire_us bigint NOT NULL," /* its next delivery attempt (≥ tick_us) */
     " attempt integer NOT NULL DEFAULT 0,"
     " fired_count bigint NOT NULL DEFAULT 0,"
     " lease_owner text,"
     " lease_token text,"
     " lease_until_us bigint,"
     " PRIMARY KEY (app_id, namespace, name));"
     "CREATE INDEX jobs_due ON " JOBS_SCHEMA ".jobs (app_id, namespace, next_fire_us);"},
};

void jobs_job_dispose(jobs_job_t *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->schedule);
    free(j->due_time);
    free(j->ttl);
    free(j->data);
    free(j->failure_policy);
    memset(j, 0, sizeof(*j));
}

void jobs_trigger_dispose(jobs_trigger_t *t)
{
    if (t)
        jobs_job_dispose(&t->job);
}

jobs_store_t *jobs_store_new(const char *url, const char *app_id, const char *ns, const char *owner)
{
    jobs_store_t *st = xcalloc(1, sizeof(*st));
    st->owner = xstrdup(owner);
    st->app_id = xstrdup(app_id);
    st->ns = xstrdup(ns);
    st->db = db_new(url);
    db_set_application_name(st->db, "dapr-sidecar-jobs");
    pthread_mutex_init(&st->mu, NULL);
    return st;
}

void jobs_store_free(jobs_store_t *st)
{
    if (!st)
        return;
    db_free(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st->app_id);
    free(st->ns);
    free(st->owner);
    free(st);
}

int jobs_store_open(jobs_store_t *st)
{
    int rc;
    pthread_mutex_lock(&st->mu);
    rc = db_connect(st->db);
    if (rc == 0)
        rc =
            db_migrate(st->db, JOBS_SCHEMA, migrations, sizeof(migrations) / sizeof(migrations[0]));
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* ---- occurrences ---- */

int64_t jobs_first_tick(const jobs_job_t *j)
{
    cron_schedule_t *s = NULL;
    int64_t t = 0;
    if (j->due_usec)
        return j->due_usec; /* dueTime: the first trigger, even with a schedule */
    if (j->schedule && cron_parse(j->schedule, &s, NULL) == 0)
        t = cron_next(s, j->created_usec);
    cron_free(s);
    return t;
}

int64_t jobs_next_tick(const jobs_job_t *j, int64_t tick_usec, int64_t done)
{
    cron_schedule_t *s = NULL;
    int64_t t = 0;
    if (j->repeats > 0 && done >= j->repeats)
        return 0;
    if (!j->schedule || cron_parse(j->schedule, &s, NULL) != 0)
        return 0; /* one-shot */
    t = cron_next(s, tick_usec);
    cron_free(s);
    if (t && j->expires_usec && t > j->expires_usec)
        t = 0;
    return t;
}

/* ---- JSON values as protojson prints google.protobuf.Value ---- */

/* Appends to an unlimited buffer (cannot fail: allocation failure aborts). */
static void out_bytes(buf_t *b, const char *s, size_t n)
{
    if (buf_append(b, s, n) != 0)
        abort();
}

static void out_str(buf_t *b, const char *s)
{
    out_bytes(b, s, strlen(s));
}

/* Go's strconv.AppendFloat(n, 'f' or 'e', -1, 64) as encoding/json and protojson use it. */
static void format_double(buf_t *b, double n)
{
    char digits[32], tmp[64];
    int exp10 = 0, p;
    double a = fabs(n);
    if (n == 0) {
        out_str(b, "0");
        return;
    }
    if (!isfinite(n)) { /* not representable in JSON; protojson prints these as strings */
        out_str(b, isnan(n) ? "\"NaN\"" : n > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    for (p = 1; p <= 17; p++) { /* shortest digits that round-trip */
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, a);
        if (strtod(tmp, NULL) == a)
            break;
    }
    /* tmp = d[.ddd]e±XX */
    {
        size_t nd = 0;
        const char *q = tmp;
        for (; *q && *q != 'e'; q++)
            if (*q != '.')
                digits[nd++] = *q;
        digits[nd] = '\0';
        exp10 = atoi(q + 1);
        while (nd > 1 && digits[nd - 1] == '0')
            digits[--nd] = '\0';
    }
    if (n < 0)
        out_str(b, "-");
    size_t nd = strlen(digits);
    if (a < 1e-6 || a >= 1e21) {
        out_bytes(b, digits, 1);
        if (nd > 1) {
            out_str(b, ".");
            out_str(b, digits + 1);
        }
        snprintf(tmp, sizeof(tmp), "e%c%d", exp10 < 0 ? '-' : '+', abs(exp10));
        out_str(b, tmp);
        return;
    }
    if (exp10 < 0) {
        out_str(b, "0.");
        for (int i = 0; i < -exp10 - 1; i++)
            out_str(b, "0");
        out_str(b, digits);
    } else if ((size_t)exp10 + 1 >= nd) {
        out_str(b, digits);
        for (size_t i = nd; i < (size_t)exp10 + 1; i++)
            out_str(b, "0");
    } else {
        out_bytes(b, digits, (size_t)exp10 + 1);
        out_str(b, ".");
        out_str(b, digits + exp10 + 1);
    }
}

/* Length of the valid UTF-8 sequence at p (1–4), or 0 when it is not valid. */
static size_t utf8_len(const unsigned char *p)
{
    size_t n;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void jobs_json_quote(buf_t *b, const char *s, bool html)
{
    char esc[8];
    out_str(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            out_str(b, "\\ufffd");
            p++;
            continue;
        }
        if (n == 3 && html && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            out_str(b, p[2] == 0xa8 ? "\\u2028" : "\\u2029");
        } else if (n > 1) {
            if (buf_append(b, p, n) != 0)
                abort();
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            esc[2] = '\0';
            out_str(b, esc);
        } else if (*p == '\n' || *p == '\r' || *p == '\t' || *p == '\b' || *p == '\f') {
            out_str(b, *p == '\n'   ? "\\n"
                       : *p == '\r' ? "\\r"
                       : *p == '\t' ? "\\t"
                       : *p == '\b' ? "\\b"
                                    : "\\f");
        } else if (*p < 0x20 || (html && (*p == '<' || *p == '>' || *p == '&'))) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            out_str(b, esc);
        } else {
            if (buf_append(b, p, 1) != 0)
                abort();
        }
        p += n;
    }
    out_str(b, "\"");
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void value_json(buf_t *b, const json_t *v, int depth)
{
    if (depth > 4096) { /* deeper than jansson parses; never reached */
        out_str(b, "null");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        out_str(b, "{");
        for (i = 0; i < n; i++) {
            if (i)
                out_str(b, ",");
            jobs_json_quote(b, keys[i], false);
            out_str(b, ":");
            value_json(b, json_object_get(v, keys[i]), depth + 1);
        }
        out_str(b, "}");
        free(keys);
        break;
    }
    case JSON_ARRAY:
        out_str(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                out_str(b, ",");
            value_json(b, json_array_get(v, i), depth + 1);
        }
        out_str(b, "]");
        break;
    case JSON_INTEGER:
        format_double(b, (double)json_integer_value(v));
        break;
    case JSON_REAL:
        format_double(b, json_real_value(v));
        break;
    case JSON_STRING:
        jobs_json_quote(b, json_string_value(v), false);
        break;
    case JSON_TRUE:
        out_str(b, "true");
        break;
    case JSON_FALSE:
        out_str(b, "false");
        break;
    default:
        out_str(b, "null");
        break;
    }
}

char *jobs_value_json(const json_t *v)
{
    buf_t b;
    char *out;
    buf_init(&b, 0);
    value_json(&b, v, 0);
    out = buf_steal(&b);
    buf_dispose(&b);
    return out;
}

void jobs_failure_policy_read(const char *json, jobs_failure_policy_t *out)
{
    json_t *v = NULL, *c;
    out->drop = false;
    out->interval_usec = 1000000; /* default: constant 1 s × 3 (§6.3) */
    out->max_retries = 3;
    if (!json || json_parse(json, strlen(json), true, &v) != 0)
        return;
    if (json_object_get(v, "drop")) {
        out->drop = true;
    } else if ((c = json_object_get(v, "constant")) && json_is_object(c)) {
        json_t *iv = json_object_get(c, "interval"), *mr = json_object_get(c, "maxRetries");
        int64_t usec = 0;
        out->interval_usec = 0;
        if (json_is_string(iv) && cron_parse_go_duration(json_string_value(iv), &usec) == 0)
            out->interval_usec = usec < 0 ? 0 : usec;
        out->max_retries = json_is_integer(mr) ? json_integer_value(mr) : -1;
    }
    json_decref(v);
}

/* ---- rows ---- */

static char *col_str(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

static int64_t col_i64(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Reads the JOBS_COLUMNS of row into t. */
static void read_row(PGresult *res, int row, jobs_trigger_t *t)
{
    jobs_job_t *j = &t->job;
    memset(t, 0, sizeof(*t));
    j->name = col_str(res, row, 0);
    j->schedule = col_str(res, row, 1);
    j->due_time = col_str(res, row, 2);
    j->repeats = PQgetisnull(res, row, 3) ? -1 : col_i64(res, row, 3);
    j->ttl = col_str(res, row, 4);
    j->data = col_str(res, row, 5);
    j->failure_policy = col_str(res, row, 6);
    j->created_usec = col_i64(res, row, 7);
    j->due_usec = col_i64(res, row, 8);
    j->expires_usec = col_i64(res, row, 9);
    t->tick_usec = col_i64(res, row, 10);
    t->attempt = (int)col_i64(res, row, 11);
    t->fired_count = col_i64(res, row, 12);
}

static char *i64_or_null(char buf[24], int64_t v, bool present)
{
    if (!present)
        return NULL;
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

/* ---- operations ---- */

int jobs_store_put(jobs_store_t *st, const jobs_job_t *j, bool overwrite)
{
    static const char insert[] =
        "INSERT INTO " JOBS_SCHEMA ".jobs (app_id, namespace, name, schedule, due_time, repeats, "
        "ttl, data, failure_policy, created_us, due_us, expires_us, tick_us, next_fire_us) "
        "VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8, $9, $10::bigint, $11::bigint, "
        "$12::bigint, $13::bigint, $13::bigint) ON CONFLICT (app_id, namespace, name) ";
    static const char do_nothing[] = "DO NOTHING";
    static const char do_update[] =
        "DO UPDATE SET schedule = EXCLUDED.schedule, due_time = EXCLUDED.due_time, "
        "repeats = EXCLUDED.repeats, ttl = EXCLUDED.ttl, data = EXCLUDED.data, "
        "failure_policy = EXCLUDED.failure_policy, created_us = EXCLUDED.created_us, "
        "due_us = EXCLUDED.due_us, expires_us = EXCLUDED.expires_us, tick_us = EXCLUDED.tick_us, "
        "next_fire_us = EXCLUDED.next_fire_us, attempt = 0, fired_count = 0, lease_owner = NULL, "
        "lease_token = NULL, lease_until_us = NULL";
    char sql[sizeof(insert) + sizeof(do_update)];
    char b_rep[24], b_cr[24], b_due[24], b_exp[24], b_tick[24];
    int64_t first = jobs_first_tick(j);
    PGresult *res = NULL;
    int rc;
    /* A job without any occurrence (e.g. a schedule with none in five years) is kept but never
     * fires, as the Scheduler keeps it. */
    if (first == 0)
        first = INT64_MAX;
    snprintf(sql, sizeof(sql), "%s%s", insert, overwrite ? do_update : do_nothing);
    const char *params[13] = {st->app_id,
                              st->ns,
                              j->name,
                              j->schedule,
                              j->due_time,
                              i64_or_null(b_rep, j->repeats, j->repeats >= 0),
                              j->ttl,
                              j->data,
                              j->failure_policy,
                              i64_or_null(b_cr, j->created_usec, true),
                              i64_or_null(b_due, j->due_usec, j->due_usec != 0),
                              i64_or_null(b_exp, j->expires_usec, j->expires_usec != 0),
                              i64_or_null(b_tick, first, true)};
    pthread_mutex_lock(&st->mu);
    rc = db_query(st->db, sql, 13, params, &res);
    pthread_mutex_unlock(&st->mu);
    if (rc == 0 && !overwrite && strcmp(PQcmdTuples(res), "0") == 0)
        rc = TODO_ECONFLICT;
    PQclear(res);
    return rc;
}

int jobs_store_get(jobs_store_t *st, const char *name, jobs_job_t *out)
{
    const char *params[3] = {st->app_id, st->ns, name};
    PGresult *res = NULL;
    jobs_trigger_t t;
    int rc;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->mu);
    rc = db_query(st->db,
                  "SELECT " JOBS_COLUMNS " FROM " JOBS_SCHEMA ".jobs"
                  " WHERE app_id = $1 AND namespace = $2 AND name = $3",
                  3, params, &res);
    pthread_mutex_unlock(&st->mu);
    if (rc != 0)
        goto out;
    if (PQntuples(res) != 1) {
        rc = TODO_ENOT_FOUND;
        goto out;
    }
    read_row(res, 0, &t);
    *out = t.job;
out:
    PQclear(res);
    return rc;
}

int jobs_store_delete(jobs_store_t *st, const char *name)
{
    const char *params[3] = {st->app_id, st->ns, name};
    int rc;
    pthread_mutex_lock(&st->mu);
    rc = db_query(st->db,
                  "DELETE FROM " JOBS_SCHEMA ".jobs WHERE app_id = $1 AND namespace = $2"
                  " AND name = $3",
                  3, params, NULL);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int jobs_store_claim(jobs_store_t *st, int64_t now_usec, int64_t lease_usec, jobs_trigger_t *out,
                     size_t max, size_t *n)
{
    char b_now[24], b_until[24], b_max[24], token[TODO_UUID_LEN];
    PGresult *res = NULL;
    int rc;
    *n = 0;
    todo_uuid_v4(token);
    const char *params[7] = {st->app_id,
                             st->ns,
                             i64_or_null(b_now, now_usec, true),
                             i64_or_null(b_until, now_usec + lease_usec, true),
                             i64_or_null(b_max, (int64_t)max, true),
                             token,
                             st->owner};
    pthread_mutex_lock(&st->mu);
    /* Occurrences past the ttl end the job without firing. */
    rc = db_query(st->db,
                  "DELETE FROM " JOBS_SCHEMA ".jobs WHERE app_id = $1 AND namespace = $2"
                  " AND expires_us IS NOT NULL AND tick_us > expires_us"
                  " AND (lease_until_us IS NULL OR lease_until_us < $3::bigint)",
                  3, params, NULL);
    if (rc == 0)
        /* DAPR-CONTRACT §6.3: one replica per trigger, never before it is due. A row locked by
         * another replica's claim is skipped; a lease that outlived its holder is taken over. */
        rc = db_query(st->db,
                      "WITH due AS (SELECT name FROM " JOBS_SCHEMA ".jobs"
                      " WHERE app_id = $1 AND namespace = $2 AND next_fire_us <= $3::bigint"
                      " AND (lease_until_us IS NULL OR lease_until_us < $3::bigint)"
                      " ORDER BY next_fire_us LIMIT $5::bigint FOR UPDATE SKIP LOCKED)"
                      " UPDATE " JOBS_SCHEMA ".jobs j SET lease_owner = $7, lease_token = $6,"
                      " lease_until_us = $4::bigint FROM due"
                      " WHERE j.app_id = $1 AND j.namespace = $2 AND j.name = due.name"
                      " RETURNING j.name, j.schedule, j.due_time, j.repeats, j.ttl, j.data,"
                      " j.failure_policy, j.created_us, j.due_us, j.expires_us, j.tick_us,"
                      " j.attempt, j.fired_count",
                      7, params, &res);
    pthread_mutex_unlock(&st->mu);
    if (rc != 0)
        goto out;
    for (int i = 0; i < PQntuples(res) && (size_t)i < max; i++) {
        read_row(res, i, &out[i]);
        memcpy(out[i].lease_token, token, sizeof(token));
        (*n)++;
    }
out:
    PQclear(res);
    return rc;
}

int jobs_store_finish(jobs_store_t *st, const jobs_trigger_t *t, bool success, int64_t now_usec)
{
    jobs_failure_policy_t fp;
    char b1[24], b2[24], b3[24];
    int rc;
    if (!success) {
        jobs_failure_policy_read(t->job.failure_policy, &fp);
        if (!fp.drop && (fp.max_retries < 0 || t->attempt < fp.max_retries)) {
            const char *params[6] = {st->app_id,
                                     st->ns,
                                     t->job.name,
                                     t->lease_token,
                                     i64_or_null(b1, now_usec + fp.interval_usec, true),
                                     NULL};
            pthread_mutex_lock(&st->mu);
            rc = db_query(st->db,
                          "UPDATE " JOBS_SCHEMA ".jobs SET attempt = attempt + 1,"
                          " next_fire_us = $5::bigint, lease_owner = NULL, lease_token = NULL,"
                          " lease_until_us = NULL WHERE app_id = $1 AND namespace = $2"
                          " AND name = $3 AND lease_token = $4",
                          5, params, NULL);
            pthread_mutex_unlock(&st->mu);
            return rc;
        }
    }
    /* The occurrence is done (delivered, or its retries are spent). */
    int64_t done = t->fired_count + 1;
    int64_t next = jobs_next_tick(&t->job, t->tick_usec, done);
    const char *params[6] = {st->app_id,
                             st->ns,
                             t->job.name,
                             t->lease_token,
                             i64_or_null(b2, next, true),
                             i64_or_null(b3, done, true)};
    (void)b1;
    pthread_mutex_lock(&st->mu);
    if (next == 0)
        rc = db_query(st->db,
                      "DELETE FROM " JOBS_SCHEMA ".jobs WHERE app_id = $1 AND namespace = $2"
                      " AND name = $3 AND lease_token = $4",
                      4, params, NULL);
    else
        rc = db_query(st->db,
                      "UPDATE " JOBS_SCHEMA ".jobs SET tick_us = $5::bigint,"
                      " next_fire_us = $5::bigint, attempt = 0, fired_count = $6::bigint,"
                      " lease_owner = NULL, lease_token = NULL, lease_until_us = NULL"
                      " WHERE app_id = $1 AND namespace = $2 AND name = $3 AND lease_token = $4",
                      6, params, NULL);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int jobs_store_renew(jobs_store_t *st, const char *token, int64_t until_usec)
{
    char b[24];
    const char *params[4] = {st->app_id, st->ns, token, i64_or_null(b, until_usec, true)};
    int rc;
    pthread_mutex_lock(&st->mu);
    rc = db_query(st->db,
                  "UPDATE " JOBS_SCHEMA ".jobs SET lease_until_us = $4::bigint"
                  " WHERE app_id = $1 AND namespace = $2 AND lease_token = $3",
                  4, params, NULL);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int jobs_store_release(jobs_store_t *st, const jobs_trigger_t *t)
{
    const char *params[4] = {st->app_id, st->ns, t->job.name, t->lease_token};
    int rc;
    pthread_mutex_lock(&st->mu);
    rc = db_query(st->db,
                  "UPDATE " JOBS_SCHEMA ".jobs SET lease_owner = NULL, lease_token = NULL,"
                  " lease_until_us = NULL WHERE app_id = $1 AND namespace = $2 AND name = $3"
                  " AND lease_token = $4",
                  4, params, NULL);
    pthread_mutex_unlock(&st->mu);
    return rc;
}
