"""The sidecar double's pub/sub over HTTP against kafka-mock (DAPR-CONTRACT §1, §3, §4): publish
status and error table, CloudEvent wrapping variants, bulk publish on both paths, topic scopes,
then what the app receives (method, path, headers, bytes) and each row of the §3.2 reply table
with its effect: resiliency retries (constant 100 ms), dead-lettering of the original bytes,
component redelivery without a DLQ, and --app-max-concurrency."""

import base64
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import todo_test
from todo_test import SLOW, free_port, wait_until

BIN = todo_test.BIN_DIR
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
UUID_RE = todo_test.UUID_RE
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


class KafkaMock:
    """kafka-mock in a temporary directory, up once its bootstrap file exists."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-pubsub-kafka-", dir="/tmp")
        path = os.path.join(self.dir, "bootstrap")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen([os.path.join(BIN, "kafka-mock"), "--bootstrap-file", path],
                                     stdout=subprocess.DEVNULL, stderr=self.err)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"kafka-mock exited with {self.proc.returncode}")
            return os.path.exists(path)
        wait_until(up, 30 * SLOW, what="kafka-mock")
        with open(path) as f:
            self.bootstrap = f.read().strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class App:
    """The subscribing app: answers GET /dapr/subscribe per dapr-app-id, records every delivery
    (path, headers, body) and answers each path as the test set it up."""

    def __init__(self):
        self.lock = threading.Condition()
        # (path, {lower-case header: value}, raw header names, body, monotonic time)
        self.deliveries = []
        self.subscriptions = {}   # app-id -> list
        self.replies = {}         # path -> callable(count) -> (status, body)
        self.in_flight = {}       # path -> current
        self.max_in_flight = {}   # path -> max seen
        self.blocked = {}         # path -> threading.Event the handler waits for
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", ctype="application/json"):
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/dapr/subscribe":
                    subs = app.subscriptions.get(self.headers.get("dapr-app-id"), [])
                    self._send(200, json.dumps(subs).encode())
                else:
                    self._send(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                path = self.path
                headers = {k.lower(): v for k, v in self.headers.items()}
                with app.lock:
                    app.deliveries.append((path, headers, list(self.headers.keys()), body,
                                           time.monotonic()))
                    count = sum(1 for d in app.deliveries if d[0] == path)
                    app.in_flight[path] = app.in_flight.get(path, 0) + 1
                    app.max_in_flight[path] = max(app.max_in_flight.get(path, 0),
                                                  app.in_flight[path])
                    app.lock.notify_all()
                    gate = app.blocked.get(path)
                    reply = app.replies.get(path)
                try:
                    if gate is not None:
                        gate.wait(60)
                    status, out = reply(count) if reply else (200, b"")
                finally:
                    # done before the reply leaves, so the sidecar cannot see it earlier
                    with app.lock:
                        app.in_flight[path] -= 1
                        app.lock.notify_all()
                try:
                    self._send(status, out if isinstance(out, bytes) else out.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sidecar gave up on this attempt (per-attempt timeout)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path):
        with self.lock:
            return [d for d in self.deliveries if d[0] == path]

    def wait_count(self, path, n, timeout=30):
        return wait_until(lambda: len(self.received(path)) >= n and self.received(path),
                          timeout * SLOW, what=f"{n} deliveries to {path}")

    def close(self):
        for gate in self.blocked.values():
            gate.set()
        self.server.shutdown()
        self.server.server_close()


class Sidecar:
    """dapr-sidecar on free ports with a resources folder, ready once /v1.0/healthz is 204."""

    def __init__(self, app_id, app_port, resources, *args, env=None):
        self.port = free_port()
        self.log_path = tempfile.mktemp(prefix=f"todo-sidecar-{app_id}-", suffix=".log", dir=todo_test.LOG_DIR)
        self.log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "dapr-sidecar"), "--app-id", app_id, "--app-port", str(app_port),
             "--dapr-http-port", str(self.port), "--resources-path", resources,
             "--log-level", "debug", *args],
            stdout=self.log, stderr=self.log, env=full_env)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"dapr-sidecar exited {self.proc.returncode}:\n"
                                     + self.logs()[-3000:])
            return self.request("GET", "/v1.0/healthz").status == 204
        wait_until(ready, 30 * SLOW, what=f"sidecar {app_id} healthz")

    def request(self, method, path, body=b"", headers=None, timeout=40):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def publish(self, topic, body, content_type=None, pubsub="pubsub", query="", method="POST",
                headers=None):
        h = dict(headers or {})
        if content_type is not None:
            h["Content-Type"] = content_type
        if isinstance(body, str):
            body = body.encode()
        path = f"/v1.0/publish/{pubsub}/{topic}" + (f"?{query}" if query else "")
        return self.request(method, path, body, h)

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("dapr-sidecar did not stop in time")
        self.log.close()
        return self.proc.returncode

    def problems(self):
        return [line for line in self.logs().splitlines()
                if any(m in line for m in SANITIZER_MARKS)]


def component(name, bootstrap, **meta):
    items = "".join(f"    - name: {k}\n      value: \"{v}\"\n" for k, v in meta.items())
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: pubsub.kafka\n  version: v1\n  metadata:\n"
            f"    - name: brokers\n      value: \"{bootstrap}\"\n"
            f"    - name: initialOffset\n      value: oldest\n{items}")


RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: pubsub-retries
spec:
  policies:
    timeouts:
      short: 300ms
    retries:
      fast:
        policy: constant
        duration: 100ms
        maxRetries: 3
        matching:
          httpStatusCodes: "500-599"
  targets:
    components:
      pubsub:
        inbound:
          retry: fast
      timed:
        inbound:
          retry: fast
          timeout: short
"""


def sub(topic, route, pubsub="pubsub", dlq=None, **extra):
    s = {"pubsubname": pubsub, "topic": topic, "route": route}
    if dlq:
        s["deadLetterTopic"] = dlq
    s.update(extra)
    return s


def err(resp):
    return json.loads(resp.body)


class PubSubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kafka = KafkaMock()
        cls.app = App()
        cls.dir = tempfile.mkdtemp(prefix="todo-pubsub-res-", dir="/tmp")
        b = cls.kafka.bootstrap
        files = {
            "pubsub.yaml": component("pubsub", b),
            "plain.yaml": component("plain", b, backOffDuration="100ms"),
            "timed.yaml": component("timed", b),
            "scoped.yaml": component("scoped", b, publishingScopes="pubapp=allowed1,secret;other=x",
                                     allowedTopics="allowed1, allowed2,secret",
                                     protectedTopics="secret"),
            "resiliency.yaml": RESILIENCY,
        }
        for name, text in files.items():
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)
        ok = lambda n: (200, b"")
        a = cls.app
        a.subscriptions["pubapp"] = [
            sub("orders", "/orders"),
            sub("rawsub", "/rawsub", metadata={"rawPayload": "true"}),
            {"pubsubname": "pubsub", "topic": "routed",
             "routes": {"rules": [{"match": 'event.type == "t.a"', "path": "/routed-a"}],
                        "default": "/routed-default"}},
            sub("r503", "/r503", dlq="r503-dlq"),
            sub("r503-dlq", "/r503-dlq"),
            sub("r400", "/r400", dlq="r400-dlq"),
            sub("r400-dlq", "/r400-dlq"),
            sub("drop", "/drop", dlq="drop-dlq"),
            sub("drop-dlq", "/drop-dlq"),
            sub("nf", "/nf", dlq="nf-dlq"),
            sub("nf-dlq", "/nf-dlq"),
            sub("lower", "/lower", dlq="lower-dlq"),
            sub("lower-dlq", "/lower-dlq"),
            sub("variants", "/variants"),
            sub("bulk", "/bulk"),
            sub("allowed1", "/allowed1", pubsub="scoped"),
            sub("plaindlq", "/plaindlq", pubsub="plain", dlq="plaindlq-dlq"),
            sub("plaindlq-dlq", "/plaindlq-dlq", pubsub="plain"),
            sub("redeliver", "/redeliver", pubsub="plain"),
            sub("slow", "/slow", pubsub="timed", dlq="slow-dlq"),
            sub("slow-dlq", "/slow-dlq", pubsub="timed"),
            sub("expire", "/expire", dlq="expire-dlq"),
            # the DLQ subscriber would judge these bytes as the first one did (expired, not
            # JSON): read it raw, so the original bytes arrive base64-wrapped
            sub("expire-dlq", "/expire-dlq", metadata={"rawPayload": "true"}),
            sub("nonce", "/nonce", dlq="nonce-dlq"),
            sub("nonce-dlq", "/nonce-dlq", metadata={"rawPayload": "true"}),
            sub("okvar", "/okvar"),
        ]
        a.blocked["/slow"] = threading.Event()  # never set while the test runs
        a.subscriptions["concapp"] = [sub("conc", "/conc")]
        a.subscriptions["freeapp"] = [sub("concfree", "/concfree")]
        a.replies.update({
            "/r503": lambda n: (503, b"busy"),
            "/r400": lambda n: (400, b"bad"),
            "/drop": lambda n: (200, b'{"status":"DROP"}'),
            "/nf": lambda n: (404, b""),
            "/lower": lambda n: (200, b'{"status":"success"}'),
            "/plaindlq": lambda n: (500, b""),
            "/redeliver": lambda n: (500, b"") if n <= 2 else (200, b'{"status":"SUCCESS"}'),
        })
        cls.sidecars = []
        cls.sc = Sidecar("pubapp", a.port, cls.dir)
        cls.sidecars.append(cls.sc)

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            for s in cls.sidecars:
                rc = s.stop()
                if rc != 0:
                    problems.append(f"sidecar exit {rc}")
                problems += s.problems()
                problems += [line for line in s.logs().splitlines()
                             if '"level":"error"' in line]
        finally:
            cls.app.close()
            cls.kafka.close()
            shutil.rmtree(cls.dir, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems[:20]))

    # ---- §1.1 status and error table -------------------------------------------------------

    def test_publish_errors(self):
        sc = self.sc
        r = sc.publish("orders-err", "{}", "application/json", pubsub="nosuch")
        self.assertEqual(r.status, 404)
        e = err(r)
        self.assertEqual(e["errorCode"], "ERR_PUBSUB_NOT_FOUND")
        self.assertEqual(e["message"], "pubsub nosuch is not found")
        self.assertEqual(e["details"][0]["reason"], "DAPR_PUBSUB_NOT_FOUND")
        self.assertEqual(r.header("Content-Type"), "application/json")

        r = sc.request("POST", "/v1.0/publish/pubsub/", b"x")
        self.assertEqual(r.status, 404)
        self.assertEqual(err(r)["errorCode"], "ERR_TOPIC_NAME_EMPTY")

        r = sc.publish("orders-err", "x", query="metadata.rawPayload=maybe")
        self.assertEqual(r.status, 400)
        self.assertEqual(err(r)["errorCode"], "ERR_PUBSUB_REQUEST_METADATA")

        for bad in (b"{not json", b"[1,2]"):
            r = sc.publish("orders-err", bad, "application/cloudevents+json")
            self.assertEqual(r.status, 500, bad)
            self.assertEqual(err(r)["errorCode"], "ERR_PUBSUB_CLOUD_EVENTS_SER")

        # raw payload wins over the CloudEvent content type
        r = sc.publish("orders-err", b"{not json", "application/cloudevents+json",
                       query="metadata.rawPayload=true")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")

    # ---- §1.5 scopes -------------------------------------------------------------------------

    def test_scopes(self):
        sc = self.sc
        self.assertEqual(sc.publish("allowed1", "x", pubsub="scoped").status, 204)
        self.assertEqual(sc.publish("allowed1", "y", pubsub="scoped", method="PUT").status, 204)
        self.assertEqual(sc.publish("secret", "x", pubsub="scoped").status, 204)
        for topic in ("allowed2", "other", "x"):
            r = sc.publish(topic, "x", pubsub="scoped")
            self.assertEqual(r.status, 403, topic)
            e = err(r)
            self.assertEqual(e["errorCode"], "ERR_PUBSUB_FORBIDDEN")
            self.assertEqual(e["message"], f"topic {topic} is not allowed for app id pubapp")
        r = self.sc.request("POST", "/v1.0/publish/bulk/scoped/allowed2",
                            json.dumps([{"entryId": "1", "event": "a",
                                         "contentType": "text/plain"}]).encode(),
                            {"Content-Type": "application/json"})
        self.assertEqual(r.status, 403)
        self.assertEqual(err(r)["errorCode"], "ERR_PUBSUB_FORBIDDEN")
        self.assertEqual(err(r)["failedEntries"][0]["entryId"], "1")
        got = sorted(json.loads(d[3])["data"] for d in self.app.wait_count("/allowed1", 2))
        self.assertEqual(got, ["x", "y"])

    # ---- §1.2 / §3.1 what the app receives ----------------------------------------------------

    def test_delivery_request(self):
        body = b'{"a": 1, "b": [true, null], "c": "<&>"}'
        r = self.sc.publish("orders", body, "application/json",
                            query="metadata.partitionKey=k1&metadata.custom=v%201&x=ignored",
                            headers={"traceparent": TP, "tracestate": "k=v"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        path, h, names, got, _ = self.app.wait_count("/orders", 1)[0]
        self.assertEqual(h["content-type"], "application/cloudevents+json")
        self.assertEqual(h["pubsubname"], "pubsub")
        self.assertIn("Pubsubname", names)
        self.assertEqual(h["__key"], "k1")
        self.assertEqual(h["__topic"], "orders")
        self.assertIn("__partition", h)
        self.assertIn("__offset", h)
        self.assertIn("__timestamp", h)
        self.assertEqual(h["partitionkey"], "k1")
        self.assertIn("Partitionkey", names)
        self.assertEqual(h["custom"], "v 1")
        self.assertNotIn("x", h)
        ce = json.loads(got)
        # the body is the broker bytes: Go's map order and HTML escaping
        self.assertEqual(got, json.dumps(ce, sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False).replace("<", "\\u003c")
                         .replace(">", "\\u003e").replace("&", "\\u0026").encode())
        self.assertEqual(set(ce), {"id", "specversion", "source", "type", "datacontenttype",
                                   "topic", "pubsubname", "traceid", "traceparent", "tracestate",
                                   "time", "data"})
        self.assertRegex(ce["id"], UUID_RE)
        self.assertEqual(ce["specversion"], "1.0")
        self.assertEqual(ce["source"], "pubapp")
        self.assertEqual(ce["type"], "com.dapr.event.sent")
        self.assertEqual(ce["datacontenttype"], "application/json")
        self.assertEqual(ce["topic"], "orders")
        self.assertEqual(ce["pubsubname"], "pubsub")
        self.assertEqual(ce["data"], {"a": 1, "b": [True, None], "c": "<&>"})
        self.assertRegex(ce["time"], TIME_RE)
        m = todo_test.TRACEPARENT_RE.match(ce["traceparent"])
        self.assertTrue(m, ce["traceparent"])
        self.assertEqual(m.group(1), "0af7651916cd43dd8448eb211c80319c")  # same trace
        self.assertEqual(ce["traceid"], ce["traceparent"])
        self.assertEqual(ce["tracestate"], "k=v")
        self.assertEqual(h["traceparent"], ce["traceparent"])
        self.assertEqual(h["tracestate"], "k=v")

    def test_wrapping_variants(self):
        sc = self.sc
        ce_in = {"id": "mine", "source": "s", "type": "my.type", "specversion": "1.0",
                 "topic": "wrong", "data": {"k": "v"}}
        cases = [
            (None, b"plain text", {}),
            ("application/octet-stream", b"\x00\x01\xfe", {}),
            ("application/x+json", b'{"a":1}', {}),
            ("application/json", b"{broken", {}),
            ("application/cloudevents+json", json.dumps(ce_in).encode(), {}),
            # §1.3: Dapr adds no id to an app's CloudEvent without one
            ("application/cloudevents+json",
             json.dumps({"source": "s2", "type": "t.noid", "specversion": "1.0",
                         "data": "noid"}).encode(), {}),
            ("text/plain", b"with meta", {"cloudevent.id": "given-id", "cloudevent.type": "t.x",
                                         "cloudevent.subject": "subj", "ttlInSeconds": "60"}),
        ]
        for ct, body, meta in cases:
            q = "&".join(f"metadata.{k}={urllib.parse.quote(v)}" for k, v in meta.items())
            self.assertEqual(sc.publish("variants", body, ct, query=q).status, 204)
        got = [json.loads(d[3]) for d in self.app.wait_count("/variants", len(cases))]
        by_data = {}
        for ce in got:
            by_data[json.dumps(ce.get("data", ce.get("data_base64")))] = ce
        plain = by_data['"plain text"']
        self.assertEqual(plain["datacontenttype"], "text/plain")
        octet = by_data[json.dumps(base64.b64encode(b"\x00\x01\xfe").decode())]
        self.assertEqual(octet["datacontenttype"], "application/octet-stream")
        self.assertNotIn("data", octet)
        self.assertIn('"{\\"a\\":1}"', by_data)  # +json is a string
        self.assertIn('"{broken"', by_data)       # unparsable JSON is a string
        mine = by_data['{"k": "v"}']
        self.assertEqual(mine["id"], "mine")
        self.assertEqual(mine["source"], "s")
        self.assertEqual(mine["type"], "my.type")
        self.assertEqual(mine["topic"], "variants")
        self.assertEqual(mine["pubsubname"], "pubsub")
        self.assertNotIn("datacontenttype", mine)
        self.assertIn("traceid", mine)
        self.assertIn("time", mine)
        noid = by_data['"noid"']
        self.assertNotIn("id", noid)
        self.assertEqual((noid["source"], noid["type"], noid["topic"], noid["pubsubname"]),
                         ("s2", "t.noid", "variants", "pubsub"))
        self.assertRegex(noid["time"], TIME_RE)
        self.assertEqual(noid["traceid"], noid["traceparent"])
        meta = by_data['"with meta"']
        self.assertEqual(meta["id"], "given-id")
        self.assertEqual(meta["type"], "t.x")
        self.assertEqual(meta["subject"], "subj")
        self.assertRegex(meta["expiration"], r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

    def test_raw_payload(self):
        self.assertEqual(self.sc.publish("rawsub", b"hello", "text/plain",
                                         query="metadata.rawPayload=true").status, 204)
        path, h, names, got, _ = self.app.wait_count("/rawsub", 1)[0]
        self.assertEqual(h["content-type"], "application/cloudevents+json")
        ce = json.loads(got)
        self.assertEqual(ce["data_base64"], base64.b64encode(b"hello").decode())
        self.assertEqual(ce["datacontenttype"], "application/octet-stream")
        self.assertEqual(ce["source"], "Dapr")
        self.assertEqual(ce["topic"], "rawsub")
        self.assertRegex(ce["id"], UUID_RE)
        self.assertEqual(h["rawpayload"], "true")

    def test_routing_rules(self):
        sc = self.sc
        self.assertEqual(sc.publish("routed", "x", query="metadata.cloudevent.type=t.a").status,
                         204)
        self.assertEqual(sc.publish("routed", "y", query="metadata.cloudevent.type=t.b").status,
                         204)
        a = self.app.wait_count("/routed-a", 1)
        d = self.app.wait_count("/routed-default", 1)
        self.assertEqual(json.loads(a[0][3])["data"], "x")
        self.assertEqual(json.loads(d[0][3])["data"], "y")

    # ---- §1.4 bulk ---------------------------------------------------------------------------

    def test_bulk(self):
        sc = self.sc
        hj = {"Content-Type": "application/json"}
        entries = [
            {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
            {"entryId": "2", "event": "two", "contentType": "text/plain",
             "metadata": {"partitionKey": "p2"}},
            {"entryId": "3", "event": base64.b64encode(b"\x01\x02").decode(),
             "contentType": "application/octet-stream"},
        ]
        for prefix in ("/v1.0-alpha1/publish/bulk", "/v1.0/publish/bulk"):
            r = sc.request("POST", f"{prefix}/pubsub/bulk", json.dumps(entries).encode(), hj)
            self.assertEqual(r.status, 204, r.body)
        got = [json.loads(d[3]) for d in self.app.wait_count("/bulk", 6)]
        datas = sorted(json.dumps(ce.get("data", ce.get("data_base64"))) for ce in got)
        self.assertEqual(datas, sorted([json.dumps({"n": 1}), '"two"', '"AQI="'] * 2))
        self.assertEqual(len({ce["id"] for ce in got}), 6)
        keyed = [d for d in self.app.received("/bulk") if d[1].get("__key") == "p2"]
        self.assertEqual(len(keyed), 2)

        def bad(body, reason):
            r = sc.request("POST", "/v1.0/publish/bulk/pubsub/bulk", body, hj)
            self.assertEqual(r.status, 400, body)
            e = err(r)
            self.assertEqual(e["errorCode"], "ERR_PUBSUB_EVENTS_SER")
            self.assertEqual(e["details"][0]["reason"], reason)
        bad(b'{"entryId":"1"}', "DAPR_PUBSUB_UNMARSHAL_EVENTS")
        bad(b"not json", "DAPR_PUBSUB_UNMARSHAL_EVENTS")
        bad(json.dumps([{"event": "a", "contentType": "text/plain"}]).encode(),
            "DAPR_PUBSUB_MARSHAL_EVENTS")
        bad(json.dumps([{"entryId": "1", "event": "a", "contentType": "text/plain"},
                        {"entryId": "1", "event": "b", "contentType": "text/plain"}]).encode(),
            "DAPR_PUBSUB_MARSHAL_EVENTS")
        bad(json.dumps([{"entryId": "1", "event": {"a": 1}}]).encode(),
            "DAPR_PUBSUB_MARSHAL_EVENTS")
        r = sc.request("PUT", "/v1.0/publish/bulk/nosuch/bulk", b"[]", hj)
        self.assertEqual(r.status, 404)
        self.assertEqual(err(r)["errorCode"], "ERR_PUBSUB_NOT_FOUND")

    # ---- §3.2 / §3.3 / §4 reply table and its effects ---------------------------------------

    def assert_dead_lettered(self, topic, attempts, body=b"x-body"):
        r = self.sc.publish(topic, body, "text/plain", query="metadata.custom=keep")
        self.assertEqual(r.status, 204)
        dl = self.app.wait_count(f"/{topic}-dlq", 1)
        tries = self.app.received(f"/{topic}")
        self.assertEqual(len(tries), attempts, topic)
        # the DLQ carries the original bytes and metadata, not re-wrapped
        self.assertEqual(dl[0][3], tries[0][3])
        for t in tries:
            self.assertEqual(t[3], tries[0][3])
        self.assertEqual(dl[0][1]["custom"], "keep")
        self.assertEqual(json.loads(dl[0][3])["topic"], topic)
        return tries

    def test_2xx_replies_are_success(self):
        """§3.2 and §14 item 2: a 2xx with an empty body, a body that is no JSON or no object,
        {}, no or an empty status, or "SUCCESS" is a success: one attempt each. (The component
        has a retry policy; a retry would deliver the same message again, and one partition
        keeps them in order.)"""
        replies = [(200, b""), (200, b"not json"), (200, b"[1, 2]"), (201, b"{}"),
                   (200, b'{"status":""}'), (200, b'{"status":null}'), (202, b'{"other":1}'),
                   (200, b'{"status":"SUCCESS"}'), (204, b""), (299, b"1")]
        self.app.replies["/okvar"] = (
            lambda n: replies[n - 1] if n <= len(replies) else (200, b""))
        for i in range(len(replies)):
            self.assertEqual(self.sc.publish("okvar", f"m{i}",
                                             query="metadata.partitionKey=ok").status, 204)
        self.assertEqual(self.sc.publish("okvar", "last", query="metadata.partitionKey=ok").status,
                         204)
        got = self.app.wait_count("/okvar", len(replies) + 1)
        self.assertEqual([json.loads(d[3])["data"] for d in got],
                         [f"m{i}" for i in range(len(replies))] + ["last"])

    def test_retry_then_dlq(self):
        tries = self.assert_dead_lettered("r503", 4)  # 1 + maxRetries 3, every 100 ms
        self.assertEqual(len(self.app.received("/r503-dlq")), 1)
        gaps = [b[4] - a[4] for a, b in zip(tries, tries[1:])]
        for g in gaps:
            self.assertGreaterEqual(g, 0.095, gaps)
            self.assertLess(g, 2.0 * SLOW, gaps)

    def test_status_not_matched_is_permanent(self):
        self.assert_dead_lettered("r400", 1)  # 400 is outside "500-599": no retry

    def test_drop_goes_to_dlq(self):
        self.assert_dead_lettered("drop", 1)

    def test_404_goes_to_dlq(self):
        self.assert_dead_lettered("nf", 1)

    def test_lower_case_success_is_retried(self):
        self.assert_dead_lettered("lower", 4)

    def test_no_policy_one_attempt_then_dlq(self):
        r = self.sc.publish("plaindlq", "x", pubsub="plain")
        self.assertEqual(r.status, 204)
        self.app.wait_count("/plaindlq-dlq", 1)
        self.assertEqual(len(self.app.received("/plaindlq")), 1)

    def test_no_dlq_component_redelivers(self):
        r = self.sc.publish("redeliver", "again", pubsub="plain", query="metadata.partitionKey=rk")
        self.assertEqual(r.status, 204)
        tries = self.app.wait_count("/redeliver", 3)
        self.assertEqual(len({t[3] for t in tries}), 1)
        self.assertEqual(json.loads(tries[0][3])["data"], "again")
        # the third one succeeded: nothing more arrives for it after a later message
        r = self.sc.publish("redeliver", "next", pubsub="plain", query="metadata.partitionKey=rk")
        self.assertEqual(r.status, 204)
        later = self.app.wait_count("/redeliver", 4)
        self.assertEqual(json.loads(later[3][3])["data"], "next")

    def test_per_attempt_timeout(self):
        r = self.sc.publish("slow", "zzz", pubsub="timed")
        self.assertEqual(r.status, 204)
        dl = self.app.wait_count("/slow-dlq", 1)
        tries = self.app.received("/slow")
        self.assertEqual(len(tries), 4)  # each attempt cut at 300 ms, then 3 retries
        self.assertEqual(dl[0][3], tries[0][3])
        gaps = [b[4] - a[4] for a, b in zip(tries, tries[1:])]
        for g in gaps:
            self.assertGreaterEqual(g, 0.38, gaps)  # 300 ms deadline + 100 ms back-off

    def test_expired_is_dropped_to_dlq(self):
        ce = {"id": "old", "source": "s", "type": "t", "specversion": "1.0", "data": "late",
              "expiration": "2020-01-01T00:00:00Z"}
        r = self.sc.publish("expire", json.dumps(ce), "application/cloudevents+json")
        self.assertEqual(r.status, 204)
        dl = self.app.wait_count("/expire-dlq", 1)
        original = json.loads(base64.b64decode(json.loads(dl[0][3])["data_base64"]))
        self.assertEqual(original["id"], "old")
        self.assertEqual(original["topic"], "expire")
        self.assertEqual(self.app.received("/expire"), [])

    def test_non_cloudevent_messages(self):
        sc = self.sc
        q = "metadata.rawPayload=true&metadata.partitionKey=nk"
        self.assertEqual(sc.publish("nonce", b'{"x": 1}', query=q).status, 204)
        self.assertEqual(sc.publish("nonce", b"not json", query=q).status, 204)
        got = self.app.wait_count("/nonce", 1)
        dl = self.app.wait_count("/nonce-dlq", 1)
        self.assertEqual(got[0][3], b'{"x": 1}')  # a JSON object goes as it is
        self.assertEqual(got[0][1]["content-type"], "application/cloudevents+json")
        # anything else is a deserialization error
        self.assertEqual(base64.b64decode(json.loads(dl[0][3])["data_base64"]), b"not json")
        self.assertEqual(len(self.app.received("/nonce")), 1)

    # ---- --app-max-concurrency ---------------------------------------------------------------

    def test_app_max_concurrency(self):
        app = self.app
        app.blocked["/conc"] = threading.Event()
        app.blocked["/concfree"] = threading.Event()
        limited = Sidecar("concapp", app.port, self.dir, "--app-max-concurrency", "2")
        self.sidecars.append(limited)
        free = Sidecar("freeapp", app.port, self.dir)
        self.sidecars.append(free)
        for i in range(16):
            self.assertEqual(limited.publish("conc", f"m{i}",
                                             query=f"metadata.partitionKey=key{i}").status, 204)
            self.assertEqual(free.publish("concfree", f"m{i}",
                                          query=f"metadata.partitionKey=key{i}").status, 204)
        # the unlimited sidecar reaches three handlers at once: the partitions run in parallel
        wait_until(lambda: app.in_flight.get("/concfree", 0) >= 3, 30 * SLOW,
                   what="3 concurrent deliveries without a limit")
        wait_until(lambda: app.in_flight.get("/conc", 0) == 2, 30 * SLOW,
                   what="2 concurrent deliveries with the limit")
        # hold both while the limited one has work queued on other partitions
        deadline = time.monotonic() + 1.0 * SLOW
        while time.monotonic() < deadline:
            with app.lock:
                app.lock.wait(0.05)
                self.assertLessEqual(app.in_flight.get("/conc", 0), 2)
        app.blocked["/conc"].set()
        app.blocked["/concfree"].set()
        app.wait_count("/conc", 16)
        app.wait_count("/concfree", 16)
        self.assertEqual(app.max_in_flight["/conc"], 2)
        self.assertGreaterEqual(app.max_in_flight["/concfree"], 3)
        parts = {d[1]["__partition"] for d in app.received("/conc")}
        self.assertGreaterEqual(len(parts), 3)


if __name__ == "__main__":
    todo_test.run()
