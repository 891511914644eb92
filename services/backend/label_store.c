/* Categories and tags in PostgreSQL; see label_store.h. The SQL is built from the kind's table
 * name, a trusted constant, never from input. */
#include "label_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "task_store.h"
#include "todo/alloc.h"

const label_kind_t label_category = {"category", "backend.categories", "categories", 50, 50};
const label_kind_t label_tag = {"tag", "backend.tags", "tags", 30, 100};

static bool is_tag(const label_kind_t *k)
{
    return k == &label_tag;
}

/* SQL giving the ids of the tasks carrying label $1, in id order. */
static const char *tasks_of(const label_kind_t *k)
{
    return is_tag(k) ? "SELECT task_id FROM backend.task_tags WHERE tag_id = $1::bigint "
                       "ORDER BY task_id"
                     : "SELECT id FROM backend.tasks WHERE category_id = $1::bigint ORDER BY id";
}

static char *label_json_sql(const label_kind_t *k, const char *where)
{
    return xasprintf(
        "SELECT COALESCE(json_agg(json_build_object('id', l.id, 'name', l.name, 'color', l.color, "
        "'task_count', (SELECT count(*) FROM (%s) x), "
        "'created_at', backend.rfc3339(l.created_at), "
        "'updated_at', backend.rfc3339(l.updated_at)) ORDER BY lower(l.name), l.id), '[]') "
        "FROM %s l WHERE l.user_id = $1 %s",
        is_tag(k) ? "SELECT 1 FROM backend.task_tags tt WHERE tt.tag_id = l.id"
                  : "SELECT 1 FROM backend.tasks t WHERE t.category_id = l.id",
        k->table, where);
}

int label_store_list(db_t *db, const label_kind_t *k, const char *user, char **json)
{
    PGresult *res = NULL;
    char *sql = label_json_sql(k, "");
    const char *p[] = {user};
    int rc = db_query(db, sql, 1, p, &res);
    if (rc == 0)
        *json = xasprintf("{\"items\":%s}", PQgetvalue(res, 0, 0));
    PQclear(res);
    free(sql);
    return rc;
}

int label_store_get(db_t *db, const label_kind_t *k, const char *user, int64_t id, char **json)
{
    PGresult *res = NULL;
    char idbuf[24];
    char *sql = label_json_sql(k, "AND l.id = $2::bigint");
    const char *p[] = {user, api_i64(idbuf, id)};
    int rc = db_query(db, sql, 2, p, &res);
    if (rc != 0)
        goto out;
    /* json_agg of one row: strip the brackets. */
    const char *a = PQgetvalue(res, 0, 0);
    size_t n = strlen(a);
    if (n < 3) {
        rc = TODO_ENOT_FOUND;
        goto out;
    }
    *json = xstrndup(a + 1, n - 2);
out:
    PQclear(res);
    free(sql);
    return rc;
}

int label_store_insert(db_t *db, const label_kind_t *k, const char *user, const char *name,
                       const char *color, int64_t *id)
{
    PGresult *res = NULL;
    char *sql = NULL;
    const char *p[] = {user, name, color};
    /* The user's row lock serialises concurrent creates, so the limit holds. */
    int rc = db_query(db, "SELECT 1 FROM backend.users WHERE id = $1 FOR UPDATE", 1, p, NULL);
    if (rc != 0)
        goto out;
    sql = xasprintf("SELECT count(*) FROM %s WHERE user_id = $1", k->table);
    rc = db_query(db, sql, 1, p, &res);
    if (rc != 0)
        goto out;
    if (atoi(PQgetvalue(res, 0, 0)) >= k->per_user_max) {
        rc = TODO_EVALIDATION_ERROR;
        goto out;
    }
    PQclear(res);
    res = NULL;
    free(sql);
    sql = xasprintf("INSERT INTO %s (user_id, name, color) VALUES ($1, $2, $3) RETURNING id",
                    k->table);
    rc = db_query(db, sql, 3, p, &res);
    if (rc == 0)
        *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
out:
    PQclear(res);
    free(sql);
    return rc;
}

/* Writes an updated event (version + 1) for each task id in the first column of res. */
static int touch_each(db_t *db, PGresult *res, const char *traceparent)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        rc = task_store_touched(db, strtoll(PQgetvalue(res, i, 0), NULL, 10), traceparent);
    return rc;
}

/* Bumps the version of every task carrying the label and writes an updated event for each. */
static int touch_tasks(db_t *db, const label_kind_t *k, int64_t id, const char *traceparent)
{
    PGresult *res = NULL;
    char idbuf[24];
    const char *p[] = {api_i64(idbuf, id)};
    int rc = db_query(db, tasks_of(k), 1, p, &res);
    if (rc == 0)
        rc = touch_each(db, res, traceparent);
    PQclear(res);
    return rc;
}

int label_store_update(db_t *db, const label_kind_t *k, const char *user, int64_t id,
                       const char *name, bool set_color, const char *color, const char *traceparent)
{
    PGresult *res = NULL;
    char idbuf[24];
    const char *p[] = {user, api_i64(idbuf, id), name, set_color ? "t" : "f", color};
    char *sql = xasprintf("UPDATE %s SET name = COALESCE($3, name), "
                          "color = CASE WHEN $4::boolean THEN $5 ELSE color END, "
                          "updated_at = now() WHERE user_id = $1 AND id = $2::bigint RETURNING 1",
                          k->table);
    int rc = db_query(db, sql, 5, p, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = TODO_ENOT_FOUND;
    if (rc == 0)
        rc = touch_tasks(db, k, id, traceparent);
    PQclear(res);
    free(sql);
    return rc;
}

int label_store_delete(db_t *db, const label_kind_t *k, const char *user, int64_t id,
                       const char *traceparent)
{
    PGresult *res = NULL;
    char idbuf[24];
    const char *p[] = {user, api_i64(idbuf, id)};
    char *sql =
        xasprintf("SELECT 1 FROM %s WHERE user_id = $1 AND id = $2::bigint FOR UPDATE", k->table);
    int rc = db_query(db, sql, 2, p, &res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = TODO_ENOT_FOUND;
    if (rc != 0)
        goto out;
    /* Detach first, so the events carry the tasks without the label. */
    PQclear(res);
    res = NULL;
    free(sql);
    sql = xstrdup(is_tag(k) ? "DELETE FROM backend.task_tags WHERE tag_id = $1::bigint "
                              "RETURNING task_id"
                            : "UPDATE backend.tasks SET category_id = NULL "
                              "WHERE category_id = $1::bigint RETURNING id");
    rc = db_query(db, sql, 1, p + 1, &res);
    if (rc == 0)
        rc = touch_each(db, res, traceparent);
    if (rc != 0)
        goto out;
    free(sql);
    sql = xasprintf("DELETE FROM %s WHERE user_id = $1 AND id = $2::bigint", k->table);
    rc = db_query(db, sql, 2, p, NULL);
out:
    PQclear(res);
    free(sql);
    return rc;
}
