/* What the recurring service makes of a task event: for a completed task with a recurrence rule,
 * the todo.recurrence.next event of its series' next occurrence (docs/events.md). Pure: no I/O. */
#ifndef RECURRING_NEXT_EVENT_H
#define RECURRING_NEXT_EVENT_H
#include "todo/error.h"
#include "todo/json.h"
#include "todo/uuid.h"

/* The namespace of the ids this service derives (UUID v5): the series id of a first occurrence
 * from its task id, and the event id from (series id, occurrence), so that a redelivered
 * completion yields the same event. */
#define NEXT_EVENT_NAMESPACE "2b0e8e1c-7d4e-5b1a-9c3f-6a1d2e4f8b7c"

/* The next occurrence of the series of the completed task whose snapshot is task (the data of a
 * todo.task.completed event): *data (new) is the todo.recurrence.next data and id (37 bytes) its
 * event id. TODO_ENOT_FOUND when there is none (no rule, no due time, the series has ended);
 * TODO_EVALIDATION_ERROR with *why (static) when the snapshot is malformed. */
int next_event_data(const json_t *task, json_t **data, char id[TODO_UUID_LEN],
                    const char **why) TODO_WUR;

#endif
