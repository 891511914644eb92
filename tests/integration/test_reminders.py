"""Reminders end to end through the sidecar doubles and kafka-mock: task changes from the backend
feed the notification service's projection; the one-shot job reminder-<task_id> and the
reminder-sweep job turn due reminders into todo.reminder.due events on task-reminders, which the
email service mails to a real SMTP server and a probe app (its own app-id) also receives. Exactly
one event and one mail per reminder, never before remind_at; deleted, completed, moved and snoozed
reminders; reminders missed while the service was down; job triggers delivered twice."""

import datetime
import json
import time
import uuid

import event_docs
import stack
import todo_test
from sidecar_app import SidecarApp
from smtp_server import SmtpServer
from todo_test import SLOW, wait_until


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class Reminders(todo_test.ServiceTestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = stack.Stack()
        cls.smtp = SmtpServer()
        try:
            cls.probe = SidecarApp()
            cls.probe.subscribe(200, [{"pubsubname": "pubsub", "topic": "task-reminders",
                                       "route": "/reminders"}])
            cls.probe_sidecar = cls.stack.sidecar("probe", app_port=cls.probe.port)
            cls.probe_sidecar.wait_healthy()
            cls.backend, cls.backend_sidecar = cls.stack.backend()
            cls.notification, cls.notification_sidecar = cls.stack.notification(
                env={"TASK_LINK_BASE": "https://todo.test/tasks/"})
            cls.email, cls.email_sidecar = cls.stack.start(
                "todo-email", "email", env={"SMTP_URL": cls.smtp.url,
                                            "MAIL_FROM": "todo@example.com"})
            for sc in (cls.backend_sidecar, cls.notification_sidecar, cls.email_sidecar):
                sc.wait_healthy()
            cls.api = todo_test.Api(cls.backend, "rita", email="rita@example.com")
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
            cls.smtp.close()
            cls.stack.close()

    def reminders_of(self, task_id):
        return [(r.time, r.json()) for r in self.probe.requests("/reminders")
                if r.json()["data"]["task_id"] == task_id]

    def mails_of(self, task):
        return [m for m in self.smtp.messages(rcpt="rita@example.com")
                if task["title"] in str(m.msg["Subject"])]

    def assert_one_mail(self, task, remind_at, timeout=30):
        """Exactly one mail for the task (after the event that caused it), not before remind_at."""
        got = self.smtp.wait_for(lambda: self.mails_of(task), timeout * SLOW,
                                 what=f"the mail of task {task['id']}")
        self.assertGreaterEqual(got[0].time + 0.05, remind_at, "a mail arrived early")
        self.assertEqual(got[0].rcpt_tos, ["rita@example.com"])
        return got[0]

    def new_task(self, ahead, **fields):
        remind = time.time() + ahead
        t = self.api.create_task(title=fields.pop("title", "Call " + uuid.uuid4().hex[:6]),
                                 remind_at=iso(remind), **fields)
        return t, remind

    def assert_one_reminder(self, task, remind_at, timeout=30):
        got = self.probe.wait_until(lambda: self.reminders_of(task["id"]), timeout * SLOW,
                                    what=f"the reminder of task {task['id']}")
        arrived, ev = got[0]
        # The probe's monotonic clock against the wall clock of remind_at: the arrival, taken in
        # wall time right after, cannot be earlier than remind_at.
        wall_arrival = time.time() - (time.monotonic() - arrived)
        self.assertGreaterEqual(wall_arrival + 0.05, remind_at, "a reminder arrived early")
        return ev

    # -- the tests --

    def test_reminder_fires_once_with_what_the_mail_needs(self):
        t, remind = self.new_task(3, description="Bring the papers",
                                  due_at=iso(time.time() + 3600), timezone="Europe/Berlin")
        ev = self.assert_one_reminder(t, remind)
        self.assertEqual(ev["type"], "todo.reminder.due")
        self.assertEqual(ev["source"], "todo/notification")
        self.assertEqual(ev["subject"], str(t["id"]))
        self.assertRegex(ev["id"], todo_test.UUID_RE)
        d = ev["data"]
        self.assertEqual(d, {"task_id": t["id"], "user_id": "rita", "email": "rita@example.com",
                             "title": t["title"], "description": "Bring the papers",
                             "due_at": t["due_at"], "remind_at": t["remind_at"],
                             "timezone": "Europe/Berlin",
                             "link": f"https://todo.test/tasks/{t['id']}"})
        self.assertRegex(ev.get("traceparent", ""), todo_test.TRACEPARENT_RE)
        # docs/events.md's sample has the shape of what the service writes to its outbox.
        rows = self.stack.cluster.psql("SELECT event::text FROM notification.outbox", "todo")
        event_docs.check_against_samples(self, "todo.reminder.due",
                                         [json.loads(r[0]) for r in rows])
        mail = self.assert_one_mail(t, remind)
        self.assertIn(t["title"], str(mail.msg["Subject"]))
        self.assertIn("Bring the papers", mail.text())
        self.assertIn(f"https://todo.test/tasks/{t['id']}", mail.text())
        self.assertIn(f"https://todo.test/tasks/{t['id']}", mail.html())
        # No second one: the next sweeps find nothing for it.
        self.wait_sweeps(2)
        self.assertEqual(len(self.reminders_of(t["id"])), 1)
        self.assertEqual(len(self.mails_of(t)), 1)

    def wait_sweeps(self, n):
        """Until n more reminder-sweep triggers reached the service."""
        def count():
            m = self.notification.request("GET", "/metrics").body
            for line in m.splitlines():
                if line.startswith('http_requests_total{route="/job/{name}",method="POST",'
                                   'status="200"}'):
                    return int(line.split()[-1])
            return 0
        start = count()
        wait_until(lambda: count() >= start + n, 30 * SLOW, what=f"{n} job triggers")

    def test_deleted_before_it_fires(self):
        t, _ = self.new_task(3)
        self.assertEqual(self.api.delete(f"/tasks/{t['id']}").status, 204)
        control, remind = self.new_task(4)
        self.assert_one_reminder(control, remind)
        self.assert_one_mail(control, remind)
        self.wait_sweeps(1)
        self.assertEqual(self.reminders_of(t["id"]), [])
        self.assertEqual(self.mails_of(t), [])

    def test_completed_before_it_fires(self):
        t, _ = self.new_task(3)
        self.assertEqual(self.api.post(f"/tasks/{t['id']}/complete").status, 200)
        control, remind = self.new_task(4)
        self.assert_one_reminder(control, remind)
        self.assert_one_mail(control, remind)
        self.wait_sweeps(1)
        self.assertEqual(self.reminders_of(t["id"]), [])
        self.assertEqual(self.mails_of(t), [])

    def test_moved_fires_at_the_new_time_only(self):
        t, _ = self.new_task(2)
        later = time.time() + 6
        r = self.api.patch(f"/tasks/{t['id']}", {"remind_at": iso(later)})
        self.assertEqual(r.status, 200, r)
        ev = self.assert_one_reminder(t, later)
        self.assertEqual(ev["data"]["remind_at"], r.json["remind_at"])
        self.assert_one_mail(t, later)
        self.wait_sweeps(1)
        self.assertEqual(len(self.reminders_of(t["id"])), 1)
        self.assertEqual(len(self.mails_of(t)), 1)

    def test_snoozed_fires_again(self):
        t, remind = self.new_task(2, due_at=iso(time.time() + 7200))
        self.assert_one_reminder(t, remind)
        r = self.api.post(f"/tasks/{t['id']}/snooze", {"minutes": 1})
        self.assertEqual(r.status, 200, r)
        snoozed_to = todo_test.parse_time(r.json["remind_at"]).timestamp()
        got = self.probe.wait_until(lambda: len(self.reminders_of(t["id"])) >= 2 and
                                    self.reminders_of(t["id"]), (60 + 30) * SLOW,
                                    what="the snoozed reminder")
        arrived, ev = got[1]
        self.assertGreaterEqual(time.time() - (time.monotonic() - arrived) + 0.05, snoozed_to)
        self.assertEqual(ev["data"]["remind_at"], r.json["remind_at"])
        self.assertNotEqual(ev["id"], got[0][1]["id"])
        mails = self.smtp.wait_for(lambda: len(self.mails_of(t)) >= 2 and self.mails_of(t),
                                   30 * SLOW, what="the mail of the snoozed reminder")
        self.assertGreaterEqual(mails[1].time + 0.05, snoozed_to)
        self.assertEqual(len(mails), 2)

    def test_missed_while_down_sent_once_when_back(self):
        # The service and its sidecar are down (a pod gone): the task events wait in Kafka.
        self.assertEqual(self.notification.stop(), 0)
        self.assertEqual(self.notification_sidecar.stop(), 0)
        try:
            t, remind = self.new_task(1)
            old, _ = self.new_task(-3 * 86400)  # older than the 24 h catch-up window
            wait_until(lambda: time.time() > remind + 1, 5)
        finally:
            self.notification_sidecar.start()
            self.notification.start()
        ev = self.assert_one_reminder(t, remind)
        self.assertEqual(ev["data"]["task_id"], t["id"])
        self.assert_one_mail(t, remind)
        self.wait_sweeps(1)
        self.assertEqual(len(self.reminders_of(t["id"])), 1)
        self.assertEqual(len(self.mails_of(t)), 1)
        self.assertEqual(self.reminders_of(old["id"]), [])
        self.assertEqual(self.mails_of(old), [])
        status = self.stack.cluster.scalar(
            f"SELECT status FROM notification.reminders WHERE task_id = {old['id']}", "todo")
        self.assertEqual(status, "missed")

    def test_trigger_twice_no_duplicate(self):
        t, remind = self.new_task(2)
        self.assert_one_reminder(t, remind)
        self.assert_one_mail(t, remind)
        for _ in range(2):
            r = self.notification.request("POST", f"/job/reminder-{t['id']}", raw=b'{}',
                                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r)
        # The reminder event delivered again (a redelivery after the mail went out): no mail.
        ev = self.reminders_of(t["id"])[0][1]
        r = self.probe_sidecar.publish("task-reminders", event_docs.as_produced(ev))
        self.assertEqual(r.status, 204, r)
        self.probe.wait_until(lambda: len(self.reminders_of(t["id"])) == 2, 30 * SLOW,
                              what="the redelivered event at the probe")
        self.wait_sweeps(1)
        self.assertEqual(len(self.reminders_of(t["id"])), 2)  # the original and the republished
        self.assertEqual(len(self.mails_of(t)), 1)

    def test_notification_sidecar_restarted_mid_run(self):
        """Reminders due while the notification sidecar restarts: each mailed once."""
        tasks = [self.new_task(1 + i * 0.2) for i in range(10)]
        self.assertEqual(self.notification_sidecar.stop(), 0)
        self.notification_sidecar.start()
        self.notification_sidecar.wait_healthy()
        for t, remind in tasks:
            self.assert_one_mail(t, remind, timeout=60)
        self.wait_sweeps(2)
        for t, _ in tasks:
            self.assertEqual(len(self.mails_of(t)), 1, t)


if __name__ == "__main__":
    todo_test.run()
