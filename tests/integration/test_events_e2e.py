"""End to end through the sidecar doubles and kafka-mock: the backend's outbox relay publishes
task changes to task-events, the recurring service turns a completed recurring task into
todo.recurrence.next on task-recurrence, and the backend creates the next occurrence once.
Also: a probe app (its own app-id, so it sees every event) checks order and completeness while
the backend's sidecar is down; duplicate and malformed deliveries; /dapr/subscribe and app
tokens."""

import re
import signal
import uuid

import event_docs
import stack
import todo_test
from sidecar_app import SidecarApp
from todo_test import SLOW, wait_until

APP_TOKEN = "app-token-for-the-e2e-test-0123456789"


class EventsEndToEnd(todo_test.ServiceTestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = stack.Stack()
        try:
            # A probe app of its own app-id: it gets every task event and every dead letter.
            cls.probe = SidecarApp()
            cls.probe.subscribe(200, [
                {"pubsubname": "pubsub", "topic": "task-events", "route": "/task-events"},
                {"pubsubname": "pubsub", "topic": "task-recurrence-dlq", "route": "/dlq"},
                {"pubsubname": "pubsub", "topic": "task-recurrence", "route": "/recurrence"},
            ])
            cls.probe_sidecar = cls.stack.sidecar("probe", app_port=cls.probe.port)
            cls.probe_sidecar.wait_healthy()
            cls.backend, cls.backend_sidecar = cls.stack.backend(
                env={"APP_API_TOKEN": APP_TOKEN}, sidecar_env={"APP_API_TOKEN": APP_TOKEN})
            cls.recurring, cls.recurring_sidecar = cls.stack.recurring()
            for sc in (cls.backend_sidecar, cls.recurring_sidecar):
                sc.wait_healthy()
            cls.api = todo_test.Api(cls.backend, "erin", email="erin@example.com")
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            bad = cls.stack.stop_all()
            problems = cls.stack.problems()
            if bad or problems:
                raise AssertionError(f"exits {bad}; problems:\n" + "\n".join(problems[:20]))
        finally:
            cls.probe.close()
            cls.stack.close()

    # -- helpers --

    def probe_events(self, task_id=None):
        out = []
        for r in self.probe.requests("/task-events"):
            ev = r.json()
            if task_id is None or ev["subject"] == str(task_id):
                out.append(ev)
        return out

    def occurrences(self, series_title):
        items, _ = self.api.list_all(q=series_title)
        return sorted((t for t in items if t["title"] == series_title),
                      key=lambda t: t["occurrence"] or 1)

    # -- recurrence --

    def test_weekly_series_across_dst(self):
        api = self.api
        tag = api.create_tag("gym")
        title = "Swim " + uuid.uuid4().hex[:8]
        # Wednesday 2027-03-24 09:00 in Berlin is CET (08:00Z); the next, Monday 03-29, is after
        # the change to CEST on 03-28 (07:00Z); COUNT=3 ends the series on Wednesday 03-31.
        first = api.create_task(title=title, due_at="2027-03-24T09:00:00+01:00",
                                timezone="Europe/Berlin", tag_ids=[tag["id"]],
                                recurrence_rule="FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3",
                                remind_before_minutes=30, priority="high")
        self.assertEqual(first["due_at"], "2027-03-24T08:00:00Z")
        r = api.post(f"/tasks/{first['id']}/complete")
        self.assertEqual(r.status, 200, r)

        got = wait_until(lambda: len(self.occurrences(title)) == 2 and self.occurrences(title),
                         30 * SLOW, what="the second occurrence")
        second = got[1]
        self.assertEqual(second["due_at"], "2027-03-29T07:00:00Z")
        self.assertEqual(second["remind_at"], "2027-03-29T06:30:00Z")
        self.assertEqual(second["occurrence"], 2)
        self.assertEqual(second["series_start_at"], "2027-03-24T08:00:00Z")
        self.assertEqual([t["id"] for t in second["tags"]], [tag["id"]])
        self.assertEqual(second["priority"], "high")
        self.assertEqual(second["timezone"], "Europe/Berlin")
        self.assertEqual(second["recurrence_rule"], "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=3")
        self.assertFalse(second["completed"])
        series = second["series_id"]
        self.assertRegex(series, todo_test.UUID_RE)

        r = api.post(f"/tasks/{second['id']}/complete")
        self.assertEqual(r.status, 200, r)
        got = wait_until(lambda: len(self.occurrences(title)) == 3 and self.occurrences(title),
                         30 * SLOW, what="the third occurrence")
        third = got[2]
        self.assertEqual(third["due_at"], "2027-03-31T07:00:00Z")
        self.assertEqual((third["series_id"], third["occurrence"]), (series, 3))

        # The last one: the recurring service sees it and publishes nothing.
        seen_before = self.recurring.logs().count("no next occurrence")
        r = api.post(f"/tasks/{third['id']}/complete")
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: self.recurring.logs().count("no next occurrence") > seen_before,
                   30 * SLOW, what="the recurring service to see the last completion")
        # Its events are through (the probe, a later consumer of the same topic, has them all).
        wait_until(lambda: any(e["type"] == "todo.task.completed"
                               for e in self.probe_events(third["id"])), 30 * SLOW,
                   what="the last completion at the probe")
        self.assertEqual(len(self.occurrences(title)), 3)
        # What the recurring service published has the shape of docs/events.md's sample.
        nexts = [event_docs.as_produced(r.json()) for r in self.probe.requests("/recurrence")
                 if r.json().get("source") == "todo/recurring"]
        self.assertEqual(len([e for e in nexts if e["data"]["series_id"] == series]), 2)
        event_docs.check_against_samples(self, "todo.recurrence.next", nexts)

    def test_duplicate_and_malformed_deliveries(self):
        api = self.api
        title = "Dup " + uuid.uuid4().hex[:8]
        series = str(uuid.uuid4())
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "todo/test",
                 "type": "todo.recurrence.next", "subject": "1",
                 "datacontenttype": "application/json",
                 "data": {"series_id": series, "occurrence": 2,
                          "series_start_at": "2030-01-01T10:00:00Z", "user_id": api.user,
                          "previous_task_id": 1,
                          "task": {"title": title, "description": "", "priority": "low",
                                   "category_id": None, "tag_ids": [],
                                   "due_at": "2030-01-02T10:00:00Z", "timezone": "UTC",
                                   "recurrence_rule": "FREQ=DAILY",
                                   "remind_before_minutes": None}}}
        api.list()  # the user exists
        # The same CloudEvent twice, and another event for the same occurrence: one task.
        for _ in range(2):
            r = self.probe_sidecar.publish("task-recurrence", event)
            self.assertEqual(r.status, 204, r)
        again = dict(event, id=str(uuid.uuid4()))
        r = self.probe_sidecar.publish("task-recurrence", again)
        self.assertEqual(r.status, 204, r)
        wait_until(lambda: self.backend.logs().count(f"series {series} already has occurrence 2")
                   >= 1 and self.backend.logs().count("was handled before") >= 1, 30 * SLOW,
                   what="the duplicates to be seen")
        self.assertEqual(len(self.occurrences(title)), 1)
        self.assertEqual(int(self.stack.cluster.scalar(
            f"SELECT count(*) FROM backend.processed_events WHERE event_id IN "
            f"('{event['id']}', '{again['id']}')", "todo")), 2)

        # Malformed: not a CloudEvent, and a CloudEvent whose data cannot make a task.
        bad_ids = []
        r = self.probe_sidecar.publish("task-recurrence", b"{not json",
                                       content_type="application/cloudevents+json")
        self.assertEqual(r.status, 500, r)  # the sidecar refuses it (DAPR-CONTRACT §1.1)
        r = self.probe_sidecar.publish("task-recurrence", b"plain text", content_type="text/plain")
        self.assertEqual(r.status, 204, r)
        broken = dict(event, id=str(uuid.uuid4()))
        broken["data"] = dict(event["data"], task={"title": ""}, occurrence=5)
        bad_ids.append(broken["id"])
        r = self.probe_sidecar.publish("task-recurrence", broken)
        self.assertEqual(r.status, 204, r)
        dl = self.probe.wait_for("/dlq", 2, timeout=30 * SLOW)
        bodies = [d.json() for d in dl]
        self.assertIn("plain text", [b.get("data") for b in bodies])
        self.assertIn(broken["id"], [b.get("id") for b in bodies])
        self.assertEqual(len(self.occurrences(title)), 1)

    # -- the outbox while the sidecar is down --

    def test_sidecar_down_nothing_lost_in_order(self):
        api = self.api
        tasks = [api.create_task(title=f"Order {i} " + uuid.uuid4().hex[:6]) for i in range(5)]
        ids = [t["id"] for t in tasks]
        wait_until(lambda: all(self.probe_events(i) for i in ids), 30 * SLOW,
                   what="the created events")
        # Killed, not stopped: a draining sidecar still serves the relay's open connection.
        self.backend_sidecar.stop(signal.SIGKILL)
        try:
            for n in range(20):  # 100 changes: 20 PATCHes of each of 5 tasks
                for t in tasks:
                    r = api.patch(f"/tasks/{t['id']}", {"description": f"change {n}"})
                    self.assertEqual(r.status, 200, r)
            # The relay has found the sidecar gone and holds the changes back.
            wait_until(lambda: re.search(r'outbox_failed_total\{table="backend.outbox"\} [1-9]',
                                         self.backend.request("GET", "/metrics").body),
                       30 * SLOW, what="the relay to see the sidecar down")
        finally:
            self.backend_sidecar.start()
        self.backend_sidecar.wait_healthy()
        wait_until(lambda: all(len(self.probe_events(i)) >= 21 for i in ids), 60 * SLOW,
                   what="every change at the probe")
        for i in ids:
            evs = self.probe_events(i)
            versions = [e["data"]["version"] for e in evs]
            self.assertEqual(versions, list(range(1, 22)), f"task {i}: {versions}")
            self.assertEqual(len({e["id"] for e in evs}), len(evs), f"task {i}: a duplicate")
        pending = self.stack.cluster.scalar(
            "SELECT count(*) FROM backend.outbox WHERE published_at IS NULL", "todo")
        self.assertEqual(int(pending), 0)
        # The relay's figures in /metrics.
        m = self.backend.request("GET", "/metrics").body
        self.assertRegex(m, r'outbox_published_total\{table="backend.outbox"\} [1-9]\d*')
        self.assertRegex(m, r'outbox_failed_total\{table="backend.outbox"\} [1-9]\d*',
                         [ln for ln in self.backend.logs().splitlines() if "outbox" in ln])
        self.assertIn('outbox_relay_leader{table="backend.outbox"} 1', m)

    # -- the app channel --

    def test_subscribe_and_app_token(self):
        r = self.backend.request("GET", "/dapr/subscribe", headers={"dapr-api-token": APP_TOKEN})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, [{"pubsubname": "pubsub", "topic": "task-recurrence",
                                   "route": "/events/task-recurrence",
                                   "deadLetterTopic": "task-recurrence-dlq"}])
        for headers in ({}, {"dapr-api-token": "wrong"}):
            r = self.backend.request("GET", "/dapr/subscribe", headers=headers)
            self.assertEqual(r.status, 401, r)
            r = self.backend.request("POST", "/events/task-recurrence", raw=b"{}",
                                     headers=dict(headers, **{"Content-Type": "application/json"}))
            self.assertEqual(r.status, 401, r)
        r = self.recurring.request("GET", "/dapr/subscribe")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, [{"pubsubname": "pubsub", "topic": "task-events",
                                   "route": "/events/task-events",
                                   "deadLetterTopic": "task-events-dlq"}])


if __name__ == "__main__":
    todo_test.run()
