#!/usr/bin/env bash
# t_repair.sh — cairn repair on a repository that lost two packs and an
# index object: the data pack of a backup of two files, the data pack of
# an archived WAL segment, and the index object of a later backup.  A
# backup made after the loss stores one of the two files again.
#
# repair --dry-run changes nothing.  repair rebuilds the index (the index
# objects naming the missing packs are dropped, the packs no index names
# are indexed from their directories), finds the re-stored file's blobs
# in the new pack, and reports exactly what cannot be recovered: the
# other files of that backup and the WAL segment (exit 3).  Afterwards the
# unaffected snapshots restore byte-identical, the damaged one restores
# everything but the lost file, a second repair changes nothing, and once
# a backup stores the lost file again the old snapshot is whole.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

DIG=$SCRATCH/digests
mkdir -p "$DIG"
expect_rc 0 cairn init

list_packs() { find "$CAIRN_REPOSITORY/packs" -type f ! -name '.tmp-*' | sort; }
list_index() { find "$CAIRN_REPOSITORY/index" -type f ! -name '.tmp-*' | sort; }
# Backs up DIR; prints the snapshot id, records the tree's digest.
backup() {
	expect_rc 0 cairn backup --json "$1"
	local id
	id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")
	tree_digest "$1" >"$DIG/$id"
	echo "$id"
}
# The largest pack among those listed in $2 but not in $1: the data pack
# a command wrote (its tree pack is small).
new_data_pack() {
	comm -13 "$1" "$2" | xargs ls -S | head -n 1
}
restores_identical() { # id dir
	rm -rf "$SCRATCH/r"
	expect_rc 0 cairn restore "$1" --target "$SCRATCH/r"
	[[ $(tree_digest "$SCRATCH/r$2") == "$(cat "$DIG/$1")" ]] || fail "snapshot ${1:0:8} does not restore identical"
}

mkdir -p "$SCRATCH/s1" "$SCRATCH/s2" "$SCRATCH/s3" "$SCRATCH/wal"
rand_bytes 900000 one >"$SCRATCH/s1/f1"
rand_bytes 800000 two-a >"$SCRATCH/s2/f2a"
rand_bytes 700000 two-b >"$SCRATCH/s2/f2b"
text_bytes 5000 2 >"$SCRATCH/s2/notes.txt"
rand_bytes 600000 three >"$SCRATCH/s3/f3"
SEG=000000010000000000000007
rand_bytes 3000000 seg >"$SCRATCH/wal/$SEG"

snap1=$(backup "$SCRATCH/s1")
list_packs >"$SCRATCH/p0"
snap2=$(backup "$SCRATCH/s2")
list_packs >"$SCRATCH/p1"
expect_rc 0 cairn archive-push --cluster main "$SCRATCH/wal/$SEG"
list_packs >"$SCRATCH/p2"
list_index >"$SCRATCH/i2"
snap3=$(backup "$SCRATCH/s3")
list_index >"$SCRATCH/i3"
pack2=$(new_data_pack "$SCRATCH/p0" "$SCRATCH/p1")
packw=$(new_data_pack "$SCRATCH/p1" "$SCRATCH/p2")
index3=$(comm -13 "$SCRATCH/i2" "$SCRATCH/i3")
[[ -n $pack2 && -n $packw && $(echo "$index3" | wc -l) == 1 ]] || fail "could not tell the packs and index object apart"
rm -f "$pack2" "$packw" "$index3"
ok "lost: the data pack of snapshot ${snap2:0:8}, that of WAL $SEG, and the index object of ${snap3:0:8}"

# A later backup holds f2a again (it finds the pack gone and stores it).
mkdir -p "$SCRATCH/again"
cp "$SCRATCH/s2/f2a" "$SCRATCH/again/"
snap4=$(backup "$SCRATCH/again")
expect_rc 3 cairn check
ok "check finds the damage before repair"

before=$(find "$CAIRN_REPOSITORY" -type f ! -path '*/locks/*' | sort | xargs sha256sum | sha256sum)
expect_rc 0 cairn repair --dry-run
expect_stdout_grep 'dry run'
[[ $(find "$CAIRN_REPOSITORY" -type f ! -path '*/locks/*' | sort | xargs sha256sum | sha256sum) == "$before" ]] ||
	fail "repair --dry-run changed the repository"
ok "repair --dry-run changes nothing"

expect_rc 3 cairn repair --json
is_json "$LAST_OUT" || fail "repair --json is not JSON: $(cat "$LAST_OUT")"
python3 - "$LAST_OUT" "$snap2" "$SEG" <<'EOF' || fail "repair did not report what it should: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
snap, seg = sys.argv[2], sys.argv[3]
assert v["packs_missing"] == 2, v
assert v["index_dropped"] >= 2, v
assert v["packs_indexed"] >= 2, v          # the tree packs of the dropped objects, snapshot 3's packs
assert v["blobs_recovered"] >= 1 and v["blobs_lost"] >= 2, v
scratch = __import__("os").environ["SCRATCH"]
damaged = sorted(l for l in v["lost"] if "is damaged" in l)
assert damaged == sorted([
    "cluster main: WAL file %s is damaged" % seg,
    "snapshot %s: file %s/s2/f2b is damaged" % (snap[:8], scratch),
    "snapshot %s: file %s/s2/notes.txt is damaged" % (snap[:8], scratch),
]), damaged
assert v["damaged_files"] == 2 and v["damaged_wal"] == 1, v
EOF
expect_stderr_grep 'cannot be recovered'
ok "repair reports exactly the lost files of ${snap2:0:8} (not f2a) and the lost WAL segment (exit 3)"

expect_rc 3 cairn check
restores_identical "$snap1" "$SCRATCH/s1"
restores_identical "$snap3" "$SCRATCH/s3"
restores_identical "$snap4" "$SCRATCH/again"
ok "after repair the unaffected snapshots restore byte-identical (${snap3:0:8} from its re-indexed packs)"
rm -rf "$SCRATCH/r"
expect_rc 3 cairn restore "$snap2" --target "$SCRATCH/r"
cmp -s "$SCRATCH/r$SCRATCH/s2/f2a" "$SCRATCH/s2/f2a" || fail "f2a (stored again by a later backup) does not restore"
[[ ! -e $SCRATCH/r$SCRATCH/s2/f2b && ! -e $SCRATCH/r$SCRATCH/s2/notes.txt ]] || fail "a lost file was written"
ok "snapshot ${snap2:0:8} restores all but the lost files (exit 3); f2a comes from the later backup"

expect_rc 3 cairn repair --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["index_dropped"]==0 and v["index_damaged"]==0 and v["packs_indexed"]==0 and v["damaged_files"]==2, v' "$LAST_OUT" ||
	fail "a second repair still changed things: $(cat "$LAST_OUT")"
[[ $(cairn snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 4 ]] ||
	fail "repair deleted a snapshot"
ok "a second repair changes nothing; no snapshot was deleted"

mkdir -p "$SCRATCH/back"
cp "$SCRATCH/s2/f2b" "$SCRATCH/s2/notes.txt" "$SCRATCH/back/"
backup "$SCRATCH/back" >/dev/null
expect_rc 3 cairn check
expect_stdout_grep "WAL file $SEG is damaged"
if grep -Eq '^snapshot [0-9a-f]{8}: ' "$LAST_OUT"; then
	fail "a snapshot is still damaged after a backup stored its files again: $(cat "$LAST_OUT")"
fi
restores_identical "$snap2" "$SCRATCH/s2"
ok "once a backup stores the lost files again, the old snapshot is whole"

# A damaged index object is dropped, once its packs are indexed from their
# directories.
idx1=$(list_index | head -n 1)
head -c 100 "$idx1" >"$SCRATCH/cut" && cat "$SCRATCH/cut" >"$idx1"
rm -rf "$CAIRN_CACHE_DIR" # (a cache that merged it before would not read it again)
expect_rc 3 cairn check
expect_stdout_grep 'index object'
expect_rc 3 cairn repair --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["index_damaged"]==1 and v["packs_indexed"]>=1 and v["damaged_files"]==0 and v["damaged_wal"]==1, v' "$LAST_OUT" ||
	fail "repair did not replace the damaged index object: $(cat "$LAST_OUT")"
[[ ! -e $idx1 ]] || fail "the damaged index object is still there"
restores_identical "$snap1" "$SCRATCH/s1"
restores_identical "$snap2" "$SCRATCH/s2"
restores_identical "$snap3" "$SCRATCH/s3"
ok "a damaged index object is dropped after its packs are indexed from their directories"

finish
