"""The local stack on which k8s/scripts/*.sh play their scenarios with --target local: the test
fixtures' PostgreSQL, kafka-mock and sidecar doubles (tests/lib/stack.py), the four services each
with its own sidecar, an SMTP server (tests/lib/smtp_server.py) and, for the broker swap, a
redis-server of its own. Also the verdict and figure printing the scenarios share.

The bash scripts run the scenarios with PYTHONPATH=tests/lib:k8s/scripts/lib, TODO_BIN_DIR and
TODO_SOURCE_DIR set (k8s/scripts/lib/common.sh, run_local)."""

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import smtp_server
import stack
import todo_test
from sidecar_app import SidecarApp
from todo_test import SLOW, wait_until

REPO = os.path.abspath(todo_test.SOURCE_DIR)
KAFKA_COMPONENTS = os.path.join(REPO, "dapr", "components")
REDIS_COMPONENTS = os.path.join(REPO, "dapr", "components-redis")
SCRIPTS = os.path.join(REPO, "k8s", "scripts")
JWT_SECRET = todo_test.JWT_SECRET

# Each service: executable, the topic it consumes (with its dead-letter topic).
SERVICES = {
    "backend": ("todo-backend", "task-recurrence"),
    "notification": ("todo-notification", "task-events"),
    "email": ("todo-email", "task-reminders"),
    "recurring": ("todo-recurring", "task-events"),
}
# Error lines the services or sidecars may log while a scenario breaks something on purpose are
# passed per scenario; these are never allowed.
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def iso(t):
    """RFC 3339 UTC with microseconds for a Unix time."""
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def percentile(values, p):
    """The p-th percentile (nearest rank) of values; None for none."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ms(v):
    return "-" if v is None else f"{v * 1000:.0f} ms"


def latency_summary(values):
    """'n=…, p50 …, p95 …, max …' of durations in seconds."""
    if not values:
        return "n=0"
    return (f"n={len(values)}, p50 {ms(percentile(values, 50))}, p95 {ms(percentile(values, 95))},"
            f" max {ms(max(values))}")


class Verdict:
    """Checks and figures of one scenario: every 'ok' line is printed after its check passed; the
    exit code is 1 when any check failed."""

    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = []
        self.started = time.monotonic()
        print(f"== {title}", flush=True)

    def section(self, text):
        print(f"-- {text}", flush=True)

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"  FAIL  {what}" + (f": {detail}" if detail else ""), flush=True)
        return bool(ok)

    def figure(self, name, value):
        print(f"  {name:<34} {value}", flush=True)

    def note(self, text):
        print(f"  {text}", flush=True)

    def finish(self):
        took = time.monotonic() - self.started
        print(f"== {self.title}: {self.passed} checks passed, {len(self.failed)} failed "
              f"({took:.1f} s)", flush=True)
        for f in self.failed:
            print(f"   failed: {f}", flush=True)
        # The closing line CTest logs and CI read.
        print(f"{self.passed} passed, {len(self.failed)} failed", flush=True)
        return 1 if self.failed else 0


def scoped_copy(src_dir, app_id, into):
    """A copy of the component files of src_dir whose scopes also name app_id (the files are
    scoped to the four services), in a new folder under into."""
    d = tempfile.mkdtemp(prefix=f"resources-{app_id}-", dir=into)
    for name in sorted(os.listdir(src_dir)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(src_dir, name)) as f:
                text = f.read()
            with open(os.path.join(d, name), "w") as f:
                f.write(text.replace("\nscopes:\n", f"\nscopes:\n  - {app_id}\n"))
    return d


class RedisServer:
    """redis-server on a free 127.0.0.1 port in a temporary folder, with a password, no
    persistence; redis-cli for commands."""

    def __init__(self, password="local-redis-password-0123456789"):
        self.dir = tempfile.mkdtemp(prefix="todo-redis-", dir="/tmp")
        self.port = todo_test.free_port()
        self.password = password
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.dir, "redis.log")
        conf = os.path.join(self.dir, "redis.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\nprotected-mode yes\ndir {self.dir}\n"
                    f"save \"\"\nappendonly no\nrequirepass {password}\ndaemonize no\n"
                    f"logfile {self.log_path}\n")
        os.chmod(conf, 0o600)
        self.proc = subprocess.Popen(["redis-server", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(self._up, 30 * SLOW, what="redis-server PING")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}")
        return self.cli("PING") == "PONG"

    def cli(self, *args):
        env = dict(os.environ, REDISCLI_AUTH=self.password)
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                           env=env, capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def xlen(self, stream):
        out = self.cli("XLEN", stream)
        return int(out) if out.lstrip("-").isdigit() else 0

    def groups(self, stream):
        """XINFO GROUPS as {group: {field: value}} (empty when the stream does not exist)."""
        env = dict(os.environ, REDISCLI_AUTH=self.password)
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--json",
                            "XINFO", "GROUPS", stream], env=env, capture_output=True, text=True,
                           timeout=10)
        try:
            rows = json.loads(r.stdout)
        except ValueError:
            return {}
        out = {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict):
                out[row.get("name")] = row
            elif isinstance(row, list):
                d = dict(zip(row[0::2], row[1::2]))
                out[d.get("name")] = d
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Instance:
    """One replica of a service: the service process and its sidecar (a pod's two containers)."""

    def __init__(self, name, index, svc, sidecar):
        self.name = name
        self.index = index
        self.svc = svc
        self.sidecar = sidecar
        self.killed = False

    @property
    def label(self):
        return self.name if self.index == 0 else f"{self.name}-{self.index}"

    def metadata(self):
        r = self.sidecar.request("GET", "/v1.0/metadata")
        return json.loads(r.body) if r.status == 200 else None

    def metric(self, prefix):
        """The value of the first /metrics line starting with prefix (0 when absent)."""
        body = self.svc.request("GET", "/metrics").body
        for line in body.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return 0.0

    def log_lines(self):
        """The service's JSON log lines, parsed (other lines skipped)."""
        out = []
        for line in self.svc.logs().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


class LocalSystem:
    """The stack: PostgreSQL (and optionally a PostgreSQL of its own for the jobs store),
    kafka-mock, an SMTP server, optionally Redis, and service instances with their sidecars on
    the component files of `components`."""

    def __init__(self, components=KAFKA_COMPONENTS, redis=False, separate_jobs_store=False,
                 smtp_kw=None):
        self.components = components
        self.tmp = tempfile.mkdtemp(prefix="ops-scenario-", dir="/tmp")
        self.instances = []
        self.probes = []  # (SidecarApp, Sidecar, source components)
        self.jobs_cluster = None
        self.redis = None
        self.smtp = None
        self.stack = stack.Stack(resources=(components,))
        try:
            if separate_jobs_store:
                # The jobs store (the Dapr Scheduler's part) in a PostgreSQL of its own, so that
                # it can be restarted without touching the services' database.
                self.jobs_cluster = todo_test.PgCluster()
                self.stack.scheduler_url = self.jobs_cluster.create_db("dapr_scheduler")
            if redis:
                self.redis = RedisServer()
            # The maildir in this stack's own folder (removed with it).
            self.smtp = smtp_server.SmtpServer(maildir=os.path.join(self.tmp, "mail"),
                                               **(smtp_kw or {}))
        except BaseException:
            self.close()
            raise

    # -- processes --

    def sidecar_env(self):
        env = {}
        if self.redis:
            env.update(REDIS_HOST=self.redis.host, REDIS_PASSWORD=self.redis.password)
        return env

    def service_env(self, name, extra=None):
        env = {"LOG_LEVEL": "info"}
        if name == "backend":
            env["JWT_SECRET"] = JWT_SECRET
        if name == "notification":
            env["TASK_LINK_BASE"] = "http://127.0.0.1/tasks/"
        if name == "email":
            env.update(SMTP_URL=self.smtp.url, MAIL_FROM="todo@todo.test",
                       STATESTORE_NAME="statestore", SMTP_TIMEOUT_SECONDS="10",
                       CLAIM_LEASE_SECONDS="20")
        env.update(extra or {})
        return env

    def start(self, name, replicas=1, env=None, allowed_errors=()):
        """replicas instances of service name (sidecars healthy, services ready)."""
        exe = SERVICES[name][0]
        started = []
        for _ in range(replicas):
            index = sum(1 for i in self.instances if i.name == name)
            e = self.service_env(name, env)
            if name == "email":
                e.setdefault("INSTANCE_NAME", f"email-{index}")
            svc, sc = self.stack.start(exe, name, env=e, sidecar_env=self.sidecar_env(),
                                       allowed_errors=allowed_errors)
            inst = Instance(name, index, svc, sc)
            self.instances.append(inst)
            started.append(inst)
        for inst in started:
            inst.sidecar.wait_healthy(timeout=60)
        return started

    def start_all(self, env=None, replicas=None):
        for name in SERVICES:
            self.start(name, (replicas or {}).get(name, 1), (env or {}).get(name))

    def get(self, name, index=0):
        for i in self.instances:
            if i.name == name and i.index == index:
                return i
        raise KeyError(f"{name}-{index}")

    @property
    def backend(self):
        return self.get("backend").svc

    def probe(self, subscriptions, app_id="probe"):
        """A probe app of its own app-id (so it gets every message of the topics it names) with
        a sidecar on the current components."""
        app = SidecarApp()
        app.subscribe(200, [{"pubsubname": "pubsub", "topic": t, "route": "/" + t}
                            for t in subscriptions])
        res = scoped_copy(self.components, app_id, self.tmp)
        sc = self.stack.sidecar(app_id, app_port=app.port, env=self.sidecar_env(),
                                resources=[res])
        sc.wait_healthy(timeout=60)
        self.probes.append([app, sc])
        return app, sc

    def kill(self, inst):
        """SIGKILL of both processes of an instance (a pod killed)."""
        inst.svc.proc.kill()
        inst.sidecar.proc.kill()
        inst.svc.proc.wait(30)
        inst.sidecar.proc.wait(30)
        inst.killed = True

    def stop_instances(self):
        """SIGTERM to every service (they drain and flush their outboxes), then to their
        sidecars and the probes' sidecars; the exit codes that were not 0."""
        bad = []
        for inst in self.instances:
            if inst.killed:
                continue
            rc = inst.svc.stop()
            if rc not in (0, None):
                bad.append((inst.label, rc))
        for inst in self.instances:
            if inst.killed:
                continue
            rc = inst.sidecar.stop()
            if rc not in (0, None):
                bad.append((f"sidecar {inst.label}", rc))
        for _, sc in self.probes:
            rc = sc.stop()
            if rc not in (0, None):
                bad.append(("sidecar probe", rc))
        return bad

    def restart_on(self, components):
        """The broker swap: every sidecar restarted on the component files of `components`, and
        every service restarted (the same executables, the same environment). Returns the exit
        codes that were not 0 when stopping."""
        bad = self.stop_instances()
        self.components = components
        self.stack.resources = [components]
        env = self.sidecar_env()
        for inst in self.instances:
            if inst.killed:
                continue
            inst.sidecar.resources = [components]
            inst.sidecar.env.update(env)
            inst.sidecar.start()
        for probe in self.probes:
            app, sc = probe
            sc.resources = [scoped_copy(components, sc.app_id, self.tmp)]
            sc.env.update(env)
            sc.start()
        for inst in self.instances:
            if not inst.killed:
                inst.svc.start(wait_ready=False)
        for inst in self.instances:
            if not inst.killed:
                inst.svc.wait_ready(timeout=60 * SLOW)
                inst.sidecar.wait_healthy(timeout=60)
        for _, sc in self.probes:
            sc.wait_healthy(timeout=60)
        return bad

    # -- the API and the database --

    def api(self, user, email=None):
        return todo_test.Api(self.backend, user, email=email)

    def sql(self, query):
        return self.stack.cluster.psql(query, "todo")

    def scalar(self, query):
        return self.stack.cluster.scalar(query, "todo")

    def jobs_sql(self, query):
        cluster = self.jobs_cluster or self.stack.cluster
        return cluster.psql(query, "dapr_scheduler")

    # -- logs --

    def problems(self, allowed=()):
        """Error lines (but those containing one of `allowed`) and sanitizer reports of every
        process."""
        found = []
        for inst in self.instances:
            for line in inst.svc.logs().splitlines():
                if any(m in line for m in SANITIZER_MARKS) or (
                        '"level":"error"' in line and not any(a in line for a in allowed)):
                    found.append(f"{inst.label}: {line}")
            found += [f"sidecar {inst.label}: {p}" for p in inst.sidecar.problems(allowed)]
        for _, sc in self.probes:
            found += [f"sidecar probe: {p}" for p in sc.problems(allowed)]
        return found

    def close(self):
        try:
            for probe in self.probes:
                probe[0].close()
            if self.stack:
                self.stack.close()
        finally:
            if self.smtp:
                self.smtp.close()
            if self.redis:
                self.redis.stop()
            if self.jobs_cluster:
                self.jobs_cluster.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def mails_by_subject(smtp, prefix="Reminder: "):
    """{subject without prefix: [Message]} of every mail the SMTP server accepted."""
    out = {}
    for m in smtp.messages():
        subject = str(m.msg["Subject"] or "")
        if subject.startswith(prefix):
            subject = subject[len(prefix):]
        out.setdefault(subject, []).append(m)
    return out


def run_script(script, *args, env=None, timeout=120):
    """Runs one of k8s/scripts/*.sh; (exit code, output)."""
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(["bash", os.path.join(SCRIPTS, script), *args], env=e,
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def write_stack_file(system, path):
    """The endpoints of the running stack for validate-dapr-deployment.sh --stack-file."""
    lines = []
    for inst in system.instances:
        if inst.index == 0 and not inst.killed:
            key = inst.name.upper()
            lines.append(f"{key}_PORT={inst.svc.port}")
            lines.append(f"{key}_DAPR_PORT={inst.sidecar.port}")
    lines.append(f"DATABASE_URL={system.stack.db_url}")
    lines.append(f"KAFKA_BROKERS={system.stack.kafka.bootstrap}")
    if system.redis:
        lines.append(f"REDIS_HOST={system.redis.host}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def validate(system, verdict, what):
    """Runs validate-dapr-deployment.sh --target local against the running stack and checks it
    passes; its output is shown indented."""
    path = write_stack_file(system, os.path.join(system.tmp, "stack.env"))
    env = {"REDISCLI_AUTH": system.redis.password} if system.redis else {}
    rc, out = run_script("validate-dapr-deployment.sh", "--target", "local", "--stack-file", path,
                         env=env)
    for line in out.splitlines():
        print("    | " + line)
    verdict.check(rc == 0, f"validate-dapr-deployment.sh --target local passes {what}",
                  f"exit {rc}")
    return rc, out


def trace_ids(lines):
    return {ln.get("trace_id") for ln in lines if ln.get("trace_id")}


def main_guard(fn):
    """Runs a scenario's main; its return value is the exit code; a crash is exit 1."""
    try:
        code = fn()
    except KeyboardInterrupt:
        code = 130
    except BaseException as e:  # the verdict is the exit code: a crash is a failure
        import traceback
        traceback.print_exc()
        print(f"scenario aborted: {e}", file=sys.stderr)
        print("0 passed, 1 failed")
        code = 1
    sys.exit(code)


