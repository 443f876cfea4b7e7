#!/usr/bin/env bash
# t_s3_faults.sh — an S3 server that stops answering in the middle of a
# backup (radosgw of the CTest fixture "s3" frozen with SIGSTOP: requests
# hang, as they do on a Ceph cluster in trouble).
#   1. frozen for a few seconds, within the retry budget: requests time
#      out, are retried with backoff, and the backup succeeds once the
#      server thaws; check --read-data passes, the restore is identical;
#   2. frozen for longer than the retry budget: the backup fails cleanly
#      (exit 1, a message naming the server and "gave up after N tries"),
#      and after the thaw check --read-data passes: no snapshot refers to
#      a pack that did not land.
# The waits are shortened through the backend's test-only variables
# (CAIRN_S3_TIMEOUT_SECONDS: the stall limit per request; CAIRN_S3_RETRIES:
# tries per request), and backups are slowed with --limit-upload so that
# the freeze falls in the middle of one.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"

RGW=$(rgw_pid)
[[ $(cat "/proc/$RGW/comm" 2>/dev/null) == radosgw ]] || fail "no radosgw process $RGW (from $CAIRN_S3_ENV_FILE)"
# Never leave the server frozen, whatever happens.
trap '_rc=$?; kill -CONT "$RGW" 2>/dev/null; (exit $_rc); _t_cleanup' EXIT

# wait_thawed: until a signed request to the server answers again.
wait_thawed() {
	local code
	for _ in $(seq 1 100); do
		code=$(s3_req GET "/$CAIRN_S3_BUCKET?list-type=2&max-keys=1" --max-time 5) || true
		[[ $code == 200 ]] && return 0
		sleep 0.2
	done
	fail "radosgw does not answer after SIGCONT (HTTP $code)"
}

SRC=$SCRATCH/src
mkdir -p "$SRC"
rand_bytes $((96 * 1024 * 1024)) faults-1 >"$SRC/one.bin"
text_bytes $((4 * 1024 * 1024)) 3 >"$SRC/two.txt"
expect_rc 0 cairn init

# ---- 1. a short freeze -----------------------------------------------------
export CAIRN_S3_TIMEOUT_SECONDS=2 CAIRN_S3_RETRIES=8
T0=$(now_s)
cairn --limit-upload 12288 backup "$SRC" >"$SCRATCH/b1.out" 2>"$SCRATCH/b1.err" &
bpid=$!
sleep 2.5
kill -0 "$bpid" 2>/dev/null || fail "the backup ended before the freeze (too fast?): $(cat "$SCRATCH/b1.err")"
kill -STOP "$RGW"
echo "# radosgw frozen at $(elapsed "$T0" "$(now_s)") s"
sleep 6
kill -CONT "$RGW"
echo "# radosgw thawed at $(elapsed "$T0" "$(now_s)") s"
rc=0
wait "$bpid" || rc=$?
echo "# backup ended at $(elapsed "$T0" "$(now_s)") s with exit $rc"
if _t_sanitizer_report "$SCRATCH/b1.err"; then
	cat "$SCRATCH/b1.err"
	fail "sanitizer report from the backup"
fi
[[ $rc == 0 ]] || fail "the backup did not survive a 6 s freeze: exit $rc: $(cat "$SCRATCH/b1.err")"
grep -q '^snapshot [0-9a-f]\{64\} saved' "$SCRATCH/b1.out" || fail "no snapshot saved: $(cat "$SCRATCH/b1.out")"
ok "a 6 s freeze during a backup: requests time out, are retried, the backup succeeds"

expect_rc 0 cairn check --read-data
expect_stdout_grep 'no errors'
expect_rc 0 cairn restore latest --target "$SCRATCH/r1"
expect_same_tree "$SRC" "$SCRATCH/r1$SRC" "check --read-data passes and the restore is identical"

# ---- 2. a freeze longer than the retry budget -----------------------------
# 3 tries of at most ~3 s each, and two backoffs below 1 s: about 10 s.
export CAIRN_S3_RETRIES=3
rand_bytes $((64 * 1024 * 1024)) faults-2 >"$SRC/three.bin"
PFX=$(s3_repo_prefix)
s3_keys "$PFX/snapshots/" >"$SCRATCH/snaps.before"
T0=$(now_s)
cairn --limit-upload 12288 backup "$SRC" >"$SCRATCH/b2.out" 2>"$SCRATCH/b2.err" &
bpid=$!
sleep 1.5
kill -0 "$bpid" 2>/dev/null || fail "the second backup ended before the freeze: $(cat "$SCRATCH/b2.err")"
kill -STOP "$RGW"
echo "# radosgw frozen at $(elapsed "$T0" "$(now_s)") s"
ended=0
for _ in $(seq 1 600); do
	if ! kill -0 "$bpid" 2>/dev/null; then
		ended=1
		break
	fi
	sleep 0.1
done
t_end=$(elapsed "$T0" "$(now_s)")
rc=0
if ((ended)); then
	wait "$bpid" || rc=$?
fi
kill -CONT "$RGW"
echo "# backup ended at $t_end s with exit $rc; radosgw thawed"
((ended)) || fail "the backup still runs 60 s into a freeze: the retry budget is not bounded"
if _t_sanitizer_report "$SCRATCH/b2.err"; then
	cat "$SCRATCH/b2.err"
	fail "sanitizer report from the backup"
fi
cat "$SCRATCH/b2.err"
[[ $rc == 1 ]] || fail "a backup against a frozen server exited $rc, not 1"
grep -q "no answer from $CAIRN_S3_ENDPOINT" "$SCRATCH/b2.err" || fail "the message does not name the server"
grep -q 'gave up after 3 tries' "$SCRATCH/b2.err" || fail "the message does not say it gave up after 3 tries"
grep -q '^cairn: error: ' "$SCRATCH/b2.err" || fail "no 'cairn: error:' line"
ok "frozen longer than the retry budget: the backup fails cleanly (exit 1) after $t_end s, naming the server"

wait_thawed
s3_keys "$PFX/snapshots/" >"$SCRATCH/snaps.after"
# A snapshot whose PUT was in flight may land after the thaw; if it does,
# everything it refers to landed before it (the order of writes).
echo "# snapshots on S3: $(wc -l <"$SCRATCH/snaps.before") before, $(wc -l <"$SCRATCH/snaps.after") after"
expect_rc 0 cairn check --read-data
expect_stdout_grep 'no errors'
ok "after the thaw, check --read-data passes: nothing refers to a pack that did not land"

unset CAIRN_S3_TIMEOUT_SECONDS CAIRN_S3_RETRIES
expect_rc 0 cairn backup "$SRC"
expect_rc 0 cairn restore latest --target "$SCRATCH/r2"
expect_same_tree "$SRC" "$SCRATCH/r2$SRC" "a backup after the failed one works, and restores identical"

finish
