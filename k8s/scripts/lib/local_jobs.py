"""test-guaranteed-job-execution.sh --target local: three replicas of the notification service
(each with its own sidecar; the sidecars of one app-id share the jobs store, as daprd's share the
Dapr Scheduler) and N reminders falling due over about 12 s. Mid-run one replica is killed (both
processes, SIGKILL: a pod lost), then the jobs store (a PostgreSQL of its own,
--scheduler-database-url) is stopped and started again while reminders fall due. The sweep job is
set to once an hour, so every mail must come from the reminders' own one-shot jobs. Checks: each
reminder mailed exactly once, those due during the outage once the store is back, every one-shot
job fired (none left in the store), the work shared by the replicas. Prints lateness figures."""

import argparse
import re
import time
import uuid

import localstack
from localstack import SLOW, iso, latency_summary, wait_until

TRIGGER_LINE = re.compile(r"^(reminder-[^:]+): (\d+) reminders due")


def at(deadline):
    """Waits until the wall clock reaches deadline (a bounded wait for a point of the timeline)."""
    wait_until(lambda: time.time() >= deadline, max(0.0, deadline - time.time()) + 5,
               interval=0.02, what="a point of the timeline")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reminders", type=int, default=30)
    ap.add_argument("--replicas", type=int, default=3)
    a = ap.parse_args()
    n, window = a.reminders, 12.0
    v = localstack.Verdict(f"guaranteed job execution: {a.replicas} notification replicas, "
                           f"{n} reminders, a replica killed, the jobs store restarted (local)")
    # While the store is down the sidecars and services warn; errors would fail the run.
    system = localstack.LocalSystem(separate_jobs_store=True)
    try:
        system.start("backend")
        system.start("email")
        replicas = system.start("notification", replicas=a.replicas,
                                env={"REMINDER_SWEEP_SCHEDULE": "@every 1h"})
        v.figure("replicas", ", ".join(f"{r.label} (:{r.svc.port}, sidecar :{r.sidecar.port})"
                                       for r in replicas))

        def jobs_named(names):
            if not names:
                return 0
            return int(system.jobs_sql(
                "SELECT count(*) FROM dapr_scheduler.jobs WHERE app_id = 'notification' AND name "
                "IN (" + ",".join(f"'{x}'" for x in names) + ")")[0][0])

        # Warm-up: the replicas' consumer group settles (each join is a rebalance, and kafka-mock
        # assigns partitions 3 s after one) before the timeline starts. Settled: two warm-up
        # tasks in a row whose jobs are in the store within a second.
        t0 = time.time()
        quick = 0
        while quick < 2:
            if time.time() - t0 > 60 * SLOW:
                v.check(False, "the notification replicas' consumer group settled within "
                        f"{60 * SLOW:.0f} s")
                break
            t = time.time()
            warm = system.api("warmup").create_task(title="warm-up", due_at=iso(t + 7200),
                                                    remind_at=iso(t + 3600))
            wait_until(lambda: jobs_named([f"reminder-{warm['id']}"]) == 1, 30 * SLOW,
                       interval=0.05, what="a warm-up task's job")
            quick = quick + 1 if time.time() - t < 1.0 * SLOW else 0
        v.figure("consumer group settled after", f"{time.time() - t0:.1f} s")

        # N reminders due from base on, spread over the window.
        tag = uuid.uuid4().hex[:6]
        base = time.time() + max(5.0, 3 + 0.1 * n * SLOW)
        due = {}
        for i in range(n):
            api = system.api(f"jobs{i % 5}", f"jobs{i % 5}@jobs.test")
            remind = base + i * window / n
            t = api.create_task(title=f"job {i} {tag}", due_at=iso(remind + 3600),
                                remind_at=iso(remind))
            due[t["title"]] = (t["id"], remind)

        def one_shots():
            return jobs_named([f"reminder-{tid}" for tid, _ in due.values()])
        try:
            wait_until(lambda: one_shots() == n, 20 * SLOW, interval=0.1,
                       what=f"{n} one-shot jobs in the store")
            v.check(True, f"{n} one-shot jobs reminder-<task> in the jobs store before the first "
                    "is due")
        except AssertionError as e:
            v.check(False, f"{n} one-shot jobs in the jobs store", str(e))
        v.check(time.time() < base, "all created before the first is due",
                f"{time.time() - base:.1f} s late")

        v.section("the run")
        at(base + 3)
        victim = replicas[1]
        system.kill(victim)
        killed_at = time.time()
        v.note(f"{killed_at - base:5.1f} s  {victim.label} killed (service and sidecar, SIGKILL)")
        at(base + 6)
        system.jobs_cluster.stop("immediate")
        down_at = time.time()
        v.note(f"{down_at - base:5.1f} s  jobs store stopped (pg_ctl -m immediate)")
        at(base + 9)
        system.jobs_cluster.start()
        up_at = time.time()
        v.note(f"{up_at - base:5.1f} s  jobs store started again")

        def all_mailed():
            m = localstack.mails_by_subject(system.smtp)
            return all(title in m for title in due)
        try:
            wait_until(all_mailed, 60 * SLOW, interval=0.1, what="every reminder's mail")
        except AssertionError as e:
            v.check(False, f"all {n} reminders mailed", str(e))
        v.note(f"{time.time() - base:5.1f} s  the last mail arrived")
        # A trigger in flight at the killed replica would fire again once its 5 s lease ran out;
        # a duplicate would show by then.
        settle = time.time() + 7
        at(settle)

        v.section("each reminder mailed exactly once")
        mails = localstack.mails_by_subject(system.smtp)
        counts = {title: len(mails.get(title, [])) for title in due}
        v.check(all(c == 1 for c in counts.values()), f"each of the {n} reminders mailed once",
                f"{sum(1 for c in counts.values() if c == 0)} missing, "
                f"{sum(1 for c in counts.values() if c > 1)} more than once")
        late = {title: mails[title][0].time - remind for title, (_, remind) in due.items()
                if title in mails}
        early = [t for t, d in late.items() if d < -0.05]
        v.check(not early, "none before its remind_at", str(early))
        after_kill = [t for t, (_, r) in due.items() if killed_at <= r < down_at]
        in_outage = [t for t, (_, r) in due.items() if down_at <= r < up_at]
        v.check(after_kill and all(counts[t] == 1 for t in after_kill),
                f"the {len(after_kill)} due after the kill were mailed by the other replicas")
        v.check(in_outage and all(counts[t] == 1 and mails[t][0].time >= up_at - 0.05
                                  for t in in_outage),
                f"the {len(in_outage)} due while the jobs store was down were mailed once it was "
                "back")
        left = one_shots()
        v.check(left == 0, "every one-shot job fired (none left in the jobs store)",
                f"{left} left")

        v.section("the replicas shared the triggers")
        sent_by = {}
        for r in replicas:
            for ln in r.log_lines():
                m = TRIGGER_LINE.match(ln.get("msg", ""))
                if m:
                    sent_by.setdefault(r.label, 0)
                    sent_by[r.label] += int(m.group(2))
        total = sum(sent_by.values())
        v.check(total == n, f"the claim steps of the replicas sent {n} reminders in all",
                f"{total}: {sent_by}")
        v.check(len([k for k, c in sent_by.items() if c > 0]) >= 2,
                "more than one replica sent reminders", str(sent_by))
        v.figure("reminders sent per replica", ", ".join(f"{k} {c}" for k, c in sorted(sent_by.items())))
        v.figure("lateness (remind_at→mail), all", latency_summary(list(late.values())))
        v.figure("… due after the kill",
                 latency_summary([late[t] for t in after_kill if t in late]))
        v.figure("… due while the store was down",
                 latency_summary([late[t] for t in in_outage if t in late]))
        v.figure("jobs store outage", f"{up_at - down_at:.1f} s")

        bad = system.stop_instances()
        v.check(not bad, "every process left stopped with exit 0", str(bad))
        problems = system.problems()
        v.check(not problems, "no error line or sanitizer report in any log",
                "\n".join(problems[:10]))
    finally:
        system.close()
    return v.finish()


if __name__ == "__main__":
    localstack.main_guard(main)
