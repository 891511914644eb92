#!/usr/bin/env bash
# Runs the system locally on embedded defaults: installs what is missing, builds, starts a
# PostgreSQL cluster under the state directory and the backend, and prints how to call the API.
# Ctrl-C stops everything. State (database, JWT secret, logs) stays in $TODO_STATE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

state=${TODO_STATE_DIR:-/var/tmp/todo-local}
pg_port=${TODO_PG_PORT:-55432}
backend_port=${PORT:-8000}
pg_bin=/usr/lib/postgresql/15/bin

scripts/deps.sh
scripts/build.sh build

mkdir -p "$state/logs"
chmod 755 "$state"
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [[ ! -f $state/pg/PG_VERSION ]]; then
  echo "run-local: creating a PostgreSQL cluster in $state/pg"
  mkdir -p "$state/pg"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$state/pg"
  as_pg "$pg_bin/initdb" -D "$state/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$state/pg/postgresql.conf" <<CONF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$state/pg'
CONF
fi
[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$state/logs"
as_pg "$pg_bin/pg_ctl" -D "$state/pg" -l "$state/logs/postgresql.log" -w start >/dev/null
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "run-local: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  as_pg "$pg_bin/pg_ctl" -D "$state/pg" -m fast -w stop >/dev/null || true
}
trap cleanup INT TERM EXIT

db_url="postgresql://postgres@127.0.0.1:$pg_port/todo"
if ! "$pg_bin/psql" -X -q -d "postgresql://postgres@127.0.0.1:$pg_port/postgres" -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'todo'" | grep -q 1; then
  "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres todo
fi

if [[ ! -s $state/jwt-secret ]]; then
  (umask 077; openssl rand -hex 32 >"$state/jwt-secret")
fi

DATABASE_URL=$db_url JWT_SECRET=$(cat "$state/jwt-secret") PORT=$backend_port \
  "$root/build/bin/todo-backend" 2>>"$state/logs/backend.log" &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$backend_port/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "run-local: the backend exited; see $state/logs/backend.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$backend_port/readyz" >/dev/null

cat <<INFO

The backend is ready on http://127.0.0.1:$backend_port (logs in $state/logs).

  TOKEN=\$(TODO_STATE_DIR=$state scripts/token.sh alice alice@example.com)
  curl -s -X POST http://127.0.0.1:$backend_port/api/alice/tasks \\
       -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"title":"Water the plants","priority":"high","due_at":"2030-01-01T09:00:00Z"}'
  curl -s http://127.0.0.1:$backend_port/api/alice/tasks -H "Authorization: Bearer \$TOKEN"

Press Ctrl-C to stop.
INFO
wait "${pids[@]}"
