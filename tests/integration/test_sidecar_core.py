"""The core of the dapr-sidecar double over HTTP: its command line, /v1.0/healthz and
/v1.0/healthz/outbound around the start-up order of DAPR-CONTRACT §8.2, GET /v1.0/metadata and
PUT /v1.0/metadata/{key} (§8.4), API tokens in both directions (§8.5), and the programmatic
subscriptions of §2.1 (status semantics, route vs routes.default, the supported rule subset,
merge with declarative ones) against kafka-mock, with deliveries to the test app."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import uuid

import todo_test
from sidecar_app import SidecarApp

SIDECAR = os.path.join(todo_test.BIN_DIR, "dapr-sidecar")
KAFKA_MOCK = os.path.join(todo_test.BIN_DIR, "kafka-mock")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
SLOW = todo_test.SLOW
ENV_TOKENS = ("DAPR_API_TOKEN", "APP_API_TOKEN", "NAMESPACE")

ENV_STORE = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: envstore
spec:
  type: secretstores.local.env
  version: v1
  metadata: []
"""

KAFKA_PUBSUB = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.kafka
  version: v1
  metadata:
  - name: brokers
    value: "{brokers}"
  - name: initialOffset
    value: oldest
  - name: authType
    value: none
"""


class Sidecar:
    """One dapr-sidecar process; its log goes to a file that the test reads."""

    def __init__(self, resources, app_port=0, app_id="coreapp", env=None, args=()):
        self.app_id = app_id
        self.port = todo_test.free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="todo-sidecar-core-", suffix=".log",
                                             dir=todo_test.LOG_DIR)
        self.log = os.fdopen(fd, "ab")
        e = {k: v for k, v in os.environ.items() if k not in ENV_TOKENS}
        e.update(env or {})
        cmd = [SIDECAR, "--app-id", app_id, "--dapr-http-port", str(self.port),
               "--resources-path", resources, "--log-level", "debug", *args]
        if app_port:
            cmd += ["--app-port", str(app_port)]
        self.proc = subprocess.Popen(cmd, env=e, stdout=self.log, stderr=self.log)

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(),
                                      r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def status(self, path, **kw):
        try:
            return self.request("GET", path, **kw).status
        except OSError:
            if self.proc.poll() is not None:
                raise AssertionError(f"dapr-sidecar exited with {self.proc.returncode}:\n"
                                     + self.logs()[-3000:])
            return None

    def wait_status(self, path, status, timeout=30, **kw):
        todo_test.wait_until(lambda: self.status(path, **kw) == status, timeout * SLOW,
                             what=f"{path} → {status}")

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dapr-sidecar did not stop within 60 s of SIGTERM")
        self.log.close()
        return self.proc.returncode

    def sanitizer_reports(self):
        return [ln for ln in self.logs().splitlines() if any(m in ln for m in SANITIZER_MARKS)]


class KafkaMock:
    def __init__(self, *topics):
        self.dir = tempfile.mkdtemp(prefix="todo-core-kafka-", dir="/tmp")
        self.bootstrap_file = os.path.join(self.dir, "bootstrap")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        args = [KAFKA_MOCK, "--brokers", "1", "--bootstrap-file", self.bootstrap_file]
        for t in topics:
            args += ["--topic", f"{t}:1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        todo_test.wait_until(self._up, 30 * SLOW, what="kafka-mock bootstrap file")
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


class CoreCase(unittest.TestCase):
    """Each test starts its own sidecar (and app) through start(); tearDown stops them and fails
    on a non-zero exit or a sanitizer report."""

    def setUp(self):
        self.dirs = []
        self.sidecars = []
        self.apps = []

    def tearDown(self):
        problems = []
        for s in self.sidecars:
            rc = s.stop()
            if rc != 0:
                problems.append(f"dapr-sidecar exited with {rc} after SIGTERM")
            problems += s.sanitizer_reports()
        for a in self.apps:
            a.close()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        if problems:
            self.fail("\n".join(problems[:20]))

    def resources(self, *docs):
        d = tempfile.mkdtemp(prefix="todo-core-res-", dir="/tmp")
        self.dirs.append(d)
        for i, doc in enumerate(docs):
            with open(os.path.join(d, f"r{i}.yaml"), "w") as f:
                f.write(doc)
        return d

    def app(self, start=True):
        a = SidecarApp(start=start)
        self.apps.append(a)
        return a

    def start(self, resources, app=None, **kw):
        s = Sidecar(resources, app_port=app.port if app else 0, **kw)
        self.sidecars.append(s)
        s.wait_status("/v1.0/healthz/outbound", 204)
        return s

    def assert_rich_error(self, r, status, code, message):
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.header("Content-Type"), "application/json")
        body = json.loads(r.body)
        self.assertEqual(body["errorCode"], code)
        self.assertEqual(body["message"], message)
        self.assertEqual(body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo")
        self.assertEqual(body["details"][0]["domain"], "dapr.io")
        self.assertEqual(body["details"][0]["reason"], code)
        return body


@unittest.skipUnless(os.path.exists(SIDECAR), "dapr-sidecar is not built")
class CommandLine(unittest.TestCase):
    def run_sidecar(self, *args):
        return subprocess.run([SIDECAR, *args], capture_output=True, text=True, timeout=30)

    def test_help_and_version(self):
        r = self.run_sidecar("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--app-id", "--app-port", "--app-channel-address", "--dapr-http-port",
                     "--resources-path", "--app-max-concurrency", "--log-level",
                     "--scheduler-database-url"):
            self.assertIn(flag, r.stdout)
        r = self.run_sidecar("--version")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "1.18.3"))

    def test_bad_arguments_exit_2(self):
        for args, words in ((["--bogus"], "not defined"),
                            (["--app-port", "x"], "--app-port"),
                            (["--app-port", "70000"], "--app-port"),
                            (["--dapr-http-port", "-1"], "--dapr-http-port"),
                            (["--app-max-concurrency", "-2"], "--app-max-concurrency"),
                            (["--log-level", "loud"], "--log-level"),
                            (["--app-port"], "needs an argument"),
                            (["stray"], "unexpected argument")):
            r = self.run_sidecar(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            self.assertIn(words, r.stderr, args)


@unittest.skipUnless(os.path.exists(SIDECAR), "dapr-sidecar is not built")
class HealthAndMetadata(CoreCase):
    def test_healthz_waits_for_the_app(self):
        app = self.app(start=False)  # its port stays closed until app.start()
        s = self.start(self.resources(ENV_STORE), app)
        # §8.2: outbound is ready without the app; /v1.0/healthz is 500 until the port answers.
        self.assertEqual(s.status("/v1.0/healthz/outbound"), 204)
        r = s.request("GET", "/v1.0/healthz")
        body = self.assert_rich_error(r, 500, "ERR_HEALTH_NOT_READY", "dapr is not ready: [app]")
        self.assertEqual(body["details"][0]["metadata"],
                         {"unhealthyTargets": "app", "unhealthyTargetsCount": "1"})
        self.assertEqual(app.count(), 0)
        app.start()
        s.wait_status("/v1.0/healthz", 204)
        cfg = app.wait_for("/dapr/config")[0]
        self.assertEqual(cfg.method, "GET")
        # No pub/sub component: /dapr/subscribe is never asked for (§2.1).
        self.assertEqual(app.count("/dapr/subscribe"), 0)
        r = s.request("GET", "/v1.0/healthz?appid=other")
        body = self.assert_rich_error(r, 500, "ERR_HEALTH_APPID_NOT_MATCH",
                                      "dapr app-id does not match")
        self.assertEqual(body["details"][0]["metadata"],
                         {"appID": "coreapp", "requestedAppID": "other"})
        self.assertEqual(s.status("/v1.0/healthz?appid=coreapp"), 204)
        # daprd has no /healthz, /readyz or /metrics on its API port.
        self.assertEqual(s.status("/healthz"), 404)
        self.assertEqual(s.status("/metrics"), 404)

    def test_sigterm_while_waiting_for_the_app(self):
        app = self.app(start=False)
        s = self.start(self.resources(ENV_STORE), app)
        self.assertEqual(s.status("/v1.0/healthz"), 500)
        self.assertEqual(s.stop(), 0)
        self.assertIn('"msg":"stopped"', s.logs())

    def test_no_app_is_ready_at_once(self):
        s = self.start(self.resources(ENV_STORE))
        s.wait_status("/v1.0/healthz", 204)

    def test_metadata_shape(self):
        app = self.app()
        s = self.start(self.resources(ENV_STORE), app, args=("--app-max-concurrency", "7"))
        s.wait_status("/v1.0/healthz", 204)
        r = s.request("GET", "/v1.0/metadata")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "application/json")
        m = json.loads(r.body)
        self.assertEqual(list(m), ["id", "runtimeVersion", "components", "extended",
                                   "appConnectionProperties", "actorRuntime"])
        self.assertEqual(m["id"], "coreapp")
        self.assertEqual(m["runtimeVersion"], "1.18.3")
        self.assertEqual(m["components"], [{"name": "envstore",
                                            "type": "secretstores.local.env", "version": "v1"}])
        self.assertEqual(m["extended"], {"daprRuntimeVersion": "1.18.3"})
        self.assertEqual(m["appConnectionProperties"],
                         {"port": app.port, "protocol": "http", "channelAddress": "127.0.0.1",
                          "maxConcurrency": 7})
        self.assertEqual(m["actorRuntime"], {"runtimeStatus": "DISABLED", "hostReady": False})
        self.assertNotIn("subscriptions", m)
        # PUT /v1.0/metadata/{key}: the raw body becomes extended[key]; Go escapes < > &.
        r = s.request("PUT", "/v1.0/metadata/cliPID", body=b"42 <&>")
        self.assertEqual((r.status, r.body), (204, ""))
        r = s.request("GET", "/v1.0/metadata")
        self.assertIn('"cliPID":"42 \\u003c\\u0026\\u003e"', r.body)
        self.assertEqual(json.loads(r.body)["extended"],
                         {"cliPID": "42 <&>", "daprRuntimeVersion": "1.18.3"})

    def test_api_tokens_both_ways(self):
        app = self.app()
        s = self.start(self.resources(ENV_STORE), app,
                       env={"DAPR_API_TOKEN": "sidecar-secret", "APP_API_TOKEN": "app-secret"})
        # Health needs no token (§8.5).
        s.wait_status("/v1.0/healthz", 204)
        self.assertEqual(s.status("/v1.0/healthz/outbound"), 204)
        for headers in ({}, {"dapr-api-token": "wrong"}, {"dapr-api-token": "sidecar-secre"}):
            for method, path, body in (("GET", "/v1.0/metadata", None),
                                       ("PUT", "/v1.0/metadata/k", b"v")):
                r = s.request(method, path, body=body, headers=headers)
                self.assertEqual(r.status, 401, (method, path, headers))
                self.assertEqual(r.body, "invalid api token\n")
                self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        r = s.request("GET", "/v1.0/metadata", headers={"dapr-api-token": "sidecar-secret"})
        self.assertEqual(r.status, 200)
        # The sidecar sends APP_API_TOKEN to the app.
        cfg = app.wait_for("/dapr/config")[0]
        self.assertEqual(cfg.header("dapr-api-token"), "app-secret")


@unittest.skipUnless(os.path.exists(SIDECAR) and os.path.exists(KAFKA_MOCK),
                     "dapr-sidecar or kafka-mock is not built")
class ProgrammaticSubscriptions(CoreCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = KafkaMock("orders", "other", "typed")

    @classmethod
    def tearDownClass(cls):
        cls.kafka.stop()

    def kafka_resources(self, *extra):
        return self.resources(KAFKA_PUBSUB.format(brokers=self.kafka.bootstrap), *extra)

    def start_with(self, app, *extra, **kw):
        s = self.start(self.kafka_resources(*extra), app, app_id=kw.pop("app_id", None)
                       or f"core-{uuid.uuid4().hex[:8]}", **kw)
        s.wait_status("/v1.0/healthz", 204)
        return s

    def metadata(self, s, **kw):
        r = s.request("GET", "/v1.0/metadata", **kw)
        self.assertEqual(r.status, 200, r.body)
        return json.loads(r.body)

    def publish(self, s, topic, body, content_type="application/json"):
        r = s.request("POST", f"/v1.0/publish/pubsub/{topic}", body=json.dumps(body).encode(),
                      headers={"Content-Type": content_type})
        self.assertEqual(r.status, 204, r.body)

    def test_subscribe_is_called_once_with_dapr_headers(self):
        app = self.app()
        app.subscribe(200, [])
        s = self.start_with(app, env={"APP_API_TOKEN": "to-app"})
        reqs = app.requests("/dapr/subscribe")
        self.assertEqual(len(reqs), 1)
        req = reqs[0]
        self.assertEqual(req.method, "GET")
        self.assertEqual(req.header("dapr-app-id"), s.app_id)
        self.assertEqual(req.header("Content-Type"), "application/json")
        self.assertEqual(req.header("dapr-api-token"), "to-app")
        self.assertEqual(req.body, b"")
        # /dapr/config came first (§8.2).
        self.assertLess(app.requests("/dapr/config")[0].time, req.time)
        self.assertNotIn("subscriptions", self.metadata(s))
        self.assertEqual(app.count("/dapr/subscribe"), 1)

    def test_only_status_200_is_read(self):
        subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
        for status in (204, 500, 201, 404):
            with self.subTest(status=status):
                app = self.app()
                app.subscribe(status, subs)
                s = self.start_with(app)
                self.assertNotIn("subscriptions", self.metadata(s))
                logged = f"app returned http status code {status} from subscription endpoint"
                self.assertEqual(logged in s.logs(), status != 404, s.logs()[-2000:])

    def test_routes_default_beats_route(self):
        app = self.app()
        app.subscribe(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/r",
                             "routes": {"default": "/d"}},
                            {"PubsubName": "pubsub", "Topic": "other", "Route": "/only-route",
                             "deadLetterTopic": "dlq", "metadata": {"k": "v"}}])
        s = self.start_with(app)
        subs = self.metadata(s)["subscriptions"]
        self.assertEqual(subs, [
            {"pubsubname": "pubsub", "topic": "orders", "rules": [{"path": "/d"}],
             "deadLetterTopic": "", "type": "PROGRAMMATIC"},
            {"pubsubname": "pubsub", "topic": "other", "metadata": {"k": "v"},
             "rules": [{"path": "/only-route"}], "deadLetterTopic": "dlq",
             "type": "PROGRAMMATIC"}])
        self.publish(s, "orders", {"n": 1})
        got = app.wait_for("/d", timeout=60 * SLOW)[0]
        self.assertEqual(got.method, "POST")
        self.assertEqual(got.header("Content-Type"), "application/cloudevents+json")
        self.assertEqual(got.json()["data"], {"n": 1})
        self.assertEqual(app.count("/r"), 0)
        self.publish(s, "other", {"n": 2})
        app.wait_for("/only-route", timeout=60 * SLOW)

    def test_event_type_rules_and_refused_cel(self):
        app = self.app()
        app.subscribe(200, [
            {"pubsubname": "pubsub", "topic": "orders",
             "routes": {"rules": [{"match": "event.data.kind == \"x\"", "path": "/cel"}],
                        "default": "/orders"}},
            {"pubsubname": "pubsub", "topic": "typed",
             "routes": {"rules": [{"match": "event.type == \"order.created\"",
                                   "path": "/created"},
                                  {"match": "event.type == 'order.deleted'",
                                   "path": "/deleted"}],
                        "default": "/typed-default"}}])
        s = self.start_with(app)
        subs = self.metadata(s)["subscriptions"]
        self.assertEqual([x["topic"] for x in subs], ["typed"])
        self.assertEqual(subs[0]["rules"], [
            {"match": "event.type == \"order.created\"", "path": "/created"},
            {"match": "event.type == 'order.deleted'", "path": "/deleted"},
            {"path": "/typed-default"}])
        self.assertIn("the rule match `event.data.kind == \\\"x\\\"` is not supported", s.logs())
        ce = {"specversion": "1.0", "id": "e1", "source": "test", "type": "order.deleted",
              "datacontenttype": "application/json", "data": {"n": 1}}
        self.publish(s, "typed", ce, "application/cloudevents+json")
        self.assertEqual(app.wait_for("/deleted", timeout=60 * SLOW)[0].json()["id"], "e1")
        self.publish(s, "typed", {"n": 2})  # type com.dapr.event.sent → the default
        app.wait_for("/typed-default", timeout=60 * SLOW)
        self.assertEqual(app.count("/created"), 0)

    def test_programmatic_wins_over_declarative(self):
        decl = """apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: {name}
spec:
  pubsubname: pubsub
  topic: {topic}
  routes:
    default: /declared-{topic}
"""
        app = self.app()
        app.subscribe(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/prog"}])
        s = self.start_with(app, decl.format(name="s1", topic="orders"),
                            decl.format(name="s2", topic="other"))
        subs = {x["topic"]: x for x in self.metadata(s)["subscriptions"]}
        self.assertEqual(subs["orders"]["type"], "PROGRAMMATIC")
        self.assertEqual(subs["orders"]["rules"], [{"path": "/prog"}])
        self.assertEqual(subs["other"]["type"], "DECLARATIVE")
        self.assertEqual(subs["other"]["rules"], [{"path": "/declared-other"}])

    def test_transport_errors_are_retried_three_times(self):
        # A connection closed without a reply is a transport error. (An HTTP client, Go's as
        # libcurl, also repeats a GET once by itself when a reused connection dies that way, so
        # the app may see more calls than the sidecar makes attempts; the log counts attempts.)
        subs = [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]
        app = self.app()
        app.subscribe(200, subs, drop_first=3)
        s = self.start_with(app)
        self.assertEqual(app.count("/dapr/subscribe"), 4)
        self.assertEqual([x["topic"] for x in self.metadata(s)["subscriptions"]], ["orders"])
        # Failing for good: one attempt and three retries, then no subscriptions (§2.1).
        app = self.app()
        app.subscribe(200, subs, drop_first=1000)
        s = self.start_with(app)
        self.assertIn("GET /dapr/subscribe failed 4 times", s.logs())
        self.assertTrue(4 <= app.count("/dapr/subscribe") <= 8, app.count("/dapr/subscribe"))
        self.assertNotIn("subscriptions", self.metadata(s))

    def test_sigterm_while_the_app_holds_subscribe(self):
        app = self.app()
        app.subscribe(200, [], delay=30)
        s = self.start(self.kafka_resources(), app)
        app.wait_for("/dapr/subscribe")
        t0 = time.monotonic()
        self.assertEqual(s.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10 * SLOW)

    def test_sigterm_drains_a_delivery_in_flight(self):
        app = self.app()
        app.subscribe(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/slow"}])
        app.policy("/slow", status=200, delay=2.0)
        s = self.start_with(app)
        self.publish(s, "orders", {"n": 1})
        app.wait_for("/slow", timeout=60 * SLOW)  # arrived; the app answers 2 s later
        self.assertEqual(s.stop(), 0)
        logs = s.logs()
        self.assertIn('"msg":"stopped"', logs)
        self.assertEqual(app.count("/slow"), 1)

    def test_app_without_subscribe_endpoint_json(self):
        app = self.app()
        app.subscribe(200, "this is not json")
        s = self.start_with(app)
        self.assertNotIn("subscriptions", self.metadata(s))
        self.assertIn("error getting topics from app", s.logs())


if __name__ == "__main__":
    todo_test.run()
