/* Categories and tags in PostgreSQL — two kinds of label with the same shape (id, name, colour,
 * per-user unique name) — and the task updates their changes cause. */
#ifndef BACKEND_LABEL_STORE_H
#define BACKEND_LABEL_STORE_H
#include <stdint.h>

#include "todo/db.h"

typedef struct {
    const char *noun;  /* "category" */
    const char *table; /* "backend.categories" */
    const char *path;  /* "categories" */
    int name_max;      /* characters */
    int per_user_max;  /* labels per user */
} label_kind_t;

extern const label_kind_t label_category, label_tag;

/* {"items":[{id,name,color,task_count,created_at,updated_at}…]} (new). */
int label_store_list(db_t *db, const label_kind_t *k, const char *user, char **json) TODO_WUR;
/* One label's JSON (new); TODO_ENOT_FOUND. */
int label_store_get(db_t *db, const label_kind_t *k, const char *user, int64_t id,
                    char **json) TODO_WUR;
/* Inserts a label; TODO_ECONFLICT on a duplicate name, TODO_EVALIDATION_ERROR past the per-user
 * limit. */
int label_store_insert(db_t *db, const label_kind_t *k, const char *user, const char *name,
                       const char *color, int64_t *id) TODO_WUR;
/* Renames and/or recolours (NULL name = unchanged; set_color with color NULL clears); writes an
 * updated event for each task carrying the label. */
int label_store_update(db_t *db, const label_kind_t *k, const char *user, int64_t id,
                       const char *name, bool set_color, const char *color,
                       const char *traceparent) TODO_WUR;
/* Deletes a label; its tasks lose it (an updated event each). */
int label_store_delete(db_t *db, const label_kind_t *k, const char *user, int64_t id,
                       const char *traceparent) TODO_WUR;

#endif
