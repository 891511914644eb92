# Shared by k8s/scripts/*.sh (sourced): help and argument errors, the check bookkeeping behind every
# "ok" line, the runner of the local scenarios (k8s/scripts/lib/*.py on tests/lib), dry-run
# printing, and the kubectl helpers of --target k8s (port-forwards, a pod's sidecar API, Secrets).
# shellcheck shell=bash

TODO_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TODO_REPO=$(cd "$TODO_SCRIPTS/../.." && pwd)
SCRIPT_NAME=$(basename "$0")
NAMESPACE=${TODO_NAMESPACE:-todo}
KUBECTL=${KUBECTL:-kubectl}
# The scenarios' Python: Debian's (python3-aiosmtpd, python3-yaml), as CTest's.
TODO_PYTHON=${TODO_PYTHON:-/usr/bin/python3}
[[ -x $TODO_PYTHON ]] || TODO_PYTHON=python3

# The comment block at the top of the script (after the shebang), as its --help.
print_help() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

usage_error() {
  printf '%s: %s (try --help)\n' "$SCRIPT_NAME" "$*" >&2
  exit 2
}

die() {
  printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

say() { printf '%s\n' "$*"; }
section() { printf -- '-- %s\n' "$*"; }

# ---- checks: every "ok" line is printed by ok() after the check it names passed ----

CHECKS_OK=0
CHECKS_FAILED=0
FAILED_CHECKS=()

ok() {
  CHECKS_OK=$((CHECKS_OK + 1))
  printf '  ok    %s\n' "$1"
}

fail() {
  CHECKS_FAILED=$((CHECKS_FAILED + 1))
  FAILED_CHECKS+=("$1")
  if [[ -n ${2:-} ]]; then
    printf '  FAIL  %s: %s\n' "$1" "${2//$'\n'/ }"
  else
    printf '  FAIL  %s\n' "$1"
  fi
}

figure() { printf '  %-34s %s\n' "$1" "$2"; }

# check WHAT COMMAND...: ok when the command succeeds, else fail with its output's last line.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    ok "$what"
  else
    fail "$what" "$(printf '%s\n' "$out" | tail -n 1)"
  fi
}

# The verdict: a summary, the closing line test runners read, and the exit status.
finish() {
  local f
  printf '== %s: %d checks passed, %d failed\n' "$SCRIPT_NAME" "$CHECKS_OK" "$CHECKS_FAILED"
  for f in "${FAILED_CHECKS[@]}"; do
    printf '   failed: %s\n' "$f"
  done
  printf '%d passed, %d failed\n' "$CHECKS_OK" "$CHECKS_FAILED"
  ((CHECKS_FAILED == 0 && CHECKS_OK > 0))
}

# ---- --target local: the scenarios in Python on the test fixtures ----

# run_local SCENARIO.py ARGS...: runs k8s/scripts/lib/SCENARIO.py with tests/lib on the path and
# the binaries of $TODO_BIN_DIR (default build/bin); its exit code is the verdict.
run_local() {
  local scenario=$1
  shift
  local bin=${TODO_BIN_DIR:-$TODO_REPO/build/bin}
  local exe
  for exe in todo-backend todo-notification todo-email todo-recurring dapr-sidecar kafka-mock; do
    [[ -x $bin/$exe ]] || die "$bin/$exe is missing: build first (scripts/build.sh), or set TODO_BIN_DIR"
  done
  [[ -x /usr/lib/postgresql/15/bin/initdb ]] || die "PostgreSQL 15 is missing (scripts/deps.sh installs it)"
  TODO_BIN_DIR=$bin TODO_SOURCE_DIR=$TODO_REPO \
    PYTHONPATH="$TODO_REPO/tests/lib:$TODO_SCRIPTS/lib${PYTHONPATH:+:$PYTHONPATH}" \
    exec "$TODO_PYTHON" -B "$TODO_SCRIPTS/lib/$scenario" "$@"
}

# ---- dry runs ----

DRY_RUN=false

# run COMMAND...: runs it, or with --dry-run prints it (shell-quoted) instead.
run() {
  if $DRY_RUN; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# ---- --target k8s ----

kube() { "$KUBECTL" -n "$NAMESPACE" --request-timeout=30s "$@"; }

need_kubectl() {
  command -v "$KUBECTL" >/dev/null || die "kubectl is not on PATH"
  "$KUBECTL" version --request-timeout=15s >/dev/null 2>&1 ||
    die "no cluster answers (kubectl version failed; check the current context)"
}

# secret_value NAME KEY: the decoded value of a key of a Secret in the namespace.
secret_value() {
  kube get secret "$1" -o "jsonpath={.data.${2//./\\.}}" | base64 -d
}

PF_PIDS=()
PF_DIR=""
PF_PORT=""

# port_forward TARGET REMOTE_PORT: a kubectl port-forward to a free local port; sets PF_PORT.
# Bounded: fails when the forward is not up within 20 s.
port_forward() {
  local target=$1 remote=$2 log i
  [[ -n $PF_DIR ]] || PF_DIR=$(mktemp -d)
  log=$PF_DIR/pf.$RANDOM.log
  "$KUBECTL" -n "$NAMESPACE" port-forward --address 127.0.0.1 "$target" ":$remote" >"$log" 2>&1 &
  PF_PIDS+=($!)
  PF_PORT=""
  for ((i = 0; i < 200; i++)); do
    PF_PORT=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n 1)
    [[ -n $PF_PORT ]] && return 0
    kill -0 "${PF_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  printf '%s: port-forward to %s:%s failed: %s\n' "$SCRIPT_NAME" "$target" "$remote" \
    "$(tail -n 1 "$log")" >&2
  return 1
}

stop_port_forwards() {
  local p
  for p in "${PF_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PF_PIDS=()
  [[ -z $PF_DIR ]] || rm -rf "$PF_DIR"
  PF_DIR=""
}

# http_status URL [CURL ARGS...]: the status code (000 when there is no answer), bounded to 10 s.
http_status() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}

# pods_of APP: the names of the running pods of one of our Deployments.
pods_of() {
  kube get pods -l "app.kubernetes.io/name=$1" --field-selector=status.phase=Running \
    -o 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}'
}

# wait_for SECONDS WHAT COMMAND...: retries the command every second until it succeeds.
wait_for() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  printf '%s: timed out after %d s waiting for %s\n' "$SCRIPT_NAME" "$secs" "$what" >&2
  return 1
}

# JWT of a user for the backend's API (HS256 with JWT_SECRET), as scripts/token.sh makes it.
make_token() {
  local user=$1 email=$2 secret=$3 now header payload sig
  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
  now=$(date +%s)
  header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  payload=$(printf '{"sub":"%s","email":"%s","iat":%d,"exp":%d}' "$user" "$email" "$now" \
    $((now + 3600)) | b64url)
  sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
  printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}

# --target: local (the default) or k8s.
# shellcheck disable=SC2034 # read by the scripts
TARGET=local
# shellcheck disable=SC2034
set_target() {
  case $1 in
    local | k8s) TARGET=$1 ;;
    *) usage_error "--target must be local or k8s, not '$1'" ;;
  esac
}
