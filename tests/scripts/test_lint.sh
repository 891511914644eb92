#!/usr/bin/env bash
# scripts.lint: k8s/scripts/*.sh parse (bash -n) and pass shellcheck where Debian's shellcheck is
# installed; the Python helpers parse; every script answers --help (exit 0, with its usage and
# exit status) and refuses an unknown argument or target (exit 2); checks.py reports what is wrong
# with a sidecar's metadata; no script prints a check mark.
#   tests/scripts/test_lint.sh REPO
set -euo pipefail
repo=${1:?usage: test_lint.sh REPO}
scripts=$repo/k8s/scripts
py=${TODO_PYTHON:-/usr/bin/python3}
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s%s\n' "$1" "${2:+: $2}"; }

mapfile -t shells < <(cd "$scripts" && ls ./*.sh lib/*.sh)
for f in "${shells[@]}"; do
  if out=$(bash -n "$scripts/$f" 2>&1); then ok "bash -n $f"; else bad "bash -n $f" "$out"; fi
done
if command -v shellcheck >/dev/null; then
  if out=$(cd "$scripts" && shellcheck -x -S warning "${shells[@]}" 2>&1); then
    ok "shellcheck -x (warnings and errors) of ${#shells[@]} files"
  else
    bad "shellcheck" "$out"
  fi
else
  printf 'skip  shellcheck is not installed (apt-get install shellcheck)\n'
fi
for f in "$scripts"/lib/*.py; do
  if out=$("$py" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" 2>&1); then
    ok "python parses lib/$(basename "$f")"
  else
    bad "python parses lib/$(basename "$f")" "$out"
  fi
done

for s in setup-dapr validate-dapr-deployment test-infrastructure-swap test-simplified-operations \
  test-guaranteed-job-execution; do
  f=$scripts/$s.sh
  [[ -x $f ]] && ok "$s.sh is executable" || bad "$s.sh is executable"
  if grep -q '^set -euo pipefail$' "$f"; then ok "$s.sh sets -euo pipefail"; else bad "$s.sh sets -euo pipefail"; fi
  rc=0
  out=$(bash "$f" --help 2>&1) || rc=$?
  if ((rc == 0)) && grep -q '^Usage: k8s/scripts/' <<<"$out" && grep -q '^Exit status' <<<"$out"; then
    ok "$s.sh --help"
  else
    bad "$s.sh --help" "exit $rc"
  fi
  rc=0
  bash "$f" --no-such-option >/dev/null 2>&1 || rc=$?
  ((rc == 2)) && ok "$s.sh refuses an unknown argument (exit 2)" || bad "$s.sh refuses an unknown argument" "exit $rc"
  rc=0
  bash "$f" --target nowhere >/dev/null 2>&1 || rc=$?
  ((rc == 2)) && ok "$s.sh refuses --target nowhere (exit 2)" || bad "$s.sh refuses --target nowhere" "exit $rc"
done
rc=0
bash "$scripts/setup-dapr.sh" --target local >/dev/null 2>&1 || rc=$?
((rc == 2)) && ok "setup-dapr.sh has no local target (exit 2)" || bad "setup-dapr.sh --target local" "exit $rc"

if grep -rn '✅\|✔' "$scripts" >/dev/null; then bad "no check marks in k8s/scripts"; else ok "no check marks in k8s/scripts"; fi

# checks.py metadata: a good sidecar, then each defect.
good='{"id":"email","components":[{"name":"pubsub","type":"pubsub.kafka"},{"name":"statestore","type":"state.postgresql"}],"subscriptions":[{"pubsubname":"pubsub","topic":"task-reminders","deadLetterTopic":"task-reminders-dlq"}]}'
meta() { printf '%s' "$2" | "$py" -B "$scripts/lib/checks.py" metadata "$1" ${3:+"$3"} >/dev/null 2>&1; }
meta email "$good" && ok "checks.py metadata accepts a good sidecar" || bad "checks.py metadata accepts a good sidecar"
meta email "$good" pubsub.kafka && ok "checks.py metadata accepts the expected pubsub type" || bad "checks.py metadata: expected type"
declare -A defects=(
  ["another app id"]="${good/\"id\":\"email\"/\"id\":\"backend\"}"
  ["no statestore"]="${good/statestore/other}"
  ["no subscription"]="${good/task-reminders\"/task-other\"}"
  ["a wrong dead-letter topic"]="${good/task-reminders-dlq/elsewhere}"
  ["not JSON"]="{"
)
for d in "${!defects[@]}"; do
  if meta email "${defects[$d]}"; then bad "checks.py metadata reports $d"; else ok "checks.py metadata reports $d"; fi
done
if meta email "$good" pubsub.redis; then bad "checks.py metadata reports a wrong pubsub type"; else ok "checks.py metadata reports a wrong pubsub type"; fi
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if "$py" -B "$scripts/lib/checks.py" kafka-ping "127.0.0.1:$port" >/dev/null 2>&1; then
  bad "checks.py kafka-ping reports a closed port"
else
  ok "checks.py kafka-ping reports a closed port"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
