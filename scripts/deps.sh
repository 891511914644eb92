#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the local stack need, and only those
# missing (apt-get update runs only when something is to be installed). Needs root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl openssl clang-format
  libh2o-evloop-dev libssl-dev libjansson-dev libjwt-dev uuid-dev libpq-dev libical-dev
  libcurl4-openssl-dev libyaml-dev librdkafka-dev libhiredis-dev
  postgresql postgresql-client redis-server python3 python3-aiosmtpd
  wrk
  nodejs
  buildah debootstrap python3-jsonschema python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm: part of NodeSource's nodejs package where that is installed (and then Debian's npm
# package conflicts with it); a separate Debian package otherwise.
if ! command -v npm >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: npm is missing; run as root (sudo) to install it" >&2
    exit 1
  fi
  echo "deps: installing npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends npm
fi
