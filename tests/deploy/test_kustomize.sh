#!/usr/bin/env bash
# Renders every kustomization under k8s/ (overlays, base, pub/sub choices, infrastructure) with
# `kubectl kustomize` and validates every object strictly against the Kubernetes and Dapr schemas
# in schemas/ (validate.py), plus k8s/base/secrets.example.yaml. First proves the validator
# rejects a bad object, so a broken install of it cannot pass everything.
# usage: test_kustomize.sh SOURCE_DIR
set -euo pipefail
src=$(cd "${1:?usage: test_kustomize.sh SOURCE_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
validate=(/usr/bin/python3 "$here/schemas/k8s-schemas/validate.py")
command -v kubectl >/dev/null || { echo "kubectl is missing" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The validator must reject an unknown field (strict Kubernetes schema) and a bad Dapr spec.
cat > "$work/bad-deployment.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
        - {name: bad, image: bad:1, imagePullPolicyy: Always}
YAML
cat > "$work/bad-component.yaml" <<'YAML'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: bad}
spec: {type: pubsub.kafka, version: v1, metadta: []}
YAML
for bad in bad-deployment bad-component; do
    if "${validate[@]}" "$work/$bad.yaml" > "$work/$bad.out"; then
        cat "$work/$bad.out"
        echo "FAIL: validate.py accepted $bad.yaml" >&2
        exit 1
    fi
    echo "validator rejects $bad.yaml: $(grep INVALID "$work/$bad.out" | head -1)"
done

failures=0 count=0
mapfile -t dirs < <(cd "$src" && find k8s -name kustomization.yaml -printf '%h\n' | sort)
for overlay in local production redis; do
    [[ " ${dirs[*]} " == *" k8s/overlays/$overlay "* ]] || { echo "FAIL: k8s/overlays/$overlay missing" >&2; failures=$((failures + 1)); }
done
for dir in "${dirs[@]}"; do
    if grep -q '^kind: Component' "$src/$dir/kustomization.yaml"; then
        continue # a kustomize Component is built only as part of an overlay
    fi
    out=$work/$(echo "$dir" | tr / _).yaml
    if ! kubectl kustomize "$src/$dir" > "$out" 2> "$out.err"; then
        echo "FAIL: kubectl kustomize $dir" >&2
        cat "$out.err" >&2
        failures=$((failures + 1))
        continue
    fi
    if "${validate[@]}" "$out" > "$out.log"; then
        echo "$dir: $(grep -c '^OK' "$out.log") objects valid"
    else
        echo "FAIL: $dir" >&2
        grep -v '^OK' "$out.log" >&2
        failures=$((failures + 1))
    fi
    count=$((count + 1))
done
if "${validate[@]}" "$src/k8s/base/secrets.example.yaml" > "$work/secrets.log"; then
    echo "k8s/base/secrets.example.yaml: $(grep -c '^OK' "$work/secrets.log") objects valid"
else
    grep -v '^OK' "$work/secrets.log" >&2
    failures=$((failures + 1))
fi
echo "$count kustomizations rendered, $failures failure(s)"
((failures == 0))
