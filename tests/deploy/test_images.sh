#!/usr/bin/env bash
# Builds the image of every service that exists (services/<name>/CMakeLists.txt) from
# Dockerfiles/<name>.Dockerfile with Debian's buildah (no engine, no registry) on a local
# debian:bookworm-slim stand-in made with debootstrap; checks each image's config and contents;
# runs it as its non-root user on a read-only root (/tmp a tmpfs, as in the pod) and checks
# --version, /healthz, /readyz and a clean exit on SIGTERM as PID 1; reports compressed sizes.
#
# usage: test_images.sh SOURCE_DIR REPORT_FILE
# env:   TODO_IMAGE_CACHE        cache of the base and of buildah's storage (/var/cache/todo-images)
#        TODO_IMAGE_SERVICES     services to build instead of every services/<name>/
#        TODO_IMAGE_BASE_MAX_DAYS rebuild the debootstrap base when older than this (7)
#        TODO_IMAGE_CACHE_MAX_MB  empty buildah's storage first when it is larger than this (6000)
set -euo pipefail

src=$(cd "${1:?usage: test_images.sh SOURCE_DIR REPORT_FILE}" && pwd)
report=${2:?usage: test_images.sh SOURCE_DIR REPORT_FILE}
here=$(cd "$(dirname "$0")" && pwd)
started=$SECONDS

fail() {
    echo "test_images: $*" >&2
    exit 1
}
log() { printf '== %s (%ds)\n' "$*" $((SECONDS - started)); }

[[ $(id -u) -eq 0 ]] || fail "needs root (buildah --isolation chroot and overlay storage); CI runs as root"
for tool in buildah debootstrap unshare curl /usr/bin/python3 flock; do
    command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/deps.sh"
done

cache=${TODO_IMAGE_CACHE:-/var/cache/todo-images}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
    cache=${TMPDIR:-/tmp}/todo-images
    mkdir -p "$cache"
fi
exec 9>"$cache/lock"
flock -w 900 9 || fail "another image build holds $cache/lock"

work=$(mktemp -d "${TMPDIR:-/tmp}/todo-images-test.XXXXXX")
ba=(buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay)
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do
        "${ba[@]}" umount "$c" >/dev/null 2>&1 || true
        "${ba[@]}" rm "$c" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

version=$(sed -n 's/^project(todo VERSION \([0-9][0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ -n $version ]] || fail "no project(todo VERSION …) in CMakeLists.txt"
revision=$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)

if [[ -n ${TODO_IMAGE_SERVICES:-} ]]; then
    read -r -a services <<<"$TODO_IMAGE_SERVICES"
else
    services=()
    for d in "$src"/services/*/; do
        # A service exists once its directory has its CMakeLists.txt (a target to build).
        [[ -f $d/CMakeLists.txt ]] && services+=("$(basename "$d")")
    done
fi
((${#services[@]})) || fail "no service under $src/services"
for s in "${services[@]}"; do
    [[ -f $src/Dockerfiles/$s.Dockerfile ]] || fail "services/$s has no Dockerfiles/$s.Dockerfile"
done

# Working containers left by a run that was killed (the lock says no run is active now).
"${ba[@]}" rm --all >/dev/null 2>&1 || true
# Storage grows by a few hundred MB per source change; start over when it passes the cap.
if [[ -d $cache/storage ]] && (($(du -sm "$cache/storage" | cut -f1) > ${TODO_IMAGE_CACHE_MAX_MB:-6000})); then
    log "buildah storage over ${TODO_IMAGE_CACHE_MAX_MB:-6000} MB: emptying it"
    "${ba[@]}" rm --all >/dev/null 2>&1 || true
    "${ba[@]}" rmi --all --force >/dev/null 2>&1 || true
fi

# --- the base: a debootstrap minbase, slimmed like debian:bookworm-slim -------------------------
base_tar=$cache/bookworm-slim.tar
base_image=localhost/todo-base/debian:bookworm-slim
if [[ ! -f $base_tar ]] || [[ -n $(find "$base_tar" -mtime +"${TODO_IMAGE_BASE_MAX_DAYS:-7}") ]]; then
    log "debootstrap bookworm (minbase) into $cache"
    /usr/bin/python3 "$here/apt_sources.py" > "$work/sources.list"
    mirror=$(awk 'NR == 1 {print $2}' "$work/sources.list")
    root=$cache/rootfs.tmp
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log"; fail "debootstrap failed"; }
    cp "$work/sources.list" "$root/etc/apt/sources.list"
    (
        cd "$root"
        rm -rf usr/share/man/* usr/share/info/* usr/share/locale/* var/lib/apt/lists/* \
            var/cache/apt/archives/*.deb var/cache/apt/*.bin var/log/*.log
        find usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
            'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
            'path-exclude /usr/share/locale/*' > etc/dpkg/dpkg.cfg.d/slim
    )
    tar --numeric-owner -C "$root" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
    rm -rf "$root"
fi
base_sum=$(sha256sum "$base_tar" | cut -c1-16)
if [[ $("${ba[@]}" inspect --type image --format '{{index .ImageAnnotations "todo.base"}}' \
    "$base_image" 2>/dev/null || true) != "$base_sum" ]]; then
    log "importing the base as $base_image"
    c=$("${ba[@]}" from scratch)
    containers+=("$c")
    "${ba[@]}" add "$c" "$base_tar" / >/dev/null
    "${ba[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd bash --annotation "todo.base=$base_sum" "$c"
    "${ba[@]}" commit -q "$c" "$base_image" >/dev/null
fi

# --- one image per service ------------------------------------------------------------------------
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_image ROOTFS LOG ARG... : starts the image's entrypoint with ARGs as the image's user, in new
# mount and PID namespaces, on a read-only bind of ROOTFS with a tmpfs on /tmp (as in the pod);
# sets run_pid to the PID of the namespace's parent (the unshare process) and returns at once.
# shellcheck disable=SC2154,SC2016 # img_* come from `eval` of check_image.py runtime; $1… expand inside
run_image() {
    local rootfs=$1 out=$2
    shift 2
    mkdir -p "$work/ro"
    unshare --mount --propagation private /bin/bash -c '
        set -e
        rootfs=$1 ro=$2; shift 2
        mount --bind "$rootfs" "$ro"
        mount -o remount,bind,ro "$ro"
        mount -t tmpfs -o mode=1777,size=16m tmpfs "$ro/tmp"
        exec "$@"' _ "$rootfs" "$work/ro" \
        env -i "${img_env[@]}" "${run_env[@]}" \
        /usr/bin/unshare --pid --fork --kill-child --root="$work/ro" --wd="$img_wd" \
        --setgid="$img_gid" --setuid="$img_uid" -- "${img_entrypoint[@]}" "$@" >"$out" 2>&1 &
    run_pid=$!
}

# wait_exit PID SECONDS : waits for PID (a child of this shell) to end; sets exit_rc to its exit
# status, or to "timeout".
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        exit_rc=timeout
        return
    fi
    wait "$pid" && exit_rc=0 || exit_rc=$?
}

check() {
    if "$@"; then return 0; fi
    echo "FAIL [$s]: $*" >&2
    failures=$((failures + 1))
    return 1
}

failures=0
printf '%-20s %13s %13s %13s %11s  %s\n' image "pushed (gz)" "tar|gzip -6" uncompressed budget verdict > "$work/report"
# buildah's layer cache keys a LABEL step by its text, not by the build args it expands: with
# --layers, an image whose inputs did not change since an earlier commit would keep that commit's
# version and revision labels. --label sets them on the final image whatever the cache held.
for s in "${services[@]}"; do
    img=localhost/todo-$s:test
    log "building $img"
    if ! "${ba[@]}" bud --isolation chroot --network host --pull-never --layers --timestamp 0 \
        -f "$src/Dockerfiles/$s.Dockerfile" --build-arg DEBIAN_IMAGE="$base_image" \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        --label org.opencontainers.image.version="$version" \
        --label org.opencontainers.image.revision="$revision" \
        -t "$img" "$src" > "$work/bud-$s.log" 2>&1; then
        tail -40 "$work/bud-$s.log" >&2
        fail "buildah bud of Dockerfiles/$s.Dockerfile failed"
    fi

    # Config: user, entrypoint, no healthcheck, stop signal, labels, one layer.
    "${ba[@]}" inspect --type image "$img" > "$work/inspect-$s.json"
    check /usr/bin/python3 "$here/check_image.py" config "$work/inspect-$s.json" "$s" "$version" "$revision" || true

    # Compressed size: the layer blobs as `buildah push` writes them (what a registry stores).
    rm -rf "$work/oci-$s"
    "${ba[@]}" push -q "$img" "oci:$work/oci-$s:test" >/dev/null
    read -r pushed gz raw links_ical < <(/usr/bin/python3 "$here/check_image.py" size "$work/oci-$s")
    [[ -n ${links_ical:-} ]] || fail "could not read the layer sizes of $work/oci-$s"

    c=$("${ba[@]}" from --pull-never "$img")
    containers+=("$c")
    m=$("${ba[@]}" mount "$c")
    check /usr/bin/python3 "$here/check_image.py" rootfs "$m" "$s" || true

    # The runtime as the image's config says: entrypoint, user, working dir, environment.
    eval "$(/usr/bin/python3 "$here/check_image.py" runtime "$work/inspect-$s.json")"
    port=$(free_port)
    closed=$(free_port)
    run_env=(PORT="$port" THREADS=1 LOG_LEVEL=info SHUTDOWN_DRAIN_SECONDS=2
        DATABASE_URL="postgresql://todo@127.0.0.1:$closed/todo?connect_timeout=1"
        JWT_SECRET=image-test-secret-that-is-at-least-32-bytes-long
        DAPR_HTTP_PORT="$closed" SMTP_URL="smtp://127.0.0.1:$closed" MAIL_FROM=todo@example.invalid
        KAFKA_BROKERS="127.0.0.1:$closed")

    run_image "$m" "$work/version-$s.log" --version
    wait_exit "$run_pid" 10
    check test "$exit_rc" = 0 || cat "$work/version-$s.log" >&2
    check grep -q "$version" "$work/version-$s.log" || cat "$work/version-$s.log" >&2
    echo "todo-$s --version as $img_uid:$img_gid on a read-only root: exit $exit_rc, $(head -c 80 "$work/version-$s.log")"

    run_image "$m" "$work/run-$s.log"
    pid=$run_pid
    healthz=000
    deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
        healthz=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthz" || true)
        [[ $healthz == 200 ]] && break
        sleep 0.1
    done
    check test "$healthz" = 200 || cat "$work/run-$s.log" >&2
    readyz=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz" || true)
    check test "$readyz" = 503 || true # no database, no sidecar: alive but not ready
    echo "todo-$s serving: /healthz $healthz, /readyz $readyz (no database, no sidecar)"
    svc_pid=$(awk "{print \$1}" "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    if check test -n "$svc_pid"; then
        check /usr/bin/python3 "$here/check_image.py" ids "/proc/$svc_pid/status" "$img_uid" "$img_gid" || true
        kill -TERM "$svc_pid"
    fi
    wait_exit "$pid" 15
    [[ $exit_rc == timeout ]] && kill -KILL "$pid" 2>/dev/null
    check test "$exit_rc" = 0 || { echo "exit after SIGTERM: $exit_rc" >&2; cat "$work/run-$s.log" >&2; }
    echo "todo-$s as PID 1 (host PID ${svc_pid:-?}): SIGTERM -> exit $exit_rc"
    check /usr/bin/python3 "$here/check_image.py" logs "$work/run-$s.log" || true

    "${ba[@]}" umount "$c" >/dev/null
    # The goals of the issue, in the measure they were set with (tar | gzip -6, IMAGES.md).
    budget=10
    [[ $links_ical == 1 ]] && budget=25 # libical brings ICU (35 MiB before compression)
    verdict=ok
    if ! awk -v g="$gz" -v b="$budget" 'BEGIN {exit !(g <= b * 1048576)}'; then
        verdict="OVER BUDGET"
        echo "FAIL [$s]: $gz bytes (tar | gzip -6) is over the $budget MiB budget" >&2
        failures=$((failures + 1))
    fi
    awk -v n="todo-$s" -v p="$pushed" -v g="$gz" -v r="$raw" -v b="$budget" -v v="$verdict" \
        'BEGIN {printf "%-20s %9.1f MiB %9.1f MiB %9.1f MiB %7d MiB  %s\n", n, p / 1048576, g / 1048576, r / 1048576, b, v}' \
        >> "$work/report"
done

mkdir -p "$(dirname "$report")"
cp "$work/report" "$report"
log "image report (also in $report)"
cat "$work/report"
echo "${#services[@]} image(s), $failures failure(s), $((SECONDS - started)) s"
((failures == 0))
