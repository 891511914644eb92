"""The sidecar double's Jobs API (DAPR-CONTRACT §6) against a real PostgreSQL: first the C checks
of jobs_check (tests/dapr-sidecar/jobs_check.c) on the jobs store itself, then the real
dapr-sidecar over HTTP — every validation row of §6.1, overwrite/409, GET/DELETE bodies, the
trigger request of §6.2 byte for byte, never early, the failure policies of §6.3, and three
sidecars of one app id sharing the jobs: each trigger once, kill -9 of one, and a trigger due
while none is up."""

import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from datetime import datetime, timezone

import todo_test

JOBS_CHECK = os.path.join(todo_test.BIN_DIR, "..", "tests", "jobs_check")
SIDECAR = os.path.join(todo_test.BIN_DIR, "dapr-sidecar")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
VALUE_TYPE = "type.googleapis.com/google.protobuf.Value"


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@unittest.skipUnless(os.path.exists(JOBS_CHECK), "jobs_check is not built (TODO_BUILD_SIDECAR)")
class JobsCheck(unittest.TestCase):
    """The store on its own (jobs_store.c) against a fresh database."""

    def test_jobs_check(self):
        cluster = todo_test.PgCluster()
        try:
            url = cluster.create_db("jobscheck")
            r = subprocess.run([JOBS_CHECK, url], capture_output=True, text=True, timeout=180)
            self.assertEqual(r.returncode, 0, f"jobs_check failed:\n{r.stdout}\n{r.stderr}")
            self.assertIn(" 0 failed", r.stdout)
            self.assertIn("exactly-once: 300 of 300", r.stdout)
            self.assertFalse([l for l in r.stderr.splitlines()
                              if any(m in l for m in SANITIZER_MARKS)], r.stderr)
        finally:
            cluster.close()


class JobApp:
    """The app behind the sidecars: records every POST /job/<name> (arrival time, path, headers,
    body) and answers with the status set for that job (200 by default). It answers the
    sidecar's start-up calls (/dapr/config, /dapr/subscribe) like an app without
    subscriptions."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []       # (time, path, headers dict lower-case, body bytes, tag)
        self.statuses = {}    # job name -> status
        self.delays = {}      # job name -> seconds the app takes to answer
        self.tag = "app"
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", ctype="application/json"):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the sidecar went away (kill -9)

            def do_GET(self):
                if self.path == "/dapr/subscribe":
                    self._reply(200, b"[]")
                elif self.path == "/dapr/config":
                    self._reply(200, b"{}")
                else:
                    self._reply(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                now = time.time()
                if self.path.startswith("/job/"):
                    name = self.path[len("/job/"):]
                    with app.lock:
                        app.calls.append((now, self.path,
                                          {k.lower(): v for k, v in self.headers.items()},
                                          body, app.tag))
                        status = app.statuses.get(name, 200)
                        delay = app.delays.get(name, 0)
                    if delay:
                        time.sleep(delay)  # a slow handler: the trigger stays in flight
                    self._reply(status)
                else:
                    self._reply(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def job_calls(self, name):
        with self.lock:
            return [c for c in self.calls if c[1] == "/job/" + name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Sidecar:
    """One dapr-sidecar for app_id in front of the app on app_port, with the jobs store at
    db_url; ready when /v1.0/healthz answers 204 (app reachable). Its log is checked for errors
    and sanitizer reports."""

    def __init__(self, app_id, app_port, db_url, resources, extra_env=None):
        self.token = (extra_env or {}).get("DAPR_API_TOKEN")
        self.app_id = app_id
        self.port = todo_test.free_port()
        self.log_path = tempfile.mktemp(prefix=f"todo-sidecar-jobs-{app_id}-", suffix=".log",
                                        dir=todo_test.LOG_DIR)
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        for k in ("DAPR_API_TOKEN", "APP_API_TOKEN", "NAMESPACE"):
            env.pop(k, None)
        env.update(extra_env or {})
        argv = [SIDECAR, "--app-id", app_id, "--app-port", str(app_port),
                "--app-channel-address", "127.0.0.1", "--dapr-http-port", str(self.port),
                "--resources-path", resources, "--log-level", "info"]
        if db_url:
            argv += ["--scheduler-database-url", db_url]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)
        try:
            todo_test.wait_until(self._ready, 60, what=f"dapr-sidecar {app_id} health")
        except BaseException:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"dapr-sidecar exited with {self.proc.returncode}:\n"
                                 + self.logs()[-3000:])
        return self.request("GET", "/v1.0/healthz").status == 204

    def request(self, method, path, body=None, raw=None, headers=None, timeout=10, token=True):
        h = dict(headers or {})
        if self.token and token:
            h.setdefault("dapr-api-token", self.token)
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"dapr-sidecar {self.app_id} did not stop within 60s")
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def problems(self):
        return [line for line in self.logs().splitlines()
                if any(m in line for m in SANITIZER_MARKS) or '"level":"error"' in line]


class SidecarCase(unittest.TestCase):
    """A cluster with a scheduler database, the app(s) and sidecars started by each class."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = todo_test.PgCluster()
        cls.db_url = cls.cluster.create_db("scheduler")
        cls.resources = tempfile.mkdtemp(prefix="todo-jobs-res-", dir="/tmp")
        cls.sidecars = []
        cls.apps = []

    @classmethod
    def tearDownClass(cls):
        problems = []
        for s in cls.sidecars:  # every sidecar is stopped, whatever happens to the others
            try:
                rc = s.stop()
                if rc not in (0, -signal.SIGKILL):
                    problems.append(f"{s.app_id} exited with {rc}")
                problems += s.problems()
            except Exception as e:
                problems.append(f"{s.app_id}: {e!r}")
        for a in cls.apps:
            try:
                a.close()
            except Exception as e:
                problems.append(f"app: {e!r}")
        cls.cluster.close()
        shutil.rmtree(cls.resources, ignore_errors=True)
        if problems:
            raise AssertionError("sidecar problems:\n" + "\n".join(problems[:20]))
        for s in cls.sidecars:
            os.unlink(s.log_path)

    @classmethod
    def start_sidecar(cls, app, app_id="jobsapp", extra_env=None, scheduler=True):
        s = Sidecar(app_id, app.port, cls.db_url if scheduler else None, cls.resources,
                    extra_env)
        cls.sidecars.append(s)
        return s

    def sql(self, query):
        return self.cluster.scalar(query, "scheduler")


@unittest.skipUnless(os.path.exists(SIDECAR), "dapr-sidecar is not built")
class JobsApi(SidecarCase):
    """One sidecar of app 'jobsapp': the HTTP rows of §6.1 and the trigger of §6.2."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.app = JobApp()
            cls.apps.append(cls.app)
            cls.side = cls.start_sidecar(cls.app)
        except BaseException:
            cls.tearDownClass()
            raise

    def post(self, name, body=None, raw=None, version="v1.0"):
        return self.side.request("POST", f"/{version}/jobs/{name}", body=body, raw=raw)

    def assert_error(self, r, status, code, message=None, app_id="jobsapp"):
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.header("Content-Type"), "application/json")
        b = r.json
        self.assertEqual(b["errorCode"], code, r.body)
        if message is not None:
            self.assertEqual(b["message"], message)
        if code.startswith("DAPR_"):
            # kit's rich error: one ErrorInfo with the reason (DAPR-CONTRACT §0.1)
            self.assertEqual(b["details"], [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "dapr.io",
                "metadata": {"appID": app_id, "namespace": "default"}, "reason": code}])
        else:
            self.assertNotIn("details", b)

    def test_validation_rows(self):
        rows = [
            ({}, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
            ({"data": {"a": 1}}, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
            ({"name": "other", "schedule": "@every 1h"}, 400, "DAPR_SCHEDULER_JOB_NAME"),
            ({"schedule": "@every 1h", "repeats": -1}, 400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "@every 1h", "repeats": 1.5}, 400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": 5}, 400, "ERR_MALFORMED_REQUEST"),
            ({"dueTime": 10}, 400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "@every 1h", "overwrite": "yes"}, 400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "@every 1h", "failurePolicy": {"constant": {"interval": "1m"}}},
             400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "@every 1h", "failurePolicy": {"constant": {}, "drop": {}}},
             400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "@every 1h", "dueTime": "1s", "due_time": "2s"},
             400, "ERR_MALFORMED_REQUEST"),
            ({"schedule": "* * * * *"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "0 * * * * * *"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "2h45m"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": ""}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "@every"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "CRON_TZ=Nope/Zone 0 0 9 * * *"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "TZ=Europe/Berlin @every 1s"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "TZ=UTC"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "61 * * * * *"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"dueTime": "tomorrow"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"dueTime": "2030-01-01"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"dueTime": "10s", "ttl": "1h"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "@every 1h", "dueTime": "2030-01-01T00:00:00Z",
              "ttl": "2029-01-01T00:00:00Z"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "@every 1h", "ttl": "soon"}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"dueTime": "10s", "repeats": 2}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
            ({"schedule": "@every 1h", "repeats": 0}, 500, "DAPR_SCHEDULER_SCHEDULE_JOB"),
        ]
        for body, status, code in rows:
            with self.subTest(body=body):
                self.assert_error(self.post("rows", body), status, code)
        for raw in (b"{bad json", b"[1,2]", b'"s"',
                    b'{"schedule":"@every 1h","schedule":"@every 2h"}'):
            with self.subTest(raw=raw):
                self.assert_error(self.post("rows", raw=raw), 400, "ERR_MALFORMED_REQUEST")
        self.assert_error(self.post("rows", raw=b""), 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY",
                          "Schedule is empty")
        self.assert_error(self.post("rows", {"name": "x", "schedule": "@every 1h"}), 400,
                          "DAPR_SCHEDULER_JOB_NAME", "Set the job name in the url only")
        self.assert_error(self.post("%20", {"schedule": "@every 1h"}), 400,
                          "DAPR_SCHEDULER_JOB_NAME_EMPTY", "Name is empty")
        for bad in ("a%23b", "a%3Fb", "a%5Cb", "a%01b"):
            with self.subTest(name=bad):
                self.assert_error(self.post(bad, {"schedule": "@every 1h"}), 500,
                                  "DAPR_SCHEDULER_SCHEDULE_JOB")
        r = self.post("rows", {"schedule": "* * * * *"})
        self.assertTrue(r.json["message"].startswith("failed to schedule job due to: "), r.body)
        # nothing above was stored
        self.assertEqual(self.sql("SELECT count(*) FROM dapr_scheduler.jobs WHERE name = 'rows'"),
                         "0")

    def test_accepted_forms(self):
        ok = [
            ("acc-every", {"schedule": "@every 1h", "data": 1, "unknownField": {"x": 1}}),
            ("acc-cron", {"schedule": "0 30 9 * * mon-fri", "data": "s"}),
            ("acc-tz", {"schedule": "CRON_TZ=Europe/Berlin 0 0 9 * * *", "data": {}}),
            ("acc-desc", {"schedule": "@daily", "repeats": "3", "data": None}),
            ("acc-due", {"due_time": "1h", "data": [1]}),
            ("acc-iso", {"dueTime": "P1DT2H", "data": {}}),
            ("acc-rfc", {"dueTime": "2099-01-01T00:00:00Z", "data": {}}),
            ("acc-ttl", {"schedule": "@every 1h", "ttl": "PT2H", "data": {}}),
            ("Upper|@name", {"schedule": "@every 1h", "data": {}}),
            ("acc-drop", {"schedule": "@every 1h", "failurePolicy": {"drop": {}}, "data": {}}),
        ]
        for name, body in ok:
            with self.subTest(name=name):
                path = name.replace("|", "%7C").replace("@", "%40")
                r = self.post(path, body)
                self.assertEqual(r.status, 204, r.body)
                self.assertEqual(r.body, "")
                self.assertEqual(self.side.request("DELETE", f"/v1.0/jobs/{path}").status, 204)

    def test_both_paths_get_delete(self):
        body = {"schedule": "@every 1h", "dueTime": "2099-01-01T00:00:00Z", "repeats": 3,
                "ttl": "2h", "data": {"b": 1, "a": "x", "n": 2.0},
                "failurePolicy": {"constant": {"interval": "1.5s", "maxRetries": 2}}}
        self.assertEqual(self.post("getme", body, version="v1.0-alpha1").status, 204)
        want = ('{"name":"getme","schedule":"@every 1h","repeats":3,'
                '"dueTime":"2099-01-01T00:00:00Z","ttl":"2h","data":{"@type":"' + VALUE_TYPE +
                '","value":{"a":"x","b":1,"n":2}},'
                '"failurePolicy":{"constant":{"interval":"1.500s","maxRetries":2}}}')
        for version in ("v1.0", "v1.0-alpha1"):
            r = self.side.request("GET", f"/{version}/jobs/getme")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.header("Content-Type"), "application/json")
            self.assertEqual(r.body, want)
        # the default failure policy is stored and shown
        self.assertEqual(self.post("getdef", {"dueTime": "1h", "data": "s"}).status, 204)
        r = self.side.request("GET", "/v1.0/jobs/getdef")
        self.assertEqual(r.json, {
            "name": "getdef", "dueTime": "1h",
            "data": {"@type": VALUE_TYPE, "value": "s"},
            "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}}})
        # overwrite: 409 unless overwrite is true (§6.1, since 1.16)
        r = self.post("getme", {"schedule": "@every 2h", "data": {}})
        self.assert_error(r, 409, "DAPR_SCHEDULER_SCHEDULE_JOB")
        r = self.post("getme", {"schedule": "@every 2h", "data": {}, "overwrite": False})
        self.assert_error(r, 409, "DAPR_SCHEDULER_SCHEDULE_JOB")
        self.assertEqual(self.side.request("GET", "/v1.0/jobs/getme").json["schedule"],
                         "@every 1h")
        self.assertEqual(self.post("getme", {"schedule": "@every 2h", "data": {},
                                             "overwrite": True}).status, 204)
        self.assertEqual(self.side.request("GET", "/v1.0/jobs/getme").json, {
            "name": "getme", "schedule": "@every 2h",
            "data": {"@type": VALUE_TYPE, "value": {}},
            "failurePolicy": {"constant": {"interval": "1s", "maxRetries": 3}}})
        # delete: 204 whether or not it exists; GET of a missing job is a 500
        for version in ("v1.0", "v1.0-alpha1"):
            r = self.side.request("DELETE", f"/{version}/jobs/getme")
            self.assertEqual(r.status, 204)
            self.assertEqual(r.body, "")
            r = self.side.request("GET", f"/{version}/jobs/getme")
            self.assert_error(r, 500, "DAPR_SCHEDULER_GET_JOB")
            self.assertTrue(r.json["message"].startswith("failed to get job due to: "))
        self.assertEqual(self.side.request("DELETE", "/v1.0/jobs/getdef").status, 204)
        # no HTTP list endpoint
        self.assertNotEqual(self.side.request("GET", "/v1.0/jobs").status, 200)

    def test_trigger_request_and_never_early(self):
        due = int(time.time()) + 3
        cases = {
            "trig-obj": ({"b": 1, "a": [1, 2.0, True, None], "c": {"z": 0, "y": "é"}},
                         '{"a":[1,2,true,null],"b":1,"c":{"y":"é","z":0}}'.encode()),
            "trig-str": ("s", b'"s"'),
            "trig-num": (123, b"123"),
            "trig-none": (None, b""),
        }
        for name, (data, _) in cases.items():
            body = {"dueTime": rfc3339(due)}
            if data is not None:
                body["data"] = data
            self.assertEqual(self.post(name, body).status, 204)
        todo_test.wait_until(lambda: all(self.app.job_calls(n) for n in cases), 30,
                             what="the four triggers")
        for name, (_, want) in cases.items():
            calls = self.app.job_calls(name)
            self.assertEqual(len(calls), 1, name)
            t, path, headers, body, _ = calls[0]
            self.assertEqual(path, "/job/" + name)
            self.assertEqual(headers.get("content-type"), "application/json")
            self.assertNotIn("dapr-api-token", headers)
            self.assertEqual(body, want, name)
            # never early (§6.3)
            self.assertGreaterEqual(t, due, f"{name} arrived {due - t:.3f}s early")
            self.assertLess(t, due + 10)
            # a delivered one-shot is gone
            self.assert_error(self.side.request("GET", f"/v1.0/jobs/{name}"), 500,
                              "DAPR_SCHEDULER_GET_JOB")

    def test_failure_policies(self):
        self.app.statuses.update({"fail4": 500, "drop1": 500, "nf404": 404, "dropcount": 503})
        t0 = time.time()
        # default policy: 4 calls 1 s apart for one occurrence, then the next occurrence
        self.assertEqual(self.post("fail4", {"schedule": "@every 6s", "dueTime": "0s",
                                             "data": {}}).status, 204)
        self.assertEqual(self.post("drop1", {"dueTime": "0s", "data": {},
                                             "failurePolicy": {"drop": {}}}).status, 204)
        self.assertEqual(self.post("nf404", {"dueTime": "0s", "data": {}}).status, 204)
        self.assertEqual(self.post("twice", {"dueTime": "0s", "data": {}, "failurePolicy": {
            "constant": {"interval": "0.5s", "maxRetries": 1}}}).status, 204)
        self.app.statuses["twice"] = 500
        todo_test.wait_until(lambda: len(self.app.job_calls("fail4")) >= 5, 30,
                             what="four attempts and the next occurrence")
        times = [c[0] for c in self.app.job_calls("fail4")]
        gaps = [b - a for a, b in zip(times, times[1:])]
        for g in gaps[:3]:
            self.assertGreaterEqual(g, 0.95, gaps)  # the 1 s retry interval
            self.assertLess(g, 5, gaps)
        # the next occurrence: 6 s after the first (dueTime "0s" counts from the whole second)
        self.assertGreaterEqual(times[4], int(t0) + 6, gaps)
        self.assertEqual(self.side.request("DELETE", "/v1.0/jobs/fail4").status, 204)
        # by now drop1, nf404 and twice are long settled
        self.assertEqual(len(self.app.job_calls("drop1")), 1)
        self.assertEqual(len(self.app.job_calls("nf404")), 1)
        self.assertEqual(len(self.app.job_calls("twice")), 2)
        for name in ("drop1", "nf404", "twice"):
            self.assert_error(self.side.request("GET", f"/v1.0/jobs/{name}"), 500,
                              "DAPR_SCHEDULER_GET_JOB")
        self.assertGreaterEqual(self.app.job_calls("drop1")[0][0], t0)

    def test_tokens(self):
        """DAPR_API_TOKEN guards the Jobs API (401 text/plain, §8.5); APP_API_TOKEN goes with
        each trigger as dapr-api-token (§6.2)."""
        app = JobApp()
        self.apps.append(app)
        side = self.start_sidecar(app, "tokenapp", {"DAPR_API_TOKEN": "api-secret",
                                                    "APP_API_TOKEN": "app-secret"})
        for method in ("POST", "GET", "DELETE"):
            r = side.request(method, "/v1.0/jobs/tok", body={"dueTime": "0s", "data": {}},
                             token=False)
            self.assertEqual(r.status, 401, r.body)
            self.assertEqual(r.body, "invalid api token\n")
        r = side.request("POST", "/v1.0/jobs/tok", body={"dueTime": "0s", "data": {"t": 1}})
        self.assertEqual(r.status, 204, r.body)
        todo_test.wait_until(lambda: app.job_calls("tok"), 30, what="the trigger")
        _, _, headers, body, _ = app.job_calls("tok")[0]
        self.assertEqual(headers.get("dapr-api-token"), "app-secret")
        self.assertEqual(body, b'{"t":1}')

    def test_without_scheduler(self):
        """Without --scheduler-database-url every call fails with the scheduler's error (daprd
        would wait up to 30 s for a Scheduler first)."""
        app = JobApp()
        self.apps.append(app)
        side = self.start_sidecar(app, "noscheduler", scheduler=False)
        cases = [("POST", {"schedule": "@every 1s", "data": {}}, "DAPR_SCHEDULER_SCHEDULE_JOB"),
                 ("GET", None, "DAPR_SCHEDULER_GET_JOB"),
                 ("DELETE", None, "DAPR_SCHEDULER_DELETE_JOB")]
        for method, body, code in cases:
            r = side.request(method, "/v1.0/jobs/none", body=body)
            self.assert_error(r, 500, code, app_id="noscheduler")
        # the request checks that need no scheduler still answer first
        self.assert_error(side.request("POST", "/v1.0/jobs/none", body={}), 400,
                          "DAPR_SCHEDULER_SCHEDULE_EMPTY", app_id="noscheduler")


@unittest.skipUnless(os.path.exists(SIDECAR), "dapr-sidecar is not built")
class JobsReplicas(SidecarCase):
    """Three sidecars of app 'replicated', each with its own app: the jobs are shared and each
    trigger reaches exactly one of them (§6.3)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            for i in range(3):
                app = JobApp()
                app.tag = f"replica-{i}"
                cls.apps.append(app)
            cls.side = [cls.start_sidecar(a, "replicated") for a in cls.apps]
        except BaseException:
            cls.tearDownClass()
            raise

    def calls(self, name):
        out = []
        for a in self.apps:
            out += a.job_calls(name)
        return sorted(out, key=lambda c: c[0])

    def job_gone(self, side, name):
        return side.request("GET", f"/v1.0/jobs/{name}").status == 500

    def test_0_slow_handler_keeps_its_lease(self):
        """A delivery that outlasts the 5 s lease is not taken over by another replica: the
        lease is renewed while the call runs."""
        for a in self.apps:
            a.delays["slow"] = 7
        r = self.side[0].request("POST", "/v1.0/jobs/slow", body={"dueTime": "0s", "data": {}})
        self.assertEqual(r.status, 204, r.body)
        todo_test.wait_until(lambda: self.job_gone(self.side[1], "slow"), 30,
                             what="the slow trigger to end")
        self.assertEqual(len(self.calls("slow")), 1, self.calls("slow"))

    def test_1_each_trigger_once(self):
        n = 8
        r = self.side[0].request("POST", "/v1.0/jobs/tick", body={
            "schedule": "@every 1s", "repeats": n, "data": {"job": "tick"}})
        self.assertEqual(r.status, 204, r.body)
        # all three see the same job
        for s in self.side:
            self.assertEqual(s.request("GET", "/v1.0/jobs/tick").json["repeats"], n)
        todo_test.wait_until(lambda: self.job_gone(self.side[1], "tick"), 40,
                             what="the eight occurrences")
        calls = self.calls("tick")
        # exactly n: a second delivery of any occurrence would make it more
        self.assertEqual(len(calls), n, [(c[0], c[4]) for c in calls])
        print(f"tick deliveries per replica: "
              f"{ {a.tag: len(a.job_calls('tick')) for a in self.apps} }")

    def test_2_kill_one(self):
        n = 12
        for a in self.apps:
            a.delays["survive"] = 0.6
        r = self.side[0].request("POST", "/v1.0/jobs/survive", body={
            "schedule": "@every 1s", "repeats": n, "data": {"job": "survive"}})
        self.assertEqual(r.status, 204, r.body)
        todo_test.wait_until(lambda: len(self.calls("survive")) >= 3, 30, what="three ticks")

        def in_flight():
            # a replica whose app got a trigger less than 0.3 s ago is waiting for the answer
            for i, a in enumerate(self.apps):
                calls = a.job_calls("survive")
                if calls and time.time() - calls[-1][0] < 0.3:
                    return i + 1
            return 0
        victim_index = todo_test.wait_until(in_flight, 30, interval=0.01,
                                            what="a trigger in flight") - 1
        victim = self.side[victim_index]
        victim.kill()  # kill -9 mid-delivery
        killed_at = time.time()
        todo_test.wait_until(lambda: self.job_gone(self.side[(victim_index + 1) % 3], "survive"),
                             60, what="the remaining occurrences on the survivors")
        calls = self.calls("survive")
        # every occurrence delivered, and the one in flight at the kill once more on a survivor
        # after its lease ran out (at-least-once, §6.3)
        self.assertEqual(len(calls), n + 1, [(round(c[0], 2), c[4]) for c in calls])
        after = [c for c in calls if c[0] > killed_at]
        self.assertTrue(after, "no trigger after the kill")
        self.assertTrue(all(c[4] != f"replica-{victim_index}" for c in after), after)
        self.assertGreaterEqual(after[0][0] - killed_at, 3, "redelivered before the lease ended")

    def test_3_due_while_all_down(self):
        alive = [s for s in self.side if s.proc.poll() is None]
        due = int(time.time()) + 4
        r = alive[0].request("POST", "/v1.0/jobs/late", body={
            "dueTime": rfc3339(due), "data": {"job": "late"}})
        self.assertEqual(r.status, 204, r.body)
        for s in alive:
            self.assertEqual(s.stop(), 0)
        # the trigger falls due while no sidecar of the app runs
        todo_test.wait_until(lambda: time.time() > due + 1, 10, what="the due time to pass")
        self.assertEqual(self.calls("late"), [])
        self.assertEqual(self.sql("SELECT count(*) FROM dapr_scheduler.jobs WHERE name = 'late'"),
                         "1")
        back = self.start_sidecar(self.apps[0], "replicated")
        todo_test.wait_until(lambda: self.calls("late"), 30, what="the late trigger")
        calls = self.calls("late")
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0][3], b'{"job":"late"}')
        self.assertGreaterEqual(calls[0][0], due)
        todo_test.wait_until(lambda: self.job_gone(back, "late"), 10, what="the one-shot to end")


if __name__ == "__main__":
    todo_test.run()
