#!/usr/bin/env bash
# Retention of PostgreSQL backups and the WAL that follows them: three base
# backups with WAL between; forget --keep-last 2 removes the oldest
# snapshot AND the WAL before the second backup's start (info shows the
# archived range shrink); a restore to a time after the second backup still
# works; --keep-wal-for 1 keeps, for the older kept backup, only the WAL
# from its start to its stop segment; prune afterwards, check passes.
# Everything cairn does runs as the postgres user.
T_NAME=t_pg_forget
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

expect_rc 0 asp env CAIRN_PASSWORD=forget-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=forget-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" key export-host-key "$W/host.key"
ok "init and host key as postgres"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
psql_src() { pg_psql src "$@"; }
psql_src -c "create table t(id int primary key, note text)"

psql_src -c "create table pad(x int)"
# Writes something, so that the switch makes a new segment (after a backup
# the last archived file would otherwise be its .backup file).
wait_archived() {
	psql_src -c "insert into pad values (1)"
	psql_src -c "select pg_switch_wal()" >/dev/null
	for _ in $(seq 1 150); do
		[[ $(psql_src -c "select last_archived_wal = pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver") == t ]] && return 0
		sleep 0.2
	done
	fail "WAL not archived within 30 s"
}

# Some WAL, then a backup; three times.
snaps=()
for b in 1 2 3; do
	psql_src -c "insert into t select g, 'round $b' from generate_series($b * 1000, $b * 1000 + 999) g"
	wait_archived
	psql_src -c "insert into t values ($b, 'x')"
	wait_archived
	expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
	snaps+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")")
	if ((b == 2)); then
		psql_src -c "insert into t values (100, 'after backup 2')"
		sleep 1.2
		t_after2=$(psql_src -c "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
		sleep 1.2
		psql_src -c "insert into t values (101, 'later')"
	fi
	wait_archived
done
psql_src -c "insert into t values (102, 'end')"
wait_archived
ok "three base backups with WAL between"

# The first segment of the archive (timeline 1), from info --json.
first_wal() {
	cp_ info --json | python3 -c 'import json,sys
v=json.load(sys.stdin)[0]
print(min(w["first"] for w in v["wal"] if w["timeline"]==1))'
}
wal_count() { find "$W/repo/wal" -type f | wc -l; }

first0=$(first_wal)
n0=$(wal_count)
expect_rc 0 cp_ forget --keep-last 2 --dry-run
expect_stdout_grep "would remove WAL segments"
[[ $(wal_count) == "$n0" && $(first_wal) == "$first0" ]] || fail "forget --dry-run removed WAL"
ok "forget --dry-run names the WAL it would remove, removes nothing"

expect_rc 0 cp_ forget --keep-last 2
expect_stdout_grep "removing WAL segments"
first1=$(first_wal)
[[ $first1 > $first0 ]] || fail "the archived WAL did not shrink: $first0 -> $first1"
n1=$(wal_count)
((n1 < n0)) || fail "no WAL entry removed ($n0 -> $n1)"
[[ -z $(cp_ snapshots | grep "${snaps[0]:0:8}") ]] || fail "the oldest snapshot is still listed"
ok "forget --keep-last 2 removed the oldest snapshot and the WAL before the second's start ($first0 -> $first1)"

expect_rc 0 cp_ prune
expect_rc 0 cp_ check --read-data
ok "prune, then check --read-data passes"

# A restore to a time after the second backup still works.
expect_rc 0 cp_ restore --target "$W/restore/after2" --target-time "$t_after2"
pg_attach after2 "$W/restore/after2"
pg_conf after2 "archive_mode = off"
pg_start after2
for _ in $(seq 1 150); do
	[[ $(pg_psql after2 -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql after2 -c "select string_agg(id::text, ',' order by id) from t where id between 100 and 199") == 100 ]] ||
	fail "restore to a time after backup 2: wrong rows"
ok "PITR to a time after the second backup works after forget"
pg_stop after2

# --keep-wal-for 1: the older kept backup keeps only its own start..stop.
expect_rc 0 cp_ forget --keep-last 2 --keep-wal-for 1
n2=$(wal_count)
((n2 < n1)) || fail "--keep-wal-for 1 removed no WAL ($n1 -> $n2)"
expect_rc 0 cp_ check
ok "--keep-wal-for 1 removed the WAL between the backups ($n1 -> $n2 entries), check passes"

# The older kept backup still restores to its consistent end.
expect_rc 0 cp_ restore "${snaps[1]}" --target "$W/restore/imm" --immediate
pg_attach imm "$W/restore/imm"
pg_conf imm "archive_mode = off"
pg_start imm
for _ in $(seq 1 150); do
	[[ $(pg_psql imm -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql imm -c "select count(*) from t where id = 2") == 1 ]] || fail "backup 2 at its end: wrong rows"
ok "the older kept backup restores to its consistent end"
pg_stop imm

# The newest keeps its PITR reach: to the end of the archive.
expect_rc 0 cp_ restore --target "$W/restore/latest"
pg_attach latest "$W/restore/latest"
pg_conf latest "archive_mode = off"
pg_start latest
for _ in $(seq 1 150); do
	[[ $(pg_psql latest -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql latest -c "select count(*) from t where id = 102") == 1 ]] || fail "latest: row 102 missing"
ok "the newest backup still recovers to the end of the archive"
pg_stop latest

finish
