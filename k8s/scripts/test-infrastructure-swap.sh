#!/usr/bin/env bash
# test-infrastructure-swap.sh: swaps the broker under the running services, Kafka -> Redis Streams
# -> Kafka, with no code change (the Dapr component named pubsub changes type, nothing else), and
# checks that every event was processed exactly once in effect. Prints counts and latencies.
#
# Usage: k8s/scripts/test-infrastructure-swap.sh [--target local|k8s] [OPTIONS]
#
#   --target local (default)  on this machine: PostgreSQL, kafka-mock, redis-server (a free port, a
#                             temporary folder), an SMTP server and the four services each with its
#                             own sidecar double (binaries from $TODO_BIN_DIR, default build/bin).
#                             Three phases: Kafka (dapr/components), Redis (dapr/components-redis),
#                             Kafka again; each phase creates N tasks with a reminder 2 s ahead and
#                             completes M recurring tasks, then waits for every effect (one mail
#                             per reminder, one next occurrence per completion). Between phases
#                             every service and sidecar is stopped (SIGTERM, outboxes drained) and
#                             started again on the other component folder. Checks: effects exactly
#                             once, the Redis streams hold exactly the Redis phase's events, the
#                             consumer groups read to the end, validate-dapr-deployment.sh passes in
#                             each phase, the executables are byte-identical, clean logs and exits.
#   --target k8s              the same on the cluster (local or redis overlay: it needs the smtp-sink,
#                             Mailpit): kubectl apply -k k8s/pubsub/redis (k8s/infra/redis first when
#                             Redis is not deployed), rollout restart of every Deployment,
#                             validate-dapr-deployment.sh --target k8s, and back with
#                             kubectl apply -k k8s/pubsub/kafka; tasks through a port-forward to the
#                             backend, mails counted in Mailpit's API, the Redis stream in the Redis
#                             pod, the images' digests before and after.
#     --namespace NS          default todo
#     --kafka DIR             the Kafka pub/sub kustomization to swap back to (default
#                             k8s/pubsub/kafka; k8s/pubsub/kafka-sasl for a managed Kafka)
#   --events N                tasks with a reminder per phase (default 20)
#   --recurring M             recurring tasks completed per phase (default 5)
#   -h, --help                this text
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

events=20
recurring=5
kafka_dir=k8s/pubsub/kafka
while (($#)); do
  case $1 in
    --target) set_target "${2:-}"; shift ;;
    --target=*) set_target "${1#*=}" ;;
    --events) events=${2:-}; shift ;;
    --recurring) recurring=${2:-}; shift ;;
    --namespace) NAMESPACE=${2:-}; [[ -n $NAMESPACE ]] || usage_error "--namespace needs a name"; shift ;;
    --kafka) kafka_dir=${2:-}; shift ;;
    -h | --help) print_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done
[[ $events =~ ^[1-9][0-9]{0,3}$ ]] || usage_error "--events must be 1-9999"
[[ $recurring =~ ^[0-9]{1,3}$ ]] || usage_error "--recurring must be 0-999"

if [[ $TARGET == local ]]; then
  run_local local_swap.py --events "$events" --recurring "$recurring"
fi

# ------------------------------------------------------------------------------------------------
# --target k8s

need_kubectl
cd "$TODO_REPO"
[[ -f $kafka_dir/kustomization.yaml ]] || usage_error "--kafka: no kustomization in $kafka_dir"
trap stop_port_forwards EXIT
run_id=$(date +%s)
say "== test-infrastructure-swap --target k8s (namespace $NAMESPACE, run $run_id)"

py() { "$TODO_PYTHON" -c "$@"; }
now_ms() { date +%s%3N; }
iso_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }

# The API and Mailpit through port-forwards (restarted after each rollout).
connect() {
  stop_port_forwards
  port_forward svc/backend 80 || die "no port-forward to svc/backend"
  API=http://127.0.0.1:$PF_PORT
  port_forward svc/smtp-sink 8025 || die "no port-forward to svc/smtp-sink (Mailpit): use the local or redis overlay"
  MAILPIT=http://127.0.0.1:$PF_PORT
}
jwt_secret=$(secret_value backend-secrets JWT_SECRET) || die "cannot read Secret backend-secrets"
user=swap$run_id
token=$(make_token "$user" "$user@example.com" "$jwt_secret")
api() { # METHOD PATH [BODY]: the response body
  curl -s --max-time 10 -X "$1" "$API/api/$user$2" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}
api_status() { # METHOD PATH: the status code
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X "$1" "$API/api/$user$2" \
    -H "Authorization: Bearer $token" || true
}
mail_count() { # SUBJECT: how many mails Mailpit holds with exactly that subject
  curl -s --max-time 10 -G "$MAILPIT/api/v1/search" --data-urlencode "query=subject:\"$1\"" \
    --data-urlencode limit=50 |
    py 'import json,sys; s=sys.argv[1]; print(sum(1 for m in json.load(sys.stdin).get("messages") or [] if m.get("Subject")==s))' "$1"
}
mail_created_ms() { # SUBJECT: the arrival time (ms) of the first such mail
  curl -s --max-time 10 -G "$MAILPIT/api/v1/search" --data-urlencode "query=subject:\"$1\"" |
    py 'import json,sys,datetime; s=sys.argv[1]; t=[datetime.datetime.fromisoformat(m["Created"].replace("Z","+00:00")).timestamp() for m in json.load(sys.stdin).get("messages") or [] if m.get("Subject")==s]; print(int(min(t)*1000) if t else "")' "$1"
}
task_count() { # TITLE: tasks of the user with exactly that title
  api GET "/tasks?q=$(py 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")&status=all&limit=100" |
    py 'import json,sys; t=sys.argv[1]; print(sum(1 for x in json.load(sys.stdin).get("items") or [] if x.get("title")==t))' "$1"
}
stats() { # values in ms on stdin -> "n=…, p50 …, p95 …, max …"
  py 'import sys
v=sorted(int(x) for x in sys.stdin.read().split())
p=lambda q: v[max(0,min(len(v)-1,int(round(q/100*len(v)+0.5))-1))]
print(f"n={len(v)}, p50 {p(50)} ms, p95 {p(95)} ms, max {v[-1]} ms" if v else "n=0")'
}
image_ids() {
  kube get pods -l app.kubernetes.io/part-of=todo -o 'jsonpath={range .items[*]}{range .status.containerStatuses[?(@.name!="daprd")]}{.name}={.imageID}{"\n"}{end}{end}' |
    grep -E '^(backend|notification|email|recurring)=' | sort -u
}
restart_all() {
  local d
  run kube rollout restart deployment -l app.kubernetes.io/part-of=todo
  for d in backend notification email recurring; do
    check "deployment $d rolled out" kube rollout status "deployment/$d" --timeout=300s
  done
}
pubsub_type() { kube get component pubsub -o 'jsonpath={.spec.type}'; }

declare -a PHASE_LINES=()
declare -a ALL_TITLES=()
phase() { # NUMBER NAME
  local k=$1 name=$2 i title remind id series=() start code sent_ms rem_lat="" rec_lat="" t
  section "phase $k: $name ($(pubsub_type))"
  check "validate-dapr-deployment.sh --target k8s passes on $name" \
    bash "$TODO_SCRIPTS/validate-dapr-deployment.sh" --target k8s --namespace "$NAMESPACE" --no-debug-containers
  connect
  declare -A remind_ms=()
  for ((i = 0; i < events; i++)); do
    title="swap $run_id $k.$i"
    remind=$(iso_in 20)
    code=$(api POST /tasks "{\"title\":\"$title\",\"due_at\":\"$(iso_in 86400)\",\"remind_at\":\"$remind\"}" |
      py 'import json,sys; print(json.load(sys.stdin).get("id",""))')
    [[ -n $code ]] || fail "create task $title"
    remind_ms[$title]=$(($(date -u -d "$remind" +%s) * 1000))
    ALL_TITLES+=("$title")
  done
  for ((i = 0; i < recurring; i++)); do
    title="series $run_id $k.$i"
    id=$(api POST /tasks "{\"title\":\"$title\",\"due_at\":\"$(iso_in 86400)\",\"recurrence_rule\":\"FREQ=DAILY\"}" |
      py 'import json,sys; print(json.load(sys.stdin).get("id",""))')
    series+=("$id:$title")
  done
  declare -A complete_ms=()
  for t in "${series[@]}"; do
    complete_ms[${t#*:}]=$(now_ms)
    code=$(api_status POST "/tasks/${t%%:*}/complete")
    [[ $code == 200 ]] || fail "complete task ${t%%:*}" "HTTP $code"
  done
  # Every effect, bounded: reminders are due 20 s after creation.
  start=$(date +%s)
  local pending=1 missing
  while ((pending && $(date +%s) - start < 180)); do
    pending=0
    for t in "${!remind_ms[@]}"; do [[ $(mail_count "Reminder: $t") -ge 1 ]] || { pending=1; break; }; done
    if ((!pending)); then
      for t in "${series[@]}"; do
        title=${t#*:}
        if [[ -z ${rec_seen[$title]:-} ]]; then
          if [[ $(task_count "$title") -ge 2 ]]; then rec_seen[$title]=$(now_ms); else pending=1; fi
        fi
      done
    fi
    ((pending)) && sleep 1
  done
  missing=0
  for t in "${!remind_ms[@]}"; do
    sent_ms=$(mail_created_ms "Reminder: $t")
    if [[ -n $sent_ms ]]; then rem_lat+="$((sent_ms - remind_ms[$t])) "; else missing=$((missing + 1)); fi
  done
  if ((missing == 0)); then ok "$events reminders mailed"; else fail "$events reminders mailed" "$missing missing"; fi
  missing=0
  for t in "${series[@]}"; do
    title=${t#*:}
    if [[ -n ${rec_seen[$title]:-} ]]; then rec_lat+="$((rec_seen[$title] - complete_ms[$title])) "; else missing=$((missing + 1)); fi
  done
  if ((missing == 0)); then ok "$recurring next occurrences created"; else fail "$recurring next occurrences created" "$missing missing"; fi
  figure "reminder latency (remind_at→mail)" "$(stats <<<"$rem_lat")"
  figure "recurrence latency (complete→next)" "$(stats <<<"$rec_lat") (polled every 1 s)"
  PHASE_LINES+=("$name: reminders $(stats <<<"$rem_lat"); recurrences $(stats <<<"$rec_lat")")
}
declare -A rec_seen=()

section "before"
original=$(pubsub_type)
[[ $original == pubsub.kafka ]] || die "component pubsub is $original; start from Kafka (k8s/overlays/local)"
images_before=$(image_ids)
figure "images" "$(tr '\n' ' ' <<<"$images_before")"
deployed_redis=false
if ! kube get statefulset redis >/dev/null 2>&1; then
  run kube apply -k k8s/infra/redis
  deployed_redis=true
fi
check "Secret redis-credentials exists" kube get secret redis-credentials
check "Redis ready" kube rollout status statefulset/redis --timeout=300s

phase 1 kafka
section "swap to Redis: kubectl apply -k k8s/pubsub/redis"
run kube apply -k k8s/pubsub/redis
restart_all
if [[ $(pubsub_type) == pubsub.redis ]]; then ok "component pubsub is pubsub.redis"; else fail "component pubsub is pubsub.redis"; fi
phase 2 redis
xlen_redis=$(kube exec statefulset/redis -- redis-cli --no-auth-warning XLEN task-events 2>/dev/null || echo 0)
if ((xlen_redis >= events + 3 * recurring)); then ok "Redis stream task-events holds the Redis phase's events ($xlen_redis)"; else fail "Redis stream task-events holds the Redis phase's events" "XLEN $xlen_redis"; fi
section "swap back: kubectl apply -k $kafka_dir"
run kube apply -k "$kafka_dir"
restart_all
if [[ $(pubsub_type) == pubsub.kafka ]]; then ok "component pubsub is pubsub.kafka"; else fail "component pubsub is pubsub.kafka"; fi
phase 3 "kafka again"

section "every event processed exactly once in effect"
sleep 10 # two reminder sweeps: a late duplicate would show by then
bad=0
for t in "${ALL_TITLES[@]}"; do [[ $(mail_count "Reminder: $t") == 1 ]] || bad=$((bad + 1)); done
if ((bad == 0)); then ok "each of the ${#ALL_TITLES[@]} reminders mailed exactly once"; else fail "each reminder mailed exactly once" "$bad not exactly once"; fi
bad=0
for k in 1 2 3; do
  for ((i = 0; i < recurring; i++)); do [[ $(task_count "series $run_id $k.$i") == 2 ]] || bad=$((bad + 1)); done
done
if ((bad == 0)); then ok "each completed series has exactly one next occurrence"; else fail "each series has exactly one next occurrence" "$bad wrong"; fi
xlen_after=$(kube exec statefulset/redis -- redis-cli --no-auth-warning XLEN task-events 2>/dev/null || echo 0)
if [[ $xlen_after == "$xlen_redis" ]]; then ok "nothing more went to Redis after the swap back"; else fail "nothing more went to Redis after the swap back" "XLEN $xlen_redis -> $xlen_after"; fi
images_after=$(image_ids)
if [[ $images_after == "$images_before" ]]; then ok "the same images (digests) before and after: no code change"; else fail "the same images before and after" "$(tr '\n' ' ' <<<"$images_after")"; fi
section "figures"
for line in "${PHASE_LINES[@]}"; do say "  $line"; done
if $deployed_redis; then run kube delete -k k8s/infra/redis --wait=false; fi
finish
