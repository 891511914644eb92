#!/usr/bin/env bash
# scripts.setup_dapr: what can be checked of setup-dapr.sh without a cluster.
# - --dry-run prints the Helm and kubectl commands in order (Dapr 1.18.3 with upgrade --install,
#   the namespace, the Secrets, the Dapr components, the workloads, the rollouts) and the rendered
#   overlay is split without losing or misfiling an object;
# - production Secrets come from the environment or --secrets-dir, a missing value is an error
#   naming it, no value is ever printed, and --list-secrets is exactly what the production
#   overlay references;
# - run twice against a stand-in kubectl and helm (they record their arguments and keep which
#   Secrets exist), the second run repeats the same commands and keeps the generated tokens.
#   tests/scripts/test_setup_dapr.sh REPO
set -euo pipefail
repo=${1:?usage: test_setup_dapr.sh REPO}
setup=$repo/k8s/scripts/setup-dapr.sh
py=${TODO_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s%s\n' "$1" "${2:+: $2}"; }
expect() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# Distinctive values: none of them may appear in any output.
export BACKEND_DATABASE_URL=postgresql://backend:pw-AAA111@db.example:5432/todo
export JWT_SECRET=jwt-BBB222-0123456789abcdef0123456789
export NOTIFICATION_DATABASE_URL=postgresql://notification:pw-CCC333@db.example/todo
export SMTP_USER=smtp-user-DDD444 SMTP_PASSWORD=smtp-pw-EEE555
export STATESTORE_CONNECTION_STRING="host=db.example password=pw-FFF666"
export KAFKA_BROKERS=k1.example:9093 KAFKA_USERNAME=kafka-GGG777 KAFKA_PASSWORD=kafka-pw-HHH888
values='pw-AAA111|jwt-BBB222|pw-CCC333|smtp-user-DDD444|smtp-pw-EEE555|pw-FFF666|kafka-GGG777|kafka-pw-HHH888'

# ---- stand-in kubectl and helm ----
stub=$work/stub
mkdir -p "$stub/bin" "$stub/secrets"
real_kubectl=$(command -v kubectl)
cat >"$stub/bin/kubectl" <<EOF
#!/usr/bin/env bash
# Stand-in kubectl: records its arguments; kustomize, create --dry-run=client and label --local
# run the real one (no cluster needed); apply -f - records the Secrets it is given.
printf 'kubectl %s\n' "\$*" >>"$stub/log"
args=" \$* "
case \$args in
  *" kustomize "* | *" --dry-run=client "* | *" label --local "*) exec "$real_kubectl" "\$@" ;;
  *" get secret "*)
    name=\${args#* get secret }; name=\${name%% *}
    [[ -e "$stub/secrets/\$name" ]] ;;
  *" apply -f - "*)
    doc=\$(cat)
    if grep -q '^kind: Secret' <<<"\$doc"; then
      name=\$(sed -n 's/^  name: //p' <<<"\$doc" | head -n 1); touch "$stub/secrets/\$name"
      echo "secret/\$name configured"
    fi ;;
  *) exit 0 ;;
esac
EOF
cat >"$stub/bin/helm" <<EOF
#!/usr/bin/env bash
printf 'helm %s\n' "\$*" >>"$stub/log"
EOF
chmod +x "$stub/bin/kubectl" "$stub/bin/helm"
# ---- dry run, local overlay ----
rc=0
out=$(bash "$setup" --dry-run --render-dir "$work/local" 2>&1) || rc=$?
printf '%s\n' "$out" | sed 's/^/    | /'
expect "dry run of the local overlay exits 0" '((rc == 0))'
line_of() { grep -n -F -- "$1" <<<"$out" | head -n 1 | cut -d: -f1; }
order=(
  "+ helm repo add dapr https://dapr.github.io/helm-charts --force-update"
  "+ helm upgrade --install dapr dapr/dapr --version 1.18.3 --namespace dapr-system --create-namespace --wait"
  "+ kubectl -n dapr-system rollout status deployment/dapr-operator"
  "+ kubectl -n dapr-system rollout status statefulset/dapr-scheduler-server"
  "+ kubectl wait --for condition=established crd/components.dapr.io"
  "+ kubectl apply -f $work/local/10-namespace.yaml"
  "+ kubectl apply -f $work/local/20-secrets.yaml"
  "+ kubectl apply -f $work/local/30-dapr.yaml"
  "+ kubectl apply -f $work/local/40-workloads.yaml"
  "+ kubectl -n todo rollout status deployment/backend"
  "+ kubectl -n todo rollout status deployment/recurring"
)
prev=0
inorder=true
for c in "${order[@]}"; do
  n=$(line_of "$c")
  if [[ -z $n ]]; then bad "dry run prints: $c"; inorder=false; continue; fi
  ((n > prev)) || inorder=false
  prev=$n
done
expect "the commands come in order: Dapr, control plane, namespace, Secrets, components, workloads, rollouts" '$inorder'
expect "Dapr is installed with helm upgrade --install (idempotent), pinned to 1.18.3" \
  'grep -q -- "--version 1.18.3" <<<"$out" && ! grep -q "helm install " <<<"$out"'
: >"$stub/log"
PATH=$stub/bin:$PATH bash "$setup" --dry-run --overlay production >/dev/null 2>&1 || true
expect "a dry run runs no command but kubectl kustomize (every other is printed)" \
  '[[ -s $stub/log ]] && ! grep -qv "^kubectl kustomize " "$stub/log"'

# The split keeps every object, each in its file.
kinds() { grep -h '^kind:' "$@" 2>/dev/null | awk '{print $2}' | sort | tr '\n' ' '; }
total=$(kubectl kustomize "$repo/k8s/overlays/local" | grep -c '^kind:')
split=$(cat "$work"/local/*.yaml | grep -c '^kind:')
expect "the split keeps all $total objects of the local overlay" '[[ $split == "$total" ]]'
expect "10-namespace.yaml holds the Namespace todo" '[[ $(kinds "$work/local/10-namespace.yaml") == "Namespace " ]] && grep -q "name: todo" "$work/local/10-namespace.yaml"'
expect "20-secrets.yaml holds only Secrets" '[[ $(kinds "$work/local/20-secrets.yaml" | tr " " "\n" | sort -u | tr -d "\n") == Secret ]]'
expect "30-dapr.yaml holds the Components, Configuration and Resiliency" \
  '[[ $(kinds "$work/local/30-dapr.yaml") == "Component Component Configuration Resiliency " ]]'
expect "40-workloads.yaml holds the four Deployments and no Dapr, Namespace or Secret object" \
  '[[ $(grep -c "^kind: Deployment" "$work/local/40-workloads.yaml") -ge 4 ]] && ! grep -qE "^(apiVersion: dapr.io|kind: (Namespace|Secret)$)" "$work/local/40-workloads.yaml"'

# ---- dry run, redis overlay, components only ----
rc=0
out=$(bash "$setup" --dry-run --overlay redis --components-only --skip-dapr-install --render-dir "$work/redis" 2>&1) || rc=$?
expect "dry run of the redis overlay with --components-only exits 0" '((rc == 0))'
expect "the redis overlay's pubsub is pubsub.redis" 'grep -q "type: pubsub.redis" "$work/redis/30-dapr.yaml"'
expect "--components-only applies no workload and waits for no rollout" \
  '! grep -q "40-workloads" <<<"$out" && ! grep -q "rollout status deployment/backend" <<<"$out"'
expect "--skip-dapr-install runs no helm" '! grep -q "+ helm" <<<"$out"'

# ---- production: Secrets from the environment ----
rc=0
out=$(bash "$setup" --dry-run --overlay production 2>&1) || rc=$?
printf '%s\n' "$out" | grep -F 'secret' | sed 's/^/    | /'
expect "dry run of the production overlay with every value set exits 0" '((rc == 0))'
for s in backend-secrets notification-secrets email-secrets statestore-postgres kafka-credentials dapr-api-token app-api-token; do
  expect "creates Secret $s (create --dry-run=client | apply)" \
    'grep -qE "^\+ kubectl create secret generic $s .*--dry-run=client -o yaml \| .*\| kubectl apply -f -$" <<<"$out"'
done
expect "Secret values are passed as files, never as literals" '! grep -q -- "--from-literal" <<<"$out"'
expect "no Secret value appears in the output" '! grep -qE "$values" <<<"$out"'
expect "unset tokens are to be generated" 'grep -q "dapr-api-token: token would be generated" <<<"$out"'

rc=0
out=$(env -u KAFKA_PASSWORD -u JWT_SECRET bash "$setup" --dry-run --overlay production 2>&1) || rc=$?
expect "a missing value is exit 1 naming it" '((rc == 1)) && grep -q "no value for: JWT_SECRET KAFKA_PASSWORD" <<<"$out"'
rc=0
out=$(JWT_SECRET=short bash "$setup" --dry-run --overlay production 2>&1) || rc=$?
expect "a JWT_SECRET under 32 bytes is refused" '((rc == 1)) && grep -q "at least 32 bytes" <<<"$out"'

# ---- production: Secrets from files ----
sd=$work/secrets
while read -r secret key var; do
  mkdir -p "$sd/$secret"
  [[ $key == token ]] || printf '%s' "${!var}" >"$sd/$secret/$key"
done < <(bash "$setup" --list-secrets)
rm "$sd/email-secrets/SMTP_PASSWORD"
rc=0
out=$(env -u JWT_SECRET bash "$setup" --dry-run --overlay production --secrets-dir "$sd" 2>&1) || rc=$?
expect "--secrets-dir: a missing file is exit 1 naming it" '((rc == 1)) && grep -q "$sd/email-secrets/SMTP_PASSWORD" <<<"$out"'
printf '%s' "$SMTP_PASSWORD" >"$sd/email-secrets/SMTP_PASSWORD"
rc=0
out=$(env -u JWT_SECRET bash "$setup" --dry-run --overlay production --secrets-dir "$sd" 2>&1) || rc=$?
expect "--secrets-dir with every file exits 0 and prints no value" '((rc == 0)) && ! grep -qE "$values" <<<"$out"'

# ---- --list-secrets = what the production overlay references ----
listed=$(bash "$setup" --list-secrets | awk '{print $1, $2}' | sort)
referenced=$(kubectl kustomize "$repo/k8s/overlays/production" | "$py" -c '
import sys, yaml
refs = set()
def walk(o):
    if isinstance(o, dict):
        r = o.get("secretKeyRef")
        if isinstance(r, dict):
            refs.add((r["name"], r["key"]))
        for v in o.values():
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
for doc in yaml.safe_load_all(sys.stdin):
    if not doc:
        continue
    walk(doc.get("spec", {}))
    ann = doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {}) if doc.get("kind") == "Deployment" else {}
    for a in ("dapr.io/api-token-secret", "dapr.io/app-token-secret"):
        if a in ann:
            refs.add((ann[a], "token"))
for name, key in sorted(refs):
    print(name, key)
' | sort)
expect "--list-secrets is exactly what the production overlay references" '[[ $listed == "$referenced" ]]'
[[ $listed == "$referenced" ]] || diff <(printf '%s\n' "$listed") <(printf '%s\n' "$referenced") || true

# ---- twice against the stand-ins: idempotent ----
runs=()
for i in 1 2; do
  : >"$stub/log"
  rc=0
  out=$(PATH=$stub/bin:$PATH KUBECTL=kubectl HELM=helm bash "$setup" --overlay production 2>&1) || rc=$?
  expect "run $i against the stand-ins exits 0" '((rc == 0))'
  expect "run $i prints no Secret value" '! grep -qE "$values" <<<"$out"'
  runs[i]=$(grep -vE '^kubectl (kustomize|create secret|label --local)' "$stub/log" |
    sed -E 's#/tmp/tmp\.[A-Za-z0-9]+#TMP#g')
  if ((i == 1)); then
    expect "run 1 generates and applies both tokens" \
      '[[ -e $stub/secrets/dapr-api-token && -e $stub/secrets/app-api-token ]] && grep -q "dapr-api-token: token generated" <<<"$out"'
  else
    expect "run 2 keeps the tokens (the Secrets exist)" \
      'grep -q "dapr-api-token exists: its token is kept" <<<"$out" && grep -q "app-api-token exists: its token is kept" <<<"$out"'
  fi
done
second=$(grep -vE 'get secret|apply -f -$' <<<"${runs[2]}")
first=$(grep -vE 'get secret|apply -f -$' <<<"${runs[1]}")
expect "run 2 repeats run 1's commands (helm upgrade --install, kubectl apply, rollouts)" \
  '[[ $first == "$second" ]] && grep -q "helm upgrade --install dapr dapr/dapr --version 1.18.3" <<<"$second"'
secrets1=$(grep -c 'apply -f -$' <<<"${runs[1]}" || true)
secrets2=$(grep -c 'apply -f -$' <<<"${runs[2]}" || true)
expect "run 1 applies 7 Secrets, run 2 the 5 with given values (not the kept tokens)" \
  '[[ $secrets1 == 7 && $secrets2 == 5 ]]'
[[ $first == "$second" ]] || diff <(printf '%s\n' "$first") <(printf '%s\n' "$second") || true

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
