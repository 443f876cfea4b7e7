#!/usr/bin/env bash
# t_diskfull.sh — the repository's file system fills up during a backup.
# The backup must fail (exit 1, "no space"), write no snapshot, and leave a
# repository that passes check; with space again, backups work.  A sweep
# then runs out of space at every 4 KiB step around the end of a backup
# (last pack, index object, snapshot object): each backup either succeeds
# whole or fails with no snapshot, check passes every time, and the retry
# with space again succeeds.
# Needs root (mount -t tmpfs); skipped otherwise.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

MNT=$SCRATCH/mnt
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=20m,mode=0755 tmpfs "$MNT" 2>"$SCRATCH/mount.err"; then
	skip_all "cannot mount a tmpfs (not root, or no permission): $(cat "$SCRATCH/mount.err")"
fi
T_MOUNTS+=("$MNT")
export CAIRN_REPOSITORY=$MNT/repo

SRC=$SCRATCH/src
mkdir -p "$SRC"
for i in 0 1 2; do
	rand_bytes $((20 * 1024 * 1024)) "full-$i" >"$SRC/data-$i.bin"
done

expect_rc 0 cairn init
ok "init on a 20 MiB tmpfs"

expect_rc 1 cairn backup "$SRC"
expect_stderr_grep 'No space left|no space'
expect_stderr_grep '^hint: free space'
[[ ! -s $LAST_OUT ]] || fail "a failed backup printed a snapshot line: $(cat "$LAST_OUT")"
ok "backup of 60 MiB into 20 MiB: exit 1, 'No space left on device' and a hint"
[[ -z $(find "$CAIRN_REPOSITORY" -name '.tmp-*') ]] ||
	echo "# note: .tmp- files left on disk: $(find "$CAIRN_REPOSITORY" -name '.tmp-*' | wc -l)"

expect_rc 0 cairn check
ok "check passes on the repository after the failed backup"
expect_rc 0 cairn snapshots --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 0 ]] ||
	fail "a snapshot was written: $(cat "$LAST_OUT")"
[[ -z $(find "$CAIRN_REPOSITORY" -path '*/snapshots/*' ! -name '.tmp-*' -type f) ]] ||
	fail "a snapshot object is on disk"
ok "no snapshot was written (snapshots shows 0)"

# The same file system still full: report what a small backup does.
mkdir -p "$SCRATCH/small"
rand_bytes 300000 small >"$SCRATCH/small/s.bin"
run_rc cairn backup "$SCRATCH/small"
echo "# a 300 KB backup on the full file system ($(df -k --output=avail "$MNT" | tail -1 | tr -d ' ') KiB free): exit $LAST_RC"
[[ $LAST_RC == 0 || $LAST_RC == 1 ]] || fail "small backup on a full file system: exit $LAST_RC"
expect_rc 0 cairn check
ok "a small backup on the nearly full file system: exit $LAST_RC, check still passes"

mount -o remount,size=200m "$MNT"
expect_rc 0 cairn backup "$SRC"
SNAP=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
ok "after growing the file system to 200 MiB, the 60 MiB backup works"
expect_rc 0 cairn restore "${SNAP:0:8}" --target "$SCRATCH/restore"
expect_same_tree "$SRC" "$SCRATCH/restore$SRC" "its restore is identical"
expect_rc 0 cairn check --read-data
ok "check --read-data passes"

# ---- sweep: run out of space at every step around the end of a backup ---
umount "$MNT"
mount -t tmpfs -o size=64m,mode=0755 tmpfs "$MNT"
rm -rf "$CAIRN_CACHE_DIR"
SW=$SCRATCH/sweep
mkdir -p "$SW"
rand_bytes $((2 * 1024 * 1024)) sweep-a >"$SW/a.bin"
text_bytes 400000 3 >"$SW/b.txt"
for i in $(seq 1 40); do rand_bytes $((i * 100)) "sw-$i" >"$SW/f$i"; done
expect_rc 0 cairn init
cp -a "$CAIRN_REPOSITORY" "$SCRATCH/empty-repo"
avail_kib() { df -k --output=avail "$MNT" | tail -1 | tr -d ' '; }
free0=$(avail_kib)
expect_rc 0 cairn backup "$SW"
need=$((free0 - $(avail_kib)))
echo "# a backup of the sweep tree takes $need KiB of the tmpfs"
rm -rf "$CAIRN_REPOSITORY"

# Leave (need - k*4) KiB free for k = -1..10: the last steps fail in the
# snapshot, the index object, then the packs.
succeeded=0
failed=0
for ((k = -1; k <= 10; k++)); do
	rm -rf "$CAIRN_REPOSITORY"
	rm -f "$MNT/filler"
	cp -a "$SCRATCH/empty-repo" "$CAIRN_REPOSITORY"
	free=$(avail_kib)
	leave=$((need - k * 4))
	fill=$((free - leave))
	if ((fill > 0)); then
		head -c $((fill * 1024)) /dev/zero >"$MNT/filler" 2>/dev/null || true
	fi
	run_rc cairn backup "$SW"
	rc=$LAST_RC
	cp "$LAST_ERR" "$SCRATCH/sweep.err"
	nsnap=0
	if [[ -d $CAIRN_REPOSITORY/snapshots ]]; then
		nsnap=$(find "$CAIRN_REPOSITORY/snapshots" -type f ! -name '.tmp-*' | wc -l)
	fi
	case $rc in
	0)
		succeeded=$((succeeded + 1))
		[[ $nsnap == 1 ]] || fail "sweep k=$k: backup exit 0 but $nsnap snapshot objects"
		rm -f "$MNT/filler"
		rm -rf "$SCRATCH/sweep-restore"
		expect_rc 0 cairn restore latest --target "$SCRATCH/sweep-restore"
		[[ $(tree_digest "$SW") == "$(tree_digest "$SCRATCH/sweep-restore$SW")" ]] ||
			fail "sweep k=$k: restore differs"
		;;
	1)
		failed=$((failed + 1))
		grep -Eq 'No space left|no space' "$SCRATCH/sweep.err" ||
			fail "sweep k=$k: backup failed but not for lack of space: $(cat "$SCRATCH/sweep.err")"
		[[ $nsnap == 0 ]] || fail "sweep k=$k: the failed backup left $nsnap snapshot object(s)"
		expect_rc 0 cairn check
		# With space again, the same backup in the same repository works
		# (what the failed one left behind is unreferenced or reused).
		rm -f "$MNT/filler"
		expect_rc 0 cairn backup "$SW"
		rm -rf "$SCRATCH/sweep-restore"
		expect_rc 0 cairn restore latest --target "$SCRATCH/sweep-restore"
		[[ $(tree_digest "$SW") == "$(tree_digest "$SCRATCH/sweep-restore$SW")" ]] ||
			fail "sweep k=$k: restore of the retried backup differs"
		;;
	*)
		cat "$SCRATCH/sweep.err"
		fail "sweep k=$k: backup exit $rc"
		;;
	esac
	where=$(grep -o 'storing object [a-z]*' "$SCRATCH/sweep.err" | awk '{print $3}' || true)
	expect_rc 0 cairn check
	echo "# sweep: $leave KiB free -> backup exit $rc${where:+ (failed storing $where)}; check ok"
done
ok "sweep: out of space at $((succeeded + failed)) points around the end of a backup: $succeeded succeeded whole, $failed failed with no snapshot; check passes every time, and a retry with space again succeeds and restores identical"
((failed > 0 && succeeded > 0)) || fail "the sweep did not cover both outcomes ($succeeded ok, $failed failed)"
ok "the sweep covers both outcomes"

finish
