#!/usr/bin/env bash
# bench/archive_push.sh — how fast archive-push and archive-get run when
# PostgreSQL calls them once per WAL segment (one process each), with the
# repository opened by a host key file as archive_command does.  Run by
# hand; needs PostgreSQL 15 (scripts/deps.sh installs it) and root.
#
#   bench/archive_push.sh [SEGMENTS]        default 20
#
# The segments are real: a throwaway cluster writes them under pgbench
# load, and they are copied aside before being timed.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
bin=/usr/lib/postgresql/15/bin
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target cairn >/dev/null
cairn=$PWD/build-bench/cairn
work=$(mktemp -d /tmp/cairn-bench-wal.XXXXXX)
chmod 755 "$work"
cleanup() {
	runuser -u postgres -- "$bin/pg_ctl" -D "$work/pg" stop -m immediate >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
install -d -o postgres -m 700 "$work/pg" "$work/wal" "$work/sock"
runuser -u postgres -- "$bin/initdb" -N -A trust -U postgres -D "$work/pg" >/dev/null
port=$((30000 + RANDOM % 20000))
cat >>"$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work/sock'
archive_mode = on
archive_command = 'cp %p $work/wal/%f'
CONF
runuser -u postgres -- "$bin/pg_ctl" -D "$work/pg" -l "$work/sock/pg.log" -w start >/dev/null
psql() { runuser -u postgres -- "$bin/psql" -X -q -At -h "$work/sock" -p "$port" -U postgres "$@"; }
runuser -u postgres -- "$bin/pgbench" -h "$work/sock" -p "$port" -U postgres -i -s 10 -q postgres >/dev/null 2>&1
while (($(ls "$work/wal" | grep -cE '^[0-9A-F]{24}$') < n + 1)); do
	runuser -u postgres -- "$bin/pgbench" -h "$work/sock" -p "$port" -U postgres -t 2000 -c 2 postgres >/dev/null 2>&1
	psql -c "select pg_switch_wal()" >/dev/null
	sleep 0.5
done
mapfile -t segs < <(ls "$work/wal" | grep -E '^[0-9A-F]{24}$' | sort | head -n "$n")

export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR=$work/cache CAIRN_REPOSITORY=$work/repo
"$cairn" init -q
"$cairn" key export-host-key "$work/host.key" >/dev/null
unset CAIRN_PASSWORD
push() { "$cairn" --key-file "$work/host.key" archive-push --cluster bench "$work/wal/$1"; }
get() { "$cairn" --key-file "$work/host.key" archive-get --cluster bench "$1" "$work/got"; }

ms() { date +%s%N; }
echo "cairn $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%Y-%m-%d), $n real 16 MiB segments"
times=()
t0=$(ms)
for s in "${segs[@]}"; do
	a=$(ms); push "$s"; b=$(ms)
	times+=($(((b - a) / 1000000)))
done
t1=$(ms)
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'archive-push: %d segments in %.2f s: %.1f segments/s, median %d ms per segment\n' \
	"$n" "$(echo "($t1 - $t0) / 1000000000" | bc -l)" \
	"$(echo "$n / (($t1 - $t0) / 1000000000)" | bc -l)" "$median"
a=$(ms); for s in "${segs[@]}"; do push "$s"; done; b=$(ms)
printf 'archive-push again (already archived): %.1f segments/s\n' "$(echo "$n / (($b - $a) / 1000000000)" | bc -l)"
a=$(ms); for s in "${segs[@]}"; do get "$s"; cmp -s "$work/got" "$work/wal/$s"; done; b=$(ms)
printf 'archive-get: %.1f segments/s (each verified and compared)\n' "$(echo "$n / (($b - $a) / 1000000000)" | bc -l)"
for s in "${segs[@]}"; do
	a=$(ms); cp "$work/wal/$s" "$work/cp.tmp"; sync "$work/cp.tmp"; b=$(ms); rm -f "$work/cp.tmp"
	echo $(((b - a) / 1000000))
done | sort -n | awk '{a[NR]=$1} END {printf "cp + fsync of the same segments: median %d ms\n", a[int((NR+1)/2)]}'
du -sb "$work/repo" | awk -v n="$n" '{printf "repository: %.1f MiB for %d segments (%.1f MiB raw)\n", $1/1048576, n, n*16}'
