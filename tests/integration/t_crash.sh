#!/usr/bin/env bash
# t_crash.sh — kill -9 of a running backup at random moments, 30 times.
# After every kill the repository must pass `check`; cairn must never list
# the ".tmp-*" files an interrupted write may leave on disk; at the end a
# normal backup succeeds, restores identical, and check --read-data passes.
#
# CAIRN_CRASH_SEED=N reproduces a run's kill times; CAIRN_CRASH_ROUNDS=N
# changes the number of kills (default 30).
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SEED=${CAIRN_CRASH_SEED:-$(date +%s)}
ROUNDS=${CAIRN_CRASH_ROUNDS:-30}
RANDOM=$SEED
echo "# seed $SEED (set CAIRN_CRASH_SEED=$SEED to replay), $ROUNDS rounds"

SRC=$SCRATCH/src
T0=$(now_s)
make_tree "$SRC" 90
mkdir -p "$SRC/churn"
for ((i = 0; i < 4; i++)); do
	rand_bytes $((3 * 1024 * 1024)) "churn-$i-0" >"$SRC/churn/c$i.bin"
done
echo "# generated $(du -sh "$SRC" | cut -f1) in $(elapsed "$T0" "$(now_s)") s"

expect_rc 0 cairn init
ok "init"

# Objects on disk under a prefix, without the temporary files.
count_objects() {
	if [[ -d $CAIRN_REPOSITORY/$1 ]]; then
		find "$CAIRN_REPOSITORY/$1" -type f ! -name '.tmp-*' | wc -l
	else
		echo 0
	fi
}
count_tmp() {
	find "$CAIRN_REPOSITORY" -name '.tmp-*' | wc -l
}
# cairn's own listings must not show a temporary file, and must count
# exactly the real objects.
check_listings() {
	local what=$1
	expect_rc 0 cairn check --json
	python3 - "$LAST_OUT" "$(count_objects packs)" <<'EOF' || fail "$what: check --json disagrees with the packs on disk: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["problems"] == 0, v
assert v["packs"] == int(sys.argv[2]), (v["packs"], sys.argv[2])
EOF
	expect_rc 0 cairn snapshots --json
	python3 - "$LAST_OUT" "$(count_objects snapshots)" <<'EOF' || fail "$what: snapshots --json disagrees with the snapshot objects on disk"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == int(sys.argv[2]), (len(v), sys.argv[2])
assert not any(".tmp-" in s["id"] for s in v), v
EOF
	expect_rc 0 cairn stats --json
	python3 - "$LAST_OUT" "$(count_objects packs)" <<'EOF' || fail "$what: stats --json counts other packs than there are on disk"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["packs"] == int(sys.argv[2]), (v["packs"], sys.argv[2])
EOF
	expect_rc 0 cairn key list
	if grep -q '\.tmp-' "$LAST_OUT"; then fail "$what: key list shows a .tmp- file"; fi
}

killed=0
completed=0
early=0
max_tmp=0
T0=$(now_s)
for ((round = 1; round <= ROUNDS; round++)); do
	# New data in one churn file every round, so that every backup has
	# work to do even where earlier ones got their data indexed.
	c=$((round % 4))
	rand_bytes $((3 * 1024 * 1024)) "churn-$c-$round" >"$SRC/churn/c$c.bin"
	# One round in three kills early (opening the repository, the cache,
	# the first files); the others anywhere up to 0.5 s.
	if ((RANDOM % 3 == 0)); then
		delay=$(printf '0.%03d' $((RANDOM % 60)))
		early=$((early + 1))
	else
		delay=$(printf '0.%03d' $((50 + RANDOM % 451)))
	fi
	"$CAIRN_BIN" backup -q "$SRC" >"$SCRATCH/bk.out" 2>"$SCRATCH/bk.err" &
	pid=$!
	sleep "$delay"
	kill -9 "$pid" 2>/dev/null || true
	rc=0
	# (wait's stderr: bash's "Killed" job message)
	{ wait "$pid" || rc=$?; } 2>/dev/null
	if _t_sanitizer_report "$SCRATCH/bk.err"; then
		cat "$SCRATCH/bk.err"
		fail "round $round: sanitizer report from the backup"
	fi
	case $rc in
	137) killed=$((killed + 1)) ;;
	0) completed=$((completed + 1)) ;;
	*)
		cat "$SCRATCH/bk.err"
		fail "round $round: backup exited $rc before it was killed"
		;;
	esac
	ntmp=$(count_tmp)
	((ntmp > max_tmp)) && max_tmp=$ntmp
	LAST_RC=0
	"$CAIRN_BIN" check >"$LAST_OUT" 2>"$LAST_ERR" || LAST_RC=$?
	if [[ $LAST_RC != 0 ]] || _t_sanitizer_report "$LAST_ERR"; then
		_t_show_last check
		fail "round $round (kill after ${delay}s, backup exit $rc): check exits $LAST_RC"
	fi
	if grep -q '\.tmp-' "$LAST_OUT" "$LAST_ERR"; then
		fail "round $round: check mentions a .tmp- file"
	fi
	echo "# round $round: kill after ${delay}s -> backup exit $rc; check ok; $(count_objects packs) packs, $ntmp .tmp- file(s) on disk"
	# The listings are slower: every fifth round, and whenever temporary
	# files are on disk.
	if ((round % 5 == 0 || ntmp > 0)); then
		check_listings "round $round"
	fi
done
echo "# $ROUNDS rounds in $(elapsed "$T0" "$(now_s)") s: $killed killed ($early early), $completed finished before the kill; up to $max_tmp .tmp- file(s) on disk at once"
ok "after each of $ROUNDS kill -9 of a running backup ($killed killed mid-way), check exits 0"
((killed >= ROUNDS / 2)) || fail "only $killed of $ROUNDS backups were killed mid-way: the backup is too fast for this test"
ok "most rounds ($killed) really interrupted a backup"
check_listings "after the rounds"
ok "cairn never lists a .tmp- file (check, snapshots, stats and key list count only real objects; up to $max_tmp on disk)"

# A normal backup, restore, and full check at the end.
T1=$(now_s)
expect_rc 0 cairn backup "$SRC"
SNAP=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
echo "# final backup: $(elapsed "$T1" "$(now_s)") s"
ok "a normal backup after the crashes succeeds"
expect_rc 0 cairn restore "${SNAP:0:8}" --target "$SCRATCH/restore"
expect_same_tree "$SRC" "$SCRATCH/restore$SRC" "its restore is identical to the source"
T1=$(now_s)
expect_rc 0 cairn check --read-data
echo "# check --read-data of $(repo_bytes) bytes: $(elapsed "$T1" "$(now_s)") s"
ok "check --read-data exits 0"
# Every snapshot a round managed to finish restores as well (spot check:
# the oldest one), with the churn files as they were then unknown, so only
# compare the files that never change.
expect_rc 0 cairn snapshots --json
FIRST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["id"])' "$LAST_OUT")
expect_rc 0 cairn restore "${FIRST:0:8}" --target "$SCRATCH/restore-first" --include "$SRC/large"
expect_same_tree "$SRC/large" "$SCRATCH/restore-first$SRC/large" "the oldest snapshot restores too"

finish
