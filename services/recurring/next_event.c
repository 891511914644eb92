/* The todo.recurrence.next event of a completed task; see next_event.h. */
#include "next_event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "todo/recurrence.h"
#include "todo/timeutil.h"
#include "todo/uuid.h"

#define USEC 1000000

static const char *str_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An RFC 3339 member as seconds; false when absent, null or malformed. */
static bool time_of(const json_t *o, const char *key, int64_t *secs)
{
    const char *s = str_of(o, key);
    int64_t usec;
    if (!s || time_parse_rfc3339(s, &usec) != 0)
        return false;
    *secs = usec / USEC;
    return true;
}

static json_t *time_json(int64_t secs)
{
    char text[TIME_RFC3339_LEN];
    time_format_rfc3339(secs * USEC, text);
    return json_string(text);
}

int next_event_data(const json_t *task, json_t **data, char id[TODO_UUID_LEN], const char **why)
{
    const char *rule = str_of(task, "recurrence_rule"), *tz = str_of(task, "timezone");
    const char *user = str_of(task, "user_id"), *series = str_of(task, "series_id");
    const json_t *task_id = json_object_get(task, "id"), *occ = json_object_get(task, "occurrence");
    int64_t due, first, remind;
    char series_buf[TODO_UUID_LEN], name[128];
    recurrence_next_t next;
    int rc;

    *data = NULL;
    *why = NULL;
    if (!json_is_integer(task_id) || !user || !tz) {
        *why = "the task has no id, user_id or timezone";
        return TODO_EVALIDATION_ERROR;
    }
    if (!rule)
        return TODO_ENOT_FOUND;
    if (!time_of(task, "due_at", &due)) {
        *why = "a recurring task without a valid due_at";
        return TODO_EVALIDATION_ERROR;
    }
    /* A series' first occurrence has no series yet: its id is derived from the task's. */
    if (!series) {
        snprintf(name, sizeof(name), "task:%" JSON_INTEGER_FORMAT, json_integer_value(task_id));
        if (!todo_uuid_v5(NEXT_EVENT_NAMESPACE, name, series_buf))
            return TODO_EINTERNAL;
        series = series_buf;
    } else if (!todo_uuid_valid(series)) {
        *why = "series_id is not a UUID";
        return TODO_EVALIDATION_ERROR;
    }
    int n = json_is_integer(occ) ? (int)json_integer_value(occ) : 1;
    if (n < 1) {
        *why = "occurrence is not positive";
        return TODO_EVALIDATION_ERROR;
    }
    if (!time_of(task, "series_start_at", &first))
        first = due;
    rc = recurrence_next(rule, tz, first, n, due, &next);
    if (rc == TODO_EVALIDATION_ERROR)
        *why = "the recurrence rule or time zone cannot be used";
    if (rc != 0)
        return rc;

    json_t *t = json_object();
    json_object_set(t, "title", json_object_get(task, "title"));
    json_object_set(t, "description", json_object_get(task, "description"));
    json_object_set(t, "priority", json_object_get(task, "priority"));
    const json_t *cat = json_object_get(task, "category");
    json_object_set_new(t, "category_id",
                        json_is_object(cat) ? json_incref(json_object_get(cat, "id"))
                                            : json_null());
    json_t *tags = json_array();
    size_t i;
    const json_t *tag;
    json_array_foreach(json_object_get(task, "tags"), i, tag)
    {
        if (json_is_integer(json_object_get(tag, "id")))
            json_array_append(tags, json_object_get(tag, "id"));
    }
    json_object_set_new(t, "tag_ids", tags);
    json_object_set_new(t, "due_at", time_json(next.due));
    json_object_set_new(t, "timezone", json_string(tz));
    json_object_set_new(t, "recurrence_rule", json_string(rule));
    /* The reminder keeps its distance to the due time, however the first was set. */
    const json_t *before = json_object_get(task, "remind_before_minutes");
    if (json_is_integer(before))
        json_object_set(t, "remind_before_minutes", (json_t *)before);
    else if (time_of(task, "remind_at", &remind) && remind <= due && due - remind <= 525600 * 60)
        json_object_set_new(t, "remind_before_minutes", json_integer((due - remind) / 60));
    else
        json_object_set_new(t, "remind_before_minutes", json_null());

    *data = json_object();
    json_object_set_new(*data, "series_id", json_string(series));
    json_object_set_new(*data, "occurrence", json_integer(next.occurrence));
    json_object_set_new(*data, "series_start_at", time_json(first));
    json_object_set_new(*data, "previous_task_id", json_incref((json_t *)task_id));
    json_object_set_new(*data, "user_id", json_string(user));
    json_object_set_new(*data, "task", t);
    snprintf(name, sizeof(name), "next:%s:%d", series, next.occurrence);
    if (!todo_uuid_v5(NEXT_EVENT_NAMESPACE, name, id)) {
        json_decref(*data);
        *data = NULL;
        return TODO_EINTERNAL;
    }
    return 0;
}
