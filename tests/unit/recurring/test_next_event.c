/* Tests of services/recurring/next_event.c: the todo.recurrence.next data made from a completed
 * task's snapshot (a first occurrence and a later one, the template fields, the reminder offset,
 * the ids) and the cases that make none or are refused. */
#include "recurring/next_event.h"

#include <string.h>

#include "check.h"
#include "todo/recurrence.h"

static json_t *task(const char *extra)
{
    /* Wednesday 2027-03-24 09:00 Europe/Berlin (08:00Z); the next is Monday 03-29 after the
     * change to summer time (07:00Z). */
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"id\":42,\"user_id\":\"alice\",\"title\":\"Swim\",\"description\":\"50 laps\","
             "\"completed\":true,\"priority\":\"high\",\"category\":{\"id\":3,\"name\":\"Sport\","
             "\"color\":null},\"tags\":[{\"id\":7,\"name\":\"gym\",\"color\":null},{\"id\":9,"
             "\"name\":\"x\",\"color\":null}],\"due_at\":\"2027-03-24T08:00:00Z\","
             "\"remind_at\":\"2027-03-24T07:40:00Z\",\"remind_before_minutes\":null,"
             "\"timezone\":\"Europe/Berlin\",\"recurrence_rule\":\"FREQ=WEEKLY;BYDAY=MO,WE;"
             "COUNT=3\",\"series_id\":null,\"occurrence\":null,\"series_start_at\":null,"
             "\"version\":3%s}",
             extra);
    json_t *t = NULL;
    CHECK_INT(json_parse(text, strlen(text), true, &t), TODO_OK);
    return t;
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "(not a string)";
}

static void test_first_occurrence(void)
{
    json_t *t = task(""), *d = NULL;
    char id[TODO_UUID_LEN], id2[TODO_UUID_LEN], series[TODO_UUID_LEN];
    const char *why = NULL;

    CHECK_INT(next_event_data(t, &d, id, &why), TODO_OK);
    CHECK(todo_uuid_valid(id));
    CHECK(todo_uuid_v5(NEXT_EVENT_NAMESPACE, "task:42", series));
    CHECK_STR(str(d, "series_id"), series);
    CHECK_INT(json_integer_value(json_object_get(d, "occurrence")), 2);
    CHECK_STR(str(d, "series_start_at"), "2027-03-24T08:00:00Z");
    CHECK_INT(json_integer_value(json_object_get(d, "previous_task_id")), 42);
    CHECK_STR(str(d, "user_id"), "alice");
    const json_t *n = json_object_get(d, "task");
    CHECK_STR(str(n, "title"), "Swim");
    CHECK_STR(str(n, "description"), "50 laps");
    CHECK_STR(str(n, "priority"), "high");
    CHECK_INT(json_integer_value(json_object_get(n, "category_id")), 3);
    CHECK_INT(json_array_size(json_object_get(n, "tag_ids")), 2);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(n, "tag_ids"), 1)), 9);
    CHECK_STR(str(n, "due_at"), "2027-03-29T07:00:00Z");
    CHECK_STR(str(n, "timezone"), "Europe/Berlin");
    CHECK_STR(str(n, "recurrence_rule"), "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3");
    /* the absolute reminder becomes its distance to the due time */
    CHECK_INT(json_integer_value(json_object_get(n, "remind_before_minutes")), 20);
    CHECK_INT(json_object_size(n), 9);
    CHECK_INT(json_object_size(d), 6);

    /* the same completion again: the same event id */
    json_t *d2 = NULL;
    CHECK_INT(next_event_data(t, &d2, id2, &why), TODO_OK);
    CHECK_STR(id2, id);
    json_decref(d2);
    json_decref(d);
    json_decref(t);
}

static void test_later_occurrence(void)
{
    /* occurrence 2 of a series: due Monday 03-29 07:00Z, started 03-24 */
    json_t *t = task(",\"x\":0"), *d = NULL;
    char id[TODO_UUID_LEN], first_id[TODO_UUID_LEN];
    const char *why = NULL;
    const char *series = "3c1d9b2e-6f4a-5e7b-8c9d-0a1b2c3d4e5f";

    json_object_set_new(t, "series_id", json_string(series));
    json_object_set_new(t, "occurrence", json_integer(2));
    json_object_set_new(t, "series_start_at", json_string("2027-03-24T08:00:00Z"));
    json_object_set_new(t, "due_at", json_string("2027-03-29T07:00:00Z"));
    json_object_set_new(t, "remind_before_minutes", json_integer(15));
    json_object_set_new(t, "category", json_null());
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_OK);
    CHECK_STR(str(d, "series_id"), series);
    CHECK_INT(json_integer_value(json_object_get(d, "occurrence")), 3);
    CHECK_STR(str(json_object_get(d, "task"), "due_at"), "2027-03-31T07:00:00Z");
    CHECK(json_is_null(json_object_get(json_object_get(d, "task"), "category_id")));
    CHECK_INT(
        json_integer_value(json_object_get(json_object_get(d, "task"), "remind_before_minutes")),
        15);
    /* ids differ per occurrence */
    json_t *f = task(""), *fd = NULL;
    CHECK_INT(next_event_data(f, &fd, first_id, &why), TODO_OK);
    CHECK(strcmp(first_id, id) != 0);
    json_decref(fd);
    json_decref(f);
    json_decref(d);

    /* the third was the last (COUNT=3) */
    json_object_set_new(t, "occurrence", json_integer(3));
    json_object_set_new(t, "due_at", json_string("2027-03-31T07:00:00Z"));
    d = NULL;
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_ENOT_FOUND);
    CHECK(d == NULL);
    json_decref(t);
}

static void test_none_or_refused(void)
{
    json_t *t = task(""), *d = NULL;
    char id[TODO_UUID_LEN];
    const char *why = NULL;

    json_object_set_new(t, "recurrence_rule", json_null());
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_ENOT_FOUND);
    json_object_set_new(t, "recurrence_rule", json_string("FREQ=DAILY"));
    json_object_set_new(t, "due_at", json_null());
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_EVALIDATION_ERROR);
    CHECK(why != NULL);
    json_object_set_new(t, "due_at", json_string("2027-03-24T08:00:00Z"));
    json_object_set_new(t, "recurrence_rule", json_string("FREQ=SOMETIMES"));
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_EVALIDATION_ERROR);
    json_object_set_new(t, "recurrence_rule", json_string("FREQ=DAILY"));
    json_object_set_new(t, "series_id", json_string("not-a-uuid"));
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_EVALIDATION_ERROR);
    json_object_set_new(t, "series_id", json_null());
    json_object_del(t, "user_id");
    CHECK_INT(next_event_data(t, &d, id, &why), TODO_EVALIDATION_ERROR);
    CHECK(d == NULL);
    json_decref(t);
}

int main(void)
{
    recurrence_init();
    test_first_occurrence();
    test_later_occurrence();
    test_none_or_refused();
    return check_exit();
}
