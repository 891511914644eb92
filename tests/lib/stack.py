"""The local stack for end-to-end tests: kafka-mock, one dapr-sidecar (the double) per service
instance with the repository's component files (dapr/components), and the services, on free
ports, on top of todo_test's PostgreSQL cluster. Every process logs to a file that teardown checks
for error lines and sanitizer reports."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile

import todo_test
from todo_test import BIN_DIR, SOURCE_DIR, SLOW, free_port, wait_until

COMPONENTS = os.path.join(SOURCE_DIR, "dapr", "components")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def _problems(text, allowed=()):
    found = []
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            found.append(line)
        elif '"level":"error"' in line and not any(a in line for a in allowed):
            found.append(line)
    return found


class KafkaMock:
    """kafka-mock in a temporary directory, up once its bootstrap file exists."""

    def __init__(self, brokers=1, topics=()):
        self.dir = tempfile.mkdtemp(prefix="todo-kafka-", dir="/tmp")
        self.bootstrap_file = os.path.join(self.dir, "bootstrap")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        args = [os.path.join(BIN_DIR, "kafka-mock"), "--brokers", str(brokers),
                "--bootstrap-file", self.bootstrap_file]
        for t in topics:
            args += ["--topic", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        wait_until(self._up, 30 * SLOW, what="kafka-mock bootstrap file")
        with open(self.bootstrap_file) as f:
            self.bootstrap = f.read().strip()

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"kafka-mock exited with {self.proc.returncode}")
        return os.path.exists(self.bootstrap_file) and os.path.getsize(self.bootstrap_file) > 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sidecar:
    """One dapr-sidecar for app_id, with the given resources paths."""

    def __init__(self, app_id, resources=(), app_port=0, env=None, start=True, args=()):
        self.app_id = app_id
        self.args = list(args)
        self.port = free_port()
        self.app_port = app_port
        self.resources = list(resources)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DAPR_API_TOKEN", "APP_API_TOKEN")}
        self.env.update(env or {})
        fd, self.log_path = tempfile.mkstemp(prefix=f"todo-sidecar-{app_id}-", suffix=".log",
                                             dir=todo_test.LOG_DIR)
        os.close(fd)
        self.proc = None
        self.log = None
        if start:
            self.start()

    def start(self):
        cmd = [os.path.join(BIN_DIR, "dapr-sidecar"), "--app-id", self.app_id,
               "--dapr-http-port", str(self.port), "--log-level", "info"]
        for r in self.resources:
            cmd += ["--resources-path", r]
        if self.app_port:
            cmd += ["--app-port", str(self.app_port)]
        cmd += self.args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log)

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(),
                                      r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def wait_healthy(self, path="/v1.0/healthz", timeout=30):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"sidecar {self.app_id} exited with {self.proc.returncode}:"
                                     f"\n{self.logs()[-3000:]}")
            try:
                return self.request("GET", path).status == 204
            except OSError:
                return False
        wait_until(ok, timeout * SLOW, what=f"sidecar {self.app_id} {path}")

    def publish(self, topic, event, pubsub="pubsub", content_type="application/cloudevents+json",
                query=""):
        body = event if isinstance(event, (bytes, str)) else json.dumps(event)
        return self.request("POST", f"/v1.0/publish/{pubsub}/{topic}{query}", body,
                            {"Content-Type": content_type})

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"sidecar {self.app_id} did not stop within {timeout} s")
        if self.log:
            self.log.close()
            self.log = None
        return self.proc.returncode

    def problems(self, allowed=()):
        return _problems(self.logs(), allowed)


class Stack:
    """PostgreSQL, kafka-mock and, on demand, services each with its own sidecar. Services get
    DAPR_HTTP_PORT of their sidecar; sidecars get KAFKA_BROKERS and STATE_DATABASE_URL."""

    def __init__(self, topics=("task-events:4", "task-reminders:4", "task-recurrence:4"),
                 resources=(COMPONENTS,)):
        self.cluster = todo_test.PgCluster()
        self.kafka = None
        self.instances = []  # (service, sidecar)
        self.extra_sidecars = []
        self.temp_dirs = []
        self.resources = list(resources)
        try:
            self.db_url = self.cluster.create_db("todo")
            # The jobs store that the sidecars of one app-id share (the Dapr Scheduler's part).
            self.scheduler_url = self.cluster.create_db("dapr_scheduler")
            self.kafka = KafkaMock(topics=topics)
        except BaseException:
            self.close()
            raise

    def sidecar_env(self, extra=None):
        env = {"KAFKA_BROKERS": self.kafka.bootstrap, "STATE_DATABASE_URL": self.db_url}
        env.update(extra or {})
        return env

    def scoped_resources(self, app_id):
        """A copy of the component files whose scopes also name app_id (the components are
        scoped to the four services)."""
        d = tempfile.mkdtemp(prefix=f"todo-resources-{app_id}-", dir="/tmp")
        self.temp_dirs.append(d)
        for src in self.resources:
            for name in sorted(os.listdir(src)):
                if not name.endswith((".yaml", ".yml")):
                    continue
                with open(os.path.join(src, name)) as f:
                    text = f.read()
                text = text.replace("\nscopes:\n", f"\nscopes:\n  - {app_id}\n")
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
        return [d]

    def sidecar(self, app_id, app_port=0, env=None, resources=None):
        """A sidecar of its own (e.g. for a test's publisher or probe app), allowed by the
        components' scopes."""
        if resources is None:
            resources = self.scoped_resources(app_id)
        sc = Sidecar(app_id, resources, app_port, self.sidecar_env(env),
                     args=["--scheduler-database-url", self.scheduler_url])
        self.extra_sidecars.append(sc)
        return sc

    def start(self, executable, app_id, env=None, sidecar_env=None, allowed_errors=(),
              wait_ready=True):
        """The service executable (e.g. 'todo-backend') with its own sidecar of app_id."""
        port = free_port()
        sc = Sidecar(app_id, self.resources, port, self.sidecar_env(sidecar_env),
                     args=["--scheduler-database-url", self.scheduler_url])
        e = {"DATABASE_URL": self.db_url, "DAPR_HTTP_PORT": str(sc.port), "THREADS": "2",
             "WORKERS": "4"}
        e.update({k: str(v) for k, v in (env or {}).items()})
        try:
            svc = todo_test.Service(executable, e, port=port, wait_ready=wait_ready,
                                    allowed_errors=allowed_errors)
        except BaseException:
            sc.stop(signal.SIGKILL)
            raise
        self.instances.append((svc, sc))
        return svc, sc

    def backend(self, **kw):
        env = {"JWT_SECRET": todo_test.JWT_SECRET}
        env.update(kw.pop("env", {}))
        return self.start("todo-backend", "backend", env=env, **kw)

    def recurring(self, **kw):
        return self.start("todo-recurring", "recurring", **kw)

    def notification(self, **kw):
        return self.start("todo-notification", "notification", **kw)

    def problems(self, allowed=()):
        """Error lines and sanitizer reports of every process so far."""
        found = []
        for svc, sc in self.instances:
            found += [f"{svc.name}: {p}" for p in svc.problems()]
            found += [f"sidecar {sc.app_id}: {p}" for p in sc.problems(allowed)]
        for sc in self.extra_sidecars:
            found += [f"sidecar {sc.app_id}: {p}" for p in sc.problems(allowed)]
        return found

    def stop_all(self):
        """Stops services then sidecars; returns [(name, exit code)] of those that did not exit
        0."""
        bad = []
        for svc, _ in self.instances:
            rc = svc.stop()
            if rc not in (0, None):
                bad.append((svc.name, rc))
        for _, sc in self.instances:
            rc = sc.stop()
            if rc not in (0, None):
                bad.append((f"sidecar {sc.app_id}", rc))
        for sc in self.extra_sidecars:
            rc = sc.stop()
            if rc not in (0, None):
                bad.append((f"sidecar {sc.app_id}", rc))
        return bad

    def close(self):
        try:
            for svc, sc in self.instances:
                if svc.proc and svc.proc.poll() is None:
                    svc.proc.kill()
                if sc.proc and sc.proc.poll() is None:
                    sc.proc.kill()
            for sc in self.extra_sidecars:
                if sc.proc and sc.proc.poll() is None:
                    sc.proc.kill()
            if self.kafka:
                self.kafka.stop()
            for d in self.temp_dirs:
                shutil.rmtree(d, ignore_errors=True)
        finally:
            self.cluster.close()
