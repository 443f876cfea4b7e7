#!/usr/bin/env bash
# t_locks.sh — writer leases from the command line: `cairn locks` on an
# empty repository; a running backup holds a live shared lock that names its
# pid; two backups at once both succeed; a backup killed with kill -9 leaves
# a lock that `cairn locks` shows as stale (its process is gone) and that
# `cairn unlock --stale` removes; finished commands leave no lock; --json
# parses; unlock refuses a live lock without --force and has no --all.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

expect_rc 0 cairn init
ok "init"

lock_objects() {
	if [[ -d $CAIRN_REPOSITORY/locks ]]; then
		find "$CAIRN_REPOSITORY/locks" -type f ! -name '.tmp-*' | wc -l
	else
		echo 0
	fi
}

expect_rc 0 cairn locks
expect_stdout_grep '^0 lock\(s\), 0 stale'
expect_rc 0 cairn locks --json
is_json "$LAST_OUT" || fail "locks --json is not JSON"
[[ $(tr -d ' \n' <"$LAST_OUT") == "[]" ]] || fail "locks --json on an empty repository: $(cat "$LAST_OUT")"
ok "no locks in a new repository (text and JSON)"

expect_rc 2 cairn unlock
expect_stderr_grep 'no --all'
expect_rc 2 cairn unlock --all
expect_rc 2 cairn unlock --stale --force
expect_rc 2 cairn locks extra
ok "usage errors: unlock needs --stale or an ID, there is no --all"

# A backup that waits on its standard input holds its lock until killed.
# The binary itself runs in the background, so that $! is its pid.
start_held_backup() { # name -> sets HELD_PID
	rm -f "$SCRATCH/fifo"
	mkfifo "$SCRATCH/fifo"
	"$CAIRN_BIN" backup --stdin --stdin-name "$1" <"$SCRATCH/fifo" >"$SCRATCH/held.out" 2>&1 &
	HELD_PID=$!
	exec 3>"$SCRATCH/fifo"
	printf 'some bytes before the pause\n' >&3
	for ((i = 0; i < 200; i++)); do
		(($(lock_objects) > 0)) && return 0
		sleep 0.05
	done
	fail "the held backup wrote no lock within 10 s: $(cat "$SCRATCH/held.out")"
}

start_held_backup held-1
expect_rc 0 cairn locks --json
is_json "$LAST_OUT" || fail "locks --json is not JSON"
python3 - "$LAST_OUT" "$HELD_PID" "$(hostname)" <<'EOF' || fail "locks --json does not show the running backup's live lock: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1, v
l = v[0]
assert l["pid"] == int(sys.argv[2]), l
assert l["host"] == sys.argv[3], l
assert l["kind"] == "shared" and l["state"] == "live" and l["stale"] is False, l
assert l["stale_after_s"] == 1800 and l["seq"] == 0 and l["version"].startswith("cairn "), l
assert len(l["id"]) == 32 and len(l["object"]) == 64, l
EOF
HELD_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$LAST_OUT")
expect_rc 0 cairn locks
expect_stdout_grep "^${HELD_ID:0:8}  shared .* $HELD_PID .* live$"
ok "a running backup holds a live shared lock with its pid and host"

# Other writers are not blocked by it; two more backups at once succeed.
mkdir -p "$SCRATCH/a" "$SCRATCH/b"
rand_bytes $((3 * 1024 * 1024)) a >"$SCRATCH/a/data"
rand_bytes $((3 * 1024 * 1024)) b >"$SCRATCH/b/data"
"$CAIRN_BIN" backup "$SCRATCH/a" >"$SCRATCH/a.out" 2>&1 &
pa=$!
"$CAIRN_BIN" backup "$SCRATCH/b" >"$SCRATCH/b.out" 2>&1 &
pb=$!
ra=0 rb=0
wait "$pa" || ra=$?
wait "$pb" || rb=$?
((ra == 0)) || fail "concurrent backup a failed ($ra): $(cat "$SCRATCH/a.out")"
((rb == 0)) || fail "concurrent backup b failed ($rb): $(cat "$SCRATCH/b.out")"
if _t_sanitizer_report "$SCRATCH/a.out" || _t_sanitizer_report "$SCRATCH/b.out"; then
	fail "sanitizer report from a concurrent backup"
fi
[[ $(lock_objects) == 1 ]] || fail "the finished backups left locks behind: $(lock_objects) objects"
ok "two backups at once both succeed beside a third, and leave no lock"

# Nothing stale yet: unlock --stale removes nothing; a live lock needs --force.
expect_rc 0 cairn unlock --stale
expect_stdout_grep '^removed 0 stale lock\(s\)'
expect_rc 1 cairn unlock "${HELD_ID:0:8}"
expect_stderr_grep 'is live'
[[ $(lock_objects) == 1 ]] || fail "a live lock was removed"
ok "a live lock is not stale and is not removed without --force"

# kill -9: the lock stays, and this host can tell that its process is gone.
kill -9 "$HELD_PID"
wait "$HELD_PID" 2>/dev/null || true
exec 3>&-
[[ $(lock_objects) == 1 ]] || fail "kill -9 should leave the lock object behind"
expect_rc 0 cairn locks
expect_stdout_grep "^${HELD_ID:0:8}  shared .* $HELD_PID .* stale \(process gone\)$"
expect_stdout_grep '^1 lock\(s\), 1 stale'
expect_rc 0 cairn locks --json
python3 - "$LAST_OUT" <<'EOF' || fail "locks --json does not call the killed backup's lock stale: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 1 and v[0]["stale"] is True and v[0]["state"] == "process-gone", v
EOF
ok "the lock of a backup killed with kill -9 shows as stale (process gone)"

expect_rc 0 cairn unlock --stale
expect_stdout_grep "^removed stale lock ${HELD_ID:0:8} \(shared, host .*, pid $HELD_PID\): process gone$"
expect_stdout_grep '^removed 1 stale lock\(s\)'
[[ $(lock_objects) == 0 ]] || fail "unlock --stale left $(lock_objects) lock objects"
expect_rc 0 cairn locks --json
[[ $(tr -d ' \n' <"$LAST_OUT") == "[]" ]] || fail "locks after unlock --stale: $(cat "$LAST_OUT")"
ok "unlock --stale removes it and says what it removed"

# The repository is whole: the killed backup left at most garbage.
expect_rc 0 cairn check
expect_rc 0 cairn snapshots --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert len(v) == 2, v' "$LAST_OUT" ||
	fail "expected the two finished snapshots"
ok "check passes; the two finished backups are there"

# archive-push holds a lock too, for its duration only.
printf 'wal bytes\n' >"$SCRATCH/000000010000000000000001"
expect_rc 0 cairn archive-push --cluster main "$SCRATCH/000000010000000000000001"
[[ $(lock_objects) == 0 ]] || fail "archive-push left a lock behind"
ok "archive-push leaves no lock"

# unlock ID --force removes a live lock, with a warning.
start_held_backup held-2
expect_rc 0 cairn locks --json
id2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$LAST_OUT")
expect_rc 0 cairn unlock "${id2:0:10}" --force
expect_stdout_grep "^removed LIVE lock ${id2:0:8}"
expect_stderr_grep 'warning: the lock was live'
[[ $(lock_objects) == 0 ]] || fail "unlock --force left the lock"
kill -9 "$HELD_PID"
wait "$HELD_PID" 2>/dev/null || true
exec 3>&-
ok "unlock ID --force removes a live lock, with a warning"

finish
