/* Tasks in PostgreSQL; see task_store.h. */
#include "task_store.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "todo/alloc.h"
#include "todo/buf.h"
#include "todo/timeutil.h"

/* PostgreSQL array text of the tag ids, e.g. "{3,7}". */
static void tag_array(const task_fields_t *f, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "{");
    for (int i = 0; i < f->ntags; i++)
        len += (size_t)snprintf(out + len, n - len, "%s%" PRId64, i ? "," : "", f->tag_ids[i]);
    snprintf(out + len, n - len, "}");
}

int task_store_check_refs(db_t *db, const char *user, const task_fields_t *f, json_errors_t *e)
{
    char cat[24], tags[TASK_MAX_TAGS * 21 + 3];
    PGresult *res = NULL;
    if (!f->category_id && !f->ntags)
        return 0;
    tag_array(f, tags, sizeof(tags));
    const char *p[] = {user, f->category_id ? api_i64(cat, f->category_id) : NULL, tags};
    int rc = db_query_prepared(db,
                               "SELECT (SELECT count(*) FROM backend.categories "
                               "         WHERE user_id = $1 AND id = $2::bigint), "
                               "       (SELECT count(*) FROM backend.tags "
                               "         WHERE user_id = $1 AND id = ANY ($3::bigint[]))",
                               3, p, &res);
    if (rc != 0)
        goto out;
    if (f->category_id && atoi(PQgetvalue(res, 0, 0)) != 1)
        json_errors_add(e, "category_id", "no such category");
    if (atoi(PQgetvalue(res, 0, 1)) != f->ntags)
        json_errors_add(e, "tag_ids", "no such tag");
    rc = json_errors_any(e) ? TODO_EVALIDATION_ERROR : 0;
out:
    PQclear(res);
    return rc;
}

int task_store_drop_missing_refs(db_t *db, const char *user, task_fields_t *f)
{
    char cat[24], tags[TASK_MAX_TAGS * 21 + 3];
    PGresult *res = NULL;
    if (!f->category_id && !f->ntags)
        return 0;
    tag_array(f, tags, sizeof(tags));
    const char *p[] = {user, f->category_id ? api_i64(cat, f->category_id) : NULL, tags};
    int rc = db_query_prepared(db,
                               "SELECT (SELECT count(*) FROM backend.categories "
                               "         WHERE user_id = $1 AND id = $2::bigint), "
                               "       ARRAY(SELECT id FROM backend.tags "
                               "              WHERE user_id = $1 AND id = ANY ($3::bigint[]) "
                               "              ORDER BY id)::text",
                               3, p, &res);
    if (rc != 0)
        goto out;
    if (f->category_id && atoi(PQgetvalue(res, 0, 0)) != 1)
        f->category_id = 0;
    f->ntags = 0;
    for (const char *t = PQgetvalue(res, 0, 1) + 1; *t && *t != '}' && f->ntags < TASK_MAX_TAGS;) {
        char *end;
        f->tag_ids[f->ntags++] = strtoll(t, &end, 10);
        t = *end == ',' ? end + 1 : end;
    }
out:
    PQclear(res);
    return rc;
}

/* The parameters every write of a task's fields shares, $2 … $11. */
typedef struct {
    char priority[4], cat[24], due[TIME_RFC3339_LEN], remind[TIME_RFC3339_LEN], before[24];
    char tags[TASK_MAX_TAGS * 21 + 3];
    const char *v[10];
} field_params_t;

static void field_params(const task_fields_t *f, field_params_t *fp)
{
    snprintf(fp->priority, sizeof(fp->priority), "%d", f->priority);
    if (f->has_due)
        time_format_rfc3339(f->due_at, fp->due);
    if (f->has_remind_at)
        time_format_rfc3339(f->remind_at, fp->remind);
    tag_array(f, fp->tags, sizeof(fp->tags));
    fp->v[0] = f->title;
    fp->v[1] = f->description;
    fp->v[2] = fp->priority;
    fp->v[3] = f->completed ? "true" : "false";
    fp->v[4] = f->category_id ? api_i64(fp->cat, f->category_id) : NULL;
    fp->v[5] = f->has_due ? fp->due : NULL;
    fp->v[6] = f->has_remind_at ? fp->remind : NULL;
    fp->v[7] = f->has_remind_before ? api_i64(fp->before, f->remind_before) : NULL;
    fp->v[8] = f->timezone;
    fp->v[9] = f->recurrence_rule;
}

/* The INSERT of a task with its tags, $1 … $15: user, the fields of field_params, tag ids, series,
 * occurrence and the series' start. */
#define INSERT_TASK_SQL                                                                           \
    "t AS (INSERT INTO backend.tasks AS x (user_id, title, description, priority, completed, "    \
    "  completed_at, category_id, due_at, remind_at, remind_before_minutes, timezone, "           \
    "  recurrence_rule, series_id, occurrence, series_start_at) "                                 \
    "VALUES ($1, $2, $3, $4::smallint, $5::boolean, CASE WHEN $5::boolean THEN now() END, "       \
    "  $6::bigint, $7::timestamptz, $8::timestamptz, $9::integer, $10, $11, $13::uuid, "          \
    "  $14::integer, $15::timestamptz) "                                                          \
    "  ON CONFLICT (series_id, occurrence) WHERE series_id IS NOT NULL DO NOTHING RETURNING x), " \
    "tt AS (INSERT INTO backend.task_tags (task_id, tag_id) "                                     \
    "  SELECT (t.x).id, tag_id FROM t, unnest($12::bigint[]) AS tag_id)"

/* Fills p[0 … 14] with the parameters of INSERT_TASK_SQL; returns 15. */
static int insert_params(const char *user, const field_params_t *fp, const task_series_t *series,
                         char occ[24], char start[TIME_RFC3339_LEN], const char **p)
{
    int n = 0;
    p[n++] = user;
    for (size_t i = 0; i < sizeof(fp->v) / sizeof(fp->v[0]); i++)
        p[n++] = fp->v[i];
    p[n++] = fp->tags;
    p[n++] = series ? series->id : NULL;
    p[n++] = series ? api_i64(occ, series->occurrence) : NULL;
    if (series)
        time_format_rfc3339(series->start, start);
    p[n++] = series ? start : NULL;
    return n;
}

int task_store_insert(db_t *db, const char *user, const task_fields_t *f,
                      const task_series_t *series, int64_t *id)
{
    field_params_t fp;
    char occ[24], start[TIME_RFC3339_LEN];
    const char *p[15];
    PGresult *res = NULL;
    field_params(f, &fp);
    int n = insert_params(user, &fp, series, occ, start, p);
    int rc = db_query_prepared(db, "WITH " INSERT_TASK_SQL " SELECT (x).id FROM t", n, p, &res);
    if (rc == 0 && PQntuples(res) == 0)
        rc = TODO_ECONFLICT; /* the series has this occurrence already */
    else if (rc == 0)
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

int task_store_create(db_t *db, const char *user, const task_fields_t *f,
                      const task_series_t *series, const char *type, const char *traceparent,
                      int64_t *id, char **json)
{
    field_params_t fp;
    char occ[24], start[TIME_RFC3339_LEN];
    const char *p[17];
    PGresult *res = NULL;
    field_params(f, &fp);
    int n = insert_params(user, &fp, series, occ, start, p);
    p[n++] = type;
    p[n++] = traceparent;
    /* What task_store_emit does for an existing task, with the category and the tags read by
     * the ids just inserted, as the rows of task_tags are not visible within this statement.
     * s is materialized (referenced twice): the event and the answer carry the same snapshot. */
    int rc = db_query_prepared(
        db,
        "WITH " INSERT_TASK_SQL ", "
        "s AS (SELECT (t.x).id, backend.task_json_of(t.x, "
        "    (SELECT json_build_object('id', c.id, 'name', c.name, 'color', c.color) "
        "       FROM backend.categories c WHERE c.id = $6::bigint), "
        "    COALESCE((SELECT json_agg(json_build_object('id', g.id, 'name', g.name, "
        "                                                'color', g.color) ORDER BY g.id) "
        "                FROM backend.tags g WHERE g.id = ANY ($12::bigint[])), '[]'::json)) "
        "    AS snap FROM t), "
        "e AS (SELECT gen_random_uuid() AS id), "
        "o AS (INSERT INTO backend.outbox (event_id, topic, partition_key, event) "
        "  SELECT e.id, 'task-events', s.id::text, "
        "    backend.task_event(e.id, $16, s.id, $17, s.snap, "
        "      (SELECT u.email FROM backend.users u WHERE u.id = $1)) "
        "  FROM s, e) "
        "SELECT s.id, s.snap FROM s",
        n, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) == 0) {
        rc = TODO_ECONFLICT; /* the series has this occurrence already */
        goto out;
    }
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    *json = xstrdup(PQgetvalue(res, 0, 1));
out:
    PQclear(res);
    return rc;
}

static bool parse_usec(PGresult *res, int col, int64_t *out)
{
    if (PQgetisnull(res, 0, col))
        return false;
    *out = strtoll(PQgetvalue(res, 0, col), NULL, 10);
    return true;
}

int task_store_load(db_t *db, const char *user, int64_t id, task_fields_t *f, int *version)
{
    char idbuf[24];
    PGresult *res = NULL;
    const char *p[] = {user, api_i64(idbuf, id)};
    int rc = db_query_prepared(
        db,
        "SELECT title, description, priority, completed, category_id, "
        "  (extract(epoch FROM due_at) * 1000000)::bigint, "
        "  (extract(epoch FROM remind_at) * 1000000)::bigint, remind_before_minutes, timezone, "
        "  recurrence_rule, version, "
        "  (SELECT string_agg(tag_id::text, ',' ORDER BY tag_id) FROM backend.task_tags "
        "    WHERE task_id = t.id) "
        "FROM backend.tasks t WHERE user_id = $1 AND id = $2::bigint FOR UPDATE",
        2, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) != 1) {
        rc = TODO_ENOT_FOUND;
        goto out;
    }
    task_fields_dispose(f);
    task_fields_init(f);
    f->title = xstrdup(PQgetvalue(res, 0, 0));
    free(f->description);
    f->description = xstrdup(PQgetvalue(res, 0, 1));
    f->priority = atoi(PQgetvalue(res, 0, 2));
    f->completed = PQgetvalue(res, 0, 3)[0] == 't';
    f->category_id = PQgetisnull(res, 0, 4) ? 0 : strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    f->has_due = parse_usec(res, 5, &f->due_at);
    f->has_remind_at = parse_usec(res, 6, &f->remind_at);
    f->has_remind_before = !PQgetisnull(res, 0, 7);
    f->remind_before = f->has_remind_before ? atoi(PQgetvalue(res, 0, 7)) : 0;
    snprintf(f->timezone, sizeof(f->timezone), "%s", PQgetvalue(res, 0, 8));
    f->recurrence_rule = PQgetisnull(res, 0, 9) ? NULL : xstrdup(PQgetvalue(res, 0, 9));
    *version = atoi(PQgetvalue(res, 0, 10));
    for (char *s = PQgetvalue(res, 0, 11), *end; *s && f->ntags < TASK_MAX_TAGS; s = end) {
        f->tag_ids[f->ntags++] = strtoll(s, &end, 10);
        if (*end == ',')
            end++;
    }
out:
    PQclear(res);
    return rc;
}

int task_store_update(db_t *db, int64_t id, const task_fields_t *f, bool set_tags)
{
    field_params_t fp;
    char idbuf[24];
    field_params(f, &fp);
    const char *p[] = {api_i64(idbuf, id),
                       fp.v[0],
                       fp.v[1],
                       fp.v[2],
                       fp.v[3],
                       fp.v[4],
                       fp.v[5],
                       fp.v[6],
                       fp.v[7],
                       fp.v[8],
                       fp.v[9]};
    int rc = db_query_prepared(
        db,
        "UPDATE backend.tasks SET title = $2, description = $3, "
        "  priority = $4::smallint, completed = $5::boolean, "
        "  completed_at = CASE WHEN $5::boolean THEN COALESCE(completed_at, now()) "
        "  END, category_id = $6::bigint, due_at = $7::timestamptz, "
        "  remind_at = $8::timestamptz, remind_before_minutes = $9::integer, "
        "  timezone = $10, recurrence_rule = $11, version = version + 1, "
        "  updated_at = now() "
        "WHERE id = $1::bigint",
        11, p, NULL);
    if (rc != 0 || !set_tags)
        return rc;
    const char *q[] = {p[0], fp.tags};
    rc = db_query_prepared(
        db,
        "WITH d AS (DELETE FROM backend.task_tags WHERE task_id = $1::bigint "
        "             AND tag_id <> ALL ($2::bigint[])) "
        "INSERT INTO backend.task_tags (task_id, tag_id) "
        "SELECT $1::bigint, x FROM unnest($2::bigint[]) AS x ON CONFLICT DO NOTHING",
        2, q, NULL);
    return rc;
}

int task_store_emit(db_t *db, int64_t id, const char *type, const char *traceparent,
                    const char *snapshot, char **json_out)
{
    char idbuf[24];
    PGresult *res = NULL;
    const char *p[] = {api_i64(idbuf, id), type, traceparent, snapshot};
    int rc = db_query_prepared(db, "SELECT backend.emit_task_event($1::bigint, $2, $3, $4::json)",
                               4, p, &res);
    if (rc == 0 && json_out)
        *json_out = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int task_store_get(db_t *db, const char *user, int64_t id, char **json, int *version)
{
    char idbuf[24];
    PGresult *res = NULL;
    const char *p[] = {user, api_i64(idbuf, id)};
    int rc = db_query_prepared(db,
                               "SELECT backend.task_json(t), t.version FROM backend.tasks t "
                               "WHERE t.user_id = $1 AND t.id = $2::bigint",
                               2, p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) != 1) {
        rc = TODO_ENOT_FOUND;
        goto out;
    }
    *json = xstrdup(PQgetvalue(res, 0, 0));
    *version = atoi(PQgetvalue(res, 0, 1));
out:
    PQclear(res);
    return rc;
}

int task_store_delete(db_t *db, int64_t id, const char *traceparent)
{
    char idbuf[24];
    PGresult *res = NULL;
    const char *p[] = {api_i64(idbuf, id)};
    /* The deleted event carries the last snapshot with a higher version than any before it, so
     * a consumer that keeps the newest version sees the delete as newest. */
    int rc =
        db_query_prepared(db,
                          "UPDATE backend.tasks t SET version = version + 1, updated_at = now() "
                          "WHERE id = $1::bigint RETURNING backend.task_json(t)",
                          1, p, &res);
    if (rc != 0)
        goto out;
    rc = task_store_emit(db, id, "todo.task.deleted", traceparent, PQgetvalue(res, 0, 0), NULL);
    if (rc != 0)
        goto out;
    rc = db_query_prepared(db, "DELETE FROM backend.tasks WHERE id = $1::bigint", 1, p, NULL);
out:
    PQclear(res);
    return rc;
}

int task_store_touched(db_t *db, int64_t id, const char *traceparent)
{
    char idbuf[24];
    const char *p[] = {api_i64(idbuf, id)};
    int rc = db_query_prepared(db,
                               "UPDATE backend.tasks SET version = version + 1, updated_at = now() "
                               "WHERE id = $1::bigint",
                               1, p, NULL);
    if (rc == 0)
        rc = task_store_emit(db, id, "todo.task.updated", traceparent, NULL, NULL);
    return rc;
}

/* The sort key of each order, as SQL over the row t (and rank). */
static const char *sort_key(task_sort_t s)
{
    switch (s) {
    case TASK_SORT_DUE:
        return "t.due_at";
    case TASK_SORT_PRIORITY:
        return "t.priority";
    case TASK_SORT_TITLE:
        return "lower(t.title)";
    case TASK_SORT_RANK:
        return "rank";
    case TASK_SORT_CREATED:
    default:
        return "t.created_at";
    }
}

static const char *sort_cast(task_sort_t s)
{
    switch (s) {
    case TASK_SORT_DUE:
    case TASK_SORT_CREATED:
        return "timestamptz";
    case TASK_SORT_PRIORITY:
        return "smallint";
    case TASK_SORT_RANK:
        return "real";
    case TASK_SORT_TITLE:
    default:
        return "text";
    }
}

/* The sort value as text that reads back exactly (timestamps with microseconds). */
static const char *sort_value(task_sort_t s)
{
    switch (s) {
    case TASK_SORT_DUE:
        return "to_char(t.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
    case TASK_SORT_CREATED:
        return "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
    case TASK_SORT_PRIORITY:
        return "t.priority::text";
    case TASK_SORT_RANK:
        return "rank::text";
    case TASK_SORT_TITLE:
    default:
        return "lower(t.title)";
    }
}

int task_store_list(db_t *db, const char *user, const task_query_t *q, char **json)
{
    buf_t sql, out;
    const char *p[12];
    char b1[24], b2[24], b3[24], b4[24];
    int n = 0, rc;
    PGresult *res = NULL;
    const char *dir = q->desc ? "DESC" : "ASC", *cmp = q->desc ? "<" : ">";
    const char *key = sort_key(q->sort);

    buf_init(&sql, 0);
    buf_init(&out, 0);
    p[n++] = user;
#define SQL(...) (void)!buf_printf(&sql, __VA_ARGS__)
    SQL("SELECT backend.task_json(t), %s, t.id FROM backend.tasks t", sort_value(q->sort));
    if (q->q) {
        p[n++] = q->q;
        SQL(", websearch_to_tsquery('english', $%d) AS query, "
            "LATERAL (SELECT ts_rank(t.search, query) AS rank) r",
            n);
    }
    SQL(" WHERE t.user_id = $1");
    if (q->q)
        SQL(" AND t.search @@ query");
    if (q->status)
        SQL(" AND t.completed = %s", q->status == 2 ? "true" : "false");
    if (q->priority >= 0) {
        p[n++] = api_i64(b1, q->priority);
        SQL(" AND t.priority = $%d::smallint", n);
    }
    if (q->category_id) {
        p[n++] = api_i64(b2, q->category_id);
        SQL(" AND t.category_id = $%d::bigint", n);
    }
    if (q->tag_id) {
        p[n++] = api_i64(b3, q->tag_id);
        SQL(" AND EXISTS (SELECT 1 FROM backend.task_tags x WHERE x.task_id = t.id "
            "AND x.tag_id = $%d::bigint)",
            n);
    }
    if (q->due_before) {
        p[n++] = q->due_before;
        SQL(" AND t.due_at < $%d::timestamptz", n);
    }
    if (q->due_after) {
        p[n++] = q->due_after;
        SQL(" AND t.due_at > $%d::timestamptz", n);
    }
    if (q->after) {
        p[n++] = api_i64(b4, q->after_id);
        int id_param = n;
        if (q->sort == TASK_SORT_DUE) {
            /* tasks without due_at come last in both orders */
            if (q->after_null) {
                SQL(" AND t.due_at IS NULL AND t.id %s $%d::bigint", cmp, id_param);
            } else {
                p[n++] = q->after_value;
                SQL(" AND (t.due_at IS NULL OR (t.due_at, t.id) %s ($%d::timestamptz, "
                    "$%d::bigint))",
                    cmp, n, id_param);
            }
        } else {
            p[n++] = q->after_value;
            SQL(" AND (%s, t.id) %s ($%d::%s, $%d::bigint)", key, cmp, n, sort_cast(q->sort),
                id_param);
        }
    }
    SQL(" ORDER BY %s %s%s, t.id %s LIMIT %d", key, dir,
        q->sort == TASK_SORT_DUE ? " NULLS LAST" : "", dir, q->limit + 1);
#undef SQL

    rc = db_query(db, sql.data, n, p, &res);
    if (rc != 0)
        goto out;
    int rows = PQntuples(res);
    int shown = rows > q->limit ? q->limit : rows;
    (void)!buf_puts(&out, "{\"items\":[");
    for (int i = 0; i < shown; i++) {
        if (i)
            (void)!buf_puts(&out, ",");
        (void)!buf_puts(&out, PQgetvalue(res, i, 0));
    }
    (void)!buf_puts(&out, "],\"next_cursor\":");
    if (rows > q->limit) {
        int last = shown - 1;
        char *cursor = task_cursor_encode(
            q->sort, q->desc, PQgetisnull(res, last, 1) ? NULL : PQgetvalue(res, last, 1),
            strtoll(PQgetvalue(res, last, 2), NULL, 10));
        (void)!buf_printf(&out, "\"%s\"}", cursor);
        free(cursor);
    } else {
        (void)!buf_puts(&out, "null}");
    }
    *json = buf_steal(&out);
out:
    PQclear(res);
    buf_dispose(&sql);
    buf_dispose(&out);
    return rc;
}

/* Cursor: base64url (no padding) of JSON [sort, desc, value|null, id]. */
char *task_cursor_encode(task_sort_t sort, bool desc, const char *value, int64_t id)
{
    json_t *a = json_pack("[ibs?I]", (int)sort, desc, value, (json_int_t)id);
    char *text = json_dump(a);
    json_decref(a);
    size_t n = strlen(text);
    char *b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text, (int)n);
    free(text);
    while (len > 0 && b64[len - 1] == '=')
        b64[--len] = '\0';
    for (char *c = b64; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return b64;
}

bool task_cursor_decode(const char *cursor, task_query_t *q, char **storage)
{
    size_t n = strlen(cursor);
    bool ok = false;
    json_t *a = NULL;
    char *b64 = NULL, *text = NULL;

    if (n == 0 || n > 1024)
        return false;
    b64 = xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        char c = cursor[i];
        b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (n % 4)
        b64[n++] = '=';
    b64[n] = '\0';
    text = xmalloc(n);
    int len = EVP_DecodeBlock((unsigned char *)text, (const unsigned char *)b64, (int)n);
    if (len < 0)
        goto out;
    /* EVP_DecodeBlock counts the padding as zero bytes: trim them. */
    while (len > 0 && text[len - 1] == '\0')
        len--;
    if (json_parse(text, (size_t)len, false, &a) != 0 || !json_is_array(a) ||
        json_array_size(a) != 4)
        goto out;
    json_t *s = json_array_get(a, 0), *d = json_array_get(a, 1), *v = json_array_get(a, 2),
           *id = json_array_get(a, 3);
    if (!json_is_integer(s) || json_integer_value(s) != (json_int_t)q->sort ||
        !json_is_boolean(d) || json_is_true(d) != q->desc || !json_is_integer(id) ||
        json_integer_value(id) <= 0)
        goto out;
    if (json_is_null(v)) {
        if (q->sort != TASK_SORT_DUE)
            goto out;
        q->after_null = true;
        q->after_value = NULL;
    } else if (json_is_string(v) && json_string_length(v) <= 800) {
        *storage = xstrdup(json_string_value(v));
        q->after_value = *storage;
        if ((q->sort == TASK_SORT_DUE || q->sort == TASK_SORT_CREATED)) {
            int64_t us;
            if (time_parse_rfc3339(q->after_value, &us) != 0)
                goto out;
        } else if (q->sort == TASK_SORT_PRIORITY || q->sort == TASK_SORT_RANK) {
            char *end;
            (void)strtod(q->after_value, &end);
            if (*end || end == q->after_value)
                goto out;
        }
    } else {
        goto out;
    }
    q->after = true;
    q->after_id = json_integer_value(id);
    ok = true;
out:
    if (a)
        json_decref(a);
    free(b64);
    free(text);
    if (!ok) {
        free(*storage);
        *storage = NULL;
    }
    return ok;
}
