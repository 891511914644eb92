#!/usr/bin/python3
"""Benchmark of reminder lateness (not part of the test suite; see --help).

Stack (tests/lib/stack.py): a throw-away PostgreSQL 15 cluster, kafka-mock, todo-backend,
todo-notification and todo-email, each with its own dapr-sidecar and the repository's
dapr/components, and an SMTP sink (smtp_sink.py, aiosmtpd) that records when each mail arrived.

Phase "spread": --count tasks whose remind_at are spread evenly over --window seconds, starting
--lead seconds after the run starts (the tasks are all created before the first is due).
Lateness of a reminder = the mail's arrival at the SMTP sink minus its remind_at; a mail that
arrives before remind_at is early. Phase "burst": --burst tasks all due at the same instant, for
the number of mails per second the stack delivers (the spread phase only offers count/window
per second). For each reminder the stages are also shown from the database: remind_at -> claimed
(notification.reminders.sent_at, the claim transaction's now()) -> published to task-reminders
(notification.outbox.published_at) -> mail at the sink.
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree (bench/lib, tests/lib)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import benchlib  # noqa: E402
from benchlib import CLEANUP, die, load_avg, log, pct  # noqa: E402

TARGET_EARLY = 0
TARGET_P99_S = 1.0
TARGET_MAILS_PER_S = 300.0
MAIL_FROM = "reminders@todo.example.com"


def parse_args():
    p = argparse.ArgumentParser(
        description="Reminder lateness: reminders due over a window, mailed through "
                    "notification -> task-reminders -> email -> SMTP; prints lateness "
                    "p50/p99/max, early mails and mails/s against the targets (0 early, p99 <= "
                    f"{TARGET_P99_S:g} s, >= {TARGET_MAILS_PER_S:g} mails/s). The exit status "
                    "does not depend on them (0 when the benchmark ran).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--count", type=int, default=1000, help="reminders of the spread phase")
    p.add_argument("--window", type=float, default=30.0,
                   help="seconds over which the spread phase's reminders are due")
    p.add_argument("--burst", type=int, default=1000,
                   help="reminders due at one instant in the burst phase (0: skip)")
    p.add_argument("--lead", type=float, default=15.0,
                   help="seconds from the creation of a phase's tasks to its first reminder")
    p.add_argument("--sweep", default="",
                   help="REMINDER_SWEEP_SCHEDULE of notification (empty: its default, @every 5s)")
    p.add_argument("--clients", type=int, default=8, help="connections creating the tasks")
    p.add_argument("--partitions", type=int, default=4,
                   help="partitions of the kafka-mock topics (4 as in the local stack); the "
                        "sidecar delivers one message at a time per partition")
    p.add_argument("--email-workers", type=int, default=4,
                   help="WORKERS of todo-email (handlers running at once; the test stack's 4)")
    p.add_argument("--broker", choices=("kafka", "redis"), default="kafka",
                   help="kafka: kafka-mock with the repository's components; redis: a "
                        "redis-server and a pubsub.redis component")
    p.add_argument("--fsync", choices=("on", "off"), default="on",
                   help="PostgreSQL fsync and synchronous_commit (the test fixture has them off)")
    p.add_argument("--build-dir", default="build-bench", help="build tree under the repository")
    p.add_argument("--no-build", action="store_true", help="use the existing build tree")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, raw data)")
    a = p.parse_args()
    if (a.count <= 0 or a.window <= 0 or a.burst < 0 or a.lead <= 0 or a.clients <= 0
            or a.partitions <= 0):
        p.error("--count, --window, --lead, --clients and --partitions must be positive, "
                "--burst not negative")
    return a


ARGS = parse_args()
benchlib.setup("reminder-lateness", ARGS.build_dir)
CLEANUP.keep = ARGS.keep

import stack as stack_mod  # noqa: E402
import todo_test  # noqa: E402


def iso_us(us):
    return datetime.fromtimestamp(us // 1_000_000, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}Z"


def create_tasks(port, token, user, tasks, clients):
    """POSTs tasks [(title, remind_at µs)] over `clients` keep-alive connections; the task ids."""
    ids = [None] * len(tasks)
    errors = []
    nxt = [0]
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(tasks) or errors:
                break
            title, remind = tasks[i]
            body = json.dumps({"title": title, "description": "Created by the reminder-lateness "
                               "benchmark", "priority": "high", "remind_at": iso_us(remind),
                               "due_at": iso_us(remind + 3_600_000_000)})
            try:
                conn.request("POST", f"/api/{user}/tasks", body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"task {i}: {e!r}")
                break
            if r.status != 201:
                errors.append(f"task {i}: HTTP {r.status} {data[:300]!r}")
                break
            ids[i] = json.loads(data)["id"]
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        die("creating the tasks failed: " + errors[0])
    if any(i is None for i in ids):
        die("creating the tasks did not finish within 300 s")
    return ids


class Mails:
    """The sink's file, read incrementally: subject -> [arrival ns, ...]."""

    def __init__(self, path):
        self.path = path
        self.seen = 0
        self.by_subject = {}
        self.sessions = []  # (MAIL FROM ns, end of data ns)
        self.total = 0

    def poll(self):
        with open(self.path) as f:
            lines = f.read().split("\n")
        done = lines[:-1]
        for line in done[self.seen:]:
            parts = line.split(" ", 4)
            if len(parts) == 5:
                self.by_subject.setdefault(parts[4], []).append(int(parts[0]))
                self.sessions.append((int(parts[1]), int(parts[0])))
                self.total += 1
        self.seen = len(done)


def run_phase(name, st, backend, token, user, mails, meter, remind_us, lead_note):
    """Creates the tasks of remind_us (one each), waits for their mails, returns the figures."""
    titles = [f"RB {name} {i}" for i in range(len(remind_us))]
    t_create = time.time()
    log(f"{name}: creating {len(titles)} tasks (load average {load_avg()})")
    ids = create_tasks(backend.port, token, user, list(zip(titles, remind_us)), ARGS.clients)
    created = time.time()
    first_due = min(remind_us) / 1e6
    log(f"{name}: created in {created - t_create:.1f} s; the first is due in "
        f"{first_due - created:.1f} s{lead_note}")
    if created > first_due - 2:
        log(f"{name}: warning: the tasks were created less than 2 s before the first was due; "
            "raise --lead")
    subjects = [f"Reminder: {t}" for t in titles]
    # The CPU is counted from just before the first reminder is due to the last mail.
    while time.time() < first_due - 0.2:
        time.sleep(min(0.1, max(0.0, first_due - 0.2 - time.time())))
    meter.start()
    deadline = max(remind_us) / 1e6 + 60
    while True:
        mails.poll()
        got = sum(1 for s in subjects if s in mails.by_subject)
        if got == len(subjects) or time.time() > deadline:
            break
        time.sleep(0.2)
    time.sleep(1)  # late duplicates
    mails.poll()
    cpu, secs = meter.stop()
    # The stages from the database: claimed (sent_at) and published (outbox published_at).
    id_list = ",".join(str(i) for i in ids)
    rows = st.cluster.psql(
        "SELECT r.task_id, (extract(epoch FROM r.remind_at) * 1e6)::bigint, "
        "(extract(epoch FROM r.sent_at) * 1e6)::bigint, r.status, "
        "(extract(epoch FROM o.published_at) * 1e6)::bigint "
        "FROM notification.reminders r LEFT JOIN notification.outbox o "
        "ON o.event_id = notification.reminder_event_id(r.task_id, r.remind_at) "
        f"WHERE r.task_id IN ({id_list})", "todo")
    db = {int(r[0]): r[1:] for r in rows}
    late, early, dup, missing, claim_late, claim_to_pub, pub_to_mail = [], 0, 0, 0, [], [], []
    statuses = {}
    arrivals = []
    for tid, subj, due in zip(ids, subjects, remind_us):
        got = mails.by_subject.get(subj)
        rec = db.get(tid)
        if rec:
            statuses[rec[2]] = statuses.get(rec[2], 0) + 1
        if not got:
            missing += 1
            continue
        dup += len(got) - 1
        first = min(got)
        arrivals.append(first)
        lat = (first - due * 1000) / 1e9
        late.append(lat)
        if lat < 0:
            early += 1
        if rec and rec[1]:
            claim_late.append((int(rec[1]) - due) / 1e6)
            if rec[3]:
                claim_to_pub.append((int(rec[3]) - int(rec[1])) / 1e6)
                pub_to_mail.append((first / 1000 - int(rec[3])) / 1e6)
    for v in (late, claim_late, claim_to_pub, pub_to_mail):
        v.sort()
    # The SMTP transactions of this phase's mails: their length and how many ran at once.
    lo, hi = (min(remind_us) * 1000, max(remind_us) * 1000 + 120 * 10**9)
    sessions = [(a, b) for a, b in mails.sessions if lo <= b <= hi and a]
    smtp_ms = sorted((b - a) / 1e6 for a, b in sessions)
    edges = sorted([(a, 1) for a, b in sessions] + [(b, -1) for a, b in sessions])
    at_once, most = 0, 0
    for _, d in edges:
        at_once += d
        most = max(most, at_once)
    busy = sum(b - a for a, b in sessions)
    window = (max(b for a, b in sessions) - min(a for a, b in sessions)) if sessions else 0
    arrivals.sort()
    span = (arrivals[-1] - arrivals[0]) / 1e9 if len(arrivals) > 1 else float("nan")
    return {
        "name": name, "n": len(ids), "late": late, "early": early, "dup": dup,
        "missing": missing, "claim_late": claim_late, "claim_to_pub": claim_to_pub,
        "pub_to_mail": pub_to_mail, "statuses": statuses, "cpu": cpu, "secs": secs,
        "mail_rate": (len(arrivals) - 1) / span if span and span > 0 else float("nan"),
        "span": span, "load": load_avg(),
        "window": (max(remind_us) - min(remind_us)) / 1e6,
        "smtp_ms": smtp_ms, "smtp_most": most,
        "smtp_mean": busy / window if window else float("nan"),
    }


def main():
    work = tempfile.mkdtemp(prefix="todo-bench-reminder-lateness-", dir="/tmp")
    CLEANUP.paths.append(work)
    benchlib.build(ARGS.no_build, ARGS.build_dir, ("todo-backend", "todo-notification",
                                                    "todo-email", "dapr-sidecar", "kafka-mock"))

    sink_port = todo_test.free_port()
    sink_out = os.path.join(work, "mails.txt")
    open(sink_out, "w").close()
    sink = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "smtp_sink.py"), "--port",
                             str(sink_port), "--out", sink_out],
                            stdout=open(os.path.join(work, "smtp-sink.log"), "w"),
                            stderr=subprocess.STDOUT)
    CLEANUP.add("smtp sink", sink)

    resources = [stack_mod.COMPONENTS]
    if ARGS.broker == "redis":
        resources = [benchlib.redis_components(work, stack_mod.COMPONENTS)]
    log(f"starting PostgreSQL, kafka-mock{' (unused), redis' if ARGS.broker == 'redis' else ''}, "
        "backend, notification, email and their sidecars")
    st = stack_mod.Stack(topics=tuple(f"{t}:{ARGS.partitions}" for t in
                                      ("task-events", "task-reminders", "task-recurrence")),
                         resources=resources)
    CLEANUP.stack = st
    if ARGS.fsync == "on":
        benchlib.fsync_on(st.cluster)
    settings = benchlib.pg_settings(st.cluster)

    def sink_up():
        if sink.poll() is not None:
            die(f"the SMTP sink exited with {sink.returncode} (log in {work}/smtp-sink.log)")
        with open(os.path.join(work, "smtp-sink.log")) as f:
            return "smtp sink on" in f.read()
    todo_test.wait_until(sink_up, 20, what="the SMTP sink")

    quiet = {"LOG_LEVEL": "warn"}
    backend, bsc = st.backend(env=quiet)
    nenv = dict(quiet)
    if ARGS.sweep:
        nenv["REMINDER_SWEEP_SCHEDULE"] = ARGS.sweep
    notification, nsc = st.notification(env=nenv)
    email, esc = st.start("todo-email", "email",
                          env=dict(quiet, SMTP_URL=f"smtp://127.0.0.1:{sink_port}",
                                   MAIL_FROM=MAIL_FROM, WORKERS=ARGS.email_workers))
    for sc in (bsc, nsc, esc):
        sc.wait_healthy()

    user = "lateness"
    token = todo_test.make_token(user, email="lateness@example.com", exp_in=24 * 3600)
    mails = Mails(sink_out)

    meter = benchlib.CpuMeter({
        "backend": lambda: [backend.proc.pid], "backend sidecar": lambda: [bsc.proc.pid],
        "notification": lambda: [notification.proc.pid],
        "notification sidecar": lambda: [nsc.proc.pid],
        "email": lambda: [email.proc.pid], "email sidecar": lambda: [esc.proc.pid],
        "broker": benchlib.redis_pids if ARGS.broker == "redis"
        else (lambda: [st.kafka.proc.pid]),
        "postgres": lambda: benchlib.pg_pids(st.cluster),
        "smtp sink": lambda: [sink.pid], "this script": lambda: [os.getpid()],
    })

    # Warm-up: one reminder end to end, so that consumer groups are joined before the phases.
    log("warm-up: one reminder 3 s ahead")
    now_us = int(time.time() * 1e6)
    warm = run_phase("warmup", st, backend, token, user, mails, meter, [now_us + 3_000_000], "")
    if warm["missing"]:
        die("the warm-up reminder never arrived at the SMTP sink (logs: "
            f"{notification.log_path}, {email.log_path}, {esc.log_path})")

    results = []
    start_us = int((time.time() + ARGS.lead) * 1e6)
    step = ARGS.window * 1e6 / ARGS.count
    spread = [start_us + int(i * step) for i in range(ARGS.count)]
    results.append(run_phase("spread", st, backend, token, user, mails, meter, spread,
                             f" (window {ARGS.window:g} s)"))
    if ARGS.burst:
        time.sleep(2)
        at = int((time.time() + ARGS.lead) * 1e6)
        results.append(run_phase("burst", st, backend, token, user, mails, meter,
                                 [at] * ARGS.burst, " (all at once)"))

    print()
    broker = f"kafka-mock, {ARGS.partitions} partitions per topic" if ARGS.broker == "kafka" \
        else "redis"
    print(f"== reminder-lateness summary ({os.cpu_count()} cores; {broker}; email "
          f"WORKERS={ARGS.email_workers}; sweep {ARGS.sweep or '@every 5s (default)'}; "
          f"PostgreSQL {settings}) ==")
    for r in results:
        print(f"-- {r['name']}: {r['n']} reminders due over {r['window']:.1f} s (load average at "
              f"the end {r['load']}) --")
        print(f"  {'measure (s)':40s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
        for label, v in (("lateness: mail at the sink - remind_at", r["late"]),
                         ("remind_at -> claimed (sent_at)", r["claim_late"]),
                         ("claimed -> published (outbox)", r["claim_to_pub"]),
                         ("published -> mail at the sink", r["pub_to_mail"])):
            if v:
                print(f"  {label:40s} {pct(v, 50):8.3f} {pct(v, 90):8.3f} {pct(v, 99):8.3f} "
                      f"{v[-1]:8.3f}")
        print(f"  mails: {r['n'] - r['missing']} of {r['n']} arrived, {r['missing']} missing, "
              f"{r['dup']} duplicates, {r['early']} early; reminder rows "
              f"{json.dumps(r['statuses'], sort_keys=True)}")
        print(f"  mails/s at the sink: {r['mail_rate']:.1f} (first to last arrival, "
              f"{r['span']:.2f} s); SMTP transactions (MAIL FROM -> end of data) p50 "
              f"{pct(r['smtp_ms'], 50):.2f} ms, p99 {pct(r['smtp_ms'], 99):.2f} ms, "
              f"{r['smtp_mean']:.2f} at once on average, at most {r['smtp_most']}")
        print("  CPU (% of one core, first due -> last mail): "
              + benchlib.cpu_line(r["cpu"], r["secs"]))
        p99 = pct(r["late"], 99)
        print(f"  targets: early {r['early']} == {TARGET_EARLY}: "
              f"{'met' if r['early'] == TARGET_EARLY else 'not met'}; p99 {p99:.3f} s <= "
              f"{TARGET_P99_S:g}: {'met' if p99 <= TARGET_P99_S else 'not met'}"
              + (f"; {r['mail_rate']:.0f} mails/s >= {TARGET_MAILS_PER_S:g}: "
                 f"{'met' if r['mail_rate'] >= TARGET_MAILS_PER_S else 'not met'}"
                 if r["name"] == "burst" else ""))
    if ARGS.keep:
        print(f"  raw data and logs: {work}")
    probs = st.problems()
    if probs:
        print(f"  note: {len(probs)} error lines in the logs, the first: {probs[0][:300]}")


if __name__ == "__main__":
    try:
        main()
    finally:
        CLEANUP.run()
