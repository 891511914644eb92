"""The backend's task routes against a real PostgreSQL: create, get, replace, patch, delete,
complete, reopen, toggle, snooze, ETag/If-Match, the health and metrics endpoints, 404/405."""

import time
from datetime import datetime, timezone

import todo_test
from todo_test import parse_time


class TaskRoutes(todo_test.BackendTestCase):

    # --- operations endpoints -------------------------------------------------------------

    def test_health_ready_metrics(self):
        self.assertEqual(self.backend.request("GET", "/healthz").status, 200)
        self.assertEqual(self.backend.request("GET", "/readyz").status, 200)
        api = self.new_user()
        api.get("/tasks")
        r = self.backend.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/plain"), r.headers)
        self.assertIn("# TYPE", r.body)
        self.assertRegex(r.body, r"(?m)^\w+_bucket\{.*le=\"\+Inf\"\} \d+", "no latency histogram")
        self.assertRegex(r.body, r"(?m)^\w+(_total)?\{[^}]*\} [1-9]\d*", "no request counter")

    # --- create and get ---------------------------------------------------------------------

    def test_create_with_defaults_and_get(self):
        api = self.new_user()
        before = time.time()
        r = api.post("/tasks", {"title": "  Buy milk \t"})
        t = self.assertTaskResponse(r, 201, user_id=api.user, title="Buy milk", description="",
                                    completed=False, priority="medium", category=None, tags=[],
                                    due_at=None, remind_at=None, remind_before_minutes=None,
                                    timezone="UTC", recurrence_rule=None, series_id=None,
                                    occurrence=None, series_start_at=None, version=1,
                                    completed_at=None)
        self.assertEqual(r.header("Location"), api.path(f"/tasks/{t['id']}"))
        created = parse_time(t["created_at"]).timestamp()
        self.assertLess(abs(created - before), 30, t)
        self.assertEqual(t["created_at"], t["updated_at"])

        g = api.get(f"/tasks/{t['id']}")
        self.assertEqual(self.assertTaskResponse(g), t)
        row = self.sql(f"SELECT user_id, title, priority, version, completed FROM backend.tasks "
                       f"WHERE id = {t['id']}")
        self.assertEqual(row, [[api.user, "Buy milk", "1", "1", "f"]])

    def test_create_with_every_field(self):
        api = self.new_user()
        cat = api.create_category("Work", "#112233")
        t1 = api.create_tag("zeta", "#aabbcc")
        t2 = api.create_tag("alpha")
        body = {"title": "Quarterly report", "description": "numbers ✓ and words",
                "priority": "urgent", "category_id": cat["id"], "tag_ids": [t1["id"], t2["id"]],
                "due_at": "2031-03-10T17:30:00+02:00", "remind_before_minutes": 90,
                "timezone": "Europe/Berlin", "recurrence_rule": "FREQ=WEEKLY;BYDAY=MO,WE"}
        r = api.post("/tasks", body, headers={"Content-Type": "application/json; charset=utf-8"})
        t = self.assertTaskResponse(r, 201, title="Quarterly report",
                                    description="numbers ✓ and words", priority="urgent",
                                    due_at="2031-03-10T15:30:00Z", remind_at="2031-03-10T14:00:00Z",
                                    remind_before_minutes=90, timezone="Europe/Berlin",
                                    recurrence_rule="FREQ=WEEKLY;BYDAY=MO,WE", version=1)
        self.assertEqual(t["category"], {"id": cat["id"], "name": "Work", "color": "#112233"})
        self.assertEqual([g["id"] for g in t["tags"]], sorted([t1["id"], t2["id"]]))
        self.assertEqual({g["name"] for g in t["tags"]}, {"zeta", "alpha"})
        self.assertEqual(api.task(t["id"]), t)
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.task_tags "
                                     f"WHERE task_id = {t['id']}"), "2")

    def test_create_with_absolute_reminder(self):
        api = self.new_user()
        t = api.create_task(title="call", due_at="2031-01-01T12:00:00Z",
                            remind_at="2031-01-01T09:15:00Z")
        self.assertTask(t, remind_at="2031-01-01T09:15:00Z", remind_before_minutes=None)

    def test_boundaries_accepted(self):
        api = self.new_user()
        t = api.create_task(title="é" * 200, description="ü" * 4000)
        self.assertEqual(t["title"], "é" * 200)
        self.assertEqual(len(t["description"]), 4000)
        tags = [api.create_tag(f"t{i}")["id"] for i in range(10)]
        t = api.create_task(title="ten tags", tag_ids=tags)
        self.assertEqual([g["id"] for g in t["tags"]], sorted(tags))
        t = api.create_task(title="late", due_at="2031-01-01T00:00:00Z", remind_before_minutes=0)
        self.assertEqual(t["remind_at"], "2031-01-01T00:00:00Z")
        t = api.create_task(title="early", due_at="2031-01-01T00:00:00Z",
                            remind_before_minutes=525600)
        self.assertEqual(t["remind_at"], "2030-01-01T00:00:00Z")

    def test_create_time_with_fraction_and_offset(self):
        api = self.new_user()
        t = api.create_task(title="precise", due_at="2031-06-01T08:00:00.250-04:30")
        self.assertEqual(parse_time(t["due_at"]),
                         datetime(2031, 6, 1, 12, 30, 0, 250000, tzinfo=timezone.utc))

    # --- replace and patch ------------------------------------------------------------------

    def full_task(self, api):
        cat = api.create_category(f"c-{api.user}", "#010203")
        tag = api.create_tag(f"g-{api.user}")
        return api.create_task(title="full", description="desc", priority="high",
                               category_id=cat["id"], tag_ids=[tag["id"]],
                               due_at="2031-05-05T10:00:00Z", remind_before_minutes=30,
                               timezone="America/Mexico_City", recurrence_rule="FREQ=DAILY")

    def test_put_replaces_every_field(self):
        api = self.new_user()
        t = self.full_task(api)
        r = api.put(f"/tasks/{t['id']}", {"title": "replaced"})
        n = self.assertTaskResponse(r, 200, id=t["id"], title="replaced", description="",
                                    priority="medium", category=None, tags=[], due_at=None,
                                    remind_at=None, remind_before_minutes=None, timezone="UTC",
                                    recurrence_rule=None, completed=False, version=2,
                                    created_at=t["created_at"])
        self.assertGreaterEqual(parse_time(n["updated_at"]), parse_time(t["updated_at"]))
        self.assertEqual(api.task(t["id"]), n)
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.task_tags "
                                     f"WHERE task_id = {t['id']}"), "0")
        # A replacement needs a title.
        r = api.put(f"/tasks/{t['id']}", {"description": "no title"})
        self.assertProblem(r, 422, "VALIDATION_ERROR", "title")
        self.assertEqual(api.task(t["id"])["version"], 2)

    def test_put_with_every_field(self):
        api = self.new_user()
        t = api.create_task(title="bare")
        cat = api.create_category("Home")
        body = {"title": "dressed", "description": "d", "priority": "low",
                "category_id": cat["id"], "tag_ids": [], "due_at": "2031-02-02T02:02:02Z",
                "remind_at": "2031-02-01T00:00:00Z", "timezone": "Asia/Tokyo",
                "recurrence_rule": "FREQ=MONTHLY;COUNT=3", "completed": True}
        n = self.assertTaskResponse(api.put(f"/tasks/{t['id']}", body), 200, title="dressed",
                                    priority="low", due_at="2031-02-02T02:02:02Z",
                                    remind_at="2031-02-01T00:00:00Z", timezone="Asia/Tokyo",
                                    recurrence_rule="FREQ=MONTHLY;COUNT=3", completed=True,
                                    version=2)
        self.assertEqual(n["category"]["id"], cat["id"])

    def test_patch_changes_only_given_fields(self):
        api = self.new_user()
        t = self.full_task(api)
        r = api.patch(f"/tasks/{t['id']}", {"title": "renamed", "priority": "low"})
        n = self.assertTaskResponse(r, 200, title="renamed", priority="low", version=2)
        for k in TASK_KEYS_UNCHANGED_BY_PATCH:
            self.assertEqual(n[k], t[k], k)

    def test_patch_null_clears_nullable_fields(self):
        api = self.new_user()
        t = self.full_task(api)
        p = f"/tasks/{t['id']}"
        n = self.assertTaskResponse(api.patch(p, {"description": None}), description="",
                                    version=2)
        n = self.assertTaskResponse(api.patch(p, {"recurrence_rule": None}),
                                    recurrence_rule=None, version=3)
        self.assertEqual(n["due_at"], t["due_at"])
        n = self.assertTaskResponse(api.patch(p, {"remind_before_minutes": None}),
                                    remind_before_minutes=None, remind_at=None, version=4)
        n = self.assertTaskResponse(api.patch(p, {"remind_at": "2031-05-05T09:00:00Z"}),
                                    remind_at="2031-05-05T09:00:00Z", version=5)
        n = self.assertTaskResponse(api.patch(p, {"remind_at": None}), remind_at=None, version=6)
        n = self.assertTaskResponse(api.patch(p, {"due_at": None}), due_at=None, version=7)
        n = self.assertTaskResponse(api.patch(p, {"category_id": None}), category=None,
                                    version=8)
        n = self.assertTaskResponse(api.patch(p, {"tag_ids": []}), tags=[], version=9)
        self.assertEqual(n["title"], "full")
        self.assertEqual(n["priority"], "high")
        self.assertEqual(n["timezone"], "America/Mexico_City")
        # Fields that cannot be cleared.
        for field in ("title", "priority", "timezone"):
            self.assertProblem(api.patch(p, {field: None}), 422, "VALIDATION_ERROR", field)
        self.assertEqual(api.task(t["id"]), n)

    def test_patch_clearing_due_at_with_rule_is_refused(self):
        api = self.new_user()
        t = self.full_task(api)
        r = api.patch(f"/tasks/{t['id']}", {"due_at": None})
        self.assertProblem(r, 422, "VALIDATION_ERROR")
        self.assertEqual(api.task(t["id"]), t)

    def test_reminder_offset_follows_due_at(self):
        api = self.new_user()
        t = api.create_task(title="offset", due_at="2031-01-10T10:00:00Z",
                            remind_before_minutes=60)
        self.assertTask(t, remind_at="2031-01-10T09:00:00Z", remind_before_minutes=60)
        n = self.assertTaskResponse(api.patch(f"/tasks/{t['id']}",
                                              {"due_at": "2031-01-12T18:30:00Z"}),
                                    due_at="2031-01-12T18:30:00Z", remind_at="2031-01-12T17:30:00Z",
                                    remind_before_minutes=60, version=2)
        n = self.assertTaskResponse(api.patch(f"/tasks/{t['id']}", {"remind_before_minutes": 15}),
                                    remind_at="2031-01-12T18:15:00Z", remind_before_minutes=15,
                                    version=3)
        # An absolute reminder replaces the offset.
        n = self.assertTaskResponse(api.patch(f"/tasks/{t['id']}",
                                              {"remind_at": "2031-01-11T00:00:00Z"}),
                                    remind_at="2031-01-11T00:00:00Z", remind_before_minutes=None,
                                    version=4)
        self.assertEqual(api.task(t["id"]), n)

    def test_completed_in_patch_and_put(self):
        api = self.new_user()
        t = api.create_task(title="flag")
        n = self.assertTaskResponse(api.patch(f"/tasks/{t['id']}", {"completed": True}),
                                    completed=True, version=2)
        self.assertIsNotNone(n["completed_at"])
        n = self.assertTaskResponse(api.put(f"/tasks/{t['id']}",
                                            {"title": "flag", "completed": False}),
                                    completed=False, completed_at=None, version=3)
        self.assertProblem(api.patch(f"/tasks/{t['id']}", {"completed": "yes"}), 422,
                           "VALIDATION_ERROR", "completed")

    def test_unknown_field_refused(self):
        api = self.new_user()
        t = api.create_task(title="strict")
        self.assertProblem(api.patch(f"/tasks/{t['id']}", {"colour": "red"}), 422,
                           "VALIDATION_ERROR", "colour")
        self.assertProblem(api.post("/tasks", {"title": "x", "done": True}), 422,
                           "VALIDATION_ERROR", "done")
        self.assertEqual(api.list()["items"], [t])

    # --- complete, reopen, toggle, snooze ---------------------------------------------------

    def test_complete_and_reopen(self):
        api = self.new_user()
        t = api.create_task(title="chore")
        p = f"/tasks/{t['id']}"
        before = time.time()
        c = self.assertTaskResponse(api.post(p + "/complete"), completed=True, version=2)
        self.assertLess(abs(parse_time(c["completed_at"]).timestamp() - before), 30)
        # Completing a completed task changes nothing.
        again = self.assertTaskResponse(api.post(p + "/complete"), completed=True, version=2)
        self.assertEqual(again, c)
        o = self.assertTaskResponse(api.post(p + "/reopen"), completed=False, completed_at=None,
                                    version=3)
        again = self.assertTaskResponse(api.post(p + "/reopen"), completed=False, version=3)
        self.assertEqual(again, o)
        self.assertEqual(api.task(t["id"]), o)

    def test_toggle_flips_every_time(self):
        api = self.new_user()
        t = api.create_task(title="switch")
        p = f"/tasks/{t['id']}/complete"
        self.assertTaskResponse(api.patch(p), completed=True, version=2)
        self.assertTaskResponse(api.patch(p), completed=False, completed_at=None, version=3)
        self.assertTaskResponse(api.patch(p), completed=True, version=4)
        self.assertEqual(api.task(t["id"])["completed"], True)

    def test_snooze(self):
        api = self.new_user()
        t = api.create_task(title="nap", due_at="2031-01-01T10:00:00Z", remind_before_minutes=10)
        p = f"/tasks/{t['id']}/snooze"
        before = time.time()
        n = self.assertTaskResponse(api.post(p, {"minutes": 15}), remind_before_minutes=None,
                                    version=2, due_at="2031-01-01T10:00:00Z")
        after = time.time()
        remind = parse_time(n["remind_at"]).timestamp()
        self.assertGreaterEqual(remind, before + 15 * 60 - 2, n)
        self.assertLessEqual(remind, after + 15 * 60 + 2, n)
        n = self.assertTaskResponse(api.post(p, {"minutes": 10080}), version=3)
        self.assertLess(abs(parse_time(n["remind_at"]).timestamp() - (time.time() + 10080 * 60)),
                        30)
        self.assertTaskResponse(api.post(p, {"minutes": 1}), version=4)
        for bad in ({"minutes": 0}, {"minutes": 10081}, {"minutes": -5}, {"minutes": "5"},
                    {"minutes": 1.5}, {}, {"minutes": 5, "extra": 1}):
            self.assertProblem(api.post(p, bad), 422, "VALIDATION_ERROR")
        self.assertEqual(api.task(t["id"])["version"], 4)

    # --- delete ----------------------------------------------------------------------------

    def test_delete(self):
        api = self.new_user()
        tag = api.create_tag("gone")
        t = api.create_task(title="bye", tag_ids=[tag["id"]])
        p = f"/tasks/{t['id']}"
        r = api.delete(p)
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "")
        self.assertProblem(api.get(p), 404, "NOT_FOUND")
        self.assertProblem(api.delete(p), 404, "NOT_FOUND")
        self.assertProblem(api.patch(p, {"title": "x"}), 404, "NOT_FOUND")
        self.assertProblem(api.put(p, {"title": "x"}), 404, "NOT_FOUND")
        self.assertProblem(api.post(p + "/complete"), 404, "NOT_FOUND")
        self.assertProblem(api.post(p + "/reopen"), 404, "NOT_FOUND")
        self.assertProblem(api.patch(p + "/complete"), 404, "NOT_FOUND")
        self.assertProblem(api.post(p + "/snooze", {"minutes": 5}), 404, "NOT_FOUND")
        self.assertProblem(api.put(p + f"/tags/{tag['id']}"), 404, "NOT_FOUND")
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.tasks WHERE id = {t['id']}"),
                         "0")
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.task_tags "
                                     f"WHERE task_id = {t['id']}"), "0")
        self.assertEqual(api.list()["items"], [])

    # --- ETag and If-Match ------------------------------------------------------------------

    def test_if_match(self):
        api = self.new_user()
        t = api.create_task(title="guarded")
        p = f"/tasks/{t['id']}"
        self.assertTaskResponse(api.patch(p, {"title": "v2"}, headers={"If-Match": '"1"'}),
                                version=2)
        before = self.snapshot()
        self.assertProblem(api.patch(p, {"title": "stale"}, headers={"If-Match": '"1"'}), 412,
                           "PRECONDITION_FAILED")
        self.assertProblem(api.put(p, {"title": "stale"}, headers={"If-Match": '"1"'}), 412,
                           "PRECONDITION_FAILED")
        self.assertProblem(api.delete(p, headers={"If-Match": '"1"'}), 412, "PRECONDITION_FAILED")
        self.assertProblem(api.patch(p, {"title": "junk"}, headers={"If-Match": 'nonsense'}), 412,
                           "PRECONDITION_FAILED")
        self.assertUnchanged(before, "after stale If-Match requests")
        self.assertTaskResponse(api.put(p, {"title": "v3"}, headers={"If-Match": '"2"'}),
                                version=3, title="v3")
        self.assertTaskResponse(api.patch(p, {"title": "v4"}, headers={"If-Match": "*"}),
                                version=4, title="v4")
        self.assertTaskResponse(api.patch(p, {"title": "v5"}, headers={"If-Match": '"3", "4"'}),
                                version=5, title="v5")
        r = api.delete(p, headers={"If-Match": '"5"'})
        self.assertEqual(r.status, 204, r)
        self.assertProblem(api.patch(p, {"title": "x"}, headers={"If-Match": '"5"'}), 404,
                           "NOT_FOUND")
        self.assertProblem(api.delete(p, headers={"If-Match": "*"}), 404, "NOT_FOUND")

    # --- bad paths and methods --------------------------------------------------------------

    def test_unknown_ids_are_404(self):
        api = self.new_user()
        for tid in ("999999999", "0", "-1", "abc", "1.5", "99999999999999999999999"):
            self.assertProblem(api.get(f"/tasks/{tid}"), 404, "NOT_FOUND")
            self.assertProblem(api.patch(f"/tasks/{tid}", {"title": "x"}), 404, "NOT_FOUND")
        self.assertProblem(api.get("/categories/424242"), 404, "NOT_FOUND")
        self.assertProblem(api.get("/tags/424242"), 404, "NOT_FOUND")
        r = self.backend.request("GET", "/api/nothing-here-at-all/zzz/yyy/xxx", token=api.token)
        self.assertEqual(r.status, 404, r)

    def test_method_not_allowed(self):
        api = self.new_user()
        t = api.create_task(title="m")
        for method, p in (("DELETE", "/tasks"), ("PUT", "/tasks"), ("POST", f"/tasks/{t['id']}"),
                          ("GET", f"/tasks/{t['id']}/complete"),
                          ("GET", f"/tasks/{t['id']}/snooze"),
                          ("PUT", "/categories"), ("POST", "/tags/1"),
                          ("GET", f"/tasks/{t['id']}/tags/1")):
            r = api.request(method, p)
            self.assertProblem(r, 405)
            self.assertTrue(r.header("Allow"), f"405 without Allow for {method} {p}")


TASK_KEYS_UNCHANGED_BY_PATCH = ("id", "user_id", "description", "completed", "category", "tags",
                                "due_at", "remind_at", "remind_before_minutes", "timezone",
                                "recurrence_rule", "series_id", "occurrence", "series_start_at",
                                "created_at", "completed_at")

if __name__ == "__main__":
    todo_test.run()
