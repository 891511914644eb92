"""pubsub.kafka (on kafka-mock) and pubsub.redis (on a redis-server the test starts) behind real
dapr-sidecar processes, over HTTP (DAPR-CONTRACT §3.3, §3.4, §3.6; §14 items 3, 4 and 14). For
each: competing consumers (two sidecars of one app id: each message once), fan-out (two app ids:
each gets all), resiliency retries then the dead-letter topic with the original bytes, what the
component does without a dead-letter topic (Kafka retries and blocks the partition, Redis drops),
and redelivery to the other replica after kill -9 of the sidecar holding a delivery (nothing
lost). Kafka also: the consumer group and initialOffset defaults, and a group rebalance during a
delivery (not delivered again). Redis also: processingTimeout cuts the app call, the message
stays pending and is redelivered."""

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

import todo_test
from sidecar_app import SidecarApp
from todo_test import SLOW, free_port, wait_until

SIDECAR = os.path.join(todo_test.BIN_DIR, "dapr-sidecar")
KAFKA_MOCK = os.path.join(todo_test.BIN_DIR, "kafka-mock")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
ENV_DROP = ("DAPR_API_TOKEN", "APP_API_TOKEN", "NAMESPACE")
# Kafka topics and their partition counts (kafka-mock creates them).
KAFKA_TOPICS = {"kafka-comp": 4, "kafka-fan": 2, "kafka-r": 1, "kafka-r-dlq": 1,
                "kafka-nodlq": 1, "kafka-kill": 1, "kafka-newest": 1, "kafka-rb": 1,
                "kafka-rb-other": 1}

RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: retries
spec:
  policies:
    retries:
      fast:
        policy: constant
        duration: 100ms
        maxRetries: 2
  targets:
    components:
      pubsub:
        inbound:
          retry: fast
"""


def component(kind, address, **meta):
    """The pub/sub component "pubsub" of kind kafka or redis with extra metadata."""
    if kind == "kafka":
        base = {"brokers": address, **meta}
        ctype = "pubsub.kafka"
    else:
        base = {"redisHost": address, **meta}
        ctype = "pubsub.redis"
    items = "".join(f"  - name: {k}\n    value: \"{v}\"\n" for k, v in base.items())
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n"
            f"spec:\n  type: {ctype}\n  version: v1\n  metadata:\n{items}")


def sub(topic, route, dlq=None):
    s = {"pubsubname": "pubsub", "topic": topic, "route": route}
    if dlq:
        s["deadLetterTopic"] = dlq
    return s


def redis_call(port, *args, timeout=5):
    """One command over RESP; the raw first reply line."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(out)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def redis_pending(port, stream, group):
    """The count of XPENDING's summary form (the group's entries delivered but not acked)."""
    out = b"*3\r\n$8\r\nXPENDING\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(stream), stream.encode(), len(group), group.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(out)
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b"\r\n")[1][1:])


class KafkaMock:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-brokers-kafka-", dir="/tmp")
        path = os.path.join(self.dir, "bootstrap")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        args = [KAFKA_MOCK, "--bootstrap-file", path]
        for t, n in KAFKA_TOPICS.items():
            args += ["--topic", f"{t}:{n}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"kafka-mock exited with {self.proc.returncode}")
            return os.path.exists(path)
        wait_until(up, 30 * SLOW, what="kafka-mock")
        with open(path) as f:
            self.address = f.read().strip()

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


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-brokers-redis-", dir="/tmp")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            return redis_call(self.port, "PING", timeout=1) == "+PONG"
        wait_until(up, 30 * SLOW, what="redis-server PING")
        self.address = f"127.0.0.1:{self.port}"

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sidecar:
    """One dapr-sidecar process with its own resources folder, ready on /v1.0/healthz."""

    def __init__(self, app_id, app, resources, wait=True):
        self.app_id = app_id
        self.app = app
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix=f"todo-brokers-{app_id}-", suffix=".log",
                                             dir=todo_test.LOG_DIR)
        self.log = os.fdopen(fd, "ab")
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        cmd = [SIDECAR, "--app-id", app_id, "--dapr-http-port", str(self.port),
               "--resources-path", resources, "--log-level", "debug"]
        if app is not None:
            cmd += ["--app-port", str(app.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log)
        self.killed = False
        if wait:
            wait_until(self._ready, 30 * SLOW, what=f"sidecar {app_id} /v1.0/healthz")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"dapr-sidecar {self.app_id} exited {self.proc.returncode}:\n"
                                 + self.logs()[-3000:])
        return self.request("GET", "/v1.0/healthz").status == 204

    def request(self, method, path, body=b"", headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def publish(self, topic, data, key=None, content_type="application/json"):
        q = f"?metadata.partitionKey={key}" if key else ""
        body = json.dumps(data).encode() if content_type == "application/json" else data
        r = self.request("POST", f"/v1.0/publish/pubsub/{topic}{q}", body,
                         {"Content-Type": content_type})
        if r.status != 204:
            raise AssertionError(f"publish to {topic}: {r!r}")

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def count_log(self, pattern):
        return len(re.findall(pattern, self.logs()))

    def wait_log(self, pattern, count=1, timeout=60):
        return wait_until(lambda: self.count_log(pattern) >= count, timeout * SLOW,
                          what=f"{count}× {pattern!r} in the log of {self.app_id}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.killed = True

    def stop(self):
        """SIGTERM (in-flight deliveries finish); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"dapr-sidecar {self.app_id} did not stop in time")
        return self.proc.returncode

    def close(self):
        rc = self.stop()
        self.log.close()
        return rc

    def problems(self, allowed=()):
        return [line for line in self.logs().splitlines()
                if any(m in line for m in SANITIZER_MARKS)
                or ('"level":"error"' in line and not any(a in line for a in allowed))]


def delivered(app, path):
    """The CloudEvents the app received on path, parsed."""
    return [r.json() for r in app.requests(path, "POST")]


class BrokerCase:
    """The scenarios both components share; subclasses say how to reach the broker and how to
    wait until a group is consuming."""

    kind = None
    # error lines a scenario causes on purpose (the component logs a dropped message)
    allowed_errors = ()

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_broker()
        cls.dirs = []

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        for d in cls.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def setUp(self):
        self.sidecars = []
        self.apps = []

    def tearDown(self):
        problems = []
        for s in self.sidecars:
            if s.killed:
                s.log.close()
                continue
            rc = s.close()
            if rc != 0:
                problems.append(f"{s.app_id} exited with {rc}")
            problems += s.problems(self.allowed_errors)
        for a in self.apps:
            a.close()
        if problems:
            self.fail("\n".join(problems[:20]))

    def resources(self, *docs):
        d = tempfile.mkdtemp(prefix=f"todo-brokers-{self.kind}-res-", dir="/tmp")
        self.dirs.append(d)
        for i, doc in enumerate(docs):
            with open(os.path.join(d, f"r{i}.yaml"), "w") as f:
                f.write(doc)
        return d

    def app(self, subs):
        a = SidecarApp()
        a.subscribe(200, subs)
        self.apps.append(a)
        return a

    def sidecar(self, app_id, app, resources, wait=True):
        s = Sidecar(app_id, app, resources, wait)
        self.sidecars.append(s)
        return s

    def pubsub(self, **meta):
        return component(self.kind, self.server.address, **self.default_meta(), **meta)

    def default_meta(self):
        return {}

    def topic(self, name):
        return f"{self.kind}-{name}"

    def wait_group(self, members):
        """Until every sidecar of members (one group) consumes with the group's final
        membership (Kafka: an assignment after the last one joined)."""

    # ---- competing consumers and fan-out -------------------------------------------------------

    def test_competing_consumers(self):
        """Two sidecars of one app id share its consumer group: each message reaches one of
        them, once."""
        topic = self.topic("comp")
        res = self.resources(self.pubsub(**self.competing_meta()))
        apps = [self.app([sub(topic, "/m")]) for _ in range(2)]
        for a in apps:
            a.policy("/m", status=200, delay=self.competing_delay)
        first = self.sidecar(f"{topic}-app", apps[0], res)
        self.wait_group([first])
        second = self.sidecar(f"{topic}-app", apps[1], res)
        self.wait_group([first, second])
        n = 20
        for i in range(n):
            first.publish(topic, {"n": i}, key=f"key-{i}")
        wait_until(lambda: len({e["data"]["n"] for a in apps for e in delivered(a, "/m")}) == n,
                   60 * SLOW, what=f"{n} messages")
        for s in (first, second):
            self.assertEqual(s.stop(), 0)  # drains what is in flight
        got = [[e["data"]["n"] for e in delivered(a, "/m")] for a in apps]
        self.assertEqual(sorted(got[0] + got[1]), list(range(n)), got)  # each once
        print(f"{self.kind} competing consumers: {len(got[0])} + {len(got[1])}")
        self.assertGreater(len(got[0]), 0, got)
        self.assertGreater(len(got[1]), 0, got)

    competing_delay = 0.0

    def competing_meta(self):
        return {}

    def test_fan_out(self):
        """Two app ids, two groups: each gets every message once."""
        topic = self.topic("fan")
        res = self.resources(self.pubsub())
        apps = [self.app([sub(topic, "/f")]) for _ in range(2)]
        a = self.sidecar(f"{topic}-a", apps[0], res)
        b = self.sidecar(f"{topic}-b", apps[1], res)
        self.wait_group([a])
        self.wait_group([b])
        n = 10
        for i in range(n):
            a.publish(topic, {"n": i}, key=f"key-{i}")
        for app in apps:
            wait_until(lambda: len(delivered(app, "/f")) >= n, 60 * SLOW, what=f"{n} messages")
        for s in (a, b):
            self.assertEqual(s.stop(), 0)
        for app in apps:
            self.assertEqual(sorted(e["data"]["n"] for e in delivered(app, "/f")), list(range(n)))

    # ---- retries, dead letters, no dead letter -------------------------------------------------

    def test_retries_then_dead_letter(self):
        """Inbound retry policy (constant 100 ms, maxRetries 2): three attempts with the same
        bytes, then the original bytes and metadata on the dead-letter topic."""
        topic, dlq = self.topic("r"), self.topic("r-dlq")
        res = self.resources(self.pubsub(), RESILIENCY)
        app = self.app([sub(topic, "/r", dlq=dlq), sub(dlq, "/r-dlq")])
        app.policy("/r", status=500, body=b"no")
        s = self.sidecar(f"{topic}-app", app, res)
        self.wait_group([s])
        r = s.request("POST", f"/v1.0/publish/pubsub/{topic}?metadata.custom=kept", b"payload",
                      {"Content-Type": "text/plain"})
        self.assertEqual(r.status, 204, r)
        dl = app.wait_for("/r-dlq", 1, timeout=60 * SLOW)[0]
        tries = app.requests("/r")
        self.assertEqual(len(tries), 3)
        for t in tries:
            self.assertEqual(t.body, tries[0].body)
            self.assertEqual(t.header("Content-Type"), "application/cloudevents+json")
            self.assertEqual(t.header("Pubsubname"), "pubsub")
            self.assertEqual(t.header("custom"), "kept")
        gaps = [b.time - a.time for a, b in zip(tries, tries[1:])]
        for g in gaps:
            self.assertGreaterEqual(g, 0.095, gaps)
        self.assertEqual(dl.body, tries[0].body)  # not re-wrapped
        self.assertEqual(dl.header("custom"), "kept")
        ce = json.loads(dl.body)
        self.assertEqual((ce["topic"], ce["data"], ce["source"]), (topic, "payload", f"{topic}-app"))
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(app.requests("/r")), 3)
        self.assertEqual(len(app.requests("/r-dlq")), 1)

    # ---- kill -9 ------------------------------------------------------------------------------

    def test_kill_9_mid_delivery_redelivers(self):
        """Two replicas; the one whose app holds a delivery is killed with SIGKILL: the other
        gets that message and the ones after it (nothing lost)."""
        topic = self.topic("kill")
        res = self.resources(self.pubsub(**self.kill_meta()))
        apps = [self.app([sub(topic, "/k")]) for _ in range(2)]
        gate = threading.Event()
        for a in apps:
            a.policy("/k", status=200, hold=gate, times=1)
            a.policy("/k", status=200)
        replicas = [self.sidecar(f"{topic}-app", apps[0], res)]
        self.wait_group(replicas)
        replicas.append(self.sidecar(f"{topic}-app", apps[1], res))
        self.wait_group(replicas)
        replicas[0].publish(topic, {"m": "stuck"}, key="one-key")
        held = wait_until(lambda: [i for i, a in enumerate(apps) if a.count("/k")], 60 * SLOW,
                          what="the delivery")
        self.assertEqual(len(held), 1, held)
        victim, survivor = held[0], 1 - held[0]
        apps[survivor].clear_policies()  # the survivor answers at once
        first = apps[victim].requests("/k")[0]
        replicas[victim].kill()
        killed_at = time.monotonic()
        replicas[survivor].publish(topic, {"m": "after"}, key="one-key")
        wait_until(lambda: {e["data"]["m"] for e in delivered(apps[survivor], "/k")}
                   >= {"stuck", "after"}, 90 * SLOW, what="the held and the next message")
        gate.set()
        self.assertEqual(replicas[survivor].stop(), 0)
        got = apps[survivor].requests("/k")
        stuck = [r for r in got if r.json()["data"]["m"] == "stuck"]
        self.assertEqual(len(stuck), 1, got)
        self.assertEqual(stuck[0].body, first.body)  # the same message, not a copy of it
        self.assertEqual(len([r for r in got if r.json()["data"]["m"] == "after"]), 1, got)
        self.assertGreater(stuck[0].time, killed_at)
        print(f"{self.kind}: redelivered {stuck[0].time - killed_at:.1f} s after the kill")


@unittest.skipUnless(os.path.exists(SIDECAR) and os.path.exists(KAFKA_MOCK),
                     "dapr-sidecar or kafka-mock is not built")
class KafkaBrokers(BrokerCase, unittest.TestCase):
    kind = "kafka"

    @classmethod
    def start_broker(cls):
        return KafkaMock()

    def default_meta(self):
        return {"initialOffset": "oldest"}

    def wait_group(self, members):
        # Each member logs its assignment (possibly of none) after every rebalance; the one that
        # joined last has one, the others one more than before it joined.
        for i, s in enumerate(members):
            s.wait_log(r"assigned \d+ partition\(s\) in all", 1 + (len(members) - 1 - i))

    def kill_meta(self):
        return {}

    def test_without_dead_letter_the_partition_waits(self):
        """No policy, no dead-letter topic: the component retries every backOffDuration, and the
        next message of the partition waits until the failing one succeeds (§3.3, §3.4)."""
        topic = self.topic("nodlq")
        res = self.resources(self.pubsub(backOffDuration="100ms"))
        app = self.app([sub(topic, "/n")])
        app.policy("/n", status=503, times=2)
        app.policy("/n", status=200)
        s = self.sidecar(f"{topic}-app", app, res)
        self.wait_group([s])
        s.publish(topic, {"m": "first"}, key="k")
        s.publish(topic, {"m": "second"}, key="k")
        app.wait_for("/n", 4, timeout=60 * SLOW)
        self.assertEqual(s.stop(), 0)
        order = [e["data"]["m"] for e in delivered(app, "/n")]
        self.assertEqual(order, ["first", "first", "first", "second"])

    def test_defaults_group_is_app_id_and_initial_offset_newest(self):
        """§14 item 14: the group is the app id, and a new group starts at the newest offset:
        what was published before it first had an assignment is never delivered; the
        CloudEvent travels in the record value, without ce_* headers."""
        topic = self.topic("newest")
        res = self.resources(component("kafka", self.server.address))
        publisher = self.sidecar("kafka-newest-pub", None, res)
        publisher.publish(topic, {"m": "early"}, key="k")
        app = self.app([sub(topic, "/new")])
        s = self.sidecar("kafka-newest-app", app, res)
        s.wait_log(r"group kafka-newest-app assigned 1 partition\(s\) in all")
        self.assertIn("initial offset newest", s.logs())
        # The consumer finds its start (the newest offset) only after the assignment: probes
        # until one arrives, then the start is set.
        deadline = time.monotonic() + 60 * SLOW
        while not app.count("/new"):
            self.assertLess(time.monotonic(), deadline, "no probe arrived")
            publisher.publish(topic, {"m": "probe"}, key="k")
            try:
                app.wait_for("/new", 1, timeout=0.5)
            except AssertionError:
                pass
        publisher.publish(topic, {"m": "late"}, key="k")
        wait_until(lambda: "late" in [e["data"]["m"] for e in delivered(app, "/new")],
                   60 * SLOW, what="the late message")
        self.assertEqual(s.stop(), 0)
        got = delivered(app, "/new")
        # one partition, in order: "early" (offset 0) would have come first
        self.assertEqual({e["data"]["m"] for e in got}, {"probe", "late"}, got)
        self.assertEqual(got[-1]["data"]["m"], "late")
        names = [k.lower() for k, _ in app.requests("/new")[-1].headers]
        self.assertFalse([n for n in names if n.startswith("ce_") or n.startswith("ce-")], names)
        self.assertEqual(app.requests("/new")[-1].header("__topic"), topic)

    def test_rebalance_during_a_delivery_does_not_deliver_it_again(self):
        """Another member joins the group while a delivery is in flight: the partition is
        revoked, the delivery finishes, and the partition comes back at the offset after it
        (the commit the mock cluster refuses while the group rebalances is made good)."""
        topic, other = self.topic("rb"), self.topic("rb-other")
        res = self.resources(self.pubsub(consumerGroup="kafka-rb-group"))
        app = self.app([sub(topic, "/rb")])
        gate = threading.Event()
        app.policy("/rb", status=200, hold=gate, times=1)
        app.policy("/rb", status=200)
        s = self.sidecar("kafka-rb-app", app, res)
        self.wait_group([s])
        s.publish(topic, {"m": "held"}, key="k")
        app.wait_for("/rb", 1, timeout=60 * SLOW)
        # a member of the same group for another topic: the group rebalances
        other_app = self.app([sub(other, "/other")])
        joiner = self.sidecar("kafka-rb-other", other_app, res)
        s.wait_log(r"group kafka-rb-group revoking \d+ partition\(s\) in all")
        gate.set()  # the delivery ends while the group rebalances
        s.wait_log(r"group kafka-rb-group assigned 1 partition\(s\) in all", 2)
        s.publish(topic, {"m": "next"}, key="k")
        wait_until(lambda: "next" in [e["data"]["m"] for e in delivered(app, "/rb")],
                   60 * SLOW, what="the next message")
        self.assertEqual(s.stop(), 0)
        self.assertEqual(joiner.stop(), 0)
        self.assertEqual([e["data"]["m"] for e in delivered(app, "/rb")], ["held", "next"])
        logs = s.logs()
        self.assertIn("kept for the next assignment", logs)  # the mock refused the commit
        self.assertIn("kafka-rb/0 resumes at offset 1", logs)


@unittest.skipUnless(os.path.exists(SIDECAR) and os.path.exists(REDIS_SERVER),
                     "dapr-sidecar or redis-server is missing")
class RedisBrokers(BrokerCase, unittest.TestCase):
    kind = "redis"
    allowed_errors = ("acknowledged (dropped)",)
    # One message in hand per replica at a time, so that both take part.
    competing_delay = 0.2

    @classmethod
    def start_broker(cls):
        return RedisServer()

    def default_meta(self):
        return {"redeliverInterval": "200"}

    def competing_meta(self):
        return {"concurrency": "1", "queueDepth": "1"}

    def kill_meta(self):
        # long enough that the victim still holds the message when it is killed
        return {"processingTimeout": "5s"}

    def test_without_dead_letter_the_message_is_dropped(self):
        """No policy, no dead-letter topic: Redis streams (Dapr ≥ 1.17) acknowledge the failed
        message, so it is gone; the next one is delivered (§3.3 item 3)."""
        topic = self.topic("nodlq")
        res = self.resources(self.pubsub())
        app = self.app([sub(topic, "/n")])
        app.policy("/n", status=500, times=1)
        app.policy("/n", status=200)
        s = self.sidecar(f"{topic}-app", app, res)
        s.publish(topic, {"m": "first"})
        app.wait_for("/n", 1, timeout=30 * SLOW)
        s.wait_log(r"acknowledged \(dropped\)")
        s.publish(topic, {"m": "second"})
        app.wait_for("/n", 2, timeout=30 * SLOW)
        wait_until(lambda: redis_pending(self.server.port, topic, f"{topic}-app") == 0,
                   10 * SLOW, what="no pending entries")
        self.assertEqual(s.stop(), 0)
        self.assertEqual(sorted(e["data"]["m"] for e in delivered(app, "/n")),
                         ["first", "second"])

    def test_processing_timeout_cuts_the_call_and_redelivers(self):
        """processingTimeout 1 s: the app call is cut there (daprd's handler context), the
        message stays pending and the reclaim loop delivers it again."""
        topic = self.topic("slow")
        res = self.resources(self.pubsub(processingTimeout="1s"))
        app = self.app([sub(topic, "/s")])
        app.policy("/s", status=200, delay=4, times=1)
        app.policy("/s", status=200)
        s = self.sidecar(f"{topic}-app", app, res)
        s.publish(topic, {"m": "slow"}, key=None)
        got = app.wait_for("/s", 2, timeout=30 * SLOW)
        s.wait_log(r"left pending for redelivery")
        self.assertEqual(got[0].body, got[1].body)
        self.assertGreaterEqual(got[1].time - got[0].time, 0.95)
        wait_until(lambda: redis_pending(self.server.port, topic, f"{topic}-app") == 0,
                   10 * SLOW, what="the redelivered message acknowledged")
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(app.requests("/s")), 2)

    def test_delivery_request(self):
        """What the app receives from Redis: the broker bytes, cloudevents+json, Pubsubname and
        the publish metadata as headers (§3.1)."""
        topic = self.topic("shape")
        res = self.resources(self.pubsub())
        app = self.app([sub(topic, "/shape")])
        s = self.sidecar(f"{topic}-app", app, res)
        r = s.request("POST", f"/v1.0/publish/pubsub/{topic}?metadata.my-key=v%201",
                      b'{"a":[1,2]}', {"Content-Type": "application/json"})
        self.assertEqual(r.status, 204, r)
        got = app.wait_for("/shape", 1, timeout=30 * SLOW)[0]
        self.assertEqual(s.stop(), 0)
        self.assertEqual(got.header("Content-Type"), "application/cloudevents+json")
        self.assertEqual(got.header("Pubsubname"), "pubsub")
        self.assertEqual(got.header("My-Key"), "v 1")
        ce = got.json()
        self.assertEqual(ce["data"], {"a": [1, 2]})
        self.assertEqual(ce["topic"], topic)
        self.assertEqual(ce["source"], f"{topic}-app")
        # the bytes as the publisher's sidecar wrote them: Go's map order
        self.assertEqual(got.body, json.dumps(ce, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode())


if __name__ == "__main__":
    todo_test.run()
