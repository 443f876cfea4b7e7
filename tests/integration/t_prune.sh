#!/usr/bin/env bash
# t_prune.sh — retention and prune on plain file backups: forget --dry-run
# changes nothing; forget --keep-last 2 leaves two snapshots; prune shrinks
# the repository, check --read-data passes and the kept snapshots restore
# byte-identical; --max-unused 0 repacks; prune killed with kill -9 at
# each of its steps leaves a repository that passes check (after unlock
# --stale) and whose kept snapshots restore; prune waits for a moment
# without writers for its deletions (giving up after --lock-wait, naming
# the backup that holds its lease) and deletes once it has one.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SRC=$SCRATCH/src
DIG=$SCRATCH/digests
mkdir -p "$DIG"

expect_rc 0 cairn init
ok "init"

# A backup of SRC; remembers the tree's digest under the snapshot id.
backup_src() {
	expect_rc 0 cairn backup "$SRC"
	local id
	id=$(cairn snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
	tree_digest "$SRC" >"$DIG/$id"
}

# Changes a third of SRC: new content for some files, some files removed.
change_src() { # seed
	local seed=$1 i=0 f
	for f in "$SRC"/medium/*.bin "$SRC"/large/*.bin; do
		if ((i % 3 == seed % 3)); then
			rand_bytes "$(stat -c %s "$f")" "chg-$seed-$i" >"$f"
		fi
		i=$((i + 1))
	done
	rm -rf "$SRC/small/g$((seed % 7))"
	rand_bytes 300000 "new-$seed" >"$SRC/new-$seed.bin"
}

snap_ids() { cairn snapshots --json | python3 -c 'import json,sys; print("\n".join(s["id"] for s in json.load(sys.stdin)))'; }

# Every snapshot restores, identical to the tree it was taken from.
restore_all() { # what
	local id n=0
	for id in $(snap_ids); do
		rm -rf "$SCRATCH/r"
		expect_rc 0 cairn restore "$id" --target "$SCRATCH/r"
		[[ -f $DIG/$id ]] || fail "no digest for snapshot $id"
		[[ $(tree_digest "$SCRATCH/r$SRC") == "$(cat "$DIG/$id")" ]] ||
			fail "$1: snapshot ${id:0:8} does not restore identical"
		n=$((n + 1))
	done
	rm -rf "$SCRATCH/r"
	ok "$1: all $n snapshots restore identical"
}

make_tree "$SRC" 12
backup_src
for s in 1 2 3; do
	change_src "$s"
	backup_src
done
[[ $(snap_ids | wc -l) == 4 ]] || fail "expected 4 snapshots"
ok "four backups with changes"

# ---- forget ------------------------------------------------------------------
before=$(find "$CAIRN_REPOSITORY" -type f | sort | sha256sum)
expect_rc 0 cairn forget --keep-last 2 --dry-run
expect_stdout_grep 'keep .*last'
expect_stdout_grep 'remove '
[[ $(snap_ids | wc -l) == 4 ]] || fail "forget --dry-run removed snapshots"
[[ $(find "$CAIRN_REPOSITORY" -type f | sort | sha256sum) == "$before" ]] ||
	fail "forget --dry-run changed the repository"
ok "forget --keep-last 2 --dry-run lists keep/remove and changes nothing"

expect_rc 2 cairn forget
expect_rc 2 cairn forget --keep-last 0
expect_rc 2 cairn prune --max-unused 200
ok "usage errors: forget needs a policy, --keep-last 0, --max-unused 200"

expect_rc 0 cairn forget --keep-last 2 --json
is_json "$LAST_OUT" || fail "forget --json is not JSON: $(cat "$LAST_OUT")"
[[ $(snap_ids | wc -l) == 2 ]] || fail "forget --keep-last 2 left $(snap_ids | wc -l) snapshots"
ok "forget --keep-last 2 leaves two snapshots (JSON output parses)"

# ---- prune -------------------------------------------------------------------
size0=$(repo_bytes)
expect_rc 0 cairn prune --dry-run
[[ $(repo_bytes) == "$size0" ]] || fail "prune --dry-run changed the repository's size"
ok "prune --dry-run deletes nothing"

expect_rc 0 cairn prune --json
is_json "$LAST_OUT" || fail "prune --json is not JSON"
size1=$(repo_bytes)
((size1 < size0)) || fail "prune did not shrink the repository ($size0 -> $size1)"
echo "# repository: $size0 -> $size1 bytes"
ok "prune shrinks the repository"
expect_rc 0 cairn check --read-data
ok "check --read-data passes after prune"
restore_all "after prune"

# New garbage, partly inside packs that stay in use.
change_src 4
backup_src
expect_rc 0 cairn forget --keep-last 2
expect_rc 0 cairn prune --max-unused 100 --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_repacked"]==0, v' "$LAST_OUT" ||
	fail "prune --max-unused 100 repacked: $(cat "$LAST_OUT")"
size1=$(repo_bytes)
expect_rc 0 cairn prune --max-unused 0 --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_repacked"]>0 and v["blobs_repacked"]>0, v' "$LAST_OUT" ||
	fail "prune --max-unused 0 repacked nothing: $(cat "$LAST_OUT")"
size2=$(repo_bytes)
((size2 < size1)) || fail "repacking did not shrink the repository ($size1 -> $size2)"
expect_rc 0 cairn check --read-data
restore_all "after repacking"
# A second run has nothing left to do.
expect_rc 0 cairn prune --max-unused 0 --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_repacked"]==0 and v["packs_deleted"]==0, v' "$LAST_OUT" ||
	fail "a second prune still found work: $(cat "$LAST_OUT")"
ok "prune --max-unused 0 repacks partly used packs; a second run finds nothing"

# ---- another host's cache after a prune ----------------------------------------
# Host B's cache merged everything before the prune, including (the prune
# killed before its deletions) the new copies of the repacked blobs while
# their old index objects still existed. After the prune completes, B drops
# exactly the locations of the deleted index objects, without a rebuild,
# and still finds every blob: kept snapshots restore through its cache and a
# backup of unchanged files stores almost nothing.
CACHE_B=$SCRATCH/cache-b
change_src 7
backup_src
expect_rc 0 cairn forget --keep-last 2
CAIRN_CACHE_DIR=$CACHE_B expect_rc 0 cairn snapshots
CAIRN_TEST_PRUNE_KILL=window run_rc cairn prune --max-unused 0
[[ $LAST_RC == 137 ]] || fail "prune was not killed before its window (exit $LAST_RC)"
expect_rc 0 cairn unlock --stale
CAIRN_CACHE_DIR=$CACHE_B expect_rc 0 cairn snapshots
expect_rc 0 cairn prune --max-unused 0 --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_repacked"]+v["packs_deleted"]>0, v' "$LAST_OUT" ||
	fail "the prune after the killed one deleted nothing: $(cat "$LAST_OUT")"
CAIRN_CACHE_DIR=$CACHE_B expect_rc 0 cairn -v snapshots
grep -q "are gone: forgot their locations" "$LAST_ERR" || fail "host B did not forget the deleted index objects: $(cat "$LAST_ERR")"
! grep -q "rebuilding" "$LAST_ERR" || fail "host B rebuilt its cache after prune: $(cat "$LAST_ERR")"
for id in $(snap_ids); do
	rm -rf "$SCRATCH/r"
	CAIRN_CACHE_DIR=$CACHE_B expect_rc 0 cairn restore "$id" --target "$SCRATCH/r"
	[[ $(tree_digest "$SCRATCH/r$SRC") == "$(cat "$DIG/$id")" ]] ||
		fail "host B: snapshot ${id:0:8} does not restore identical after prune"
done
rm -rf "$SCRATCH/r"
size_b=$(repo_bytes)
CAIRN_CACHE_DIR=$CACHE_B expect_rc 0 cairn backup "$SRC"
grow=$(($(repo_bytes) - size_b))
((grow < 200000)) || fail "host B stored $grow bytes again for unchanged files after prune"
id=$(cairn snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
tree_digest "$SRC" >"$DIG/$id"
! grep -q "rebuilding" "$LAST_ERR" || fail "host B rebuilt its cache: $(cat "$LAST_ERR")"
expect_rc 0 cairn check --read-data
ok "host B's cache follows a prune without a rebuild (restores, dedups: +$grow bytes)"

# ---- prune killed with kill -9 at each of its steps -------------------------------
# CAIRN_TEST_PRUNE_KILL=STEP[:N] makes prune SIGKILL itself the N-th time it
# reaches STEP (repo/prune.h names them): before marking, scanning the
# index, planning, repacking, writing replacement index objects, catching
# up with writers, inside the exclusive window, before the first (and the
# second) index object or pack it deletes, and at the end.
k=0
for at in mark scan plan repack rewrite catchup window delete-index:1 delete-index:2 \
	delete-pack:1 delete-pack:2 done; do
	k=$((k + 1))
	change_src "$((k + 10))"
	backup_src
	expect_rc 0 cairn forget --keep-last 2
	CAIRN_TEST_PRUNE_KILL=$at run_rc cairn prune --max-unused 0
	if [[ $LAST_RC != 137 ]]; then
		# The second delete of a kind may not exist; every other step must.
		[[ $at == *:2 && $LAST_RC == 0 ]] || fail "prune was not killed at $at (exit $LAST_RC): $(cat "$LAST_ERR")"
		echo "# prune did not reach $at (nothing to delete a second time)"
	fi
	expect_rc 0 cairn unlock --stale
	expect_rc 0 cairn check
	restore_all "prune killed at $at"
done
expect_rc 0 cairn prune --max-unused 0
expect_rc 0 cairn check --read-data
restore_all "a full prune after the killed ones"
ok "prune killed with kill -9 at each of its steps: check passes, snapshots restore"

# ---- a writer holds its lease: prune works beside it, deletes only once it ends --
change_src 40
backup_src
expect_rc 0 cairn forget --keep-last 2
rm -f "$SCRATCH/fifo"
mkfifo "$SCRATCH/fifo"
"$CAIRN_BIN" backup --stdin --stdin-name held <"$SCRATCH/fifo" >"$SCRATCH/held.out" 2>&1 &
held=$!
exec 3>"$SCRATCH/fifo"
printf 'bytes\n' >&3
for ((i = 0; i < 200; i++)); do
	[[ -n $(ls "$CAIRN_REPOSITORY/locks" 2>/dev/null) ]] && break
	sleep 0.05
done
size0=$(repo_bytes)
expect_rc 1 cairn prune --lock-wait 2s
expect_stderr_grep 'no moment without writers'
expect_stderr_grep "$(hostname)"
expect_stderr_grep "pid $held|$held"
expect_rc 0 cairn check
ok "prune gives up after --lock-wait while a backup holds its lease, naming host and pid"
# With time to wait, prune finishes once the backup ends.
"$CAIRN_BIN" prune --json >"$SCRATCH/prune.json" 2>"$SCRATCH/prune.err" 3>&- &
pruning=$!
sleep 1
printf 'more\n' >&3
exec 3>&-
wait "$held" || fail "the held backup failed: $(cat "$SCRATCH/held.out")"
wait "$pruning" || fail "prune failed after the backup ended: $(cat "$SCRATCH/prune.err")"
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["packs_deleted"]>0, v' "$SCRATCH/prune.json" ||
	fail "prune deleted nothing: $(cat "$SCRATCH/prune.json")"
(($(repo_bytes) < size0)) || fail "prune did not shrink the repository"
expect_rc 0 cairn check
id=$(cairn snapshots --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if "held" in json.dumps(s)][-1])')
rm -rf "$SCRATCH/held"
expect_rc 0 cairn restore "$id" --target "$SCRATCH/held"
[[ $(cat "$SCRATCH/held/held") == $'bytes\nmore' ]] || fail "the held backup does not restore"
ok "prune deletes once the backup ends; the backup's snapshot restores"

finish
