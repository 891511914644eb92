-- The due time of a series' first occurrence, kept on every later occurrence: the recurrence rule
-- is expanded from it, so that COUNT counts from the start and the series keeps its rhythm when
-- an occurrence is moved.
ALTER TABLE backend.tasks ADD COLUMN series_start_at timestamptz;

CREATE OR REPLACE FUNCTION backend.task_json_of(t backend.tasks, category json, tags json)
RETURNS json
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
        'series_start_at', backend.rfc3339(t.series_start_at),
        'version', t.version,
        'created_at', backend.rfc3339(t.created_at),
        'updated_at', backend.rfc3339(t.updated_at),
        'completed_at', backend.rfc3339(t.completed_at))
$$;
