/* The reminders projection in PostgreSQL (notification.reminders): applying task events to it, and
 * the claim step that turns due reminders into todo.reminder.due events in the service's outbox.
 * Both run inside the caller's transaction (db_tx). */
#ifndef NOTIFICATION_REMINDERS_H
#define NOTIFICATION_REMINDERS_H
#include <stdint.h>

#include "todo/db.h"
#include "todo/error.h"
#include "todo/subscriber.h"
#include "todo/timeutil.h"

/* What the scheduler of one-shot jobs must do after an event was applied. */
typedef enum {
    REMINDER_KEEP,   /* nothing changed for the job */
    REMINDER_ARM,    /* (re)schedule reminder-<task_id> at remind_at */
    REMINDER_CANCEL, /* delete reminder-<task_id> */
} reminder_action_t;

typedef struct {
    reminder_action_t action;
    int64_t task_id;
    char remind_at[TIME_RFC3339_LEN]; /* for REMINDER_ARM */
} reminder_change_t;

/* Applies a task event (todo.task.*) to the projection when its data.version is newer than the
 * one applied: a completed or deleted task, or one without remind_at, cancels its reminder; a
 * new or changed remind_at (a snooze included) or a reopen arms it; other changes refresh what
 * the mail shows. TODO_EVALIDATION_ERROR when the event's data is not a task snapshot. */
int reminders_apply(db_t *db, const cloudevent_t *ev, reminder_change_t *out) TODO_WUR;

/* The claim step: up to limit due pending reminders are locked (FOR UPDATE SKIP LOCKED, so
 * replicas share the work), marked sent, and their todo.reminder.due events written to the
 * outbox, in one statement; reminders due longer ago than catchup_s are marked missed instead.
 * link_base + task id is the task's link in the mail. *sent and *missed count them. The caller
 * signals the outbox relay after the commit. */
int reminders_claim_due(db_t *db, int64_t catchup_s, const char *link_base, int limit, int *sent,
                        int *missed) TODO_WUR;

#endif
