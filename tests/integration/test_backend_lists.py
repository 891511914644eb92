"""Listing tasks: filters, full-text search and its ranking, sort orders and cursor pagination
across pages (with ties and tasks without a due time)."""

import todo_test

PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2, "urgent": 3}


def ids(items):
    return [t["id"] for t in items]


class TaskLists(todo_test.BackendTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # One user with a varied set of tasks for filters and sorts (created in this order).
        api = cls.api = todo_test.Api(cls.backend, "lister")
        cls.work = api.create_category("Work")
        cls.home = api.create_category("Home")
        cls.red = api.create_tag("red")
        cls.blue = api.create_tag("blue")
        specs = [
            dict(title="delta", priority="low", due_at="2031-01-05T09:00:00Z",
                 category_id=cls.work["id"], tag_ids=[cls.red["id"]]),
            dict(title="alpha", priority="urgent", category_id=cls.home["id"]),
            dict(title="charlie", priority="medium", due_at="2031-01-01T09:00:00Z",
                 tag_ids=[cls.red["id"], cls.blue["id"]]),
            dict(title="echo", priority="high", due_at="2031-01-03T09:00:00Z",
                 category_id=cls.work["id"]),
            dict(title="bravo", priority="medium", tag_ids=[cls.blue["id"]]),
            dict(title="foxtrot", priority="high", due_at="2031-01-09T09:00:00Z"),
            dict(title="bravo", priority="low", due_at="2031-01-07T09:00:00Z"),
        ]
        cls.tasks = [api.create_task(**s) for s in specs]
        # Completed: charlie and foxtrot.
        for t in (cls.tasks[2], cls.tasks[5]):
            r = api.post(f"/tasks/{t['id']}/complete")
            assert r.status == 200, r
        cls.tasks = [api.task(t["id"]) for t in cls.tasks]
        # Another user whose tasks must never show up.
        other = todo_test.Api(cls.backend, "other-lister")
        other.create_task(title="alpha", priority="urgent", due_at="2031-01-02T00:00:00Z")
        other.create_task(title="budget budget budget", description="budget")

    def by_title(self, title):
        return [t for t in self.tasks if t["title"] == title]

    # --- shape and defaults ---------------------------------------------------------------

    def test_list_shape_and_default_order(self):
        page = self.api.list()
        self.assertEqual(set(page), {"items", "next_cursor"})
        self.assertIsNone(page["next_cursor"])
        for t in page["items"]:
            self.assertTask(t, user_id="lister")
        # Newest first by default.
        self.assertEqual(ids(page["items"]), ids(reversed(self.tasks)))
        self.assertEqual(page["items"], list(reversed(self.tasks)))

    def test_status_filter(self):
        done = {self.tasks[2]["id"], self.tasks[5]["id"]}
        every = set(ids(self.tasks))
        self.assertEqual(set(ids(self.api.list(status="completed")["items"])), done)
        self.assertEqual(set(ids(self.api.list(status="pending")["items"])), every - done)
        self.assertEqual(set(ids(self.api.list(status="all")["items"])), every)

    def test_priority_category_tag_filters(self):
        self.assertEqual(set(ids(self.api.list(priority="high")["items"])),
                         {self.tasks[3]["id"], self.tasks[5]["id"]})
        self.assertEqual(set(ids(self.api.list(category_id=self.work["id"])["items"])),
                         {self.tasks[0]["id"], self.tasks[3]["id"]})
        self.assertEqual(set(ids(self.api.list(tag_id=self.red["id"])["items"])),
                         {self.tasks[0]["id"], self.tasks[2]["id"]})
        self.assertEqual(set(ids(self.api.list(tag_id=self.blue["id"],
                                               status="pending")["items"])),
                         {self.tasks[4]["id"]})
        self.assertEqual(ids(self.api.list(priority="urgent",
                                           category_id=self.home["id"])["items"]),
                         [self.tasks[1]["id"]])
        self.assertEqual(self.api.list(priority="urgent", category_id=self.work["id"])["items"],
                         [])
        # A filter on a tag still shows each task with all its tags.
        charlie = [t for t in self.api.list(tag_id=self.red["id"])["items"]
                   if t["title"] == "charlie"][0]
        self.assertEqual(len(charlie["tags"]), 2)

    def test_due_range_filters(self):
        r = self.api.list(due_after="2031-01-02T00:00:00Z", due_before="2031-01-08T00:00:00Z")
        self.assertEqual(set(ids(r["items"])),
                         {self.tasks[0]["id"], self.tasks[3]["id"], self.tasks[6]["id"]})
        r = self.api.list(due_before="2031-01-04T00:00:00+00:00")
        self.assertEqual(set(ids(r["items"])), {self.tasks[2]["id"], self.tasks[3]["id"]})
        r = self.api.list(due_after="2031-01-08T10:00:00+02:00")
        self.assertEqual(set(ids(r["items"])), {self.tasks[5]["id"]})

    def test_bad_query_parameters(self):
        for q in (dict(status="done"), dict(priority="critical"), dict(sort="owner"),
                  dict(order="sideways"), dict(limit=0), dict(limit=101), dict(limit="ten"),
                  dict(due_before="tomorrow"), dict(due_after="2031-01-01"), dict(q="x" * 501),
                  dict(category_id="abc"), dict(tag_id="-3"), dict(cursor="garbage"),
                  dict(cursor="!!!"), dict(cursor="x" * 2000)):
            r = self.api.get("/tasks" + todo_test.query_string(q))
            self.assertProblem(r, 422, "VALIDATION_ERROR")
        # The longest search is fine.
        self.assertEqual(self.api.list(q="y" * 500)["items"], [])

    def test_limit(self):
        page = self.api.list(limit=1)
        self.assertEqual(len(page["items"]), 1)
        self.assertIsInstance(page["next_cursor"], str)
        page = self.api.list(limit=100)
        self.assertEqual(len(page["items"]), 7)
        self.assertIsNone(page["next_cursor"])

    # --- sort orders ------------------------------------------------------------------------

    def sorted_keys(self, items, key):
        return [t[key] for t in items]

    def test_sort_by_due_at(self):
        asc = self.api.list(sort="due_at")["items"]
        dues = self.sorted_keys(asc, "due_at")
        self.assertEqual(dues, ["2031-01-01T09:00:00Z", "2031-01-03T09:00:00Z",
                                "2031-01-05T09:00:00Z", "2031-01-07T09:00:00Z",
                                "2031-01-09T09:00:00Z", None, None])
        self.assertEqual(self.api.list(sort="due_at", order="asc")["items"], asc)
        desc = self.api.list(sort="due_at", order="desc")["items"]
        self.assertEqual(self.sorted_keys(desc, "due_at"),
                         ["2031-01-09T09:00:00Z", "2031-01-07T09:00:00Z",
                          "2031-01-05T09:00:00Z", "2031-01-03T09:00:00Z",
                          "2031-01-01T09:00:00Z", None, None])

    def test_sort_by_priority(self):
        desc = self.api.list(sort="priority")["items"]
        self.assertEqual(self.sorted_keys(desc, "priority"),
                         ["urgent", "high", "high", "medium", "medium", "low", "low"])
        self.assertEqual(self.sorted_keys(self.api.list(sort="priority", order="desc")["items"],
                                          "priority"), self.sorted_keys(desc, "priority"))
        asc = self.api.list(sort="priority", order="asc")["items"]
        self.assertEqual(self.sorted_keys(asc, "priority"),
                         ["low", "low", "medium", "medium", "high", "high", "urgent"])

    def test_sort_by_title(self):
        asc = self.api.list(sort="title")["items"]
        self.assertEqual(self.sorted_keys(asc, "title"),
                         ["alpha", "bravo", "bravo", "charlie", "delta", "echo", "foxtrot"])
        desc = self.api.list(sort="title", order="desc")["items"]
        self.assertEqual(self.sorted_keys(desc, "title"),
                         ["foxtrot", "echo", "delta", "charlie", "bravo", "bravo", "alpha"])

    def test_sort_by_created_at(self):
        self.assertEqual(ids(self.api.list(sort="created_at")["items"]),
                         ids(reversed(self.tasks)))
        self.assertEqual(ids(self.api.list(sort="created_at", order="asc")["items"]),
                         ids(self.tasks))

    # --- pagination ---------------------------------------------------------------------------

    def check_pages(self, limit, **query):
        full = self.api.list(limit=100, **query)["items"]
        paged, pages = self.api.list_all(limit=limit, **query)
        self.assertEqual(ids(paged), ids(full), f"pages of {limit} with {query}")
        self.assertEqual(len(set(ids(paged))), len(paged), f"duplicates with {query}")
        self.assertEqual(pages, max(1, -(-len(full) // limit)), f"page count with {query}")
        return paged

    def test_pagination_every_sort(self):
        for sort in ("created_at", "due_at", "priority", "title"):
            for order in ("asc", "desc"):
                for limit in (1, 2, 3):
                    paged = self.check_pages(limit, sort=sort, order=order)
                    self.assertEqual(set(ids(paged)), set(ids(self.tasks)), (sort, order))

    def test_pagination_with_filters(self):
        paged = self.check_pages(2, status="pending", sort="due_at")
        self.assertEqual(len(paged), 5)
        paged = self.check_pages(1, tag_id=self.red["id"])
        self.assertEqual(len(paged), 2)

    def test_last_full_page_has_no_cursor(self):
        api = self.new_user()
        for i in range(6):
            api.create_task(title=f"t{i}")
        first = api.list(limit=3)
        self.assertIsInstance(first["next_cursor"], str)
        second = api.list(limit=3, cursor=first["next_cursor"])
        self.assertEqual(len(second["items"]), 3)
        self.assertIsNone(second["next_cursor"])
        self.assertEqual(len(set(ids(first["items"] + second["items"]))), 6)

    def test_pages_are_stable_while_tasks_are_added(self):
        api = self.new_user()
        made = [api.create_task(title=f"s{i}") for i in range(5)]
        first = api.list(limit=2)
        api.create_task(title="newer")  # lands before the first page: must not shift the rest
        rest, _ = api.list_all(limit=2, cursor=first["next_cursor"])
        self.assertEqual(ids(first["items"] + rest), ids(reversed(made)))

    def test_cursor_of_another_user_leaks_nothing(self):
        page = self.api.list(limit=2)
        other = self.new_user()
        r = other.get("/tasks" + todo_test.query_string({"limit": 2,
                                                          "cursor": page["next_cursor"]}))
        if r.status == 200:
            self.assertEqual(r.json["items"], [])
        else:
            self.assertProblem(r, 422, "VALIDATION_ERROR")

    # --- search -------------------------------------------------------------------------------

    def test_search_ranking(self):
        api = self.new_user()
        top = api.create_task(title="Budget budget planning",
                              description="the budget for the budget year")
        desc_only = api.create_task(title="Call the bank", description="discuss the budget")
        title_only = api.create_task(title="Budget review")
        api.create_task(title="Plan garden", description="buy seeds")
        items = api.list(q="budget")["items"]
        self.assertEqual(ids(items), [top["id"], title_only["id"], desc_only["id"]])
        # English stemming; the same order.
        self.assertEqual(ids(api.list(q="budgets")["items"]), ids(items))
        # Every word must match.
        self.assertEqual(ids(api.list(q="budget review")["items"]), [title_only["id"]])
        # An explicit sort wins over relevance.
        self.assertEqual(ids(api.list(q="budget", sort="created_at")["items"]),
                         [title_only["id"], desc_only["id"], top["id"]])
        self.assertEqual(ids(api.list(q="budget", sort="title", order="asc")["items"]),
                         [top["id"], title_only["id"], desc_only["id"]])
        # Filters combine with search.
        self.assertEqual(ids(api.list(q="budget", status="completed")["items"]), [])
        # Ranked pages.
        paged, pages = api.list_all(q="budget", limit=1)
        self.assertEqual(ids(paged), ids(items))
        self.assertEqual(pages, 3)
        self.assertEqual(api.list(q="nothingmatches")["items"], [])

    def test_search_special_characters(self):
        api = self.new_user()
        t = api.create_task(title="C++ & Rust: a comparison", description="it's (not) !important")
        for q in ("c++", "rust & | ! ( ) : * ' \"", "'", "\\", "!", "<->", "a:*", "%_%",
                  "comparison OR nothing", "-rust"):
            r = api.get("/tasks" + todo_test.query_string({"q": q}))
            self.assertEqual(r.status, 200, f"q={q!r}: {r!r}")
        self.assertEqual(ids(api.list(q="rust")["items"]), [t["id"]])
        self.assertEqual(ids(api.list(q="Comparison")["items"]), [t["id"]])

    def test_search_sees_updates(self):
        api = self.new_user()
        t = api.create_task(title="apple pie")
        self.assertEqual(ids(api.list(q="apple")["items"]), [t["id"]])
        api.patch(f"/tasks/{t['id']}", {"title": "cherry pie", "description": "no apples"})
        self.assertEqual(ids(api.list(q="cherry")["items"]), [t["id"]])
        self.assertEqual(ids(api.list(q="apple")["items"]), [t["id"]])
        api.patch(f"/tasks/{t['id']}", {"description": ""})
        self.assertEqual(api.list(q="apple")["items"], [])

    def test_other_users_tasks_never_listed(self):
        for q in ({}, dict(q="budget"), dict(q="alpha"), dict(priority="urgent"),
                  dict(sort="due_at"), dict(status="all")):
            for t in self.api.list(**q)["items"]:
                self.assertEqual(t["user_id"], "lister", q)


if __name__ == "__main__":
    todo_test.run()
