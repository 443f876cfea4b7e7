#!/usr/bin/env bash
# PostgreSQL bad input and bad set-ups: each gives a clear error (one
# "cairn: error:" line naming the problem), a non-zero exit, and writes
# nothing (no snapshot, no restore folder):
#   --pgdata not a data folder (exit 2); server down or wrong port (exit 1);
#   a role without the backup functions (exit 1, the message gives the
#   GRANTs, which then suffice); archive_mode off (a warning; the snapshot
#   is written but, its WAL never archived, restore refuses it);
#   archive_command failing (exit 1 after --archive-timeout, no snapshot);
#   a needed WAL segment deleted from the repository (restore refuses, names
#   it, creates no folder).  And --target-xid / --target-name are written to
#   postgresql.auto.conf with restore_command and recovery.signal.
# Everything cairn does runs as the postgres user.
T_NAME=t_pg_errors
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache" "$W/restore" "$W/notpg"
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
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$LAST_OUT" "$1"; }
# Number of snapshots in the repository.
nsnaps() {
	asp "$CAIRN_BIN" --config "$conf" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
# The repository's files but archived WAL (which the servers may add to).
repo_state() {
	(cd "$W/repo" && find . -path ./wal -prune -o -type f -printf '%P %s\n' | LC_ALL=C sort)
}
# One clear error: exactly one "cairn: error:" line, matching RE.
one_error() {
	expect_stderr_grep "$1"
	local n
	n=$(grep -c '^cairn: error:' "$LAST_ERR" || true)
	[[ $n == 1 ]] || { cat "$LAST_ERR"; fail "expected one 'cairn: error:' line, got $n"; }
	grep '^cairn: error:' "$LAST_ERR" | grep -Eq -- "$1" || { cat "$LAST_ERR"; fail "the error line does not say /$1/"; }
}
archive_conf() {
	pg_conf "$1" "archive_mode = on" \
		"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
		"archive_timeout = 0"
}

expect_rc 0 asp env CAIRN_PASSWORD=err-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=err-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"
ok "repository and host key made as postgres"

pg_init src
archive_conf src
pg_start src
src_conn=$(pg_connstr src)
state0=$(repo_state)
[[ $(nsnaps) == 0 ]] || fail "a new repository lists snapshots"

# ---- --pgdata is not a data folder --------------------------------------------
echo "not a cluster" >"$W/notpg/README"
chown -R "$PG_OS_USER" "$W/notpg"
expect_rc 2 cp_ backup --pgdata "$W/notpg" --pg-conn "$src_conn"
one_error "not a PostgreSQL data directory"
expect_stderr_grep "$W/notpg"
[[ $(repo_state) == "$state0" && $(nsnaps) == 0 ]] || fail "the refused backup wrote to the repository"
ok "--pgdata of a folder without PG_VERSION: exit 2, 'not a PostgreSQL data directory', nothing written"

# ---- the server is not running ------------------------------------------------
pg_init down
expect_rc 1 cp_ backup --pgdata "$(pg_datadir down)" --pg-conn "$(pg_connstr down)"
one_error "cannot connect to PostgreSQL"
[[ $(repo_state) == "$state0" && $(nsnaps) == 0 ]] || fail "the failed backup wrote to the repository"
ok "a stopped cluster: exit 1, 'cannot connect to PostgreSQL', nothing written"

badport=$(pg_free_port)
expect_rc 1 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "host=127.0.0.1 port=$badport user=postgres dbname=postgres"
one_error "cannot connect to PostgreSQL"
expect_stderr_grep "$badport"
[[ $(repo_state) == "$state0" && $(nsnaps) == 0 ]] || fail "the failed backup wrote to the repository"
ok "a wrong port in --pg-conn: exit 1, 'cannot connect to PostgreSQL' (port $badport named), nothing written"

# ---- a role without the backup functions -----------------------------------
pg_psql src -c "create role nobackup login"
nb_conn="host=$(pg_sockdir src) port=$(pg_port src) user=nobackup dbname=postgres"
expect_rc 1 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$nb_conn"
one_error "GRANT EXECUTE ON FUNCTION pg_backup_start"
expect_stderr_grep "pg_backup_stop"
if grep -qi "passphrase" "$LAST_ERR"; then
	bug "missing rights to pg_backup_start: stderr talks about a passphrase: $(tr '\n' ' ' <"$LAST_ERR")"
fi
[[ $(repo_state) == "$state0" && $(nsnaps) == 0 ]] || fail "the refused backup wrote to the repository"
[[ $(pg_psql src -c "select count(*) from pg_stat_activity where backend_type = 'client backend' and usename = 'nobackup'") == 0 ]] ||
	fail "the refused backup left a session of nobackup behind"
ok "role nobackup: exit 1, the error gives the GRANTs, no snapshot"
# The GRANTs the message gives are enough.
grants=$(grep -o 'GRANT EXECUTE ON FUNCTION [^;]*;' "$LAST_ERR" | sed 's/<role>/nobackup/')
[[ $(grep -c GRANT <<<"$grants") == 2 ]] || fail "expected two GRANT statements in: $(cat "$LAST_ERR")"
pg_psql src -c "$grants"
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$nb_conn" --json
snapS=$(jget snapshot)
startS=$(jget start_wal)
stopS=$(jget stop_wal)
cluster=$(jget cluster)
[[ $(nsnaps) == 1 ]] || fail "the backup as nobackup is not listed"
ok "after the two GRANTs given, nobackup backs up ($snapS, WAL $startS .. $stopS)"

# ---- archive_mode off ---------------------------------------------------------
pg_init noarch
pg_start noarch
n0=$(nsnaps)
expect_rc 0 cp_ backup --pgdata "$(pg_datadir noarch)" --pg-conn "$(pg_connstr noarch)" --json
expect_stderr_grep "archive_mode is off"
expect_stderr_grep "archive-push"
snapN=$(jget snapshot)
clusterN=$(jget cluster)
startN=$(jget start_wal)
[[ $(nsnaps) == $((n0 + 1)) ]] || fail "archive_mode off: the snapshot is not listed"
ok "archive_mode off: a warning naming archive_mode and archive-push; the snapshot $snapN is written"
# Its WAL never reached the repository: it cannot be restored, and restore says so.
expect_rc 1 cp_ restore "$snapN" --cluster "$clusterN" --target "$W/restore/noarch"
one_error "WAL segment $startN .*is not archived"
[[ ! -e $W/restore/noarch ]] || fail "the refused restore created $W/restore/noarch"
ok "its restore is refused: 'WAL segment $startN ... is not archived', no folder made"
pg_stop noarch

# ---- archive_command failing --------------------------------------------------
pg_init badarch
pg_conf badarch "archive_mode = on" "archive_command = '/bin/false'"
pg_start badarch
n0=$(nsnaps)
t0=$(now_s)
expect_rc 1 cp_ backup --pgdata "$(pg_datadir badarch)" --pg-conn "$(pg_connstr badarch)" --archive-timeout 5
t1=$(now_s)
took=$(elapsed "$t0" "$t1")
one_error "did not reach the repository"
expect_stderr_grep "no snapshot was written"
[[ $(nsnaps) == "$n0" ]] || fail "a snapshot was written although its WAL never reached the repository"
ok "archive_command = /bin/false: exit 1 after $took s, 'did not reach the repository', no snapshot"
if ! grep -q "within 5 s" "$LAST_ERR" || awk -v t="$took" 'BEGIN { exit !(t >= 30) }'; then
	bug "--archive-timeout 5 is ignored: the backup waited $took s; stderr: $(grep '^cairn: error' "$LAST_ERR")"
else
	ok "--archive-timeout 5 is honoured ($took s)"
fi
[[ $(pg_psql badarch -c "select count(*) from pg_stat_activity where backend_type = 'client backend' and query ilike '%pg_backup%' and pid <> pg_backend_pid()") == 0 ]] ||
	fail "a backup session is left on the server"
pg_stop badarch

# ---- --target-xid and --target-name: written, not started ----------------------
pg_psql src -c "create table t(id int)"
xid=$(pg_psql src -c "begin; insert into t values (1); select txid_current(); commit;" | grep -E '^[0-9]+$')
pg_psql src -c "select pg_create_restore_point('err_rp')" >/dev/null
auto_has() { # dir, fixed line
	grep -qxF -- "$2" "$1/postgresql.auto.conf" || {
		cat "$1/postgresql.auto.conf"
		fail "postgresql.auto.conf of $1 lacks: $2"
	}
}
check_recovery_conf() { # dir
	local d=$1 cmd
	[[ -f $d/recovery.signal ]] || fail "$d/recovery.signal is missing"
	[[ ! -e $d/postmaster.pid ]] || fail "$d has a postmaster.pid"
	# restore_command, unquoted as PostgreSQL reads it, then run as
	# PostgreSQL would for the backup's last segment.
	cmd=$(python3 -c '
import re, sys
lines = [l for l in open(sys.argv[1]) if re.match(r"\s*restore_command\s*=", l)]
assert len(lines) == 1, lines
v = lines[0].split("=", 1)[1].strip()
assert v[0] == v[-1] == "\x27"
print(v[1:-1].replace("\x27\x27", "\x27"))' "$d/postgresql.auto.conf") || {
		cat "$d/postgresql.auto.conf"
		fail "$d: no single restore_command in postgresql.auto.conf"
	}
	[[ $cmd == *archive-get*--cluster*"$cluster"*' %f %p' && $cmd == *--config* ]] ||
		fail "$d: restore_command is not an archive-get for cluster $cluster with --config: $cmd"
	cmd=${cmd//%f/$stopS}
	cmd=${cmd//%p/$W/fetched}
	rm -f "$W/fetched"
	expect_rc 0 asp sh -c "$cmd"
	[[ $(stat -c %s "$W/fetched") == 16777216 ]] || fail "$d: restore_command did not fetch $stopS"
}
expect_rc 0 cp_ restore "$snapS" --cluster "$cluster" --target "$W/restore/xid" --target-xid "$xid"
check_recovery_conf "$W/restore/xid"
auto_has "$W/restore/xid" "recovery_target_xid = '$xid'"
auto_has "$W/restore/xid" "recovery_target_action = 'promote'"
ok "--target-xid $xid: recovery_target_xid, a working restore_command and recovery.signal written"
expect_rc 0 cp_ restore "$snapS" --cluster "$cluster" --target "$W/restore/name" --target-name err_rp --target-action pause
check_recovery_conf "$W/restore/name"
auto_has "$W/restore/name" "recovery_target_name = 'err_rp'"
auto_has "$W/restore/name" "recovery_target_action = 'pause'"
ok "--target-name err_rp --target-action pause: passed through"

# ---- a needed WAL segment deleted from the repository ---------------------------
expect_rc 0 cp_ info --cluster "$cluster"
expect_stdout_grep "^    ${snapS:0:8} .*PITR: up to the end of"
obj=$W/repo/wal/$cluster/$(tr A-F a-f <<<"$startS")
[[ -f $obj ]] || fail "no repository object $obj for $startS (ls: $(ls "$W/repo/wal/$cluster" | head))"
rm -f "$obj"
expect_rc 0 cp_ info --cluster "$cluster"
expect_stdout_grep "^    ${snapS:0:8} .*PITR: none \(WAL missing\)"
ok "info: snapshot ${snapS:0:8} reaches no point once $startS is gone"
expect_rc 1 cp_ restore "$snapS" --cluster "$cluster" --target "$W/restore/missing"
one_error "WAL segment $startS of cluster $cluster is not archived"
[[ ! -e $W/restore/missing ]] || fail "the refused restore created $W/restore/missing"
expect_rc 1 cp_ restore "$snapS" --cluster "$cluster" --target "$W/restore/missing" --immediate
one_error "WAL segment $startS"
[[ ! -e $W/restore/missing ]] || fail "the refused restore --immediate created $W/restore/missing"
ok "restore needing the deleted $startS: exit 1, the segment named, no folder made (also --immediate)"

finish
