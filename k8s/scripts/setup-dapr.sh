#!/usr/bin/env bash
# setup-dapr.sh: installs Dapr 1.18.3 on the cluster of the current kubectl context (Helm chart
# dapr/dapr, namespace dapr-system), creates the namespace todo and the Secrets, applies the Dapr
# components (Components, Configuration, Resiliency), then the rest of the overlay. Idempotent:
# every step is `helm upgrade --install` or `kubectl apply`, so running it again changes only what
# differs; tokens it generated are kept on later runs.
#
# Usage: k8s/scripts/setup-dapr.sh [--target k8s] [OPTIONS]
#
#   --overlay NAME            local (default: Kafka, PostgreSQL, SMTP sink in the cluster), redis,
#                             or production (k8s/overlays/NAME)
#   --secrets-dir DIR         read Secret values from files DIR/<secret>/<key> (e.g.
#                             DIR/backend-secrets/JWT_SECRET) instead of the environment
#   --components-only         stop after the Dapr components (no Deployments, no infrastructure)
#   --skip-dapr-install       do not run Helm (Dapr is installed already)
#   --restart                 afterwards, restart every Deployment of the system and wait for it
#                             (after rotating a Secret or changing a component)
#   --no-wait                 do not wait for the Deployments to roll out
#   --timeout DURATION        for Helm and each rollout (default 300s)
#   --dry-run                 print the helm and kubectl commands instead of running them (only
#                             `kubectl kustomize`, which needs no cluster, runs); no cluster needed
#   --render-dir DIR          keep the rendered overlay there, split in the order it is applied:
#                             10-namespace.yaml, 20-secrets.yaml, 30-dapr.yaml, 40-workloads.yaml
#   --list-secrets            print the Secrets this script creates for the production overlay
#                             (secret, key, environment variable) and exit
#   --target k8s              the only target (locally, scripts/run-local.sh starts the stack)
#   -h, --help                this text
#
# Secrets: the local and redis overlays generate development-only Secrets themselves. For
# production each value comes from an environment variable (or --secrets-dir):
#   backend-secrets       DATABASE_URL=$BACKEND_DATABASE_URL  JWT_SECRET=$JWT_SECRET
#   notification-secrets  DATABASE_URL=$NOTIFICATION_DATABASE_URL
#   email-secrets         SMTP_USER=$SMTP_USER  SMTP_PASSWORD=$SMTP_PASSWORD
#   statestore-postgres   connectionString=$STATESTORE_CONNECTION_STRING
#   kafka-credentials     brokers=$KAFKA_BROKERS  username=$KAFKA_USERNAME  password=$KAFKA_PASSWORD
#   dapr-api-token        token=$DAPR_API_TOKEN   (generated when unset and the Secret is absent)
#   app-api-token         token=$APP_API_TOKEN    (likewise)
# Values are passed to kubectl as files in a private temporary folder, never as arguments, and
# never printed.
#
# Exit status: 0 when everything was applied (and rolled out), 1 on a failure or a missing value,
# 2 on a usage error.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DAPR_VERSION=1.18.3
DAPR_CHART_REPO=https://dapr.github.io/helm-charts
HELM=${HELM:-helm}
APPS=(backend notification email recurring)

# secret key variable [generate]
PRODUCTION_SECRETS=(
  "backend-secrets DATABASE_URL BACKEND_DATABASE_URL"
  "backend-secrets JWT_SECRET JWT_SECRET"
  "notification-secrets DATABASE_URL NOTIFICATION_DATABASE_URL"
  "email-secrets SMTP_USER SMTP_USER"
  "email-secrets SMTP_PASSWORD SMTP_PASSWORD"
  "statestore-postgres connectionString STATESTORE_CONNECTION_STRING"
  "kafka-credentials brokers KAFKA_BROKERS"
  "kafka-credentials username KAFKA_USERNAME"
  "kafka-credentials password KAFKA_PASSWORD"
  "dapr-api-token token DAPR_API_TOKEN generate"
  "app-api-token token APP_API_TOKEN generate"
)

target=k8s
overlay=local
secrets_dir=""
components_only=false
install_dapr=true
restart=false
wait_rollout=true
timeout=300s
render_dir=""
while (($#)); do
  case $1 in
    --target) target=${2:-}; shift ;;
    --target=*) target=${1#*=} ;;
    --overlay) overlay=${2:-}; shift ;;
    --secrets-dir) secrets_dir=${2:-}; [[ -d $secrets_dir ]] || usage_error "--secrets-dir: no folder '$secrets_dir'"; shift ;;
    --components-only) components_only=true ;;
    --skip-dapr-install) install_dapr=false ;;
    --restart) restart=true ;;
    --no-wait) wait_rollout=false ;;
    --timeout) timeout=${2:-}; [[ $timeout =~ ^[0-9]+[smh]$ ]] || usage_error "--timeout must be like 300s or 5m"; shift ;;
    --dry-run) DRY_RUN=true ;;
    --render-dir) render_dir=${2:-}; [[ -n $render_dir ]] || usage_error "--render-dir needs a folder"; shift ;;
    --list-secrets)
      printf '%s\n' "${PRODUCTION_SECRETS[@]}" | awk '{print $1, $2, $3}'
      exit 0 ;;
    -h | --help) print_help; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
  shift
done
[[ $target == k8s ]] ||
  usage_error "the only target is k8s (the local stack is started by scripts/run-local.sh)"
case $overlay in
  local | redis | production) ;;
  *) usage_error "--overlay must be local, redis or production, not '$overlay'" ;;
esac
cd "$TODO_REPO"

work=$(mktemp -d)
chmod 700 "$work"
trap 'rm -rf "$work"' EXIT
say "== setup-dapr: overlay $overlay, Dapr $DAPR_VERSION$($DRY_RUN && echo ' (dry run: commands printed, not run)')"

# ---- preflight ----
command -v "$KUBECTL" >/dev/null || die "kubectl is not on PATH"
if ! $DRY_RUN; then
  if $install_dapr; then command -v "$HELM" >/dev/null || die "helm is not on PATH"; fi
  "$KUBECTL" version --request-timeout=15s >/dev/null 2>&1 ||
    die "no cluster answers (kubectl version failed; check the current context)"
fi

# ---- the overlay, rendered and split in the order it is applied ----
rendered=$work/rendered.yaml
"$KUBECTL" kustomize "k8s/overlays/$overlay" >"$rendered" || die "k8s/overlays/$overlay does not render"
parts=${render_dir:-$work/parts}
mkdir -p "$parts"
for f in 10-namespace 20-secrets 30-dapr 40-workloads; do : >"$parts/$f.yaml"; done
awk -v dir="$parts" '
  function flush() {
    if (doc == "") return
    f = dir "/40-workloads.yaml"
    if (kind == "Namespace") f = dir "/10-namespace.yaml"
    else if (kind == "Secret") f = dir "/20-secrets.yaml"
    else if (api ~ /^dapr\.io\//) f = dir "/30-dapr.yaml"
    printf "---\n%s", doc >> f
    doc = ""; kind = ""; api = ""
  }
  /^---[ \t]*$/ { flush(); next }
  /^kind:[ \t]/ { kind = $2 }
  /^apiVersion:[ \t]/ { api = $2 }
  { doc = doc $0 "\n" }
  END { flush() }
' "$rendered"
for f in 10-namespace 30-dapr 40-workloads; do
  [[ -s $parts/$f.yaml ]] || die "the rendered overlay has nothing for $f.yaml"
done
# The namespace is the overlay's (its Namespace object).
ns=$(awk '/^metadata:/ {m = 1; next} m && /^  name:/ {print $2; exit}' "$parts/10-namespace.yaml")
[[ -n $ns ]] || die "the rendered overlay has no Namespace"
[[ -z ${TODO_NAMESPACE:-} || $TODO_NAMESPACE == "$ns" ]] ||
  die "TODO_NAMESPACE=$TODO_NAMESPACE, but k8s/overlays/$overlay deploys to namespace $ns"
NAMESPACE=$ns
say "  rendered k8s/overlays/$overlay: $(grep -c '^kind:' "$rendered") objects ($(grep -c '^kind:' "$parts/30-dapr.yaml") Dapr resources)"

# ---- 1. Dapr ----
section "Dapr $DAPR_VERSION (Helm chart dapr/dapr, namespace dapr-system)"
if $install_dapr; then
  run "$HELM" repo add dapr "$DAPR_CHART_REPO" --force-update
  run "$HELM" repo update dapr
  # A "restricted" namespace needs sidecars that drop every capability.
  run "$HELM" upgrade --install dapr dapr/dapr --version "$DAPR_VERSION" \
    --namespace dapr-system --create-namespace --wait --timeout "$timeout" \
    --set dapr_sidecar_injector.sidecarDropALLCapabilities=true
else
  say "  (--skip-dapr-install)"
fi
for d in dapr-operator dapr-sidecar-injector dapr-sentry; do
  run "$KUBECTL" -n dapr-system rollout status "deployment/$d" --timeout="$timeout"
done
for s in dapr-placement-server dapr-scheduler-server; do
  run "$KUBECTL" -n dapr-system rollout status "statefulset/$s" --timeout="$timeout"
done
for crd in components.dapr.io configurations.dapr.io resiliencies.dapr.io; do
  run "$KUBECTL" wait --for condition=established "crd/$crd" --timeout=60s
done

# ---- 2. the namespace ----
section "namespace $NAMESPACE"
run "$KUBECTL" apply -f "$parts/10-namespace.yaml"

# ---- 3. Secrets ----
section "Secrets"
# apply_secret NAME KEY=FILE...: kubectl create secret … --dry-run=client -o yaml | kubectl apply
apply_secret() {
  local name=$1 args=() kv
  shift
  for kv in "$@"; do args+=("--from-file=$kv"); done
  if $DRY_RUN; then
    printf '+'
    printf ' %q' "$KUBECTL" create secret generic "$name" --namespace "$NAMESPACE" "${args[@]}" \
      --dry-run=client -o yaml
    printf ' | %q label --local -f - app.kubernetes.io/part-of=todo -o yaml | %q apply -f -\n' \
      "$KUBECTL" "$KUBECTL"
  else
    "$KUBECTL" create secret generic "$name" --namespace "$NAMESPACE" "${args[@]}" \
      --dry-run=client -o yaml |
      "$KUBECTL" label --local -f - app.kubernetes.io/part-of=todo -o yaml |
      "$KUBECTL" apply -f -
  fi
}

if [[ $overlay != production ]]; then
  say "  the $overlay overlay generates development-only Secrets (k8s/components/local)"
  run "$KUBECTL" apply -f "$parts/20-secrets.yaml"
else
  missing=()
  declare -A files=()
  order=()
  for entry in "${PRODUCTION_SECRETS[@]}"; do
    read -r secret key var gen <<<"$entry"
    mkdir -p "$work/values/$secret"
    file=$work/values/$secret/$key
    value=""
    if [[ -n $secrets_dir ]]; then
      [[ -f $secrets_dir/$secret/$key ]] && value=$(cat "$secrets_dir/$secret/$key")
    else
      value=${!var:-}
    fi
    if [[ -z $value && ${gen:-} == generate ]]; then
      if ! $DRY_RUN && kube get secret "$secret" >/dev/null 2>&1; then
        say "  $secret exists: its $key is kept"
        continue
      fi
      value=$(openssl rand -hex 32)
      if $DRY_RUN; then
        say "  $secret: $key would be generated (openssl rand -hex 32) unless the Secret exists"
      else
        say "  $secret: $key generated (openssl rand -hex 32)"
      fi
    fi
    if [[ -z $value ]]; then
      if [[ -n $secrets_dir ]]; then missing+=("$secrets_dir/$secret/$key"); else missing+=("$var"); fi
      continue
    fi
    if [[ $key == JWT_SECRET && ${#value} -lt 32 ]]; then
      die "JWT_SECRET must be at least 32 bytes (the backend refuses a shorter one)"
    fi
    (umask 077; printf '%s' "$value" >"$file")
    [[ -n ${files[$secret]:-} ]] || order+=("$secret")
    files[$secret]+="$key=$file "
  done
  ((${#missing[@]} == 0)) || die "no value for: ${missing[*]} (see --help)"
  for secret in "${order[@]}"; do
    # shellcheck disable=SC2086 # KEY=FILE words, paths without spaces (mktemp)
    apply_secret "$secret" ${files[$secret]}
  done
fi

# ---- 4. Dapr components ----
section "Dapr components (Components, Configuration, Resiliency)"
run "$KUBECTL" apply -f "$parts/30-dapr.yaml"

# ---- 5. the rest ----
if $components_only; then
  say "  (--components-only: workloads not applied)"
else
  section "workloads and infrastructure"
  run "$KUBECTL" apply -f "$parts/40-workloads.yaml"
fi
if $restart; then
  section "restart (the sidecars load Secrets and components at start)"
  run "$KUBECTL" -n "$NAMESPACE" rollout restart deployment -l app.kubernetes.io/part-of=todo
fi
if $restart || { $wait_rollout && ! $components_only; }; then
  for app in "${APPS[@]}"; do
    run "$KUBECTL" -n "$NAMESPACE" rollout status "deployment/$app" --timeout="$timeout"
  done
fi

if $DRY_RUN; then
  say "== dry run: nothing was changed"
else
  say "== done; check it with: k8s/scripts/validate-dapr-deployment.sh --target k8s"
fi
