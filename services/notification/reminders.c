/* The reminders projection and the claim step; see reminders.h. */
#include "reminders.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "todo/log.h"

static const char *str_or(const json_t *o, const char *key, const char *def)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* A time member: NULL when absent or null; *bad when present and malformed. */
static const char *time_member(const json_t *o, const char *key, bool *bad)
{
    const json_t *v = json_object_get(o, key);
    int64_t usec;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), &usec) != 0) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

int reminders_apply(db_t *db, const cloudevent_t *ev, reminder_change_t *out)
{
    const json_t *d = ev->data;
    const json_t *id = json_object_get(d, "id"), *version = json_object_get(d, "version");
    const json_t *completed = json_object_get(d, "completed");
    const char *user = str_or(d, "user_id", NULL);
    bool bad = false;
    const char *remind = time_member(d, "remind_at", &bad), *due = time_member(d, "due_at", &bad);
    char idbuf[24], verbuf[24];
    PGresult *res = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_integer(id) || !json_is_integer(version) || !user || !json_is_boolean(completed) ||
        bad || json_integer_value(version) < 1)
        return TODO_EVALIDATION_ERROR;
    out->task_id = json_integer_value(id);
    snprintf(idbuf, sizeof(idbuf), "%" PRId64, (int64_t)out->task_id);
    snprintf(verbuf, sizeof(verbuf), "%" JSON_INTEGER_FORMAT, json_integer_value(version));

    /* Cancelled: the task is gone or done, or has no reminder. Re-armed: a reminder time that
     * differs from the one applied (a new reminder or a snooze), a reopen, or a reminder that was
     * cancelled before. Otherwise the row keeps its status and takes the new texts. */
    bool cancel = strcmp(ev->type, "todo.task.deleted") == 0 || json_is_true(completed) || !remind;
    const char *rearm = strcmp(ev->type, "todo.task.reopened") == 0 ? "true" : "false";
    const char *p[] = {idbuf,
                       user,
                       str_or(d, "user_email", ""),
                       str_or(d, "title", ""),
                       str_or(d, "description", ""),
                       due,
                       remind,
                       str_or(d, "timezone", "UTC"),
                       ev->traceparent ? ev->traceparent : "",
                       verbuf,
                       cancel ? "true" : "false",
                       rearm};
    rc = db_query_prepared(
        db,
        "INSERT INTO notification.reminders AS r (task_id, user_id, email, title, description, "
        "  due_at, remind_at, timezone, traceparent, task_version, status) "
        "VALUES ($1::bigint, $2, $3, $4, $5, $6::timestamptz, $7::timestamptz, $8, $9, "
        "  $10::integer, CASE WHEN $11::boolean THEN 'cancelled' ELSE 'pending' END) "
        "ON CONFLICT (task_id) DO UPDATE SET "
        "  user_id = EXCLUDED.user_id, email = EXCLUDED.email, title = EXCLUDED.title, "
        "  description = EXCLUDED.description, due_at = EXCLUDED.due_at, "
        "  remind_at = EXCLUDED.remind_at, timezone = EXCLUDED.timezone, "
        "  traceparent = EXCLUDED.traceparent, task_version = EXCLUDED.task_version, "
        "  status = CASE WHEN $11::boolean THEN 'cancelled' "
        "                WHEN $12::boolean OR r.status = 'cancelled' "
        "                  OR r.remind_at IS DISTINCT FROM EXCLUDED.remind_at THEN 'pending' "
        "                ELSE r.status END, "
        "  sent_at = CASE WHEN NOT $11::boolean AND ($12::boolean OR r.status = 'cancelled' "
        "                  OR r.remind_at IS DISTINCT FROM EXCLUDED.remind_at) THEN NULL "
        "                ELSE r.sent_at END, "
        "  updated_at = now() "
        "WHERE r.task_version < EXCLUDED.task_version "
        "RETURNING status, notification.rfc3339(remind_at)",
        (int)(sizeof(p) / sizeof(p[0])), p, &res);
    if (rc != 0)
        goto out;
    if (PQntuples(res) == 0) {
        log_debug("reminders", "task %s: event version %s is not newer; ignored", idbuf, verbuf);
        out->action = REMINDER_KEEP;
    } else if (strcmp(PQgetvalue(res, 0, 0), "pending") == 0) {
        out->action = REMINDER_ARM;
        snprintf(out->remind_at, sizeof(out->remind_at), "%s", PQgetvalue(res, 0, 1));
    } else if (strcmp(PQgetvalue(res, 0, 0), "cancelled") == 0) {
        out->action = REMINDER_CANCEL;
    } else {
        out->action = REMINDER_KEEP; /* sent or missed, and still so */
    }
out:
    PQclear(res);
    return rc;
}

int reminders_claim_due(db_t *db, int64_t catchup_s, const char *link_base, int limit, int *sent,
                        int *missed)
{
    char catchup[24], lim[16];
    const char *p[] = {catchup, link_base, lim};
    PGresult *res = NULL;
    int rc;

    snprintf(catchup, sizeof(catchup), "%" PRId64, catchup_s);
    snprintf(lim, sizeof(lim), "%d", limit);
    *sent = *missed = 0;
    rc = db_query_prepared(
        db,
        "WITH due AS ("
        "  SELECT task_id FROM notification.reminders "
        "   WHERE status = 'pending' AND remind_at <= now() "
        "   ORDER BY remind_at LIMIT $3::integer FOR UPDATE SKIP LOCKED), "
        "claimed AS ("
        "  UPDATE notification.reminders r "
        "     SET status = CASE WHEN r.remind_at < now() - make_interval(secs => $1::bigint) "
        "                       THEN 'missed' ELSE 'sent' END, "
        "         sent_at = now(), updated_at = now() "
        "    FROM due WHERE r.task_id = due.task_id "
        "  RETURNING r.*), "
        "events AS ("
        "  SELECT c.task_id, notification.reminder_event_id(c.task_id, c.remind_at) AS id, "
        "         jsonb_build_object("
        "           'specversion', '1.0', "
        "           'id', notification.reminder_event_id(c.task_id, c.remind_at), "
        "           'source', 'todo/notification', "
        "           'type', 'todo.reminder.due', "
        "           'subject', c.task_id::text, "
        "           'time', notification.rfc3339(now()), "
        "           'datacontenttype', 'application/json', "
        "           'data', jsonb_build_object("
        "             'task_id', c.task_id, 'user_id', c.user_id, 'email', c.email, "
        "             'title', c.title, 'description', c.description, "
        "             'due_at', notification.rfc3339(c.due_at), "
        "             'remind_at', notification.rfc3339(c.remind_at), "
        "             'timezone', c.timezone, 'link', $2 || c.task_id::text)) "
        "         || CASE WHEN c.traceparent <> '' "
        "                 THEN jsonb_build_object('traceparent', c.traceparent) "
        "                 ELSE '{}'::jsonb END AS event "
        "    FROM claimed c WHERE c.status = 'sent'), "
        "written AS ("
        "  INSERT INTO notification.outbox (event_id, topic, partition_key, event) "
        "  SELECT id, 'task-reminders', task_id::text, event FROM events "
        "  ON CONFLICT (event_id) DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM written), "
        "       (SELECT count(*) FROM claimed WHERE status = 'missed')",
        3, p, &res);
    if (rc == 0) {
        *sent = atoi(PQgetvalue(res, 0, 0));
        *missed = atoi(PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return rc;
}
