"""The official Dapr JavaScript SDK (@dapr/dapr over HTTP, pinned in tests/sdk-js/package-lock.json)
against the sidecar double: installs the SDK with `npm ci` when tests/sdk-js/node_modules is
missing or stale, starts PostgreSQL (state and jobs), kafka-mock and dapr-sidecar with API tokens
both ways, then runs tests/sdk-js/sdk_check.js, whose DaprClient publishes, saves/gets/deletes
state with ETags and schedules/gets/deletes jobs, and whose DaprServer app receives the
subscriptions and a job trigger. The test passes only when every check of the script passed, and
cross-checks what the script left in PostgreSQL and what the sidecar logged."""

import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import todo_test
from todo_test import SLOW, free_port, wait_until

SIDECAR = os.path.join(todo_test.BIN_DIR, "dapr-sidecar")
KAFKA_MOCK = os.path.join(todo_test.BIN_DIR, "kafka-mock")
SDK_DIR = os.path.join(todo_test.SOURCE_DIR, "tests", "sdk-js")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
APP_ID = "sdkapp"
TOPICS = ("sdk-orders", "sdk-retry", "sdk-drop", "sdk-dlq", "sdk-raw", "sdk-routed")
# sdk_check.js runs this many checks; fewer would mean some never ran.
EXPECTED_CHECKS = 21
DAPR_TOKEN = "sdk-dapr-token"
APP_TOKEN = "sdk-app-token"

RESOURCES = {
    "pubsub.yaml": """apiVersion: dapr.io/v1alpha1
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
""",
    "statestore.yaml": """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.postgresql
  version: v2
  metadata:
  - name: connectionString
    value: "{state_url}"
""",
    "resiliency.yaml": """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: sdk-retries
spec:
  policies:
    retries:
      fast:
        policy: constant
        duration: 100ms
        maxRetries: 3
  targets:
    components:
      pubsub:
        inbound:
          retry: fast
""",
}


def npm_ci():
    """npm ci in tests/sdk-js unless node_modules was installed from this very package-lock.json
    (a stamp holds its SHA-256). Serialised by a lock, so two test runs do not install at once."""
    with open(os.path.join(SDK_DIR, "package-lock.json"), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(SDK_DIR, "node_modules", ".installed-lock-sha256")
    with open("/tmp/todo-sdk-js-npm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp) as f:
                if f.read().strip() == digest:
                    return
        except FileNotFoundError:
            pass
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                           cwd=SDK_DIR, capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            raise AssertionError(f"npm ci failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        with open(stamp, "w") as f:
            f.write(digest + "\n")


class KafkaMock:
    """kafka-mock with the SDK's topics, up once its bootstrap file exists."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-sdk-kafka-", dir="/tmp")
        path = os.path.join(self.dir, "bootstrap")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        args = [KAFKA_MOCK, "--bootstrap-file", path]
        for t in TOPICS:
            args += ["--topic", f"{t}:1"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)

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


@unittest.skipUnless(os.path.exists(SIDECAR) and os.path.exists(KAFKA_MOCK),
                     "dapr-sidecar or kafka-mock is not built")
class JavaScriptSdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("node", "npm"):
            if not shutil.which(tool):
                raise AssertionError(
                    f"{tool} is not installed: the test needs Node.js ≥ 18 with npm "
                    "(scripts/deps.sh installs Debian's nodejs; npm comes with NodeSource's "
                    "nodejs, or from Debian's npm package)")
        npm_ci()
        cls.cluster = todo_test.PgCluster()
        cls.kafka = None
        cls.proc = None
        cls.tmp = tempfile.mkdtemp(prefix="todo-sdk-js-", dir="/tmp")
        try:
            cls.state_url = cls.cluster.create_db("sdkstate")
            cls.jobs_url = cls.cluster.create_db("sdkjobs")
            cls.kafka = KafkaMock()
            resources = os.path.join(cls.tmp, "resources")
            os.makedirs(resources)
            for name, text in RESOURCES.items():
                with open(os.path.join(resources, name), "w") as f:
                    f.write(text.format(brokers=cls.kafka.bootstrap, state_url=cls.state_url))
            cls.app_port = free_port()
            cls.port = free_port()
            cls.log_path = os.path.join(cls.tmp, "sidecar.log")
            cls.log = open(cls.log_path, "wb")
            env = {k: v for k, v in os.environ.items() if k not in ("NAMESPACE",)}
            env.update({"DAPR_API_TOKEN": DAPR_TOKEN, "APP_API_TOKEN": APP_TOKEN})
            cls.proc = subprocess.Popen(
                [SIDECAR, "--app-id", APP_ID, "--app-port", str(cls.app_port),
                 "--dapr-http-port", str(cls.port), "--resources-path", resources,
                 "--scheduler-database-url", cls.jobs_url, "--log-level", "debug"],
                stdout=cls.log, stderr=cls.log, env=env)
            wait_until(cls._outbound_ready, 30 * SLOW, what="sidecar /v1.0/healthz/outbound")
        except BaseException:
            cls._close()
            raise

    @classmethod
    def _outbound_ready(cls):
        if cls.proc.poll() is not None:
            raise AssertionError(f"dapr-sidecar exited with {cls.proc.returncode}:\n"
                                 + cls.logs()[-3000:])
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=5)
        try:
            conn.request("GET", "/v1.0/healthz/outbound")
            return conn.getresponse().status == 204
        finally:
            conn.close()

    @classmethod
    def logs(cls):
        with open(cls.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    @classmethod
    def _close(cls):
        rc = None
        if cls.proc is not None and cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
            try:
                rc = cls.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait()
                rc = "timeout"
        elif cls.proc is not None:
            rc = cls.proc.returncode
        if cls.proc is not None:
            cls.log.close()
        if cls.kafka:
            cls.kafka.close()
        cls.cluster.close()
        return rc

    @classmethod
    def tearDownClass(cls):
        rc = cls._close()
        logs = cls.logs()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        problems = [line for line in logs.splitlines()
                    if any(m in line for m in SANITIZER_MARKS) or '"level":"error"' in line]
        if rc != 0 or problems:
            raise AssertionError(f"dapr-sidecar exit {rc}; problems:\n" + "\n".join(problems[:20]))

    def test_sdk_client_and_server(self):
        env = dict(os.environ)
        env.update({"SDK_DAPR_HTTP_PORT": str(self.port), "SDK_APP_PORT": str(self.app_port),
                    "SDK_APP_ID": APP_ID, "DAPR_API_TOKEN": DAPR_TOKEN,
                    "APP_API_TOKEN": APP_TOKEN, "SDK_WAIT_MS": str(int(60000 * SLOW))})
        r = subprocess.run(["node", os.path.join(SDK_DIR, "sdk_check.js")], cwd=SDK_DIR, env=env,
                           capture_output=True, text=True, timeout=240 * SLOW)
        out = r.stdout + r.stderr
        print(r.stdout)
        self.assertEqual(r.returncode, 0, out[-8000:])
        m = re.search(r"^(\d+) checks, (\d+) failed$", r.stdout, re.M)
        self.assertTrue(m, out[-4000:])
        self.assertEqual(int(m.group(2)), 0, out[-8000:])
        self.assertEqual(int(m.group(1)), EXPECTED_CHECKS, out[-4000:])
        self.assertEqual(r.stdout.count("\nok - ") + r.stdout.startswith("ok - "),
                         EXPECTED_CHECKS, r.stdout)
        self.assertNotIn("not ok", r.stdout)

        # What the SDK's calls left in the state.postgresql v2 table (keys prefixed appid||).
        rows = dict(self.cluster.psql("SELECT key, convert_from(value, 'UTF8') FROM state "
                                      "ORDER BY key", "sdkstate"))
        self.assertEqual(json.loads(rows.pop(f"{APP_ID}||sdk-kept")), {"kept": True})
        self.assertEqual(json.loads(rows.pop(f"{APP_ID}||sdk-t1")), "one")
        self.assertEqual(json.loads(rows.pop(f"{APP_ID}||sdk-ttl")), 1)
        self.assertEqual(rows, {})  # sdk-a and sdk-gone were deleted
        self.assertEqual(self.cluster.scalar(
            f"SELECT expires_at > now() + interval '3000 seconds' FROM state "
            f"WHERE key = '{APP_ID}||sdk-ttl'", "sdkstate"), "t")
        # The jobs are gone: the one-shot after its trigger, the repeating one deleted.
        self.assertEqual(self.cluster.scalar("SELECT count(*) FROM dapr_scheduler.jobs",
                                             "sdkjobs"), "0")
        # The sidecar answered the SDK's calls with the token and sent its own to the app.
        logs = self.logs()
        self.assertIn("app channel ready: 6 subscriptions", logs)


if __name__ == "__main__":
    todo_test.run()
