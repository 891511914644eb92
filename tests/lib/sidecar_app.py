"""A small app for tests of the Dapr sidecar double: the HTTP server a sidecar's --app-port points
at. It records every request and answers per path as the test configures.

    app = SidecarApp()                      # listens on a free 127.0.0.1 port at once
    app.subscribe(200, [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])
    app.policy("/orders", status=500, times=2)   # the first 2 calls get 500,
    app.policy("/orders", status=200)            # then 200
    ... start dapr-sidecar --app-port app.port ...
    reqs = app.wait_for("/orders", count=3)      # bounded wait; AssertionError on time-out
    reqs[0].body, reqs[0].header("Content-Type"), reqs[0].json()
    app.close()

API (all thread-safe):
- SidecarApp(port=None, start=True): port None = a free port; start=False binds later with
  start() (a sidecar waiting for the port sees it closed until then). `port`, `url`.
- subscribe(status=200, body=[], content_type="application/json", delay=0, drop_first=0): the
  reply to GET /dapr/subscribe; body is bytes/str (sent as is) or any JSON value (dumped); the
  first drop_first calls get their connection closed without a reply (a transport error).
- config(status=404, body=None, content_type="application/json"): the reply to GET /dapr/config.
- policy(path, status=200, body=b"", content_type=None, delay=0, times=None, headers=None,
  hold=None): adds a reply for requests to path (exact path without the query, or a prefix
  ending with "*"). Replies queue per path: one with `times` is used that many times, then the
  next; the last is kept for good. status=None closes the connection without a reply. hold is a
  threading.Event the reply waits for (at most 120 s) before it is sent. Paths with no policy
  get 200 with an empty body.
- clear_policies(path=None): forgets the replies of path (of every path when None).
- requests(path=None, method=None) -> [Request]; count(path=None, method=None); clear().
- wait_for(path, count=1, timeout=30, method=None) -> the first `count` matching requests.
- wait_until(predicate, timeout=30, what=""): polls predicate() every 20 ms.
- close(): stops the server and joins its thread.
Request: method, path (without query), query, headers (list of (name, value) as received),
body (bytes), time (time.monotonic() on arrival); header(name) is case-insensitive (first value);
json() parses body.
"""

import http.server
import json
import socket
import socketserver
import threading
import time


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.time = time.monotonic()

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.method} {self.path} {len(self.body)} bytes>"


class _Reply:
    def __init__(self, status=200, body=b"", content_type=None, delay=0.0, times=None,
                 headers=None, hold=None):
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        self.status = status
        self.body = bytes(body)
        self.content_type = content_type
        self.delay = delay
        self.times = times
        self.headers = headers or {}
        self.hold = hold


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SidecarApp:
    def __init__(self, port=None, start=True):
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Condition()
        self._requests = []
        self._policies = {}
        self._subscribe = _Reply(200, b"[]", "application/json")
        self._subscribe_drops = 0
        self._config = _Reply(404, b"", None)
        self._server = None
        self._thread = None
        if start:
            self.start()

    # -- configuration --

    def subscribe(self, status=200, body=(), content_type="application/json", delay=0.0,
                  drop_first=0):
        if isinstance(body, tuple):
            body = list(body)
        with self._lock:
            self._subscribe = _Reply(status, body, content_type, delay)
            self._subscribe_drops = drop_first

    def config(self, status=404, body=None, content_type="application/json"):
        with self._lock:
            self._config = _Reply(status, body, content_type if body is not None else None)

    def policy(self, path, status=200, body=b"", content_type=None, delay=0.0, times=None,
               headers=None, hold=None):
        with self._lock:
            self._policies.setdefault(path, []).append(
                _Reply(status, body, content_type, delay, times, headers, hold))

    def clear_policies(self, path=None):
        with self._lock:
            if path is None:
                self._policies.clear()
            else:
                self._policies.pop(path, None)

    # -- inspection --

    def _matching(self, path, method):
        return [r for r in self._requests
                if (path is None or r.path == path or
                    (path.endswith("*") and r.path.startswith(path[:-1])))
                and (method is None or r.method == method)]

    def requests(self, path=None, method=None):
        with self._lock:
            return list(self._matching(path, method))

    def count(self, path=None, method=None):
        return len(self.requests(path, method))

    def clear(self):
        with self._lock:
            self._requests.clear()

    def wait_until(self, predicate, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._lock.wait(min(left, 0.02))

    def wait_for(self, path, count=1, timeout=30.0, method=None):
        def enough():
            got = self._matching(path, method)
            return got[:count] if len(got) >= count else None
        return self.wait_until(enough, timeout,
                               f"{count} request(s) to {path} (got {self.count(path, method)})")

    # -- serving --

    def _reply_for(self, method, path):
        with self._lock:
            if method == "GET" and path == "/dapr/subscribe":
                if self._subscribe_drops > 0:
                    self._subscribe_drops -= 1
                    return _Reply(None)
                return self._subscribe
            if method == "GET" and path == "/dapr/config":
                return self._config
            queue = self._policies.get(path)
            if queue is None:
                for key, q in self._policies.items():
                    if key.endswith("*") and path.startswith(key[:-1]):
                        queue = q
                        break
            if not queue:
                return _Reply(200)
            reply = queue[0]
            if reply.times is not None and len(queue) > 1:
                reply.times -= 1
                if reply.times <= 0:
                    queue.pop(0)
            return reply

    def _handle(self, h):
        path, _, query = h.path.partition("?")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        req = Request(h.command, path, query, list(h.headers.items()), body)
        reply = self._reply_for(h.command, path)
        with self._lock:  # recorded on arrival, so a test sees a delivery still in flight
            self._requests.append(req)
            self._lock.notify_all()
        if reply.hold is not None:
            reply.hold.wait(120)  # released by the test
        if reply.delay:
            time.sleep(reply.delay)  # the reply's configured latency, not synchronisation
        if reply.status is None:
            h.close_connection = True
            return
        try:
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            if reply.content_type:
                h.send_header("Content-Type", reply.content_type)
            h.send_header("Content-Length", str(len(reply.body)))
            h.end_headers()
            if reply.body and h.command != "HEAD":
                h.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the caller gave up (a time-out, or it was killed)

    def start(self):
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_any(self):
                app._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_any

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)
            self._server = None
