#!/usr/bin/env bash
# Benchmark of POST /api/{user}/tasks: builds todo-backend and dapr-sidecar (build-bench/), runs
# the backend against a throw-away PostgreSQL 15 cluster and a plain sidecar (no components: the
# backend's /readyz waits for the sidecar's outbound health, and with no pub/sub the outbox rows
# stay unpublished, so the figures are those of the API and the database), loads it with wrk
# (create.lua), then runs the same SQL straight against the database with pgbench (create.sql)
# and compares the two, with the RSS of the backend before and after. Not part of the test
# suite. See --help.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pg_bin=/usr/lib/postgresql/15/bin

# Targets (the exit code does not depend on them).
target_rps=3000
target_p99_ms=20
target_ratio=0.7
target_rss_kib=8192

duration=15
connections=64
wrk_threads=2
threads=$(nproc)
workers=$(( 4 * $(nproc) ))
pgbench_clients=""
user=bench
build_dir=build-bench
build=1
perf=0
notify_cost=0

usage() {
  cat <<USAGE
Usage: bench/create-task/run.sh [options]

Benchmarks task creation (POST /api/{user}/tasks) of todo-backend against a throw-away
PostgreSQL 15 cluster on 127.0.0.1 (fsync on, synchronous_commit default) and a plain
dapr-sidecar (no components, so no pub/sub: the outbox rows stay unpublished and the figures are
those of the API and the database), then runs the same SQL statements with pgbench for
comparison, and prints the load average and a summary against the targets
(>= $target_rps req/s, p99 <= $target_p99_ms ms, backend/pgbench ratio >= $target_ratio, idle RSS <= 8 MiB).

Options:
  --duration SECONDS      length of the wrk run and of the pgbench run (default $duration)
  --connections N         wrk connections (default $connections)
  --wrk-threads N         wrk threads (default $wrk_threads)
  --threads N             backend THREADS, event loops (default: cores, $threads)
  --workers N             backend WORKERS, threads with a database connection each
                          (default: the backend's own default, 4 per core = $workers)
  --pgbench-clients N     pgbench clients (default: --workers, the backend's connections)
  --user ID               user id the tasks are created for (default $user)
  --build-dir DIR         build tree under the repository (default $build_dir)
  --no-build              use the existing DIR/bin/{todo-backend,dapr-sidecar}, do not build
  --notify-cost           also run pgbench on create.sql with a pg_notify in the transaction
                          (what waking the relay by a NOTIFY in every change would cost)
  --perf                  also profile the backend and PostgreSQL during the wrk run (perf
                          record) and print where their CPU time goes
  -h, --help              this help

Exit status: 0 when the benchmark ran (whether or not the targets are met), non-zero on errors
(build, start-up, non-2xx responses, pgbench failures).
USAGE
}

die() { echo "create-task: $*" >&2; exit 1; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]] && (( 10#$1 > 0 )); }

while (( $# )); do
  case $1 in
    --duration) duration=${2:-}; shift 2 || die "--duration needs a value" ;;
    --connections) connections=${2:-}; shift 2 || die "--connections needs a value" ;;
    --wrk-threads) wrk_threads=${2:-}; shift 2 || die "--wrk-threads needs a value" ;;
    --threads) threads=${2:-}; shift 2 || die "--threads needs a value" ;;
    --workers) workers=${2:-}; shift 2 || die "--workers needs a value" ;;
    --pgbench-clients) pgbench_clients=${2:-}; shift 2 || die "--pgbench-clients needs a value" ;;
    --user) user=${2:-}; shift 2 || die "--user needs a value" ;;
    --build-dir) build_dir=${2:-}; shift 2 || die "--build-dir needs a value" ;;
    --no-build) build=0; shift ;;
    --perf) perf=1; shift ;;
    --notify-cost) notify_cost=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
pgbench_clients=${pgbench_clients:-$workers}
for v in duration connections wrk_threads threads workers pgbench_clients; do
  is_uint "${!v}" || die "--${v//_/-} must be a positive integer (got '${!v}')"
done
[[ $user =~ ^[A-Za-z0-9._@-]{1,128}$ ]] || die "--user must be 1-128 characters of A-Za-z0-9._@-"
(( connections >= wrk_threads )) || die "--connections must be at least --wrk-threads"

for tool in wrk curl openssl ss "$pg_bin/initdb" "$pg_bin/pg_ctl" "$pg_bin/psql" "$pg_bin/pgbench"; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

# ---- state and clean-up ------------------------------------------------------------------------

work=$(mktemp -d /tmp/todo-bench-XXXXXX)
pg_dir=""
pg_started=0
backend_pid=""
sidecar_pid=""

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $backend_pid ]] && kill -0 "$backend_pid" 2>/dev/null; then
    kill -TERM "$backend_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$backend_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$backend_pid" 2>/dev/null; then
      echo "create-task: the backend did not stop within 30 s; killing it" >&2
      kill -KILL "$backend_pid" 2>/dev/null || true
    fi
    wait "$backend_pid" 2>/dev/null || true
  fi
  if [[ -n $sidecar_pid ]] && kill -0 "$sidecar_pid" 2>/dev/null; then
    kill -TERM "$sidecar_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$sidecar_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sidecar_pid" 2>/dev/null || true
    wait "$sidecar_pid" 2>/dev/null || true
  fi
  if (( pg_started )); then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  [[ -n $pg_dir ]] && rm -rf "$pg_dir"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "create-task: interrupted" >&2; exit 130' INT
trap 'echo "create-task: terminated" >&2; exit 143' TERM

# A TCP port that no socket uses right now (listening or connected), below the ephemeral range so
# that no outgoing connection takes it meanwhile.
free_port() {
  local p low
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  (( low > 11000 )) || low=32768
  for _ in $(seq 1 200); do
    p=$(( 10000 + RANDOM % (low - 10000) ))
    if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]] &&
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# The 1, 5 and 15 minute load averages of the machine (shared with other jobs).
load_avg() { cut -d ' ' -f 1-3 /proc/loadavg; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$backend_pid/status"; }
# The parts of the RSS: anonymous memory, mapped files (code of the libraries), shared memory.
rss_parts() { awk '/^Rss(Anon|File|Shmem):/ { printf "%s%s %s KiB", sep, $1, $2; sep = ", " }' "/proc/$backend_pid/status"; }
# PSS: the RSS with each shared page divided among the processes that map it (the libraries' code
# is shared with every other process using them).
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$backend_pid/smaps_rollup"; }

# CPU seconds (user + system) used so far by the backend, and by the cluster's processes.
clk_tck=$(getconf CLK_TCK)
cpu_seconds() { # PIDS...
  local pid ticks=0 t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    ticks=$(( ticks + ${t:-0} ))
  done
  awk -v t="$ticks" -v hz="$clk_tck" 'BEGIN { printf "%.2f", t / hz }'
}
# The largest contributors to the RSS, by mapped file ([anon] for anonymous memory): KiB, name.
rss_by_mapping() {
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]"); sub(/.*\//, "", name) }
       /^Rss:/ { rss[name] += $2 }
       END { for (n in rss) if (rss[n] > 0) printf "%d %s\n", rss[n], n }' \
    "/proc/$backend_pid/smaps" | sort -rn | head -n "${1:-8}" |
    awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " } END { print " (KiB)" }'
}
pg_pids() { local pm; pm=$(head -n 1 "$pg_dir/data/postmaster.pid"); echo "$pm" $(pgrep -P "$pm" || true); }

show_log_tail() {
  echo "--- last lines of $1 ---" >&2
  tail -n 40 "$1" >&2 || true
}

# ---- build -------------------------------------------------------------------------------------

backend_bin=$root/$build_dir/bin/todo-backend
sidecar_bin=$root/$build_dir/bin/dapr-sidecar
if (( build )); then
  echo "create-task: building $build_dir (RelWithDebInfo)"
  if ! (cd "$root" && scripts/build.sh "$build_dir" -DBUILD_TESTING=OFF) >"$work/build.log" 2>&1; then
    show_log_tail "$work/build.log"
    die "the build failed"
  fi
fi
[[ -x $backend_bin ]] || die "$backend_bin does not exist (build it or drop --no-build)"
[[ -x $sidecar_bin ]] || die "$sidecar_bin does not exist (build it or drop --no-build)"

# ---- PostgreSQL --------------------------------------------------------------------------------

pg_dir=$(mktemp -d /tmp/todo-bench-pg-XXXXXX)
chmod 755 "$pg_dir"
[[ $(id -u) -eq 0 ]] && chown postgres:postgres "$pg_dir"
pg_port=$(free_port)
echo "create-task: creating a PostgreSQL 15 cluster in $pg_dir on 127.0.0.1:$pg_port"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
  --no-sync >"$work/initdb.log" 2>&1 || { show_log_tail "$work/initdb.log"; die "initdb failed"; }
# The test suite's settings, except that fsync stays on and synchronous_commit at its default.
as_pg tee -a "$pg_dir/data/postgresql.conf" >/dev/null <<CONF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg_dir'
full_page_writes = off
max_connections = 200
CONF
pg_started=1
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 60 start >/dev/null ||
  { show_log_tail "$pg_dir/log"; die "PostgreSQL did not start"; }

admin_url="postgresql://postgres@127.0.0.1:$pg_port/postgres"
db_url="postgresql://postgres@127.0.0.1:$pg_port/todo"
psql_do() { "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
psql_do "$admin_url" 'CREATE DATABASE todo'
echo "create-task: PostgreSQL settings:"
psql_do "$admin_url" "SELECT '  ' || name || ' = ' || setting || coalesce(' ' || unit, '')
                        FROM pg_settings
                       WHERE name IN ('server_version', 'fsync', 'synchronous_commit',
                                      'full_page_writes', 'wal_level', 'shared_buffers',
                                      'max_connections', 'wal_sync_method', 'checkpoint_timeout',
                                      'max_wal_size')
                       ORDER BY name"

# ---- the sidecar and the backend ---------------------------------------------------------------

# A plain sidecar: no resources, so no pub/sub; the backend's relay finds no component and the
# outbox rows stay unpublished (the relay retries with backoff, at most one attempt in 5 s).
dapr_port=$(free_port)
echo "create-task: starting dapr-sidecar (no components) on 127.0.0.1:$dapr_port"
"$sidecar_bin" --app-id backend --dapr-http-port "$dapr_port" --log-level warn \
  >"$work/sidecar.log" 2>&1 &
sidecar_pid=$!
ready=0
for _ in $(seq 1 300); do
  kill -0 "$sidecar_pid" 2>/dev/null || { show_log_tail "$work/sidecar.log"; die "the sidecar exited"; }
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$dapr_port/v1.0/healthz/outbound" || true)
  if [[ $code == 204 ]]; then ready=1; break; fi
  sleep 0.1
done
(( ready )) || { show_log_tail "$work/sidecar.log"; die "the sidecar was not healthy within 30 s"; }

backend_port=$(free_port)
jwt_secret=$(openssl rand -hex 32)
echo "create-task: starting todo-backend on 127.0.0.1:$backend_port with THREADS=$threads" \
  "WORKERS=$workers"
DATABASE_URL=$db_url JWT_SECRET=$jwt_secret PORT=$backend_port THREADS=$threads \
  WORKERS=$workers DAPR_HTTP_PORT=$dapr_port LOG_LEVEL=warn \
  "$backend_bin" >"$work/backend.log" 2>&1 &
backend_pid=$!

base=http://127.0.0.1:$backend_port
ready=0
for _ in $(seq 1 300); do
  kill -0 "$backend_pid" 2>/dev/null || { show_log_tail "$work/backend.log"; die "the backend exited"; }
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$base/readyz" || true)
  if [[ $code == 200 ]]; then ready=1; break; fi
  sleep 0.1
done
(( ready )) || { show_log_tail "$work/backend.log"; die "the backend was not ready within 30 s"; }

token=$(JWT_SECRET=$jwt_secret "$root/scripts/token.sh" "$user" "$user@example.com")

# 1. RSS when idle: ready, before any API request.
rss_idle=$(rss_kib)
pss_idle=$(pss_kib)
echo "create-task: backend RSS idle: $rss_idle KiB ($(rss_parts)); PSS $pss_idle KiB"
echo "create-task: largest parts of the idle RSS: $(rss_by_mapping 10)"

# One request by hand first, so a refused request shows its answer instead of a load of errors.
due_base=$(( $(date +%s) + 86400 ))
probe_body=$(printf '{"title":"Benchmark probe","description":"one request before the load",'\
'"priority":"high","due_at":"%s","remind_before_minutes":30}' \
  "$(date -u -d "@$due_base" +%Y-%m-%dT09:00:00Z)")
probe_code=$(curl -s -o "$work/probe.json" -w '%{http_code}' -m 10 -X POST "$base/api/$user/tasks" \
  -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$probe_body" || true)
if [[ $probe_code != 201 ]]; then
  echo "create-task: the probe request got HTTP $probe_code:" >&2
  head -c 2000 "$work/probe.json" >&2 || true
  echo >&2
  die "the backend does not create tasks"
fi

# Tasks and outbox rows, counted in one snapshot ("TASKS OUTBOX").
counts() {
  psql_do "$db_url" "SELECT (SELECT count(*) FROM backend.tasks) || ' ' ||
                            (SELECT count(*) FROM backend.outbox)"
}
read -r tasks_before outbox_before <<<"$(counts)"

# 2. The load (after a checkpoint, as before pgbench).
psql_do "$db_url" 'CHECKPOINT'
load_before=$(load_avg)
echo "create-task: load average before the load: $load_before"
backend_cpu0=$(cpu_seconds "$backend_pid")
pg_cpu0=$(cpu_seconds $(pg_pids))
echo "create-task: wrk: $connections connections, $wrk_threads threads, ${duration}s," \
  "POST /api/$user/tasks"
perf_pid=""
if (( perf )); then
  command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
  perf record -q -F 999 -o "$work/perf.data" -p "$(echo "$backend_pid" $(pg_pids) | tr ' ' ',')" \
    -- sleep "$duration" >"$work/perf.log" 2>&1 &
  perf_pid=$!
fi
BENCH_USER=$user BENCH_TOKEN=$token BENCH_DUE_BASE=$due_base \
  wrk -t "$wrk_threads" -c "$connections" -d "${duration}s" --timeout 10s --latency \
  -s "$here/create.lua" "$base/api/$user/tasks" >"$work/wrk.out" 2>&1 ||
  { cat "$work/wrk.out" >&2; die "wrk failed"; }
grep -v '^BENCH ' "$work/wrk.out"
if [[ -n $perf_pid ]]; then
  wait "$perf_pid" || true
  for comm in todo-backend postgres; do
    echo "create-task: perf: where $comm spends its CPU during the load (top 15, % of its samples):"
    { perf report -q -i "$work/perf.data" --comm "$comm" --no-children --sort dso,symbol \
        --stdio --percentage relative 2>/dev/null || true; } |
      awk 'NF >= 4 && n < 15 { printf "  %8s  %-28s %s\n", $1, $2, $4; n++ }'
  done
fi
bench_line=$(grep '^BENCH ' "$work/wrk.out" | tail -n 1)
[[ -n $bench_line ]] || die "wrk printed no summary"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${bench_line#BENCH }"; }
requests=$(field requests)
rps=$(field rps)
p50=$(field p50_ms)
p99=$(field p99_ms)
non2xx=$(field non2xx)
socket_errors=$(field socket_errors)
if (( non2xx > 0 )); then
  show_log_tail "$work/backend.log"
  die "$non2xx responses were not 2xx (the first: HTTP $(field first_bad_status))"
fi
(( requests > 0 )) || die "wrk completed no requests"
kill -0 "$backend_pid" 2>/dev/null || { show_log_tail "$work/backend.log"; die "the backend died"; }

# 3. RSS after the load, and what reached the database.
backend_cpu=$(awk -v a="$(cpu_seconds "$backend_pid")" -v b="$backend_cpu0" 'BEGIN { printf "%.2f", a - b }')
pg_cpu=$(awk -v a="$(cpu_seconds $(pg_pids))" -v b="$pg_cpu0" 'BEGIN { printf "%.2f", a - b }')
rss_after=$(rss_kib)
echo "create-task: backend RSS after the load: $rss_after KiB ($(rss_parts))"
# wrk closes its connections at the end, but requests it sent may still be queued in the backend:
# wait (at most 10 s) until the counts stop moving.
read -r t_now o_now <<<"$(counts)"
for _ in $(seq 1 50); do
  sleep 0.2
  read -r t_next o_next <<<"$(counts)"
  [[ $t_next == "$t_now" && $o_next == "$o_now" ]] && break
  t_now=$t_next o_now=$o_next
done
tasks=$(( t_now - tasks_before ))
outbox=$(( o_now - outbox_before ))
echo "create-task: during the load: $requests responses counted by wrk, $tasks tasks and" \
  "$outbox outbox rows written"
if (( tasks != requests || outbox != requests )); then
  # wrk does not count the responses still in flight when it stops (up to one per connection).
  echo "create-task: note: the counts differ by $(( tasks - requests )) task(s) and" \
    "$(( outbox - requests )) outbox row(s) (requests in flight at the end: up to $connections)"
fi
echo "create-task: CPU used during the load: backend $backend_cpu s, PostgreSQL $pg_cpu s" \
  "($(awk -v b="$backend_cpu" -v p="$pg_cpu" -v n="$requests" \
      'BEGIN { printf "%.3f ms and %.3f ms per request", 1000 * b / n, 1000 * p / n }'))"
(( socket_errors == 0 )) || echo "create-task: warning: $socket_errors socket errors during the load"
if (( tasks < requests || tasks != outbox )); then
  die "the database does not hold one task and one event per response"
fi

# 4. The same SQL straight from pgbench, by default one client per backend worker (the same number
#    of database connections).
due_at=$(date -u -d "@$due_base" +%Y-%m-%dT09:00:00Z)
remind_at=$(date -u -d "@$(( $(date -u -d "$due_at" +%s) - 30 * 60 ))" +%Y-%m-%dT%H:%M:%SZ)
traceparent="00-$(openssl rand -hex 16)-$(openssl rand -hex 8)-01"
psql_do "$db_url" 'CHECKPOINT'
echo "create-task: pgbench: -M prepared, $pgbench_clients clients, ${duration}s, create.sql" \
  "(load average $(load_avg))"
pg_jobs=$(( pgbench_clients < $(nproc) ? pgbench_clients : $(nproc) ))
run_pgbench() { # SCRIPT OUT
  "$pg_bin/pgbench" -n -M prepared -c "$pgbench_clients" -j "$pg_jobs" -T "$duration" \
    -f "$1" \
    -D "user_id=$user" \
    -D "title=Benchmark task 1-0000001" \
    -D "description=Created by the create-task benchmark: check the quarterly figures, write the summary for the team and book the room for the review meeting." \
    -D completed=false -D "due_at=$due_at" -D "remind_at=$remind_at" -D remind_before=30 \
    -D timezone=UTC -D 'tag_ids={}' -D event_type=todo.task.created -D "traceparent=$traceparent" \
    "$db_url" >"$2" 2>&1
}
if ! run_pgbench "$here/create.sql" "$work/pgbench.out"; then
  cat "$work/pgbench.out" >&2
  die "pgbench failed"
fi
grep -E '^(number of (transactions|failed)|latency average|tps)' "$work/pgbench.out" | sed 's/^/  /'
tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.out" | tail -n 1)
[[ -n $tps ]] || { cat "$work/pgbench.out" >&2; die "pgbench printed no tps"; }
echo "create-task: pgbench TPS: $tps"
tps_no_notify=""
if (( notify_cost )); then
  sed "s/^SELECT s.id, s.snap FROM s;/SELECT s.id, s.snap, pg_notify('backend_outbox', '') FROM s;/" \
    "$here/create.sql" >"$work/create-no-notify.sql"
  grep -q 'pg_notify(' "$work/create-no-notify.sql" || die "could not add pg_notify to create.sql"
  psql_do "$db_url" 'CHECKPOINT'
  echo "create-task: pgbench: the same with a pg_notify in the transaction (load average $(load_avg))"
  run_pgbench "$work/create-no-notify.sql" "$work/pgbench-no-notify.out" ||
    { cat "$work/pgbench-no-notify.out" >&2; die "pgbench failed"; }
  tps_no_notify=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench-no-notify.out" | tail -n 1)
  grep -E '^latency average' "$work/pgbench-no-notify.out" | sed 's/^/  /'
  echo "create-task: pgbench TPS with a pg_notify in the transaction: $tps_no_notify (without: $tps)"
fi

# 5. Ratio and summary.
tps=$(awk -v t="$tps" 'BEGIN { printf "%.1f", t }')
ratio=$(awk -v a="$rps" -v b="$tps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
echo "create-task: backend req/s / pgbench TPS = $rps / $tps = $ratio"

mark() { # value op target -> met / not met
  if awk -v v="$1" -v t="$3" "BEGIN { exit !(v $2 t) }"; then echo met; else echo "not met"; fi
}
echo
echo "== create-task summary ($(nproc) cores, backend THREADS=$threads WORKERS=$workers, wrk" \
  "${connections}c/${wrk_threads}t, pgbench ${pgbench_clients}c, ${duration}s, fsync on) =="
echo "  load average (1/5/15 min): before the wrk run $load_before, at the end $(load_avg)"
printf '  %-16s %12s   %-14s %s\n' "measure" "value" "target" "status"
printf '  %-16s %12s   %-14s %s\n' "req/s" "$rps" ">= $target_rps" "$(mark "$rps" '>=' "$target_rps")"
printf '  %-16s %12s   %-14s %s\n' "p50 ms" "$p50" "-" "-"
printf '  %-16s %12s   %-14s %s\n' "p99 ms" "$p99" "<= $target_p99_ms" "$(mark "$p99" '<=' "$target_p99_ms")"
printf '  %-16s %12s   %-14s %s\n' "RSS idle KiB" "$rss_idle" "<= $target_rss_kib" \
  "$(mark "$rss_idle" '<=' "$target_rss_kib")"
printf '  %-16s %12s   %-14s %s\n' "PSS idle KiB" "$pss_idle" "-" "-"
printf '  %-16s %12s   %-14s %s\n' "RSS after KiB" "$rss_after" "-" "-"
printf '  %-16s %12s   %-14s %s\n' "pgbench TPS" "$tps" "-" "-"
if [[ -n $tps_no_notify ]]; then
  printf '  %-16s %12s   %-14s %s\n' "  with pg_notify" \
    "$(awk -v t="$tps_no_notify" 'BEGIN { printf "%.1f", t }')" "-" "-"
fi
printf '  %-16s %12s   %-14s %s\n' "ratio" "$ratio" ">= $target_ratio" "$(mark "$ratio" '>=' "$target_ratio")"
