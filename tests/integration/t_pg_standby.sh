#!/usr/bin/env bash
# PostgreSQL base backup taken from a streaming hot standby: the primary
# archives with cairn archive-push; the standby (pg_basebackup -R -X stream,
# archive_mode off) is backed up with --pgdata/--pg-conn pointing at it.
# cairn warns that the standby does not archive and does not wait for the
# WAL; the test switches WAL on the primary and waits for it instead.  The
# snapshot is listed, its backup_label says "BACKUP FROM: standby", and a
# restore to the end of the archive equals the primary (row counts and
# pg_dumpall).  Everything cairn does runs as the postgres user.
T_NAME=t_pg_standby
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require
[[ -x $pg_bin/pg_basebackup ]] || skip_all "pg_basebackup missing in $pg_bin"

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache" "$W/restore" "$W/standby"
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

expect_rc 0 asp env CAIRN_PASSWORD=sb-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=sb-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"
ok "repository and host key made as postgres"

# ---- the primary -------------------------------------------------------------
pg_init primary
pg_conf primary "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
grep -Eq '^local[[:space:]]+replication[[:space:]]+all[[:space:]]+trust' "$(pg_datadir primary)/pg_hba.conf" ||
	fail "pg_hba.conf of the primary has no 'local replication all trust' line"
pg_start primary
pg_psql primary -c "create table t(id int primary key, note text)"
pg_psql primary -c "insert into t select g, 'before standby' from generate_series(1,3000) g"
pg_psql primary -c "create table big as select g, md5(g::text) h from generate_series(1,100000) g"

# ---- the standby -------------------------------------------------------------
if ! asp "$pg_bin/pg_basebackup" -R -D "$W/standby" -h "$(pg_sockdir primary)" \
	-p "$(pg_port primary)" -U postgres -X stream -c fast >"$SCRATCH/basebackup.log" 2>&1; then
	cat "$SCRATCH/basebackup.log"
	fail "pg_basebackup of the primary failed"
fi
[[ -e $W/standby/standby.signal ]] || fail "pg_basebackup -R made no standby.signal"
pg_attach standby "$W/standby"
pg_conf standby "hot_standby = on" "archive_mode = off"
pg_start standby
[[ $(pg_psql standby -c "select pg_is_in_recovery()") == t ]] || fail "the standby is not in recovery"
for _ in $(seq 1 150); do
	[[ $(pg_psql standby -c "select count(*) from pg_stat_wal_receiver where status = 'streaming'") == 1 ]] && break
	sleep 0.2
done
[[ $(pg_psql standby -c "select count(*) from pg_stat_wal_receiver where status = 'streaming'") == 1 ]] ||
	fail "the standby does not stream from the primary"
ok "hot standby streaming from the primary"

# Wait until the standby has replayed everything the primary wrote so far.
wait_replayed() {
	local lsn
	lsn=$(pg_psql primary -c "select pg_current_wal_lsn()")
	for _ in $(seq 1 150); do
		[[ $(pg_psql standby -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn") == t ]] && return 0
		sleep 0.2
	done
	fail "the standby did not replay up to $lsn within 30 s"
}

pg_psql primary -c "insert into t select g, 'on standby too' from generate_series(3001,4000) g"
# A checkpoint on the primary gives the standby a recent restartpoint for
# pg_backup_start.
pg_psql primary -c "checkpoint"
wait_replayed
[[ $(pg_psql standby -c "select count(*) from t") == 4000 ]] || fail "the standby lacks rows"
ok "the standby replayed the primary's rows"

# ---- backup from the standby -----------------------------------------------
expect_rc 0 cp_ backup --pgdata "$(pg_datadir standby)" --pg-conn "$(pg_connstr standby)" \
	--tag from-standby --json
is_json "$LAST_OUT" || fail "backup --json is not JSON"
expect_stderr_grep "archive_mode is off on this standby"
snap=$(jget "$LAST_OUT" snapshot)
stop_wal=$(jget "$LAST_OUT" stop_wal)
cluster=$(jget "$LAST_OUT" cluster)
sysid=$(pg_psql primary -c "select system_identifier from pg_control_system()")
[[ $cluster == "$sysid" ]] || fail "the standby's backup is filed under cluster $cluster, not the primary's $sysid"
ok "backup $snap from the standby: warns that the standby does not archive; same cluster as the primary"
# It did not wait for the WAL: the backup's last segment is normally still
# being written on the primary (had cairn waited for it, the backup would
# have failed after its 60 s limit).
run_rc cp_ archive-get --cluster "$cluster" "$stop_wal" "$W/early.wal"
if [[ $LAST_RC == 1 ]]; then
	ok "the backup ended before $stop_wal was archived: cairn did not wait for it"
elif [[ $LAST_RC == 0 ]]; then
	echo "# note: $stop_wal was archived already when the backup ended"
else
	fail "archive-get $stop_wal exited $LAST_RC: $(cat "$LAST_ERR")"
fi

expect_rc 0 cp_ snapshots --json
is_json "$LAST_OUT" || fail "snapshots --json is not JSON"
python3 - "$LAST_OUT" "$snap" <<'EOF' || fail "snapshots --json does not list $snap with its tag"
import json, sys
snaps = json.load(open(sys.argv[1]))
s = [x for x in snaps if x["id"] == sys.argv[2]]
assert len(s) == 1 and "from-standby" in s[0]["tags"] and not s[0]["incomplete"], snaps
EOF
expect_rc 0 cp_ cat "$snap" backup_label
expect_stdout_grep "^BACKUP FROM: standby$"
expect_stdout_grep "^START WAL LOCATION: "
expect_rc 0 cp_ ls "$snap"
expect_stdout_grep "PG_VERSION"
! grep -q 'standby.signal' "$LAST_OUT" || fail "standby.signal was backed up"
expect_rc 0 cp_ info --json
python3 - "$LAST_OUT" "$snap" <<'EOF' || fail "info --json does not show $snap on timeline 1"
import json, sys
info = json.load(open(sys.argv[1]))
s = [x for c in info for x in c["snapshots"] if x["id"] == sys.argv[2]]
assert len(s) == 1 and s[0]["timeline"] == 1, info
EOF
ok "snapshot listed; its backup_label says BACKUP FROM: standby; no standby.signal in it"

# More rows after the backup, then make sure the WAL reaches the repository
# (the standby does not archive: the primary does).
pg_psql primary -c "insert into t select g, 'after backup' from generate_series(4001,4500) g"
pg_psql primary -c "delete from big where g % 10 = 0"
pg_psql primary -c "select pg_switch_wal()" >/dev/null
for _ in $(seq 1 150); do
	[[ $(pg_psql primary -c "select coalesce(last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1), false)
		from pg_stat_archiver") == t ]] && break
	sleep 0.2
done
[[ $(pg_psql primary -c "select coalesce(last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1), false)
	from pg_stat_archiver") == t ]] || fail "the primary did not archive its switched segment within 30 s"
expect_rc 0 cp_ archive-get --cluster "$cluster" "$stop_wal" "$W/stop.wal"
ok "the primary archived the WAL the backup needs (through $stop_wal and beyond)"

# ---- restore to the end of the archive ---------------------------------------
expect_rc 0 cp_ restore "$snap" --target "$W/restore/r" --json
is_json "$LAST_OUT" || fail "restore --json is not JSON"
[[ $(jget "$LAST_OUT" snapshot) == "$snap" && $(jget "$LAST_OUT" timeline) == 1 ]] ||
	fail "restore: unexpected plan $(cat "$LAST_OUT")"
[[ ! -e $W/restore/r/standby.signal ]] || fail "the restore made a standby, not a recovering copy"
pg_attach r "$W/restore/r"
pg_conf r "archive_mode = off"
pg_start r
for _ in $(seq 1 150); do
	[[ $(pg_psql r -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql r -c "select pg_is_in_recovery()") == f ]] || fail "the restored copy is still in recovery after 30 s"
ok "the restored copy recovered and promoted"

counts() { pg_psql "$1" -c "select (select count(*) from t) || '/' || (select count(*) from big) || '/' || (select max(id) from t)"; }
[[ $(counts r) == "$(counts primary)" ]] || fail "row counts differ: restored $(counts r), primary $(counts primary)"
[[ $(counts r) == 4500/90000/4500 ]] || fail "unexpected row counts $(counts r)"
dumpall() { # cluster -> stdout, without the random \restrict keys of pg_dump 15.14+
	pg_run_as_postgres "$pg_bin/pg_dumpall" -h "$(pg_sockdir "$1")" -p "$(pg_port "$1")" -U postgres |
		grep -Ev '^\\(un)?restrict '
}
dumpall primary >"$SCRATCH/primary.sql"
dumpall r >"$SCRATCH/r.sql"
[[ -s $SCRATCH/primary.sql ]] || fail "pg_dumpall printed nothing"
if ! cmp -s "$SCRATCH/primary.sql" "$SCRATCH/r.sql"; then
	diff "$SCRATCH/primary.sql" "$SCRATCH/r.sql" | head -n 20
	fail "pg_dumpall of the restored copy differs from the primary"
fi
ok "restore of the standby backup to the end of the archive equals the primary (counts, pg_dumpall)"
pg_psql r -c "insert into t values (100000, 'writable')"
ok "the restored copy is writable"
pg_stop r

# ---- the same backup to its consistent end ---------------------------------
expect_rc 0 cp_ restore "$snap" --target "$W/restore/imm" --immediate
pg_attach imm "$W/restore/imm"
pg_conf imm "archive_mode = off"
pg_start imm
for _ in $(seq 1 150); do
	[[ $(pg_psql imm -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql imm -c "select pg_is_in_recovery()") == f ]] || fail "the --immediate copy is still in recovery after 30 s"
[[ $(counts imm) == 4000/100000/4000 ]] || fail "--immediate: row counts $(counts imm), want the backup's 4000/100000/4000"
ok "the standby backup restores to its consistent end (--immediate): the rows of backup time"

# cairn also ran inside the servers (archive_command, restore_command):
# their logs must hold no sanitizer report.
if grep -lE 'ERROR: (Address|Leak|Undefined|Memory)Sanitizer|runtime error:' "$PGSCRATCH"/*.log; then
	fail "a sanitizer report in a server log (cairn run by archive_command or restore_command)"
fi
ok "no sanitizer report in the servers' logs"

finish
