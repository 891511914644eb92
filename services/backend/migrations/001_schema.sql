-- The backend's tables: users, tasks with their categories and tags, the transactional outbox,
-- the consumer's processed events, and idempotency keys for POST replays.

CREATE TABLE backend.users (
    id          text PRIMARY KEY,
    email       text NOT NULL DEFAULT '',
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backend.categories (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL REFERENCES backend.users (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    color       text CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX categories_user_name ON backend.categories (user_id, lower(name));

CREATE TABLE backend.tags (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL REFERENCES backend.users (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 30),
    color       text CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_user_name ON backend.tags (user_id, lower(name));

-- priority: 0 low, 1 medium, 2 high, 3 urgent (so that ORDER BY priority DESC is urgent first).
CREATE TABLE backend.tasks (
    id                     bigserial PRIMARY KEY,
    user_id                text NOT NULL REFERENCES backend.users (id) ON DELETE CASCADE,
    title                  text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description            text NOT NULL DEFAULT '' CHECK (char_length(description) <= 4000),
    completed              boolean NOT NULL DEFAULT false,
    priority               smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 3),
    category_id            bigint REFERENCES backend.categories (id) ON DELETE SET NULL,
    due_at                 timestamptz,
    remind_at              timestamptz,
    remind_before_minutes  integer CHECK (remind_before_minutes BETWEEN 0 AND 525600),
    timezone               text NOT NULL DEFAULT 'UTC',
    recurrence_rule        text,
    series_id              uuid,
    occurrence             integer,
    version                integer NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    completed_at           timestamptz,
    search                 tsvector GENERATED ALWAYS AS (
                               setweight(to_tsvector('english', title), 'A') ||
                               setweight(to_tsvector('english', description), 'B')) STORED
);
CREATE INDEX tasks_user_created ON backend.tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_user_due ON backend.tasks (user_id, due_at, id);
CREATE INDEX tasks_search ON backend.tasks USING gin (search);
CREATE UNIQUE INDEX tasks_series_occurrence ON backend.tasks (series_id, occurrence)
    WHERE series_id IS NOT NULL;

CREATE TABLE backend.task_tags (
    task_id  bigint NOT NULL REFERENCES backend.tasks (id) ON DELETE CASCADE,
    tag_id   bigint NOT NULL REFERENCES backend.tags (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, tag_id)
);
CREATE INDEX task_tags_tag ON backend.task_tags (tag_id);

CREATE TABLE backend.outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    topic          text NOT NULL,
    partition_key  text NOT NULL,
    event          jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX outbox_pending ON backend.outbox (id) WHERE published_at IS NULL;

CREATE TABLE backend.processed_events (
    consumer      text NOT NULL,
    event_id      text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE backend.idempotency_keys (
    user_id       text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer,
    body          text,
    location      text,
    version       integer,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- RFC 3339 in UTC with Z, with microseconds only when there is a fraction. One to_char: this runs
-- five times for every task shown or written to the outbox.
CREATE FUNCTION backend.rfc3339(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT replace(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')
$$;

CREATE FUNCTION backend.priority_name(p smallint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ARRAY['low', 'medium', 'high', 'urgent'])[p + 1]
$$;

-- The task as the API shows it (and as events carry it), from the row and the JSON of its
-- category (or NULL) and of its tags (an array ordered by id). Without a subquery of its own, so
-- that the planner inlines it into the statement that calls it, which can then be prepared once.
CREATE FUNCTION backend.task_json_of(t backend.tasks, category json, tags json) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', t.id,
        'user_id', t.user_id,
        'title', t.title,
        'description', t.description,
        'completed', t.completed,
        'priority', backend.priority_name(t.priority),
        'category', category,
        'tags', tags,
        'due_at', backend.rfc3339(t.due_at),
        'remind_at', backend.rfc3339(t.remind_at),
        'remind_before_minutes', t.remind_before_minutes,
        'timezone', t.timezone,
        'recurrence_rule', t.recurrence_rule,
        'series_id', t.series_id,
        'occurrence', t.occurrence,
        'version', t.version,
        'created_at', backend.rfc3339(t.created_at),
        'updated_at', backend.rfc3339(t.updated_at),
        'completed_at', backend.rfc3339(t.completed_at))
$$;

-- The task as the API shows it, with its category and tags read from their tables. (The same two
-- subqueries are in emit_task_event, and task_store_create builds them from the ids it inserts.)
CREATE FUNCTION backend.task_json(t backend.tasks) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT backend.task_json_of(t,
        (SELECT json_build_object('id', c.id, 'name', c.name, 'color', c.color)
           FROM backend.categories c WHERE c.id = t.category_id),
        COALESCE((SELECT json_agg(json_build_object('id', g.id, 'name', g.name,
                                                    'color', g.color) ORDER BY g.id)
                    FROM backend.task_tags tt JOIN backend.tags g ON g.id = tt.tag_id
                   WHERE tt.task_id = t.id), '[]'::json))
$$;

-- The CloudEvent of a task change (docs/events.md): its id, type, task, trace context, the task
-- snapshot and the owner's email, which data carries as user_email.
CREATE FUNCTION backend.task_event(p_id uuid, p_type text, p_task_id bigint, p_traceparent text,
                                   p_snapshot json, p_owner_email text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'specversion', '1.0',
        'id', p_id,
        'source', 'todo/backend',
        'type', p_type,
        'subject', p_task_id::text,
        'time', backend.rfc3339(now()),
        'datacontenttype', 'application/json',
        'traceparent', p_traceparent,
        'data', p_snapshot::jsonb || jsonb_build_object('user_email', COALESCE(p_owner_email, '')))
$$;

-- Writes the CloudEvent of a task change to the outbox, in the caller's transaction, wakes the
-- outbox relay (channel backend_outbox, delivered at commit), and returns the task snapshot the
-- event carries. snapshot is given for a deleted task (taken before the delete); otherwise the
-- task's current row is read. (A created task's event is written by task_store_create's
-- statement.) The snapshot is read by a statement of this function rather than by a call of
-- task_json, whose body would be planned again in every transaction.
CREATE FUNCTION backend.emit_task_event(p_task_id bigint, p_type text, p_traceparent text,
                                        p_snapshot json DEFAULT NULL) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    snap json := p_snapshot;
    owner_email text;
    ev_id uuid := gen_random_uuid();
BEGIN
    IF snap IS NULL THEN
        SELECT backend.task_json_of(t,
            (SELECT json_build_object('id', c.id, 'name', c.name, 'color', c.color)
               FROM backend.categories c WHERE c.id = t.category_id),
            COALESCE((SELECT json_agg(json_build_object('id', g.id, 'name', g.name,
                                                        'color', g.color) ORDER BY g.id)
                        FROM backend.task_tags tt JOIN backend.tags g ON g.id = tt.tag_id
                       WHERE tt.task_id = t.id), '[]'::json))
          INTO snap FROM backend.tasks t WHERE t.id = p_task_id;
    END IF;
    SELECT u.email INTO owner_email
      FROM backend.users u WHERE u.id = snap->>'user_id';
    INSERT INTO backend.outbox (event_id, topic, partition_key, event)
    VALUES (ev_id, 'task-events', p_task_id::text,
            backend.task_event(ev_id, p_type, p_task_id, p_traceparent, snap, owner_email));
    PERFORM pg_notify('backend_outbox', '');
    RETURN snap;
END
$$;
