/* The tasks in PostgreSQL: insert, load for update, update, delete, list, and the outbox event
 * each change writes in the same transaction (backend.emit_task_event; task_store_create writes a
 * new task's in its own statement). Callers run these inside db_tx; user ids are the token's sub,
 * so a task of another user is simply not found. */
#ifndef BACKEND_TASK_STORE_H
#define BACKEND_TASK_STORE_H
#include <stdbool.h>
#include <stdint.h>

#include "task_input.h"
#include "todo/db.h"
#include "todo/json.h"

/* Checks that f's category and tags belong to user; adds field errors to e (and returns
 * TODO_EVALIDATION_ERROR) when not. */
int task_store_check_refs(db_t *db, const char *user, const task_fields_t *f,
                          json_errors_t *e) TODO_WUR;
/* Drops from f the category and tags that user no longer has (for a task made from another). */
int task_store_drop_missing_refs(db_t *db, const char *user, task_fields_t *f) TODO_WUR;
/* The series an occurrence of a recurring task belongs to. */
typedef struct {
    const char *id; /* a UUID */
    int occurrence; /* 1 = the first */
    int64_t start;  /* the first occurrence's due time, microseconds since the epoch */
} task_series_t;

/* Inserts a task (version 1) with its tags; series is NULL for a task of no series. A second
 * occurrence of a series (same series id and occurrence) inserts nothing: TODO_ECONFLICT. */
int task_store_insert(db_t *db, const char *user, const task_fields_t *f,
                      const task_series_t *series, int64_t *id) TODO_WUR;
/* task_store_insert and task_store_emit of the new task's type event (e.g. todo.task.created) in
 * one statement: *id is the task's id and *json (new) its JSON. A second occurrence of a series
 * (same series id and occurrence) is TODO_ECONFLICT. */
int task_store_create(db_t *db, const char *user, const task_fields_t *f,
                      const task_series_t *series, const char *type, const char *traceparent,
                      int64_t *id, char **json) TODO_WUR;
/* Loads and locks (FOR UPDATE) the task's fields; TODO_ENOT_FOUND when user has no such task. */
int task_store_load(db_t *db, const char *user, int64_t id, task_fields_t *f,
                    int *version) TODO_WUR;
/* Writes every field of f (and the tags when set_tags), version + 1. */
int task_store_update(db_t *db, int64_t id, const task_fields_t *f, bool set_tags) TODO_WUR;
/* Writes the CloudEvent of a change to the outbox and returns the task's JSON (new) it carries;
 * snapshot is the JSON of a deleted task, else NULL. */
int task_store_emit(db_t *db, int64_t id, const char *type, const char *traceparent,
                    const char *snapshot, char **json_out) TODO_WUR;
/* The task's JSON (new) and version; TODO_ENOT_FOUND when absent. */
int task_store_get(db_t *db, const char *user, int64_t id, char **json, int *version) TODO_WUR;
/* Deletes a locked task after writing its deleted event (snapshot with version + 1). */
int task_store_delete(db_t *db, int64_t id, const char *traceparent) TODO_WUR;
/* Bumps the version of a task whose tags or category changed and writes its updated event. */
int task_store_touched(db_t *db, int64_t id, const char *traceparent) TODO_WUR;

typedef enum {
    TASK_SORT_CREATED,
    TASK_SORT_DUE,
    TASK_SORT_PRIORITY,
    TASK_SORT_TITLE,
    TASK_SORT_RANK
} task_sort_t;

/* A list query, already validated. Strings are borrowed. */
typedef struct {
    int status;                         /* 0 all, 1 pending, 2 completed */
    int priority;                       /* -1 any */
    int64_t category_id, tag_id;        /* 0 any */
    const char *q;                      /* NULL none */
    const char *due_before, *due_after; /* RFC 3339 or NULL */
    task_sort_t sort;
    bool desc;
    int limit;
    /* keyset position after which to continue (from the cursor) */
    bool after;
    bool after_null; /* the sort value of the last row was NULL (due_at) */
    const char *after_value;
    int64_t after_id;
} task_query_t;

/* {"items":[…],"next_cursor":…} (new). */
int task_store_list(db_t *db, const char *user, const task_query_t *q, char **json) TODO_WUR;

/* Cursor text for (sort, desc, value or NULL, id) (new), and its reading back. */
char *task_cursor_encode(task_sort_t sort, bool desc, const char *value, int64_t id);
/* Fills q's after* fields (value points into *storage, new) when cursor matches q's sort and
 * order; false when the cursor is malformed or from another sort. */
bool task_cursor_decode(const char *cursor, task_query_t *q, char **storage);

#endif
