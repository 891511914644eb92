/* The next occurrence of a recurring task: the backend's consumer of todo.recurrence.next (topic
 * task-recurrence, docs/events.md), which creates the task the recurring service computed, once
 * per (series, occurrence). */
#ifndef BACKEND_SERIES_H
#define BACKEND_SERIES_H
#include "todo/subscriber.h"

/* The subscriber handler (arg unused): creates the occurrence and its todo.task.created event in
 * the delivery's transaction. A duplicate of an occurrence is a success with no effect; an event
 * that can never make a task (bad fields, unknown user) is dropped. */
delivery_t series_on_next(const cloudevent_t *ev, db_t *db, void *thread_ctx, void *arg);

#endif
