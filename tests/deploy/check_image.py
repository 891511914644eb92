#!/usr/bin/env python3
"""Checks of one built image, for test_images.sh. Subcommands:

  config INSPECT.json SERVICE VERSION REVISION  image config: user, entrypoint, labels, no healthcheck
  size OCI_DIR                                  prints "<pushed> <gzip -6> <uncompressed> <links libical 0|1>"
  rootfs DIR SERVICE                            contents of the mounted image
  runtime INSPECT.json                          prints bash assignments: img_uid img_gid img_wd img_env img_entrypoint
  ids /proc/PID/status UID GID                  the process runs as UID:GID with no other group
  logs FILE                                     every log line is JSON and none is an error

Each check prints what it expected and what it found, and exits 1 on the first difference."""
import gzip
import json
import os
import shlex
import stat
import tarfile
import zlib
import sys

UID = 65532
LABELS = ("title", "description", "source", "version", "revision", "created", "licenses")


def die(msg):
    print(f"check_image: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(what, found, wanted):
    if found != wanted:
        die(f"{what}: expected {wanted!r}, found {found!r}")


def load_config(path):
    doc = json.load(open(path))
    return doc, doc["OCIv1"].get("config", {}), (doc.get("Docker") or {}).get("config", {})


def cmd_config(path, service, version, revision):
    doc, oci, docker = load_config(path)
    name = f"todo-{service}"
    expect("User", oci.get("User"), f"{UID}:{UID}")
    expect("Entrypoint", oci.get("Entrypoint"), [f"/usr/local/bin/{name}"])
    expect("Cmd", oci.get("Cmd") or [], [])
    expect("StopSignal", oci.get("StopSignal"), "SIGTERM")
    expect("WorkingDir", oci.get("WorkingDir"), "/home/nonroot")
    if "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" not in (oci.get("Env") or []):
        die(f"Env: SSL_CERT_FILE not set to the CA bundle: {oci.get('Env')}")
    if docker.get("Healthcheck") or oci.get("Healthcheck"):
        die(f"the image has a HEALTHCHECK ({docker.get('Healthcheck')}); Kubernetes probes are used")
    if not oci.get("ExposedPorts"):
        die("no EXPOSE")
    labels = oci.get("Labels") or {}
    for key in LABELS:
        if f"org.opencontainers.image.{key}" not in labels:
            die(f"label org.opencontainers.image.{key} missing; labels: {sorted(labels)}")
    expect("title label", labels["org.opencontainers.image.title"], name)
    expect("version label", labels["org.opencontainers.image.version"], version)
    expect("revision label", labels["org.opencontainers.image.revision"], revision)
    layers = doc["OCIv1"].get("rootfs", {}).get("diff_ids", [])
    expect("number of layers (FROM scratch + one COPY of the assembled root)", len(layers), 1)


def cmd_size(oci_dir):
    """Prints the layers' size as pushed (the blobs `buildah push` wrote), as `tar | gzip -6` (the
    measure the size goals were set with), uncompressed, and whether libical is inside."""
    def blob(digest):
        algo, _, hexd = digest.partition(":")
        return os.path.join(oci_dir, "blobs", algo, hexd)

    index = json.load(open(os.path.join(oci_dir, "index.json")))
    if len(index.get("manifests", [])) != 1:
        die(f"{oci_dir}: expected one manifest, found {len(index.get('manifests', []))}")
    manifest = json.load(open(blob(index["manifests"][0]["digest"])))
    pushed = gz6 = raw = 0
    links_ical = 0
    for layer in manifest["layers"]:
        if "gzip" not in layer["mediaType"]:
            die(f"layer {layer['digest']} is not gzip-compressed ({layer['mediaType']})")
        expect(f"size of {layer['digest']}", os.path.getsize(blob(layer["digest"])), layer["size"])
        pushed += layer["size"]
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        with gzip.open(blob(layer["digest"])) as f:
            while chunk := f.read(1 << 20):
                raw += len(chunk)
                gz6 += len(z.compress(chunk))
        gz6 += len(z.flush())
        with gzip.open(blob(layer["digest"])) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            links_ical |= any(os.path.basename(m.name).startswith("libical.so") for m in tar)
    print(pushed, gz6, raw, int(links_ical))


def cmd_rootfs(root, service):
    name = f"todo-{service}"
    p = lambda rel: os.path.join(root, rel.lstrip("/"))
    binary = p(f"/usr/local/bin/{name}")
    if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
        die(f"{binary}: missing or not executable")
    for shell in ("/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/apt-get", "/usr/bin/dpkg"):
        if os.path.lexists(p(shell)):
            die(f"{shell} is in the runtime image: it should hold only the binary and its closure")
    st = os.lstat(p("/tmp"))
    if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o1777 or os.listdir(p("/tmp")):
        die(f"/tmp must be an empty directory with mode 1777 (mode {oct(st.st_mode)}, "
            f"entries {os.listdir(p('/tmp'))})")
    passwd = [l.split(":") for l in open(p("/etc/passwd")).read().splitlines()]
    users = {int(f[2]): f for f in passwd}
    if UID not in users or int(users[UID][3]) != UID:
        die(f"/etc/passwd has no user {UID} with group {UID}: {passwd}")
    groups = {int(l.split(":")[2]) for l in open(p("/etc/group")).read().splitlines()}
    if UID not in groups:
        die(f"/etc/group has no group {UID}")
    if os.path.getsize(p("/etc/ssl/certs/ca-certificates.crt")) < 10000:
        die("/etc/ssl/certs/ca-certificates.crt is missing or too small")
    for zone in ("UTC", "America/Mexico_City", "Europe/Berlin"):
        with open(p(f"/usr/share/zoneinfo/{zone}"), "rb") as f:
            if f.read(4) != b"TZif":
                die(f"zoneinfo {zone} is not a TZif file")
    if "hosts: files dns" not in open(p("/etc/nsswitch.conf")).read():
        die("/etc/nsswitch.conf must say 'hosts: files dns'")
    for pkg in ("libc6", "tzdata", "ca-certificates"):
        if not os.path.getsize(p(f"/var/lib/dpkg/status.d/{pkg}")):
            die(f"no package metadata for {pkg} in /var/lib/dpkg/status.d")
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            full = os.path.join(dirpath, entry)
            mode = os.lstat(full).st_mode
            if not stat.S_ISLNK(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                die(f"{full[len(root):]} is setuid/setgid")


def cmd_runtime(path):
    _, oci, _ = load_config(path)
    user = oci.get("User", "")
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or not gid.isdigit():
        die(f"User {user!r} is not numeric uid:gid")
    print(f"img_uid={uid} img_gid={gid} img_wd={shlex.quote(oci.get('WorkingDir') or '/')}")
    print("img_env=(" + " ".join(shlex.quote(e) for e in oci.get("Env") or []) + ")")
    print("img_entrypoint=(" + " ".join(shlex.quote(e) for e in oci.get("Entrypoint") or []) + ")")


def cmd_ids(status_path, uid, gid):
    fields = dict(l.split(":", 1) for l in open(status_path).read().splitlines() if ":" in l)
    expect("Uid (real, effective, saved, fs)", fields["Uid"].split(), [uid] * 4)
    expect("Gid (real, effective, saved, fs)", fields["Gid"].split(), [gid] * 4)
    if set(fields.get("Groups", "").split()) - {gid}:
        die(f"supplementary groups: {fields['Groups'].split()}")


def cmd_logs(path):
    lines = [l for l in open(path, errors="replace").read().splitlines() if l.strip()]
    if not lines:
        die(f"{path}: the service logged nothing")
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            die(f"log line is not JSON: {line}")
        if str(entry.get("level", "")).lower() in ("error", "fatal"):
            die(f"the service logged an error: {line}")


def main(argv):
    commands = {"config": (cmd_config, 4), "size": (cmd_size, 1), "rootfs": (cmd_rootfs, 2),
                "runtime": (cmd_runtime, 1), "ids": (cmd_ids, 3), "logs": (cmd_logs, 1)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.exit(__doc__)
    commands[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
