#!/usr/bin/python3
"""The SMTP sink of the reminder-lateness benchmark: Debian's aiosmtpd on 127.0.0.1:--port,
accepting every mail. For each one it appends a line to --out:

    <arrival ns> <MAIL FROM ns> <number of recipients> <Message-ID> <Subject>

arrival = when the end of the data (the final ".") had arrived, i.e. when the mail was accepted;
MAIL FROM = when that command of the same transaction arrived (CLOCK_REALTIME both).
It only reads the header block (no MIME parsing and no maildir), so that the sink costs as little
as an SMTP server can. Serves until SIGTERM/SIGINT.
"""

import argparse
import email.header
import re
import signal
import threading
import time

from aiosmtpd.controller import Controller

SUBJECT = re.compile(rb"^Subject:[ \t]*(.*(?:\r\n[ \t].*)*)", re.M | re.I)
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.M | re.I)


class Sink:
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.count = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from_ns = time.time_ns()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        arrival = time.time_ns()
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        head = data.split(b"\r\n\r\n", 1)[0]
        m = SUBJECT.search(head)
        subject = m.group(1).replace(b"\r\n", b"").decode("utf-8", "replace") if m else "-"
        if "=?" in subject:
            subject = str(email.header.make_header(email.header.decode_header(subject)))
        m = MESSAGE_ID.search(head)
        msgid = m.group(1).decode("ascii", "replace") if m else "-"
        with self.lock:
            started = getattr(envelope, "mail_from_ns", 0)
            self.out.write(f"{arrival} {started} {len(envelope.rcpt_tos)} {msgid} {subject}\n")
            self.out.flush()
            self.count += 1
        return "250 2.0.0 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.out, "a") as out:
        sink = Sink(out)
        ctl = Controller(sink, hostname="127.0.0.1", port=args.port, ready_timeout=10)
        ctl.start()
        print(f"smtp sink on 127.0.0.1:{args.port}", flush=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        done.wait()
        ctl.stop()
        print(f"smtp sink: {sink.count} mails", flush=True)


if __name__ == "__main__":
    main()
