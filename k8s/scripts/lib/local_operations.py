"""test-simplified-operations.sh --target local: what the Dapr Resiliency, the dead-letter topics
and the trace context do for the services, with no code of theirs for it.

- A poison message: a reminder whose recipient the SMTP server refuses with a 4xx every time. The
  email service answers RETRY each time; the sidecar retries per dapr/components/resiliency.yaml
  (maxRetries + 1 attempts in all), then puts it on task-reminders-dlq. Meanwhile other reminders,
  published after the poison was first refused, are mailed.
- A malformed reminder (no usable data) is dead-lettered at once (DROP): not retried.
- A transient failure: a recipient refused twice, then accepted: mailed once, after 3 attempts,
  not dead-lettered.
- Trace context: one request (completing a weekly task, with a traceparent header) whose effects
  cross every service: the backend (the request, then the next occurrence), recurring (the next
  occurrence), notification (the reminder cancelled, the next one armed and fired) and email (its
  mail). Every service logs lines with that trace id; the events carry it."""

import argparse
import datetime
import os
import secrets
import time
import uuid

import yaml

import localstack
from localstack import SLOW, iso, wait_until

REFUSAL = "451 4.3.0 Mailbox temporarily unavailable"


def delivery_retries(components):
    """maxRetries of the retry policy that the Resiliency of `components` gives pubsub inbound."""
    with open(os.path.join(components, "resiliency.yaml")) as f:
        spec = yaml.safe_load(f)["spec"]
    name = spec["targets"]["components"]["pubsub"]["inbound"]["retry"]
    return int(spec["policies"]["retries"][name]["maxRetries"]), name


def email_lines(system, needle):
    """(time, msg) of the email service's log lines whose message contains needle."""
    out = []
    for ln in system.get("email").log_lines():
        if needle in ln.get("msg", ""):
            t = ln["time"].replace("Z", "+00:00")
            out.append((datetime.datetime.fromisoformat(t).timestamp(), ln["msg"]))
    return out


def reminder_event_id(system, task_id):
    rows = system.sql("SELECT event->>'id' FROM notification.outbox "
                      f"WHERE event->'data'->>'task_id' = '{task_id}' ORDER BY id")
    return rows[0][0] if rows else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--others", type=int, default=10,
                    help="reminders published while the poison is being retried")
    a = ap.parse_args()
    v = localstack.Verdict("simplified operations (Resiliency, dead letters, trace context), local")
    retries, policy = delivery_retries(localstack.KAFKA_COMPONENTS)
    v.figure("Resiliency of pubsub inbound", f"policy {policy}, maxRetries {retries} "
             f"(dapr/components/resiliency.yaml)")

    system = localstack.LocalSystem()
    try:
        debug = {"LOG_LEVEL": "debug"}
        system.start_all(env={name: debug for name in localstack.SERVICES})
        probe, probe_sidecar = system.probe(["task-reminders-dlq"])
        smtp = system.smtp
        smtp.refuse_rcpt("poison@ops.test", REFUSAL)
        smtp.refuse_rcpt("flaky@ops.test", REFUSAL, times=2)
        tag = uuid.uuid4().hex[:6]
        now = time.time()

        # The poison and the transient failure, due in 2 s.
        poison = system.api("poison", "poison@ops.test").create_task(
            title=f"poison {tag}", due_at=iso(now + 3600), remind_at=iso(now + 2))
        flaky = system.api("flaky", "flaky@ops.test").create_task(
            title=f"flaky {tag}", due_at=iso(now + 3600), remind_at=iso(now + 2))

        # The traced request: a weekly task due a week ago less 6 s is completed; its next
        # occurrence is due (and reminded) in about 6 s.
        trace_id = secrets.token_hex(16)
        traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        tracer = system.api("tracer", "tracer@ops.test")
        weekly = tracer.create_task(title=f"traced {tag}", due_at=iso(now - 7 * 86400 + 6),
                                    recurrence_rule="FREQ=WEEKLY", remind_before_minutes=0)
        r = tracer.post(f"/tasks/{weekly['id']}/complete", headers={"traceparent": traceparent})
        v.check(r.status == 200, "the traced request (complete a weekly task) answered 200", repr(r))

        # Other messages, published once the poison has been refused the first time.
        wait_until(lambda: smtp.rcpt_attempts("poison@ops.test") >= 1, 30 * SLOW, interval=0.05,
                   what="the poison's first attempt")
        first_refusal = time.time()
        others = []
        for i in range(a.others):
            api = system.api(f"other{i}", f"other{i}@ops.test")
            others.append(api.create_task(title=f"other {i} {tag}", due_at=iso(now + 3600),
                                          remind_at=iso(time.time() + 1)))

        # A malformed reminder published straight to task-reminders.
        bad_id = str(uuid.uuid4())
        r = probe_sidecar.publish("task-reminders", {
            "specversion": "1.0", "id": bad_id, "source": "todo/ops-test",
            "type": "todo.reminder.due", "datacontenttype": "application/json",
            "data": {"task_id": "not a number"}})
        v.check(r.status == 204, "a malformed reminder published to task-reminders", repr(r))

        # Everything settles within the poison's retry budget (exponential, at most 10 s apart).
        budget = 30 + 12 * (retries + 1)

        def dead(task_id=None, event_id=None):
            out = []
            for req in probe.requests("/task-reminders-dlq"):
                ev = req.json()
                d = ev.get("data") if isinstance(ev.get("data"), dict) else {}
                if (event_id and ev.get("id") == event_id) or (task_id and d.get("task_id") == task_id):
                    out.append((req.time, ev))
            return out
        try:
            probe.wait_until(lambda: dead(task_id=poison["id"]), budget * SLOW,
                             what="the poison on task-reminders-dlq")
        except AssertionError as e:
            v.check(False, "the poison reached task-reminders-dlq", str(e))
        dlq_wall = time.time() - (time.monotonic() - dead(task_id=poison["id"])[0][0]) \
            if dead(task_id=poison["id"]) else None
        mails = lambda: localstack.mails_by_subject(smtp)  # noqa: E731
        wait_until(lambda: all(o["title"] in mails() for o in others) and
                   f"flaky {tag}" in mails() and f"traced {tag}" in mails(), 60 * SLOW,
                   interval=0.1, what="the other mails")

        v.section("a poison message: retried per the Resiliency, then dead-lettered")
        attempts = smtp.rcpt_attempts("poison@ops.test")
        v.check(attempts == retries + 1, f"the poison was tried {retries + 1} times "
                f"(1 + maxRetries {retries})", f"{attempts} attempts")
        pd = dead(task_id=poison["id"])
        v.check(len(pd) == 1, "the poison is on task-reminders-dlq once", f"{len(pd)} times")
        v.check(not smtp.messages(rcpt="poison@ops.test"), "no mail was sent for the poison")
        poison_event = reminder_event_id(system, poison["id"])
        v.check(pd and pd[0][1].get("id") == poison_event,
                "the dead letter is the original event (same id)", str(poison_event))
        fails = [t for t, _ in email_lines(system, f"event {poison_event}: SMTP failed")]
        gaps = [b - a_ for a_, b in zip(fails, fails[1:])]
        v.figure("attempts of the poison", str(len(fails)))
        v.figure("gaps between attempts", ", ".join(f"{g:.1f} s" for g in gaps) or "-")
        if dlq_wall and fails:
            v.figure("first attempt → dead letter", f"{dlq_wall - fails[0]:.1f} s")
        # "Meanwhile": before the poison's last attempt.
        last_attempt = fails[-1] if fails else 0
        early = [o for o in others
                 if o["title"] in mails() and mails()[o["title"]][0].time < last_attempt]
        v.check(len(early) >= 1, "other reminders were mailed while the poison was being retried",
                "none before the poison's last attempt")
        v.figure("others mailed meanwhile", f"{len(early)} of {len(others)}"
                 + (" (the others share the poison's partition and follow it)"
                    if len(early) < len(others) else ""))
        lat = [mails()[o["title"]][0].time - localstack.todo_test.parse_time(o["remind_at"]).timestamp()
               for o in others if o["title"] in mails()]
        v.figure("others: remind_at → mail", localstack.latency_summary(lat))
        counts = [len(mails().get(o["title"], [])) for o in others]
        v.check(all(c == 1 for c in counts), f"all {len(others)} other reminders mailed exactly once",
                str(counts))
        last = max(mails()[o["title"]][0].time for o in others if o["title"] in mails())
        v.figure("first refusal → last other mail", f"{last - first_refusal:.1f} s")

        v.section("a malformed message: dead-lettered at once, not retried")
        bd = dead(event_id=bad_id)
        v.check(len(bd) == 1, "the malformed reminder is on task-reminders-dlq once", f"{len(bd)}")
        handled = len(email_lines(system, f"event {bad_id}: malformed reminder"))
        v.check(handled == 1, "the email service saw it once (DROP is not retried)",
                f"{handled} times")

        v.section("a transient failure: succeeds after retries")
        v.check(smtp.rcpt_attempts("flaky@ops.test") == 3, "tried 3 times (refused twice)",
                f"{smtp.rcpt_attempts('flaky@ops.test')} attempts")
        fm = smtp.messages(rcpt="flaky@ops.test")
        v.check(len(fm) == 1, "mailed exactly once", f"{len(fm)} mails")
        v.check(not dead(task_id=flaky["id"]), "not dead-lettered")
        ff = [t for t, _ in email_lines(system, f"event {reminder_event_id(system, flaky['id'])}: "
                                        "SMTP failed")]
        if ff and fm:
            v.figure("first attempt → mailed", f"{fm[0].time - ff[0]:.1f} s")

        v.section(f"trace context: trace {trace_id} in every service")
        for name in localstack.SERVICES:
            lines = [ln for ln in system.get(name).log_lines() if ln.get("trace_id") == trace_id]
            v.check(lines, f"{name} logged {len(lines)} lines with the request's trace id",
                    "none")
            for ln in lines[:4]:
                v.note(f"    {name}: [{ln.get('module')}] {ln.get('msg', '')[:110]}")
        rows = system.sql("SELECT event->>'type', event->>'traceparent' FROM backend.outbox "
                          f"WHERE partition_key = '{weekly['id']}' ORDER BY id")
        completed = [tp for typ, tp in rows if typ == "todo.task.completed"]
        v.check(completed and trace_id in completed[0],
                "the backend's todo.task.completed event carries the request's traceparent",
                str(rows))
        rows = system.sql("SELECT event->>'traceparent' FROM notification.outbox "
                          f"WHERE event->'data'->>'title' = 'traced {tag}'")
        v.check(rows and trace_id in rows[0][0],
                "the reminder of the next occurrence carries it too", str(rows))

        bad = system.stop_instances()
        v.check(not bad, "every process stopped with exit 0", str(bad))
        problems = system.problems()
        v.check(not problems, "no error line or sanitizer report in any log",
                "\n".join(problems[:10]))
    finally:
        system.close()
    return v.finish()


if __name__ == "__main__":
    localstack.main_guard(main)
