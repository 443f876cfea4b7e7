#!/usr/bin/env bash
# t_prune_faults.sh — every write of a prune fails once: with
# CAIRN_TEST_FAULT=put,del:N (repo/storage.c) the N-th put or delete of the
# prune's storage fails with an I/O error, for N = 1, 2, ... until a prune
# runs with no fault left to inject.  Each run starts from the same
# repository (three backups, the oldest forgotten, so that prune deletes,
# repacks and rewrites index objects).  After each: prune exits 0 or 1
# (never leaves a mess behind), `check` passes once stale locks are
# removed, the kept snapshots restore byte-identical, and a prune without
# faults then finishes the work and check --read-data passes.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SRC=$SCRATCH/src
DIG=$SCRATCH/digests
PRISTINE=$SCRATCH/pristine
mkdir -p "$DIG" "$SRC"

expect_rc 0 cairn init

write_src() { # seed
	local seed=$1 i
	for i in 0 1 2 3 4 5; do
		rand_bytes $((150000 + i * 70000)) "f-$i-$((seed - i % 2))" >"$SRC/f$i.bin"
	done
	mkdir -p "$SRC/sub"
	text_bytes 20000 "$seed" >"$SRC/sub/notes-$seed.txt"
}
backup_src() {
	expect_rc 0 cairn backup --json "$SRC"
	local id
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")
	tree_digest "$SRC" >"$DIG/$id"
}
snap_ids() { cairn snapshots --json | python3 -c 'import json,sys; print("\n".join(s["id"] for s in json.load(sys.stdin)))'; }
restore_all() { # what
	local id n=0
	for id in $(snap_ids); do
		rm -rf "$SCRATCH/r"
		expect_rc 0 cairn restore "$id" --target "$SCRATCH/r"
		[[ $(tree_digest "$SCRATCH/r$SRC") == "$(cat "$DIG/$id")" ]] ||
			fail "$1: snapshot ${id:0:8} does not restore identical"
		n=$((n + 1))
	done
	rm -rf "$SCRATCH/r"
	((n == 2)) || fail "$1: $n snapshots instead of 2"
}

for s in 1 2 3; do
	write_src "$s"
	backup_src
done
expect_rc 0 cairn forget --keep-last 2
expect_rc 0 cairn prune --dry-run --max-unused 0 --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_deleted"]>0 and v["packs_repacked"]>0, v' "$LAST_OUT" ||
	fail "the prepared repository gives prune too little to do: $(cat "$LAST_OUT")"
cp -a "$CAIRN_REPOSITORY" "$PRISTINE"
ok "a repository where prune deletes, repacks and rewrites index objects"

faulted=0
for ((n = 1; n < 200; n++)); do
	rm -rf "$CAIRN_REPOSITORY" "$CAIRN_CACHE_DIR"
	cp -a "$PRISTINE" "$CAIRN_REPOSITORY"
	CAIRN_TEST_FAULT=put,del:$n run_rc cairn prune --max-unused 0
	[[ $LAST_RC == 0 || $LAST_RC == 1 ]] || fail "prune with write $n failing exited $LAST_RC: $(cat "$LAST_ERR")"
	fired=0
	grep -q 'injected fault' "$LAST_ERR" && fired=1
	# A failed delete of prune's own lock object is not reported: it
	# leaves a lock that goes stale.
	[[ -n $(ls "$CAIRN_REPOSITORY/locks" 2>/dev/null) ]] && fired=1
	if ((LAST_RC == 1)) && ! grep -q 'injected fault' "$LAST_ERR"; then
		fail "prune with write $n failing failed for another reason: $(cat "$LAST_ERR")"
	fi
	if ((!fired)); then
		break
	fi
	faulted=$((faulted + 1))
	expect_rc 0 cairn unlock --stale
	expect_rc 0 cairn check
	restore_all "write $n of prune failed"
	expect_rc 0 cairn prune --max-unused 0
	expect_rc 0 cairn check
done
echo "# prune makes $faulted puts and deletes; each failed once in turn"
((faulted >= 8)) || fail "only $faulted writes failed: the fault hook did not reach prune's writes"
((n < 200)) || fail "prune never ran without a fault"
expect_rc 0 cairn check --read-data
restore_all "the run without faults"
ok "each of prune's $faulted writes failing once: check passes, kept snapshots restore, a prune after it finishes"

finish
