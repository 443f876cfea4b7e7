#!/usr/bin/env bash
# bench/compare.sh, tiny: scale 1, one run, cairn and pg_basebackup only, so
# that the benchmark never rots.  The other peers (pgBackRest, restic, borg)
# need packages the test suite does not install, and restic and borg spend
# about a second per call in the archive phases: they are left to the real,
# hand-run bench.  The test checks that every phase has its row, that nothing
# failed, and that the report has what bench/RESULTS.md needs.
T_NAME=t_bench_smoke
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"

[[ $CAIRN_SANITIZE == ON ]] && skip_all "the bench smoke test is too slow under ASan/UBSan"
pg_require
[[ -x $pg_bin/pg_basebackup && -x $pg_bin/pgbench ]] || skip_all "pg_basebackup or pgbench of PostgreSQL 15 missing"
[[ -x /usr/bin/time ]] || skip_all "/usr/bin/time missing (apt-get install time)"
command -v zstd >/dev/null || skip_all "zstd missing (apt-get install zstd)"
command -v bc >/dev/null || skip_all "bc missing (apt-get install bc)"

bench=$(cd "$(dirname "$0")/../.." && pwd)/bench/compare.sh
[[ -x $bench ]] || fail "$bench is missing or not executable"
start=$(now_s)
# TMPDIR: the bench's work folder lands in $SCRATCH, removed with it.
TMPDIR=$SCRATCH run_rc "$bench" --scale 1 --runs 1 --tools cairn,pg_basebackup \
	--cairn "$CAIRN_BIN" --cairn-label "cairn under test" --out "$SCRATCH/report.md"
took=$(echo "$(now_s) - $start" | bc)
if ((LAST_RC != 0)); then
	tail -n 40 "$LAST_ERR"
	fail "bench/compare.sh exited $LAST_RC"
fi
ok "bench/compare.sh --scale 1 --runs 1 --tools cairn,pg_basebackup ran in ${took%.*} s"
cmp -s "$LAST_OUT" "$SCRATCH/report.md" || fail "--out differs from what went to stdout"
[[ -s $SCRATCH/report.md.tsv ]] || fail "no raw measurements next to --out"
ok "the report went to stdout and to --out (raw measurements in --out.tsv)"

report=$SCRATCH/report.md
if grep -q failed "$report" "$SCRATCH/report.md.tsv"; then
	grep -n failed "$report" "$SCRATCH/report.md.tsv"
	fail "a measured step failed"
fi
ok "no step failed"

# One table per dataset and phase, each with its rows.
for ds in pgbench mixed; do
	# The lines of the table under the heading "**DS — PHASE...**".
	table() { awk -v h="**$ds — $1" 'index($0, h) == 1 {on = 1; next} on && /^\*\*/ {exit} on && /^\|/' "$report"; }
	for phase in "full backup" "second backup" "third backup" "restore of the third backup" \
		"archive-push of 20 WAL segments" "archive-get of the same 20 segments"; do
		rows=$(table "$phase")
		[[ -n $rows ]] || fail "$ds: no table for '$phase'"
		tools=(cairn)
		case $phase in archive*) tools+=(cp) ;; *) tools+=(pg_basebackup) ;; esac
		for t in "${tools[@]}"; do
			row=$(grep -E "^\| $t \| [0-9]" <<<"$rows") || fail "$ds, $phase: no row for $t"
			# wall, CPU, RSS: numbers; the wall time is not zero.
			IFS='|' read -r _ _ wall cpu rss bytes _ <<<"$row"
			[[ $wall =~ ^\ *[0-9]+\.[0-9]+\ *$ && $cpu =~ [0-9] && $rss =~ [0-9] && $bytes =~ [0-9] ]] ||
				fail "$ds, $phase, $t: a malformed row: $row"
		done
	done
	ok "$ds: a row for every tool in each of the six phases"
	grep -q "^\*\*$ds — summary: cairn/x" "$report" || fail "$ds: no summary table"
	grep -Eq '^\| pg_basebackup \| [0-9.]+ \(' "$report" || fail "$ds: no cairn/pg_basebackup ratios in the summary"
done
ok "summary tables with the cairn/peer ratios"

grep -q '^Machine: [0-9]* cores' "$report" || fail "no machine line"
grep -q 'pg_basebackup (PostgreSQL) 15' "$report" || fail "no pg_basebackup version"
grep -q 'cairn under test' "$report" || fail "no cairn version"
grep -Eq '^## bench/compare.sh .*\(20[0-9]{2}-[0-9]{2}-[0-9]{2}' "$report" || fail "no date"
ok "the report names the date, the machine and the versions"
finish
