#!/usr/bin/env bash
# PostgreSQL end to end: WAL archiving with archive-push, base backups
# (second one incremental), restore + start + pg_dumpall equality, and
# point-in-time recovery by time, by LSN and by restore point name: rows
# committed before the target are there, rows after are not, and the
# cluster is promoted and writable.  Everything cairn does runs as the
# postgres user, as a DBA would run it.
T_NAME=t_pg_pitr
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

# The repository, cache and host key belong to postgres.
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

expect_rc 0 asp env CAIRN_PASSWORD=pitr-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" init
ok "init as postgres"
expect_rc 0 asp env CAIRN_PASSWORD=pitr-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" key export-host-key "$W/host.key"
[[ $(stat -c %a "$W/host.key") == 600 ]] || fail "host key file is not mode 600"
ok "host key exported, mode 600"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
psql_src() { pg_psql src "$@"; }
psql_src -c "create table t(id int primary key, note text)"
psql_src -c "insert into t select g, 'before backup' from generate_series(1,5000) g"
psql_src -c "create table big as select g, md5(g::text) h from generate_series(1,200000) g"
# Files written within 2 s of a backup's start are read again next time
# (their mtime cannot prove they did not change): let them age.
psql_src -c "checkpoint"
sleep 2.5

expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json --tag base
is_json "$LAST_OUT" || fail "backup --json is not JSON"
snap1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")
read1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_read"])' "$LAST_OUT")
stored1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_stored"])' "$LAST_OUT")
ok "base backup $snap1 (read $read1, stored $stored1)"

# A little change, then a second backup: it reads and stores far less.
psql_src -c "insert into t select g, 'after backup 1' from generate_series(5001,5100) g"
psql_src -c "checkpoint"
t_before2=$(psql_src -c "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 0.2
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
snap2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")
read2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_read"])' "$LAST_OUT")
stored2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_stored"])' "$LAST_OUT")
((read2 * 2 < read1)) || fail "second backup read $read2 bytes, not much less than $read1"
((stored2 * 5 < stored1)) || fail "second backup stored $stored2 bytes, not much less than $stored1"
ok "second backup $snap2 read $read2 of $read1 bytes, stored $stored2 of $stored1"

# Three points in time, each marked and each followed by a change.
psql_src -c "insert into t values (10001, 'row A')"
sleep 1.2
t_a=$(psql_src -c "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.2
psql_src -c "insert into t values (10002, 'row B')"
lsn_b=$(psql_src -c "select pg_current_wal_insert_lsn()")
psql_src -c "insert into t values (10003, 'row C')"
psql_src -c "select pg_create_restore_point('before_drop')" >/dev/null
psql_src -c "drop table big"
psql_src -c "insert into t values (10004, 'row D')"
psql_src -c "select pg_switch_wal()" >/dev/null
# Wait until the switched segment is archived.
for _ in $(seq 1 100); do
	n=$(psql_src -c "select archived_count from pg_stat_archiver")
	f=$(psql_src -c "select coalesce(last_failed_wal,'') from pg_stat_archiver")
	[[ $(psql_src -c "select last_archived_wal = pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver") == t ]] && break
	sleep 0.2
done
ok "archived $n segments (last failure: ${f:-none})"

expect_rc 0 cp_ info
expect_stdout_grep "base backups"
expect_stdout_grep "timeline 1"
expect_rc 0 cp_ info --json
is_json "$LAST_OUT" || fail "info --json is not JSON"
ok "info lists the backups and the archived WAL"

# Recover a copy to a target and start it.
recover() { # name, restore args...
	local name=$1; shift
	local dir=$W/restore/$name
	expect_rc 0 cp_ restore --target "$dir" "$@"
	pg_attach "$name" "$dir"
	# These copies are checks, not the new primary: they must not archive
	# a new timeline into the repository (the timeline test does that).
	pg_conf "$name" "archive_mode = off"
	pg_start "$name"
	# Wait for recovery to end (promotion).
	for _ in $(seq 1 150); do
		[[ $(pg_psql "$name" -c "select pg_is_in_recovery()") == f ]] && return 0
		sleep 0.2
	done
	fail "$name: still in recovery after 30 s"
}
rows() { pg_psql "$1" -c "select string_agg(id::text, ',' order by id) from t where id > 10000"; }

# 1. To the end of the archive: identical to the source (pg_dumpall).
recover latest
pg_psql src -c "checkpoint" >/dev/null
dumpall() { # cluster -> stdout, without the random \restrict keys of pg_dump 15.14+
	pg_run_as_postgres "$pg_bin/pg_dumpall" -h "$(pg_sockdir "$1")" -p "$(pg_port "$1")" -U postgres |
		grep -Ev '^\\(un)?restrict '
}
dumpall src >"$SCRATCH/src.sql"
dumpall latest >"$SCRATCH/latest.sql"
[[ -s $SCRATCH/src.sql ]] || fail "pg_dumpall printed nothing"
cmp -s "$SCRATCH/src.sql" "$SCRATCH/latest.sql" || fail "pg_dumpall of the restored cluster differs"
ok "restore to the end of the archive: pg_dumpall identical"
pg_psql latest -c "insert into t values (20000, 'writable')"
ok "the restored cluster is promoted and writable"
pg_stop latest

# 2. By time: row A is there, B, C, D are not.
recover bytime --target-time "$t_a"
[[ $(rows bytime) == 10001 ]] || fail "by time: rows $(rows bytime), want 10001"
pg_psql bytime -c "insert into t values (20000, 'writable')"
ok "PITR by time: rows before the target only, promoted, writable"
pg_stop bytime

# 3. By LSN: A and B.
recover bylsn --target-lsn "$lsn_b"
[[ $(rows bylsn) == 10001,10002 ]] || fail "by LSN: rows $(rows bylsn), want 10001,10002"
ok "PITR by LSN"
pg_stop bylsn

# 4. By restore point: A, B, C, and the table not yet dropped.
recover byname --target-name before_drop
[[ $(rows byname) == 10001,10002,10003 ]] || fail "by name: rows $(rows byname)"
[[ $(pg_psql byname -c "select count(*) from big") == 200000 ]] || fail "by name: table big is gone"
ok "PITR by restore point name"
pg_stop byname

# 5. Immediate: consistent end of the first backup's WAL.
recover imm "$snap1" --immediate
[[ -z $(rows imm) ]] || fail "immediate: rows $(rows imm) after the backup"
[[ $(pg_psql imm -c "select count(*) from t") == 5000 ]] || fail "immediate: wrong row count"
ok "restore of the first snapshot to its consistent end (--immediate)"
pg_stop imm

# Refusals, before anything is written.
expect_rc 2 cp_ restore --target "$W/restore/future" --target-time "2999-01-01 00:00:00+00"
expect_stderr_grep "in the future"
expect_rc 2 cp_ restore --target "$W/restore/early" --target-time "2001-01-01 00:00:00+00"
expect_stderr_grep "before the first base backup"
expect_rc 2 cp_ restore "$snap2" --target "$W/restore/early2" --target-time "$t_before2"
expect_stderr_grep "before the end of snapshot"
expect_rc 2 cp_ restore "$snap2" --target "$W/restore/early3" --target-time "$t_a" --cluster x
expect_stderr_grep "belongs to cluster"
for d in future early early2 early3; do
	[[ ! -e $W/restore/$d ]] || fail "a refused restore wrote files ($d)"
done
ok "targets in the future or before the first backup are refused, nothing written"

# archive-push contract: same content again is fine, other content is not.
seg=$(ls "$(pg_datadir src)/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -1)
name=$(psql_src -c "select last_archived_wal from pg_stat_archiver")
cp "$(pg_datadir src)/pg_wal/$seg" "$W/$name"
chmod 644 "$W/$name"
expect_rc 1 cp_ archive-push "$W/$name" --cluster "$(pg_run_as_postgres "$CAIRN_BIN" --config "$conf" info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["cluster"])')"
expect_stderr_grep "different content"
ok "archive-push of an archived name with other content fails and says so"

# archive-get: a missing file exits 1 quietly; a fetched one is identical.
cluster=$(cp_ info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["cluster"])')
expect_rc 1 cp_ archive-get --cluster "$cluster" 0000000900000000000000FF "$W/x"
[[ ! -s $LAST_ERR ]] || fail "archive-get of a missing file was not quiet: $(cat "$LAST_ERR")"
expect_rc 0 cp_ archive-get --cluster "$cluster" "$name" "$W/restore/got"
ok "archive-get: missing file exits 1 quietly, archived file fetched"

# A damaged WAL entry: archive-get fails loudly with 127 (recovery stops).
entry=$(ls "$W/repo/wal/$cluster/" | head -1)
printf '\x01' | dd of="$W/repo/wal/$cluster/$entry" bs=1 seek=60 conv=notrunc 2>/dev/null
upper=$(echo "$entry" | tr a-f A-F)
expect_rc 127 cp_ archive-get --cluster "$cluster" "$upper" "$W/restore/bad"
expect_stderr_grep "error"
[[ ! -e $W/restore/bad ]] || fail "archive-get left a file that failed verification"
ok "a damaged WAL entry: archive-get exits 127, leaves no file"

expect_rc 3 cp_ check
expect_stdout_grep "WAL entry $upper"
ok "check names the damaged WAL entry and exits 3"

finish
