#!/usr/bin/env bash
# Runs the whole system locally on embedded defaults: installs what is missing, builds, then starts
# a PostgreSQL cluster under the state directory, kafka-mock (Kafka), an SMTP server that saves
# mail to a maildir, one dapr-sidecar (the project's Dapr sidecar) per service with the component
# files of dapr/components, and the four services; prints how to call the API. Ctrl-C stops all
# of it. State (database, JWT secret, mail, logs) stays in $TODO_STATE_DIR. Ports: PORT (backend,
# 8000), TODO_PG_PORT (55432), TODO_SMTP_PORT (2525), TODO_SERVICE_PORTS ("8000 8001 8002 8003":
# backend, notification, email, recurring) and TODO_SIDECAR_PORTS ("3500 3501 3502 3503").
#
#   scripts/run-local.sh          the stack, until Ctrl-C
#   scripts/run-local.sh --demo   the stack, plus a task due in a minute whose reminder (10 s
#                                 before) is mailed; shows the mail when it arrives
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

demo=false
case "${1:-}" in
  --demo) demo=true ;;
  "") ;;
  -h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "run-local: unknown argument $1 (try --help)" >&2
    exit 2
    ;;
esac

state=${TODO_STATE_DIR:-/var/tmp/todo-local}
pg_port=${TODO_PG_PORT:-55432}
smtp_port=${TODO_SMTP_PORT:-2525}
read -r backend_port notification_port email_port recurring_port <<<"${TODO_SERVICE_PORTS:-${PORT:-8000} 8001 8002 8003}"
read -r backend_dapr notification_dapr email_dapr recurring_dapr <<<"${TODO_SIDECAR_PORTS:-3500 3501 3502 3503}"
pg_bin=/usr/lib/postgresql/15/bin
build_dir=${TODO_BUILD_DIR:-$root/build}
bin=$build_dir/bin

scripts/deps.sh
# TODO_NO_BUILD=1 runs what TODO_BUILD_DIR (default build/) holds, as the test of this script does.
[[ ${TODO_NO_BUILD:-} == 1 ]] || scripts/build.sh "$build_dir"

mkdir -p "$state/logs" "$state/mail" "$state/kafka"
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
max_connections = 200
CONF
fi
[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$state/logs"
as_pg "$pg_bin/pg_ctl" -D "$state/pg" -l "$state/logs/postgresql.log" -w start >/dev/null

pids=()
names=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "run-local: stopping"
  # Services first (they drain their outboxes through their sidecars), then the rest.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  as_pg "$pg_bin/pg_ctl" -D "$state/pg" -m fast -w stop >/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

# start NAME COMMAND...: a process in the background, its output in logs/NAME.log. Each runs in a
# session of its own, so that Ctrl-C reaches only this script, which then stops them in order
# (a second signal would make a service exit at once, without its drain).
start() {
  local name=$1
  shift
  setsid "$@" >>"$state/logs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

psql_pg() { "$pg_bin/psql" -X -q -d "postgresql://postgres@127.0.0.1:$pg_port/postgres" "$@"; }
for db in todo dapr_scheduler; do
  if ! psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$db"
  fi
done
db_url="postgresql://postgres@127.0.0.1:$pg_port/todo"
scheduler_url="postgresql://postgres@127.0.0.1:$pg_port/dapr_scheduler"

if [[ ! -s $state/jwt-secret ]]; then
  (umask 077; openssl rand -hex 32 >"$state/jwt-secret")
fi

# Kafka: librdkafka's mock cluster (in memory: topics start empty at every run).
rm -f "$state/kafka/bootstrap"
start kafka-mock "$bin/kafka-mock" --brokers 1 --bootstrap-file "$state/kafka/bootstrap" \
  --topic task-events:4 --topic task-reminders:4 --topic task-recurrence:4
for ((i = 0; i < 300; i++)); do
  [[ -s $state/kafka/bootstrap ]] && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "run-local: kafka-mock exited" >&2; exit 1; }
  sleep 0.1
done
kafka_brokers=$(cat "$state/kafka/bootstrap")

# SMTP: Debian's aiosmtpd, saving every message to the maildir $state/mail.
mkdir -p "$state/mail/tmp" "$state/mail/new" "$state/mail/cur"
start smtp /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" \
  -c aiosmtpd.handlers.Mailbox "$state/mail"

export KAFKA_BROKERS=$kafka_brokers STATE_DATABASE_URL=$db_url

# service NAME EXECUTABLE APP_PORT DAPR_PORT ENV...: the sidecar, then the service.
service() {
  local name=$1 exe=$2 app_port=$3 dapr_port=$4
  shift 4
  start "$name-sidecar" "$bin/dapr-sidecar" --app-id "$name" --app-port "$app_port" \
    --dapr-http-port "$dapr_port" --resources-path "$root/dapr/components" \
    --scheduler-database-url "$scheduler_url"
  start "$name" env PORT="$app_port" DAPR_HTTP_PORT="$dapr_port" DATABASE_URL="$db_url" "$@" \
    "$bin/$exe"
}

service backend todo-backend "$backend_port" "$backend_dapr" JWT_SECRET="$(cat "$state/jwt-secret")"
service notification todo-notification "$notification_port" "$notification_dapr" \
  TASK_LINK_BASE="http://127.0.0.1:$backend_port/tasks/"
service email todo-email "$email_port" "$email_dapr" SMTP_URL="smtp://127.0.0.1:$smtp_port" \
  MAIL_FROM=todo@localhost
service recurring todo-recurring "$recurring_port" "$recurring_dapr"

for s in backend:$backend_port notification:$notification_port email:$email_port \
  recurring:$recurring_port; do
  name=${s%%:*} port=${s##*:}
  for i in "${!names[@]}"; do [[ ${names[i]} == "$name" ]] && pid=${pids[i]}; done
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "run-local: $name exited; see $state/logs/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" ||
    { echo "run-local: $name is not ready; see $state/logs/$name.log" >&2; exit 1; }
done

cat <<INFO

The system is up (logs in $state/logs, mail in $state/mail/new):
  backend       http://127.0.0.1:$backend_port   (its sidecar on $backend_dapr)
  notification  http://127.0.0.1:$notification_port   email http://127.0.0.1:$email_port   recurring http://127.0.0.1:$recurring_port
  Kafka         $kafka_brokers (kafka-mock)    SMTP 127.0.0.1:$smtp_port    PostgreSQL 127.0.0.1:$pg_port

  TOKEN=\$(TODO_STATE_DIR=$state scripts/token.sh alice alice@example.com)
  curl -s -X POST http://127.0.0.1:$backend_port/api/alice/tasks \\
       -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"title":"Water the plants","priority":"high","due_at":"2030-01-01T09:00:00Z"}'
  curl -s http://127.0.0.1:$backend_port/api/alice/tasks -H "Authorization: Bearer \$TOKEN"

INFO

if $demo; then
  token=$(TODO_STATE_DIR=$state scripts/token.sh demo demo@example.com)
  due=$(date -u -d '+60 seconds' +%Y-%m-%dT%H:%M:%SZ)
  remind=$(date -u -d '+50 seconds' +%Y-%m-%dT%H:%M:%SZ)
  mails() { { find "$state/mail/new" -type f 2>/dev/null || true; } | wc -l; }
  before=$(mails)
  curl -fsS -X POST "http://127.0.0.1:$backend_port/api/demo/tasks" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"title\":\"Demo: stretch your legs\",\"due_at\":\"$due\",\"remind_at\":\"$remind\",\"description\":\"A reminder from the local demo.\"}" >/dev/null
  echo "run-local: demo task created, due $due; its reminder is mailed 10 s before (about 50 s)"
  for ((i = 0; i < 900; i++)); do
    now=$(mails)
    if ((now > before)); then
      echo "run-local: the reminder arrived:"
      echo "----------------------------------------------------------------------------------"
      cat "$state/mail/new/$(ls -t "$state/mail/new" | head -1)"
      echo "----------------------------------------------------------------------------------"
      break
    fi
    sleep 0.1
  done
  ((now > before)) || echo "run-local: no mail within 90 s; see $state/logs" >&2
fi

echo "Press Ctrl-C to stop."
wait "${pids[@]}"
