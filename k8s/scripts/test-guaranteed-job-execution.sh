#!/usr/bin/env bash
# test-guaranteed-job-execution.sh: the reminders' Dapr jobs fire exactly once in effect with three
# notification replicas, when one replica is killed mid-run, and when the jobs store restarts while
# reminders fall due.
#
# Usage: k8s/scripts/test-guaranteed-job-execution.sh [--target local|k8s] [OPTIONS]
#
#   --target local (default)  on this machine: PostgreSQL, kafka-mock, an SMTP server, backend and
#                             email, and three notification replicas each with its own sidecar
#                             double; the sidecars keep the jobs in a PostgreSQL of their own
#                             (--scheduler-database-url), as daprd's share the Dapr Scheduler. N
#                             reminders fall due over 12 s; at 3 s one replica is killed (service
#                             and sidecar, SIGKILL), from 6 s to 9 s the jobs store is down
#                             (pg_ctl stop -m immediate, then start). The sweep runs once an hour
#                             here, so each mail comes from a one-shot job. Checks: each reminder
#                             mailed once and never early, those due after the kill and during the
#                             outage too, no one-shot job left in the store, the replicas shared
#                             the triggers; prints lateness per group.
#   --target k8s              the same on a cluster with the local or redis overlay: the
#                             notification HPA pinned to 3 replicas and the sweep set to once an
#                             hour for the run (both restored at the end), reminders through a
#                             port-forward to the backend, a notification pod deleted with
#                             --grace-period=0 --force, the Dapr Scheduler's pods deleted
#                             (dapr-system) while reminders are due, the mails counted in Mailpit,
#                             the reminders sent per pod read with kubectl logs.
#     --namespace NS          default todo
#   --reminders N             default 30 (local), 40 (k8s)
#   -h, --help                this text
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

reminders=""
while (($#)); do
  case $1 in
    --target) set_target "${2:-}"; shift ;;
    --target=*) set_target "${1#*=}" ;;
    --reminders) reminders=${2:-}; [[ $reminders =~ ^[1-9][0-9]{0,3}$ ]] || usage_error "--reminders must be 1-9999"; shift ;;
    --namespace) NAMESPACE=${2:-}; [[ -n $NAMESPACE ]] || usage_error "--namespace needs a name"; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done

if [[ $TARGET == local ]]; then
  run_local local_jobs.py --reminders "${reminders:-30}"
fi

# ------------------------------------------------------------------------------------------------
# --target k8s

n=${reminders:-40}
window=40
need_kubectl
run_id=$(date +%s)
say "== test-guaranteed-job-execution --target k8s (namespace $NAMESPACE, run $run_id, $n reminders)"
py() { "$TODO_PYTHON" -c "$@"; }

hpa_min=$(kube get hpa notification -o 'jsonpath={.spec.minReplicas}')
hpa_max=$(kube get hpa notification -o 'jsonpath={.spec.maxReplicas}')
[[ -n $hpa_min && -n $hpa_max ]] || die "no HorizontalPodAutoscaler notification in $NAMESPACE"
restore() {
  stop_port_forwards
  kube patch hpa notification --type=merge -p "{\"spec\":{\"minReplicas\":$hpa_min,\"maxReplicas\":$hpa_max}}" >/dev/null 2>&1 || true
  kube set env deployment/notification REMINDER_SWEEP_SCHEDULE- >/dev/null 2>&1 || true
}
trap restore EXIT

section "three notification replicas, the sweep once an hour"
run kube patch hpa notification --type=merge -p '{"spec":{"minReplicas":3,"maxReplicas":3}}'
run kube set env deployment/notification 'REMINDER_SWEEP_SCHEDULE=@every 1h'
check "deployment notification rolled out" kube rollout status deployment/notification --timeout=300s
if wait_for 300 "3 ready notification replicas" \
  bash -c "[[ \$(kubectl -n '$NAMESPACE' get deploy notification -o 'jsonpath={.status.readyReplicas}') == 3 ]]"; then
  ok "3 notification replicas ready"
else
  fail "3 notification replicas ready"
fi
mapfile -t pods < <(pods_of notification)
figure "replicas" "${pods[*]}"

port_forward svc/backend 80 || die "no port-forward to svc/backend"
API=http://127.0.0.1:$PF_PORT
port_forward svc/smtp-sink 8025 || die "no port-forward to svc/smtp-sink (Mailpit): use the local or redis overlay"
MAILPIT=http://127.0.0.1:$PF_PORT
jwt_secret=$(secret_value backend-secrets JWT_SECRET) || die "cannot read Secret backend-secrets"
user=jobs$run_id
token=$(make_token "$user" "$user@jobs.test" "$jwt_secret")
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)

section "the run"
base=$(($(date +%s) + 30))
declare -A remind_ms=()
for ((i = 0; i < n; i++)); do
  t_ms=$((base * 1000 + i * window * 1000 / n))
  remind=$(date -u -d "@$((t_ms / 1000)).$(printf '%03d' $((t_ms % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)
  title="job $run_id $i"
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$API/api/$user/tasks" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"title\":\"$title\",\"due_at\":\"$(date -u -d "@$((base + 7200))" +%Y-%m-%dT%H:%M:%SZ)\",\"remind_at\":\"$remind\"}")
  [[ $code == 201 ]] || fail "create $title" "HTTP $code"
  remind_ms[$title]=$t_ms
done
if (($(date +%s) < base)); then ok "$n reminders created before the first is due"; else fail "$n reminders created before the first is due"; fi
wait_until_epoch() { while (($(date +%s) < $1)); do sleep 0.2; done; }
wait_until_epoch $((base + window / 4))
victim=${pods[1]:-${pods[0]}}
run kube delete pod "$victim" --grace-period=0 --force --wait=false
kill_ms=$(date +%s%3N)
say "  $(((kill_ms / 1000) - base)) s  $victim deleted (--grace-period=0 --force)"
wait_until_epoch $((base + window / 2))
run "$KUBECTL" -n dapr-system --request-timeout=30s delete pod -l app=dapr-scheduler-server --wait=false
down_ms=$(date +%s%3N)
say "  $(((down_ms / 1000) - base)) s  the Dapr Scheduler's pods deleted"
check "the Dapr Scheduler is back" "$KUBECTL" -n dapr-system rollout status statefulset/dapr-scheduler-server --timeout=300s
up_ms=$(date +%s%3N)
say "  $(((up_ms / 1000) - base)) s  the Dapr Scheduler ready again"

mails_json() {
  curl -s --max-time 20 -G "$MAILPIT/api/v1/search" --data-urlencode "query=subject:\"Reminder: job $run_id\"" \
    --data-urlencode "limit=$((n * 2 + 50))"
}
count_mailed() {
  mails_json | py 'import json,sys; print(len({m["Subject"] for m in json.load(sys.stdin).get("messages") or []}))'
}
start=$(date +%s)
while (($(count_mailed) < n && $(date +%s) - start < 300)); do sleep 2; done
sleep 20 # a trigger lost with the deleted pod fires again after its lease; a duplicate shows by then

section "each reminder mailed exactly once"
report=$(mails_json | py '
import json, sys, datetime
n, run = int(sys.argv[1]), sys.argv[2]
kill, down, up = (int(x) / 1000 for x in sys.argv[3:6])
remind = {l.split("\t")[0]: int(l.split("\t")[1]) / 1000 for l in sys.argv[6].splitlines() if l}
got = {}
for m in json.load(sys.stdin).get("messages") or []:
    t = datetime.datetime.fromisoformat(m["Created"].replace("Z", "+00:00")).timestamp()
    got.setdefault(m["Subject"].removeprefix("Reminder: "), []).append(t)
once = sum(1 for t in remind if len(got.get(t, [])) == 1)
early = sum(1 for t in remind if got.get(t) and min(got[t]) < remind[t] - 0.5)
late = sorted(min(got[t]) - remind[t] for t in remind if got.get(t))
outage = [t for t in remind if down <= remind[t] < up]
p = lambda v, q: v[max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))] if v else 0
print(f"once {once} early {early} outage {len(outage)} outage_ok "
      f"{sum(1 for t in outage if len(got.get(t, [])) == 1)} p50 {p(late, 50):.2f} "
      f"p95 {p(late, 95):.2f} max {late[-1] if late else 0:.2f}")
' "$n" "$run_id" "$kill_ms" "$down_ms" "$up_ms" "$(for t in "${!remind_ms[@]}"; do printf '%s\t%s\n' "$t" "${remind_ms[$t]}"; done)")
read -r _ once _ early _ outage _ outage_ok _ p50 _ p95 _ pmax <<<"$report"
if ((once == n)); then ok "each of the $n reminders mailed exactly once"; else fail "each reminder mailed exactly once" "$once of $n"; fi
if ((early == 0)); then ok "none before its remind_at"; else fail "none before its remind_at" "$early early"; fi
if ((outage > 0 && outage_ok == outage)); then ok "the $outage due while the Scheduler restarted were mailed once"; else fail "those due while the Scheduler restarted were mailed once" "$outage_ok of $outage"; fi
figure "lateness (remind_at→mail)" "p50 ${p50} s, p95 ${p95} s, max ${pmax} s"

section "the replicas shared the triggers"
# (The deleted pod's logs went with it; the survivors' are read.)
busy=0
for p in $(kube get pods -l app.kubernetes.io/name=notification -o 'jsonpath={.items[*].metadata.name}'); do
  c=$(kube logs "pod/$p" -c notification --since-time="$since" 2>/dev/null |
    sed -n 's/.*"msg":"reminder-[^:]*: \([0-9]*\) reminders due.*/\1/p' | awk '{s += $1} END {print s + 0}')
  figure "reminders sent by $p" "$c"
  if ((c > 0)); then busy=$((busy + 1)); fi
done
if ((busy >= 2)); then ok "more than one replica sent reminders ($busy)"; else fail "more than one replica sent reminders" "$busy"; fi
finish
