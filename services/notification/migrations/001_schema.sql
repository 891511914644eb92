-- The notification service's tables: the reminders projection fed from task-events, its outbox of
-- todo.reminder.due events, and the events it has processed.

-- One row per task that has (or had) a reminder. task_version is the version of the task event
-- last applied: an event is applied only when its version is newer. status: pending (armed),
-- sent (its reminder event is in the outbox), missed (due longer ago than the catch-up window
-- when first seen), cancelled (completed, deleted, or its reminder removed).
CREATE TABLE notification.reminders (
    task_id       bigint PRIMARY KEY,
    user_id       text NOT NULL,
    email         text NOT NULL DEFAULT '',
    title         text NOT NULL DEFAULT '',
    description   text NOT NULL DEFAULT '',
    due_at        timestamptz,
    remind_at     timestamptz,
    timezone      text NOT NULL DEFAULT 'UTC',
    traceparent   text NOT NULL DEFAULT '',
    task_version  integer NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'sent', 'missed', 'cancelled')),
    sent_at       timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reminders_due ON notification.reminders (remind_at) WHERE status = 'pending';

CREATE TABLE notification.outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    topic          text NOT NULL,
    partition_key  text NOT NULL,
    event          jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_pending ON notification.outbox (id) WHERE published_at IS NULL;

CREATE TABLE notification.processed_events (
    consumer      text NOT NULL,
    event_id      text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE FUNCTION notification.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT replace(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')
$$;

-- The id of a reminder's event: a name-based UUID of (task, remind_at), the same however many
-- times and by whichever replica the reminder is claimed (version and variant bits of RFC 4122
-- name-based UUIDs over MD5).
CREATE FUNCTION notification.reminder_event_id(p_task_id bigint, p_remind_at timestamptz)
RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT overlay(overlay(md5('todo-reminder:' || p_task_id::text || ':' ||
                               (extract(epoch FROM p_remind_at) * 1000000)::bigint::text)
                           PLACING '3' FROM 13)
                   PLACING '8' FROM 17)::uuid
$$;
