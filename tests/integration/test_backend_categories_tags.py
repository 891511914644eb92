"""Categories and tags: create, list with task counts, get, rename/recolour, delete (tasks left
uncategorised / untagged, with a new version), tag assignment, limits and duplicate names."""

import todo_test


def count_of(item):
    """The task count of a category or tag in a listing (the one key naming a count)."""
    keys = [k for k in item if "count" in k]
    assert len(keys) == 1, f"expected one task count key in {item}"
    assert isinstance(item[keys[0]], int), item
    return item[keys[0]]


class CategoriesAndTags(todo_test.BackendTestCase):

    def check_item(self, item, name, color):
        self.assertIsInstance(item["id"], int)
        self.assertEqual(item["name"], name)
        self.assertEqual(item["color"], color)

    # --- categories -------------------------------------------------------------------------

    def test_category_crud(self):
        api = self.new_user()
        r = api.post("/categories", {"name": "Work", "color": "#A0b1C2"})
        self.assertEqual(r.status, 201, r)
        cat = r.json
        self.check_item(cat, "Work", "#A0b1C2")
        self.assertEqual(r.header("Location"), api.path(f"/categories/{cat['id']}"))
        g = api.get(f"/categories/{cat['id']}")
        self.assertEqual(g.status, 200, g)
        self.check_item(g.json, "Work", "#A0b1C2")

        plain = api.create_category("Plain")
        self.check_item(plain, "Plain", plain["color"])

        r = api.patch(f"/categories/{cat['id']}", {"name": "Office"})
        self.assertEqual(r.status, 200, r)
        self.check_item(r.json, "Office", "#A0b1C2")
        r = api.patch(f"/categories/{cat['id']}", {"color": "#000000"})
        self.assertEqual(r.status, 200, r)
        self.check_item(r.json, "Office", "#000000")
        # Changing only the case of its own name is not a duplicate.
        r = api.patch(f"/categories/{cat['id']}", {"name": "OFFICE"})
        self.assertEqual(r.status, 200, r)
        self.check_item(api.get(f"/categories/{cat['id']}").json, "OFFICE", "#000000")

        r = api.delete(f"/categories/{cat['id']}")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "")
        self.assertProblem(api.get(f"/categories/{cat['id']}"), 404, "NOT_FOUND")
        self.assertProblem(api.delete(f"/categories/{cat['id']}"), 404, "NOT_FOUND")
        self.assertProblem(api.patch(f"/categories/{cat['id']}", {"name": "x"}), 404,
                           "NOT_FOUND")

    def test_category_list_with_counts(self):
        api = self.new_user()
        a = api.create_category("A")
        b = api.create_category("B")
        api.create_category("C")
        for _ in range(3):
            api.create_task(title="a", category_id=a["id"])
        api.create_task(title="b", category_id=b["id"])
        api.create_task(title="none")
        other = self.new_user()
        other.create_category("A")
        r = api.get("/categories")
        self.assertEqual(r.status, 200, r)
        body = r.json
        items = body["items"] if isinstance(body, dict) else body
        self.assertIsInstance(items, list, body)
        counts = {c["name"]: count_of(c) for c in items}
        self.assertEqual(counts, {"A": 3, "B": 1, "C": 0})

    def test_category_rename_shows_in_tasks(self):
        api = self.new_user()
        cat = api.create_category("Old", "#111111")
        t = api.create_task(title="t", category_id=cat["id"])
        api.patch(f"/categories/{cat['id']}", {"name": "New", "color": "#222222"})
        self.assertEqual(api.task(t["id"])["category"],
                         {"id": cat["id"], "name": "New", "color": "#222222"})

    def test_rename_and_recolour_update_the_tasks(self):
        """docs/events.md: a category or tag renamed or recoloured is a todo.task.updated (with a
        new version) of every task it is on."""
        api = self.new_user()
        cat = api.create_category("Before")
        tag = api.create_tag("before")
        on_cat = api.create_task(title="c", category_id=cat["id"])
        on_tag = api.create_task(title="g", tag_ids=[tag["id"]])
        on_both = api.create_task(title="b", category_id=cat["id"], tag_ids=[tag["id"]])
        loose = api.create_task(title="loose")
        for path, body, affected in (
                (f"/categories/{cat['id']}", {"name": "After"}, [on_cat, on_both]),
                (f"/categories/{cat['id']}", {"color": "#abcdef"}, [on_cat, on_both]),
                (f"/tags/{tag['id']}", {"name": "after"}, [on_tag, on_both]),
                (f"/tags/{tag['id']}", {"color": "#fedcba"}, [on_tag, on_both])):
            versions = {t["id"]: api.task(t["id"])["version"] for t in affected}
            mark = todo_test.max_outbox_id(self.cluster)
            r = api.patch(path, body)
            self.assertEqual(r.status, 200, r)
            for t in affected:
                self.assertEqual(api.task(t["id"])["version"], versions[t["id"]] + 1,
                                 f"PATCH {path} {body}: version of task {t['id']}")
            rows = todo_test.outbox_rows(self.cluster, f"id > {mark}")
            self.assertEqual(sorted(int(x["partition_key"]) for x in rows),
                             sorted(t["id"] for t in affected), f"events of PATCH {path} {body}")
            for x in rows:
                self.assertEqual(x["event"]["type"], "todo.task.updated")
                self.assertEqual(x["event"]["data"]["version"],
                                 versions[int(x["partition_key"])] + 1)
        self.assertEqual(api.task(loose["id"]), loose)
        both = api.task(on_both["id"])
        self.assertEqual(both["category"], {"id": cat["id"], "name": "After", "color": "#abcdef"})
        self.assertEqual(both["tags"], [{"id": tag["id"], "name": "after", "color": "#fedcba"}])

    def test_category_delete_uncategorises_tasks(self):
        api = self.new_user()
        cat = api.create_category("Doomed")
        keep = api.create_category("Kept")
        t1 = api.create_task(title="one", category_id=cat["id"])
        t2 = api.create_task(title="two", category_id=cat["id"])
        t3 = api.create_task(title="three", category_id=keep["id"])
        mark = todo_test.max_outbox_id(self.cluster)
        self.assertEqual(api.delete(f"/categories/{cat['id']}").status, 204)
        for t in (t1, t2):
            n = api.task(t["id"])
            self.assertIsNone(n["category"])
            self.assertEqual(n["version"], t["version"] + 1)
        self.assertEqual(api.task(t3["id"]), t3)
        rows = todo_test.outbox_rows(self.cluster, f"id > {mark}")
        self.assertEqual(sorted(int(r["partition_key"]) for r in rows), [t1["id"], t2["id"]])
        self.assertEqual({r["event"]["type"] for r in rows}, {"todo.task.updated"})
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.categories "
                                     f"WHERE id = {cat['id']}"), "0")

    def test_category_validation(self):
        api = self.new_user()
        api.create_category("Dup")
        before = self.snapshot()
        self.assertProblem(api.post("/categories", {"name": "dUP"}), 409, "CONFLICT")
        for body, field in (({"name": ""}, "name"), ({"name": "x" * 51}, "name"),
                            ({"name": "ok", "color": "red"}, "color"),
                            ({"name": "ok", "color": "#12345"}, "color"),
                            ({"name": "ok", "color": "#GGGGGG"}, "color"),
                            ({"name": 5}, "name"), ({}, "name"),
                            ({"name": "ok", "extra": 1}, "extra")):
            self.assertProblem(api.post("/categories", body), 422, "VALIDATION_ERROR", field)
        self.assertUnchanged(before, "after refused category creations")
        r = api.post("/categories", {"name": "é" * 50})
        self.assertEqual(r.status, 201, r)
        other = api.create_category("Other")
        before = self.snapshot()
        self.assertProblem(api.patch(f"/categories/{other['id']}", {"name": "DUP"}), 409,
                           "CONFLICT")
        self.assertProblem(api.patch(f"/categories/{other['id']}", {"name": ""}), 422,
                           "VALIDATION_ERROR", "name")
        self.assertProblem(api.patch(f"/categories/{other['id']}", {"color": "blue"}), 422,
                           "VALIDATION_ERROR", "color")
        self.assertUnchanged(before, "after refused category updates")
        # Another user may use the same name.
        self.assertEqual(self.new_user().post("/categories", {"name": "Dup"}).status, 201)

    def test_category_limit(self):
        api = self.new_user()
        for i in range(50):
            api.create_category(f"cat{i}")
        before = self.snapshot()
        self.assertProblem(api.post("/categories", {"name": "one too many"}), 422,
                           "VALIDATION_ERROR")
        self.assertUnchanged(before, "after the 51st category")
        # Deleting one makes room again.
        first = api.get("/categories").json
        items = first["items"] if isinstance(first, dict) else first
        self.assertEqual(len(items), 50)
        self.assertEqual(api.delete(f"/categories/{items[0]['id']}").status, 204)
        self.assertEqual(api.post("/categories", {"name": "room again"}).status, 201)

    # --- tags -------------------------------------------------------------------------------

    def test_tag_crud(self):
        api = self.new_user()
        r = api.post("/tags", {"name": "urgent-ish", "color": "#ff00ff"})
        self.assertEqual(r.status, 201, r)
        tag = r.json
        self.check_item(tag, "urgent-ish", "#ff00ff")
        self.assertEqual(r.header("Location"), api.path(f"/tags/{tag['id']}"))
        g = api.get(f"/tags/{tag['id']}")
        self.assertEqual(g.status, 200, g)
        self.check_item(g.json, "urgent-ish", "#ff00ff")
        r = api.patch(f"/tags/{tag['id']}", {"name": "later", "color": "#00ff00"})
        self.assertEqual(r.status, 200, r)
        self.check_item(r.json, "later", "#00ff00")
        self.assertEqual(api.delete(f"/tags/{tag['id']}").status, 204)
        self.assertProblem(api.get(f"/tags/{tag['id']}"), 404, "NOT_FOUND")

    def test_tag_list_with_counts(self):
        api = self.new_user()
        x = api.create_tag("x")
        y = api.create_tag("y")
        api.create_tag("z")
        api.create_task(title="1", tag_ids=[x["id"], y["id"]])
        api.create_task(title="2", tag_ids=[x["id"]])
        other = self.new_user()
        other.create_task(title="o", tag_ids=[other.create_tag("x")["id"]])
        r = api.get("/tags")
        self.assertEqual(r.status, 200, r)
        body = r.json
        items = body["items"] if isinstance(body, dict) else body
        self.assertEqual({g["name"]: count_of(g) for g in items}, {"x": 2, "y": 1, "z": 0})

    def test_tag_assign_and_unassign(self):
        api = self.new_user()
        a = api.create_tag("a")
        b = api.create_tag("b")
        t = api.create_task(title="tagged")
        p = f"/tasks/{t['id']}/tags"
        r = api.put(f"{p}/{b['id']}")
        self.assertIn(r.status, (200, 204), r)
        if r.status == 200:
            self.assertTaskResponse(r, version=2)
        n = api.task(t["id"])
        self.assertEqual([g["id"] for g in n["tags"]], [b["id"]])
        self.assertEqual(n["version"], 2)
        self.assertIn(api.put(f"{p}/{a['id']}").status, (200, 204))
        n = api.task(t["id"])
        self.assertEqual([g["id"] for g in n["tags"]], sorted([a["id"], b["id"]]))
        self.assertEqual(n["version"], 3)
        r = api.delete(f"{p}/{b['id']}")
        self.assertIn(r.status, (200, 204), r)
        n = api.task(t["id"])
        self.assertEqual([g["id"] for g in n["tags"]], [a["id"]])
        self.assertEqual(n["version"], 4)
        # Someone else's tag, or none at all.
        foreign = self.new_user().create_tag("theirs")
        before = self.snapshot()
        self.assertProblem(api.put(f"{p}/{foreign['id']}"), 404, "NOT_FOUND")
        self.assertProblem(api.put(f"{p}/987654321"), 404, "NOT_FOUND")
        self.assertUnchanged(before, "after assigning tags that are not the user's")

    def test_tag_assignment_limit(self):
        api = self.new_user()
        tags = [api.create_tag(f"l{i}")["id"] for i in range(11)]
        t = api.create_task(title="full", tag_ids=tags[:10])
        before = self.snapshot()
        self.assertProblem(api.put(f"/tasks/{t['id']}/tags/{tags[10]}"), 422, "VALIDATION_ERROR")
        self.assertUnchanged(before, "after an 11th tag")

    def test_tag_assignment_if_match(self):
        api = self.new_user()
        g = api.create_tag("cond")
        t = api.create_task(title="cond")
        api.patch(f"/tasks/{t['id']}", {"title": "cond2"})
        before = self.snapshot()
        r = api.put(f"/tasks/{t['id']}/tags/{g['id']}", headers={"If-Match": '"1"'})
        self.assertProblem(r, 412, "PRECONDITION_FAILED")
        self.assertUnchanged(before, "after a stale tag assignment")

    def test_tag_delete_untags_tasks(self):
        api = self.new_user()
        doomed = api.create_tag("doomed")
        kept = api.create_tag("kept")
        t1 = api.create_task(title="one", tag_ids=[doomed["id"], kept["id"]])
        t2 = api.create_task(title="two", tag_ids=[doomed["id"]])
        t3 = api.create_task(title="three", tag_ids=[kept["id"]])
        mark = todo_test.max_outbox_id(self.cluster)
        self.assertEqual(api.delete(f"/tags/{doomed['id']}").status, 204)
        n1, n2 = api.task(t1["id"]), api.task(t2["id"])
        self.assertEqual([g["id"] for g in n1["tags"]], [kept["id"]])
        self.assertEqual(n2["tags"], [])
        self.assertEqual(n1["version"], 2)
        self.assertEqual(n2["version"], 2)
        self.assertEqual(api.task(t3["id"]), t3)
        rows = todo_test.outbox_rows(self.cluster, f"id > {mark}")
        self.assertEqual(sorted(int(r["partition_key"]) for r in rows), [t1["id"], t2["id"]])
        self.assertEqual({r["event"]["type"] for r in rows}, {"todo.task.updated"})
        self.assertEqual(self.scalar(f"SELECT count(*) FROM backend.task_tags "
                                     f"WHERE tag_id = {doomed['id']}"), "0")

    def test_tag_validation(self):
        api = self.new_user()
        api.create_tag("Same")
        before = self.snapshot()
        self.assertProblem(api.post("/tags", {"name": "same"}), 409, "CONFLICT")
        for body, field in (({"name": ""}, "name"), ({"name": "x" * 31}, "name"),
                            ({"name": "ok", "color": "#1234567"}, "color"),
                            ({"name": None}, "name"), ({"name": "ok", "x": 1}, "x")):
            self.assertProblem(api.post("/tags", body), 422, "VALIDATION_ERROR", field)
        self.assertUnchanged(before, "after refused tag creations")
        self.assertEqual(api.post("/tags", {"name": "ß" * 30}).status, 201)
        t = api.create_tag("t2")
        before = self.snapshot()
        self.assertProblem(api.patch(f"/tags/{t['id']}", {"name": "SAME"}), 409, "CONFLICT")
        self.assertUnchanged(before, "after a refused tag rename")

    def test_tag_limit(self):
        api = self.new_user()
        for i in range(100):
            api.create_tag(f"tag{i}")
        before = self.snapshot()
        self.assertProblem(api.post("/tags", {"name": "tag100"}), 422, "VALIDATION_ERROR")
        self.assertUnchanged(before, "after the 101st tag")


if __name__ == "__main__":
    todo_test.run()
