"""A real SMTP server for the tests and local runs: Debian's python3-aiosmtpd, saving every accepted
message to a maildir, with optional AUTH (PLAIN/LOGIN), optional STARTTLS, and replies chosen per
recipient (a 4xx or 5xx to RCPT TO or to the end of the data, once, n times or for good), and an
optional latency before RCPT TO or end-of-data replies. A message counts as accepted (saved) once
its data has arrived, even if the client is gone before the 250 reply, as with a real MTA.

    smtp = SmtpServer(user="todo", password="secret")   # listens on a free 127.0.0.1 port at once
    smtp.refuse_rcpt("bounce@example.com", "550 5.1.1 No such user")         # for good
    smtp.refuse_rcpt("busy@example.com", "451 4.3.2 Try again later", times=1)
    smtp.refuse_data("big@example.com", "552 5.3.4 Message too big")
    smtp.url                       # "smtp://127.0.0.1:<port>"
    msgs = smtp.wait_for(lambda: smtp.messages(rcpt="a@example.com"), timeout=10)
    msgs[0].msg["Subject"], msgs[0].text(), msgs[0].html(), msgs[0].rcpt_tos, msgs[0].tls
    smtp.rcpt_attempts("busy@example.com")              # RCPT TO commands seen for it
    smtp.stop(); smtp.start()                           # down for a while, same port
    smtp.close()

Run on its own (local stack): python3 smtp_server.py --port 1025 --maildir DIR [--user U
--password P]; it serves until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import email
import email.policy
import logging
import mailbox
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

logging.getLogger("mail.log").setLevel(logging.CRITICAL)


def _quiet():
    """aiosmtpd's warning about AUTH without TLS (wanted here) and asyncio's about transports
    left to the garbage collector when the server stops; set again at each start, since
    unittest installs its own warning filters when it runs."""
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    warnings.filterwarnings("ignore", message="unclosed transport", category=ResourceWarning)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Message:
    """One accepted message: envelope, raw bytes, whether it came over TLS and who logged in."""

    def __init__(self, mail_from, rcpt_tos, data, tls, login):
        self.mail_from = mail_from
        self.rcpt_tos = list(rcpt_tos)
        self.data = data
        self.tls = tls
        self.login = login
        self.time = time.time()
        self.msg = email.message_from_bytes(data, policy=email.policy.default)

    def part(self, content_type):
        for p in self.msg.walk():
            if p.get_content_type() == content_type and not p.is_multipart():
                return p
        return None

    def text(self):
        """The text/plain part decoded, line ends as \\n."""
        p = self.part("text/plain")
        return p.get_content().replace("\r\n", "\n") if p is not None else None

    def html(self):
        p = self.part("text/html")
        return p.get_content().replace("\r\n", "\n") if p is not None else None

    def __repr__(self):
        return f"<Message {self.msg['Message-ID']} to {self.rcpt_tos}>"


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.server.rcpt_delay:
            await asyncio.sleep(self.server.rcpt_delay)  # a slow server's latency, not a wait
        reply = self.server._reply("rcpt", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)
        for rcpt in envelope.rcpt_tos:
            reply = self.server._reply("data", rcpt)
            if reply:
                return reply
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.server._accept(Message(envelope.mail_from, envelope.rcpt_tos, data,
                                    session.ssl is not None, login))
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port=None, maildir=None, user=None, password=None, tls_cert=None,
                 tls_key=None, require_tls=False, rcpt_delay=0.0, data_delay=0.0, start=True):
        self.port = port or _free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self._own_dir = maildir is None
        self.dir = maildir or tempfile.mkdtemp(prefix="todo-maildir-", dir="/tmp")
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) leaves an existing dir as is
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.maildir = mailbox.Maildir(self.dir, create=False)
        self.user = user
        self.password = password
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.require_tls = require_tls
        self.rcpt_delay = rcpt_delay  # seconds before each RCPT TO reply
        self.data_delay = data_delay  # seconds before the end of the data is answered
        self._lock = threading.Condition()
        self._messages = []
        self._policies = {"rcpt": {}, "data": {}}
        self._attempts = {"rcpt": {}, "data": {}}
        self._auth_failures = 0
        self._controller = None
        if start:
            self.start()

    # -- configuration --

    def refuse_rcpt(self, address, reply, times=None):
        """Answers RCPT TO:<address> with reply (e.g. "550 5.1.1 No such user"), `times` times
        (None: for good), then accepts it."""
        with self._lock:
            self._policies["rcpt"][address.lower()] = [reply, times]

    def refuse_data(self, address, reply, times=None):
        """Answers the end of the data of a mail to address with reply."""
        with self._lock:
            self._policies["data"][address.lower()] = [reply, times]

    def clear_policies(self):
        with self._lock:
            self._policies = {"rcpt": {}, "data": {}}

    # -- inspection --

    def messages(self, rcpt=None, message_id=None):
        with self._lock:
            return [m for m in self._messages
                    if (rcpt is None or rcpt.lower() in (r.lower() for r in m.rcpt_tos))
                    and (message_id is None or m.msg["Message-ID"] == message_id)]

    def rcpt_attempts(self, address):
        with self._lock:
            return self._attempts["rcpt"].get(address.lower(), 0)

    def data_attempts(self, address):
        with self._lock:
            return self._attempts["data"].get(address.lower(), 0)

    @property
    def auth_failures(self):
        with self._lock:
            return self._auth_failures

    def maildir_count(self):
        return len(self.maildir.keys())

    def wait_for(self, predicate, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
                self._lock.wait(min(left, 0.05))

    # -- the server side --

    def _reply(self, kind, address):
        with self._lock:
            key = address.lower()
            self._attempts[kind][key] = self._attempts[kind].get(key, 0) + 1
            self._lock.notify_all()
            p = self._policies[kind].get(key)
            if not p:
                return None
            reply, times = p
            if times is not None:
                if times <= 0:
                    return None
                p[1] = times - 1
            return reply

    def _accept(self, message):
        self.maildir.add(message.data)
        with self._lock:
            self._messages.append(message)
            self._lock.notify_all()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and self.user is not None
              and auth_data.login == self.user.encode()
              and auth_data.password == (self.password or "").encode())
        if not ok:
            with self._lock:
                self._auth_failures += 1
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    def start(self):
        _quiet()
        kw = {}
        if self.user is not None:
            kw.update(auth_required=True, auth_require_tls=False, authenticator=self._authenticate)
        if self.tls_cert:
            import ssl
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
            kw.update(tls_context=ctx, require_starttls=self.require_tls)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      ready_timeout=10, **kw)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def make_self_signed(directory, host="127.0.0.1"):
    """A self-signed certificate for host (openssl CLI); returns (cert, key) paths."""
    import subprocess
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=1025)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    server = SmtpServer(port=args.port, maildir=args.maildir, user=args.user,
                        password=args.password)
    print(f"smtp sink on {server.url}, maildir {args.maildir}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.close()


if __name__ == "__main__":
    main()
