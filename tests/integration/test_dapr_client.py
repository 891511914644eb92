"""common/src/dapr.c and bus.c against the sidecar double: publish (single, bulk, errors), state
(ETags, first-write, TTL, transactions), jobs (overwrite, get, delete), API tokens and an
unreachable sidecar. The checks are in dapr_check.c; this starts PostgreSQL, kafka-mock and a
sidecar with the repository's components."""

import os
import subprocess
import unittest

import stack
import todo_test

TOKEN = "dapr-api-token-of-the-client-check"
CHECK = os.path.join(os.path.dirname(todo_test.BIN_DIR.rstrip("/")), "tests", "dapr_check")


class DaprClient(unittest.TestCase):

    def test_dapr_check(self):
        s = stack.Stack()
        try:
            sc = s.sidecar("client-check", env={"DAPR_API_TOKEN": TOKEN})
            sc.wait_healthy()
            p = subprocess.run([CHECK, str(sc.port), TOKEN], capture_output=True, text=True,
                               timeout=120 * todo_test.SLOW)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr[-6000:])
            self.assertRegex(p.stdout, r"^[1-9]\d* checks, 0 failed\n$")
            # the one error line is the check of a value that is not JSON
            self.assertEqual(stack._problems(p.stderr, allowed=("is not JSON",)), [])
            self.assertEqual(sc.stop(), 0)
            self.assertEqual(sc.problems(), [])
        finally:
            s.close()


if __name__ == "__main__":
    todo_test.run()
