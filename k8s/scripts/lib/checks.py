"""Small checks for validate-dapr-deployment.sh, on either target (standard library only):

  checks.py metadata APP_ID [PUBSUB_TYPE] < metadata.json
      a sidecar's GET /v1.0/metadata: its app id, the components the app needs (pubsub, of
      PUBSUB_TYPE when given; statestore for email) and the app's subscription with its
      dead-letter topic
  checks.py pubsub-type < metadata.json
      prints the type of the component named pubsub
  checks.py kafka-ping HOST:PORT[,HOST:PORT...]
      an ApiVersions request to each broker (the Kafka protocol, not only a TCP connect)

Each prints one line (what it found, or what is wrong) and exits 0 when the check holds, 1 when
it does not, 2 on bad usage."""

import json
import socket
import struct
import sys

# What each app-id subscribes to (SYSTEM.md §1); every subscription has <topic>-dlq.
SUBSCRIPTIONS = {"backend": "task-recurrence", "notification": "task-events",
                 "email": "task-reminders", "recurring": "task-events"}
NEEDS = {"email": {"pubsub": None, "statestore": "state.postgresql"}}


def metadata(app_id, pubsub_type=None):
    try:
        md = json.load(sys.stdin)
    except ValueError as e:
        return 1, f"not JSON: {e}"
    if md.get("id") != app_id:
        return 1, f"app id {md.get('id')!r}, expected {app_id!r}"
    comps = {c.get("name"): c.get("type") for c in md.get("components") or []}
    needs = dict(NEEDS.get(app_id, {"pubsub": None}))
    if pubsub_type:
        needs["pubsub"] = pubsub_type
    for name, typ in needs.items():
        if name not in comps:
            return 1, f"component {name} not loaded (loaded: {sorted(comps)})"
        if name == "pubsub" and not comps[name].startswith("pubsub."):
            return 1, f"component pubsub has type {comps[name]}"
        if typ and comps[name] != typ:
            return 1, f"component {name} has type {comps[name]}, expected {typ}"
    topic = SUBSCRIPTIONS.get(app_id)
    subs = md.get("subscriptions") or []
    found = [s for s in subs if s.get("pubsubname") == "pubsub" and s.get("topic") == topic]
    if topic and not found:
        return 1, (f"no subscription to pubsub/{topic} (has: "
                   f"{[(s.get('pubsubname'), s.get('topic')) for s in subs]})")
    if topic and found[0].get("deadLetterTopic") != f"{topic}-dlq":
        return 1, f"subscription {topic} has dead-letter topic {found[0].get('deadLetterTopic')!r}"
    parts = [f"{n}={t}" for n, t in sorted(comps.items())]
    if topic:
        parts.append(f"subscribed to {topic} (dead letters to {topic}-dlq)")
    return 0, ", ".join(parts)


def pubsub_type():
    try:
        md = json.load(sys.stdin)
    except ValueError as e:
        return 1, f"not JSON: {e}"
    for c in md.get("components") or []:
        if c.get("name") == "pubsub":
            return 0, c.get("type", "")
    return 1, "no component named pubsub"


def kafka_ping(brokers, timeout=5.0):
    found = []
    for b in brokers.split(","):
        host, _, port = b.strip().rpartition(":")
        if not host or not port.isdigit():
            return 1, f"broker {b!r} is not host:port"
        corr = 0x70D0
        client = b"todo-validate"
        # ApiVersions (key 18) v0: request header v1 (key, version, correlation id, client id).
        body = struct.pack(">hhih", 18, 0, corr, len(client)) + client
        try:
            with socket.create_connection((host, int(port)), timeout) as s:
                s.settimeout(timeout)
                s.sendall(struct.pack(">i", len(body)) + body)
                head = _recv(s, 4)
                size = struct.unpack(">i", head)[0]
                if size < 10 or size > 1 << 20:
                    return 1, f"{b}: a reply of {size} bytes is no ApiVersions reply"
                data = _recv(s, size)
        except OSError as e:
            return 1, f"{b}: {e}"
        got_corr, err, n = struct.unpack(">ihi", data[:10])
        if got_corr != corr or err != 0:
            return 1, f"{b}: correlation id {got_corr}, error code {err}"
        found.append(f"{b} ({n} APIs)")
    return 0, "ApiVersions answered by " + ", ".join(found)


def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("connection closed by the broker")
        out += chunk
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "metadata" and len(argv) <= 3:
        code, text = metadata(argv[1], argv[2] if len(argv) == 3 else None)
    elif argv == ["pubsub-type"]:
        code, text = pubsub_type()
    elif len(argv) == 2 and argv[0] == "kafka-ping":
        code, text = kafka_ping(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
