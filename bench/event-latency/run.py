#!/usr/bin/python3
"""Benchmark of the event path, from the API's commit to the consumer's handler (not part of the
test suite; see --help).

Stack (tests/lib/stack.py): a throw-away PostgreSQL 15 cluster, kafka-mock (or, with --broker
redis, a redis-server and a pubsub.redis component), todo-backend with its dapr-sidecar (the
repository's dapr/components), and a consumer app of its own app-id (latency-probe) with its own
sidecar, subscribed to task-events. The consumer is a small C program (consumer.c) that records
the arrival time of every delivery and its own handling time; --consumer python uses the test
suite's SidecarApp instead, to compare. The load is loadgen.c: POST /api/{user}/tasks at a fixed
rate, open loop, over keep-alive connections (libcurl multi).

Latency of an event = its arrival at the consumer (CLOCK_REALTIME when the request had been read)
minus its `time` attribute, which is backend.rfc3339(now()) of the transaction that wrote the
outbox row (the same value as the row's created_at): now() is the transaction's start, so this
counts the rest of the transaction (the INSERT and the COMMIT, about a millisecond) too — an upper
bound. The lower bound is arrival minus the moment the load generator had the 201 (which is after
the commit); both are printed. All clocks are the same machine's.

With kafka-mock, librdkafka's mock broker answers a fetch that finds no data only after the
consumer's fetch.wait.max.ms (100 ms in the sidecar double), even when data arrives meanwhile, so
the "published -> consumer" stage there is about uniform over 0-100 ms; --broker redis shows the
same path without that (XREADGROUP BLOCK returns as soon as an entry arrives).

Bursts: --bursts times, --burst-size tasks created at once and then 1.5 s without traffic, the
latency of each (a quiet system's traffic: the relay must not wait for its polling fallback).

Relay throughput: the backend's sidecar is killed (SIGKILL), a backlog of --backlog tasks is
created, the sidecar is started again, and the unpublished rows (SELECT count(*) ... WHERE
published_at IS NULL) are polled until none is left; the rate is the rows over the time between
the first and the last mark (published_at), and also over the wall time from the restart.
"""

import argparse
import calendar
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree (bench/lib, tests/lib)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import benchlib  # noqa: E402
from benchlib import CLEANUP, die, load_avg, log, pct  # noqa: E402

TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0


def parse_args():
    p = argparse.ArgumentParser(
        description="Event latency from the API's commit to a consumer's handler through the Dapr "
                    "sidecar double and kafka-mock, at fixed rates, and the outbox relay's "
                    "throughput on a backlog. Prints the figures against the targets (p50 <= "
                    f"{TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms); the exit status does "
                    "not depend on them (0 when the benchmark ran).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rates", default="200,1000",
                   help="comma-separated task creations per second, one phase each")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per rate phase")
    p.add_argument("--connections", type=int, default=16, help="load generator connections")
    p.add_argument("--bursts", type=int, default=20,
                   help="bursts of --burst-size tasks created at once, each followed by 1.5 s "
                        "without traffic (0: skip)")
    p.add_argument("--burst-size", type=int, default=4, help="tasks per burst")
    p.add_argument("--backlog", type=int, default=5000,
                   help="tasks created while the backend's sidecar is down (0: skip)")
    p.add_argument("--broker", choices=("kafka", "redis"), default="kafka",
                   help="kafka: kafka-mock with the repository's components; redis: a "
                        "redis-server and a pubsub.redis component")
    p.add_argument("--consumer", choices=("c", "python"), default="c",
                   help="the consumer app: consumer.c, or the test suite's SidecarApp")
    p.add_argument("--threads", type=int, default=0, help="backend THREADS (0: its default)")
    p.add_argument("--workers", type=int, default=0, help="backend WORKERS (0: its default)")
    p.add_argument("--fsync", choices=("on", "off"), default="on",
                   help="PostgreSQL fsync and synchronous_commit (the test fixture has them off)")
    p.add_argument("--build-dir", default="build-bench", help="build tree under the repository")
    p.add_argument("--no-build", action="store_true",
                   help="use the existing build tree's binaries (the bench's C tools are still "
                        "compiled when missing or older than their source)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, raw data)")
    a = p.parse_args()
    try:
        a.rate_list = [float(x) for x in a.rates.split(",") if x.strip()]
    except ValueError:
        p.error("--rates must be numbers separated by commas")
    if not a.rate_list or any(r <= 0 for r in a.rate_list):
        p.error("--rates must be positive")
    if a.duration <= 0 or a.connections <= 0 or a.backlog < 0 or a.bursts < 0 \
            or a.burst_size <= 0:
        p.error("--duration, --connections and --burst-size must be positive, --backlog and "
                "--bursts not negative")
    return a


ARGS = parse_args()
benchlib.setup("event-latency", ARGS.build_dir)
CLEANUP.keep = ARGS.keep

import stack as stack_mod  # noqa: E402
import todo_test  # noqa: E402
from sidecar_app import SidecarApp  # noqa: E402


def build():
    benchlib.build(ARGS.no_build, ARGS.build_dir, ("todo-backend", "dapr-sidecar", "kafka-mock"))
    return {"loadgen": benchlib.compile_tool(os.path.join(HERE, "loadgen.c"),
                                             "event-latency-loadgen", ["-lcurl", "-lm"]),
            "consumer": benchlib.compile_tool(os.path.join(HERE, "consumer.c"),
                                              "event-latency-consumer", ["-ljansson"])}


RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$")


def rfc3339_ns(s):
    m = RFC3339.match(s)
    if not m:
        return None
    secs = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    frac = (m.group(7) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac)


class Consumer:
    """The probe app: consumer.c (arrival lines in a file) or SidecarApp."""

    def __init__(self, kind, exe, work):
        self.kind = kind
        self.port = todo_test.free_port()
        self.path = os.path.join(work, "arrivals.txt")
        self.proc = None
        self.app = None
        self.seen = 0  # lines already parsed
        self.events = {}  # subject -> (arrival ns, handled ns, time ns) of the first delivery
        self.deliveries = 0
        self.duplicates = 0
        self.handled = []  # ns, per delivery (the C consumer only)
        if kind == "c":
            self.proc = subprocess.Popen([exe, "--port", str(self.port), "--out", self.path],
                                         stderr=open(os.path.join(work, "consumer.log"), "w"))
            CLEANUP.add("consumer", self.proc)
            todo_test.wait_until(self._listening, 10, what="the consumer app")
        else:
            self.app = SidecarApp(port=self.port)
            CLEANUP.closers.append(self.app.close)
            self.app.subscribe(200, [{"pubsubname": "pubsub", "topic": "task-events",
                                      "route": "/events/task-events",
                                      "deadLetterTopic": "task-events-dlq"}])
            self.app.policy("/events/task-events", status=200, body={"status": "SUCCESS"})
            # SidecarApp stamps arrivals with time.monotonic(): the offset to CLOCK_REALTIME.
            self.mono_to_real = time.time_ns() - time.monotonic_ns()
            self._fh = None

    def _listening(self):
        if self.proc.poll() is not None:
            die(f"the consumer exited with {self.proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def pids(self):
        if self.proc:
            return [self.proc.pid]
        return [os.getpid()]  # SidecarApp's threads are in this process

    def _add(self, subject, arrival, handled, t):
        self.deliveries += 1
        if handled is not None:
            self.handled.append(handled)
        if subject in self.events:
            self.duplicates += 1
            return
        self.events[subject] = (arrival, handled, t)

    def poll(self):
        """Reads the deliveries recorded since the last call."""
        if self.kind == "c":
            with open(self.path) as f:
                lines = f.read().split("\n")
            complete = lines[:-1]  # the last one may be half written
            for line in complete[self.seen:]:
                parts = line.split(" ")
                if len(parts) != 6 or parts[3] != "todo.task.created":
                    self.deliveries += 1
                    continue
                self._add(parts[2], int(parts[0]), int(parts[1]), rfc3339_ns(parts[4]))
            self.seen = len(complete)
        else:
            reqs = self.app.requests("/events/task-events")
            for r in reqs[self.seen:]:
                try:
                    ev = r.json()
                except ValueError:
                    self.deliveries += 1
                    continue
                if ev.get("type") != "todo.task.created":
                    self.deliveries += 1
                    continue
                self._add(str(ev.get("subject")), int(r.time * 1e9) + self.mono_to_real, None,
                          rfc3339_ns(ev.get("time", "")))
            self.seen = len(reqs)

    def wait_for(self, subjects, timeout):
        """Waits until every subject arrived, or timeout; the missing ones."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            missing = [s for s in subjects if s not in self.events]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)


def run_loadgen(exe, work, name, url, token, rate, count=None, duration=None, connections=16):
    out = os.path.join(work, f"loadgen-{name}.txt")
    cmd = [exe, "--url", url, "--token", token, "--out", out, "--rate", str(rate),
           "--connections", str(connections), "--title", f"Latency {name}"]
    cmd += ["--count", str(count)] if count else ["--duration", str(duration)]
    errf = open(os.path.join(work, f"loadgen-{name}.log"), "w")
    p = subprocess.Popen(cmd, stderr=errf)
    CLEANUP.add("loadgen", p)
    limit = (count / rate if count and rate else duration or 0) + 120
    deadline = time.monotonic() + limit
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            p.kill()
            die(f"the load generator did not finish within {limit:.0f} s")
        time.sleep(0.05)
    CLEANUP.procs.remove(("loadgen", p))
    errf.close()
    with open(os.path.join(work, f"loadgen-{name}.log")) as f:
        summary = f.read().strip()
    if p.returncode != 0:
        die(f"the load generator failed ({p.returncode}): {summary}")
    rows = []
    with open(out) as f:
        for line in f:
            seq, due, sent, done, status, task = line.split()
            rows.append((int(due), int(sent), int(done), int(status), task))
    return rows, summary, ru.ru_utime + ru.ru_stime


class BacklogSampler(threading.Thread):
    """Samples the backend's outbox_backlog gauge (/metrics, refreshed by the relay about every
    second) until stopped; keeps the largest value."""

    def __init__(self, backend):
        super().__init__(daemon=True)
        self.backend = backend
        self.max = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                r = self.backend.request("GET", "/metrics", timeout=2)
                m = re.search(r'^outbox_backlog\{[^}]*\} ([0-9.e+]+)$', r.body, re.M)
                if m:
                    self.max = max(self.max, float(m.group(1)))
            except OSError:
                pass
            self.halt.wait(0.25)

    def stop(self):
        self.halt.set()
        self.join(5)


# ---- the benchmark -----------------------------------------------------------------------------

def main():
    work = tempfile.mkdtemp(prefix="todo-bench-event-latency-", dir="/tmp")
    CLEANUP.paths.append(work)
    tools = build()
    ncores = os.cpu_count() or 1
    threads = ARGS.threads or ncores
    workers = ARGS.workers or 4 * ncores

    resources = [stack_mod.COMPONENTS]
    use_redis = False
    if ARGS.broker == "redis":
        resources = [benchlib.redis_components(work, stack_mod.COMPONENTS)]
        use_redis = True

    log(f"starting PostgreSQL, kafka-mock ({'unused: ' if use_redis else ''}broker "
        f"{ARGS.broker}), the backend and its sidecar")
    st = stack_mod.Stack(resources=resources)
    CLEANUP.stack = st
    if ARGS.fsync == "on":
        benchlib.fsync_on(st.cluster)
    settings = benchlib.pg_settings(st.cluster)
    backend, bsc = st.backend(env={"THREADS": threads, "WORKERS": workers, "LOG_LEVEL": "warn"})

    consumer = Consumer(ARGS.consumer, tools["consumer"], work)
    probe_sc = st.sidecar("latency-probe", app_port=consumer.port)
    probe_sc.wait_healthy()

    user = "latency"
    token = todo_test.make_token(user, email="latency@example.com", exp_in=24 * 3600)
    url = f"http://127.0.0.1:{backend.port}/api/{user}/tasks"

    groups = {
        "backend": lambda: [backend.proc.pid],
        "backend sidecar": lambda: [bsc.proc.pid],
        "probe sidecar": lambda: [probe_sc.proc.pid],
        "consumer app": consumer.pids,
        "broker": benchlib.redis_pids if use_redis else (lambda: [st.kafka.proc.pid]),
        "postgres": lambda: benchlib.pg_pids(st.cluster),
    }
    meter = benchlib.CpuMeter(groups)

    def max_outbox_id():
        return int(st.cluster.scalar("SELECT coalesce(max(id), 0) FROM backend.outbox", "todo"))

    # Warm-up: the consumer group's partitions assigned, connections open, statements prepared.
    log("warm-up: 200 tasks at 100/s, until the consumer has them all")
    rows, summary, _ = run_loadgen(tools["loadgen"], work, "warmup", url, token, 100, count=200,
                                   connections=ARGS.connections)
    missing = consumer.wait_for([r[4] for r in rows], 90)
    if missing:
        die(f"{len(missing)} of the warm-up events never reached the consumer "
            f"(sidecar log: {probe_sc.log_path})")

    results = []
    for rate in ARGS.rate_list:
        time.sleep(2)
        load_before = load_avg()
        log(f"phase {rate:g}/s for {ARGS.duration:g} s (load average {load_before})")
        first_id = max_outbox_id()
        sampler = BacklogSampler(backend)
        sampler.start()
        meter.start()
        name = f"{rate:g}"
        rows, summary, gen_cpu = run_loadgen(tools["loadgen"], work, name, url, token, rate,
                                             duration=ARGS.duration, connections=ARGS.connections)
        subjects = [r[4] for r in rows]
        missing = consumer.wait_for(subjects, 60)
        cpu, secs = meter.stop()
        sampler.stop()
        cpu["load generator"] = gen_cpu
        log(summary)
        # Stages: commit (time) -> marked published (published_at) -> arrival.
        db = st.cluster.psql(
            "SELECT partition_key, (extract(epoch FROM created_at) * 1e6)::bigint, "
            "(extract(epoch FROM published_at) * 1e6)::bigint FROM backend.outbox "
            f"WHERE id > {first_id} AND event->>'type' = 'todo.task.created'", "todo")
        published = {r[0]: (int(r[1]) * 1000, int(r[2]) * 1000 if r[2] else None) for r in db}
        lat_time, lat_resp, to_mark, mark_to_arr, handled, time_vs_created = [], [], [], [], [], 0
        for due, sent, done, status, task in rows:
            ev = consumer.events.get(task)
            if not ev:
                continue
            arrival, h, t = ev
            lat_time.append((arrival - t) / 1e6)
            lat_resp.append((arrival - done) / 1e6)
            if h is not None:
                handled.append(h / 1e6)
            created, pub = published.get(task, (None, None))
            if created is not None and created != t // 1000 * 1000:
                time_vs_created += 1
            if created is not None and pub is not None:
                to_mark.append((pub - t) / 1e6)
                mark_to_arr.append((arrival - pub) / 1e6)
        for v in (lat_time, lat_resp, to_mark, mark_to_arr, handled):
            v.sort()
        results.append({
            "rate": rate, "rows": rows, "summary": summary, "missing": len(missing),
            "lat_time": lat_time, "lat_resp": lat_resp, "to_mark": to_mark,
            "mark_to_arr": mark_to_arr, "handled": handled, "cpu": cpu, "secs": secs,
            "backlog_max": sampler.max, "load_before": load_before, "load_after": load_avg(),
            "time_vs_created": time_vs_created,
            "achieved": (len(rows) - 1) / ((max(r[1] for r in rows) - min(r[1] for r in rows))
                                           / 1e9 or 1),
        })
        r = results[-1]
        log(f"phase {rate:g}/s: {len(lat_time)} events, latency from commit p50 "
            f"{pct(lat_time, 50):.2f} ms p99 {pct(lat_time, 99):.2f} ms; "
            f"{r['missing']} missing (load average {r['load_after']})")

    # Bursts then silence: a few changes at once, as a quiet system sees them.
    bursts = None
    if ARGS.bursts:
        time.sleep(2)
        log(f"bursts: {ARGS.bursts} x {ARGS.burst_size} tasks at once, 1.5 s apart "
            f"(load average {load_avg()})")
        lat = []
        for i in range(ARGS.bursts):
            rows, _, _ = run_loadgen(tools["loadgen"], work, f"burst{i}", url, token, 0,
                                     count=ARGS.burst_size, connections=ARGS.burst_size)
            missing = consumer.wait_for([r[4] for r in rows], 30)
            lat += [(consumer.events[r[4]][0] - consumer.events[r[4]][2]) / 1e6
                    for r in rows if r[4] in consumer.events]
            time.sleep(1.5)
        lat.sort()
        bursts = {"lat": lat, "missing": ARGS.bursts * ARGS.burst_size - len(lat),
                  "slow": sum(1 for x in lat if x > 500)}
        log(f"bursts: latency from commit p50 {pct(lat, 50):.2f} ms, max {lat[-1]:.2f} ms")

    relay = None
    if ARGS.backlog:
        time.sleep(2)
        log(f"relay: killing the backend's sidecar, creating {ARGS.backlog} tasks "
            f"(load average {load_avg()})")
        first_id = max_outbox_id()
        bsc.proc.kill()
        bsc.proc.wait(10)
        if bsc.log:
            bsc.log.close()
            bsc.log = None
        rows, summary, _ = run_loadgen(tools["loadgen"], work, "backlog", url, token, 0,
                                       count=ARGS.backlog, connections=ARGS.connections)
        log(summary)
        pending_sql = (f"SELECT count(*) FROM backend.outbox WHERE id > {first_id} "
                       "AND published_at IS NULL")
        pending = int(st.cluster.scalar(pending_sql, "todo"))
        log(f"relay: {pending} rows pending; starting the sidecar again "
            f"(load average {load_avg()})")
        time.sleep(1)
        meter.start()
        t_restart = time.time_ns()
        bsc.start()
        healthy_at = None
        deadline = time.monotonic() + 300
        while True:
            if healthy_at is None:
                try:
                    if bsc.request("GET", "/v1.0/healthz/outbound", timeout=1).status == 204:
                        healthy_at = time.time_ns()
                except OSError:
                    pass
            left = int(st.cluster.scalar(pending_sql, "todo"))
            if left == 0:
                t_zero = time.time_ns()
                break
            if time.monotonic() > deadline:
                die(f"the backlog was not published within 300 s ({left} rows left)")
            time.sleep(0.05)
        cpu, _ = meter.stop()
        stats = st.cluster.psql(
            "SELECT count(*), (extract(epoch FROM min(published_at)) * 1e9)::bigint, "
            "(extract(epoch FROM max(published_at)) * 1e9)::bigint, "
            "count(*) FILTER (WHERE published_at = (SELECT min(published_at) FROM backend.outbox "
            f"WHERE id > {first_id})) FROM backend.outbox WHERE id > {first_id}", "todo")[0]
        n, first_mark, last_mark, first_batch = (int(x) for x in stats)
        missing = consumer.wait_for([r[4] for r in rows], 120)
        last_arrival = max((consumer.events[r[4]][0] for r in rows if r[4] in consumer.events),
                           default=None)
        relay = {
            "pending": pending, "n": n, "first_batch": first_batch,
            "mark_rate": (n - first_batch) / ((last_mark - first_mark) / 1e9)
            if last_mark > first_mark else float("nan"),
            "wall_rate": n / ((t_zero - t_restart) / 1e9),
            "restart_to_healthy": (healthy_at - t_restart) / 1e6 if healthy_at else float("nan"),
            "restart_to_first_mark": (first_mark - t_restart) / 1e6,
            "drain": (last_mark - first_mark) / 1e6,
            "restart_to_zero": (t_zero - t_restart) / 1e6,
            "consumer_rate": len(rows) / ((last_arrival - first_mark) / 1e9)
            if last_arrival and last_arrival > first_mark else float("nan"),
            "missing": len(missing), "cpu": cpu,
            "secs": (t_zero - t_restart) / 1e9,
        }
        log(f"relay: {n} rows published in {relay['drain']:.0f} ms after the first mark "
            f"({relay['mark_rate']:.0f}/s)")

    # ---- report --------------------------------------------------------------------------------
    consumer.poll()
    print()
    print(f"== event-latency summary ({ncores} cores; broker {ARGS.broker}"
          f"{' (kafka-mock)' if ARGS.broker == 'kafka' else ''}; consumer {ARGS.consumer}; "
          f"backend THREADS={threads} WORKERS={workers}; loadgen {ARGS.connections} connections; "
          f"{ARGS.duration:g} s per rate; PostgreSQL {settings}) ==")

    def ms(v, p):
        return f"{pct(v, p):8.2f}"

    for r in results:
        print(f"-- {r['rate']:g} events/s (achieved {r['achieved']:.0f}/s; load average "
              f"{r['load_before']} before, {r['load_after']} after) --")
        print(f"  {'measure (ms)':44s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
        for label, v in (("commit (event time) -> consumer", r["lat_time"]),
                         ("201 at the client -> consumer (lower bound)", r["lat_resp"]),
                         ("commit -> row marked published", r["to_mark"]),
                         ("row marked published -> consumer", r["mark_to_arr"]),
                         ("consumer app's own handling", r["handled"])):
            if v:
                print(f"  {label:44s} {ms(v, 50)} {ms(v, 90)} {ms(v, 99)} "
                      f"{v[-1]:8.2f}")
        print(f"  events: {len(r['lat_time'])} of {len(r['rows'])} arrived, {r['missing']} "
              f"missing; largest outbox_backlog seen {r['backlog_max']:.0f}; "
              f"event time != created_at: {r['time_vs_created']}")
        print(f"  API: {r['summary'].split(': ', 1)[1]}")
        print("  CPU (% of one core): " + benchlib.cpu_line(r["cpu"], r["secs"]))
        print(f"  {'target':44s} p50 {pct(r['lat_time'], 50):.2f} <= {TARGET_P50_MS:g}: "
              f"{'met' if pct(r['lat_time'], 50) <= TARGET_P50_MS else 'not met'}; "
              f"p99 {pct(r['lat_time'], 99):.2f} <= {TARGET_P99_MS:g}: "
              f"{'met' if pct(r['lat_time'], 99) <= TARGET_P99_MS else 'not met'}")
    if bursts:
        v = bursts["lat"]
        print(f"-- bursts: {ARGS.bursts} x {ARGS.burst_size} tasks created at once, then 1.5 s "
              "without traffic --")
        print(f"  {'measure (ms)':44s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s}")
        print(f"  {'commit (event time) -> consumer':44s} {ms(v, 50)} {ms(v, 90)} {ms(v, 99)} "
              f"{v[-1]:8.2f}")
        print(f"  events: {len(v)} arrived, {bursts['missing']} missing; {bursts['slow']} took "
              "more than 500 ms")
    if relay:
        print(f"-- outbox relay: backlog of {relay['pending']} rows --")
        print(f"  restart -> sidecar outbound healthy {relay['restart_to_healthy']:.0f} ms, "
              f"-> first rows marked {relay['restart_to_first_mark']:.0f} ms (includes the "
              f"relay's backoff, up to 5 s), -> none pending {relay['restart_to_zero']:.0f} ms")
        if relay["first_batch"] < relay["n"]:
            print(f"  relay throughput: {relay['mark_rate']:.0f} events/s (rows after the first "
                  f"batch of {relay['first_batch']} / first to last mark, "
                  f"{relay['drain']:.0f} ms); {relay['wall_rate']:.0f} events/s over the wall "
                  "time from the restart")
        else:
            print(f"  relay throughput: the {relay['n']} rows went in one batch (raise "
                  f"--backlog); {relay['wall_rate']:.0f} events/s over the wall time from the "
                  "restart")
        print(f"  consumer received the backlog at {relay['consumer_rate']:.0f} events/s "
              f"(first mark -> last arrival), {relay['missing']} missing")
        print("  CPU (% of one core, restart -> none pending): "
              + benchlib.cpu_line(relay["cpu"], relay["secs"]))
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
