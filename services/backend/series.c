/* Creating the next occurrence of a series; see series.h. */
#include "series.h"

#include <string.h>

#include "task_input.h"
#include "task_store.h"
#include "todo/log.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

/* The fields of data.task that a new occurrence takes (the API's own names, validated as a
 * create request is). */
static const char *const template_fields[] = {
    "title",  "description", "priority",        "category_id",           "tag_ids",
    "due_at", "timezone",    "recurrence_rule", "remind_before_minutes", NULL,
};

delivery_t series_on_next(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg)
{
    const json_t *data = ev->data, *task = json_object_get(data, "task");
    const char *series_id = NULL, *user = NULL, *start_text = NULL;
    int64_t occurrence = 0, start = 0, id = 0;
    json_errors_t e;
    task_input_t in;
    task_fields_t f;
    task_series_t series;
    delivery_t result = DELIVERY_DROP;
    int rc;

    json_errors_init(&e);
    task_fields_init(&f);
    memset(&in, 0, sizeof(in));
    if (strcmp(ev->type, "todo.recurrence.next") != 0) {
        log_info("series", "ignoring event type %s", ev->type);
        result = DELIVERY_SUCCESS;
        goto out;
    }
    if (json_get_string(data, "series_id", &series_id, NULL) != JSON_FIELD_VALUE ||
        !todo_uuid_valid(series_id) ||
        json_get_int(data, "occurrence", &occurrence, NULL) != JSON_FIELD_VALUE || occurrence < 2 ||
        occurrence > 1000000000 ||
        json_get_string(data, "user_id", &user, NULL) != JSON_FIELD_VALUE ||
        json_get_string(data, "series_start_at", &start_text, NULL) != JSON_FIELD_VALUE ||
        time_parse_rfc3339(start_text, &start) != 0 || !json_is_object(task)) {
        log_warn("series",
                 "event %s: series_id, occurrence, user_id, series_start_at or task "
                 "missing or malformed",
                 ev->id);
        goto out;
    }
    json_reject_unknown(task, template_fields, &e);
    task_input_parse(task, true, &in, &e);
    task_input_apply(&in, &f);
    task_fields_check(&f, &e);
    if (json_errors_any(&e) || !f.has_due) {
        char *why = json_dump(e.list);
        log_warn("series", "event %s: the task cannot be created: %s", ev->id, why);
        free(why);
        goto out;
    }
    /* Tags and the category may have been deleted since: the occurrence goes without them. */
    rc = task_store_drop_missing_refs(db, user, &f);
    series = (task_series_t){series_id, (int)occurrence, start};
    if (rc == 0)
        rc = task_store_insert(db, user, &f, &series, &id);
    if (rc == TODO_ECONFLICT) {
        log_info("series", "series %s already has occurrence %lld", series_id,
                 (long long)occurrence);
        result = DELIVERY_SUCCESS;
        goto out;
    }
    if (rc == 0) {
        char *json = NULL;
        rc = task_store_emit(db, id, "todo.task.created", ev->traceparent, NULL, &json);
        free(json);
    }
    if (rc == TODO_EINTERNAL && strcmp(db_sqlstate(db), "23503") == 0) {
        log_warn("series", "event %s: user %s does not exist", ev->id, user);
        goto out; /* a foreign key: the owner is gone */
    }
    if (rc != 0) {
        result = DELIVERY_RETRY;
        goto out;
    }
    log_info("series", "created task %lld, occurrence %lld of series %s", (long long)id,
             (long long)occurrence, series_id);
    result = DELIVERY_SUCCESS;
out:
    task_input_dispose(&in);
    task_fields_dispose(&f);
    json_errors_dispose(&e);
    return result;
}
