#!/usr/bin/env bash
# t_basic.sh — the everyday commands end to end: init, backup, snapshots,
# ls, cat, restore (--force, --include), dedup of an unchanged tree,
# backup --stdin, stats, key add/list/remove/passwd, usage errors, help.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SRC=$SCRATCH/src
T0=$(now_s)
make_tree "$SRC" 50
echo "# generated a $(du -sh "$SRC" | cut -f1) tree in $(elapsed "$T0" "$(now_s)") s"

# ---- init ----------------------------------------------------------------
expect_rc 0 cairn init
expect_stdout_grep 'created cairn repository [0-9a-f]{8}'
[[ -f $CAIRN_REPOSITORY/config ]] || fail "init wrote no config"
ok "init creates a repository"

before=$(find "$CAIRN_REPOSITORY" -printf '%P %s\n' | sort)
expect_rc 1 cairn init
expect_stderr_grep 'already a (cairn )?repository'
[[ $before == "$(find "$CAIRN_REPOSITORY" -printf '%P %s\n' | sort)" ]] ||
	fail "a refused init changed the repository"
ok "init again refuses (exit 1, 'already a repository'), repository unchanged"

# ---- backup --------------------------------------------------------------
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
echo "# first backup of 50 MiB: $(elapsed "$T0" "$(now_s)") s"
expect_stdout_grep '^snapshot [0-9a-f]{64} saved'
SNAP1=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
ok "backup of a 50 MiB tree"

# ---- snapshots -----------------------------------------------------------
expect_rc 0 cairn snapshots
expect_stdout_grep "^${SNAP1:0:8} "
expect_stdout_grep '^1 snapshot\(s\)$'
grep -qF "$SRC" "$LAST_OUT" || fail "snapshots does not show the path $SRC"
ok "snapshots lists the snapshot with its path"

expect_rc 0 cairn snapshots --json
cp "$LAST_OUT" "$SCRATCH/snaps.json"
is_json "$SCRATCH/snaps.json" || fail "snapshots --json is not valid JSON: $(head -c 400 "$SCRATCH/snaps.json")"
python3 - "$SCRATCH/snaps.json" "$SNAP1" "$SRC" <<'EOF' || fail "snapshots --json content"
import json, sys
v = json.load(open(sys.argv[1]))
assert isinstance(v, list) and len(v) == 1, v
s = v[0]
assert s["id"] == sys.argv[2], s
assert s["short_id"] == sys.argv[2][:8], s
assert s["paths"] == [sys.argv[3]], s
assert s["incomplete"] is False, s
assert s["files"] > 200, s
EOF
ok "snapshots --json is valid JSON with id, paths, incomplete=false"

# ---- ls ------------------------------------------------------------------
expect_rc 0 cairn ls latest
n_src=$(find "$SRC" -mindepth 1 | wc -l)
for p in "$SRC/large/big-1.bin" "$SRC/empty-file" "$SRC/deep/a/b/c/d/e/leaf.txt" \
	"$SRC/text/with space and ünïcode.txt" "$SRC/empty dir"; do
	grep -qF " $p" "$LAST_OUT" || fail "ls does not list $p"
done
grep -qF "$SRC/link-to-doc -> text/doc-0.txt" "$LAST_OUT" || fail "ls does not show the symlink target"
n_ls=$(grep -cF " $SRC/" "$LAST_OUT")
[[ $n_ls == "$n_src" ]] || fail "ls lists $n_ls entries below $SRC, the source has $n_src"
ok "ls lists every entry ($n_src) with symlink targets"

expect_rc 0 cairn ls --json latest "$SRC/deep"
cp "$LAST_OUT" "$SCRATCH/ls.json"
is_json "$SCRATCH/ls.json" || fail "ls --json is not valid JSON"
python3 - "$SCRATCH/ls.json" "$SRC" <<'EOF' || fail "ls --json content"
import json, sys
v = json.load(open(sys.argv[1]))
paths = [e["path"] for e in v]
src = sys.argv[2]
assert paths[0] == src + "/deep", paths
assert src + "/deep/a/b/c/d/e/leaf.txt" in paths, paths
assert all(p.startswith(src + "/deep") for p in paths), paths
EOF
ok "ls --json of a sub-path is valid JSON and only that sub-tree"

expect_rc 1 cairn ls latest "$SRC/no/such/path"
expect_stderr_grep 'no .*no/such/path'
ok "ls of a missing path fails (exit 1) naming it"

# ---- cat -----------------------------------------------------------------
for f in large/big-2.bin text/doc-0.txt empty-file "text/with space and ünïcode.txt"; do
	expect_rc 0 cairn cat latest "$SRC/$f"
	cmp -s "$LAST_OUT" "$SRC/$f" || fail "cat $f differs from the original"
done
ok "cat of files (large, text, empty, odd name) equals the originals"

expect_rc 0 cairn cat "${SNAP1:0:8}" "$SRC/text/doc-0.txt"
cmp -s "$LAST_OUT" "$SRC/text/doc-0.txt" || fail "cat by short id differs"
ok "a snapshot named by its 8-digit prefix works"

expect_rc 2 cairn ls "${SNAP1:0:7}"
expect_stderr_grep 'at least 8 hex digits'
expect_rc 1 cairn ls deadbeef
expect_stderr_grep 'no snapshot deadbeef'
ok "a 7-digit prefix is refused (exit 2); an unknown id fails (exit 1)"

expect_rc 2 cairn cat latest "$SRC/deep"
expect_stderr_grep "is not a file"
ok "cat of a folder is refused (exit 2, not a file)"

# ---- restore -------------------------------------------------------------
T0=$(now_s)
expect_rc 0 cairn restore latest --target "$SCRATCH/r1"
echo "# restore of 50 MiB: $(elapsed "$T0" "$(now_s)") s"
expect_same_tree "$SRC" "$SCRATCH/r1$SRC" "restore to a new folder is identical (content, modes, symlinks)"

# mtimes of files and symlinks come back to the nanosecond
diff <(cd "$SRC" && find . ! -type d -printf '%P %T@\n' | sort) \
	<(cd "$SCRATCH/r1$SRC" && find . ! -type d -printf '%P %T@\n' | sort) >"$SCRATCH/mtimes.diff" ||
	{ head "$SCRATCH/mtimes.diff"; fail "restored modification times differ"; }
ok "restored files and symlinks keep their modification times"

mkdir "$SCRATCH/r2"
echo "precious" >"$SCRATCH/r2/keep.txt"
expect_rc 2 cairn restore latest --target "$SCRATCH/r2"
expect_stderr_grep 'not empty'
[[ $(ls -A "$SCRATCH/r2") == keep.txt && $(cat "$SCRATCH/r2/keep.txt") == precious ]] ||
	fail "a refused restore touched the target"
ok "restore into a non-empty folder refuses (exit 2) and touches nothing"

# --force over an older, partly different copy
mkdir -p "$SCRATCH/r2$SRC/text"
echo "stale" >"$SCRATCH/r2$SRC/text/doc-0.txt"
expect_rc 0 cairn restore latest --target "$SCRATCH/r2" --force
rm "$SCRATCH/r2/keep.txt"
expect_same_tree "$SRC" "$SCRATCH/r2$SRC" "restore --force into a non-empty folder replaces files"

# restore --force must never write outside its target, even where the
# target holds a symlink in place of a folder of the snapshot.
# KNOWN CAIRN BUG (repo/restore.c, restore_node, NODE_DIR branch):
# `mkdir(dst) != 0 && errno != EEXIST` accepts an existing *symlink* at dst,
# then restore_tree writes the folder's files through it, and set_meta
# chmod()s (follows the link) the folder it points to.  An existing dst
# should be lstat()ed: a real folder is reused, anything else replaced (with
# --force) or refused.
mkdir -p "$SCRATCH/outside" "$SCRATCH/r6$SRC"
chmod 711 "$SCRATCH/outside"
ln -s "$SCRATCH/outside" "$SCRATCH/r6$SRC/deep"
run_rc cairn restore latest --target "$SCRATCH/r6" --force --include "$SRC/deep"
if [[ -z $(ls -A "$SCRATCH/outside") && $(stat -c %a "$SCRATCH/outside") == 711 ]]; then
	ok "restore --force does not follow a symlink in the target (exit $LAST_RC)"
else
	bug "restore --force followed the symlink $SCRATCH/r6$SRC/deep -> $SCRATCH/outside: wrote $(find "$SCRATCH/outside" -type f | wc -l) file(s) outside the target and changed its mode 711 -> $(stat -c %a "$SCRATCH/outside") (repo/restore.c restore_node: mkdir EEXIST accepted without checking dst is a real folder)"
fi

expect_rc 0 cairn restore latest --target "$SCRATCH/r3" --include "$SRC/small/g3"
[[ -z $(find "$SCRATCH/r3" ! -type d ! -path "$SCRATCH/r3$SRC/small/g3/*") ]] ||
	fail "--include restored files outside $SRC/small/g3: $(find "$SCRATCH/r3" ! -type d ! -path "$SCRATCH/r3$SRC/small/g3/*" | awk "NR <= 3")"
expect_same_tree "$SRC/small/g3" "$SCRATCH/r3$SRC/small/g3" "--include restores only that path, identical"

expect_rc 0 cairn restore latest --target "$SCRATCH/r4" --include "$SRC/large/big-3.bin" --include "$SRC/link-to-doc"
[[ $(cd "$SCRATCH/r4" && find . ! -type d | sort | tr '\n' ' ') == "./${SRC#/}/large/big-3.bin ./${SRC#/}/link-to-doc " ]] ||
	fail "two --include of a file and a symlink: got $(cd "$SCRATCH/r4" && find . ! -type d)"
cmp -s "$SRC/large/big-3.bin" "$SCRATCH/r4$SRC/large/big-3.bin" || fail "--include file differs"
ok "--include of a single file and a symlink restores just those"

# KNOWN CAIRN BUG (repo/restore.c, repo_restore): the "no path of snapshot
# matches --include" error is only raised when st->files == 0 && st->dirs
# == 0, but the folders on the way to the include (here tmp/, the scratch
# folder and src/) are created and counted in st->dirs, so an --include
# that matches nothing exits 0 and leaves empty folders behind.
run_rc cairn restore latest --target "$SCRATCH/r5" --include "$SRC/not-there"
if [[ $LAST_RC == 1 ]] && grep -q 'matches --include' "$LAST_ERR"; then
	ok "--include matching nothing fails (exit 1)"
else
	bug "restore --include of a path not in the snapshot exits $LAST_RC (expected 1, 'no path ... matches --include'): repo/restore.c repo_restore counts the folders on the way in st->dirs"
fi

# ---- dedup: a second backup of the unchanged tree -----------------------
size1=$(repo_bytes)
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
echo "# second (unchanged) backup: $(elapsed "$T0" "$(now_s)") s"
size2=$(repo_bytes)
growth=$((size2 - size1))
echo "# repository: $size1 -> $size2 bytes (+$growth)"
((growth * 1000 < size1 * 5)) || fail "second backup of an unchanged tree added $growth bytes to $size1 (>= 0.5%)"
ok "second backup of the unchanged tree adds < 0.5% ($growth bytes)"

expect_rc 0 cairn snapshots --json
# Only the tree blobs of the folders on the way (the scratch folder's mtime
# changed with the restores) are new.
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert len(v)==2 and v[1]["bytes_new"] < 65536, v[1]' "$LAST_OUT" ||
	fail "second snapshot should report (almost) no new bytes: $(cat "$LAST_OUT")"
ok "second snapshot reports (almost) no new bytes"

# ---- backup --stdin ------------------------------------------------------
{ rand_bytes 3000000 dump; text_bytes 2000000 7; } >"$SCRATCH/x.dump"
expect_rc 0 cairn backup --stdin --stdin-name x.dump --tag dump <"$SCRATCH/x.dump"
expect_rc 0 cairn cat latest x.dump
cmp -s "$LAST_OUT" "$SCRATCH/x.dump" || fail "cat of the --stdin backup differs"
ok "backup --stdin --stdin-name x.dump, then cat gives the same bytes"

expect_rc 0 cairn ls latest
expect_stdout_grep ' /x\.dump$'
expect_rc 0 cairn snapshots
expect_stdout_grep '\[dump\]'
ok "the stdin snapshot holds /x.dump and carries its tag"

: | cairn backup --stdin --stdin-name empty.dump >/dev/null 2>&1 || fail "backup of an empty stdin"
expect_rc 0 cairn cat latest empty.dump
[[ ! -s $LAST_OUT ]] || fail "cat of an empty stdin backup is not empty"
ok "backup of an empty stdin gives an empty file"

# ---- stats ---------------------------------------------------------------
expect_rc 0 cairn stats --json
cp "$LAST_OUT" "$SCRATCH/stats.json"
is_json "$SCRATCH/stats.json" || fail "stats --json is not valid JSON: $(cat "$SCRATCH/stats.json")"
python3 - "$SCRATCH/stats.json" <<'EOF' || fail "stats --json content: $(cat "$SCRATCH/stats.json")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["snapshots"] == 4, v
assert v["packs"] >= 1 and v["pack_bytes"] > 0, v
assert v["logical_bytes"] > 2 * 50 * 1024 * 1024, v
assert v["dedup_ratio"] > 1.5, v
EOF
ok "stats --json parses and shows dedup across snapshots"
expect_rc 0 cairn stats latest
expect_stdout_grep '^snapshots: +1$'
ok "stats SNAPSHOT (human)"

# ---- keys ----------------------------------------------------------------
printf 'second-pass\n' >"$SCRATCH/pw2"
expect_rc 0 cairn key add --new-password-file "$SCRATCH/pw2"
expect_stdout_grep '^added key [0-9a-f]{8}'
ok "key add --new-password-file"

expect_rc 0 cairn key list --json
cp "$LAST_OUT" "$SCRATCH/keys.json"
is_json "$SCRATCH/keys.json" || fail "key list --json is not valid JSON"
nkeys=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$SCRATCH/keys.json")
[[ $nkeys == 2 ]] || fail "key list shows $nkeys keys, expected 2"
KEY1=$(python3 -c 'import json,sys; print([k["id"] for k in json.load(open(sys.argv[1])) if k["current"]][0])' "$SCRATCH/keys.json")
KEY2=$(python3 -c 'import json,sys; print([k["id"] for k in json.load(open(sys.argv[1])) if not k["current"]][0])' "$SCRATCH/keys.json")
expect_rc 0 cairn key list
[[ $(grep -cE '^[ *] [0-9a-f]{8} ' "$LAST_OUT") == 2 ]] || fail "key list (human) does not show 2 keys"
ok "key list shows 2 keys"

expect_rc 0 env CAIRN_PASSWORD=second-pass "$CAIRN_BIN" snapshots
expect_stdout_grep '^4 snapshot\(s\)$'
expect_rc 0 env CAIRN_PASSWORD=second-pass "$CAIRN_BIN" cat latest empty.dump
ok "the repository opens with the new passphrase"

expect_rc 2 cairn key remove "${KEY1:0:8}"
expect_rc 0 cairn key list --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 2 ]] ||
	fail "a refused key remove removed a key"
ok "key remove of the key in use refuses (exit 2)"

expect_rc 0 cairn key remove "${KEY2:0:8}"
expect_rc 0 cairn key list --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 1 ]] ||
	fail "key remove of the other key did not remove it"
expect_rc 1 env CAIRN_PASSWORD=second-pass "$CAIRN_BIN" snapshots
expect_stderr_grep 'wrong passphrase'
ok "key remove of the other key works; its passphrase no longer opens"

expect_rc 2 cairn key remove "$KEY1"
ok "key remove of the last key refuses (exit 2)"

printf 'third-pass\n' >"$SCRATCH/pw3"
expect_rc 0 cairn key passwd --new-password-file "$SCRATCH/pw3"
expect_stdout_grep 'passphrase changed'
expect_rc 1 cairn snapshots
expect_stderr_grep 'wrong passphrase'
ok "after key passwd the old passphrase fails (exit 1, 'wrong passphrase')"
expect_rc 0 env CAIRN_PASSWORD=third-pass "$CAIRN_BIN" snapshots
expect_stdout_grep '^4 snapshot\(s\)$'
expect_rc 0 env CAIRN_PASSWORD=third-pass "$CAIRN_BIN" key list --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 1 ]] ||
	fail "key passwd left $(cat "$LAST_OUT") keys"
export CAIRN_PASSWORD=third-pass
expect_rc 0 cairn cat "${SNAP1:0:8}" "$SRC/large/big-1.bin"
cmp -s "$LAST_OUT" "$SRC/large/big-1.bin" || fail "cat after passwd differs"
ok "the new passphrase opens (one key left) and the data reads back"

# ---- usage errors --------------------------------------------------------
expect_rc 2 cairn frobnicate
expect_stderr_grep "unknown command 'frobnicate'"
ok "unknown command: exit 2"
expect_rc 2 cairn snapshots --no-such-option
expect_stderr_grep 'unknown option --no-such-option'
ok "unknown option: exit 2"
expect_rc 2 cairn restore latest
expect_stderr_grep -- '--target'
ok "restore without --target: exit 2"
expect_rc 2 cairn backup
expect_rc 2 cairn backup --stdin
expect_rc 2 cairn ls
expect_rc 2 cairn cat latest
expect_rc 2 cairn check --target x
expect_rc 2 cairn key
expect_rc 2 cairn key frob
expect_rc 2 cairn
ok "other usage errors exit 2 (backup without paths, --stdin without name, ls/cat without args, option of another command, key without subcommand, no command)"

expect_rc 0 cairn help
expect_stdout_grep '^usage: cairn'
expect_stdout_grep 'restore SNAPSHOT --target DIR'
expect_rc 0 cairn --help
expect_stdout_grep '^usage: cairn'
ok "cairn help / --help exit 0 and print the usage"

# ---- final state ---------------------------------------------------------
expect_rc 0 cairn check --read-data
expect_stdout_grep 'no errors'
ok "check --read-data passes at the end"

finish
