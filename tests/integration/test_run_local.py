"""The README's run command: scripts/run-local.sh --demo brings the whole system up (PostgreSQL,
kafka-mock, an SMTP server, a sidecar per service, the four services), creates a task whose
reminder is mailed, shows the mail, and stops everything cleanly on Ctrl-C (SIGINT). Runs the
binaries of this build (TODO_NO_BUILD=1) on free ports, with its state in a temporary directory."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

import todo_test
from todo_test import free_port, wait_until


class RunLocal(unittest.TestCase):

    def test_demo(self):
        state = tempfile.mkdtemp(prefix="todo-run-local-", dir="/tmp")
        ports = [free_port() for _ in range(10)]
        env = dict(os.environ, TODO_STATE_DIR=state, TODO_NO_BUILD="1",
                   TODO_BUILD_DIR=os.path.dirname(todo_test.BIN_DIR.rstrip("/")),
                   TODO_PG_PORT=str(ports[0]), TODO_SMTP_PORT=str(ports[1]),
                   TODO_SERVICE_PORTS=" ".join(map(str, ports[2:6])),
                   TODO_SIDECAR_PORTS=" ".join(map(str, ports[6:10])))
        out = []
        p = subprocess.Popen([os.path.join(todo_test.SOURCE_DIR, "scripts", "run-local.sh"),
                              "--demo"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: p.poll() is not None or "Press Ctrl-C to stop." in "".join(out),
                       240, what="the demo to finish")
            text = "".join(out)
            self.assertIsNone(p.poll(), text[-3000:])
            self.assertIn("The system is up", text)
            self.assertIn("run-local: the reminder arrived:", text)
            self.assertRegex(text, r"Subject: Reminder: Demo: stretch your legs")
            self.assertRegex(text, r"To: demo@example\.com")
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(120), 0)
            reader.join(10)
            logs = os.path.join(state, "logs")
            problems = []
            for name in sorted(os.listdir(logs)):
                if name in ("postgresql.log", "smtp.log", "kafka-mock.log"):
                    continue
                with open(os.path.join(logs, name), errors="replace") as f:
                    for line in f:
                        if '"level":"error"' in line or "Sanitizer" in line:
                            problems.append(f"{name}: {line.strip()}")
                        if "second SIGTERM" in line or "second SIGINT" in line:
                            problems.append(f"{name}: stopped without its drain: {line.strip()}")
            self.assertEqual(problems, [])
            with open(os.path.join(logs, "backend.log")) as f:
                self.assertTrue(re.search(r'"msg":"stopped"', f.read()))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                            "-D", os.path.join(state, "pg"), "-m", "immediate", "stop"],
                           capture_output=True)
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    todo_test.run()
