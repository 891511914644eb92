/* Task fields as the API accepts them: parsing and validating a request body (create, replace or
 * patch), merging it onto a task's current fields, and the checks that span several fields. */
#ifndef BACKEND_TASK_INPUT_H
#define BACKEND_TASK_INPUT_H
#include <stdbool.h>
#include <stdint.h>
#include "todo/json.h"

#define TASK_TITLE_MAX         200
#define TASK_DESCRIPTION_MAX   4000
#define TASK_MAX_TAGS          10
#define TASK_TIMEZONE_MAX      64
#define TASK_RRULE_MAX         500
#define TASK_REMIND_BEFORE_MAX 525600

/* Fields present in a body (bits of task_input_t.has). */
enum {
    TASK_F_TITLE = 1 << 0,
    TASK_F_DESCRIPTION = 1 << 1,
    TASK_F_PRIORITY = 1 << 2,
    TASK_F_COMPLETED = 1 << 3,
    TASK_F_CATEGORY = 1 << 4,
    TASK_F_TAGS = 1 << 5,
    TASK_F_DUE = 1 << 6,
    TASK_F_REMIND_AT = 1 << 7,
    TASK_F_REMIND_BEFORE = 1 << 8,
    TASK_F_TIMEZONE = 1 << 9,
    TASK_F_RRULE = 1 << 10,
};

/* Every settable field of a task. Strings are owned (task_fields_dispose frees them). A time of
 * 0 with its has_ flag false means none. */
typedef struct {
    char *title;
    char *description;
    int priority; /* 0 low … 3 urgent */
    bool completed;
    int64_t category_id; /* 0 = none */
    int64_t tag_ids[TASK_MAX_TAGS];
    int ntags;
    bool has_due, has_remind_at, has_remind_before;
    int64_t due_at, remind_at; /* microseconds since the epoch */
    int remind_before;         /* minutes */
    char timezone[TASK_TIMEZONE_MAX + 1];
    char *recurrence_rule; /* NULL = none */
} task_fields_t;

/* A parsed body: which fields it has, and their values in fields. For PATCH a present null clears
 * the field (title, priority, timezone and completed cannot be null). */
typedef struct {
    unsigned has;
    task_fields_t fields;
} task_input_t;

/* Defaults of a new task: medium priority, UTC, nothing else. */
void task_fields_init(task_fields_t *f);
void task_fields_dispose(task_fields_t *f);

/* Reads body into in. require_title for create/replace. Every problem is added to e (field name
 * and message); the caller answers 422 when e has any. */
void task_input_parse(const json_t *body, bool require_title, task_input_t *in, json_errors_t *e);
void task_input_dispose(task_input_t *in);

/* Applies the present fields of in onto f (which holds the task's current or default fields). */
void task_input_apply(const task_input_t *in, task_fields_t *f);

/* Checks across fields after applying: a recurrence rule and a relative reminder need due_at;
 * derives remind_at from remind_before. Adds to e. */
void task_fields_check(task_fields_t *f, json_errors_t *e);

/* Validates an RRULE (RFC 5545, without "RRULE:"): recurrence_rule_valid (todo/recurrence.h) of
 * at most TASK_RRULE_MAX characters. */
bool task_rrule_valid(const char *rule);

/* "low" … "urgent" → 0 … 3, or -1. */
int task_priority_parse(const char *s);
const char *task_priority_name(int p);

#endif
