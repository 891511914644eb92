"""The backend's life: configuration errors at start-up, a PostgreSQL restart while it runs
(503 while the database is away, working again after), and graceful shutdown on SIGTERM
(in-flight requests finish, exit 0; a second signal exits at once)."""

import os
import signal
import subprocess
import threading
import time

import todo_test
from todo_test import wait_until, SLOW

# Lines a backend may log at error level while its database is away.
DB_DOWN_ERRORS = ("database", "Database", "connection", "Connection", "postgres", "PostgreSQL",
                  "libpq", "server closed", "terminating", "db", "reconnect")


TABLE_LOCK = "LOCK TABLE backend.tasks IN ACCESS EXCLUSIVE MODE"


class Lifecycle(todo_test.BackendTestCase):

    allowed_errors = DB_DOWN_ERRORS

    def extra_backend(self, **env):
        svc = todo_test.start_backend(self.db_url, allowed_errors=DB_DOWN_ERRORS, **env)
        self.addCleanup(lambda: svc.proc.poll() is None and svc.stop(signal.SIGKILL))
        return svc

    def run_binary(self, args, env, timeout=30):
        full = dict(os.environ)
        full.update(env)
        return subprocess.run([os.path.join(todo_test.BIN_DIR, "todo-backend")] + args,
                              env=full, capture_output=True, text=True, timeout=timeout * SLOW)

    def waiting_on_lock(self):
        return int(self.scalar("SELECT count(*) FROM pg_stat_activity "
                               "WHERE wait_event_type = 'Lock' AND query ILIKE '%tasks%'"))

    # --- configuration ----------------------------------------------------------------------

    def test_configuration_errors_exit_2(self):
        good = todo_test.backend_env(self.db_url, PORT=todo_test.free_port())
        for change in ({"DATABASE_URL": None}, {"JWT_SECRET": None},
                       {"JWT_SECRET": "too-short-secret"}, {"PORT": "not-a-port"},
                       {"PORT": "70000"}, {"THREADS": "many"}, {"THREADS": "-2"},
                       {"MAX_BODY_BYTES": "-1"}, {"MAX_BODY_BYTES": "lots"},
                       {"LOG_LEVEL": "chatty"}):
            env = dict(good)
            for k, v in change.items():
                if v is None:
                    env.pop(k)
                else:
                    env[k] = v
            run_env = dict(os.environ)
            for k in ("DATABASE_URL", "JWT_SECRET", "PORT", "THREADS", "MAX_BODY_BYTES",
                      "LOG_LEVEL"):
                run_env.pop(k, None)
            run_env.update(env)
            try:
                r = subprocess.run([os.path.join(todo_test.BIN_DIR, "todo-backend")],
                                   env=run_env, capture_output=True, text=True,
                                   timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.fail(f"{change}: the backend started instead of exiting 2")
            self.assertEqual(r.returncode, 2, f"{change}: {r.stderr[-2000:]}")
            key = next(iter(change))
            self.assertIn(key, r.stderr + r.stdout, f"{change}: the message names no variable")
            self.assertNotIn(todo_test.JWT_SECRET, r.stderr + r.stdout, "the secret is printed")

    def test_help_version_check_config(self):
        env = todo_test.backend_env(self.db_url, PORT=todo_test.free_port())
        r = self.run_binary(["--help"], env)
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("DATABASE_URL", r.stdout + r.stderr)
        r = self.run_binary(["--version"], env)
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout, r"\d+\.\d+\.\d+")
        r = self.run_binary(["--check-config"], env)
        self.assertEqual(r.returncode, 0, r)
        self.assertNotIn(todo_test.JWT_SECRET, r.stdout + r.stderr, "the secret is printed")
        r = self.run_binary(["--check-config"], dict(env, JWT_SECRET="short"))
        self.assertEqual(r.returncode, 2, r)

    # --- PostgreSQL restart -----------------------------------------------------------------

    def test_postgres_restart(self):
        api = self.new_user()
        t = api.create_task(title="survives")
        self.cluster.stop()
        try:
            # While the database is away every request gets a clean 503, on every loop thread.
            for i in range(8):
                for method, path, body in (("GET", "/tasks", None),
                                           ("POST", "/tasks", {"title": "lost"}),
                                           ("GET", f"/tasks/{t['id']}", None),
                                           ("PATCH", f"/tasks/{t['id']}", {"title": "lost"})):
                    r = api.request(method, path, body=body, timeout=15 * SLOW,
                                    headers={"Idempotency-Key": f"down-{i}"}
                                    if method == "POST" else None)
                    self.assertProblem(r, 503, "UNAVAILABLE")
            r = self.backend.request("GET", "/readyz")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(self.backend.request("GET", "/healthz").status, 200)
            self.assertIsNone(self.backend.proc.poll(), "the backend died with the database")
        finally:
            self.cluster.start()

        def works():
            return api.get(f"/tasks/{t['id']}").status == 200
        wait_until(works, timeout=30 * SLOW, what="the backend working after the restart")
        # Both loop threads reconnect: many fresh connections all succeed.
        for i in range(20):
            r = api.get("/tasks")
            if r.status == 503:
                wait_until(lambda: api.get("/tasks").status == 200, timeout=30 * SLOW,
                           what="every loop thread reconnecting")
                r = api.get("/tasks")
            self.assertEqual(r.status, 200, r)
        wait_until(lambda: self.backend.request("GET", "/readyz").status == 200,
                   timeout=30 * SLOW, what="/readyz after the restart")
        # Writes work and nothing from the outage was stored.
        n = api.patch(f"/tasks/{t['id']}", {"title": "after"})
        self.assertTaskResponse(n, version=2, title="after")
        titles = [x["title"] for x in api.list()["items"]]
        self.assertEqual(titles, ["after"])
        # A key used while the database was away was never recorded.
        r = api.post("/tasks", {"title": "lost"}, headers={"Idempotency-Key": "down-0"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(int(self.scalar(f"SELECT count(*) FROM backend.outbox o JOIN "
                                         f"backend.tasks x ON x.id::text = o.partition_key "
                                         f"WHERE x.user_id = '{api.user}'")), 3)

    def test_starts_before_the_database(self):
        """Started while PostgreSQL is down, the backend is not ready; once it is up, it is."""
        self.cluster.stop()
        try:
            svc = todo_test.Service("todo-backend", todo_test.backend_env(self.db_url),
                                    wait_ready=False, allowed_errors=DB_DOWN_ERRORS)
            self.addCleanup(lambda: svc.proc.poll() is None and svc.stop(signal.SIGKILL))

            def answered_not_ready():
                if svc.proc.poll() is not None:
                    return "exited"
                return svc.request("GET", "/readyz").status == 503
            state = wait_until(answered_not_ready, timeout=30 * SLOW, what="/readyz 503 or exit")
        finally:
            self.cluster.start()
        if state == "exited":
            # Exiting non-zero when the database is unreachable at start-up is acceptable.
            self.assertNotEqual(svc.proc.returncode, 0)
            return
        svc.wait_ready(timeout=60 * SLOW)
        api = todo_test.Api(svc, "early-bird")
        self.assertEqual(api.post("/tasks", {"title": "late db"}).status, 201)
        self.assertEqual(svc.stop(), 0)

    # --- shutdown ---------------------------------------------------------------------------

    def test_sigterm_exits_zero(self):
        svc = self.extra_backend()
        api = todo_test.Api(svc, "sig")
        api.create_task(title="before shutdown")
        rc = svc.stop(signal.SIGTERM, timeout=30 * SLOW)
        self.assertEqual(rc, 0, svc.logs()[-2000:])
        self.assertEqual(svc.problems(), [])

    def test_sigint_exits_zero(self):
        svc = self.extra_backend()
        self.assertEqual(svc.request("GET", "/readyz").status, 200)
        self.assertEqual(svc.stop(signal.SIGINT, timeout=30 * SLOW), 0, svc.logs()[-2000:])

    def test_sigterm_drains_in_flight_requests(self):
        svc = self.extra_backend()
        api = todo_test.Api(svc, "drain")
        t = api.create_task(title="in flight")
        lock = todo_test.HeldLock(self.cluster, TABLE_LOCK)
        result = {}

        def slow_patch():
            result["r"] = api.patch(f"/tasks/{t['id']}", {"title": "finished"},
                                    timeout=60 * SLOW)
        worker = threading.Thread(target=slow_patch)
        try:
            worker.start()
            wait_until(lambda: self.waiting_on_lock() >= 1, timeout=15 * SLOW,
                       what="the PATCH waiting for the lock")
            logged = len(svc.logs())
            svc.proc.send_signal(signal.SIGTERM)
            wait_until(lambda: "shut" in svc.logs()[logged:].lower(), timeout=10 * SLOW,
                       what="the backend logging its shutdown")
            self.assertIsNone(svc.proc.poll(), "exited with a request in flight")
        finally:
            lock.release()
        worker.join(60 * SLOW)
        self.assertFalse(worker.is_alive())
        self.assertTaskResponse(result["r"], version=2, title="finished")
        svc.proc.wait(30 * SLOW)
        svc.log.close()
        self.assertEqual(svc.proc.returncode, 0, svc.logs()[-2000:])
        self.assertEqual(self.scalar(f"SELECT title FROM backend.tasks WHERE id = {t['id']}"),
                         "finished")

    def test_second_signal_exits_at_once(self):
        svc = self.extra_backend()
        api = todo_test.Api(svc, "impatient")
        t = api.create_task(title="stuck")
        lock = todo_test.HeldLock(self.cluster, TABLE_LOCK)
        worker = threading.Thread(target=lambda: self.swallow(
            lambda: api.patch(f"/tasks/{t['id']}", {"title": "never"}, timeout=60 * SLOW)))
        try:
            worker.start()
            wait_until(lambda: self.waiting_on_lock() >= 1, timeout=15 * SLOW,
                       what="the PATCH waiting for the lock")
            logged = len(svc.logs())
            svc.proc.send_signal(signal.SIGTERM)
            # Two signals sent back to back may merge into one pending signal: wait until the
            # first has been taken (the backend logs that it is shutting down).
            wait_until(lambda: "shut" in svc.logs()[logged:].lower(), timeout=10 * SLOW,
                       what="the backend logging its shutdown")
            self.assertIsNone(svc.proc.poll(), "exited with a request in flight")
            svc.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            svc.proc.wait(30 * SLOW)
            # Well before the drain deadline (SHUTDOWN_DRAIN_SECONDS, 10 s by default).
            self.assertLess(time.monotonic() - started, 5 * SLOW)
            svc.log.close()
        finally:
            lock.release()
            worker.join(60 * SLOW)

    @staticmethod
    def swallow(fn):
        try:
            fn()
        except OSError:
            pass


if __name__ == "__main__":
    todo_test.run()
