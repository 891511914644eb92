"""kafka-mock and the sidecar's pubsub.kafka broker (tests/dapr-sidecar/broker_kafka.c): the mock
cluster's life cycle, then the C scenarios of kafka_broker_check against it (round trip, ordering
and retries, a backlog larger than a partition's queue, competing consumers, fan-out,
initialOffset, hand-off on close), and redelivery to
another member of the group after a consumer is killed with SIGKILL mid-message."""

import os
import queue
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

KAFKA_MOCK = os.path.join(todo_test.BIN_DIR, "kafka-mock")
CHECK = os.path.join(todo_test.BIN_DIR, "..", "tests", "kafka_broker_check")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
SLOW = todo_test.SLOW
BOOTSTRAP_RE = re.compile(r"^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$")


def sanitizer_reports(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


class KafkaMock:
    """kafka-mock in a temporary directory, up once its bootstrap file exists."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="todo-kafka-mock-", dir="/tmp")
        self.bootstrap_file = os.path.join(self.dir, "bootstrap")
        self.err_path = os.path.join(self.dir, "stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([KAFKA_MOCK, "--bootstrap-file", self.bootstrap_file,
                                      *args], stdout=subprocess.PIPE, stderr=self.err, text=True)
        todo_test.wait_until(self._up, 30 * SLOW, what="kafka-mock bootstrap file")
        with open(self.bootstrap_file) as f:
            self.bootstrap = f.read().strip()
        self.stdout_line = self.proc.stdout.readline().strip()

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"kafka-mock exited with {self.proc.returncode}: {self.logs()}")
        return os.path.exists(self.bootstrap_file)

    def logs(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=30):
        """SIGTERM; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"kafka-mock did not stop within {timeout}s")
        self.proc.stdout.close()
        self.err.close()
        return self.proc.returncode

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def port_open(hostport):
    host, port = hostport.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2):
        return True


@unittest.skipUnless(os.path.exists(KAFKA_MOCK), "built without -DTODO_BUILD_SIDECAR=ON")
class KafkaMockTest(unittest.TestCase):
    def test_bootstrap_file_and_clean_stop(self):
        mock = KafkaMock("--brokers", "3", "--topic", "orders:5", "--topic", "dlq:1")
        try:
            self.assertRegex(mock.bootstrap, BOOTSTRAP_RE)
            servers = mock.bootstrap.split(",")
            self.assertEqual(len(servers), 3, mock.bootstrap)
            self.assertEqual(mock.stdout_line, mock.bootstrap)
            for s in servers:
                self.assertTrue(port_open(s), s)
            # Written atomically: no temporary file is left next to it.
            self.assertEqual(sorted(f for f in os.listdir(mock.dir) if f.startswith("bootstrap")),
                             ["bootstrap"])
            rc = mock.stop()
            self.assertEqual(rc, 0, mock.logs())
            for s in servers:
                with self.assertRaises(OSError):
                    port_open(s)
            self.assertEqual(sanitizer_reports(mock.logs()), [])
            self.assertNotIn('"level":"error"', mock.logs())
        finally:
            mock.close()

    def test_sigint_also_stops(self):
        mock = KafkaMock()
        try:
            self.assertEqual(len(mock.bootstrap.split(",")), 1)
            mock.proc.send_signal(signal.SIGINT)
            self.assertEqual(mock.proc.wait(30), 0, mock.logs())
        finally:
            mock.close()

    def test_command_line(self):
        r = subprocess.run([KAFKA_MOCK, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--bootstrap-file", r.stdout)
        for bad in (["--brokers", "0"], ["--brokers", "x"], ["--topic", "nopartitions"],
                    ["--topic", "t:0"], ["--frobnicate"]):
            r = subprocess.run([KAFKA_MOCK, *bad], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, f"{bad}: {r.stderr}")
            self.assertTrue(r.stderr, bad)


class Consumer:
    """kafka_broker_check consume: prints 'got VALUE' per message it handles."""

    def __init__(self, bootstrap, topic, group, hang=None):
        args = [CHECK, bootstrap, "consume", topic, group]
        if hang:
            args += ["--hang", hang]
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.seen = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, line, timeout):
        deadline = time.monotonic() + timeout
        while line not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {line!r} within {timeout}s; saw {self.seen}")
            try:
                got = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if got is None:
                raise AssertionError(f"consumer exited before {line!r}; saw {self.seen}; "
                                     f"stderr: {self.logs()[-2000:]}")
            self.seen.append(got)

    def logs(self):
        self.err.seek(0)
        return self.err.read().decode("utf-8", "replace")

    def finish(self, timeout=60):
        """Closes stdin (the consumer stops) and returns its exit status."""
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def close(self):
        """Kills the process if it still runs and releases its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            if f and not f.closed:
                f.close()


@unittest.skipUnless(os.path.exists(CHECK), "built without -DTODO_BUILD_SIDECAR=ON")
class KafkaBrokerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = KafkaMock("--topic", "ord:2", "--topic", "comp:2", "--topic", "fan:2",
                             "--topic", "kill:1", "--topic", "bulk:1")

    @classmethod
    def tearDownClass(cls):
        rc = cls.mock.stop()
        logs = cls.mock.logs()
        cls.mock.close()
        if rc != 0 or sanitizer_reports(logs):
            raise AssertionError(f"kafka-mock exit {rc}: {sanitizer_reports(logs)}")

    def scenario(self, name, timeout=180):
        r = subprocess.run([CHECK, self.mock.bootstrap, name], capture_output=True, text=True,
                           timeout=timeout * SLOW)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, f"{name}:\n{out[-6000:]}")
        self.assertRegex(r.stdout, r"\d+ checks, 0 failed")
        self.assertEqual(sanitizer_reports(out), [], out[-6000:])
        return out

    def test_roundtrip_value_key_headers(self):
        self.scenario("roundtrip")

    def test_partition_order_with_retries(self):
        self.scenario("ordering")

    def test_partition_backlog_pauses_and_resumes(self):
        self.scenario("bulk")

    def test_retries_give_up(self):
        out = self.scenario("giveup")
        self.assertIn("too many failed attempts", out)

    def test_competing_consumers(self):
        out = self.scenario("competing")
        self.assertRegex(out, r"competing: x handled [1-9]\d*, y handled [1-9]\d*")

    def test_fan_out(self):
        self.scenario("fanout")

    def test_initial_offset(self):
        self.scenario("offsets")

    def test_close_mid_message_hands_over(self):
        self.scenario("handoff")

    def test_sigkill_mid_message_redelivers(self):
        a = Consumer(self.mock.bootstrap, "kill", "kill-g", hang="stuck")
        b = None
        try:
            a.wait_line("subscribed", 30 * SLOW)
            r = subprocess.run([CHECK, self.mock.bootstrap, "publish", "kill", "k", "m1", "stuck",
                                "m3"], capture_output=True, text=True, timeout=60 * SLOW)
            self.assertEqual(r.returncode, 0, r.stderr)
            a.wait_line("got stuck", 60 * SLOW)
            self.assertEqual(a.seen.count("got m1"), 1, a.seen)
            self.assertNotIn("got m3", a.seen)  # blocked behind "stuck" on its partition
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(30)
            b = Consumer(self.mock.bootstrap, "kill", "kill-g")
            # The mock notices the dead member after its session timeout (6 s), then rebalances.
            b.wait_line("got m3", 90 * SLOW)
            self.assertEqual(b.seen.count("got stuck"), 1, b.seen)
            self.assertLess(b.seen.index("got stuck"), b.seen.index("got m3"), b.seen)
            self.assertNotIn("got m1", b.seen)  # committed by a before it died
            self.assertEqual(b.finish(), 0, b.logs()[-3000:])
            self.assertEqual(sanitizer_reports(b.logs()), [])
        finally:
            for c in (a, b):
                if c:
                    c.close()


if __name__ == "__main__":
    todo_test.run()
