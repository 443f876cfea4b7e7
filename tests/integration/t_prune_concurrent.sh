#!/usr/bin/env bash
# t_prune_concurrent.sh — prune while others write.  Every writer has a
# cache of its own, as another host would.
#
# 1. Stopped after its plan (CAIRN_TEST_PRUNE_PAUSE=catchup:FILE), a prune
#    sees a backup store again the content of a forgotten snapshot (its
#    blobs sit in packs prune planned to delete) and an archive-push: it
#    keeps those packs (packs_rescued), and the new snapshot and segment
#    read back whole.
# 2. Inside its exclusive window (paused there), an archive-push waits for
#    the window to end and then succeeds, instead of failing.
# 3. Two archive-push loops (two clusters, 16 MiB segments), a loop of
#    plain file backups whose content keeps coming back, and forget +
#    prune three times meanwhile.  Afterwards every writer command
#    succeeded, every snapshot restores byte-identical, every archived
#    segment reads back identical, check --read-data passes, and no
#    archive-push took longer than 10 s.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

DIG=$SCRATCH/digests
SEGS=$SCRATCH/segs # name -> sha256 of each pushed segment, per cluster
mkdir -p "$DIG" "$SEGS"
expect_rc 0 cairn init
ok "init"

snap_ids() { cairn snapshots --json | python3 -c 'import json,sys; print("\n".join(s["id"] for s in json.load(sys.stdin)))'; }

# A backup of DIR with its own cache; records the tree's digest.
backup_as() { # cache dir
	local out
	out=$(CAIRN_CACHE_DIR=$SCRATCH/cache-$1 "$CAIRN_BIN" backup --json "$2") || return 1
	local id
	id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["snapshot"])' "$out") || return 1
	tree_digest "$2" >"$DIG/$id"
}

# A 16 MiB WAL segment: 4 MiB of random bytes then zeros (WAL compresses).
segment() { # seed
	{ rand_bytes 4194304 "seg-$1"; head -c 12582912 /dev/zero; }
}
seg_name() { printf '%08X%08X%08X' 1 0 "$1"; }

# Pushes segment k of a cluster with its own cache; records its hash and,
# in $SCRATCH/latency, how long the push took (ms).
push_as() { # cache cluster k
	local name t0 t1
	name=$(seg_name "$3")
	mkdir -p "$SCRATCH/w-$1" "$SEGS/$2"
	segment "$2-$3" >"$SCRATCH/w-$1/$name"
	t0=$(date +%s%N)
	CAIRN_CACHE_DIR=$SCRATCH/cache-$1 "$CAIRN_BIN" archive-push --cluster "$2" "$SCRATCH/w-$1/$name" || return 1
	t1=$(date +%s%N)
	echo "$(((t1 - t0) / 1000000)) $2 $name" >>"$SCRATCH/latency"
	sha256sum <"$SCRATCH/w-$1/$name" | cut -c1-64 >"$SEGS/$2/$name"
	rm -f "$SCRATCH/w-$1/$name"
}

# Waits until prune (stderr in $1, -v) says it reached step $2.
wait_step() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q "prune: $2\$" "$1" && return 0
		sleep 0.05
	done
	fail "prune never reached $2: $(cat "$1")"
}

# ---- 1. writers between prune's plan and its deletions -----------------------
mkdir -p "$SCRATCH/a" "$SCRATCH/old"
for i in 0 1 2 3; do rand_bytes 700000 "a-$i-v1" >"$SCRATCH/a/f$i"; done
cp -a "$SCRATCH/a/." "$SCRATCH/old/"
backup_as main "$SCRATCH/a" || fail "backup"
for i in 0 1 2 3; do rand_bytes 700000 "a-$i-v2" >"$SCRATCH/a/f$i"; done
backup_as main "$SCRATCH/a" || fail "backup"
push_as main main 1 || fail "archive-push"
expect_rc 0 cairn forget --keep-last 1
rm -f "$SCRATCH/go1"
CAIRN_TEST_PRUNE_PAUSE=catchup:$SCRATCH/go1 "$CAIRN_BIN" -v prune --json \
	>"$SCRATCH/p1.out" 2>"$SCRATCH/p1.err" &
pruning=$!
wait_step "$SCRATCH/p1.err" catchup
# The forgotten content again, from another "host": its blobs are in the
# packs this prune planned to delete, and that host's cache knows them.
cp -a "$SCRATCH/old" "$SCRATCH/again"
backup_as hostb "$SCRATCH/again" || fail "backup during prune"
push_as hostc main 2 || fail "archive-push during prune"
touch "$SCRATCH/go1"
wait "$pruning" || fail "prune failed: $(cat "$SCRATCH/p1.err")"
python3 - "$SCRATCH/p1.out" <<'EOF' || fail "prune did not keep the packs the new backup uses: $(cat "$SCRATCH/p1.out")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["new_snapshots"] == 1 and v["new_wal_files"] == 1, v
assert v["packs_rescued"] >= 1 and v["packs_deleted"] >= 1, v
EOF
expect_rc 0 cairn check --read-data
ok "a backup of forgotten content and an archive-push during prune: their packs are kept, check passes"

# ---- 1b. a writer between prune's listings of index/ and packs/ --------------
# The push's packs are listed but not its index object; its WAL entry is
# new at catch-up. The packs must stay indexed (found by catch-up) and the
# segment must read back. (Listing packs/ first once lost an index entry:
# the index object was listed, its last pack was not, and the replacement
# index object dropped that pack's entries.)
for i in 0 1; do rand_bytes 600000 "a-$i-v2b" >"$SCRATCH/a/f$i"; done
backup_as main "$SCRATCH/a" || fail "backup"
expect_rc 0 cairn forget --keep-last 1
rm -f "$SCRATCH/go1b"
CAIRN_TEST_PRUNE_PAUSE=list-packs:$SCRATCH/go1b "$CAIRN_BIN" -v prune --json \
	>"$SCRATCH/p1b.out" 2>"$SCRATCH/p1b.err" &
pruning=$!
wait_step "$SCRATCH/p1b.err" list-packs
push_as hostc main 4 || fail "archive-push between prune's listings"
touch "$SCRATCH/go1b"
wait "$pruning" || fail "prune failed: $(cat "$SCRATCH/p1b.err")"
expect_rc 0 cairn check --read-data
rm -rf "$SCRATCH/get"
mkdir -p "$SCRATCH/get"
n4=$(seg_name 4)
CAIRN_PREFETCH=0 expect_rc 0 cairn archive-get --cluster main "$n4" "$SCRATCH/get/$n4"
[[ $(sha256sum <"$SCRATCH/get/$n4" | cut -c1-64) == "$(cat "$SEGS/main/$n4")" ]] ||
	fail "the segment pushed between prune's listings does not read back"
ok "an archive-push between prune's listings of index/ and packs/ stays whole"

# ---- 2. a writer during the exclusive window waits for it ----------------------
for i in 0 1; do rand_bytes 500000 "a-$i-v3" >"$SCRATCH/a/f$i"; done
backup_as main "$SCRATCH/a" || fail "backup"
expect_rc 0 cairn forget --keep-last 1
rm -f "$SCRATCH/go2"
CAIRN_TEST_PRUNE_PAUSE=window:$SCRATCH/go2 "$CAIRN_BIN" -v prune --json \
	>"$SCRATCH/p2.out" 2>"$SCRATCH/p2.err" &
pruning=$!
wait_step "$SCRATCH/p2.err" window
push_as hostc main 3 >"$SCRATCH/push3.out" 2>&1 &
pushing=$!
sleep 2
kill -0 "$pushing" 2>/dev/null || fail "archive-push did not wait for prune's window: $(cat "$SCRATCH/push3.out")"
touch "$SCRATCH/go2"
wait "$pushing" || fail "archive-push during prune's window failed: $(cat "$SCRATCH/push3.out")"
wait "$pruning" || fail "prune failed: $(cat "$SCRATCH/p2.err")"
ms=$(tail -n 1 "$SCRATCH/latency" | cut -d' ' -f1)
echo "# archive-push held by a 2 s window took $ms ms"
((ms >= 1500 && ms < 10000)) || fail "archive-push during the window took $ms ms"
ok "archive-push during prune's exclusive window waits for it, then succeeds ($ms ms)"

# ---- 3. writers in loops, prune three times ------------------------------------
: >"$SCRATCH/latency"
: >"$SCRATCH/failures"
rm -f "$SCRATCH/stop"
pusher() { # cache cluster first
	local k=$3
	while [[ ! -e $SCRATCH/stop ]]; do
		push_as "$1" "$2" "$k" 2>>"$SCRATCH/failures.log" || echo "push $2 $k" >>"$SCRATCH/failures"
		k=$((k + 1))
	done
}
backupper() {
	local k=0 i
	mkdir -p "$SCRATCH/w"
	while [[ ! -e $SCRATCH/stop ]]; do
		# Three versions that come back in turn: often content that an
		# earlier forget left to prune.
		for i in 0 1 2; do rand_bytes $((300000 + i * 100000)) "w-$i-$((k % 3))" >"$SCRATCH/w/f$i"; done
		text_bytes 30000 "$k" >"$SCRATCH/w/log.txt"
		backup_as hostw "$SCRATCH/w" 2>>"$SCRATCH/failures.log" || echo "backup $k" >>"$SCRATCH/failures"
		k=$((k + 1))
		sleep 0.3
	done
}
pusher hostp1 main 100 &
p1=$!
pusher hostp2 other 1 &
p2=$!
backupper &
b1=$!
sleep 2
windows=()
deleted=0
rescued=0
for round in 1 2 3; do
	expect_rc 0 cairn forget --keep-last 2
	expect_rc 0 cairn prune --max-unused 0 --json
	read -r w d r < <(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("%.2f %d %d" % (v["window_s"], v["packs_deleted"], v["packs_rescued"]))' "$LAST_OUT")
	windows+=("$w")
	deleted=$((deleted + d))
	rescued=$((rescued + r))
	sleep 1
done
touch "$SCRATCH/stop"
wait "$p1" "$p2" "$b1"
echo "# exclusive windows of the three prunes: ${windows[*]} s; $deleted packs deleted, $rescued kept for writers"
((deleted > 0)) || fail "the three prunes deleted nothing: the test tested little"
[[ ! -s $SCRATCH/failures ]] || fail "writers failed during prune: $(cat "$SCRATCH/failures") $(tail -n 5 "$SCRATCH/failures.log")"
npush=$(wc -l <"$SCRATCH/latency")
max=$(sort -n "$SCRATCH/latency" | tail -n 1 | cut -d' ' -f1)
echo "# $npush archive-push runs during the prunes, the slowest $max ms"
((npush >= 6)) || fail "only $npush archive-push runs: the loops did not run"
((max < 10000)) || fail "an archive-push took $max ms during prune"
ok "writers never failed during three prunes; the slowest of $npush archive-push runs took $max ms"

# ---- afterwards ---------------------------------------------------------------------
expect_rc 0 cairn unlock --stale
expect_rc 0 cairn check --read-data
ok "check --read-data passes"
n=0
for id in $(snap_ids); do
	[[ -f $DIG/$id ]] || fail "snapshot ${id:0:8} has no recorded digest"
	rm -rf "$SCRATCH/r"
	expect_rc 0 cairn restore "$id" --target "$SCRATCH/r"
	src=$(find "$SCRATCH/r" -name f0 -o -name f0.bin | head -n 1)
	[[ $(tree_digest "$(dirname "$src")") == "$(cat "$DIG/$id")" ]] ||
		fail "snapshot ${id:0:8} does not restore identical"
	n=$((n + 1))
done
rm -rf "$SCRATCH/r"
ok "all $n snapshots restore byte-identical"
n=0
for cl in main other; do
	for f in "$SEGS/$cl"/*; do
		name=$(basename "$f")
		# (no prefetcher: a detached one would outlive the test)
		CAIRN_PREFETCH=0 expect_rc 0 cairn archive-get --cluster "$cl" "$name" "$SCRATCH/got"
		[[ $(sha256sum <"$SCRATCH/got" | cut -c1-64) == "$(cat "$f")" ]] ||
			fail "WAL $cl/$name reads back different"
		n=$((n + 1))
	done
done
rm -f "$SCRATCH/got"
ok "all $n archived WAL segments read back identical"

finish
