"""Bad input: every refused request gets the right 4xx as application/problem+json and leaves the
database exactly as it was (row counts, versions, table digests and the outbox)."""

import json

import todo_test

MAX_BODY = 16384


class BadInput(todo_test.BackendTestCase):

    backend_extra_env = {"MAX_BODY_BYTES": str(MAX_BODY)}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = todo_test.Api(cls.backend, "val")
        cls.tags = [cls.api.create_tag(f"t{i}") for i in range(11)]
        cls.cat = cls.api.create_category("Mine")
        cls.task = cls.api.create_task(title="existing", due_at="2031-01-01T00:00:00Z",
                                       recurrence_rule="FREQ=DAILY", remind_before_minutes=5,
                                       category_id=cls.cat["id"],
                                       tag_ids=[cls.tags[0]["id"]])
        other = todo_test.Api(cls.backend, "val-other")
        cls.foreign_tag = other.create_tag("theirs")
        cls.foreign_cat = other.create_category("Theirs")

    def setUp(self):
        self.before = self.snapshot()

    def tearDown(self):
        self.assertUnchanged(self.before, f"by {self.id()}")

    def task_path(self, suffix=""):
        return f"/tasks/{self.task['id']}{suffix}"

    def each_write(self, body, status, code, field=None, put_body=None):
        """body refused the same way by create, replace and patch."""
        self.assertProblem(self.api.post("/tasks", body), status, code, field)
        self.assertProblem(self.api.put(self.task_path(), put_body or body), status, code, field)
        self.assertProblem(self.api.patch(self.task_path(), body), status, code, field)

    def raw_write(self, raw, status, code, content_type="application/json", paths=None):
        headers = {"Content-Type": content_type} if content_type else {}
        for method, path in paths or (("POST", "/tasks"), ("PUT", self.task_path()),
                                      ("PATCH", self.task_path()),
                                      ("POST", self.task_path("/snooze")),
                                      ("POST", "/categories"), ("POST", "/tags"),
                                      ("PATCH", f"/categories/{self.cat['id']}")):
            r = self.api.request(method, path, raw=raw, headers=headers)
            self.assertProblem(r, status, code)

    # --- JSON itself ------------------------------------------------------------------------

    def test_malformed_json(self):
        for raw in (b'{"title": ', b"{title: 'x'}", b'{"title": "x",}', b"", b"nul",
                    b'{"title": "x"} trailing', b'{"title": "\\ud800"}',
                    b'{"title": "\xff\xfe"}'):
            self.raw_write(raw, 400, "INVALID_JSON")

    def test_json_that_is_not_an_object(self):
        for raw in (b"[]", b'"title"', b"42", b"null", b"true"):
            for method, path in (("POST", "/tasks"), ("PATCH", self.task_path())):
                r = self.api.request(method, path, raw=raw,
                                     headers={"Content-Type": "application/json"})
                self.assertIn(r.status, (400, 422), r)
                self.assertProblem(r, r.status)

    def test_deeply_nested_json(self):
        raw = b'{"title": ' + b"[" * 2000 + b"]" * 2000 + b"}"
        self.assertIn(self.api.request("POST", "/tasks", raw=raw,
                                       headers={"Content-Type": "application/json"}).status,
                      (400, 413, 422))

    # --- transport ----------------------------------------------------------------------------

    def test_body_over_the_cap(self):
        big = json.dumps({"title": "x", "description": "d" * (MAX_BODY + 100)}).encode()
        self.raw_write(big, 413, "PAYLOAD_TOO_LARGE")
        # Exactly at the cap is read (and then judged on its content).
        pad = MAX_BODY - len(json.dumps({"title": "x", "description": ""}).encode())
        at_cap = json.dumps({"title": "x", "description": "d" * pad}).encode()
        self.assertEqual(len(at_cap), MAX_BODY)
        r = self.api.request("POST", "/tasks", raw=at_cap,
                             headers={"Content-Type": "application/json"})
        self.assertNotEqual(r.status, 413, r)
        self.assertProblem(r, 422, "VALIDATION_ERROR", "description")  # > 4000 characters

    def test_body_several_times_over_the_cap(self):
        # Still a problem+json answer, not a bare one from the HTTP layer.
        for factor in (2, 4):
            big = json.dumps({"title": "x", "description": "d" * (MAX_BODY * factor)}).encode()
            r = self.api.request("POST", "/tasks", raw=big,
                                 headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 413, f"{len(big)} bytes: {r!r}")
            self.assertEqual(r.header("Content-Type"), "application/problem+json",
                             f"{len(big)} bytes with a cap of {MAX_BODY}: {r!r}")
            self.assertProblem(r, 413, "PAYLOAD_TOO_LARGE")

    def test_body_over_the_cap_chunked(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.backend.port, timeout=10)
        try:
            conn.putrequest("POST", self.api.path("/tasks"))
            conn.putheader("Authorization", f"Bearer {self.api.token}")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            chunk = b'{"title": "x", "description": "' + b"d" * (MAX_BODY + 500) + b'"}'
            try:
                conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass
            resp = conn.getresponse()
            r = todo_test.Response(resp.status, resp.getheaders(), resp.read().decode())
        finally:
            conn.close()
        self.assertProblem(r, 413, "PAYLOAD_TOO_LARGE")

    def test_wrong_content_type(self):
        good = json.dumps({"title": "fine", "name": "fine", "minutes": 5}).encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                      "application/jsonx", "multipart/form-data; boundary=x", None):
            self.raw_write(good, 415, "UNSUPPORTED_MEDIA_TYPE", content_type=ctype)

    # --- field values -------------------------------------------------------------------------

    def test_wrong_types(self):
        for body, field in (({"title": 5}, "title"), ({"title": ["x"]}, "title"),
                            ({"title": "x", "description": 7}, "description"),
                            ({"title": "x", "priority": 2}, "priority"),
                            ({"title": "x", "completed": "true"}, "completed"),
                            ({"title": "x", "completed": 1}, "completed"),
                            ({"title": "x", "category_id": str(self.cat["id"])}, "category_id"),
                            ({"title": "x", "category_id": 1.5}, "category_id"),
                            ({"title": "x", "tag_ids": self.tags[1]["id"]}, "tag_ids"),
                            ({"title": "x", "tag_ids": [str(self.tags[1]["id"])]}, "tag_ids"),
                            ({"title": "x", "due_at": 1924992000}, "due_at"),
                            ({"title": "x", "due_at": "2031-01-01T00:00:00Z",
                              "remind_before_minutes": "5"}, "remind_before_minutes"),
                            ({"title": "x", "timezone": 1}, "timezone"),
                            ({"title": "x", "due_at": "2031-01-01T00:00:00Z",
                              "recurrence_rule": {"FREQ": "DAILY"}}, "recurrence_rule")):
            self.each_write(body, 422, "VALIDATION_ERROR", field)

    def test_unknown_priority(self):
        for p in ("critical", "", "Low ", "medium-high"):
            self.each_write({"title": "x", "priority": p}, 422, "VALIDATION_ERROR", "priority")

    def test_bad_titles(self):
        for title in ("", "   ", " \t\n ", "x" * 201, "é" * 201, "  " + "y" * 201 + "  "):
            self.each_write({"title": title}, 422, "VALIDATION_ERROR", "title")
        self.assertProblem(self.api.post("/tasks", {"description": "no title"}), 422,
                           "VALIDATION_ERROR", "title")
        for field in ("title", "priority", "timezone", "completed"):
            self.assertProblem(self.api.patch(self.task_path(), {field: None}), 422,
                               "VALIDATION_ERROR", field)

    def test_overlong_description(self):
        self.each_write({"title": "x", "description": "d" * 4001}, 422, "VALIDATION_ERROR",
                        "description")
        # Characters, not bytes: 4001 two-byte characters, sent as UTF-8.
        raw = json.dumps({"title": "x", "description": "ж" * 4001}, ensure_ascii=False).encode()
        self.assertLess(len(raw), MAX_BODY)
        for method, path in (("POST", "/tasks"), ("PUT", self.task_path()),
                             ("PATCH", self.task_path())):
            r = self.api.request(method, path, raw=raw,
                                 headers={"Content-Type": "application/json"})
            self.assertProblem(r, 422, "VALIDATION_ERROR", "description")

    def test_too_many_tags(self):
        ids = [t["id"] for t in self.tags]
        self.assertEqual(len(ids), 11)
        self.each_write({"title": "x", "tag_ids": ids}, 422, "VALIDATION_ERROR", "tag_ids")

    def test_foreign_or_missing_ids(self):
        for body, field in (({"title": "x", "tag_ids": [self.foreign_tag["id"]]}, "tag_ids"),
                            ({"title": "x", "tag_ids": [self.tags[1]["id"], 99999999]},
                             "tag_ids"),
                            ({"title": "x", "tag_ids": [0]}, "tag_ids"),
                            ({"title": "x", "category_id": self.foreign_cat["id"]},
                             "category_id"),
                            ({"title": "x", "category_id": 99999999}, "category_id"),
                            ({"title": "x", "category_id": -1}, "category_id")):
            self.each_write(body, 422, "VALIDATION_ERROR", field)

    def test_bad_times(self):
        for value in ("2031-01-01", "2031-13-01T00:00:00Z", "2031-02-30T00:00:00Z",
                      "2031-01-01T25:00:00Z", "2031-01-01T10:00:00", "2031-01-01T10:00Z",
                      "tomorrow", "", "2031-01-01T10:00:00+25:00", "1924992000"):
            self.each_write({"title": "x", "due_at": value}, 422, "VALIDATION_ERROR", "due_at")
            self.each_write({"title": "x", "due_at": "2031-01-02T00:00:00Z", "remind_at": value},
                            422, "VALIDATION_ERROR", "remind_at")

    def test_bad_recurrence_rules(self):
        for rule in ("FREQ=SOMETIMES", "garbage", "", "FREQ=DAILY;INTERVAL=x",
                     "FREQ=DAILY;BYDAY=XX", "FREQ=DAILY\nX-INJECT:1", "INTERVAL=2",
                     "FREQ=DAILY;UNTIL=yesterday",
                     # parsed by libical, but not expandable: refused as the recurring service
                     # would refuse them
                     "FREQ=WEEKLY;COUNT=3x", "FREQ=DAILY;INTERVAL=70000", "FREQ=DAILY;BYDAY=1MO",
                     "FREQ=MONTHLY;BYWEEKNO=3", "FREQ=WEEKLY;BYMONTHDAY=3"):
            self.each_write({"title": "x", "due_at": "2031-01-01T00:00:00Z",
                             "recurrence_rule": rule}, 422, "VALIDATION_ERROR",
                            "recurrence_rule")

    def test_rule_or_offset_without_due_at(self):
        body = {"title": "x", "recurrence_rule": "FREQ=DAILY"}
        self.assertProblem(self.api.post("/tasks", body), 422, "VALIDATION_ERROR",
                           "recurrence_rule")
        self.assertProblem(self.api.put(self.task_path(), body), 422, "VALIDATION_ERROR",
                           "recurrence_rule")
        body = {"title": "x", "remind_before_minutes": 10}
        self.assertProblem(self.api.post("/tasks", body), 422, "VALIDATION_ERROR",
                           "remind_before_minutes")
        # The task has a rule and an offset: its due time cannot go.
        self.assertProblem(self.api.patch(self.task_path(), {"due_at": None}), 422,
                           "VALIDATION_ERROR")

    def test_bad_reminders(self):
        due = "2031-01-01T00:00:00Z"
        for minutes in (-1, 525601, 10 ** 12):
            self.each_write({"title": "x", "due_at": due, "remind_before_minutes": minutes},
                            422, "VALIDATION_ERROR", "remind_before_minutes")
        self.each_write({"title": "x", "due_at": due, "remind_at": due,
                         "remind_before_minutes": 5}, 422, "VALIDATION_ERROR")

    def test_bad_time_zones(self):
        for tz in ("Mars/Olympus_Mons", "../../../etc/passwd", "/etc/localtime", "Europe/",
                   "", "x" * 300, "Europe/Berlin\n", "posixrules/../UTC"):
            self.each_write({"title": "x", "timezone": tz}, 422, "VALIDATION_ERROR", "timezone")

    def test_unknown_fields(self):
        for body, field in (({"title": "x", "colour": "red"}, "colour"),
                            ({"title": "x", "id": 5}, "id"),
                            ({"title": "x", "version": 9}, "version"),
                            ({"title": "x", "user_id": "someone-else"}, "user_id")):
            self.each_write(body, 422, "VALIDATION_ERROR", field)

    def test_snooze_bodies(self):
        for body in ({"minutes": 0}, {"minutes": 10081}, {"minutes": "10"}, {"minutes": None},
                     {}, {"minutes": 10, "until": "x"}):
            self.assertProblem(self.api.post(self.task_path("/snooze"), body), 422,
                               "VALIDATION_ERROR")

    def test_a_refused_patch_changes_nothing_else(self):
        # A valid title together with a foreign tag: the whole change is refused.
        body = {"title": "should not stick", "tag_ids": [self.tags[2]["id"],
                                                         self.foreign_tag["id"]]}
        self.assertProblem(self.api.patch(self.task_path(), body), 422, "VALIDATION_ERROR",
                           "tag_ids")
        self.assertEqual(self.api.task(self.task["id"]), self.task)

    def test_refused_post_with_idempotency_key(self):
        r = self.api.post("/tasks", {"title": "x", "colour": 1},
                          headers={"Idempotency-Key": "v-1"})
        self.assertProblem(r, 422, "VALIDATION_ERROR", "colour")

    def test_every_error_names_the_fields(self):
        r = self.api.post("/tasks", {"title": "", "priority": "huge", "timezone": "Nowhere/Land",
                                     "description": "d" * 4001})
        body = self.assertProblem(r, 422, "VALIDATION_ERROR")
        fields = {e["field"] for e in body["errors"]}
        self.assertTrue({"title", "priority", "timezone", "description"} <= fields, body)


if __name__ == "__main__":
    todo_test.run()
