#!/usr/bin/env bash
# Build (once per machine, cached) a root file system holding real MySQL from Debian's packages.
#
#   hack/build-mysql.sh           build it if missing (a warm cache returns at once)
#   hack/build-mysql.sh --root    print the root's path
#
# Debian 12 ships no MySQL server; Debian's sid suite has mysql-server-core of the pinned series, which
# needs a newer glibc, so it lives in its own root and runs through that root's dynamic loader
# (FACTS.md in the shared docs). Only Debian's package registry is used.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${TOOLS_CACHE:-$HOME/.cache/mysql-operator}"
ROOT="$CACHE/mysql-$MYSQL_SERIES/root"

if [[ "${1:-}" == "--root" ]]; then
    echo "$ROOT"
    exit 0
fi
[[ -f "$ROOT/.ready" ]] && exit 0

mkdir -p "$CACHE"
exec 9>"$CACHE/.mysql-build.lock"
flock -w 1800 9 || { echo "build-mysql: another build holds the lock" >&2; exit 1; }
[[ -f "$ROOT/.ready" ]] && exit 0

if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 debootstrap >/dev/null
fi

# The machine's own Debian mirror, as apt is configured here (the first deb URI of the main archive).
mirror="$(sed -n 's#^URIs: *\(\S*/debian\)$#\1#p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
[[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $2 ~ /\/debian$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
[[ -n "$mirror" ]] || { echo "build-mysql: no Debian mirror found in apt's sources" >&2; exit 1; }
echo "build-mysql: debootstrap $MYSQL_DEBIAN_SUITE with MySQL $MYSQL_SERIES into $ROOT" >&2
start=$(date +%s)
tmp="$ROOT.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase --include=mysql-server-core,mysql-client-core \
    "$MYSQL_DEBIAN_SUITE" "$tmp" "$mirror" >"$CACHE/mysql-$MYSQL_SERIES/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/mysql-$MYSQL_SERIES/debootstrap.log" >&2; exit 1; }
version="$(sed -n 's/^Version: //p' <(awk '/^Package: mysql-server-core$/,/^$/' "$tmp/var/lib/dpkg/status"))"
case "$version" in
    "$MYSQL_SERIES".*) ;;
    *) echo "build-mysql: expected MySQL $MYSQL_SERIES.x, the suite served '$version'" >&2; exit 1 ;;
esac
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
end=$(date +%s)
printf 'mysql_version=%s wall_seconds=%s\n' "$version" $((end - start)) | tee "$ROOT/../build-stats.txt" >&2
touch "$ROOT/.ready"
