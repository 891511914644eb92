"""Replicas: three notification replicas and two email replicas (each with its own sidecar, one
app-id per service, sharing the jobs store), 200 reminders due within a few seconds; one
notification replica and one email replica are killed (kill -9, the process and its sidecar, as a
pod dies) while the reminders fall due. Every reminder is mailed exactly once, none before its
time. The one duplicate the design allows (docs/email.md) is a mail the killed email replica had
handed to the SMTP server but not yet recorded as sent: its first copy arrived just before the
kill."""

import datetime
import signal
import time
import uuid

import stack
import todo_test
from smtp_server import SmtpServer
from todo_test import SLOW, wait_until

REMINDERS = 200


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class ReminderReplicas(todo_test.ServiceTestCase):

    def test_each_reminder_mailed_once(self):
        st = stack.Stack()
        smtp = SmtpServer()
        try:
            backend, _ = st.backend()
            # A short claim lease, so that a mail the killed replica was sending is taken over
            # well within the deliveries' retries (dapr/components/resiliency.yaml).
            email_env = {"SMTP_URL": smtp.url, "MAIL_FROM": "todo@example.com",
                         "SMTP_TIMEOUT_SECONDS": "5", "CLAIM_LEASE_SECONDS": "10"}
            notifications = [st.notification() for _ in range(3)]
            emails = [st.start("todo-email", "email", env=email_env) for _ in range(2)]
            for _, sc in notifications + emails:
                sc.wait_healthy()

            api = todo_test.Api(backend, "nora", email="nora@example.com")
            run = uuid.uuid4().hex[:6]
            start = time.time() + 8
            tasks = []
            for i in range(REMINDERS):  # due over 4 s, starting 8 s from now
                remind = start + (i % 40) * 0.1
                t = api.create_task(title=f"R{i} {run}", remind_at=iso(remind))
                tasks.append((t, remind))
            self.assertLess(time.time(), start, "creating the tasks took too long for the test")

            def mailed():
                return sum(1 for m in smtp.messages() if run in str(m.msg["Subject"]))

            # Kill one of each while the reminders are being mailed.
            wait_until(lambda: mailed() >= 20, 60 * SLOW, what="the first mails")
            for svc, sc in (notifications[0], emails[0]):
                svc.proc.send_signal(signal.SIGKILL)
                sc.proc.send_signal(signal.SIGKILL)
                svc.proc.wait()
                sc.proc.wait()
            killed_time = time.time()
            killed_at = mailed()

            wait_until(lambda: mailed() >= REMINDERS, 180 * SLOW,
                       what=f"{REMINDERS} mails (got {mailed()})")
            # A duplicate would come late (a redelivery after a lease or a retry): watch a while.
            quiet_until = time.time() + 12 * SLOW
            wait_until(lambda: time.time() > quiet_until, 20 * SLOW, what="a quiet period")

            counts = {}
            for m in smtp.messages():
                counts.setdefault(str(m.msg["Subject"]), []).append(m)
            early, window = [], []
            for t, remind in tasks:
                got = sorted((m for subject, ms in counts.items() if subject.endswith(t["title"])
                              for m in ms), key=lambda m: m.time)
                self.assertGreaterEqual(len(got), 1, f"{t['title']}: no mail")
                if len(got) > 1:
                    # Only a mail in flight at the email replica's death may come twice.
                    self.assertEqual(len(got), 2, f"{t['title']}: {len(got)} mails")
                    self.assertLess(abs(killed_time - got[0].time), 2.0 * SLOW,
                                    f"{t['title']}: a duplicate not explained by the kill")
                    window.append(t["title"])
                if got[0].time + 0.05 < remind:
                    early.append(t["title"])
            self.assertEqual(early, [])
            print(f"{REMINDERS} reminders, {len(window)} mailed twice (in flight at the kill): "
                  f"{window}", flush=True)
            self.assertEqual(smtp.maildir_count(), REMINDERS + len(window))
            self.assertGreater(killed_at, 0)
            self.assertLess(killed_at, REMINDERS, "the replicas died after all the mail was out")
        finally:
            for svc, sc in st.instances:
                if svc.proc.poll() is None:
                    svc.stop()
                if sc.proc.poll() is None:
                    sc.stop()
            problems = [p for p in st.problems()]
            smtp.close()
            st.close()
        self.assertEqual(problems, [])


if __name__ == "__main__":
    todo_test.run()
