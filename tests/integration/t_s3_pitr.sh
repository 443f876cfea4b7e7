#!/usr/bin/env bash
# t_s3_pitr.sh — PostgreSQL point-in-time recovery with the repository on
# S3 (Ceph radosgw from the CTest fixture "s3"): archive_command and
# restore_command run `cairn archive-push` / `archive-get` against S3, a
# base backup goes to S3, and a copy is recovered to a time between two
# commits: the row before the target is there, the one after is not, and
# the cluster is promoted and writable; a recovery to the end of the
# archive has every row.  Everything cairn does runs as the postgres user.
# The S3 endpoint is in the --config file; the credentials reach the
# servers (and so archive_command) through the environment, as
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY only can.
T_NAME=t_s3_pitr
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/pgcache" "$W/restore"
repo=$CAIRN_REPOSITORY
unset CAIRN_REPOSITORY CAIRN_CACHE_DIR CAIRN_PASSWORD
conf=$W/cairn.conf
s3_write_conf "$conf" "$repo" "$W/host.key" "$CAIRN_S3_ENDPOINT" "$W/pgcache"
echo "s3-uri-style = path" >>"$conf"
# Only the config names the endpoint; the credentials stay exported (the
# postmasters started below inherit them, and archive_command with them).
ep=$CAIRN_S3_ENDPOINT
unset CAIRN_S3_ENDPOINT
asp() { pg_run_as_postgres "$@"; }
cp_() { asp "$CAIRN_BIN" --config "$conf" "$@"; }

expect_rc 0 asp env CAIRN_PASSWORD=pitr-pass "$CAIRN_BIN" -r "$repo" \
	--cache-dir "$W/pgcache" --s3-endpoint "$ep" init
expect_rc 0 asp env CAIRN_PASSWORD=pitr-pass "$CAIRN_BIN" -r "$repo" \
	--cache-dir "$W/pgcache" --s3-endpoint "$ep" key export-host-key "$W/host.key"
ok "init on S3 and a host key, as postgres"
expect_rc 0 cp_ snapshots
ok "the config file's s3-endpoint opens the repository"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
psql_src() { pg_psql src "$@"; }
psql_src -c "create table t(id int primary key, note text)"
psql_src -c "insert into t select g, 'before backup' from generate_series(1,5000) g"
psql_src -c "create table big as select g, md5(g::text) h from generate_series(1,100000) g"
psql_src -c "checkpoint"

T0=$(now_s)
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
snap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$LAST_OUT")
echo "# base backup to S3: $(elapsed "$T0" "$(now_s)") s"
ok "base backup $snap to S3"

psql_src -c "insert into t values (10001, 'row A')"
sleep 1.2
t_a=$(psql_src -c "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.2
psql_src -c "insert into t values (10002, 'row B')"
psql_src -c "select pg_switch_wal()" >/dev/null
archived=0
for _ in $(seq 1 150); do
	if [[ $(psql_src -c "select last_archived_wal = pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver") == t ]]; then
		archived=1
		break
	fi
	sleep 0.2
done
failed=$(psql_src -c "select failed_count from pg_stat_archiver")
((archived)) || fail "WAL was not archived to S3 within 30 s ($failed failures; see $(pg_logfile src))"
ok "WAL archived to S3 by archive_command ($(psql_src -c "select archived_count from pg_stat_archiver") segments, $failed failures)"
PFX=$(s3_repo_prefix "$repo")
nwal=$(s3_keys "$PFX/wal/" | wc -l)
((nwal >= 2)) || fail "expected WAL entries under $PFX/wal/ on S3, found $nwal"
ok "$nwal WAL entries on S3"

expect_rc 0 cp_ info
expect_stdout_grep "timeline 1"

recover() { # name, restore args...
	local name=$1
	shift
	s3_pg_recover "$name" "$W/restore/$name" cp_ "$@"
}
rows() { pg_psql "$1" -c "select string_agg(id::text, ',' order by id) from t where id > 10000"; }

T0=$(now_s)
recover bytime --target-time "$t_a"
echo "# restore + recovery by time from S3: $(elapsed "$T0" "$(now_s)") s"
[[ $(rows bytime) == 10001 ]] || fail "by time: rows $(rows bytime), want 10001"
[[ $(pg_psql bytime -c "select count(*) from t") == 5001 ]] || fail "by time: wrong row count"
[[ $(pg_psql bytime -c "select count(*) from big") == 100000 ]] || fail "by time: table big incomplete"
pg_psql bytime -c "insert into t values (20000, 'writable')"
ok "PITR by time from S3: the row before the target only, promoted, writable"
pg_stop bytime

recover latest
[[ $(rows latest) == 10001,10002 ]] || fail "to the end: rows $(rows latest), want 10001,10002"
ok "recovery to the end of the archive on S3 has every row"
pg_stop latest

cluster=$(cp_ info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["cluster"])')
expect_rc 1 cp_ archive-get --cluster "$cluster" 0000000900000000000000FF "$W/x"
ok "archive-get of a segment that is not on S3 exits 1"

expect_rc 0 cp_ check --read-data
ok "check --read-data of the S3 repository passes"

finish
