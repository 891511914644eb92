"""test-infrastructure-swap.sh --target local: N task events with reminders and M recurring
completions on Kafka (kafka-mock); every sidecar restarted on dapr/components-redis (pubsub on
Redis Streams, same component name) and every service restarted with the same executable and
environment; N and M more; back to Kafka; N and M more. Checks that each event was processed
exactly once in effect (one mail per reminder, one next occurrence per completion, one projection
row per task), that the events of each phase went through the broker of that phase, and that only
the component files changed. Prints counts and latencies per phase."""

import argparse
import filecmp
import hashlib
import os
import time
import uuid

import localstack
from localstack import SLOW, iso, latency_summary, wait_until

PHASES = [("kafka", localstack.KAFKA_COMPONENTS, "pubsub.kafka"),
          ("redis", localstack.REDIS_COMPONENTS, "pubsub.redis"),
          ("kafka again", localstack.KAFKA_COMPONENTS, "pubsub.kafka")]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def executables():
    names = [exe for exe, _ in localstack.SERVICES.values()] + ["dapr-sidecar"]
    return {n: sha256(os.path.join(localstack.todo_test.BIN_DIR, n)) for n in names}


def component_difference():
    """The files of dapr/components and dapr/components-redis that differ."""
    a, b = localstack.KAFKA_COMPONENTS, localstack.REDIS_COMPONENTS
    names = sorted(set(os.listdir(a)) | set(os.listdir(b)))
    return [n for n in names
            if not (os.path.exists(os.path.join(a, n)) and os.path.exists(os.path.join(b, n))
                    and filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False))]


def db_now(system):
    return system.scalar("SELECT now()::text")


class Phase:
    def __init__(self, k, name, broker):
        self.k, self.name, self.broker = k, name, broker
        self.reminders = {}   # task id -> (title, remind_at unix, POST sent monotonic)
        self.series = {}      # first task id -> (series title, complete POST sent monotonic)
        self.started_db = self.ended_db = None


def run_phase(system, v, probe, ph, n_events, n_recurring):
    v.section(f"phase {ph.k + 1}: {ph.name} ({ph.broker})")
    types = {}
    for inst in system.instances:
        md = inst.metadata() or {}
        types[inst.label] = {c["name"]: c["type"] for c in md.get("components", [])}.get("pubsub")
    v.check(all(t == ph.broker for t in types.values()),
            f"every sidecar has component pubsub of type {ph.broker}", str(types))
    localstack.validate(system, v, f"on {ph.name}")
    ph.started_db = db_now(system)

    api = system.api(f"swap{ph.k + 1}", email=f"swap{ph.k + 1}@example.com")
    # Warm-up: one event through, so that the consumers have joined their groups (kafka-mock
    # assigns a new group's partitions after 3 s) before anything is timed.
    t0 = time.monotonic()
    warm = api.create_task(title=f"warm-up {ph.k + 1}")
    probe.wait_until(lambda: any(r.json().get("subject") == str(warm["id"])
                                 for r in probe.requests("/task-events")), 30 * SLOW,
                     what="the warm-up event")
    v.figure("first event through after start", f"{time.monotonic() - t0:.1f} s")
    tag = uuid.uuid4().hex[:6]
    now = time.time()
    for i in range(n_events):
        title = f"swap {ph.k + 1}.{i} {tag}"
        remind = time.time() + 2.0 + i * 0.05
        sent = time.monotonic()
        t = api.create_task(title=title, due_at=iso(now + 86400), remind_at=iso(remind))
        ph.reminders[t["id"]] = (title, remind, sent)
    firsts = []
    for i in range(n_recurring):
        title = f"series {ph.k + 1}.{i} {tag}"
        firsts.append((api.create_task(title=title, due_at=iso(now + 86400),
                                       recurrence_rule="FREQ=DAILY"), title))
    refused = []
    for t, title in firsts:
        sent = time.monotonic()
        r = api.post(f"/tasks/{t['id']}/complete")
        if r.status != 200:
            refused.append(repr(r))
        ph.series[t["id"]] = (title, sent)
    v.check(not refused, f"{n_events} tasks with reminders created, {n_recurring} recurring "
            "tasks created and completed", "; ".join(refused))

    def arrivals():
        """{task id: first arrival of its todo.task.created at the probe}, occurrence 2 of each
        series keyed by the first task's id."""
        created, nexts = {}, {}
        by_title = {title: first for first, (title, _) in ph.series.items()}
        for r in probe.requests("/task-events"):
            ev = r.json()
            if ev.get("type") != "todo.task.created":
                continue
            d = ev.get("data", {})
            tid = d.get("id")
            if tid in ph.reminders or tid in ph.series:
                created.setdefault(tid, r.time)
            if d.get("occurrence") == 2 and d.get("title") in by_title:
                nexts.setdefault(by_title[d["title"]], r.time)
        return created, nexts

    def complete():
        created, nexts = arrivals()
        mails = localstack.mails_by_subject(system.smtp)
        return (len(created) == n_events + n_recurring and len(nexts) == n_recurring
                and all(title in mails for title, _, _ in ph.reminders.values()))

    try:
        wait_until(complete, 60 * SLOW, interval=0.1, what=f"the effects of phase {ph.name}")
    except AssertionError as e:
        v.check(False, f"every event of phase {ph.k + 1} took effect", str(e))
    created, nexts = arrivals()
    mails = localstack.mails_by_subject(system.smtp)
    ev_lat = [created[t] - sent for t, (_, _, sent) in ph.reminders.items() if t in created]
    rec_lat = [nexts[t] - sent for t, (_, sent) in ph.series.items() if t in nexts]
    rem_lat = [m[0].time - remind for title, remind, _ in ph.reminders.values()
               for m in [mails.get(title)] if m]
    v.check(len(created) == n_events + n_recurring,
            f"{n_events + n_recurring} todo.task.created events delivered",
            f"{len(created)} arrived")
    v.check(len(rem_lat) == n_events, f"{n_events} reminders mailed", f"{len(rem_lat)} mailed")
    v.check(len(rec_lat) == n_recurring, f"{n_recurring} next occurrences created",
            f"{len(rec_lat)} created")
    v.figure("task event latency (POST→delivery)", latency_summary(ev_lat))
    v.figure("reminder latency (remind_at→mail)", latency_summary(rem_lat))
    v.figure("recurrence latency (complete→next)", latency_summary(rec_lat))
    ph.latencies = (ev_lat, rem_lat, rec_lat)

    # Drained before the swap: nothing left unpublished in any outbox.
    def drained():
        return (int(system.scalar("SELECT count(*) FROM backend.outbox WHERE published_at IS NULL"))
                == 0 and int(system.scalar(
                    "SELECT count(*) FROM notification.outbox WHERE published_at IS NULL")) == 0)
    try:
        wait_until(drained, 30 * SLOW, interval=0.1, what="the outboxes to drain")
        v.check(True, "outboxes drained (no unpublished row)")
    except AssertionError as e:
        v.check(False, "outboxes drained (no unpublished row)", str(e))
    ph.ended_db = db_now(system)


def published_between(system, table, topic, start, end):
    return int(system.scalar(
        f"SELECT count(*) FROM {table} WHERE topic = '{topic}' AND published_at >= '{start}' "
        f"AND published_at < '{end}'"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20, help="tasks with a reminder per phase")
    ap.add_argument("--recurring", type=int, default=5, help="recurring completions per phase")
    a = ap.parse_args()
    v = localstack.Verdict(f"infrastructure swap Kafka -> Redis -> Kafka, local "
                           f"({a.events} reminders + {a.recurring} completions per phase)")

    v.section("the change is a component change")
    diff = component_difference()
    v.check(diff == ["pubsub.yaml"],
            "dapr/components and dapr/components-redis differ in pubsub.yaml only", str(diff))
    before = executables()

    system = localstack.LocalSystem(redis=True)
    try:
        system.start_all()
        probe, _ = system.probe(["task-events"])
        phases = []
        swap_times = []
        for k, (name, components, broker) in enumerate(PHASES):
            if k > 0:
                t = time.monotonic()
                bad = system.restart_on(components)
                swap_times.append(time.monotonic() - t)
                v.section(f"swap to {name}: sidecars on {os.path.relpath(components, localstack.REPO)}")
                v.check(not bad, "every service and sidecar stopped with exit 0", str(bad))
                v.figure("restart (stop → all ready)", f"{swap_times[-1]:.1f} s")
            ph = Phase(k, name, broker)
            run_phase(system, v, probe, ph, a.events, a.recurring)
            phases.append(ph)

        v.section("every event processed exactly once in effect")
        wait_sweeps = time.monotonic() + 6  # two sweeps: a late duplicate would show by then
        wait_until(lambda: time.monotonic() > wait_sweeps, 10, interval=0.2)
        mails = localstack.mails_by_subject(system.smtp)
        titles = [t for ph in phases for t, _, _ in ph.reminders.values()]
        counts = [len(mails.get(t, [])) for t in titles]
        v.check(counts and all(c == 1 for c in counts),
                f"each of the {len(titles)} reminders mailed exactly once",
                f"counts {sorted(set(counts))}, missing {counts.count(0)}")
        bad_series = []
        for ph in phases:
            for title, _ in ph.series.values():
                n = int(system.scalar(f"SELECT count(*) FROM backend.tasks WHERE title = '{title}'"))
                if n != 2:
                    bad_series.append((ph.name, title, n))
        v.check(not bad_series, "each completed series has exactly one next occurrence",
                str(bad_series))
        total_tasks = sum(len(ph.reminders) for ph in phases)
        sent = int(system.scalar("SELECT count(*) FROM notification.reminders WHERE status = 'sent'"))
        v.check(sent == total_tasks, f"{total_tasks} reminders in the projection, each sent once",
                f"{sent} sent")
        handled_again = sum(inst.svc.logs().count("was handled before")
                            for inst in system.instances)
        dup = 0
        seen = set()
        for r in probe.requests("/task-events"):
            i = r.json().get("id")
            dup += i in seen
            seen.add(i)
        v.figure("redeliveries seen by the probe", str(dup))
        v.figure("redeliveries skipped by consumers", str(handled_again))

        v.section("each phase's events went through that phase's broker")
        p1, p2, p3 = phases
        for topic, table in (("task-events", "backend.outbox"),
                             ("task-reminders", "notification.outbox")):
            on_redis = published_between(system, table, topic, p2.started_db, p2.ended_db)
            xlen = system.redis.xlen(topic)
            v.check(xlen == on_redis and on_redis > 0,
                    f"Redis stream {topic} holds exactly the {on_redis} events of the Redis phase",
                    f"XLEN {xlen}")
            after = published_between(system, table, topic, p3.started_db, p3.ended_db)
            v.figure(f"{topic} published per phase",
                     f"{published_between(system, table, topic, p1.started_db, p1.ended_db)} / "
                     f"{on_redis} / {after}")
        groups = system.redis.groups("task-events")
        lagging = {g: (d.get("pending"), d.get("lag")) for g, d in groups.items()
                   if d.get("pending") != 0 or d.get("lag") not in (0, None)}
        v.check({"notification", "recurring", "probe"} <= set(groups) and not lagging,
                "Redis groups notification, recurring, probe read task-events to the end",
                f"groups {sorted(groups)}, lagging {lagging}")
        v.check(system.redis.xlen("task-recurrence") == len(p2.series),
                f"Redis stream task-recurrence holds the {len(p2.series)} recurrences of the "
                "Redis phase", str(system.redis.xlen("task-recurrence")))

        v.section("figures")
        print(f"  {'phase':<14}{'events':>8}{'mails':>7}{'nexts':>7}  "
              f"{'event p50/p95':>16}  {'reminder p50/p95':>18}  {'recurrence p50/p95':>20}")
        for ph in phases:
            e, m, r = ph.latencies
            print(f"  {ph.name:<14}{len(e) + len(r):>8}{len(m):>7}{len(r):>7}  "
                  f"{localstack.ms(localstack.percentile(e, 50)):>7} /{localstack.ms(localstack.percentile(e, 95)):>7}  "
                  f"{localstack.ms(localstack.percentile(m, 50)):>8} /{localstack.ms(localstack.percentile(m, 95)):>8}  "
                  f"{localstack.ms(localstack.percentile(r, 50)):>9} /{localstack.ms(localstack.percentile(r, 95)):>9}")
        v.figure("restarts (stop → all ready)", ", ".join(f"{t:.1f} s" for t in swap_times))

        v.section("no code change")
        v.check(executables() == before,
                "the executables (services and sidecar) are byte-identical before and after",
                "sha256 changed")
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
