"""The outbox relay with two backend replicas on one database, each with its own sidecar: one
relay holds the lead and publishes, the other stands by; every change reaches a consumer once and
in order; when the leader is killed the other takes over and nothing is lost; published rows are
deleted after the retention period; on SIGTERM a replica publishes what is pending first."""

import re
import signal
import threading
import uuid

import stack
import todo_test
from sidecar_app import SidecarApp
from todo_test import SLOW, wait_until

LEADER = re.compile(r'^outbox_relay_leader\{table="backend.outbox"\} (\d+)', re.M)


def leader(svc):
    try:
        m = LEADER.search(svc.request("GET", "/metrics").body)
    except OSError:
        return None
    return int(m.group(1)) if m else None


class OutboxRelay(todo_test.ServiceTestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = stack.Stack()
        try:
            cls.probe = SidecarApp()
            cls.probe.subscribe(200, [{"pubsubname": "pubsub", "topic": "task-events",
                                       "route": "/task-events"}])
            cls.probe_sidecar = cls.stack.sidecar("probe", app_port=cls.probe.port)
            cls.probe_sidecar.wait_healthy()
            env = {"OUTBOX_RETENTION_SECONDS": "2"}
            cls.a, cls.a_sidecar = cls.stack.backend(env=env)
            cls.b, cls.b_sidecar = cls.stack.backend(env=env)
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            bad = [b for b in cls.stack.stop_all() if b[1] != -signal.SIGKILL]
            problems = cls.stack.problems()
            if bad or problems:
                raise AssertionError(f"exits {bad}; problems:\n" + "\n".join(problems[:20]))
        finally:
            cls.probe.close()
            cls.stack.close()

    def events_of(self, task_id):
        return [r.json() for r in self.probe.requests("/task-events")
                if r.json()["subject"] == str(task_id)]

    def change_tasks(self, api, tasks, rounds):
        for n in range(rounds):
            for t in tasks:
                self.assertEqual(api.patch(f"/tasks/{t['id']}", {"description": f"{n}"}).status,
                                 200)

    def assert_complete(self, tasks, versions):
        for t in tasks:
            evs = self.events_of(t["id"])
            got = [e["data"]["version"] for e in evs]
            self.assertEqual(got, list(range(1, versions + 1)), f"task {t['id']}: {got}")

    def test_one_leader_then_failover(self):
        wait_until(lambda: sorted([leader(self.a), leader(self.b)]) == [0, 1], 30 * SLOW,
                   what="one relay in the lead")
        lead, standby = (self.a, self.b) if leader(self.a) == 1 else (self.b, self.a)
        # Both replicas take requests; only the leader publishes, each change once, in order.
        apis = [todo_test.Api(svc, "olga") for svc in (self.a, self.b)]
        tasks = [apis[i % 2].create_task(title=f"T{i} {uuid.uuid4().hex[:6]}") for i in range(6)]
        for n in range(5):
            for i, t in enumerate(tasks):
                self.assertEqual(apis[(i + n) % 2].patch(f"/tasks/{t['id']}",
                                                         {"description": f"{n}"}).status, 200)
        wait_until(lambda: all(len(self.events_of(t["id"])) >= 6 for t in tasks), 30 * SLOW,
                   what="every change at the consumer")
        self.assert_complete(tasks, 6)
        self.assertEqual(leader(standby), 0)

        # The leader dies (its session, and so its lock, with it): the standby takes over.
        lead.proc.kill()
        lead.proc.wait()
        self.change_tasks(todo_test.Api(standby, "olga"), tasks, 3)
        wait_until(lambda: leader(standby) == 1, 30 * SLOW, what="the standby to take the lead")
        wait_until(lambda: all(len(self.events_of(t["id"])) >= 9 for t in tasks), 30 * SLOW,
                   what="the changes after the failover")
        self.assert_complete(tasks, 9)
        self.assertEqual(int(self.stack.cluster.scalar(
            "SELECT count(*) FROM backend.outbox WHERE published_at IS NULL", "todo")), 0)

        # Published rows go after the retention period (2 s here).
        wait_until(lambda: int(self.stack.cluster.scalar(
            "SELECT count(*) FROM backend.outbox", "todo")) == 0, 30 * SLOW,
            what="the published rows to be deleted")
        self.assertIn("rows published more than 2 s ago", standby.logs())

        # SIGTERM while changes are being made: the HTTP server finishes the requests in flight,
        # then the relay publishes their events before the process ends.
        api = todo_test.Api(standby, "olga")
        results = []

        def burst():
            for n in range(20):
                try:
                    results.append(api.patch(f"/tasks/{tasks[0]['id']}",
                                             {"description": f"last {n}"}).status)
                except OSError:
                    break
        worker = threading.Thread(target=burst)
        worker.start()
        wait_until(lambda: len(results) >= 3, 30 * SLOW, what="the burst to start")
        self.assertEqual(standby.stop(), 0)
        worker.join(30)
        self.assertRegex(standby.logs(), r"relay for backend.outbox stopped")
        self.assertEqual(int(self.stack.cluster.scalar(
            "SELECT count(*) FROM backend.outbox WHERE published_at IS NULL", "todo")), 0)
        done = results.count(200)
        wait_until(lambda: len(self.events_of(tasks[0]["id"])) >= 9 + done, 30 * SLOW,
                   what="the events of the last changes")
        self.assert_complete(tasks[:1], 9 + done)

if __name__ == "__main__":
    todo_test.run()
