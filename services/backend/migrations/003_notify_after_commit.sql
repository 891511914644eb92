-- The outbox relay is woken after the commit of a change (in the process, or by a NOTIFY of its
-- own statement when the relay in the lead runs in another replica), no longer by a NOTIFY inside
-- the transaction: PostgreSQL holds the notification queue's lock through the commit of a
-- transaction that notifies, so that such commits cannot be flushed together.
CREATE OR REPLACE FUNCTION backend.emit_task_event(p_task_id bigint, p_type text, p_traceparent text,
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
    RETURN snap;
END
$$;
