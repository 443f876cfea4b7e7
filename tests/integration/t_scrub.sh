#!/usr/bin/env bash
# Scrub jobs: check --read-data-subset K/N reads disjoint slices that
# together cover every pack; P% reads a share; --read-data-since-last
# reads only what no scrub (on any host) read within the window; damage in
# a slice is found by the run that reads it; status shows the last scrub.
T_NAME=t_scrub
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

expect_rc 0 cairn init
mkdir -p "$SCRATCH/src"
for i in 1 2 3 4 5 6; do rand_bytes $((12 << 20)) "s$i" >"$SCRATCH/src/f$i"; done
expect_rc 0 cairn backup "$SCRATCH/src" -q
packs=$(find "$CAIRN_REPOSITORY/packs" -type f | wc -l)
((packs >= 4)) || fail "expected several packs, got $packs"

read_count() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packs_read"])' "$LAST_OUT"; }
total=0
for k in 1 2 3; do
	expect_rc 0 cairn check --read-data-subset $k/3 --json
	total=$((total + $(read_count)))
done
[[ $total == "$packs" ]] || fail "slices 1/3..3/3 read $total packs, not all $packs"
ok "three slices read every one of $packs packs exactly once"

expect_rc 0 cairn check --read-data-subset 100% --json
[[ $(read_count) == "$packs" ]] || fail "100% did not read every pack"
expect_rc 0 cairn check --read-data-since-last 1d --json
[[ $(read_count) == 0 ]] || fail "since-last 1d after a full read still read $(read_count) packs"
ok "--read-data-since-last skips what a scrub read within the window"

# A second cache (another host): the scrub state is in the repository.
expect_rc 0 env CAIRN_CACHE_DIR="$SCRATCH/cache2" "$CAIRN_BIN" check --read-data-since-last 1d --json
[[ $(read_count) == 0 ]] || fail "another host does not see the scrub state"
ok "the scrub state is shared through the repository"

# Damage one data pack (the largest: a damaged tree pack would break
# every run's structure walk, not only the slice that reads it): exactly
# one slice finds it.
victim=$(find "$CAIRN_REPOSITORY/packs" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
printf '\x77' | dd of="$victim" bs=1 seek=5000 conv=notrunc 2>/dev/null
found=0
for k in 1 2 3; do
	run_rc cairn check --read-data-subset $k/3
	[[ $LAST_RC == 3 ]] && found=$((found + 1))
	[[ $LAST_RC == 0 || $LAST_RC == 3 ]] || fail "check exited $LAST_RC"
done
[[ $found == 1 ]] || fail "the damaged pack was found by $found slices, not 1"
ok "the damaged pack is found by the one slice that reads it"

expect_rc 0 cairn status --json
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["last_scrub"] is not None' "$LAST_OUT" ||
	fail "status does not show the last scrub"
expect_rc 2 cairn check --read-data-subset 4/3
expect_rc 2 cairn check --read-data-since-last soon
ok "status shows the last scrub; bad subset arguments are usage errors"
finish
