"""The sidecar's pubsub.redis broker (tests/dapr-sidecar/broker_redis.c) against a real
redis-server started by the test on a free port in a temporary directory: the C scenarios of
redis_broker_check (round trip with metadata, competing consumers, fan-out, a failed message
acknowledged as in Dapr >= 1.17, an overrun one redelivered, configuration errors), redelivery
of a message whose consumer was killed with SIGKILL mid-message, and reconnection after Redis
restarts."""

import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import todo_test

CHECK = os.path.join(todo_test.BIN_DIR, "..", "tests", "redis_broker_check")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
SLOW = todo_test.SLOW


def sanitizer_reports(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


def redis_call(port, *args, timeout=5):
    """One command over RESP; the raw first reply line (enough for PING, XLEN, XPENDING)."""
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


class RedisServer:
    """redis-server on a free 127.0.0.1 port with its files in a temporary directory; append-only
    so that a restart keeps the streams."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="todo-redis-", dir="/tmp")
        self.port = todo_test.free_port()
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--protected-mode", "no"],
            stdout=self.log, stderr=subprocess.STDOUT)
        todo_test.wait_until(self._up, 30, what="redis-server PING")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}")
        return redis_call(self.port, "PING", timeout=1) == "+PONG"

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Consumer:
    """redis_broker_check consume: prints 'got VALUE' per message it handles, 'hanging VALUE'
    before it blocks forever on the hang value."""

    def __init__(self, hostport, topic, group, processing_timeout, redeliver_interval, hang=None):
        args = [CHECK, hostport, "consume", topic, group, processing_timeout, redeliver_interval]
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
                raise AssertionError(f"no {line!r} within {timeout}s; saw {self.seen}; "
                                     f"stderr: {self.logs()[-2000:]}")
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
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            if f and not f.closed:
                f.close()


@unittest.skipUnless(os.path.exists(CHECK), "built without -DTODO_BUILD_SIDECAR=ON")
class RedisBrokerTest(unittest.TestCase):
    def setUp(self):
        self.redis = RedisServer()

    def tearDown(self):
        self.redis.close()

    def scenario(self, name, timeout=120):
        r = subprocess.run([CHECK, self.redis.hostport, name], capture_output=True, text=True,
                           timeout=timeout * SLOW)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, f"{name}:\n{out[-6000:]}")
        self.assertRegex(r.stdout, r"\d+ checks, 0 failed")
        self.assertEqual(sanitizer_reports(out), [], out[-6000:])
        return out

    def publish(self, topic, *values):
        r = subprocess.run([CHECK, self.redis.hostport, "publish", topic, *values],
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_roundtrip_with_metadata(self):
        self.scenario("roundtrip")

    def test_competing_consumers_get_each_message_once(self):
        self.scenario("competing")

    def test_fanout_each_group_gets_all(self):
        self.scenario("fanout")

    def test_failed_message_is_acknowledged(self):
        out = self.scenario("fail")
        self.assertIn("acknowledged (dropped)", out)

    def test_overrun_message_is_redelivered(self):
        out = self.scenario("overrun")
        self.assertIn("left pending for redelivery", out)

    def test_configuration_errors(self):
        out = self.scenario("config")
        # A duration string for redeliverInterval is dropped, as by daprd's Redis component.
        self.assertIn("redeliverInterval '30s' is not a number of milliseconds; ignored", out)

    def test_redelivery_after_kill_9(self):
        """A consumer killed mid-message leaves it pending; another member of the group reclaims
        it once it has been pending longer than processingTimeout."""
        first = Consumer(self.redis.hostport, "killed", "grp", "500ms", "200", hang="m1")
        second = None
        try:
            first.wait_line("subscribed", 30 * SLOW)
            self.publish("killed", "m1")
            first.wait_line("hanging m1", 30 * SLOW)
            self.assertEqual(redis_call(self.redis.port, "XPENDING", "killed", "grp"), "*4")
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(30)
            second = Consumer(self.redis.hostport, "killed", "grp", "500ms", "200")
            second.wait_line("got m1", 30 * SLOW)
            self.publish("killed", "m2")
            second.wait_line("got m2", 30 * SLOW)
            todo_test.wait_until(
                lambda: redis_call(self.redis.port, "XPENDING", "killed", "grp") == "*4"
                and self._pending("killed", "grp") == 0, 10 * SLOW, what="no pending entries")
            self.assertEqual(second.finish(), 0, second.logs())
            self.assertEqual(sanitizer_reports(second.logs()), [])
        finally:
            first.close()
            if second:
                second.close()

    def _pending(self, topic, group):
        """The count of XPENDING's summary form, read over a raw socket."""
        out = b"*3\r\n$8\r\nXPENDING\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(topic), topic.encode(), len(group), group.encode())
        with socket.create_connection(("127.0.0.1", self.redis.port), timeout=5) as s:
            s.sendall(out)
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return int(data.split(b"\r\n")[1][1:])

    def test_consumer_reconnects_after_redis_restart(self):
        c = Consumer(self.redis.hostport, "restart", "grp", "60s", "15000")
        try:
            c.wait_line("subscribed", 30 * SLOW)
            self.publish("restart", "before")
            c.wait_line("got before", 30 * SLOW)
            self.redis.stop()
            self.redis.start()
            self.publish("restart", "after")
            c.wait_line("got after", 30 * SLOW)
            self.assertEqual(c.finish(), 0, c.logs())
            self.assertEqual(sanitizer_reports(c.logs()), [])
            self.assertEqual(c.seen.count("got before"), 1, c.seen)
        finally:
            c.close()


if __name__ == "__main__":
    todo_test.run()
