#!/usr/bin/env bash
# PostgreSQL timelines: a primary archives with cairn and is backed up; a
# point-in-time restore to T1 becomes the new primary (it keeps archiving
# into the same repository, promotes to timeline 2 and archives
# 00000002.history); the old primary is stopped.  Then:
#   - a restore to the newest point (no target, no snapshot named) follows
#     the timeline history: it has the rows of timeline 2 and not the rows
#     the old primary wrote on timeline 1 after T1;
#   - a base backup taken on timeline 2 restores (--immediate);
#   - --target-timeline 1 restores timeline 1's own history, with the old
#     primary's later rows.
# Everything cairn does runs as the postgres user.
T_NAME=t_pg_timeline
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache" "$W/restore"
unset CAIRN_REPOSITORY CAIRN_CACHE_DIR CAIRN_PASSWORD
conf=$W/cairn.conf
cat >"$conf" <<EOC
repo = $W/repo
key-file = $W/host.key
cache-dir = $W/pgcache
EOC
chmod 644 "$conf"
asp() { pg_run_as_postgres "$@"; }
cp_() { asp "$CAIRN_BIN" --config "$conf" "$@"; }
jget() { # FILE KEY: a top-level field of a JSON object
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

expect_rc 0 asp env CAIRN_PASSWORD=tl-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=tl-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"
ok "repository and host key made as postgres"

# Rows are tagged by when they were written; summary shows "note:count,...".
summary() {
	pg_psql "$1" -c "select string_agg(note || ':' || n, ',' order by note)
		from (select note, count(*) n from t group by note) x"
}
timeline_of() { pg_psql "$1" -c "select timeline_id from pg_control_checkpoint()"; }
# Wait until the segment before the current insert position is archived.
wait_archived() {
	local name=$1
	for _ in $(seq 1 150); do
		[[ $(pg_psql "$name" -c "select coalesce(last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1), false)
			from pg_stat_archiver") == t ]] && return 0
		sleep 0.2
	done
	pg_psql "$name" -c "select * from pg_stat_archiver" >&2 || true
	fail "$name: WAL not archived after 30 s"
}
wait_promoted() {
	local name=$1
	for _ in $(seq 1 150); do
		[[ $(pg_psql "$name" -c "select pg_is_in_recovery()") == f ]] && return 0
		sleep 0.2
	done
	tail -n 30 "$(pg_logfile "$name")" >&2
	fail "$name: still in recovery after 30 s"
}
# A restored copy used only for checking: it must not archive.
check_copy() { # name, restore args...
	local name=$1
	shift
	expect_rc 0 cp_ restore --target "$W/restore/$name" --json "$@"
	is_json "$LAST_OUT" || fail "restore --json is not JSON"
	cp "$LAST_OUT" "$W/$name.restore.json"
	pg_attach "$name" "$W/restore/$name"
	pg_conf "$name" "archive_mode = off"
	pg_start "$name"
	wait_promoted "$name"
}

# ---- timeline 1: the old primary ---------------------------------------------
pg_init old
pg_conf old "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start old
pg_psql old -c "create table t(id serial primary key, note text not null)"
pg_psql old -c "insert into t(note) select 'a-base' from generate_series(1,1000)"
pg_psql old -c "checkpoint"

expect_rc 0 cp_ backup --pgdata "$(pg_datadir old)" --pg-conn "$(pg_connstr old)" --json
snap1=$(jget "$LAST_OUT" snapshot)
[[ $(jget "$LAST_OUT" timeline) == 1 ]] || fail "the first backup is not on timeline 1"
cluster=$(jget "$LAST_OUT" cluster)
ok "base backup $snap1 on timeline 1"

pg_psql old -c "insert into t(note) select 'b-tl1-before-T1' from generate_series(1,10)"
sleep 1.2
T1=$(pg_psql old -c "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.2
pg_psql old -c "insert into t(note) select 'c-tl1-after-T1' from generate_series(1,20)"
pg_psql old -c "select pg_switch_wal()" >/dev/null
wait_archived old
[[ $(summary old) == "a-base:1000,b-tl1-before-T1:10,c-tl1-after-T1:20" ]] ||
	fail "old primary: unexpected rows $(summary old)"
ok "old primary wrote rows before and after T1 ($T1), archived"

# ---- the incident: restore to T1 as the new primary ------------------------
expect_rc 0 cp_ restore --target "$W/restore/newp" --target-time "$T1" --json
[[ $(jget "$LAST_OUT" snapshot) == "$snap1" && $(jget "$LAST_OUT" timeline) == 1 ]] ||
	fail "restore to T1: unexpected plan $(cat "$LAST_OUT")"
pg_attach newp "$W/restore/newp"
# It keeps the archive_command it was backed up with: it archives too.
grep -q "archive-push" "$W/restore/newp/postgresql.conf" || fail "restored postgresql.conf lost archive_command"
pg_start newp
wait_promoted newp
[[ $(timeline_of newp) == 2 ]] || fail "new primary is on timeline $(timeline_of newp), want 2"
[[ $(summary newp) == "a-base:1000,b-tl1-before-T1:10" ]] ||
	fail "new primary (recovered to T1): rows $(summary newp)"
ok "restored to T1 and promoted: timeline 2, rows up to T1 only"

got=0
for _ in $(seq 1 150); do
	run_rc cp_ archive-get --cluster "$cluster" 00000002.history "$W/tl2.history"
	if [[ $LAST_RC == 0 ]]; then
		got=1
		break
	fi
	sleep 0.2
done
((got)) || fail "00000002.history was not archived within 30 s (archive-get exit $LAST_RC: $(cat "$LAST_ERR"))"
grep -Eq '^1[[:space:]]+[0-9A-F]+/[0-9A-F]+' "$W/tl2.history" ||
	fail "00000002.history does not name timeline 1's switchpoint: $(cat "$W/tl2.history")"
ok "00000002.history archived by the new primary"

pg_stop old
ok "old primary stopped"

pg_psql newp -c "insert into t(note) select 'd-tl2' from generate_series(1,30)"
pg_psql newp -c "select pg_switch_wal()" >/dev/null
wait_archived newp
expect_rc 0 cp_ info
expect_stdout_grep "timeline 2: 00000002"
expect_stdout_grep "timeline 1: 00000001"
expect_rc 0 cp_ info --json
is_json "$LAST_OUT" || fail "info --json is not JSON"
python3 - "$LAST_OUT" <<'EOF' || fail "info --json lists no WAL run of timeline 2"
import json, sys
info = json.load(open(sys.argv[1]))
assert any(w["timeline"] == 2 for c in info for w in c["wal"])
EOF
ok "timeline 2 WAL archived; info shows timelines 1 and 2"

# ---- restore to the newest point: follows the history to timeline 2 --------
check_copy latest
[[ $(jget "$W/latest.restore.json" timeline) == 2 ]] ||
	fail "restore to the end followed timeline $(jget "$W/latest.restore.json" timeline), want 2"
[[ $(jget "$W/latest.restore.json" snapshot) == "$snap1" ]] || fail "restore to the end used another snapshot"
grep -q "recovery_target_timeline = 'latest'" "$W/restore/latest/postgresql.auto.conf" ||
	fail "recovery_target_timeline latest not written"
s=$(summary latest)
[[ $s == "a-base:1000,b-tl1-before-T1:10,d-tl2:30" ]] ||
	fail "restore to the end: rows $s, want timeline 2's (and not c-tl1-after-T1)"
[[ $(timeline_of latest) == 3 ]] || fail "restore to the end promoted to timeline $(timeline_of latest), want 3"
ok "restore to the newest point followed timeline 2: its rows, not the old primary's after T1"
pg_stop latest

# ---- a base backup on timeline 2 ---------------------------------------------
pg_psql newp -c "checkpoint"
expect_rc 0 cp_ backup --pgdata "$(pg_datadir newp)" --pg-conn "$(pg_connstr newp)" --json
snap2=$(jget "$LAST_OUT" snapshot)
[[ $(jget "$LAST_OUT" timeline) == 2 ]] || fail "the backup of the new primary is not on timeline 2"
[[ $(jget "$LAST_OUT" start_wal) == 00000002* ]] || fail "start_wal $(jget "$LAST_OUT" start_wal) is not on timeline 2"
ok "base backup $snap2 on timeline 2"
pg_psql newp -c "insert into t(note) select 'e-tl2-after-backup2' from generate_series(1,40)"

check_copy tl2imm "$snap2" --immediate
[[ $(jget "$W/tl2imm.restore.json" timeline) == 2 ]] || fail "--immediate restore of $snap2 not on timeline 2"
s=$(summary tl2imm)
[[ $s == "a-base:1000,b-tl1-before-T1:10,d-tl2:30" ]] || fail "timeline 2 backup, --immediate: rows $s"
pg_psql tl2imm -c "insert into t(note) values ('writable')"
ok "the timeline 2 backup restores to its consistent end (--immediate), writable"
pg_stop tl2imm

# ---- timeline 1's own history ------------------------------------------------
check_copy tl1 "$snap1" --target-timeline 1
[[ $(jget "$W/tl1.restore.json" timeline) == 1 ]] || fail "--target-timeline 1 followed timeline $(jget "$W/tl1.restore.json" timeline)"
grep -q "recovery_target_timeline = '1'" "$W/restore/tl1/postgresql.auto.conf" ||
	fail "recovery_target_timeline 1 not written"
s=$(summary tl1)
[[ $s == "a-base:1000,b-tl1-before-T1:10,c-tl1-after-T1:20" ]] ||
	fail "--target-timeline 1: rows $s, want the old primary's (with c-tl1-after-T1, without d-tl2)"
ok "--target-timeline 1 to the end: the old primary's later rows, none of timeline 2"
pg_stop tl1

# Without a snapshot named, --target-timeline 1 must pick the newest backup
# on timeline 1's history ($snap1), not the newer one on timeline 2.
run_rc cp_ restore --target "$W/restore/tl1b" --target-timeline 1 --json
if [[ $LAST_RC != 0 ]]; then
	bug "restore --target-timeline 1 without SNAPSHOT exits $LAST_RC: $(cat "$LAST_ERR")"
elif [[ $(jget "$LAST_OUT" snapshot) != "$snap1" ]]; then
	bug "restore --target-timeline 1 without SNAPSHOT chose $(jget "$LAST_OUT" snapshot), want $snap1"
else
	ok "--target-timeline 1 without SNAPSHOT chooses the timeline 1 backup"
fi

# cairn also ran inside the servers (archive_command, restore_command):
# their logs must hold no sanitizer report.
if grep -lE 'ERROR: (Address|Leak|Undefined|Memory)Sanitizer|runtime error:' "$PGSCRATCH"/*.log; then
	fail "a sanitizer report in a server log (cairn run by archive_command or restore_command)"
fi
ok "no sanitizer report in the servers' logs"

finish
