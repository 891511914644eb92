"""Authentication and isolation between users: missing, malformed, forged, expired and unsigned
tokens are 401; a token on another user's path is 403; another user's ids under one's own path
are 404; nothing of another user shows in lists or counts, and nothing of theirs changes."""

import base64
import json
import time

import todo_test
from todo_test import make_token, b64url


def tamper_payload(token, **changes):
    """token with its payload changed and the old signature kept."""
    h, p, s = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    body.update(changes)
    return f"{h}.{b64url(json.dumps(body).encode())}.{s}"


class Auth(todo_test.BackendTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = todo_test.Api(cls.backend, "alice", email="alice@example.com")
        cls.bob = todo_test.Api(cls.backend, "bob", email="bob@example.com")
        cls.bob_cat = cls.bob.create_category("Secret")
        cls.bob_tag = cls.bob.create_tag("private")
        cls.bob_task = cls.bob.create_task(title="bob's budget secret", description="budget",
                                           priority="urgent", category_id=cls.bob_cat["id"],
                                           tag_ids=[cls.bob_tag["id"]],
                                           due_at="2031-01-01T00:00:00Z")
        cls.alice_cat = cls.alice.create_category("Mine")
        cls.alice_tag = cls.alice.create_tag("mine")
        cls.alice_task = cls.alice.create_task(title="alice's budget",
                                               category_id=cls.alice_cat["id"],
                                               tag_ids=[cls.alice_tag["id"]])

    def assert401(self, token, raw_header=None):
        headers = {"Authorization": raw_header} if raw_header is not None else None
        before = self.snapshot()
        for method, path, body in (("GET", "/tasks", None), ("POST", "/tasks", {"title": "x"}),
                                   ("GET", f"/tasks/{self.alice_task['id']}", None),
                                   ("PATCH", f"/tasks/{self.alice_task['id']}", {"title": "x"}),
                                   ("DELETE", f"/tasks/{self.alice_task['id']}", None),
                                   ("GET", "/categories", None), ("POST", "/tags", {"name": "x"})):
            r = self.alice.request(method, path, body=body, token=token, headers=headers)
            self.assertProblem(r, 401, "UNAUTHORIZED")
            self.assertIn("bearer", (r.header("WWW-Authenticate") or "").lower(), r.headers)
        self.assertUnchanged(before, "after unauthenticated requests")

    def test_no_token(self):
        self.assert401(None)

    def test_malformed_tokens(self):
        good = self.alice.token
        for raw in ("Bearer", "Bearer ", "Bearer abc", "Bearer a.b.c", "Bearer ..",
                    f"Basic {base64.b64encode(b'alice:pw').decode()}", good,
                    f"Bearer {good}.extra", f"Bearer {good[:-5]}", "Bearer " + "x" * 4000):
            self.assert401(None, raw_header=raw)

    def test_bad_signature(self):
        self.assert401(make_token("alice", secret="another-secret-0123456789abcdefghij"))
        self.assert401(tamper_payload(self.alice.token, sub="bob"))
        self.assert401(tamper_payload(self.alice.token, exp=int(time.time()) + 10 ** 6))

    def test_expired(self):
        self.assert401(make_token("alice", exp_in=-120))
        self.assert401(make_token("alice", exp_in=-86400))

    def test_leeway(self):
        r = self.alice.get("/tasks", token=make_token("alice", exp_in=-20))
        self.assertEqual(r.status, 200, r)
        r = self.alice.get("/tasks", token=make_token("alice", nbf=int(time.time()) + 20))
        self.assertEqual(r.status, 200, r)

    def test_not_yet_valid(self):
        self.assert401(make_token("alice", nbf=int(time.time()) + 600))

    def test_missing_exp(self):
        self.assert401(make_token("alice", exp_in=None))

    def test_alg_none(self):
        self.assert401(make_token("alice", alg="none"))
        # Unsigned, with the signature of a good token glued on.
        unsigned = make_token("alice", alg="none")
        self.assert401(unsigned + self.alice.token.split(".")[2])

    def test_other_hmac_algorithm(self):
        self.assert401(make_token("alice", alg="HS512"))

    def test_bad_subject(self):
        self.assert401(make_token(""))
        self.assert401(make_token("x" * 129))
        r = self.backend.request("GET", "/api/bad%20user/tasks", token=make_token("bad user"))
        self.assertProblem(r, 401, "UNAUTHORIZED")

    def test_valid_token_with_odd_but_allowed_subject(self):
        user = "A.b_c-d@e.F9"
        api = todo_test.Api(self.backend, user)
        t = api.create_task(title="mine")
        self.assertEqual(t["user_id"], user)
        self.assertEqual(api.list()["items"], [t])
        long_user = todo_test.Api(self.backend, "L" * 128)
        self.assertEqual(long_user.get("/tasks").status, 200)

    def test_first_request_records_user(self):
        api = todo_test.Api(self.backend, "carol", email="carol@example.org")
        self.assertEqual(self.sql("SELECT count(*) FROM backend.users WHERE id = 'carol'"),
                         [["0"]])
        self.assertEqual(api.get("/tasks").status, 200)
        self.assertEqual(self.sql("SELECT id, email FROM backend.users WHERE id = 'carol'"),
                         [["carol", "carol@example.org"]])
        # Refused requests record nobody.
        for tok in (make_token("dave", secret="another-secret-0123456789abcdefghij"),
                    make_token("dave", exp_in=-3600), make_token("dave", alg="none")):
            self.backend.request("GET", "/api/dave/tasks", token=tok)
        self.backend.request("GET", "/api/erin/tasks", token=self.alice.token)
        self.assertEqual(self.scalar("SELECT count(*) FROM backend.users "
                                     "WHERE id IN ('dave', 'erin')"), "0")

    # --- authorisation ---------------------------------------------------------------------

    def test_token_of_a_on_path_of_b_is_403(self):
        b = self.bob_task["id"]
        before = self.snapshot()
        for method, path, body in (
                ("GET", "/tasks", None), ("POST", "/tasks", {"title": "x"}),
                ("GET", f"/tasks/{b}", None), ("PUT", f"/tasks/{b}", {"title": "x"}),
                ("PATCH", f"/tasks/{b}", {"title": "x"}), ("DELETE", f"/tasks/{b}", None),
                ("POST", f"/tasks/{b}/complete", None), ("POST", f"/tasks/{b}/reopen", None),
                ("PATCH", f"/tasks/{b}/complete", None),
                ("POST", f"/tasks/{b}/snooze", {"minutes": 5}),
                ("PUT", f"/tasks/{b}/tags/{self.bob_tag['id']}", None),
                ("DELETE", f"/tasks/{b}/tags/{self.bob_tag['id']}", None),
                ("GET", "/categories", None), ("POST", "/categories", {"name": "x"}),
                ("GET", f"/categories/{self.bob_cat['id']}", None),
                ("PATCH", f"/categories/{self.bob_cat['id']}", {"name": "x"}),
                ("DELETE", f"/categories/{self.bob_cat['id']}", None),
                ("GET", "/tags", None), ("POST", "/tags", {"name": "x"}),
                ("GET", f"/tags/{self.bob_tag['id']}", None),
                ("PATCH", f"/tags/{self.bob_tag['id']}", {"name": "x"}),
                ("DELETE", f"/tags/{self.bob_tag['id']}", None)):
            r = self.bob.request(method, path, body=body, token=self.alice.token)
            self.assertProblem(r, 403, "FORBIDDEN")
            self.assertNotIn("secret", r.body.lower(), f"{method} {path} reveals: {r.body}")
        self.assertUnchanged(before, "after alice's requests on bob's paths")

    def test_ids_of_b_under_path_of_a_are_404(self):
        b = self.bob_task["id"]
        mine = self.alice_task["id"]
        before = self.snapshot()
        for method, path, body in (
                ("GET", f"/tasks/{b}", None), ("PUT", f"/tasks/{b}", {"title": "x"}),
                ("PATCH", f"/tasks/{b}", {"title": "x"}), ("DELETE", f"/tasks/{b}", None),
                ("PATCH", f"/tasks/{b}", {"title": "x"}),
                ("POST", f"/tasks/{b}/complete", None), ("POST", f"/tasks/{b}/reopen", None),
                ("PATCH", f"/tasks/{b}/complete", None),
                ("POST", f"/tasks/{b}/snooze", {"minutes": 5}),
                ("PUT", f"/tasks/{b}/tags/{self.alice_tag['id']}", None),
                ("DELETE", f"/tasks/{b}/tags/{self.bob_tag['id']}", None),
                ("PUT", f"/tasks/{mine}/tags/{self.bob_tag['id']}", None),
                ("DELETE", f"/tasks/{mine}/tags/{self.bob_tag['id']}", None),
                ("GET", f"/categories/{self.bob_cat['id']}", None),
                ("PATCH", f"/categories/{self.bob_cat['id']}", {"name": "x"}),
                ("DELETE", f"/categories/{self.bob_cat['id']}", None),
                ("GET", f"/tags/{self.bob_tag['id']}", None),
                ("PATCH", f"/tags/{self.bob_tag['id']}", {"name": "x"}),
                ("DELETE", f"/tags/{self.bob_tag['id']}", None)):
            r = self.alice.request(method, path, body=body)
            self.assertProblem(r, 404, "NOT_FOUND")
            self.assertNotIn("secret", r.body.lower(), f"{method} {path} reveals: {r.body}")
            self.assertIsNone(r.header("ETag"), f"{method} {path}")
        # With If-Match too: the answer must not tell whether the version matched.
        for version in ('"1"', '"2"', "*"):
            r = self.alice.patch(f"/tasks/{b}", {"title": "x"}, headers={"If-Match": version})
            self.assertProblem(r, 404, "NOT_FOUND")
        self.assertUnchanged(before, "after alice's requests on bob's ids")
        self.assertEqual(self.bob.task(b), self.bob_task)

    def test_foreign_ids_in_bodies_are_refused(self):
        before = self.snapshot()
        r = self.alice.post("/tasks", {"title": "x", "category_id": self.bob_cat["id"]})
        self.assertProblem(r, 422, "VALIDATION_ERROR", "category_id")
        r = self.alice.post("/tasks", {"title": "x", "tag_ids": [self.bob_tag["id"]]})
        self.assertProblem(r, 422, "VALIDATION_ERROR", "tag_ids")
        r = self.alice.patch(f"/tasks/{self.alice_task['id']}",
                             {"tag_ids": [self.alice_tag["id"], self.bob_tag["id"]]})
        self.assertProblem(r, 422, "VALIDATION_ERROR", "tag_ids")
        self.assertUnchanged(before, "after alice used bob's ids")

    def test_nothing_of_b_in_lists_or_counts(self):
        for q in ({}, {"q": "budget"}, {"q": "secret"}, {"priority": "urgent"},
                  {"category_id": self.bob_cat["id"]}, {"tag_id": self.bob_tag["id"]},
                  {"due_before": "2032-01-01T00:00:00Z"}, {"status": "all"},
                  {"sort": "due_at"}, {"sort": "priority"}, {"sort": "title"}):
            r = self.alice.get("/tasks" + todo_test.query_string(q))
            if r.status == 422:
                continue  # refusing another user's category/tag id as a filter is fine too
            self.assertEqual(r.status, 200, r)
            for t in r.json["items"]:
                self.assertEqual(t["user_id"], "alice", f"{q}: {t}")
                self.assertNotEqual(t["id"], self.bob_task["id"])
        self.assertEqual([t["id"] for t in self.alice.list(q="budget")["items"]],
                         [self.alice_task["id"]])
        for kind, mine in (("categories", self.alice_cat), ("tags", self.alice_tag)):
            body = self.alice.get(f"/{kind}").json
            items = body["items"] if isinstance(body, dict) else body
            self.assertEqual([c["id"] for c in items], [mine["id"]], f"{kind}: {items}")
            counts = [v for k, v in items[0].items() if "count" in k]
            self.assertEqual(counts, [1], items)
        body = self.bob.get("/categories").json
        items = body["items"] if isinstance(body, dict) else body
        self.assertEqual([c["id"] for c in items], [self.bob_cat["id"]])


if __name__ == "__main__":
    todo_test.run()
