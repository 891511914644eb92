"""validate-dapr-deployment.sh --target local --start-stack: a stack of its own (PostgreSQL,
kafka-mock, the four services with their sidecars), validated by the script; then broken one
piece at a time (a sidecar killed, PostgreSQL stopped, the broker gone), and each break must make
the script fail naming what broke, so that a validation which cannot fail is caught."""

import os
import time

import localstack
from localstack import SLOW, wait_until


def run(system, v, expect_ok, what, must_mention=()):
    path = localstack.write_stack_file(system, os.path.join(system.tmp, "stack.env"))
    t = time.monotonic()
    rc, out = localstack.run_script("validate-dapr-deployment.sh", "--target", "local",
                                    "--stack-file", path)
    took = time.monotonic() - t
    for line in out.splitlines():
        print("    | " + line)
    if expect_ok:
        v.check(rc == 0, f"{what}: validate-dapr-deployment.sh exits 0 ({took:.1f} s)", f"exit {rc}")
    else:
        fails = [ln for ln in out.splitlines() if ln.lstrip().startswith("FAIL")]
        missing = [m for m in must_mention if not any(m in ln for ln in fails)]
        v.check(rc == 1 and not missing,
                f"{what}: the script exits 1 and reports {', '.join(must_mention)}",
                f"exit {rc}, not reported: {missing}")
    return out


def main():
    v = localstack.Verdict("validate-dapr-deployment --target local on a stack of its own")
    system = localstack.LocalSystem()
    try:
        system.start_all()
        out = run(system, v, True, "the healthy stack")
        oks = sum(1 for ln in out.splitlines() if ln.lstrip().startswith("ok "))
        v.figure("checks made on the healthy stack", str(oks))
        problems = system.problems()
        v.check(not problems, "no error line in any log of the healthy stack",
                "\n".join(problems[:10]))

        v.section("a usage error is exit 2")
        bad = os.path.join(system.tmp, "bad.env")
        with open(bad, "w") as f:
            f.write("NO_SUCH_KEY=1\n")
        rc, _ = localstack.run_script("validate-dapr-deployment.sh", "--stack-file", bad)
        v.check(rc == 2, "an unknown key in the stack file is exit 2", f"exit {rc}")

        v.section("break 1: the email sidecar killed")
        email = system.get("email")
        email.sidecar.stop(sig=9)
        run(system, v, False, "email's sidecar down", ["sidecar email"])
        email.sidecar.start()
        email.sidecar.wait_healthy(timeout=60)
        wait_until(lambda: email.svc.request("GET", "/readyz").status == 200, 30 * SLOW,
                   what="email ready again")
        run(system, v, True, "the sidecar back")

        v.section("break 2: PostgreSQL stopped")
        system.stack.cluster.stop("fast")
        try:
            run(system, v, False, "PostgreSQL down", ["PostgreSQL reachable", "backend /readyz"])
        finally:
            system.stack.cluster.start()
        for inst in system.instances:
            wait_until(lambda: inst.svc.request("GET", "/readyz").status == 200, 60 * SLOW,
                       what=f"{inst.label} ready again")
        run(system, v, True, "PostgreSQL back")

        v.section("break 3: the broker gone")
        system.stack.kafka.stop()
        run(system, v, False, "Kafka down", ["Kafka reachable"])
    finally:
        system.close()
    return v.finish()


if __name__ == "__main__":
    localstack.main_guard(main)
