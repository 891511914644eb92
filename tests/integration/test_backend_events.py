"""The transactional outbox: one row per task change with the exact CloudEvent of SYSTEM.md §3
(attributes, types, a uuid id, data equal to the API's view of the task plus the owner's email),
no row when nothing changed or the change failed (also when it fails after the row was written),
trace context carried over from the request, and the samples in docs/events.md matching what the
backend writes."""

import json
import os
import re
import time

import todo_test
from todo_test import EVENT_KEYS, TASK_KEYS, TASK_EVENT_TYPES, TRACEPARENT_RE, UUID_RE

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
FAIL_MARK = "outbox-trigger-abort"

from event_docs import NULLABLE, doc_samples, json_type, shape_errors  # noqa: F401


class Outbox(todo_test.BackendTestCase):

    allowed_errors = (FAIL_MARK,)

    def rows_since(self, mark):
        return todo_test.outbox_rows(self.cluster, f"id > {mark}")

    def mark(self):
        return todo_test.max_outbox_id(self.cluster)

    def check_event(self, row, etype, task, email, trace_id=None):
        """row is the outbox row of a change of type etype leaving task (as the API shows it)."""
        ev = row["event"]
        self.assertEqual(row["topic"], "task-events", row)
        self.assertEqual(row["partition_key"], str(task["id"]), row)
        self.assertIsNone(row["published_at"], row)
        todo_test.parse_time(row["created_at"])
        self.assertEqual(set(ev), EVENT_KEYS, f"event attributes: {ev}")
        self.assertEqual(ev["specversion"], "1.0")
        self.assertIsInstance(ev["id"], str)
        self.assertRegex(ev["id"], UUID_RE)
        self.assertEqual(ev["id"], row["event_id"])
        self.assertEqual(ev["source"], "todo/backend")
        self.assertEqual(ev["type"], etype, ev)
        self.assertEqual(ev["subject"], str(task["id"]))
        self.assertEqual(ev["datacontenttype"], "application/json")
        t = todo_test.parse_time(ev["time"]).timestamp()
        self.assertLess(abs(t - time.time()), 60, ev["time"])
        self.assertIsInstance(ev["traceparent"], str)
        self.assertEqual(len(ev["traceparent"]), 55, ev["traceparent"])
        m = TRACEPARENT_RE.match(ev["traceparent"])
        self.assertTrue(m, ev["traceparent"])
        self.assertNotEqual(m.group(1), "0" * 32, ev["traceparent"])
        self.assertNotEqual(m.group(2), "0" * 16, ev["traceparent"])
        if trace_id is not None:
            self.assertEqual(m.group(1), trace_id, ev["traceparent"])
        data = ev["data"]
        self.assertIsInstance(data, dict)
        self.assertEqual(set(data), TASK_KEYS | {"user_email"}, data)
        self.assertEqual(data["user_email"], email)
        view = {k: v for k, v in data.items() if k != "user_email"}
        self.assertEqual(view, task, f"{etype}: the event's data is not the API's task")
        return ev

    def change(self, api, etype, method, path, body=None, headers=None, expect=200,
               trace_id=None):
        """One request that must write exactly one event of etype; returns the task after."""
        mark = self.mark()
        r = api.request(method, path, body=body, headers=headers)
        self.assertEqual(r.status, expect, f"{method} {path}: {r!r}")
        rows = self.rows_since(mark)
        self.assertEqual(len(rows), 1, f"{method} {path} wrote {len(rows)} outbox rows")
        task = api.task(int(rows[0]["partition_key"]))
        if r.status in (200, 201):
            self.assertEqual(r.json, task, f"{method} {path}: the response is not the task")
        self.check_event(rows[0], etype, task, api.email, trace_id)
        return task

    def no_event(self, api, method, path, body=None, headers=None, expect=200):
        mark = self.mark()
        r = api.request(method, path, body=body, headers=headers)
        self.assertEqual(r.status, expect, f"{method} {path}: {r!r}")
        self.assertEqual(self.rows_since(mark), [], f"{method} {path} wrote an outbox row")
        return r

    def lifecycle(self, api, full):
        """Every kind of change on one task; returns the events' count."""
        extra = {}
        if full:
            cat = api.create_category(f"cat-{api.user}", "#123456")
            tag1 = api.create_tag(f"a-{api.user}", "#abcdef")
            tag2 = api.create_tag(f"b-{api.user}")
            extra = dict(description="all fields", priority="high", category_id=cat["id"],
                         tag_ids=[tag1["id"]], due_at="2031-04-01T12:00:00Z",
                         remind_before_minutes=45, timezone="Europe/Paris",
                         recurrence_rule="FREQ=WEEKLY;COUNT=4")
        else:
            tag2 = api.create_tag(f"b-{api.user}")
        C, U, D, O = ("todo.task.created", "todo.task.updated", "todo.task.completed",
                      "todo.task.reopened")
        t = self.change(api, C, "POST", "/tasks", dict(title="life", **extra), expect=201)
        p = f"/tasks/{t['id']}"
        self.change(api, U, "PATCH", p, {"title": "life 2"})
        self.change(api, D, "PATCH", p, {"completed": True})
        self.change(api, O, "PATCH", p, {"completed": False})
        self.change(api, U, "PUT", p, dict(title="life 3", **extra))
        self.change(api, D, "PUT", p, dict(title="life 3", completed=True, **extra))
        self.no_event(api, "POST", p + "/complete")
        self.change(api, O, "POST", p + "/reopen")
        self.no_event(api, "POST", p + "/reopen")
        self.change(api, D, "POST", p + "/complete")
        self.change(api, O, "PATCH", p + "/complete")
        self.change(api, D, "PATCH", p + "/complete")
        self.change(api, O, "PATCH", p + "/complete")
        self.change(api, U, "POST", p + "/snooze", {"minutes": 20})
        mark = self.mark()
        self.assertIn(api.put(f"{p}/tags/{tag2['id']}").status, (200, 204))
        rows = self.rows_since(mark)
        self.assertEqual(len(rows), 1)
        self.check_event(rows[0], U, api.task(t["id"]), api.email)
        mark = self.mark()
        self.assertIn(api.delete(f"{p}/tags/{tag2['id']}").status, (200, 204))
        rows = self.rows_since(mark)
        self.assertEqual(len(rows), 1)
        self.check_event(rows[0], U, api.task(t["id"]), api.email)
        if full:
            mark = self.mark()
            self.assertEqual(api.delete(f"/categories/{cat['id']}").status, 204)
            rows = self.rows_since(mark)
            self.assertEqual(len(rows), 1)
            self.check_event(rows[0], U, api.task(t["id"]), api.email)
            mark = self.mark()
            self.assertEqual(api.delete(f"/tags/{tag1['id']}").status, 204)
            rows = self.rows_since(mark)
            self.assertEqual(len(rows), 1)
            self.check_event(rows[0], U, api.task(t["id"]), api.email)
        last = api.task(t["id"])
        mark = self.mark()
        self.assertEqual(api.delete(p).status, 204)
        rows = self.rows_since(mark)
        self.assertEqual(len(rows), 1, "one event for a delete")
        data = rows[0]["event"]["data"]
        gone = dict(last, version=last["version"] + 1, updated_at=data.get("updated_at"))
        self.check_event(rows[0], "todo.task.deleted", gone, api.email)
        self.assertGreaterEqual(todo_test.parse_time(data["updated_at"]),
                                todo_test.parse_time(last["updated_at"]))
        events = todo_test.outbox_rows(self.cluster, f"partition_key = '{t['id']}'")
        self.assertEqual([e["event"]["data"]["version"] for e in events],
                         list(range(1, len(events) + 1)),
                         "each event carries the next version")
        return events

    # --- one row per change -----------------------------------------------------------------

    def test_every_change_writes_one_event(self):
        self.lifecycle(self.new_user(), full=True)
        self.lifecycle(self.new_user(), full=False)

    def test_no_event_when_nothing_changes(self):
        api = self.new_user()
        t = api.create_task(title="quiet")
        p = f"/tasks/{t['id']}"
        mark = self.mark()
        api.get(p)
        api.list()
        api.get("/categories")
        api.post("/tasks", {"title": ""})
        api.patch(p, {"title": "x"}, headers={"If-Match": '"7"'})
        api.patch(p, {"priority": "nope"})
        api.post(p + "/snooze", {"minutes": 0})
        api.get("/tasks/99999999")
        api.delete("/tasks/99999999")
        api.post("/categories", {"name": "c"})
        api.post("/tags", {"name": "g"})
        todo_test.Api(self.backend, api.user, token=todo_test.make_token(api.user, exp_in=-999)
                      ).patch(p, {"title": "expired"})
        self.assertEqual(self.rows_since(mark), [])
        self.assertEqual(api.task(t["id"])["version"], 1)

    def test_event_ids_are_unique(self):
        api = self.new_user()
        t = api.create_task(title="ids")
        for i in range(5):
            api.patch(f"/tasks/{t['id']}", {"title": f"ids {i}"})
        self.assertEqual(self.scalar("SELECT count(*) - count(DISTINCT event->>'id') "
                                     "FROM backend.outbox"), "0")
        self.assertEqual(self.scalar("SELECT count(*) FROM backend.outbox "
                                     "WHERE event_id::text <> event->>'id'"), "0")

    # --- trace context ----------------------------------------------------------------------

    def test_traceparent_is_carried_over(self):
        api = self.new_user()
        h = {"traceparent": TRACEPARENT}
        t = self.change(api, "todo.task.created", "POST", "/tasks", {"title": "traced"},
                        headers=h, expect=201, trace_id=TRACE_ID)
        ev = self.rows_since(self.mark() - 1)[0]["event"]
        self.assertNotEqual(ev["traceparent"].split("-")[2], "0" * 16)
        self.change(api, "todo.task.updated", "PATCH", f"/tasks/{t['id']}", {"title": "t2"},
                    headers=h, trace_id=TRACE_ID)

    def test_traceparent_made_when_missing_or_invalid(self):
        api = self.new_user()
        t = api.create_task(title="untraced")
        seen = set()
        for h in (None, {"traceparent": "garbage"},
                  {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"},
                  {"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"},
                  {"traceparent": f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01"},
                  {"traceparent": f"ff-{TRACE_ID}-00f067aa0ba902b7-01"}):
            self.change(api, "todo.task.updated", "PATCH", f"/tasks/{t['id']}",
                        {"title": f"u{len(seen)}"}, headers=h)
            tp = self.rows_since(self.mark() - 1)[0]["event"]["traceparent"]
            trace = tp.split("-")[1]
            if h and h["traceparent"] != "garbage":
                self.assertNotEqual(trace, TRACE_ID, f"{h}: an invalid traceparent was kept")
            seen.add(trace)
        self.assertEqual(len(seen), 6, "each request without a valid traceparent gets a trace")

    # --- failed changes ---------------------------------------------------------------------

    def test_rolled_back_change_leaves_no_row(self):
        api = self.new_user()
        cat = api.create_category("fails")
        tag = api.create_tag("fails")
        t = api.create_task(title="victim", category_id=cat["id"], due_at="2031-01-01T00:00:00Z")
        bystander = api.create_task(title="bystander", category_id=cat["id"])
        self.sql(f"""
            CREATE TABLE public.fail_tasks (task_id text PRIMARY KEY);
            CREATE FUNCTION public.fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.event->'data'->>'title' = 'rollback-me'
                   OR NEW.partition_key IN (SELECT task_id FROM public.fail_tasks) THEN
                    RAISE EXCEPTION '{FAIL_MARK}';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER fail_outbox BEFORE INSERT ON backend.outbox
                FOR EACH ROW EXECUTE FUNCTION public.fail_outbox();
            INSERT INTO public.fail_tasks VALUES ('{t["id"]}');""")
        try:
            before = self.snapshot()
            p = f"/tasks/{t['id']}"
            for method, path, body in (
                    ("POST", "/tasks", {"title": "rollback-me"}),
                    ("PATCH", f"/tasks/{bystander['id']}", {"title": "rollback-me"}),
                    ("PATCH", p, {"title": "changed"}), ("PUT", p, {"title": "replaced"}),
                    ("POST", p + "/complete", None), ("PATCH", p + "/complete", None),
                    ("POST", p + "/snooze", {"minutes": 5}), ("PUT", f"{p}/tags/{tag['id']}", None),
                    ("DELETE", f"/categories/{cat['id']}", None), ("DELETE", p, None)):
                r = api.request(method, path, body=body)
                self.assertIn(r.status, (500, 503), f"{method} {path}: {r!r}")
                self.assertProblem(r, r.status)
                self.assertNotIn(FAIL_MARK, r.body, "the database error leaks to the client")
                self.assertUnchanged(before, f"by the failed {method} {path}")
            # The same connection goes on working.
            for _ in range(4):
                self.assertEqual(api.get(p).status, 200)
        finally:
            self.sql("DROP TRIGGER fail_outbox ON backend.outbox; "
                     "DROP FUNCTION public.fail_outbox(); DROP TABLE public.fail_tasks")
        self.change(api, "todo.task.updated", "PATCH", p, {"title": "works again"})
        self.assertEqual(api.task(t["id"])["version"], 2)

    # --- the documented samples -------------------------------------------------------------

    def test_docs_samples_match_the_events(self):
        doc = os.path.join(todo_test.SOURCE_DIR, "docs", "events.md")
        # Events of every type from a task with every field set and one with none.
        self.lifecycle(self.new_user(), full=True)
        self.lifecycle(self.new_user(), full=False)
        self.assertTrue(os.path.exists(doc), f"{doc} does not exist")
        with open(doc, encoding="utf-8") as f:
            samples = doc_samples(f.read())
        problems = []
        # Every task event carries the same snapshot, so data is compared with all of them.
        datas = [r["event"]["data"] for r in todo_test.outbox_rows(self.cluster)]
        for etype in TASK_EVENT_TYPES:
            written = [r["event"] for r in todo_test.outbox_rows(
                self.cluster, f"event->>'type' = '{etype}'")]
            self.assertTrue(written, f"the backend wrote no {etype} event")
            texts = samples.get(etype, [])
            if not texts:
                problems.append(f"{etype}: no ```json sample under a heading naming it")
            for text in texts:
                try:
                    sample = json.loads(text)
                except ValueError as e:
                    problems.append(f"{etype}: the sample is not JSON: {e}")
                    continue
                if not isinstance(sample, dict) or sample.get("type") != etype:
                    problems.append(f"{etype}: the sample's type is "
                                    f"{sample.get('type') if isinstance(sample, dict) else '?'}")
                    continue
                envelope = {k: v for k, v in sample.items() if k != "data"}
                problems += [f"{etype}: {e}" for e in shape_errors(
                    envelope, [{k: v for k, v in w.items() if k != "data"} for w in written])]
                if "data" not in sample:
                    problems.append(f"{etype}: the sample has no data")
                else:
                    problems += [f"{etype}: {e}" for e in shape_errors(sample["data"], datas,
                                                                        "event.data")]
                for k in ("specversion", "source", "datacontenttype"):
                    if sample.get(k) != written[0][k]:
                        problems.append(f"{etype}: {k} is {sample.get(k)!r}, the backend "
                                        f"writes {written[0][k]!r}")
                data = sample.get("data")
                if isinstance(data, dict) and sample.get("subject") != str(data.get("id")):
                    problems.append(f"{etype}: subject is not the data's task id")
        self.assertEqual(problems, [], "docs/events.md differs from the events:\n"
                         + "\n".join(problems))


if __name__ == "__main__":
    todo_test.run()
