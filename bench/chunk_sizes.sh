#!/usr/bin/env bash
# bench/chunk_sizes.sh — how the cut rule for PostgreSQL relation files
# trades stored bytes against index size (issue 6: "measure dedup and index
# size for several average chunk sizes, and page-aligned cut points for
# relation files; pick the default from the data").  Run by hand, as root
# (PostgreSQL and cairn run as `postgres`); see bench/README.md.
#
#   bench/chunk_sizes.sh [--scale N] [--tx T] [--settings LIST] [--cairn BIN] [--keep]
#
#   --scale N      pgbench scale (default 100: about 1.5 GB)
#   --tx T         transactions per client of the large changes (default
#                  100 × scale); the small change runs T/10 with one client
#   --settings     comma-separated, each cdc-AVG (content-defined everywhere,
#                  min AVG/4, max AVG×4: cdc-16K, cdc-64K, cdc-256K) or
#                  page-SIZE (the default chunker, relation files cut every
#                  SIZE bytes: page-8K, page-16K, page-32K, page-64K)
#                  (default: all seven)
#   --cairn BIN    measure this binary (default: a Release build of the tree)
#
# One cluster, one repository per setting, every repository backed up from
# the same cluster state after each step:
#   b1 after pgbench -i; b2 after a uniform change (pgbench -c 2 -t T);
#   b3 after a small change (-c 1 -t T/10); b4 after a skewed change (-c 2
#   -t T, account ids drawn with random_exponential, parameter 10: hot rows).
# Each step: CHECKPOINT, then one backup per setting.  Reported per setting:
# repository bytes after b1 (du -sb), the bytes each later backup added (and
# as a share of b1), the unique blobs after b4, and the index size (index/
# objects and the LMDB cache) after b4.  Besides, per step, how many 8 KiB
# pages of the relation files changed (the floor).
set -euo pipefail

scale=100 tx="" settings_arg="cdc-16K,cdc-64K,cdc-256K,page-8K,page-16K,page-32K,page-64K" cairn_arg="" keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($# > 0)); do
	case $1 in
	--scale) scale=${2:?}; shift 2 ;;
	--tx) tx=${2:?}; shift 2 ;;
	--settings) settings_arg=${2:?}; shift 2 ;;
	--cairn) cairn_arg=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) usage ;;
	*) echo "chunk_sizes.sh: unknown option $1" >&2; usage ;;
	esac
done
[[ $scale =~ ^[1-9][0-9]*$ ]] || { echo "chunk_sizes.sh: --scale takes a positive integer" >&2; exit 2; }
[[ -n $tx ]] || tx=$((scale * 100))
tx_small=$((tx / 10 < 10 ? 10 : tx / 10))
IFS=, read -r -a settings <<<"$settings_arg"
for s in "${settings[@]}"; do
	[[ $s =~ ^(cdc|page)-[0-9]+K$ ]] || { echo "chunk_sizes.sh: bad setting '$s'" >&2; exit 2; }
done
((EUID == 0)) || { echo "chunk_sizes.sh: run as root (PostgreSQL runs as postgres)" >&2; exit 2; }
cd "$(dirname "$0")/.."
src=$PWD
t_begin=$(date +%s)
say() { printf '# [%4ds] %s\n' $(($(date +%s) - t_begin)) "$*" >&2; }
die() { echo "chunk_sizes.sh: $*" >&2; exit 1; }

pgbin=/usr/lib/postgresql/15/bin
[[ -x $pgbin/pgbench ]] || die "PostgreSQL 15 is missing: run scripts/deps.sh"
if [[ -n $cairn_arg ]]; then
	cairn=$(realpath "$cairn_arg")
else
	say "building cairn (Release, build-bench/)"
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-bench -j"$(nproc)" --target cairn >/dev/null
	cairn=$src/build-bench/cairn
fi
version="$(git describe --always --dirty 2>/dev/null || echo unknown)"

work=$(mktemp -d /tmp/cairn-chunks.XXXXXX)
chmod 755 "$work"
chown postgres: "$work"
cp "$cairn" "$work/cairn" && chmod 755 "$work/cairn"
cairn=$work/cairn
pgdata=$work/pg sock=$work/sock port=5432
as_pg() { (cd "$work" && exec runuser -u postgres -- "$@"); }
cleanup() {
	local rc=$?
	set +e
	[[ -f $pgdata/postmaster.pid ]] && as_pg "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w -s stop >/dev/null 2>&1
	if ((keep)); then say "work folder kept: $work"; else rm -rf "$work"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
psql_() { as_pg "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d postgres "$@"; }
pgbench_() { as_pg "$pgbin/pgbench" -h "$sock" -p "$port" -U postgres "$@" postgres; }

as_pg mkdir "$sock"
as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --data-checksums >/dev/null
cat >>"$pgdata/postgresql.conf" <<EOC
listen_addresses = ''
unix_socket_directories = '$sock'
port = $port
shared_buffers = 256MB
max_wal_size = 4GB
EOC
as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$work/pg.log" -w -s start >/dev/null
say "pgbench -i -s $scale"
pgbench_ -i -q -s "$scale" >/dev/null 2>&1
psql_ -c checkpoint

# Settings -> repository and backup options.
setting_init() { # SETTING -> init options
	local s=$1 kb=${1#*-}
	kb=${kb%K}
	case $s in
	cdc-*) echo "--chunk-sizes $((kb / 4))K,${kb}K,$((kb * 4))K" ;;
	page-*) echo "" ;;
	esac
}
setting_backup() { # SETTING -> backup options
	case $1 in
	cdc-*) echo "--page-chunk off" ;;
	page-*) echo "--page-chunk ${1#page-}" ;;
	esac
}
for s in "${settings[@]}"; do
	as_pg mkdir -p "$work/cache/$s"
	# shellcheck disable=SC2046
	as_pg env CAIRN_PASSWORD=bench "$cairn" -q -r "$work/repo/$s" --cache-dir "$work/cache/$s" \
		init $(setting_init "$s") >/dev/null
	as_pg env CAIRN_PASSWORD=bench "$cairn" -q -r "$work/repo/$s" --cache-dir "$work/cache/$s" \
		key export-host-key "$work/key.$s" >/dev/null
done

# Pages of the relation files: a checksum per 8 KiB page, to count changes.
page_sums() { # -> file of "path blockno sum" lines
	(cd "$pgdata" && find base global -type f -regex '.*/[0-9]+\(_fsm\|_vm\)?\(\.[0-9]+\)?' -print0 |
		sort -z | xargs -0 python3 -c '
import sys, zlib
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        b = 0
        while True:
            page = f.read(8192)
            if not page:
                break
            print(p, b, zlib.crc32(page))
            b += 1
')
}
declare -A r_b1 r_add r_blobs r_index
steps=(b1 b2 b3 b4)
declare -A step_pages
backup_all() { # STEP
	local step=$1 s before after
	for s in "${settings[@]}"; do
		before=$(du -sb "$work/repo/$s" | cut -f1)
		# shellcheck disable=SC2046
		as_pg "$cairn" -q -r "$work/repo/$s" --key-file "$work/key.$s" --cache-dir "$work/cache/$s" \
			backup --pgdata "$pgdata" --pg-conn "host=$sock port=$port user=postgres dbname=postgres" \
			$(setting_backup "$s") 2>"$work/err" || { cat "$work/err" >&2; die "backup $step $s failed"; }
		after=$(du -sb "$work/repo/$s" | cut -f1)
		if [[ $step == b1 ]]; then r_b1[$s]=$after; else r_add[$s.$step]=$((after - before)); fi
		say "$step $s: repository +$((after - before)) bytes"
	done
	page_sums >"$work/sums.$step"
	if [[ $step != b1 ]]; then
		local prev=${steps[$((${step#b} - 2))]}
		step_pages[$step]=$(python3 - "$work/sums.$prev" "$work/sums.$step" <<'PY'
import sys
a = {}
for l in open(sys.argv[1]):
    p, b, s = l.split(); a[(p, b)] = s
n = ch = 0
for l in open(sys.argv[2]):
    p, b, s = l.split(); n += 1
    ch += a.get((p, b)) != s
print(f"{ch} of {n} pages ({100.0 * ch / n:.1f}%)")
PY
)
		say "$step: ${step_pages[$step]} changed"
	fi
}
backup_all b1
say "uniform change: pgbench -c 2 -j 2 -t $tx"
pgbench_ -n -c 2 -j 2 -t "$tx" >/dev/null 2>&1
psql_ -c checkpoint
backup_all b2
say "small change: pgbench -c 1 -t $tx_small"
pgbench_ -n -c 1 -t "$tx_small" >/dev/null 2>&1
psql_ -c checkpoint
backup_all b3
say "skewed change: pgbench -c 2 -j 2 -t $tx, random_exponential(1, naccounts, 10)"
cat >"$work/skewed.sql" <<'SQL'
\set aid random_exponential(1, 100000 * :scale, 10)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
SQL
chmod 644 "$work/skewed.sql"
pgbench_ -n -c 2 -j 2 -t "$tx" -f "$work/skewed.sql" >/dev/null 2>&1
psql_ -c checkpoint
backup_all b4

for s in "${settings[@]}"; do
	r_blobs[$s]=$(as_pg "$cairn" -r "$work/repo/$s" --key-file "$work/key.$s" --cache-dir "$work/cache/$s" \
		stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique_blobs"])')
	r_index[$s]=$(($(du -sb "$work/repo/$s/index" | cut -f1) + $(du -sb "$work/cache/$s" | cut -f1)))
done

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
pc() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }
{
	echo "## Cut rules for relation files, pgbench -s $scale ($(date -u +%F), $(nproc) cores, cairn $version)"
	echo
	echo "Changes: uniform -c 2 -t $tx: ${step_pages[b2]} changed; small -c 1 -t $tx_small: ${step_pages[b3]}; skewed -c 2 -t $tx (random_exponential 10): ${step_pages[b4]}."
	echo
	echo "| setting | b1 (full) | b2 uniform | b3 small | b4 skewed | unique blobs | index (objects + LMDB) |"
	echo "|---|---|---|---|---|---|---|"
	for s in "${settings[@]}"; do
		echo "| $s | $(mb "${r_b1[$s]}") | $(mb "${r_add[$s.b2]}") ($(pc "${r_add[$s.b2]}" "${r_b1[$s]}")) | $(mb "${r_add[$s.b3]}") ($(pc "${r_add[$s.b3]}" "${r_b1[$s]}")) | $(mb "${r_add[$s.b4]}") ($(pc "${r_add[$s.b4]}" "${r_b1[$s]}")) | ${r_blobs[$s]} | $(mb "${r_index[$s]}") |"
	done
	echo
	echo "Command: bench/chunk_sizes.sh --scale $scale --tx $tx"
}
