#!/usr/bin/env bash
# bench/s3.sh — cairn against a local S3 server (Ceph radosgw on memstore,
# started with tests/s3/start-ceph.sh): upload throughput (backup),
# download throughput (restore, check --read-data), the requests each
# command makes (radosgw's own counters) and how many objects the
# repository holds per GiB.  The same backup to a local folder is the
# reference.  Run by hand (root, or Ceph installed):
#
#   bench/s3.sh [SIZE_GIB]          default 1
#
# CAIRN_BIN=PATH uses that binary instead of building one (Release, in
# $BUILD, default build-bench); CAIRN_REV names it in the output.
#
# Input: files of 256 MiB, half random bytes and half text (as
# bench/backup_memory.sh).  Loopback only: the figures measure cairn and
# radosgw on this machine, not a network.
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-1}
if [ -n "${CAIRN_BIN:-}" ]; then
	cairn=$(cd "$(dirname "$CAIRN_BIN")" && pwd)/$(basename "$CAIRN_BIN")
else
	build=${BUILD:-build-bench}
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$build" -j"$(nproc)" --target cairn >/dev/null
	cairn=$PWD/$build/cairn
fi
rev=${CAIRN_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-s3.XXXXXX")
cleanup() {
	tests/s3/stop-ceph.sh "$work/ceph" --wipe >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

tests/s3/start-ceph.sh "$work/ceph" >/dev/null 2>"$work/ceph-start.log" ||
	{ cat "$work/ceph-start.log" >&2; exit 1; }
set -a
. "$work/ceph/env"
set +a
bucket=cairn-bench
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR=$work/cache CAIRN_REPOSITORY=s3://$bucket/repo

src=$work/src
mkdir -p "$src"
for i in $(seq 1 $((gib * 4))); do
	# (seq is cut short by head: its SIGPIPE is expected)
	{ head -c $((128 << 20)) /dev/urandom; seq 1 $((128 << 20)) | head -c $((128 << 20)) || true; } \
		>"$src/f$i"
done
bytes=$(du -sb "$src" | cut -f1)

counters() { # "requests gets puts" of radosgw so far
	ceph --admin-daemon "$CEPH_RGW_ASOK" perf dump |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["rgw"]; print(r["req"], r["get"], r["put"])'
}
objects() { # "objects bytes" in the bucket
	radosgw-admin -c "$CEPH_CONF" bucket stats --bucket "$bucket" |
		python3 -c 'import json,sys; u=json.load(sys.stdin)["usage"].get("rgw.main", {}); print(u.get("num_objects", 0), u.get("size", 0))'
}
mib() { echo "scale=1; $1 / 1048576" | bc; }

printf 'cairn %s, %s cores, %s, %s GiB input (%s bytes), radosgw %s on memstore\n' \
	"$rev" "$(nproc)" "$(date -u +%Y-%m-%d)" "$gib" "$bytes" \
	"$(radosgw --version | awk '{print $3}')"
printf '| run | wall s | MiB/s of input | requests | GET | PUT |\n| --- | --- | --- | --- | --- | --- |\n'
run() { # label, command...
	local label=$1
	shift
	read -r r0 g0 p0 < <(counters)
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null
	t1=$(date +%s.%N)
	read -r r1 g1 p1 < <(counters)
	local wall
	wall=$(echo "$t1 - $t0" | bc)
	printf '| %s | %.1f | %.0f | %d | %d | %d |\n' "$label" "$wall" \
		"$(echo "$bytes / 1048576 / $wall" | bc -l)" $((r1 - r0)) $((g1 - g0)) $((p1 - p0))
	echo "$((r1 - r0))" >"$work/last.req"
}

run "init" "$cairn" init -q
run "backup" "$cairn" backup -q "$src"
backup_req=$(cat "$work/last.req")
read -r nobj stored < <(objects)
run "backup, unchanged" "$cairn" backup -q "$src"
run "restore" "$cairn" restore -q latest --target "$work/out"
cmp -s "$src/f1" "$work/out$src/f1" || { echo "restore differs" >&2; exit 1; }
rm -rf "$work/out"
run "check --read-data" "$cairn" check -q --read-data
rm -rf "$CAIRN_CACHE_DIR"
run "snapshots, cache deleted" "$cairn" snapshots

stored_gib=$(echo "$stored / 1073741824" | bc -l)
printf '\nstored: %s objects, %s MiB (%.2f GiB)\n' "$nobj" "$(mib "$stored")" "$stored_gib"
printf 'objects per GiB stored: %.1f\n' "$(echo "$nobj / $stored_gib" | bc -l)"
printf 'requests per GiB stored (first backup): %.1f\n' "$(echo "$backup_req / $stored_gib" | bc -l)"

# the same backup to a local folder, for reference
export CAIRN_REPOSITORY=$work/local CAIRN_CACHE_DIR=$work/cache-local
"$cairn" init -q
t0=$(date +%s.%N)
"$cairn" backup -q "$src"
t1=$(date +%s.%N)
printf 'reference: backup to a local folder %.1f s\n' "$(echo "$t1 - $t0" | bc)"
