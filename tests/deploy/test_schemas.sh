#!/usr/bin/env bash
# The vendored schemas are the bytes their SOURCE.txt describes (sha256 of every file), and every
# file there is listed.
# usage: test_schemas.sh
set -euo pipefail
cd "$(dirname "$0")/schemas"
sums=$( (awk 'NF == 4 && length($1) == 64 && $1 ~ /^[0-9a-f]+$/ {print $1 "  k8s-schemas/" $4}' k8s-schemas/SOURCE.txt
         awk 'NF == 2 && length($1) == 64 && $1 ~ /^[0-9a-f]+$/ {print $1 "  dapr-crds/" $2}' dapr-crds/SOURCE.txt))
for f in k8s-schemas/*.json dapr-crds/*.yaml; do
    grep -qF "  $f" <<<"$sums" || { echo "FAIL: $f is not listed in its SOURCE.txt" >&2; exit 1; }
done
sha256sum --check --strict --quiet <<<"$sums"
echo "schemas: $(wc -l <<<"$sums") files match the sha256 in their SOURCE.txt"
