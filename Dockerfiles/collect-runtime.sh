#!/bin/sh
# collect-runtime.sh DEST BINARY... : lays out in DEST the root file system a dynamically linked
# executable needs on `FROM scratch`: the binary, its shared-library closure, CA certificates,
# zoneinfo, a non-root user (65532), an empty /tmp, and package metadata + licences for scanners.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: collect-runtime.sh DEST BINARY..." >&2
    exit 2
fi
dest=$1
shift
uid=65532

mkdir -p "$dest/usr/local/bin" "$dest/etc/ssl/certs" "$dest/usr/share" \
    "$dest/var/lib/dpkg/status.d" "$dest/tmp" "$dest/home/nonroot"
chmod 1777 "$dest/tmp"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for bin in "$@"; do
    install -m 0755 "$bin" "$dest/usr/local/bin/"
    ldd "$bin" > "$work/ldd" || {
        echo "collect-runtime: ldd failed on $bin (not a dynamic executable?)" >&2
        exit 1
    }
    if grep -q 'not found' "$work/ldd"; then
        cat "$work/ldd" >&2
        echo "collect-runtime: unresolved shared library for $bin" >&2
        exit 1
    fi
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' "$work/ldd" >> "$work/libs"
done

sort -u "$work/libs" > "$work/libs.sorted"
while read -r lib; do
    mkdir -p "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
    real=$(readlink -f "$lib")
    # dpkg records some files under /lib and others under /usr/lib (usrmerge): ask for each spelling.
    printf '%s\n%s\n%s\n%s\n' "$lib" "$real" "${real#/usr}" "/usr${lib#/usr}" >> "$work/paths"
done < "$work/libs.sorted"

cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
cp -a /usr/share/zoneinfo "$dest/usr/share/"
cp /usr/lib/os-release "$dest/etc/os-release"
cp /etc/debian_version "$dest/etc/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
    "$uid" "$uid" > "$dest/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" > "$dest/etc/group"
# Without this glibc asks DNS before /etc/hosts, so "localhost" would depend on the cluster DNS.
printf 'hosts: files dns\n' > "$dest/etc/nsswitch.conf"
chown "$uid:$uid" "$dest/home/nonroot"

# Package metadata in the distroless layout (/var/lib/dpkg/status.d/<package>) so that image
# scanners see what is inside, and the copyright file of every package shipped.
sort -u "$work/paths" | while read -r f; do
    dpkg-query -S "$f" 2>/dev/null || true
done | cut -d: -f1 | tr ',' '\n' | sed 's/^ *//' > "$work/pkgs"
printf 'tzdata\nca-certificates\n' >> "$work/pkgs"
for p in $(sort -u "$work/pkgs"); do
    dpkg-query -s "$p" | grep -v '^Status:' > "$dest/var/lib/dpkg/status.d/$p"
    if [ -f "/usr/share/doc/$p/copyright" ]; then
        mkdir -p "$dest/usr/share/doc/$p"
        cp "/usr/share/doc/$p/copyright" "$dest/usr/share/doc/$p/"
    fi
    for m in "/var/lib/dpkg/info/$p.md5sums" "/var/lib/dpkg/info/$p:amd64.md5sums"; do
        if [ -f "$m" ]; then
            cp "$m" "$dest/var/lib/dpkg/status.d/$p.md5sums"
        fi
    done
done
if [ ! -s "$dest/var/lib/dpkg/status.d/libc6" ]; then
    echo "collect-runtime: no package metadata for libc6: dpkg-query found nothing" >&2
    exit 1
fi
