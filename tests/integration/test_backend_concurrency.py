"""Concurrent writers and retried POSTs: two PATCHes with the same If-Match (exactly one wins),
concurrent PATCHes without one (no lost update), and Idempotency-Key replay (the first response,
nothing created twice), also when the retries race."""

import threading

import todo_test
from todo_test import run_concurrently

ROUNDS = 12


class Concurrency(todo_test.BackendTestCase):

    def outbox_count(self, task_id):
        return int(self.scalar(f"SELECT count(*) FROM backend.outbox "
                               f"WHERE partition_key = '{task_id}'"))

    # --- optimistic concurrency -------------------------------------------------------------

    def test_same_if_match_exactly_one_wins(self):
        api = self.new_user()
        t = api.create_task(title="contended")
        p = f"/tasks/{t['id']}"
        version = t["version"]
        for i in range(ROUNDS):
            etag = f'"{version}"'
            a, b = run_concurrently(
                lambda: api.patch(p, {"title": f"A{i}"}, headers={"If-Match": etag}),
                lambda: api.patch(p, {"description": f"B{i}"}, headers={"If-Match": etag}))
            statuses = sorted([a.status, b.status])
            self.assertEqual(statuses, [200, 412], f"round {i}: {a!r} {b!r}")
            winner, loser = (a, b) if a.status == 200 else (b, a)
            self.assertProblem(loser, 412, "PRECONDITION_FAILED")
            self.assertTaskResponse(winner, version=version + 1)
            version += 1
            now = api.task(t["id"])
            self.assertEqual(now, winner.json, f"round {i}: the loser changed the task")
        self.assertEqual(version, 1 + ROUNDS)
        self.assertEqual(self.outbox_count(t["id"]), 1 + ROUNDS)

    def test_same_if_match_put_against_delete(self):
        api = self.new_user()
        for i in range(4):
            t = api.create_task(title=f"race{i}")
            p = f"/tasks/{t['id']}"
            a, b = run_concurrently(
                lambda: api.put(p, {"title": "put"}, headers={"If-Match": '"1"'}),
                lambda: api.delete(p, headers={"If-Match": '"1"'}))
            # Either the replacement wins and the delete is stale, or the delete wins and the
            # replacement finds nothing.
            self.assertIn(sorted([a.status, b.status]), ([200, 412], [204, 404]), f"{a!r} {b!r}")
            rows = self.outbox_count(t["id"])
            self.assertEqual(rows, 2, "one event for the create and one for the winner")

    def test_concurrent_patches_without_if_match_lose_nothing(self):
        api = self.new_user()
        t = api.create_task(title="shared")
        p = f"/tasks/{t['id']}"
        for i in range(ROUNDS):
            a, b = run_concurrently(lambda: api.patch(p, {"title": f"title {i}"}),
                                    lambda: api.patch(p, {"description": f"desc {i}"}))
            self.assertEqual((a.status, b.status), (200, 200), f"{a!r} {b!r}")
            self.assertEqual(sorted([a.json["version"], b.json["version"]]),
                             [1 + 2 * i + 1, 1 + 2 * i + 2])
            now = api.task(t["id"])
            self.assertEqual((now["title"], now["description"]), (f"title {i}", f"desc {i}"))
        self.assertEqual(self.outbox_count(t["id"]), 1 + 2 * ROUNDS)

    def test_concurrent_toggles_all_count(self):
        api = self.new_user()
        t = api.create_task(title="flip")
        p = f"/tasks/{t['id']}/complete"
        results = run_concurrently(*[lambda: api.patch(p) for _ in range(6)])
        self.assertEqual([r.status for r in results], [200] * 6, results)
        self.assertEqual(sorted(r.json["version"] for r in results), list(range(2, 8)))
        now = api.task(t["id"])
        self.assertEqual(now["version"], 7)
        self.assertFalse(now["completed"])

    # --- a slow request does not hold up the others ------------------------------------------

    def test_request_waiting_on_a_lock_stalls_no_other_request(self):
        api = self.new_user()
        busy = api.create_task(title="locked elsewhere")
        free = api.create_task(title="free")
        lock = todo_test.HeldLock(
            self.cluster, f"SELECT id FROM backend.tasks WHERE id = {busy['id']} FOR UPDATE")
        result = {}

        def blocked_patch():
            result["r"] = api.patch(f"/tasks/{busy['id']}", {"title": "after the lock"},
                                    timeout=60)
        worker = threading.Thread(target=blocked_patch)
        stalled = []
        try:
            worker.start()
            todo_test.wait_until(lambda: todo_test.waiting_on_locks(self.cluster) >= 1,
                                 timeout=15, what="the PATCH waiting for the row lock")
            # Fresh connections land on every loop thread; each must be answered promptly.
            for i in range(10):
                for what, call in (("GET /healthz",
                                    lambda: self.backend.request("GET", "/healthz", timeout=2)),
                                   ("GET another task",
                                    lambda: api.get(f"/tasks/{free['id']}", timeout=2))):
                    try:
                        r = call()
                        if r.status != 200:
                            stalled.append(f"{what}: {r!r}")
                    except OSError as e:
                        stalled.append(f"{what}: {e!r}")
        finally:
            lock.release()
            worker.join(60)
        self.assertEqual(stalled, [], "requests held up by another request waiting on a lock")
        self.assertIn(result["r"].status, (200, 503), result["r"])

    # --- Idempotency-Key --------------------------------------------------------------------

    def test_replayed_create(self):
        api = self.new_user()
        h = {"Idempotency-Key": "create-1"}
        body = {"title": "once", "priority": "high"}
        first = api.post("/tasks", body, headers=h)
        t = self.assertTaskResponse(first, 201, title="once", version=1)
        before = self.snapshot()
        for _ in range(3):
            again = api.post("/tasks", body, headers=h)
            self.assertEqual(again.status, 201, again)
            self.assertEqual(again.json, first.json)
            self.assertEqual(again.header("Location"), first.header("Location"))
            self.assertEqual(again.header("ETag"), first.header("ETag"))
        self.assertUnchanged(before, "by replays")
        self.assertEqual([x["id"] for x in api.list()["items"]], [t["id"]])
        # The same key with another body.
        r = api.post("/tasks", {"title": "different"}, headers=h)
        self.assertProblem(r, 422, "VALIDATION_ERROR")
        self.assertUnchanged(before, "by a reused key")
        # A replay still answers with the first response after the task changed.
        api.patch(f"/tasks/{t['id']}", {"title": "changed"})
        again = api.post("/tasks", body, headers=h)
        self.assertEqual((again.status, again.json), (201, first.json))
        self.assertEqual(api.task(t["id"])["title"], "changed")

    def test_keys_are_per_user(self):
        a, b = self.new_user(), self.new_user()
        h = {"Idempotency-Key": "shared-key"}
        ra = a.post("/tasks", {"title": "same"}, headers=h)
        rb = b.post("/tasks", {"title": "same"}, headers=h)
        self.assertEqual((ra.status, rb.status), (201, 201))
        self.assertNotEqual(ra.json["id"], rb.json["id"])
        self.assertEqual(rb.json["user_id"], b.user)
        self.assertEqual(len(b.list()["items"]), 1)

    def test_without_key_each_post_creates(self):
        api = self.new_user()
        api.post("/tasks", {"title": "dup"})
        api.post("/tasks", {"title": "dup"})
        self.assertEqual(len(api.list()["items"]), 2)

    def test_replayed_complete(self):
        api = self.new_user()
        t = api.create_task(title="done once")
        p = f"/tasks/{t['id']}"
        h = {"Idempotency-Key": "complete-1"}
        first = api.post(p + "/complete", headers=h)
        self.assertTaskResponse(first, completed=True, version=2)
        self.assertTaskResponse(api.post(p + "/reopen"), completed=False, version=3)
        before = self.snapshot()
        again = api.post(p + "/complete", headers=h)
        self.assertEqual((again.status, again.json), (200, first.json))
        self.assertEqual(again.header("ETag"), '"2"')
        self.assertUnchanged(before, "by a replayed complete")
        self.assertFalse(api.task(t["id"])["completed"])

    def test_replayed_snooze_category_and_tag(self):
        api = self.new_user()
        t = api.create_task(title="s", due_at="2031-01-01T00:00:00Z")
        for path, body in ((f"/tasks/{t['id']}/snooze", {"minutes": 30}),
                           ("/categories", {"name": "idem"}), ("/tags", {"name": "idem"})):
            h = {"Idempotency-Key": f"k-{path}"}
            first = api.post(path, body, headers=h)
            self.assertIn(first.status, (200, 201), first)
            before = self.snapshot()
            again = api.post(path, body, headers=h)
            self.assertEqual((again.status, again.json), (first.status, first.json), path)
            self.assertEqual(again.header("Location"), first.header("Location"))
            self.assertUnchanged(before, f"by a replayed POST {path}")

    def test_concurrent_retries_create_once(self):
        api = self.new_user()
        for i in range(5):
            h = {"Idempotency-Key": f"race-{i}"}
            body = {"title": f"raced {i}"}
            results = run_concurrently(*[lambda: api.post("/tasks", body, headers=h)
                                         for _ in range(3)])
            self.assertEqual([r.status for r in results], [201] * 3, results)
            self.assertEqual(len({r.json["id"] for r in results}), 1, results)
        titles = sorted(x["title"] for x in api.list()["items"])
        self.assertEqual(titles, [f"raced {i}" for i in range(5)])
        self.assertEqual(int(self.scalar(
            f"SELECT count(*) FROM backend.outbox o JOIN backend.tasks t "
            f"ON t.id::text = o.partition_key WHERE t.user_id = '{api.user}'")), 5)

    def test_key_expires_after_a_day(self):
        api = self.new_user()
        h = {"Idempotency-Key": "old-key"}
        first = api.post("/tasks", {"title": "day one"}, headers=h)
        self.assertEqual(first.status, 201)
        self.sql(f"UPDATE backend.idempotency_keys SET created_at = now() - interval '25 hours' "
                 f"WHERE user_id = '{api.user}'")
        second = api.post("/tasks", {"title": "day one"}, headers=h)
        self.assertEqual(second.status, 201, second)
        self.assertNotEqual(second.json["id"], first.json["id"])
        self.assertEqual(len(api.list()["items"]), 2)


if __name__ == "__main__":
    todo_test.run()
