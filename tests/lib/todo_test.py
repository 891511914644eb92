"""Shared fixtures for the integration tests: a real PostgreSQL cluster made for the test, the
real service executables on free ports (waited for on /readyz, checked for error lines and
sanitizer reports on teardown), HS256 tokens and a small HTTP client."""

import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
from datetime import datetime

BIN_DIR = os.environ.get("TODO_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))
SOURCE_DIR = os.environ.get("TODO_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
PG_BIN = "/usr/lib/postgresql/15/bin"
JWT_SECRET = "integration-test-secret-0123456789abcdef"


# The log files of every process a test starts: removed when the test file passes, kept (and
# named on stderr) when it fails or TODO_KEEP_LOGS is set.
LOG_DIR = tempfile.mkdtemp(prefix="todo-test-logs-", dir="/tmp")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Polls predicate until it returns a true value or the deadline passes (then fails)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the thing may not be up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")


def _as_postgres(cmd, **kw):
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class PgCluster:
    """A throw-away PostgreSQL cluster in a temporary directory on a free port."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        _as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")
        self.start()

    def start(self):
        _as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
                      "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        _as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])

    def url(self, dbname="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_db(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql, dbname="postgres"):
        """Runs sql with psql and returns the rows as lists of text fields (unaligned, tab)."""
        out = subprocess.run([f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v",
                              "ON_ERROR_STOP=1", "-d", self.url(dbname), "-c", sql],
                             check=True, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def scalar(self, sql, dbname="postgres"):
        rows = self.psql(sql, dbname)
        return rows[0][0] if rows else None

    def close(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub, secret=JWT_SECRET, exp_in=3600, alg="HS256", **claims):
    """A JWT for sub signed with secret (HS256 unless alg says otherwise; 'none' leaves it unsigned)."""
    now = int(time.time())
    body = {"sub": sub, "iat": now}
    if exp_in is not None:
        body["exp"] = now + exp_in
    body.update(claims)
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(body).encode())
    signing_input = f"{header}.{payload}".encode()
    if alg == "none":
        return f"{header}.{payload}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    sig = hmac.new(secret.encode(), signing_input, digest).digest()
    return f"{header}.{payload}.{b64url(sig)}"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Service:
    """One of the project's executables, started on a free port with env, waited for on /readyz.
    Its stderr goes to a file; teardown fails on error log lines or sanitizer reports."""

    def __init__(self, name, env, port=None, wait_ready=True, allowed_errors=()):
        self.name = name
        self.port = port or free_port()
        self.allowed_errors = list(allowed_errors)
        self.log_path = tempfile.mktemp(prefix=f"todo-{name}-", suffix=".log", dir=LOG_DIR)
        full_env = dict(os.environ)
        full_env.update({"PORT": str(self.port), "LOG_LEVEL": "info"})
        full_env.update(env)
        self.env = full_env
        self.proc = None
        self.start(wait_ready)

    def start(self, wait_ready=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN_DIR, self.name)], env=self.env,
                                     stdout=self.log, stderr=self.log)
        if wait_ready:
            try:
                self.wait_ready()
            except BaseException:
                # Not handed to the test: nobody else would stop it.
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                     + self.logs()[-3000:])
            return self.request("GET", "/readyz").status == 200
        wait_until(ready, timeout, what=f"{self.name} /readyz")

    def request(self, method, path, body=None, token=None, headers=None, raw=None, timeout=10):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s")
        finally:
            self.log.close()
        return self.proc.returncode

    def problems(self):
        """Error log lines not allowed by the test, and sanitizer reports."""
        found = []
        for line in self.logs().splitlines():
            if "AddressSanitizer" in line or "runtime error:" in line or "LeakSanitizer" in line:
                found.append(line)
            elif '"level":"error"' in line and not any(a in line for a in self.allowed_errors):
                found.append(line)
        return found


class ServiceTestCase(unittest.TestCase):
    """Base for tests that drive a service: asserts a clean shutdown and clean logs at the end."""

    services = []

    @classmethod
    def tearDownClass(cls):
        for svc in cls.services:
            rc = svc.stop()
            problems = svc.problems()
            if rc not in (0, None) or problems:
                raise AssertionError(f"{svc.name} exit {rc}; problems in its log:\n"
                                     + "\n".join(problems[:20]))


def run():
    """unittest.main with a closing line CTest logs show: 'N passed, N failed'."""
    import sys
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors)
    print(f"{r.testsRun - failed - len(r.skipped)} passed, {failed} failed, {len(r.skipped)} skipped")
    bad = failed or r.testsRun == 0
    if bad or os.environ.get("TODO_KEEP_LOGS"):
        print(f"the processes' logs are in {LOG_DIR}", file=sys.stderr)
    else:
        # Processes of the tests are gone by now, but for the shared plain sidecar (atexit).
        atexit.register(shutil.rmtree, LOG_DIR, True)
    sys.exit(1 if bad else 0)


# ---------------------------------------------------------------------------------------------
# The backend: a cluster + database + todo-backend per test module, a per-user API client,
# database snapshots and assertions on problem+json errors and on task JSON.


SANITIZE = os.environ.get("TODO_SANITIZE", "").lower() in ("1", "on", "true", "yes")
# Deadlines scale up under the sanitizers, which slow everything down.
SLOW = 3.0 if SANITIZE else 1.0

TASK_KEYS = {"id", "user_id", "title", "description", "completed", "priority", "category", "tags",
             "due_at", "remind_at", "remind_before_minutes", "timezone", "recurrence_rule",
             "series_id", "occurrence", "series_start_at", "version", "created_at", "updated_at",
             "completed_at"}
EVENT_KEYS = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
              "traceparent", "data"}
TASK_EVENT_TYPES = ("todo.task.created", "todo.task.updated", "todo.task.completed",
                    "todo.task.reopened", "todo.task.deleted")
PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_time(s):
    """An RFC 3339 UTC time of the API ('…Z') as an aware datetime."""
    assert isinstance(s, str) and RFC3339_UTC.match(s), f"not an RFC 3339 UTC time: {s!r}"
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


_plain_sidecar = None


def plain_sidecar_port():
    """The port of a dapr-sidecar with no components and no app, shared by the tests of this
    process: the backend waits for a sidecar before it is ready, and with no pub/sub component
    its outbox rows stay unpublished (as the tests of the outbox want them)."""
    global _plain_sidecar
    if _plain_sidecar is None:
        port = free_port()
        log = open(tempfile.mktemp(prefix="todo-sidecar-plain-", suffix=".log", dir=LOG_DIR), "ab")
        proc = subprocess.Popen([os.path.join(BIN_DIR, "dapr-sidecar"), "--app-id", "backend",
                                 "--dapr-http-port", str(port)], stdout=log, stderr=log)
        atexit.register(lambda: (proc.kill(), proc.wait(), log.close()))

        def up():
            if proc.poll() is not None:
                raise AssertionError(f"dapr-sidecar exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v1.0/healthz/outbound")
                return conn.getresponse().status == 204
            except OSError:
                return False
        wait_until(up, 30, what="the plain dapr-sidecar")
        _plain_sidecar = port
    return _plain_sidecar


def backend_env(db_url, **extra):
    env = {"DATABASE_URL": db_url, "JWT_SECRET": JWT_SECRET, "THREADS": "2",
           "MAX_BODY_BYTES": "65536", "DAPR_HTTP_PORT": str(plain_sidecar_port())}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_backend(db_url, allowed_errors=(), **extra):
    """todo-backend on a free port against db_url, ready (its migrations applied)."""
    return Service("todo-backend", backend_env(db_url, **extra), allowed_errors=allowed_errors)


class Api:
    """Requests of one user: paths are relative to /api/{user}; the token is the user's own
    unless a call says otherwise."""

    def __init__(self, svc, user, email=None, token=None):
        self.svc = svc
        self.user = user
        self.email = email if email is not None else f"{user}@example.com"
        self.token = token or make_token(user, email=self.email, name=f"User {user}")

    def path(self, p):
        return f"/api/{self.user}{p}"

    def request(self, method, p, body=None, headers=None, raw=None, token="own", **kw):
        tok = self.token if token == "own" else token
        return self.svc.request(method, self.path(p), body=body, token=tok, headers=headers,
                                raw=raw, **kw)

    def get(self, p, **kw):
        return self.request("GET", p, **kw)

    def post(self, p, body=None, **kw):
        return self.request("POST", p, body=body, **kw)

    def put(self, p, body=None, **kw):
        return self.request("PUT", p, body=body, **kw)

    def patch(self, p, body=None, **kw):
        return self.request("PATCH", p, body=body, **kw)

    def delete(self, p, **kw):
        return self.request("DELETE", p, **kw)

    # Shortcuts that must succeed.
    def create_task(self, **fields):
        fields.setdefault("title", "a task")
        r = self.post("/tasks", fields)
        if r.status != 201:
            raise AssertionError(f"creating task {fields!r}: {r!r}")
        return r.json

    def create_category(self, name, color=None):
        body = {"name": name}
        if color:
            body["color"] = color
        r = self.post("/categories", body)
        if r.status != 201:
            raise AssertionError(f"creating category {name!r}: {r!r}")
        return r.json

    def create_tag(self, name, color=None):
        body = {"name": name}
        if color:
            body["color"] = color
        r = self.post("/tags", body)
        if r.status != 201:
            raise AssertionError(f"creating tag {name!r}: {r!r}")
        return r.json

    def task(self, task_id):
        r = self.get(f"/tasks/{task_id}")
        if r.status != 200:
            raise AssertionError(f"getting task {task_id}: {r!r}")
        return r.json

    def list(self, **query):
        """GET /tasks with query (values stringified); the response JSON."""
        r = self.get("/tasks" + query_string(query))
        if r.status != 200:
            raise AssertionError(f"listing tasks {query!r}: {r!r}")
        return r.json

    def list_all(self, **query):
        """Every item of a listing, following next_cursor; also the number of pages."""
        items, pages, cursor = [], 0, None
        while True:
            q = dict(query)
            if cursor is not None:
                q["cursor"] = cursor
            page = self.list(**q)
            pages += 1
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items, pages
            if pages > 1000:
                raise AssertionError("pagination does not end")


def query_string(query):
    if not query:
        return ""
    return "?" + urllib.parse.urlencode({k: str(v).lower() if isinstance(v, bool) else str(v)
                                         for k, v in query.items()})


def db_snapshot(cluster, dbname="todo"):
    """Row counts, versions and a digest of every backend table: equal snapshots before and after
    a request mean the request changed nothing."""
    def digest(table, order):
        return (f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY {order}), '')) "
                f"FROM backend.{table} x)")
    cols = {
        "users": "(SELECT count(*) FROM backend.users)",
        "tasks": "(SELECT count(*) FROM backend.tasks)",
        "max_version": "(SELECT coalesce(max(version), 0) FROM backend.tasks)",
        "sum_version": "(SELECT coalesce(sum(version), 0) FROM backend.tasks)",
        "categories": "(SELECT count(*) FROM backend.categories)",
        "tags": "(SELECT count(*) FROM backend.tags)",
        "task_tags": "(SELECT count(*) FROM backend.task_tags)",
        "outbox": "(SELECT count(*) FROM backend.outbox)",
        "idempotency_keys": "(SELECT count(*) FROM backend.idempotency_keys)",
        "tasks_digest": digest("tasks", "id"),
        "categories_digest": digest("categories", "id"),
        "tags_digest": digest("tags", "id"),
        "task_tags_digest": digest("task_tags", "task_id, tag_id"),
    }
    row = cluster.psql("SELECT " + ", ".join(cols.values()), dbname)[0]
    return dict(zip(cols.keys(), row))


def outbox_rows(cluster, where="true", dbname="todo"):
    """Outbox rows (oldest first) as dicts, event parsed."""
    rows = cluster.psql("SELECT id, event_id, topic, partition_key, event::text, "
                        "backend.rfc3339(created_at), coalesce(published_at::text, '<null>') "
                        f"FROM backend.outbox WHERE {where} ORDER BY id", dbname)
    return [{"id": int(r[0]), "event_id": r[1], "topic": r[2], "partition_key": r[3],
             "event": json.loads(r[4]), "created_at": r[5],
             "published_at": None if r[6] == "<null>" else r[6]} for r in rows]


def max_outbox_id(cluster, dbname="todo"):
    return int(cluster.scalar("SELECT coalesce(max(id), 0) FROM backend.outbox", dbname))


class BackendTestCase(ServiceTestCase):
    """One PostgreSQL cluster, one database 'todo' and one todo-backend for the whole module.
    backend_extra_env and allowed_errors may be set by subclasses."""

    backend_extra_env = {}
    allowed_errors = ()
    _users = 0

    @classmethod
    def setUpClass(cls):
        cls.cluster = PgCluster()
        try:
            cls.db_url = cls.cluster.create_db("todo")
            cls.backend = start_backend(cls.db_url, allowed_errors=cls.allowed_errors,
                                        **cls.backend_extra_env)
            cls.services = [cls.backend]
        except BaseException:
            cls.cluster.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.cluster.close()

    # Helpers for the tests.
    def new_user(self, prefix="u", **kw):
        """A user no other test uses."""
        type(self)._users += 1
        return Api(self.backend, f"{prefix}{type(self)._users}", **kw)

    def sql(self, query):
        return self.cluster.psql(query, "todo")

    def scalar(self, query):
        return self.cluster.scalar(query, "todo")

    def snapshot(self):
        return db_snapshot(self.cluster)

    def assertUnchanged(self, before, what=""):
        after = self.snapshot()
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        self.assertEqual(changed, {}, f"the database changed {what}: {changed}")

    def assertProblem(self, r, status, code=None, field=None):
        """r is an application/problem+json error with status (and code, and an error about
        field among errors for a 422)."""
        self.assertEqual(r.status, status, f"expected {status}: {r!r}")
        ctype = r.header("Content-Type") or ""
        self.assertTrue(ctype.startswith("application/problem+json"),
                        f"content type {ctype!r} of {r!r}")
        body = r.json
        self.assertIsInstance(body, dict, r)
        self.assertTrue(PROBLEM_KEYS <= set(body), f"problem keys missing in {body}")
        self.assertEqual(body["status"], status, body)
        for k in ("type", "title", "detail", "code"):
            self.assertIsInstance(body[k], str, f"{k} in {body}")
        if code is not None:
            self.assertEqual(body["code"], code, body)
        if status == 422:
            errs = body.get("errors")
            self.assertIsInstance(errs, list, f"422 without errors: {body}")
            for e in errs:
                self.assertIsInstance(e, dict, body)
                self.assertIsInstance(e.get("field"), str, body)
                self.assertIsInstance(e.get("message"), str, body)
            if field is not None:
                fields = [e["field"] for e in errs]
                self.assertTrue(any(f == field or f.startswith(field + "[")
                                    or f.startswith(field + ".") for f in fields),
                                f"no error about {field!r} in {body}")
        return body

    def assertTask(self, t, **expected):
        """t is a task as the API shows it (every key, right types), with the expected values."""
        self.assertIsInstance(t, dict, t)
        self.assertEqual(set(t), TASK_KEYS, f"task keys of {t}")
        self.assertIsInstance(t["id"], int)
        self.assertIsInstance(t["user_id"], str)
        self.assertIsInstance(t["title"], str)
        self.assertIsInstance(t["description"], str)
        self.assertIsInstance(t["completed"], bool)
        self.assertIn(t["priority"], ("low", "medium", "high", "urgent"))
        if t["category"] is not None:
            self.assertEqual(set(t["category"]), {"id", "name", "color"}, t)
        self.assertIsInstance(t["tags"], list)
        for g in t["tags"]:
            self.assertEqual(set(g), {"id", "name", "color"}, t)
        self.assertEqual([g["id"] for g in t["tags"]], sorted(g["id"] for g in t["tags"]),
                         f"tags not in id order: {t}")
        for k in ("due_at", "remind_at", "completed_at"):
            if t[k] is not None:
                parse_time(t[k])
        for k in ("created_at", "updated_at"):
            parse_time(t[k])
        self.assertTrue(t["remind_before_minutes"] is None
                        or isinstance(t["remind_before_minutes"], int), t)
        self.assertIsInstance(t["timezone"], str)
        self.assertTrue(t["recurrence_rule"] is None or isinstance(t["recurrence_rule"], str))
        self.assertTrue(t["series_id"] is None or UUID_RE.match(t["series_id"]), t)
        self.assertTrue(t["occurrence"] is None or isinstance(t["occurrence"], int), t)
        self.assertIsInstance(t["version"], int)
        self.assertEqual(t["completed_at"] is not None, t["completed"],
                         f"completed_at must be set exactly when completed: {t}")
        for k, v in expected.items():
            self.assertEqual(t[k], v, f"{k} of {t}")
        return t

    def assertTaskResponse(self, r, status=200, **expected):
        """r answers status with a task and ETag "<version>"."""
        self.assertEqual(r.status, status, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"), r)
        t = self.assertTask(r.json, **expected)
        self.assertEqual(r.header("ETag"), f'"{t["version"]}"', f"ETag of {r!r}")
        return t


class HeldLock:
    """A psql session that runs lock_sql in an open transaction and keeps it (and its locks)
    until release()."""

    def __init__(self, cluster, lock_sql, dbname="todo"):
        self.proc = subprocess.Popen([f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-d",
                                      cluster.url(dbname)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write(f"BEGIN;\n{lock_sql};\nSELECT 'locked';\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"psql did not take the lock: {''.join(lines)!r}")
            if line.strip() == "locked":
                break
            lines.append(line)

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
            self.proc.wait(30)


def waiting_on_locks(cluster, dbname="todo"):
    """How many sessions wait for a lock right now."""
    return int(cluster.scalar("SELECT count(*) FROM pg_stat_activity "
                              "WHERE wait_event_type = 'Lock'", dbname))


def run_concurrently(*fns, timeout=30):
    """Runs each fn in its own thread, released together by a barrier; their results in order
    (an exception raised by a fn is re-raised here)."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)
    errors = [None] * len(fns)

    def worker(i, fn):
        try:
            barrier.wait(timeout)
            results[i] = fn()
        except BaseException as e:  # reported below
            errors[i] = e

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise AssertionError(f"a concurrent request did not finish within {timeout}s")
    for e in errors:
        if e is not None:
            raise e
    return results
