#!/usr/bin/env bash
# test-simplified-operations.sh: what Dapr does for the services with no code of theirs: a poison
# message ends in its dead-letter topic after the Resiliency's retries while other messages keep
# flowing, a malformed one is dead-lettered without retries, a transient failure succeeds after
# retries, and the trace context of one request shows up in every service's log lines for it.
#
# Usage: k8s/scripts/test-simplified-operations.sh [--target local|k8s] [OPTIONS]
#
#   --target local (default)  on this machine (PostgreSQL, kafka-mock, the four services with their
#                             sidecar doubles, an SMTP server; services at LOG_LEVEL=debug):
#                             - poison: a reminder whose recipient the SMTP server answers 451 every
#                               time; checks 1 + maxRetries attempts (maxRetries read from
#                               dapr/components/resiliency.yaml), the original event on
#                               task-reminders-dlq, no mail, and that reminders published after its
#                               first refusal were mailed before its last attempt;
#                             - malformed: a reminder without usable data, dead-lettered after one
#                               attempt;
#                             - transient: a recipient refused twice: 3 attempts, one mail, no
#                               dead letter;
#                             - trace: completing a weekly task with a traceparent header; its
#                               trace id in the log lines of backend, recurring, notification and
#                               email, and in the events' traceparent.
#   --target k8s              the same through kubectl on a cluster with the local or redis overlay:
#                             the smtp-sink (Mailpit) refuses recipients with 451 through its Chaos
#                             API while the poison is due (the script sets MP_ENABLE_CHAOS=true on
#                             it if needed, and removes it at the end); the dead letters are read
#                             from the broker's pod (kafka-console-consumer.sh, or redis-cli
#                             XRANGE); the attempts and the trace id are read with kubectl logs;
#                             meanwhile recurring completions must keep flowing.
#     --namespace NS          default todo
#   --others N                reminders published while the poison is retried (local; default 10)
#   -h, --help                this text
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

others=10
while (($#)); do
  case $1 in
    --target) set_target "${2:-}"; shift ;;
    --target=*) set_target "${1#*=}" ;;
    --others) others=${2:-}; shift ;;
    --namespace) NAMESPACE=${2:-}; [[ -n $NAMESPACE ]] || usage_error "--namespace needs a name"; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done
[[ $others =~ ^[1-9][0-9]{0,2}$ ]] || usage_error "--others must be 1-999"

if [[ $TARGET == local ]]; then
  run_local local_operations.py --others "$others"
fi

# ------------------------------------------------------------------------------------------------
# --target k8s

need_kubectl
cd "$TODO_REPO"
run_id=$(date +%s)
say "== test-simplified-operations --target k8s (namespace $NAMESPACE, run $run_id)"
py() { "$TODO_PYTHON" -c "$@"; }
iso_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }

chaos_env_set=false
cleanup() {
  if [[ -n ${MAILPIT:-} ]]; then
    curl -s --max-time 10 -X PUT "$MAILPIT/api/v1/chaos" -H 'Content-Type: application/json' -d '{}' >/dev/null || true
  fi
  stop_port_forwards
  if $chaos_env_set; then
    kube set env deployment/smtp-sink MP_ENABLE_CHAOS- >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

connect() {
  stop_port_forwards
  port_forward svc/backend 80 || die "no port-forward to svc/backend"
  API=http://127.0.0.1:$PF_PORT
  port_forward svc/smtp-sink 8025 || die "no port-forward to svc/smtp-sink (Mailpit): use the local or redis overlay"
  MAILPIT=http://127.0.0.1:$PF_PORT
}
jwt_secret=$(secret_value backend-secrets JWT_SECRET) || die "cannot read Secret backend-secrets"
api() { # USER METHOD PATH [BODY] [EXTRA HEADER]: the response body
  local token
  token=$(make_token "$1" "$1@ops.test" "$jwt_secret")
  curl -s --max-time 10 -X "$2" "$API/api/$1$3" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' ${4:+-d "$4"} ${5:+-H "$5"}
}
json_field() { py 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
mail_count() {
  curl -s --max-time 10 -G "$MAILPIT/api/v1/search" --data-urlencode "query=subject:\"$1\"" |
    py 'import json,sys; s=sys.argv[1]; print(sum(1 for m in json.load(sys.stdin).get("messages") or [] if m.get("Subject")==s))' "$1"
}
chaos() { # PROBABILITY: Mailpit answers RCPT TO with 451 at that probability (0 = off)
  local body='{}'
  (($1 > 0)) && body="{\"Recipient\":{\"ErrorCode\":451,\"Probability\":$1}}"
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT "$MAILPIT/api/v1/chaos" \
    -H 'Content-Type: application/json' -d "$body") == 200 ]]
}
email_logs() { kube logs -l app.kubernetes.io/name=email -c email --since=30m --tail=-1 --prefix=false 2>/dev/null || true; }
pubsub_type=$(kube get component pubsub -o 'jsonpath={.spec.type}')
dlq_messages() { # TOPIC: the messages of a dead-letter topic, one per line
  case $pubsub_type in
    pubsub.kafka)
      kube exec statefulset/kafka -- /opt/kafka/bin/kafka-console-consumer.sh \
        --bootstrap-server localhost:9092 --topic "$1" --from-beginning --timeout-ms 10000 2>/dev/null || true ;;
    pubsub.redis)
      kube exec statefulset/redis -- redis-cli --no-auth-warning --raw XRANGE "$1" - + 2>/dev/null || true ;;
  esac
}
max_retries=$(kube get resiliency todo-resiliency -o 'jsonpath={.spec.policies.retries.deliveryRetry.maxRetries}')
[[ $max_retries =~ ^[0-9]+$ ]] || die "cannot read maxRetries of deliveryRetry in Resiliency todo-resiliency"
figure "Resiliency deliveryRetry" "maxRetries $max_retries"

section "the SMTP sink's Chaos API"
connect
if ! chaos 0; then
  run kube set env deployment/smtp-sink MP_ENABLE_CHAOS=true
  chaos_env_set=true
  check "smtp-sink rolled out with MP_ENABLE_CHAOS" kube rollout status deployment/smtp-sink --timeout=120s
  connect
fi
if chaos 0; then ok "Mailpit's Chaos API answers"; else die "Mailpit has no Chaos API (a Mailpit with Chaos, MP_ENABLE_CHAOS=true, is needed)"; fi

section "a poison message: retried per the Resiliency, then dead-lettered"
chaos 100 || fail "chaos on"
poison_id=$(api "poison$run_id" POST /tasks "{\"title\":\"poison $run_id\",\"due_at\":\"$(iso_in 3600)\",\"remind_at\":\"$(iso_in 5)\"}" | json_field id)
[[ -n $poison_id ]] || die "the poison task was not created"
# Meanwhile other messages flow: recurring completions through task-events and task-recurrence.
flow_ok=0
for i in 1 2 3; do
  id=$(api "flow$run_id" POST /tasks "{\"title\":\"flow $run_id $i\",\"due_at\":\"$(iso_in 86400)\",\"recurrence_rule\":\"FREQ=DAILY\"}" | json_field id)
  api "flow$run_id" POST "/tasks/$id/complete" >/dev/null
done
start=$(date +%s)
poison_event=""
while (($(date +%s) - start < 300)); do
  line=$(dlq_messages task-reminders-dlq | grep -F "\"task_id\":$poison_id," | head -n 1 || true)
  if [[ -n $line ]]; then
    poison_event=$(printf '%s' "$line" | py 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || true)
    break
  fi
  if ((flow_ok < 3)); then
    flow_ok=0
    for i in 1 2 3; do
      n=$(api "flow$run_id" GET "/tasks?q=flow%20$run_id%20$i&status=all" | py 'import json,sys; print(len(json.load(sys.stdin).get("items") or []))')
      ((n == 2)) && flow_ok=$((flow_ok + 1))
    done
    ((flow_ok == 3)) && flow_at=$(($(date +%s) - start))
  fi
  sleep 2
done
chaos 0 || fail "chaos off"
if [[ -n $poison_event ]]; then
  ok "the poison (task $poison_id, event $poison_event) is on task-reminders-dlq after $(($(date +%s) - start)) s"
  attempts=$(email_logs | grep -cF "event $poison_event: SMTP failed" || true)
  if ((attempts == max_retries + 1)); then ok "tried $attempts times (1 + maxRetries)"; else fail "tried 1 + maxRetries times" "$attempts attempts"; fi
else
  fail "the poison reached task-reminders-dlq within 300 s"
fi
if [[ $(mail_count "Reminder: poison $run_id") == 0 ]]; then ok "no mail for the poison"; else fail "no mail for the poison"; fi
if ((flow_ok == 3)); then ok "3 recurring completions took effect while the poison was retried (${flow_at:-?} s)"; else fail "other messages kept flowing" "$flow_ok of 3 next occurrences"; fi

section "a transient failure: succeeds after retries"
chaos 100 || fail "chaos on"
flaky_since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flaky_start=$(date +%s)
flaky_id=$(api "flaky$run_id" POST /tasks "{\"title\":\"flaky $run_id\",\"due_at\":\"$(iso_in 3600)\",\"remind_at\":\"$(iso_in 3)\"}" | json_field id)
[[ -n $flaky_id ]] || die "the flaky task was not created"
# The only reminder due meanwhile: the SMTP failures since then are its attempts.
refusals=0
while ((refusals < 2 && $(date +%s) - flaky_start < 120)); do
  refusals=$(kube logs -l app.kubernetes.io/name=email -c email --since-time="$flaky_since" --tail=-1 2>/dev/null |
    grep -F 'SMTP failed' | grep -vcF "${poison_event:-none}" || true)
  ((refusals < 2)) && sleep 1
done
chaos 0 || fail "chaos off"
if ((refusals >= 2)); then ok "the flaky reminder was refused $refusals times"; else fail "the flaky reminder was refused at least twice" "$refusals"; fi
if wait_for 180 "the flaky reminder's mail" bash -c "[[ \$(curl -s -G '$MAILPIT/api/v1/search' --data-urlencode 'query=subject:\"Reminder: flaky $run_id\"' | grep -c '\"ID\"') -ge 1 ]]"; then
  sleep 10
  n=$(mail_count "Reminder: flaky $run_id")
  if [[ $n == 1 ]]; then ok "mailed exactly once after the retries"; else fail "mailed exactly once" "$n mails"; fi
else
  fail "the flaky reminder was mailed after the retries"
fi
if dlq_messages task-reminders-dlq | grep -qF "\"task_id\":$flaky_id,"; then fail "the flaky reminder is not dead-lettered"; else ok "the flaky reminder is not dead-lettered"; fi

section "trace context"
trace_id=$(openssl rand -hex 16)
weekly_id=$(api "tracer$run_id" POST /tasks "{\"title\":\"traced $run_id\",\"due_at\":\"$(iso_in $((30 - 7 * 86400)))\",\"recurrence_rule\":\"FREQ=WEEKLY\",\"remind_before_minutes\":0}" | json_field id)
if api "tracer$run_id" POST "/tasks/$weekly_id/complete" "" "traceparent: 00-$trace_id-$(openssl rand -hex 8)-01" >/dev/null; then
  ok "the traced request (complete weekly task $weekly_id with trace $trace_id) was answered"
else
  fail "the traced request"
fi
if wait_for 180 "the traced reminder's mail" bash -c "[[ \$(curl -s -G '$MAILPIT/api/v1/search' --data-urlencode 'query=subject:\"Reminder: traced $run_id\"' | grep -c '\"ID\"') -ge 1 ]]"; then
  ok "the next occurrence's reminder was mailed"
else
  fail "the next occurrence's reminder was mailed"
fi
for app in backend recurring notification email; do
  n=$(kube logs -l "app.kubernetes.io/name=$app" -c "$app" --since=30m --tail=-1 2>/dev/null | grep -cF "\"trace_id\":\"$trace_id\"" || true)
  if ((n > 0)); then ok "$app logged $n lines with trace id $trace_id"; else fail "$app logged lines with trace id $trace_id"; fi
done
finish
