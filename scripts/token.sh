#!/usr/bin/env bash
# Prints an HS256 JWT for a user: scripts/token.sh USER_ID [EMAIL] [TTL_SECONDS]
# The secret comes from JWT_SECRET (or the local stack's state directory).
set -euo pipefail
user=${1:?usage: scripts/token.sh USER_ID [EMAIL] [TTL_SECONDS]}
email=${2:-$user@example.com}
ttl=${3:-86400}
state=${TODO_STATE_DIR:-/var/tmp/todo-local}
secret=${JWT_SECRET:-$(cat "$state/jwt-secret" 2>/dev/null || true)}
[[ -n $secret ]] || { echo "token: set JWT_SECRET or start the local stack first" >&2; exit 2; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
payload=$(printf '{"sub":"%s","email":"%s","iat":%d,"exp":%d}' "$user" "$email" "$now" $((now + ttl)) | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
printf '%s.%s.%s\n' "$header" "$payload" "$sig"
