-- pgbench script of the create-task benchmark: the SQL that POST /api/{user}/tasks runs for a
-- task without category or tags, statement for statement (db_tx's BEGIN/COMMIT, the INSERT of
-- task_store_insert, task_store_emit's SELECT), to be run with -M extended as the backend sends
-- each one with PQexecParams. The per-thread cached user upsert and task_store_check_refs (no
-- category, no tags) send nothing per request. Parameters the backend sends as NULL (category,
-- recurrence rule, series, occurrence, snapshot) are NULL literals here, as pgbench variables
-- cannot be NULL; the rest come from run.sh's -D variables and \set.
\set priority random(0, 3)
BEGIN;
WITH t AS (INSERT INTO backend.tasks (user_id, title, description, priority, completed,
  completed_at, category_id, due_at, remind_at, remind_before_minutes, timezone,
  recurrence_rule, series_id, occurrence)
VALUES (:user_id, :title, :description, :priority::smallint, :completed::boolean,
  CASE WHEN :completed::boolean THEN now() END,
  NULL::bigint, :due_at::timestamptz, :remind_at::timestamptz, :remind_before::integer,
  :timezone, NULL, NULL::uuid,
  NULL::integer) RETURNING id),
g AS (INSERT INTO backend.task_tags (task_id, tag_id)
  SELECT t.id, x FROM t, unnest(:tag_ids::bigint[]) AS x)
SELECT id FROM t
\gset
SELECT backend.emit_task_event(:id::bigint, :event_type, :traceparent, NULL::json);
COMMIT;
