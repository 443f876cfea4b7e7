#!/usr/bin/env bash
# t_unreadable.sh — inputs that cannot be read: a path that does not exist
# (the backup is refused), and, as the unprivileged user `postgres`, a file
# and a folder with mode 000 (the snapshot is written, marked incomplete,
# exit 1 naming them; exit 0 with --ignore-unreadable).
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

# ---- a path that does not exist (as the current user) ------------------
SRC=$SCRATCH/src
make_tree "$SRC" 2
expect_rc 0 cairn init
expect_rc 1 cairn backup "$SCRATCH/does-not-exist"
expect_stderr_grep "$SCRATCH/does-not-exist"
expect_stderr_grep 'No such file'
ok "backup of a missing path: exit 1 naming it"
expect_rc 1 cairn backup "$SRC" "$SCRATCH/does-not-exist"
expect_stderr_grep "$SCRATCH/does-not-exist"
expect_rc 0 cairn snapshots --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 0 ]] ||
	fail "a refused backup wrote a snapshot"
ok "backup of an existing and a missing path: exit 1, no snapshot written"

# ---- unreadable file and folder, as postgres --------------------------
if ! id postgres >/dev/null 2>&1; then
	skip_all "user 'postgres' does not exist: cannot test unreadable files without root bypassing modes"
fi
if [[ $(id -u) != 0 ]] || ! command -v runuser >/dev/null 2>&1; then
	skip_all "not root or no runuser: cannot run cairn as postgres"
fi
PGDIR=$SCRATCH/pg
mkdir -p "$PGDIR"
chown postgres: "$PGDIR"
if ! runuser -u postgres -- test -x "$CAIRN_BIN" || ! runuser -u postgres -- test -w "$PGDIR"; then
	skip_all "postgres cannot run $CAIRN_BIN or write $PGDIR"
fi
PSRC=$PGDIR/src
PREPO=$PGDIR/repo
make_tree "$PSRC" 3
printf 'you cannot read me\n' >"$PSRC/text/secret.txt"
mkdir -p "$PSRC/locked-dir/inner"
printf 'hidden\n' >"$PSRC/locked-dir/inner/f.txt"
chown -R postgres: "$PGDIR"
chmod 000 "$PSRC/text/secret.txt"
chmod 000 "$PSRC/locked-dir"

pgcairn() {
	runuser -u postgres -- env -i PATH=/usr/bin:/bin HOME="$PGDIR" \
		CAIRN_PASSWORD=pg-pass CAIRN_REPOSITORY="$PREPO" CAIRN_CACHE_DIR="$PGDIR/cache" \
		ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" "$CAIRN_BIN" "$@"
}

runuser -u postgres -- cat "$PSRC/text/secret.txt" >/dev/null 2>&1 &&
	fail "postgres can read a mode-000 file: this test cannot work here"
expect_rc 0 pgcairn init
ok "init as postgres"

expect_rc 1 pgcairn backup "$PSRC"
cp "$LAST_ERR" "$SCRATCH/bk.err"
cp "$LAST_OUT" "$SCRATCH/bk.out"
expect_stderr_grep "$PSRC/text/secret.txt"
expect_stderr_grep "$PSRC/locked-dir"
expect_stderr_grep 'Permission denied'
expect_stderr_grep 'incomplete'
ok "backup with an unreadable file and folder: exit 1, stderr names both"
grep -Eq '^snapshot [0-9a-f]{64} saved' "$SCRATCH/bk.out" || fail "backup says no snapshot was saved: $(cat "$SCRATCH/bk.out")"
SNAP=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$SCRATCH/bk.out")
ok "the snapshot ${SNAP:0:8} is written anyway"

expect_rc 0 pgcairn snapshots
expect_stdout_grep "^${SNAP:0:8} .*\\(incomplete\\)"
expect_rc 0 pgcairn snapshots --json
python3 - "$LAST_OUT" "$SNAP" <<'EOF' || fail "snapshots --json: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1 and v[0]["id"] == sys.argv[2], v
assert v[0]["incomplete"] is True, v
EOF
ok "snapshots lists it, marked incomplete (human and JSON)"

expect_rc 0 pgcairn ls latest "$PSRC"
grep -qF "$PSRC/text/secret.txt" "$LAST_OUT" && fail "ls shows the unreadable file in the snapshot"
grep -qF "$PSRC/locked-dir/inner" "$LAST_OUT" && fail "ls shows the content of the unreadable folder"
grep -qF "$PSRC/text/doc-0.txt" "$LAST_OUT" || fail "ls does not show a readable file"
ok "ls: the unreadable file is not in the snapshot, the unreadable folder has no content"

expect_rc 0 pgcairn restore latest --target "$PGDIR/restore"
# The restore equals the source without the unreadable file and with the
# locked folder empty.
mkdir -p "$SCRATCH/expected"
cp -a "$PSRC" "$SCRATCH/expected/src"
rm -f "$SCRATCH/expected/src/text/secret.txt"
chmod 700 "$SCRATCH/expected/src/locked-dir"
rm -rf "$SCRATCH/expected/src/locked-dir"/*
chmod 000 "$SCRATCH/expected/src/locked-dir"
[[ -d $PGDIR/restore$PSRC/locked-dir ]] || fail "the unreadable folder is not restored (as an empty folder)"
expect_same_tree "$SCRATCH/expected/src" "$PGDIR/restore$PSRC" "restore (as postgres) gives every readable file back, identical"

# --ignore-unreadable: exit 0, still warns, still marked incomplete
expect_rc 0 pgcairn backup --ignore-unreadable "$PSRC"
expect_stderr_grep "$PSRC/text/secret.txt"
expect_rc 0 pgcairn snapshots --json
python3 - "$LAST_OUT" <<'EOF' || fail "snapshots --json after --ignore-unreadable: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 2, v
EOF
ok "--ignore-unreadable: exit 0, the file is still named as a warning"

# The repository is consistent, also read by root.
expect_rc 0 pgcairn check --read-data
ok "check --read-data (as postgres) passes"

# A file that becomes readable is picked up by the next backup.
chmod 644 "$PSRC/text/secret.txt"
chmod 755 "$PSRC/locked-dir"
expect_rc 0 pgcairn backup "$PSRC"
SNAP3=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
expect_rc 0 pgcairn cat latest "$PSRC/locked-dir/inner/f.txt"
[[ $(cat "$LAST_OUT") == hidden ]] || fail "the formerly unreadable folder's file"
expect_rc 0 pgcairn snapshots
expect_stdout_grep "^${SNAP3:0:8} "
grep "^${SNAP3:0:8} " "$LAST_OUT" | grep -q 'incomplete' && fail "a complete backup is marked incomplete"
ok "once readable, the next backup is complete and holds them"

finish
