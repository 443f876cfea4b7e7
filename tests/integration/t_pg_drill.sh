#!/usr/bin/env bash
# Restore drills and monitoring: verify-restore restores the newest base
# backup into a temporary folder, starts a private PostgreSQL on it, runs
# pg_amcheck and queries every database, cleans up, and records the result;
# status (human, JSON, Prometheus) shows backup and WAL ages, the PITR
# window and the last drill.  A drill over damaged data fails and says so.
T_NAME=t_pg_drill
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache" "$W/tmp"
unset CAIRN_REPOSITORY CAIRN_CACHE_DIR CAIRN_PASSWORD
conf=$W/cairn.conf
printf 'repo = %s\nkey-file = %s\ncache-dir = %s\n' "$W/repo" "$W/host.key" "$W/pgcache" >"$conf"
chmod 644 "$conf"
cp_() { pg_run_as_postgres env TMPDIR="$W/tmp" "$CAIRN_BIN" --config "$conf" "$@"; }
expect_rc 0 pg_run_as_postgres env CAIRN_PASSWORD=p "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 pg_run_as_postgres env CAIRN_PASSWORD=p "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"

pg_init src
pg_conf src "archive_mode = on" "archive_command = '$CAIRN_BIN --config $conf archive-push %p'"
pg_start src
pg_psql src -c "create table items as select g id, md5(g::text) v from generate_series(1,30000) g"
pg_psql src -c "create database other"
pg_psql src -d other -c "create table t as select g from generate_series(1,1234) g"

expect_rc 0 cp_ status
expect_stdout_grep "last restore drill: never"
ok "status before any backup or drill"

expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" -q
expect_rc 0 cp_ verify-restore --json
is_json "$LAST_OUT" || fail "verify-restore --json is not JSON"
python3 - "$LAST_OUT" <<'PY' || fail "the drill result is not as expected: $(cat "$LAST_OUT")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] is True, r
assert r["databases"] >= 3, r
rows = {(t["database"], t["table"]): t["rows"] for t in r["tables"]}
assert rows[("postgres", "public.items")] == 30000, rows
assert rows[("other", "public.t")] == 1234, rows
assert "pg_amcheck clean" in r["detail"], r
PY
ok "verify-restore passed: pg_amcheck clean, row counts of the largest tables"
[[ -z $(ls "$W/tmp") ]] || fail "the drill left files behind: $(ls "$W/tmp")"
[[ -z $(pgrep -f "$W/tmp" || true) ]] || fail "the drill left a server running"
ok "the drill cleaned up: no folder, no server left"

expect_rc 0 cp_ status
expect_stdout_grep "last restore drill: passed"
expect_stdout_grep "newest base backup"
expect_rc 0 cp_ status --json
is_json "$LAST_OUT" || fail "status --json is not JSON"
python3 - "$LAST_OUT" <<'PY' || fail "status --json: $(cat "$LAST_OUT")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["last_drill"]["ok"] is True
c = s["clusters"][0]
assert c["newest_snapshot"] and c["snapshot_age_seconds"] < 600 and c["wal_gaps"] == 0, c
assert c["newest_wal"], c
PY
expect_rc 0 cp_ status --prometheus
expect_stdout_grep '^cairn_drill_ok 1$'
expect_stdout_grep '^cairn_snapshot_age_seconds\{cluster="[0-9]+"\} [0-9]+$'
expect_stdout_grep '^cairn_repository_stored_bytes [0-9]+$'
ok "status in human, JSON and Prometheus form"

# Damage: every data pack gets a flipped byte; the drill must fail.
for p in $(find "$W/repo/packs" -type f); do
	printf '\x5a' | dd of="$p" bs=1 seek=4000 conv=notrunc 2>/dev/null
done
run_rc cp_ verify-restore
[[ $LAST_RC != 0 ]] || fail "a drill over damaged packs passed"
expect_rc 0 cp_ status --json
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["last_drill"]["ok"] is False' "$LAST_OUT" ||
	fail "status does not show the failed drill"
ok "a drill over damaged data fails (exit $LAST_RC) and status shows it"
finish
