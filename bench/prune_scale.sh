#!/usr/bin/env bash
# bench/prune_scale.sh — prune's wall time and peak memory on a repository
# of millions of blobs, and how long archive-push waits meanwhile.  Run by
# hand (needs GNU time: apt-get install time).
#
#   bench/prune_scale.sh [NBLOBS]          default 5000000
#
# Environment: BUILD (build folder, default build-bench), WORK (a folder to
# use and keep; default a temporary one, removed at the end).
#
# bench/prune_scale.c builds the repository through the repository API:
# NBLOBS data blobs of 32 bytes, 1000 per file (list form), 128 KiB packs
# (about as many packs as NBLOBS 16 KiB chunks would fill), and two
# snapshots, the older naming the first 60% of the files and the newer the
# last 60%.  `forget --keep-last 1` drops the older; then `prune --json`
# runs under /usr/bin/time -v (wall time, maximum resident set size) while
# a loop of archive-push (16 MiB segments, its own cache, like another
# host) records how long each push takes.  Finally `check` must pass.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000000}
build=${BUILD:-build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target cairn prune_scale >/dev/null
cairn=$PWD/$build/cairn
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
if [[ -n ${WORK:-} ]]; then
	work=$WORK
	mkdir -p "$work"
else
	work=$(mktemp -d /tmp/cairn-bench-prune.XXXXXX)
	trap 'rm -rf "$work"' EXIT
fi
rm -rf "$work/repo" "$work/cache" "$work/cache-push" "$work/stop"
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR=$work/cache CAIRN_REPOSITORY=$work/repo
ms() { date +%s%N; }

echo "cairn $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%Y-%m-%d), $n blobs"
a=$(ms)
"$PWD/$build/prune_scale" "$work" "$n" 2>/dev/null | tail -n 1
b=$(ms)
printf 'built in %.0f s: %s in %s packs, %s index objects\n' "$(((b - a) / 1000000000))" \
	"$(du -sh "$work/repo" | cut -f1)" "$(find "$work/repo/packs" -type f | wc -l)" \
	"$(ls "$work/repo/index" | wc -l)"
"$cairn" forget --keep-last 1 -q

# archive-push beside the prune, as another host.
seg() { printf '%08X%08X%08X' 1 0 "$1"; }
pusher() {
	local k=2 t0 t1
	while [[ ! -e $work/stop ]]; do
		{ head -c 4194304 /dev/urandom; head -c 12582912 /dev/zero; } >"$work/$(seg "$k")"
		t0=$(ms)
		if CAIRN_CACHE_DIR=$work/cache-push "$cairn" archive-push --cluster bench "$work/$(seg "$k")"; then
			t1=$(ms)
			echo "$(((t1 - t0) / 1000000)) $((t0 / 1000000)) $((t1 / 1000000))" >>"$work/latency"
		else
			echo "archive-push $k failed" >>"$work/failures"
		fi
		rm -f "$work/$(seg "$k")"
		k=$((k + 1))
		sleep 0.5
	done
}
# Its first push fills its cache from the index (as on a new host): not timed.
{ head -c 4194304 /dev/urandom; head -c 12582912 /dev/zero; } >"$work/$(seg 1)"
CAIRN_CACHE_DIR=$work/cache-push "$cairn" archive-push --cluster bench "$work/$(seg 1)"
: >"$work/latency"
: >"$work/failures"
pusher &
pid=$!
sleep 2
a=$(ms)
/usr/bin/time -v -o "$work/time" "$cairn" -v prune --json >"$work/prune.json" 2> >(
	while IFS= read -r line; do echo "$((($(ms) - a) / 1000000)) $line"; done >"$work/steps") &
tpid=$!
# Peak anonymous and file-backed (LMDB maps) resident memory, sampled.
anon=0 file=0
while kill -0 "$tpid" 2>/dev/null; do
	cpid=$(pgrep -P "$tpid" -x cairn || true)
	if [[ -n $cpid ]]; then
		read -r x y < <(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {print a+0, f+0}' "/proc/$cpid/status" 2>/dev/null || echo "0 0")
		((x > anon)) && anon=$x
		((y > file)) && file=$y
	fi
	sleep 0.1
done
wait "$tpid"
b=$(ms)
sleep 5 # a few more pushes once prune is done
touch "$work/stop"
wait "$pid"
sleep 0.2
python3 - "$work/prune.json" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
print("prune: %d blobs referenced, %d packs: %d deleted, %d repacked (%d blobs), %d index objects written, %d deleted; "
      "exclusive window %.2f s; written meanwhile by the pusher: %d WAL files"
      % (v["referenced_blobs"], v["packs"], v["packs_deleted"], v["packs_repacked"], v["blobs_repacked"],
         v["index_written"], v["index_deleted"], v["window_s"], v["new_wal_files"]))
EOF
awk '/Elapsed \(wall clock\)/ {print "prune wall time: " $NF} /Maximum resident set size/ {printf "prune peak RSS: %.0f MiB", $NF / 1024}' "$work/time"
printf ' (sampled peaks: %.0f MiB anonymous, %.0f MiB file-backed: the LMDB maps of the mark set and the cache)\n' \
	"$((anon / 1024))" "$((file / 1024))"
echo "prune steps (ms since start):"
grep 'prune: ' "$work/steps" | sed 's/cairn: prune: //' | awk '!seen[$2]++ {printf "  %s %s", $2, $1}'
echo
[[ ! -s $work/failures ]] || { echo "archive-push failed during prune:"; cat "$work/failures"; }
# Pushes that ended before prune's deletions did (those the window could
# hold up), and the first one after: it finds index objects gone and
# drops what they named from its cache (section 17 of FORMAT.md).
done_ms=$(($(awk '$4 == "done" {print $1; exit}' "$work/steps") + a / 1000000))
awk -v d="$done_ms" '$3 <= d {print $1}' "$work/latency" | sort -n |
	awk '{v[NR]=$1} END {printf "archive-push until prune had deleted: %d pushes, median %d ms, max %d ms\n", NR, v[int((NR+1)/2)], v[NR]}'
awk -v d="$done_ms" '$3 > d {print $1; exit}' "$work/latency" |
	awk '{printf "the first archive-push after (its cache drops the deleted index objects): %d ms\n", $1}'
awk -v d="$done_ms" '$3 > d {n++; if (n > 1) print $1}' "$work/latency" | sort -n |
	awk 'NR {v[NR]=$1} END {if (NR) printf "later ones: %d pushes, median %d ms, max %d ms\n", NR, v[int((NR+1)/2)], v[NR]}'
"$cairn" check -q && echo "check: no errors"
