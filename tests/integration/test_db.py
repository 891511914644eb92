"""common/src/db.c against a real PostgreSQL cluster: runs the C checks of db_check
(tests/integration/db_check.c), then its restart probe while the cluster is stopped and started."""

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import unittest

import todo_test

DB_CHECK = os.path.join(todo_test.BIN_DIR, "..", "tests", "db_check")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
# A query while the server is down must fail well within this (the connect timeout is 5 s).
FAIL_FAST_MS = 1000


def sanitizer_reports(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKS)]


def log_records(text):
    """The JSON log lines of text; any other line fails the test (raw libpq output, say)."""
    records = []
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            continue
        records.append(json.loads(line))
    return records


class Probe:
    """db_check --restart-probe: one command line in, one answer line out."""

    def __init__(self, url):
        self.err_path = tempfile.mktemp(prefix="todo-db-probe-", suffix=".log", dir=todo_test.LOG_DIR)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([DB_CHECK, url, "--restart-probe"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def logs(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self, timeout=10):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"db_check gave no answer within {timeout}s") from None
        if line is None:
            raise AssertionError("db_check exited:\n" + self.logs()[-3000:])
        return line

    def query(self, timeout=10):
        """(code, milliseconds db_query took, seconds the round trip took)."""
        start = time.monotonic()
        self.send("query")
        words = self.read(timeout).split()
        if len(words) != 3 or words[0] != "query":
            raise AssertionError(f"unexpected answer {words!r}")
        return words[1], int(words[2]), time.monotonic() - start

    def close(self):
        try:
            if self.proc.poll() is None:
                self.send("quit")
                self.proc.stdin.close()
            return self.proc.wait(30)
        finally:
            self.proc.stdout.close()
            self.err.close()
            os.unlink(self.err_path)


class DbTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = todo_test.PgCluster()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_checks(self):
        url = self.cluster.create_db("db_check")
        p = subprocess.run([DB_CHECK, url], capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr[-6000:])
        self.assertRegex(p.stdout, r"^[1-9]\d* checks, 0 failed\n$")
        self.assertEqual(sanitizer_reports(p.stderr), [])
        records = log_records(p.stderr)
        applied = [r["msg"] for r in records if r["msg"].startswith("applied migration")]
        self.assertEqual(applied, ["applied migration 1 (items) to schema db-check",
                                   "applied migration 2 (item_name) to schema db-check",
                                   "applied migration 3 (item_note) to schema db-check",
                                   "applied migration 1 (slow) to schema db_check_concurrent",
                                   "applied migration 2 (second) to schema db_check_concurrent"])
        failures = [r for r in records if r["msg"].startswith("query failed, SQLSTATE ")]
        self.assertIn("23505", {r["msg"].split()[3].rstrip(":") for r in failures})
        # Errors are logged with SQLSTATE and message, never with the parameters.
        self.assertNotIn("Zoë", p.stderr)
        self.assertNotIn("DROP TABLE", p.stderr)

    def test_restart(self):
        url = self.cluster.create_db("db_restart")
        probe = Probe(url)
        try:
            self.assertEqual(probe.read(), "ready OK")
            self.assertEqual(probe.query()[0], "OK")

            # While the server is down every query fails at once: on the lost connection, on a
            # refused reconnection, or within 250 ms of the last attempt without a new one.
            self.cluster.stop()
            try:
                answers = 0
                down_since = time.monotonic()
                while answers < 5 or time.monotonic() - down_since < 1.5:
                    code, took_ms, round_trip = probe.query(timeout=5)
                    self.assertEqual(code, "UNAVAILABLE")
                    self.assertLess(took_ms, FAIL_FAST_MS)
                    self.assertLess(round_trip, 2 * FAIL_FAST_MS / 1000)
                    answers += 1
                down_for = time.monotonic() - down_since
            finally:
                self.cluster.start()
            attempts = probe.logs().count("cannot connect to the database")
            self.assertGreaterEqual(attempts, 2)
            self.assertLessEqual(attempts, down_for / 0.25 + 2)
            self.assertGreater(answers, attempts)

            # Back up: queries succeed again.
            todo_test.wait_until(lambda: probe.query()[0] == "OK", timeout=15,
                                 what="a query after the restart")

            # The connection lost inside a transaction fails it, even though the server is back
            # by the time of the next statement: no silent reconnection mid-transaction.
            probe.send("hold")
            self.assertEqual(probe.read(), "in-tx OK")
            self.cluster.stop()
            self.cluster.start()
            probe.send("continue")
            words = probe.read().split()
            self.assertEqual(words[:3], ["in-tx-query", "UNAVAILABLE", "UNAVAILABLE"])
            self.assertLess(int(words[3]), FAIL_FAST_MS)
            self.assertEqual(probe.read(), "tx UNAVAILABLE")
            # Outside the transaction the next query reconnects at once.
            q = probe.query()
            self.assertEqual(q[0], "OK", probe.logs()[-3000:])

            logs = probe.logs()
            self.assertEqual(sanitizer_reports(logs), [])
            errors = [r for r in log_records(logs) if r["level"] == "error"]
            self.assertEqual(errors, [])
        finally:
            rc = probe.close()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    todo_test.run()
