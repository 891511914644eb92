#!/usr/bin/env python3
"""The project's own rules for Dockerfiles/<service>.Dockerfile and .dockerignore, beyond what
dockerfilelint knows: a build stage on ${DEBIAN_IMAGE} (a tagged debian:bookworm-slim by default),
a runtime stage FROM scratch holding only what the build stage assembled, a numeric non-root USER,
exec-form ENTRYPOINT, STOPSIGNAL SIGTERM, the OCI labels, no HEALTHCHECK, no ADD, nothing buildah
1.28 cannot read (heredocs, COPY --link), apt with --no-install-recommends and list cleanup; one
Dockerfile per services/<name>/, all four alike but for the service's name, port and description.

usage: check_dockerfiles.py [--self-test] SOURCE_DIR
  --self-test  also apply harmful edits to backend.Dockerfile and .dockerignore one at a time and
               fail unless each is reported."""
import json
import os
import re
import sys

LABELS = ("title", "description", "source", "version", "revision", "created", "licenses")
PORTS = {"backend": 8000, "notification": 8001, "email": 8002, "recurring": 8003}
IGNORED = (".git", "build/", "tests/")


def instructions(text):
    """[(KEYWORD, arguments)] with continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    if buf:
        out.append(("UNTERMINATED", buf))
    return out


def check_dockerfile(text, service):
    errs = []
    err = errs.append
    ins = instructions(text)
    name = f"todo-{service}"
    if "<<" in text:
        err("heredoc: buildah 1.28 cannot read it")
    froms = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    if len(froms) != 2:
        err(f"expected two stages (build, runtime), found {len(froms)} FROM")
        return errs
    pre = ins[:froms[0]]
    build = ins[froms[0]:froms[1]]
    final = ins[froms[1]:]
    args = dict((a.split("=", 1) + [""])[:2] for k, a in pre if k == "ARG")
    default = args.get("DEBIAN_IMAGE", "")
    if not re.fullmatch(r"debian:bookworm-slim(@sha256:[0-9a-f]{64})?", default):
        err(f"ARG DEBIAN_IMAGE default {default!r} must be debian:bookworm-slim, optionally @sha256:…")
    if not re.fullmatch(r"\$\{DEBIAN_IMAGE\}\s+AS\s+build", build[0][1], re.I):
        err(f"build stage must be 'FROM ${{DEBIAN_IMAGE}} AS build', is {build[0][1]!r}")
    if final[0][1].strip() != "scratch":
        err(f"runtime stage must be FROM scratch, is {final[0][1]!r}")
    for k, a in ins:
        if k == "ADD":
            err("ADD: use COPY")
        if k == "HEALTHCHECK":
            err("HEALTHCHECK: the kubelet ignores it; Kubernetes probes are used")
        if k == "COPY" and "--link" in a.split():
            err("COPY --link: buildah 1.28 cannot read it")
        if k == "RUN" and "apt-get install" in a:
            if "--no-install-recommends" not in a:
                err("apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists/*" not in a:
                err("apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN")
    for k, a in build:
        if k == "COPY" and re.search(r"(^|\s)\.\s+\.?/?\s*$", a):
            err("COPY . . in the build stage: copy explicit paths")
    for k, a in final:
        if k in ("RUN", "ADD"):
            err(f"{k} in the runtime stage: it has no shell and only copies from the build stage")
        if k == "COPY" and "--from=build" not in a:
            err(f"COPY {a!r} in the runtime stage does not come from the build stage")
    users = [a for k, a in final if k == "USER"]
    if not users or not re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]):
        err(f"the runtime stage's last USER must be numeric uid:gid, not root: {users}")
    entry = [a for k, a in final if k == "ENTRYPOINT"]
    try:
        if not entry or json.loads(entry[-1]) != [f"/usr/local/bin/{name}"]:
            err(f"ENTRYPOINT must be [\"/usr/local/bin/{name}\"], is {entry}")
    except ValueError:
        err(f"ENTRYPOINT must be exec (JSON) form: {entry[-1]!r}")
    if [a for k, a in final if k == "STOPSIGNAL"] != ["SIGTERM"]:
        err("STOPSIGNAL SIGTERM missing in the runtime stage")
    if [a for k, a in final if k == "CMD"]:
        err("CMD in the runtime stage: the entrypoint takes no default arguments")
    labels = " ".join(a for k, a in final if k == "LABEL")
    for key in LABELS:
        if f"org.opencontainers.image.{key}=" not in labels:
            err(f"label org.opencontainers.image.{key} missing")
    if f'org.opencontainers.image.title="{name}"' not in labels:
        err(f"label org.opencontainers.image.title must be \"{name}\"")
    if service in PORTS and [a for k, a in final if k == "EXPOSE"] != [str(PORTS[service])]:
        err(f"EXPOSE must be {PORTS[service]} (the service's port)")
    if "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" not in " ".join(a for k, a in final if k == "ENV"):
        err("ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt missing (OpenSSL's default path is absent)")
    if not any(k == "RUN" and "collect-runtime" in a and f"/build/bin/{name}" in a for k, a in build):
        err(f"the build stage does not collect /build/bin/{name} with collect-runtime")
    return errs


def normalize(text, service):
    """The Dockerfile with what may differ between services (name, port, description) blanked."""
    text = re.sub(r'(org\.opencontainers\.image\.description=)"[^"]*"', r'\1"…"', text)
    text = re.sub(r"^# Image of todo-\w+ \([^)]*\)", "# Image of …", text, flags=re.M)
    text = re.sub(r"^EXPOSE \d+", "EXPOSE …", text, flags=re.M)
    return text.replace(f"todo-{service}", "todo-…").replace(f"{service}.Dockerfile", "….Dockerfile")


def check_ignore(text):
    lines = {l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")}
    errs = []
    for want in IGNORED:
        if not any(l.rstrip("/") == want.rstrip("/") or l == "**/" + want for l in lines):
            errs.append(f".dockerignore: {want} is not excluded")
    return errs


def check(src, override=None):
    """Problems found; override = {relative path: text} replaces files (for the self-test)."""
    override = override or {}
    read = lambda rel: override.get(rel) if rel in override else open(os.path.join(src, rel)).read()
    errs = []
    services = sorted(d for d in os.listdir(os.path.join(src, "services"))
                      if os.path.isfile(os.path.join(src, "services", d, "CMakeLists.txt")))
    dockerfiles = sorted(f[:-len(".Dockerfile")] for f in os.listdir(os.path.join(src, "Dockerfiles"))
                         if f.endswith(".Dockerfile"))
    for s in services:
        if s not in dockerfiles:
            errs.append(f"services/{s} has no Dockerfiles/{s}.Dockerfile")
    reference = normalize(read("Dockerfiles/backend.Dockerfile"), "backend")
    for s in dockerfiles:
        text = read(f"Dockerfiles/{s}.Dockerfile")
        errs += [f"Dockerfiles/{s}.Dockerfile: {e}" for e in check_dockerfile(text, s)]
        if normalize(text, s) != reference:
            errs.append(f"Dockerfiles/{s}.Dockerfile differs from backend.Dockerfile in more than the "
                        "service's name, port and description (the shared build layers depend on it)")
    try:
        errs += check_ignore(read(".dockerignore"))
    except OSError:
        errs.append(".dockerignore missing")
    return errs


def edits(src):
    df = open(os.path.join(src, "Dockerfiles/backend.Dockerfile")).read()
    ign = open(os.path.join(src, ".dockerignore")).read()
    sub = lambda old, new: {"Dockerfiles/backend.Dockerfile": df.replace(old, new, 1)}
    return [
        ("root user", sub("USER 65532:65532", "USER 0:0")),
        ("named user", sub("USER 65532:65532", "USER nonroot")),
        ("shell-form entrypoint", sub('ENTRYPOINT ["/usr/local/bin/todo-backend"]', "ENTRYPOINT /usr/local/bin/todo-backend")),
        ("healthcheck", sub("STOPSIGNAL SIGTERM", 'STOPSIGNAL SIGTERM\nHEALTHCHECK CMD ["/usr/local/bin/todo-backend", "--version"]')),
        ("no stop signal", sub("STOPSIGNAL SIGTERM\n", "")),
        ("runtime on debian", sub("FROM scratch", "FROM ${DEBIAN_IMAGE}")),
        ("latest base", sub("ARG DEBIAN_IMAGE=debian:bookworm-slim", "ARG DEBIAN_IMAGE=debian:latest")),
        ("apt recommends", sub("install -y --no-install-recommends", "install -y")),
        ("apt lists kept", sub(" \\\n && rm -rf /var/lib/apt/lists/*", "")),
        ("ADD", sub("COPY cmake/ cmake/", "ADD cmake/ cmake/")),
        ("COPY --link", sub("COPY --from=build /rootfs/ /", "COPY --link --from=build /rootfs/ /")),
        ("RUN in runtime", sub("USER 65532:65532", "RUN [\"/usr/local/bin/todo-backend\", \"--version\"]\nUSER 65532:65532")),
        ("no title label", sub('org.opencontainers.image.title="todo-backend" \\\n      ', "")),
        ("no SSL_CERT_FILE", sub("ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n", "")),
        ("wrong port", sub("EXPOSE 8000", "EXPOSE 8080")),
        ("drifted from the others", sub("-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_BUILD_TYPE=Debug")),
        (".git in context", {".dockerignore": ign.replace("\n.git\n", "\n")}),
    ]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    src = args[0]
    errs = check(src)
    for e in errs:
        print(f"FAIL {e}")
    if errs:
        return 1
    print("Dockerfiles: project rules pass for", ", ".join(
        sorted(f for f in os.listdir(os.path.join(src, "Dockerfiles")) if f.endswith(".Dockerfile"))))
    if "--self-test" in argv:
        missed = []
        for what, override in edits(src):
            if list(override.values())[0] == open(os.path.join(src, list(override)[0])).read():
                print(f"self-test: edit {what!r} does not apply to the current file")
                missed.append(what)
                continue
            found = check(src, override)
            print(f"self-test: {what:24s} -> {found[0] if found else 'NOT DETECTED'}")
            if not found:
                missed.append(what)
        if missed:
            print(f"self-test: not detected: {missed}")
            return 1
        print(f"self-test: all {len(edits(src))} harmful edits detected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
