#!/usr/bin/env bash
# t_damage.sh — a damaged repository or cache: a flipped byte in a data
# pack, a truncated pack, a missing index object, a deleted cache and a
# cache overwritten with garbage.  Damage must be found by check
# --read-data (exit 3, naming the pack, the snapshot and the files), and
# restore must never write wrong bytes: damaged files are left out (exit 3),
# every other file restores intact.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SRC=$SCRATCH/src
mkdir -p "$SRC"
# Many small files (in 10 folders) and a few large ones.
for ((i = 0; i < 800; i++)); do
	d=$SRC/small/d$((i % 10))
	mkdir -p "$d"
	rand_bytes $((200 + (i * 7919) % 30000)) "small-$i" >"$d/f$i"
done
rand_bytes $((9 * 1024 * 1024)) big1 >"$SRC/big1.bin"
rand_bytes $((14 * 1024 * 1024)) big2 >"$SRC/big2.bin"
rand_bytes $((6 * 1024 * 1024 + 12345)) big3 >"$SRC/big3.bin"
text_bytes $((3 * 1024 * 1024)) 5 >"$SRC/log.txt"
NFILES=$(find "$SRC" -type f | wc -l)

expect_rc 0 cairn init
expect_rc 0 cairn backup "$SRC"
SNAP=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
[[ -n $SNAP ]] || fail "no snapshot id in the backup output"
expect_rc 0 cairn check --read-data
cp -a "$CAIRN_REPOSITORY" "$SCRATCH/pristine"
echo "# $NFILES files, repository $(repo_bytes) bytes in $(find "$CAIRN_REPOSITORY/packs" -type f | wc -l) packs, $(find "$CAIRN_REPOSITORY/index" -type f | wc -l) index object(s)"
ok "set up: snapshot ${SNAP:0:8} of $NFILES files, check --read-data passes"

reset_repo() {
	rm -rf "$CAIRN_REPOSITORY"
	cp -a "$SCRATCH/pristine" "$CAIRN_REPOSITORY"
}

biggest_pack() {
	find "$CAIRN_REPOSITORY/packs" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2
}

# sha256 and path of every file below $1, paths relative to it, sorted.
manifest() {
	(cd "$1" && find . -type f -print0 | xargs -0 -r sha256sum) | LC_ALL=C sort
}
manifest "$SRC" >"$SCRATCH/src.manifest"

# restore_invariants TARGET WHAT: every file restored equals its original
# (same path, same sha256); prints the number of files missing from the
# target.
restore_invariants() {
	local target=$1 what=$2 restored wrong
	manifest "$target$SRC" >"$SCRATCH/target.manifest"
	wrong=$(LC_ALL=C comm -13 "$SCRATCH/src.manifest" "$SCRATCH/target.manifest")
	[[ -z $wrong ]] || fail "$what: restored file(s) with WRONG BYTES or not in the source: $(echo "$wrong" | awk 'NR <= 5')"
	restored=$(wc -l <"$SCRATCH/target.manifest")
	echo $((NFILES - restored))
}

# damaged_paths FILE: the file paths a check output reports damaged.
damaged_paths() {
	sed -n "s/^snapshot [0-9a-f]\{8\}: file \(.*\) is damaged$/\1/p" "$1" | sort -u
}

# ---- 1. one byte flipped in the middle of a data pack ---------------------
reset_repo
PACK=$(biggest_pack)
PACKID=$(basename "$PACK")
size=$(stat -c %s "$PACK")
off=$((size / 2))
orig=$(od -An -tx1 -j "$off" -N1 "$PACK" | tr -d ' ')
printf "\\x$(printf %02x $((0x$orig ^ 0x5a)))" | dd of="$PACK" bs=1 seek="$off" conv=notrunc status=none
[[ $(od -An -tx1 -j "$off" -N1 "$PACK" | tr -d ' ') != "$orig" ]] || fail "the byte was not flipped"
echo "# flipped byte $off of pack ${PACKID:0:16} ($size bytes)"

run_rc cairn check
echo "# check (structure only) on a pack with a flipped byte: exit $LAST_RC: $(tail -1 "$LAST_OUT")"
[[ $LAST_RC == 0 || $LAST_RC == 3 ]] || fail "check (structure only) exit $LAST_RC"
ok "check without --read-data does not read pack contents: exit $LAST_RC"

expect_rc 3 cairn check --read-data
cp "$LAST_OUT" "$SCRATCH/check1.out"
grep -q "$PACKID" "$SCRATCH/check1.out" || fail "check --read-data does not name the damaged pack $PACKID"
grep -q "snapshot ${SNAP:0:8}" "$SCRATCH/check1.out" || fail "check --read-data does not name the snapshot ${SNAP:0:8}"
damaged_paths "$SCRATCH/check1.out" >"$SCRATCH/damaged1"
[[ -s $SCRATCH/damaged1 ]] || fail "check --read-data names no damaged file"
while IFS= read -r p; do
	[[ $p == "$SRC"/* && -f $p ]] || fail "check names '$p' as damaged: not a file of the source"
done <"$SCRATCH/damaged1"
expect_stdout_grep 'DAMAGE FOUND'
expect_stderr_grep 'damaged pack'
ok "check --read-data: exit 3, names pack ${PACKID:0:8}, snapshot ${SNAP:0:8} and $(wc -l <"$SCRATCH/damaged1") file(s): $(head -c 200 "$SCRATCH/damaged1" | tr '\n' ' ')"

expect_rc 3 cairn restore latest --target "$SCRATCH/r1"
cp "$LAST_ERR" "$SCRATCH/restore1.err"
missing=$(restore_invariants "$SCRATCH/r1" "flipped byte")
ok "restore exits 3 and every file it restored is byte-identical to the original"
ndam=$(wc -l <"$SCRATCH/damaged1")
[[ $missing == "$ndam" ]] || fail "restore left out $missing file(s), check named $ndam"
while IFS= read -r p; do
	[[ ! -e $SCRATCH/r1$p ]] || fail "damaged file $p exists in the restore target"
	grep -qF "not restored: $p:" "$SCRATCH/restore1.err" || fail "restore does not warn about $p"
done <"$SCRATCH/damaged1"
ok "the damaged files (and only they: $missing) are absent from the target, each with a warning"
expect_stdout_grep 'some damaged files were NOT restored'
ok "restore's summary says damaged files were not restored"

# a file check did not name restores even with --include, exit 0
good=$(find "$SRC" -type f | grep -vxF -f "$SCRATCH/damaged1" | awk "NR == 1")
expect_rc 0 cairn restore latest --target "$SCRATCH/r1b" --include "$good"
cmp -s "$good" "$SCRATCH/r1b$good" || fail "--include of an unaffected file"
bad=$(head -1 "$SCRATCH/damaged1")
expect_rc 3 cairn restore latest --target "$SCRATCH/r1c" --include "$bad"
[[ ! -e $SCRATCH/r1c$bad ]] || fail "--include of a damaged file wrote it"
expect_rc 3 cairn cat latest "$bad"
ok "restore --include: unaffected file exit 0, damaged file exit 3 and absent; cat of it exits 3"

# ---- 2. a truncated pack --------------------------------------------------
reset_repo
PACK=$(biggest_pack)
PACKID=$(basename "$PACK")
size=$(stat -c %s "$PACK")
truncate -s $((size / 2)) "$PACK"
run_rc cairn check
echo "# check (structure only) on a truncated pack: exit $LAST_RC: $(tail -1 "$LAST_OUT")"
[[ $LAST_RC == 0 || $LAST_RC == 3 ]] || fail "check (structure only) on a truncated pack: exit $LAST_RC"
ok "check without --read-data on a truncated pack: exit $LAST_RC"
expect_rc 3 cairn check --read-data
cp "$LAST_OUT" "$SCRATCH/check2.out"
grep -q "$PACKID" "$SCRATCH/check2.out" || fail "check --read-data does not name the truncated pack"
damaged_paths "$SCRATCH/check2.out" >"$SCRATCH/damaged2"
[[ -s $SCRATCH/damaged2 ]] || fail "check --read-data names no damaged file for a truncated pack"
ok "truncated pack: check --read-data exits 3 naming the pack and $(wc -l <"$SCRATCH/damaged2") file(s)"
expect_rc 3 cairn restore latest --target "$SCRATCH/r2"
missing=$(restore_invariants "$SCRATCH/r2" "truncated pack")
[[ $missing == "$(wc -l <"$SCRATCH/damaged2")" ]] ||
	fail "truncated pack: restore left out $missing file(s), check named $(wc -l <"$SCRATCH/damaged2")"
ok "truncated pack: restore exits 3, restores the other files intact, leaves out $missing"

# ---- 3. the pack holding the trees is damaged -------------------------
reset_repo
# The smallest pack holds the tree blobs (trees and data go to separate packs).
TPACK=$(find "$CAIRN_REPOSITORY/packs" -type f -printf '%s %p\n' | sort -n | awk "NR == 1" | cut -d' ' -f2)
tsize=$(stat -c %s "$TPACK")
printf '\x00\x00\x00\x00' | dd of="$TPACK" bs=1 seek=$((tsize / 3)) conv=notrunc status=none
run_rc cairn check
echo "# check (structure only) with the tree pack damaged: exit $LAST_RC"
cp "$LAST_OUT" "$SCRATCH/check3.out"
if grep -q 'folder' "$SCRATCH/check3.out"; then
	[[ $LAST_RC == 3 ]] || fail "check reports a damaged folder but exits $LAST_RC"
	ok "damaged tree pack: check (structure) reads the trees and exits 3 naming the folder"
	expect_rc 3 cairn restore latest --target "$SCRATCH/r3"
	missing=$(restore_invariants "$SCRATCH/r3" "damaged tree pack")
	ok "damaged tree pack: restore exits 3, everything it restored is intact ($missing files left out)"
else
	# The damaged bytes hit no tree blob (e.g. padding); then all is well.
	[[ $LAST_RC == 0 ]] || fail "check exits $LAST_RC but names no folder"
	expect_rc 3 cairn check --read-data
	ok "damaged tree pack outside any tree blob: check passes, --read-data exits 3"
fi

mkdir -p "$SCRATCH/src2"
rand_bytes 3000000 second >"$SCRATCH/src2/second.bin"

# ---- 3b. a damaged snapshot object ------------------------------------
reset_repo
expect_rc 0 cairn backup "$SCRATCH/src2"
SNAPOBJ=$CAIRN_REPOSITORY/snapshots/$SNAP
[[ -f $SNAPOBJ ]] || SNAPOBJ=$(find "$CAIRN_REPOSITORY/snapshots" -type f -name "$SNAP*" | awk 'NR == 1')
[[ -f $SNAPOBJ ]] || fail "cannot find the snapshot object of ${SNAP:0:8} under snapshots/"
ssize=$(stat -c %s "$SNAPOBJ")
printf '\x00\xff' | dd of="$SNAPOBJ" bs=1 seek=$((ssize / 2)) conv=notrunc status=none
expect_rc 0 cairn snapshots
expect_stdout_grep '^1 snapshot\(s\)$'
expect_stderr_grep "snapshot ${SNAP:0:8}[0-9a-f]* cannot be read"
ok "damaged snapshot object: snapshots warns about it and lists the other one (exit 0)"
expect_rc 3 cairn check
grep -q "${SNAP:0:8}" "$LAST_OUT" "$LAST_ERR" || fail "check does not name the damaged snapshot ${SNAP:0:8}"
ok "damaged snapshot object: check exits 3 naming it"
expect_rc 1 cairn restore "${SNAP:0:8}" --target "$SCRATCH/r3b"
ok "damaged snapshot object: restore of it fails (exit 1, it cannot be found)"

# ---- 4. a missing index object ------------------------------------------
reset_repo
# A second snapshot, so that there are two index objects.
expect_rc 0 cairn backup "$SCRATCH/src2"
expect_rc 0 cairn check
n_index=$(find "$CAIRN_REPOSITORY/index" -type f | wc -l)
((n_index >= 2)) || fail "expected two index objects, found $n_index"
# The index object of the first snapshot is the one the pristine copy has.
IDX=$(find "$SCRATCH/pristine/index" -type f -printf '%f\n' | awk "NR == 1")
rm "$CAIRN_REPOSITORY/index/$IDX"
expect_rc 3 cairn check
cp "$LAST_OUT" "$SCRATCH/check4.out"
grep -Eq 'not in (the index|any existing pack)|missing' "$SCRATCH/check4.out" ||
	fail "check does not say what is missing: $(cat "$SCRATCH/check4.out")"
grep -q "snapshot ${SNAP:0:8}" "$SCRATCH/check4.out" || fail "check does not name snapshot ${SNAP:0:8}"
ok "missing index object: check exits 3, reports the blobs as missing ($(head -1 "$SCRATCH/check4.out" | cut -c1-90)...)"
expect_rc 3 cairn check --read-data
ok "missing index object: check --read-data exits 3 too"
run_rc cairn restore "${SNAP:0:8}" --target "$SCRATCH/r4"
echo "# restore of the snapshot whose index object is gone: exit $LAST_RC: $(tail -1 "$LAST_ERR")"
[[ $LAST_RC == 3 ]] || fail "restore of a snapshot whose index object is gone: exit $LAST_RC (expected 3)"
if [[ -d $SCRATCH/r4$SRC ]]; then
	restore_invariants "$SCRATCH/r4" "missing index" >/dev/null
fi
ok "missing index object: restore of that snapshot exits 3 and writes no wrong bytes"
expect_rc 0 cairn restore latest --target "$SCRATCH/r4b"
cmp -s "$SCRATCH/src2/second.bin" "$SCRATCH/r4b$SCRATCH/src2/second.bin" || fail "the other snapshot does not restore"
ok "missing index object: the snapshot indexed elsewhere still restores (exit 0)"
# A new backup of the same data must not reference the unindexed blobs.
expect_rc 0 cairn backup "$SRC"
NEWSNAP=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
expect_rc 0 cairn restore "${NEWSNAP:0:8}" --target "$SCRATCH/r4c"
expect_same_tree "$SRC" "$SCRATCH/r4c$SRC" "missing index object: a new backup of the same data stores it again and restores identical"
expect_rc 3 cairn check
ok "missing index object: check still exits 3 for the old snapshot (repair is a later feature)"

# ---- 5. the cache deleted --------------------------------------------
reset_repo
rm -rf "$CAIRN_CACHE_DIR"
expect_rc 0 cairn snapshots
expect_stdout_grep '^1 snapshot\(s\)$'
[[ -d $CAIRN_CACHE_DIR ]] || fail "no cache folder was recreated"
ok "deleted cache: snapshots works and recreates the cache"
rm -rf "$CAIRN_CACHE_DIR"
size_before=$(repo_bytes)
expect_rc 0 cairn backup "$SRC"
size_after=$(repo_bytes)
growth=$((size_after - size_before))
((growth * 100 < size_before)) || fail "backup after deleting the cache re-stored the data: +$growth bytes"
ok "deleted cache: a backup works and still deduplicates (cache rebuilt from index/, +$growth bytes)"
rm -rf "$CAIRN_CACHE_DIR"
expect_rc 0 cairn restore latest --target "$SCRATCH/r5"
expect_same_tree "$SRC" "$SCRATCH/r5$SRC" "deleted cache: restore is identical"
rm -rf "$CAIRN_CACHE_DIR"
expect_rc 0 cairn check --read-data
ok "deleted cache: check --read-data passes"

# ---- 6. garbage over the cache's data.mdb ---------------------------
reset_repo
expect_rc 0 cairn snapshots
MDB=$(find "$CAIRN_CACHE_DIR" -name data.mdb | awk "NR == 1")
[[ -n $MDB ]] || fail "no data.mdb in the cache"
msize=$(stat -c %s "$MDB")
rand_bytes "$msize" garbage >"$MDB"
expect_rc 0 cairn -v snapshots
expect_stdout_grep '^1 snapshot\(s\)$'
expect_stderr_grep 'rebuild'
ok "garbage over data.mdb: snapshots works, says the cache is rebuilt (with -v)"
rand_bytes "$msize" garbage2 >"$MDB"
expect_rc 0 cairn restore latest --target "$SCRATCH/r6"
expect_same_tree "$SRC" "$SCRATCH/r6$SRC" "garbage over data.mdb: restore is identical"
rand_bytes 5000 garbage3 >"$MDB"
size_before=$(repo_bytes)
expect_rc 0 cairn backup "$SRC"
size_after=$(repo_bytes)
((size_after - size_before < size_before / 100)) || fail "backup after a garbage cache re-stored the data"
ok "garbage (short file) over data.mdb: backup works and deduplicates"
: >"$MDB"
expect_rc 0 cairn check --read-data
ok "empty data.mdb: check --read-data passes"
printf 'garbage' >"$(dirname "$MDB")/lock.mdb"
expect_rc 0 cairn check
ok "garbage over lock.mdb: check passes"

# For the report only (a documented limit of LMDB, see repo/cache.c):
# garbage inside the data pages with intact meta pages.
reset_repo
expect_rc 0 cairn snapshots
msize=$(stat -c %s "$MDB")
if ((msize > 3 * 4096)); then
	rand_bytes $((msize - 2 * 4096)) garbage4 | dd of="$MDB" bs=4096 seek=2 conv=notrunc status=none
	# Not run_rc: a crash here (SIGBUS inside LMDB, also reported by ASan)
	# is the documented limit, so it is reported, not failed.
	rc=0
	cairn restore latest --target "$SCRATCH/r7" >"$LAST_OUT" 2>"$LAST_ERR" || rc=$?
	how=$(grep -Eo 'AddressSanitizer: [A-Z]+|Bus error|Segmentation fault' "$LAST_ERR" | awk 'NR == 1' || true)
	echo "# info: garbage in data.mdb pages (meta pages intact): restore exit $rc${how:+ ($how)}: $(grep -v '^ ' "$LAST_ERR" | tail -1 || true)"
	rc2=0
	cairn snapshots >/dev/null 2>&1 || rc2=$?
	echo "# info: ... the next command (snapshots) exits $rc2"
	if [[ -d $SCRATCH/r7$SRC ]]; then
		restore_invariants "$SCRATCH/r7" "garbage data pages" >/dev/null
	fi
	ok "garbage in the cache's data pages (documented LMDB limit): restore (exit $rc) writes no wrong bytes"
	rm -rf "$CAIRN_CACHE_DIR"
	expect_rc 0 cairn restore latest --target "$SCRATCH/r7b"
	expect_same_tree "$SRC" "$SCRATCH/r7b$SRC" "... and once the cache is deleted, restore is identical"
fi

finish
