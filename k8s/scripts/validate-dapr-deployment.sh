#!/usr/bin/env bash
# validate-dapr-deployment.sh: checks that the Todo system runs as deployed, on Dapr: the control
# plane, the components, every service and its sidecar, the Secrets, the broker and the database.
#
# Usage: k8s/scripts/validate-dapr-deployment.sh [--target local|k8s] [OPTIONS]
#
#   --target local (default)  the local stack: each sidecar's /v1.0/healthz, /v1.0/healthz/outbound
#                             and /v1.0/metadata (components loaded, the app's subscription and
#                             its dead-letter topic), each service's /healthz and /readyz, the
#                             broker (Kafka ApiVersions, or Redis PING) and PostgreSQL (reachable,
#                             the services' schemas there).
#     --stack-file FILE       the endpoints of the stack (KEY=VALUE lines: BACKEND_PORT,
#                             BACKEND_DAPR_PORT, … RECURRING_DAPR_PORT, DATABASE_URL,
#                             KAFKA_BROKERS, REDIS_HOST, SCHEDULER_DATABASE_URL); default: those
#                             of scripts/run-local.sh, from the same variables (TODO_SERVICE_PORTS,
#                             default 8000-8003; TODO_SIDECAR_PORTS, 3500-3503; TODO_PG_PORT, 55432;
#                             Kafka from $TODO_STATE_DIR/kafka/bootstrap).
#                             A Redis password comes from REDISCLI_AUTH, a Dapr API token from
#                             DAPR_API_TOKEN.
#     --start-stack           start a stack of its own (PostgreSQL, kafka-mock, the four services
#                             and their sidecars; binaries from $TODO_BIN_DIR, default build/bin),
#                             validate it, then break it piece by piece (a sidecar, the database,
#                             the broker) and check that each break is reported; this is what
#                             CTest runs.
#   --target k8s              the cluster of the current kubectl context: Dapr's control plane in
#                             dapr-system (available, version 1.18.3, CRDs), the Components,
#                             Configuration and Resiliency in the namespace, every Secret and key
#                             that the Components and Deployments name, each Deployment's pods
#                             2/2 ready, each sidecar healthy with its components and subscription
#                             (through kubectl port-forward, with the dapr-api-token), each app's
#                             /readyz, then the broker and the database reachable from inside the
#                             pods (an ephemeral busybox container, kubectl debug --profile=restricted).
#     --namespace NS          default todo (or $TODO_NAMESPACE)
#     --no-debug-containers   skip the ephemeral containers (the sidecars' outbound health and the
#                             apps' readiness still cover the broker and the database)
#   -h, --help                this text
#
# Exit status: 0 when every check passed, 1 when one failed, 2 on a usage error.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

stack_file=""
start_stack=false
debug_containers=true
while (($#)); do
  case $1 in
    --target) set_target "${2:-}"; shift ;;
    --target=*) set_target "${1#*=}" ;;
    --stack-file) stack_file=${2:-}; [[ -n $stack_file ]] || usage_error "--stack-file needs a file"; shift ;;
    --start-stack) start_stack=true ;;
    --namespace) NAMESPACE=${2:-}; [[ -n $NAMESPACE ]] || usage_error "--namespace needs a name"; shift ;;
    --no-debug-containers) debug_containers=false ;;
    -h | --help) print_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done

APPS=(backend notification email recurring)
declare -A APP_PORT=([backend]=8000 [notification]=8001 [email]=8002 [recurring]=8003)
CHECKS_PY=$TODO_SCRIPTS/lib/checks.py

# ------------------------------------------------------------------------------------------------
# --target local

validate_local() {
  declare -A ep=()
  local key value s
  if [[ -n $stack_file ]]; then
    [[ -r $stack_file ]] || usage_error "cannot read $stack_file"
    while IFS='=' read -r key value; do
      [[ -z $key || $key == \#* ]] && continue
      case $key in
        BACKEND_PORT | BACKEND_DAPR_PORT | NOTIFICATION_PORT | NOTIFICATION_DAPR_PORT | \
          EMAIL_PORT | EMAIL_DAPR_PORT | RECURRING_PORT | RECURRING_DAPR_PORT | DATABASE_URL | \
          KAFKA_BROKERS | REDIS_HOST | SCHEDULER_DATABASE_URL)
          ep[$key]=$value ;;
        *) usage_error "$stack_file: unknown key $key" ;;
      esac
    done <"$stack_file"
  else
    # scripts/run-local.sh's ports and state, from the same variables.
    local state=${TODO_STATE_DIR:-/var/tmp/todo-local} pg=${TODO_PG_PORT:-55432} i=0
    local app_ports dapr_ports
    read -r -a app_ports <<<"${TODO_SERVICE_PORTS:-${PORT:-8000} 8001 8002 8003}"
    read -r -a dapr_ports <<<"${TODO_SIDECAR_PORTS:-3500 3501 3502 3503}"
    for s in "${APPS[@]}"; do
      ep[${s^^}_PORT]=${app_ports[i]:-}
      ep[${s^^}_DAPR_PORT]=${dapr_ports[i]:-}
      i=$((i + 1))
    done
    ep[DATABASE_URL]=postgresql://postgres@127.0.0.1:$pg/todo
    ep[SCHEDULER_DATABASE_URL]=postgresql://postgres@127.0.0.1:$pg/dapr_scheduler
    [[ -s $state/kafka/bootstrap ]] && ep[KAFKA_BROKERS]=$(cat "$state/kafka/bootstrap")
    [[ -n ${REDIS_HOST:-} ]] && ep[REDIS_HOST]=$REDIS_HOST
  fi
  local token_args=()
  [[ -n ${DAPR_API_TOKEN:-} ]] && token_args=(-H "dapr-api-token: $DAPR_API_TOKEN")

  say "== validate-dapr-deployment --target local"
  section "sidecars and services"
  local types=() dp ap code md detail
  for s in "${APPS[@]}"; do
    dp=${ep[${s^^}_DAPR_PORT]:-}
    ap=${ep[${s^^}_PORT]:-}
    [[ -n $dp && -n $ap ]] || { fail "$s: ports in the stack file"; continue; }
    code=$(http_status "http://127.0.0.1:$dp/v1.0/healthz")
    if [[ $code == 204 ]]; then ok "sidecar $s (:$dp) /v1.0/healthz 204"; else fail "sidecar $s (:$dp) /v1.0/healthz 204" "got $code"; fi
    code=$(http_status "http://127.0.0.1:$dp/v1.0/healthz/outbound")
    if [[ $code == 204 ]]; then ok "sidecar $s /v1.0/healthz/outbound 204 (components initialised)"; else fail "sidecar $s /v1.0/healthz/outbound 204" "got $code"; fi
    md=$(curl -s --max-time 10 "${token_args[@]}" "http://127.0.0.1:$dp/v1.0/metadata" || true)
    if detail=$(printf '%s' "$md" | "$TODO_PYTHON" -B "$CHECKS_PY" metadata "$s"); then
      ok "sidecar $s metadata: $detail"
      types+=("$(printf '%s' "$md" | "$TODO_PYTHON" -B "$CHECKS_PY" pubsub-type)")
    else
      fail "sidecar $s metadata: components and subscription" "$detail"
    fi
    code=$(http_status "http://127.0.0.1:$ap/healthz")
    if [[ $code == 200 ]]; then ok "$s (:$ap) /healthz 200"; else fail "$s (:$ap) /healthz 200" "got $code"; fi
    code=$(http_status "http://127.0.0.1:$ap/readyz")
    if [[ $code == 200 ]]; then ok "$s /readyz 200"; else fail "$s /readyz 200" "got $code"; fi
  done

  section "broker"
  local pubsub=""
  if ((${#types[@]})); then
    pubsub=${types[0]}
    local t same=true
    for t in "${types[@]}"; do [[ $t == "$pubsub" ]] || same=false; done
    if $same; then ok "every sidecar has pubsub of type $pubsub"; else fail "every sidecar has the same pubsub type" "${types[*]}"; fi
  fi
  case $pubsub in
    pubsub.kafka)
      if [[ -z ${ep[KAFKA_BROKERS]:-} ]]; then
        fail "Kafka reachable" "no KAFKA_BROKERS in the stack file (nor \$TODO_STATE_DIR/kafka/bootstrap)"
      elif detail=$("$TODO_PYTHON" -B "$CHECKS_PY" kafka-ping "${ep[KAFKA_BROKERS]}"); then
        ok "Kafka reachable: $detail"
      else
        fail "Kafka reachable" "$detail"
      fi ;;
    pubsub.redis)
      local rh=${ep[REDIS_HOST]:-} reply
      if [[ -z $rh ]]; then
        fail "Redis reachable" "no REDIS_HOST in the stack file or the environment"
      else
        reply=$(redis-cli -h "${rh%:*}" -p "${rh##*:}" --no-auth-warning PING 2>&1 || true)
        if [[ $reply == PONG ]]; then ok "Redis reachable at $rh (PING answered PONG)"; else fail "Redis reachable at $rh" "$reply"; fi
      fi ;;
    "") fail "broker reachable" "no sidecar told its pubsub type" ;;
    *) fail "broker reachable" "no check for pubsub type $pubsub" ;;
  esac

  section "database"
  local url=${ep[DATABASE_URL]:-} n
  if [[ -z $url ]]; then
    fail "PostgreSQL reachable" "no DATABASE_URL"
  else
    check "PostgreSQL reachable (pg_isready)" pg_isready -q -t 5 -d "$url"
    if n=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$url" \
      -c "SELECT count(*) FROM pg_namespace WHERE nspname IN ('backend', 'notification')" 2>&1) &&
      [[ $n == 2 ]]; then
      ok "PostgreSQL holds the schemas backend and notification (migrations applied)"
    else
      fail "PostgreSQL holds the schemas backend and notification" "$n"
    fi
  fi
  if [[ -n ${ep[SCHEDULER_DATABASE_URL]:-} ]]; then
    check "jobs store reachable (pg_isready)" pg_isready -q -t 5 -d "${ep[SCHEDULER_DATABASE_URL]}"
  fi
}

# ------------------------------------------------------------------------------------------------
# --target k8s

# host_port_of_url URL: host:port of a postgresql:// URL (default port 5432).
host_port_of_url() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  [[ $rest == *:* ]] || rest=$rest:5432
  printf '%s\n' "$rest"
}

# host_port_of_conninfo "host=… port=…": host:port of a libpq key=value string.
host_port_of_conninfo() {
  local host="" port=5432 kv
  for kv in $1; do
    case $kv in
      host=*) host=${kv#host=} ;;
      port=*) port=${kv#port=} ;;
    esac
  done
  printf '%s:%s\n' "$host" "$port"
}

# component_value NAME KEY: a Component's metadata value, resolving a secretKeyRef.
component_value() {
  local name=$1 key=$2 v ref
  v=$(kube get component "$name" -o "jsonpath={.spec.metadata[?(@.name=='$key')].value}")
  if [[ -z $v ]]; then
    ref=$(kube get component "$name" -o "jsonpath={.spec.metadata[?(@.name=='$key')].secretKeyRef.name} {.spec.metadata[?(@.name=='$key')].secretKeyRef.key}")
    [[ $ref == " " || -z $ref ]] || v=$(secret_value "${ref% *}" "${ref#* }")
  fi
  printf '%s\n' "$v"
}

# netcheck POD HOST:PORT...: an ephemeral busybox container in POD (its network namespace and
# NetworkPolicies) that connects to each address; ok/fail per address.
netcheck() {
  local pod=$1 c i code line
  shift
  c=netcheck-$(date +%s)-$RANDOM
  # shellcheck disable=SC2016 # expanded by the container's shell
  local script='for hp in "$@"; do if nc -z -w 5 "${hp%:*}" "${hp##*:}"; then echo "reachable $hp"; else echo "unreachable $hp"; fi; done'
  if ! kube debug "pod/$pod" --image=busybox:1.36 --profile=restricted --container="$c" \
    --attach=false -- sh -c "$script" sh "$@" >/dev/null 2>&1; then
    fail "ephemeral container in $pod" "kubectl debug refused (Kubernetes >= 1.25 and kubectl >= 1.27 needed; or use --no-debug-containers)"
    return
  fi
  code=""
  for ((i = 0; i < 90; i++)); do
    code=$(kube get pod "$pod" -o "jsonpath={.status.ephemeralContainerStatuses[?(@.name=='$c')].state.terminated.exitCode}" 2>/dev/null || true)
    [[ -n $code ]] && break
    sleep 1
  done
  [[ -n $code ]] || { fail "ephemeral container $c in $pod finished within 90 s"; return; }
  while read -r line; do
    case $line in
      "reachable "*) ok "${line#reachable } reachable from $pod" ;;
      "unreachable "*) fail "${line#unreachable } reachable from $pod" "no TCP connection within 5 s" ;;
    esac
  done < <(kube logs "pod/$pod" -c "$c" 2>/dev/null || true)
}

validate_k8s() {
  need_kubectl
  trap stop_port_forwards EXIT
  say "== validate-dapr-deployment --target k8s (namespace $NAMESPACE, context $("$KUBECTL" config current-context 2>/dev/null || echo '?'))"

  section "Dapr control plane (dapr-system)"
  local d r image
  for d in dapr-operator dapr-sidecar-injector dapr-sentry; do
    r=$("$KUBECTL" -n dapr-system get deploy "$d" -o 'jsonpath={.status.availableReplicas}/{.spec.replicas}' 2>&1 || true)
    if [[ $r =~ ^([0-9]+)/([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] == BASH_REMATCH[2])); then
      ok "deployment $d available ($r)"
    else
      fail "deployment $d available" "$r"
    fi
  done
  for d in dapr-placement-server dapr-scheduler-server; do
    r=$("$KUBECTL" -n dapr-system get statefulset "$d" -o 'jsonpath={.status.readyReplicas}/{.spec.replicas}' 2>&1 || true)
    if [[ $r =~ ^([0-9]+)/([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] == BASH_REMATCH[2])); then
      ok "statefulset $d ready ($r)"
    else
      fail "statefulset $d ready" "$r"
    fi
  done
  image=$("$KUBECTL" -n dapr-system get deploy dapr-operator -o 'jsonpath={.spec.template.spec.containers[0].image}' 2>/dev/null || true)
  if [[ $image == *:1.18.3 ]]; then ok "Dapr runtime 1.18.3 ($image)"; else fail "Dapr runtime 1.18.3" "operator image '$image'"; fi
  for r in components.dapr.io configurations.dapr.io resiliencies.dapr.io subscriptions.dapr.io; do
    check "CRD $r installed" "$KUBECTL" get crd "$r" --request-timeout=30s
  done

  section "Dapr resources in $NAMESPACE"
  local pubsub_type store_type
  pubsub_type=$(kube get component pubsub -o 'jsonpath={.spec.type}' 2>/dev/null || true)
  case $pubsub_type in
    pubsub.kafka | pubsub.redis) ok "component pubsub ($pubsub_type)" ;;
    *) fail "component pubsub of type pubsub.kafka or pubsub.redis" "'$pubsub_type'" ;;
  esac
  store_type=$(kube get component statestore -o 'jsonpath={.spec.type}' 2>/dev/null || true)
  if [[ $store_type == state.postgresql ]]; then ok "component statestore ($store_type)"; else fail "component statestore of type state.postgresql" "'$store_type'"; fi
  check "configuration todo-dapr" kube get configuration todo-dapr
  check "resiliency todo-resiliency" kube get resiliency todo-resiliency

  section "Secrets"
  local refs name key value
  refs=$(
    kube get components -o 'jsonpath={range .items[*]}{range .spec.metadata[*]}{.secretKeyRef.name}{" "}{.secretKeyRef.key}{"\n"}{end}{end}'
    kube get deploy -l app.kubernetes.io/part-of=todo -o 'jsonpath={range .items[*]}{range .spec.template.spec.containers[*]}{range .env[*]}{.valueFrom.secretKeyRef.name}{" "}{.valueFrom.secretKeyRef.key}{"\n"}{end}{end}{end}'
    kube get deploy -l app.kubernetes.io/part-of=todo -o 'jsonpath={range .items[*]}{.spec.template.metadata.annotations.dapr\.io/api-token-secret}{" token\n"}{.spec.template.metadata.annotations.dapr\.io/app-token-secret}{" token\n"}{end}'
  )
  while read -r name key; do
    [[ -n $name && -n $key ]] || continue
    value=$(kube get secret "$name" -o "jsonpath={.data.${key//./\\.}}" 2>/dev/null || true)
    if [[ -n $value ]]; then ok "Secret $name has key $key"; else fail "Secret $name has key $key" "missing or empty"; fi
  done < <(printf '%s\n' "$refs" | sort -u)

  section "Deployments and pods"
  local app token p meta detail cs
  for app in "${APPS[@]}"; do
    r=$(kube get deploy "$app" -o 'jsonpath={.status.readyReplicas}/{.spec.replicas}' 2>&1 || true)
    if [[ $r =~ ^([0-9]+)/([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] == BASH_REMATCH[2])); then
      ok "deployment $app: $r replicas ready"
    else
      fail "deployment $app: every replica ready" "$r"
    fi
    while read -r p cs; do
      [[ -n $p ]] || continue
      # cs: name=ready pairs of the pod's containers, e.g. "backend=true,daprd=true,"
      if [[ $cs == *"$app=true"* && $cs == *"daprd=true"* && $(tr -cd ',' <<<"$cs" | wc -c) -eq 2 ]]; then
        ok "pod $p 2/2 ready ($app + daprd)"
      else
        fail "pod $p 2/2 ready ($app + daprd)" "$cs"
      fi
    done < <(kube get pods -l "app.kubernetes.io/name=$app" -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{range .status.containerStatuses[*]}{.name}{"="}{.ready}{","}{end}{"\n"}{end}')
  done

  section "sidecars (through kubectl port-forward)"
  token=$(secret_value dapr-api-token token 2>/dev/null || true)
  [[ -n $token ]] || fail "the dapr-api-token Secret can be read"
  for app in "${APPS[@]}"; do
    while read -r p; do
      [[ -n $p ]] || continue
      if port_forward "pod/$p" 3500; then
        code=$(http_status "http://127.0.0.1:$PF_PORT/v1.0/healthz")
        if [[ $code == 204 ]]; then ok "$p sidecar /v1.0/healthz 204"; else fail "$p sidecar /v1.0/healthz 204" "got $code"; fi
        meta=$(curl -s --max-time 10 -H "dapr-api-token: $token" "http://127.0.0.1:$PF_PORT/v1.0/metadata" || true)
        if detail=$(printf '%s' "$meta" | "$TODO_PYTHON" -B "$CHECKS_PY" metadata "$app" "$pubsub_type"); then
          ok "$p sidecar metadata: $detail"
        else
          fail "$p sidecar metadata: components and subscription" "$detail"
        fi
      else
        fail "port-forward to $p:3500"
      fi
      if port_forward "pod/$p" "${APP_PORT[$app]}"; then
        code=$(http_status "http://127.0.0.1:$PF_PORT/readyz")
        if [[ $code == 200 ]]; then ok "$p $app /readyz 200"; else fail "$p $app /readyz 200" "got $code"; fi
      else
        fail "port-forward to $p:${APP_PORT[$app]}"
      fi
      stop_port_forwards
    done < <(pods_of "$app")
  done

  section "broker and database reachable from the pods"
  local backend_pod email_pod broker_addrs=() db_addr store_addr b
  backend_pod=$(pods_of backend | head -n 1)
  email_pod=$(pods_of email | head -n 1)
  case $pubsub_type in
    pubsub.kafka) IFS=',' read -r -a broker_addrs <<<"$(component_value pubsub brokers)" ;;
    pubsub.redis) broker_addrs=("$(component_value pubsub redisHost)") ;;
  esac
  db_addr=$(host_port_of_url "$(secret_value backend-secrets DATABASE_URL 2>/dev/null || true)")
  store_addr=$(host_port_of_conninfo "$(component_value statestore connectionString)")
  figure "broker" "${broker_addrs[*]:-?}"
  figure "database (backend)" "$db_addr"
  figure "database (statestore)" "$store_addr"
  if ! $debug_containers; then
    say "  (--no-debug-containers: reachability covered by the sidecars' outbound health and the apps' /readyz above)"
  elif [[ -z $backend_pod || -z $email_pod ]]; then
    fail "a running backend and email pod for the reachability checks"
  else
    for b in "${!broker_addrs[@]}"; do broker_addrs[b]=${broker_addrs[b]// /}; done
    netcheck "$backend_pod" "${broker_addrs[@]}" "$db_addr"
    netcheck "$email_pod" "$store_addr"
  fi
}

if [[ $TARGET == local ]]; then
  if $start_stack; then
    [[ -z $stack_file ]] || usage_error "--start-stack and --stack-file exclude each other"
    run_local local_validate.py
  fi
  validate_local
else
  $start_stack && usage_error "--start-stack is for --target local"
  [[ -z $stack_file ]] || usage_error "--stack-file is for --target local"
  validate_k8s
fi
finish
