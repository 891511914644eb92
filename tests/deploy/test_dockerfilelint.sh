#!/usr/bin/env bash
# dockerfilelint (npm, pinned in lint/package-lock.json) on every Dockerfiles/*.Dockerfile, after
# checking that it does report a bad Dockerfile. Installs into BINARY_DIR with `npm ci`.
# usage: test_dockerfilelint.sh SOURCE_DIR BINARY_DIR
set -euo pipefail
src=$(cd "${1:?usage: test_dockerfilelint.sh SOURCE_DIR BINARY_DIR}" && pwd)
bin=${2:?usage: test_dockerfilelint.sh SOURCE_DIR BINARY_DIR}
lint=$src/tests/deploy/lint
command -v npm >/dev/null || { echo "npm is missing (Node.js)" >&2; exit 1; }
mkdir -p "$bin"
if ! cmp -s "$lint/package-lock.json" "$bin/package-lock.json" || [[ ! -x $bin/node_modules/.bin/dockerfilelint ]]; then
    cp "$lint/package.json" "$lint/package-lock.json" "$bin/"
    (cd "$bin" && npm ci --no-audit --no-fund --loglevel=error)
fi
dfl=("$bin/node_modules/.bin/dockerfilelint" -c "$lint")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf 'FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n' > "$work/bad.Dockerfile"
if "${dfl[@]}" "$work/bad.Dockerfile" > "$work/bad.out"; then
    cat "$work/bad.out"
    echo "FAIL: dockerfilelint passed a bad Dockerfile" >&2
    exit 1
fi
echo "dockerfilelint reports a bad Dockerfile: $(grep -c 'Line' "$work/bad.out") issue line(s)"
shopt -s nullglob
files=("$src"/Dockerfiles/*.Dockerfile)
((${#files[@]})) || { echo "FAIL: no Dockerfiles/*.Dockerfile" >&2; exit 1; }
"${dfl[@]}" "${files[@]}"
