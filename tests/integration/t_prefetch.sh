#!/usr/bin/env bash
# t_prefetch.sh — archive-get fetches ahead: after serving segment N it
# leaves a detached prefetcher that spools the next archived segments of
# the same timeline (verified, complete files only) in the local cache;
# the call for N+1 takes it from there, byte-identical, and the spool
# forgets what was consumed.  CAIRN_PREFETCH=0 turns it off.  Segments
# here are 1 MiB (a valid wal_segment_size), random content.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

expect_rc 0 cairn init
W=$SCRATCH/wal
mkdir -p "$W" "$SCRATCH/out"
for i in 1 2 3 4 5 6; do
	f=$W/00000001000000000000000$i
	head -c $((1 << 20)) /dev/urandom >"$f"
	expect_rc 0 cairn archive-push --cluster c1 "$f"
done
ok "6 segments of 1 MiB archived"

spool() { find "$CAIRN_CACHE_DIR" -path '*/prefetch/c1/*' -name '0000000100000000000000*' -printf '%f\n' | LC_ALL=C sort | tr '\n' ' '; }
wait_spool() { # WANT: the spool's listing, within 20 s
	for _ in $(seq 1 100); do
		[[ $(spool) == "$1" ]] && return 0
		sleep 0.2
	done
	fail "the prefetch spool holds '$(spool)', want '$1'"
}

expect_rc 0 cairn -v archive-get --cluster c1 000000010000000000000001 "$SCRATCH/out/1"
cmp -s "$W/000000010000000000000001" "$SCRATCH/out/1" || fail "segment 1 differs"
if grep -q "prefetch spool" "$LAST_ERR"; then fail "segment 1 came from the spool before anything was prefetched"; fi
wait_spool "000000010000000000000002 000000010000000000000003 000000010000000000000004 000000010000000000000005 000000010000000000000006 "
[[ -z $(find "$CAIRN_CACHE_DIR" -path '*/prefetch/c1/*' -name '*.tmp') ]] || fail "a .tmp file left in the spool"
ok "after segment 1, segments 2-6 were prefetched (up to the end of the archive)"

expect_rc 0 cairn -v archive-get --cluster c1 000000010000000000000002 "$SCRATCH/out/2"
expect_stderr_grep "000000010000000000000002 taken from the prefetch spool"
cmp -s "$W/000000010000000000000002" "$SCRATCH/out/2" || fail "segment 2 from the spool differs"
[[ ! -e $SCRATCH/out/2.cairn-tmp ]] || fail "a .cairn-tmp left next to segment 2"
wait_spool "000000010000000000000003 000000010000000000000004 000000010000000000000005 000000010000000000000006 "
ok "segment 2 came from the spool, byte-identical, and left it"

# Off: fetched from the repository, the spool untouched.
expect_rc 0 env CAIRN_PREFETCH=0 "$CAIRN_BIN" -v archive-get --cluster c1 000000010000000000000003 "$SCRATCH/out/3"
if grep -q "prefetch spool" "$LAST_ERR"; then fail "CAIRN_PREFETCH=0 still took the spool"; fi
cmp -s "$W/000000010000000000000003" "$SCRATCH/out/3" || fail "segment 3 differs"
ok "CAIRN_PREFETCH=0: fetched from the repository"

# The end of the archive is still "not archived" (exit 1), spool or not.
expect_rc 1 cairn archive-get --cluster c1 000000010000000000000007 "$SCRATCH/out/7"
[[ ! -e $SCRATCH/out/7 ]] || fail "a file was written for a segment that is not archived"
ok "a segment past the end: exit 1, nothing written"
finish
