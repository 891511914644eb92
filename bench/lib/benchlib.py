"""Helpers shared by the Python benchmarks under bench/: the build, clean-up of every process on
exit, CPU accounting per process group, percentiles, the load average, and a Redis broker with a
pubsub.redis component for the sidecars (instead of kafka-mock).

A benchmark calls setup(name, build_dir) before importing the test fixtures (tests/lib), which
read TODO_BIN_DIR and TODO_SOURCE_DIR when imported."""

import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAME = "bench"
BUILD = None
CLK_TCK = os.sysconf("SC_CLK_TCK")


def setup(name, build_dir):
    """Points the test fixtures at build_dir (relative to the repository, or absolute) and
    installs the signal handlers that turn SIGTERM/SIGINT into a clean exit."""
    global NAME, BUILD
    NAME = name
    BUILD = os.path.join(ROOT, build_dir)
    os.environ["TODO_BIN_DIR"] = os.path.join(BUILD, "bin")
    os.environ["TODO_SOURCE_DIR"] = ROOT
    sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

    def on_signal(sig, frame):
        raise SystemExit(f"{NAME}: interrupted by signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def log(msg):
    print(f"{NAME}: {msg}", flush=True)


def die(msg):
    raise SystemExit(f"{NAME}: {msg}")


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def build(no_build, build_dir, executables):
    """scripts/build.sh build_dir -DBUILD_TESTING=OFF unless no_build; then checks that every
    executable is in build_dir/bin."""
    if not no_build:
        log(f"building {build_dir} (RelWithDebInfo)")
        r = subprocess.run([os.path.join(ROOT, "scripts", "build.sh"), build_dir,
                            "-DBUILD_TESTING=OFF"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write((r.stdout + r.stderr)[-4000:])
            die("the build failed")
    for exe in executables:
        if not os.access(os.path.join(BUILD, "bin", exe), os.X_OK):
            die(f"{BUILD}/bin/{exe} does not exist (build it or drop --no-build)")


def compile_tool(src, name, libs):
    """cc -O2 src into BUILD/bench/name when missing or older than src; its path."""
    tools = os.path.join(BUILD, "bench")
    os.makedirs(tools, exist_ok=True)
    exe = os.path.join(tools, name)
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        r = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", exe, src] + libs,
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            die(f"compiling {src} failed")
    return exe


class Cleanup:
    """What a benchmark started: processes (stopped with SIGTERM, then SIGKILL), the Stack
    (services, sidecars, kafka-mock, PostgreSQL) and temporary files and directories (kept with
    keep=True)."""

    def __init__(self):
        self.procs = []  # (name, Popen)
        self.stack = None
        self.closers = []
        self.paths = []
        self.keep = False

    def add(self, name, proc):
        self.procs.append((name, proc))
        return proc

    def run(self):
        for close in reversed(self.closers):
            try:
                close()
            except Exception as e:  # keep cleaning up
                log(f"note: clean-up: {e!r}")
        self.closers = []
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        if self.stack:
            # The fixture leaves every process's log in /tmp: this run's go with it.
            logs = [x.log_path for pair in self.stack.instances for x in pair]
            logs += [sc.log_path for sc in self.stack.extra_sidecars]
            if self.keep:
                print("  logs: " + " ".join(logs))
            else:
                self.paths += logs
            try:
                self.stack.stop_all()
            except Exception as e:  # what did not stop in time is killed by close()
                log(f"note: stopping the stack: {e}")
            self.stack.close()
            self.stack = None
        if not self.keep:
            for d in self.paths:
                if os.path.isdir(d):
                    shutil.rmtree(d, ignore_errors=True)
                elif os.path.exists(d):
                    os.unlink(d)
        self.paths = []


CLEANUP = Cleanup()


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def children_of(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        kids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def pg_pids(cluster):
    """The postmaster of a todo_test.PgCluster and its children."""
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        pm = int(f.readline())
    return [pm] + children_of(pm)


class CpuMeter:
    """CPU seconds (user + system) of named process groups between start() and stop()."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning pids

    def sample(self):
        return {n: sum(cpu_ticks(p) for p in fn()) for n, fn in self.groups.items()}

    def start(self):
        self.t0, self.s0 = time.monotonic(), self.sample()

    def stop(self):
        s1, secs = self.sample(), time.monotonic() - self.t0
        return {n: (s1[n] - self.s0.get(n, 0)) / CLK_TCK for n in s1}, secs


def cpu_line(cpu, secs):
    return ", ".join(f"{k} {100 * v / secs:.0f}" for k, v in cpu.items())


def pct(sorted_vals, p):
    """The p-th percentile (nearest rank) of an already sorted list."""
    if not sorted_vals:
        return float("nan")
    i = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[i]


def fsync_on(cluster):
    """The test fixture's cluster runs with fsync and synchronous_commit off: both on."""
    for sql in ("ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET synchronous_commit = on",
                "SELECT pg_reload_conf()"):
        cluster.psql(sql)
    time.sleep(0.5)


def pg_settings(cluster):
    rows = cluster.psql("SELECT name, setting FROM pg_settings WHERE name IN "
                        "('fsync', 'synchronous_commit') ORDER BY 1")
    return ", ".join(f"{k} = {v}" for k, v in rows)


def redis_components(work, components):
    """Starts a redis-server on a free port (no persistence) and writes a copy of the component
    folder `components` whose pub/sub is pubsub.redis on it; the folder's path."""
    import todo_test
    if not shutil.which("redis-server"):
        die("redis-server is missing (apt-get install redis-server)")
    port = todo_test.free_port()
    rdir = os.path.join(work, "redis")
    os.makedirs(rdir)
    with open(os.path.join(work, "redis.log"), "w") as out:
        CLEANUP.add("redis-server", subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", rdir], stdout=out, stderr=subprocess.STDOUT))
    res = os.path.join(work, "components")
    os.makedirs(res)
    for name in os.listdir(components):
        if name.endswith(".yaml") and name != "pubsub.yaml":
            shutil.copy(os.path.join(components, name), res)
    with open(os.path.join(res, "pubsub.yaml"), "w") as f:
        f.write(f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: 127.0.0.1:{port}
    - name: consumerID
      value: "{{appID}}"
    - name: processingTimeout
      value: 60s
scopes:
  - backend
  - notification
  - email
  - recurring
""")
    todo_test.wait_until(lambda: subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True,
        text=True).stdout.strip() == "PONG", 20, what="redis-server")
    return res


def redis_pids():
    return [p.pid for n, p in CLEANUP.procs if n == "redis-server"]
