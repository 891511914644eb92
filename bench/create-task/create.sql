-- pgbench script of the create-task benchmark: the SQL that POST /api/{user}/tasks runs for a
-- task without category or tags, statement for statement, to be run with -M prepared as the
-- backend prepares each statement once per connection (db_query_prepared): db_tx's BEGIN goes in
-- one round trip with the first statement (a pipeline), which is task_store_create's single
-- statement (the task, its tags, the outbox event with its snapshot), then COMMIT; the outbox relay
-- runs in the same process and is woken there, after the commit, without a NOTIFY. The per-thread cached user upsert and task_store_check_refs (no
-- category, no tags) send nothing per request. Parameters the backend sends as NULL (category,
-- recurrence rule, series, occurrence) are NULL literals here, as pgbench variables cannot be
-- NULL; the rest come from run.sh's -D variables and \set.
\set priority random(0, 3)
\startpipeline
BEGIN;
WITH t AS (INSERT INTO backend.tasks AS x (user_id, title, description, priority, completed,
  completed_at, category_id, due_at, remind_at, remind_before_minutes, timezone,
  recurrence_rule, series_id, occurrence)
VALUES (:user_id, :title, :description, :priority::smallint, :completed::boolean,
  CASE WHEN :completed::boolean THEN now() END,
  NULL::bigint, :due_at::timestamptz, :remind_at::timestamptz, :remind_before::integer,
  :timezone, NULL, NULL::uuid,
  NULL::integer) RETURNING x),
tt AS (INSERT INTO backend.task_tags (task_id, tag_id)
  SELECT (t.x).id, tag_id FROM t, unnest(:tag_ids::bigint[]) AS tag_id),
s AS (SELECT (t.x).id, backend.task_json_of(t.x,
    (SELECT json_build_object('id', c.id, 'name', c.name, 'color', c.color)
       FROM backend.categories c WHERE c.id = NULL::bigint),
    COALESCE((SELECT json_agg(json_build_object('id', g.id, 'name', g.name,
                                                'color', g.color) ORDER BY g.id)
                FROM backend.tags g WHERE g.id = ANY (:tag_ids::bigint[])), '[]'::json))
    AS snap FROM t),
e AS (SELECT gen_random_uuid() AS id),
o AS (INSERT INTO backend.outbox (event_id, topic, partition_key, event)
  SELECT e.id, 'task-events', s.id::text,
    backend.task_event(e.id, :event_type, s.id, :traceparent, s.snap,
      (SELECT u.email FROM backend.users u WHERE u.id = :user_id))
  FROM s, e)
SELECT s.id, s.snap FROM s;
\endpipeline
COMMIT;
