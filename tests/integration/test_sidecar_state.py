"""The sidecar double's State API (DAPR-CONTRACT §5) on state.postgresql (v2 layout) against a real
PostgreSQL: first the C checks of state_check (tests/dapr-sidecar/state_check.c) on the store
itself, then the real dapr-sidecar over HTTP — status codes, headers and bodies of every row of
§5.1/§5.2, ETags, first-write, transactions, TTL, key prefixes, and replicas of one app id sharing
keys that another app id does not see."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import http.client

import todo_test

STATE_CHECK = os.path.join(todo_test.BIN_DIR, "..", "tests", "state_check")
SIDECAR = os.path.join(todo_test.BIN_DIR, "dapr-sidecar")
UUID_RE = todo_test.UUID_RE
RFC3339_SECONDS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

COMPONENT = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.postgresql
  version: v2
  metadata:
  - name: connectionString
    value: "{url}"
{extra}"""


def write_components(directory, url):
    """Four stores: the default (keyPrefix appid), keyPrefix none, keyPrefix name, and one with
    its own table prefix and a 1 s clean-up interval."""
    os.makedirs(directory, exist_ok=True)
    stores = {
        "statestore": "",
        "store-none": "  - name: keyPrefix\n    value: none\n",
        "store-name": "  - name: keyPrefix\n    value: name\n",
        "store-pfx": ("  - name: tablePrefix\n    value: other_\n"
                      "  - name: cleanupInterval\n    value: 1s\n"),
    }
    for name, extra in stores.items():
        with open(os.path.join(directory, f"{name}.yaml"), "w") as f:
            f.write(COMPONENT.format(name=name, url=url, extra=extra))


class Sidecar:
    """One dapr-sidecar for app_id with the components of resources, ready when
    /v1.0/healthz/outbound answers 204. Its log is checked for errors and sanitizer reports."""

    def __init__(self, app_id, resources, extra_env=None):
        self.app_id = app_id
        self.port = todo_test.free_port()
        self.log_path = tempfile.mktemp(prefix=f"todo-sidecar-{app_id}-", suffix=".log",
                                        dir=todo_test.LOG_DIR)
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(extra_env or {})
        env.pop("DAPR_API_TOKEN", None)
        self.proc = subprocess.Popen(
            [SIDECAR, "--app-id", app_id, "--dapr-http-port", str(self.port),
             "--resources-path", resources, "--log-level", "info"],
            env=env, stdout=self.log, stderr=self.log)
        todo_test.wait_until(self._ready, 30, what=f"dapr-sidecar {app_id} outbound health")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"dapr-sidecar exited with {self.proc.returncode}:\n"
                                 + self.logs()[-3000:])
        return self.request("GET", "/v1.0/healthz/outbound").status == 204

    def request(self, method, path, body=None, raw=None, headers=None, timeout=10):
        h = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return todo_test.Response(r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
        finally:
            conn.close()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"dapr-sidecar {self.app_id} did not stop within 30s")
        self.log.close()
        return self.proc.returncode

    def problems(self):
        return [line for line in self.logs().splitlines()
                if any(m in line for m in SANITIZER_MARKS) or '"level":"error"' in line]


@unittest.skipUnless(os.path.exists(STATE_CHECK), "state_check is not built (TODO_BUILD_SIDECAR)")
class StateCheck(unittest.TestCase):
    """The store on its own (state_store.c) against a fresh database."""

    def test_state_check(self):
        cluster = todo_test.PgCluster()
        try:
            url = cluster.create_db("statecheck")
            r = subprocess.run([STATE_CHECK, url], capture_output=True, text=True, timeout=180)
            self.assertEqual(r.returncode, 0, f"state_check failed:\n{r.stdout}\n{r.stderr}")
            self.assertIn("0 failed", r.stdout)
            self.assertFalse([l for l in r.stderr.splitlines()
                              if any(m in l for m in SANITIZER_MARKS)], r.stderr)
        finally:
            cluster.close()


@unittest.skipUnless(os.path.exists(SIDECAR), "dapr-sidecar is not built")
class StateApi(unittest.TestCase):
    """The State API of two sidecars of app 'app1' and one of 'app2' sharing one database."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = todo_test.PgCluster()
        cls.sidecars = []
        cls.tmp = tempfile.mkdtemp(prefix="todo-sidecar-state-")
        try:
            cls.url = cls.cluster.create_db("state")
            cls.resources = os.path.join(cls.tmp, "components")
            write_components(cls.resources, cls.url)
            cls.a = Sidecar("app1", cls.resources)
            cls.sidecars.append(cls.a)
            cls.a2 = Sidecar("app1", cls.resources)
            cls.sidecars.append(cls.a2)
            cls.b = Sidecar("app2", cls.resources)
            cls.sidecars.append(cls.b)
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _teardown(cls):
        problems = []
        try:
            for s in cls.sidecars:
                rc = s.stop()
                found = s.problems()
                if rc not in (0, None) or found:
                    problems.append(f"sidecar {s.app_id} exit {rc} (log {s.log_path}):\n"
                                    + "\n".join(found[:20]))
                else:
                    os.remove(s.log_path)
        finally:
            cls.cluster.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("\n".join(problems))

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    # Helpers.
    def save(self, items, sidecar=None, store="statestore", query=""):
        return (sidecar or self.a).request("POST", f"/v1.0/state/{store}{query}", body=items)

    def get(self, key, sidecar=None, store="statestore", query=""):
        return (sidecar or self.a).request(
            "GET", f"/v1.0/state/{store}/{urllib.parse.quote(key, safe='')}{query}")

    def delete(self, key, etag=None, sidecar=None, store="statestore"):
        headers = {} if etag is None else {"If-Match": etag}
        return (sidecar or self.a).request(
            "DELETE", f"/v1.0/state/{store}/{urllib.parse.quote(key, safe='')}", headers=headers)

    def assertSaved(self, r):
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "", r)

    def assertDaprError(self, r, status, code, reason=None, message=None):
        self.assertEqual(r.status, status, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("application/json"), r)
        body = r.json
        self.assertEqual(body["errorCode"], code, body)
        self.assertIsInstance(body["message"], str, body)
        if message is not None:
            self.assertIn(message, body["message"], body)
        if reason is not None:
            infos = [d for d in body.get("details", [])
                     if d.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"]
            self.assertEqual(len(infos), 1, body)
            self.assertEqual(infos[0]["reason"], reason, body)
            self.assertEqual(infos[0]["domain"], "dapr.io", body)
        else:
            self.assertNotIn("details", body, body)
        return body

    def etag_of(self, key, sidecar=None, store="statestore"):
        r = self.get(key, sidecar, store)
        self.assertEqual(r.status, 200, r)
        etag = r.header("ETag")
        self.assertRegex(etag or "", UUID_RE)
        return etag

    def row(self, key, table="state"):
        rows = self.cluster.psql(
            f"SELECT convert_from(value, 'UTF8'), etag::text, expires_at IS NOT NULL FROM {table} "
            f"WHERE key = '{key}'", "state")
        return rows[0] if rows else None

    # §5.1 save / get.
    def test_save_get_roundtrip(self):
        self.assertSaved(self.save([{"key": "rt-obj", "value": {"b": 1, "a": "x<y", "c": 1.0}},
                                    {"key": "rt-str", "value": "text"},
                                    {"key": "rt-num", "value": 12.5}]))
        r = self.get("rt-obj")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        # Re-marshalled as Go does: keys sorted, 1.0 → 1, HTML characters escaped.
        self.assertEqual(r.body, '{"a":"x\\u003cy","b":1,"c":1}')
        self.assertRegex(r.header("ETag"), UUID_RE)
        self.assertIsNone(r.header("metadata.ttlExpireTime"))
        r = self.get("rt-str")
        self.assertEqual((r.status, r.body), (200, '"text"'))  # a JSON string keeps its quotes
        self.assertEqual(self.get("rt-num").body, "12.5")
        self.assertEqual(self.row("app1||rt-str")[0], '"text"')
        # PUT saves too; an empty array is a no-op 204; null as well.
        r = self.a.request("PUT", "/v1.0/state/statestore", body=[{"key": "rt-put", "value": 1}])
        self.assertSaved(r)
        self.assertEqual(self.get("rt-put").body, "1")
        self.assertSaved(self.save([]))
        self.assertSaved(self.a.request("POST", "/v1.0/state/statestore", raw=b"null"))

    def test_get_missing_is_204(self):
        r = self.get("never-saved")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, "")
        self.assertIsNone(r.header("ETag"))

    def test_last_write_replaces_and_changes_etag(self):
        self.assertSaved(self.save([{"key": "lw", "value": 1}]))
        first = self.etag_of("lw")
        self.assertSaved(self.save([{"key": "lw", "value": 2,
                                     "options": {"concurrency": "last-write"}}]))
        self.assertEqual(self.get("lw").body, "2")
        self.assertNotEqual(self.etag_of("lw"), first)

    # §5.3 first-write and ETags.
    def test_first_write_twice(self):
        item = {"key": "fw", "value": "one", "options": {"concurrency": "first-write"}}
        self.assertSaved(self.save([item]))
        r = self.save([dict(item, value="two")])
        self.assertDaprError(r, 500, "ERR_STATE_SAVE",
                             message="failed saving state in state store statestore: "
                                     "no item was updated")
        self.assertEqual(self.get("fw").body, '"one"')

    def test_etag_on_save(self):
        self.assertSaved(self.save([{"key": "es", "value": 1}]))
        etag = self.etag_of("es")
        self.assertSaved(self.save([{"key": "es", "value": 2, "etag": etag}]))
        self.assertEqual(self.get("es").body, "2")
        r = self.save([{"key": "es", "value": 3, "etag": etag}])  # stale now
        self.assertDaprError(r, 409, "ERR_STATE_SAVE", message="possible etag mismatch")
        r = self.save([{"key": "es", "value": 3, "etag": "not-a-uuid"}])  # v2: 409 as well
        self.assertDaprError(r, 409, "ERR_STATE_SAVE", message="possible etag mismatch")
        r = self.save([{"key": "es-missing", "value": 3, "etag": etag}])
        self.assertDaprError(r, 409, "ERR_STATE_SAVE")
        self.assertEqual(self.get("es").body, "2")
        # With first-write, a matching ETag updates.
        etag = self.etag_of("es")
        self.assertSaved(self.save([{"key": "es", "value": 4, "etag": etag,
                                     "options": {"concurrency": "first-write"}}]))
        self.assertEqual(self.get("es").body, "4")

    def test_etag_on_delete(self):
        self.assertSaved(self.save([{"key": "ed", "value": 1}]))
        etag = self.etag_of("ed")
        self.assertSaved(self.save([{"key": "ed", "value": 2}]))
        r = self.delete("ed", etag=etag)  # stale
        self.assertDaprError(r, 409, "ERR_STATE_DELETE",
                             message="failed deleting state with key ed: possible etag mismatch")
        r = self.delete("ed", etag="garbage")
        self.assertDaprError(r, 409, "ERR_STATE_DELETE")
        self.assertEqual(self.get("ed").status, 200)
        self.assertSaved(self.delete("ed", etag=self.etag_of("ed")))
        self.assertEqual(self.get("ed").status, 204)
        self.assertSaved(self.delete("ed"))  # absent key, no ETag: still 204
        self.assertSaved(self.delete("ed", etag=""))  # empty If-Match = no ETag
        r = self.delete("ed", etag=etag)  # absent key with an ETag: mismatch
        self.assertDaprError(r, 409, "ERR_STATE_DELETE")

    # Bulk get.
    def test_bulk_get_shape(self):
        self.assertSaved(self.save([{"key": "bk-a", "value": {"n": 1}},
                                    {"key": "bk-b", "value": "B",
                                     "metadata": {"ttlInSeconds": "3600"}}]))
        r = self.a.request("POST", "/v1.0/state/statestore/bulk",
                           body={"keys": ["bk-missing", "bk-a", "bk-b"], "parallelism": 2})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("application/json"), r)
        items = r.json
        self.assertEqual(len(items), 3, items)
        by_key = {i["key"]: i for i in items}
        self.assertEqual(set(by_key), {"bk-missing", "bk-a", "bk-b"})
        self.assertEqual(by_key["bk-missing"], {"key": "bk-missing"})  # only the key
        self.assertEqual(set(by_key["bk-a"]), {"key", "data", "etag"})
        self.assertEqual(by_key["bk-a"]["data"], {"n": 1})  # field data, raw JSON
        self.assertRegex(by_key["bk-a"]["etag"], UUID_RE)
        self.assertEqual(by_key["bk-b"]["data"], "B")
        self.assertRegex(by_key["bk-b"]["metadata"]["ttlExpireTime"], RFC3339_SECONDS)
        self.assertEqual(items[-1]["key"], "bk-missing")  # v2: found rows first, then missing
        r = self.a.request("PUT", "/v1.0/state/statestore/bulk", body={"keys": []})
        self.assertEqual((r.status, r.json), (200, []))
        r = self.a.request("POST", "/v1.0/state/statestore/bulk", raw=b"[1]")
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST")

    # Transactions.
    def test_transaction_atomicity(self):
        self.assertSaved(self.save([{"key": "tx-keep", "value": "old"}]))
        bad_etag = "00000000-0000-0000-0000-000000000000"
        r = self.a.request("POST", "/v1.0/state/statestore/transaction", body={"operations": [
            {"operation": "upsert", "request": {"key": "tx-new", "value": {"v": 1}}},
            {"operation": "delete", "request": {"key": "tx-keep", "etag": bad_etag}}]})
        self.assertDaprError(r, 500, "ERR_STATE_TRANSACTION",
                             message="error while executing state transaction: "
                                     "possible etag mismatch")
        self.assertEqual(self.get("tx-new").status, 204)
        self.assertEqual(self.get("tx-keep").body, '"old"')
        r = self.a.request("PUT", "/v1.0/state/statestore/transaction", body={"operations": [
            {"operation": "upsert", "request": {"key": "tx-new", "value": {"v": 1}}},
            {"operation": "delete", "request": {"key": "tx-keep",
                                                "etag": self.etag_of("tx-keep")}}]})
        self.assertSaved(r)
        self.assertEqual(self.get("tx-new").body, '{"v":1}')
        self.assertEqual(self.get("tx-keep").status, 204)
        r = self.a.request("POST", "/v1.0/state/statestore/transaction",
                           body={"operations": [{"operation": "merge", "request": {"key": "x"}}]})
        self.assertDaprError(r, 400, "ERR_NOT_SUPPORTED_STATE_OPERATION",
                             message="operation type merge not supported")
        self.assertSaved(self.a.request("POST", "/v1.0/state/statestore/transaction",
                                        body={"operations": []}))

    # TTL.
    def test_ttl_expiry(self):
        self.assertSaved(self.save([{"key": "ttl", "value": 1,
                                     "metadata": {"ttlInSeconds": "1"}}]))
        r = self.get("ttl")
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.header("metadata.ttlExpireTime") or "", RFC3339_SECONDS)
        todo_test.wait_until(lambda: self.get("ttl").status == 204, 15, what="ttl expiry")
        # Query metadata wins over the item's.
        self.assertSaved(self.save([{"key": "ttl-q", "value": 1,
                                     "metadata": {"ttlInSeconds": "-1"}}],
                                   query="?metadata.ttlInSeconds=1"))
        self.assertEqual(self.row("app1||ttl-q")[2], "t")
        self.assertSaved(self.save([{"key": "ttl-never", "value": 1,
                                     "metadata": {"ttlInSeconds": "-1"}}]))
        self.assertEqual(self.row("app1||ttl-never")[2], "f")
        for bad in ("abc", "1.5", "-2"):
            r = self.save([{"key": "ttl-bad", "value": 1, "metadata": {"ttlInSeconds": bad}}])
            self.assertDaprError(r, 500, "ERR_STATE_SAVE", message="error parsing TTL")

    def test_cleanup_deletes_expired_rows(self):
        self.assertSaved(self.save([{"key": "gc", "value": 1, "metadata": {"ttlInSeconds": "1"}}],
                                   store="store-pfx"))
        self.assertIsNotNone(self.row("app1||gc", "other_state"))
        todo_test.wait_until(lambda: self.row("app1||gc", "other_state") is None, 30,
                             what="the clean-up to delete the expired row")

    # §5.2 errors.
    def test_error_table(self):
        r = self.get("k", store="nope")
        body = self.assertDaprError(r, 400, "ERR_STATE_STORE_NOT_FOUND",
                                    reason="DAPR_STATE_NOT_FOUND",
                                    message="state store nope is not found")
        # Rich form without ResourceInfo for "not found" (§0.1), ErrorInfo metadata {appID}, as
        # dapr/kit marshals it (details are Go maps: keys sorted).
        self.assertEqual(r.body, '{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store '
                         'nope is not found","details":[{"@type":"type.googleapis.com/google.rpc.'
                         'ErrorInfo","domain":"dapr.io","metadata":{"appID":"app1"},"reason":'
                         '"DAPR_STATE_NOT_FOUND"}]}')
        self.assertEqual(body["details"], [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "dapr.io",
            "metadata": {"appID": "app1"}, "reason": "DAPR_STATE_NOT_FOUND"}])
        r = self.save([{"key": "k", "value": 1}], store="nope")
        self.assertDaprError(r, 400, "ERR_STATE_STORE_NOT_FOUND", reason="DAPR_STATE_NOT_FOUND")
        r = self.get("a||b")
        body = self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST",
                                    reason="DAPR_STATE_ILLEGAL_KEY",
                                    message="input key/keyPrefix 'a||b' can't contain '||'")
        msg = "input key/keyPrefix 'a||b' can't contain '||'"
        self.assertEqual(body["details"], [
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "field_violations": [{"field": "a||b", "description": msg}]},
            {"@type": "type.googleapis.com/google.rpc.ResourceInfo", "description": "",
             "owner": "", "resource_name": "statestore", "resource_type": "state"},
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "domain": "dapr.io",
             "metadata": None, "reason": "DAPR_STATE_ILLEGAL_KEY"}])
        r = self.save([{"key": "a||b", "value": 1}])
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST", reason="DAPR_STATE_ILLEGAL_KEY")
        r = self.delete("a||b")
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST", reason="DAPR_STATE_ILLEGAL_KEY")
        r = self.a.request("POST", "/v1.0/state/statestore/bulk", body={"keys": ["ok", "a||b"]})
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST", reason="DAPR_STATE_ILLEGAL_KEY")
        r = self.a.request("POST", "/v1.0/state/statestore", body={"key": "k", "value": 1})
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST")
        r = self.a.request("POST", "/v1.0/state/statestore", raw=b"[{\"key\": ")
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST")
        r = self.save([{"value": 1}])
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST", message='"key" is a required field')
        r = self.save([{"key": 5, "value": 1}])
        self.assertDaprError(r, 400, "ERR_MALFORMED_REQUEST")
        # v2 has no query capability.
        r = self.a.request("POST", "/v1.0-alpha1/state/statestore/query",
                           body={"filter": {}, "sort": []})
        body = self.assertDaprError(r, 500, "ERR_STATE_STORE_NOT_SUPPORTED",
                                    reason="DAPR_STATE_QUERYING_NOT_SUPPORTED",
                                    message="state store does not support querying")
        self.assertEqual(body["details"][0]["resource_name"], "statestore", body)
        r = self.save([{"key": "opt", "value": 1, "options": {"concurrency": "sometimes"}}])
        self.assertDaprError(r, 500, "ERR_STATE_SAVE",
                             message="unrecognized concurrency model 'sometimes'")

    def test_no_state_store_configured(self):
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty, exist_ok=True)
        s = Sidecar("app3", empty)
        self.sidecars.append(s)
        r = s.request("GET", "/v1.0/state/statestore/k")
        body = self.assertDaprError(r, 500, "ERR_STATE_STORE_NOT_CONFIGURED",
                                    reason="DAPR_STATE_NOT_CONFIGURED",
                                    message="state store statestore is not configured")
        self.assertEqual(body["details"][0]["metadata"], {"appID": "app3"})
        self.assertEqual(len(body["details"]), 1, body)

    # §5.4 key prefixes and replicas.
    def test_key_prefixes_in_table(self):
        self.assertSaved(self.save([{"key": "kp", "value": "d"}]))
        self.assertSaved(self.save([{"key": "kp", "value": "n"}], store="store-none"))
        self.assertSaved(self.save([{"key": "kp", "value": "s"}], store="store-name"))
        self.assertEqual(self.row("app1||kp")[0], '"d"')
        self.assertEqual(self.row("kp")[0], '"n"')
        self.assertEqual(self.row("store-name||kp")[0], '"s"')
        r = self.a.request("POST", "/v1.0/state/store-name/bulk", body={"keys": ["kp"]})
        self.assertEqual(r.json[0]["key"], "kp")  # the app sees its own key

    def test_replicas_share_other_app_isolated(self):
        self.assertSaved(self.save([{"key": "shared", "value": "from-a"}], sidecar=self.a))
        r = self.get("shared", sidecar=self.a2)
        self.assertEqual((r.status, r.body), (200, '"from-a"'))
        self.assertEqual(r.header("ETag"), self.etag_of("shared", sidecar=self.a))
        self.assertEqual(self.get("shared", sidecar=self.b).status, 204)
        self.assertSaved(self.save([{"key": "shared", "value": "from-b"}], sidecar=self.b))
        self.assertEqual(self.get("shared", sidecar=self.a).body, '"from-a"')
        self.assertEqual(self.get("shared", sidecar=self.b).body, '"from-b"')
        self.assertEqual(self.row("app2||shared")[0], '"from-b"')
        # A first-write race between the two replicas: exactly one wins.
        item = [{"key": "race", "value": 1, "options": {"concurrency": "first-write"}}]
        results = todo_test.run_concurrently(lambda: self.save(item, sidecar=self.a).status,
                                             lambda: self.save(item, sidecar=self.a2).status)
        self.assertEqual(sorted(results), [204, 500], results)

    def test_v2_tables(self):
        cols = self.cluster.psql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'state' ORDER BY ordinal_position", "state")
        self.assertEqual([tuple(c) for c in cols], [
            ("key", "text"), ("value", "bytea"), ("etag", "uuid"),
            ("created_at", "timestamp with time zone"),
            ("updated_at", "timestamp with time zone"),
            ("expires_at", "timestamp with time zone")])
        self.assertEqual(self.cluster.scalar(
            "SELECT value FROM dapr_metadata WHERE key = 'migrations-state-v2-'", "state"), "1")
        self.assertEqual(self.cluster.scalar(
            "SELECT value FROM dapr_metadata WHERE key = 'migrations-state-v2-other_'", "state"),
            "1")


if __name__ == "__main__":
    todo_test.run()
