#!/usr/bin/env bash
# PostgreSQL delta restore: a base backup is restored into R, R is started,
# changed and stopped, and an extra file is put in it.  A plain restore into
# the non-empty R is refused (exit 2, nothing touched); restore --delta
# --immediate reuses the files that are still right (unchanged > 0),
# removes what the backup does not have (removed >= 1, the extra files are
# gone), and R starts with exactly the backup's data (pg_dumpall equal to
# the unchanged source), not the change.  Everything cairn does runs as the
# postgres user.
T_NAME=t_pg_delta
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

expect_rc 0 asp env CAIRN_PASSWORD=delta-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=delta-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"
ok "repository and host key made as postgres"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
pg_psql src -c "create table t(id int primary key, note text)"
pg_psql src -c "insert into t select g, 'in backup' from generate_series(1,2000) g"
pg_psql src -c "create table big as select g, md5(g::text) h from generate_series(1,100000) g"
pg_psql src -c "checkpoint"
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
snap=$(jget "$LAST_OUT" snapshot)
ok "base backup $snap"
# The source is not changed any more: it is what every restore must equal.

wait_promoted() {
	local name=$1
	for _ in $(seq 1 150); do
		[[ $(pg_psql "$name" -c "select pg_is_in_recovery()") == f ]] && return 0
		sleep 0.2
	done
	tail -n 30 "$(pg_logfile "$name")" >&2
	fail "$name: still in recovery after 30 s"
}
dumpall() { # cluster -> stdout, without the random \restrict keys of pg_dump 15.14+
	pg_run_as_postgres "$pg_bin/pg_dumpall" -h "$(pg_sockdir "$1")" -p "$(pg_port "$1")" -U postgres |
		grep -Ev '^\\(un)?restrict '
}
# A restore brings back the source's postgresql.conf (its port, socket and
# archive_command): point R at its own port and socket, never archive.
local_conf() {
	pg_conf R "port = $(pg_port R)" "unix_socket_directories = '$(pg_sockdir R)'" \
		"listen_addresses = '127.0.0.1'" "archive_mode = off"
}

# ---- R: restored, started, changed, stopped, plus extra files --------------
R=$W/restore/R
expect_rc 0 cp_ restore "$snap" --target "$R" --immediate
pg_attach R "$R"
local_conf
pg_start R
wait_promoted R
pg_psql R -c "insert into t select g, 'change' from generate_series(2001,2500) g"
pg_psql R -c "update t set note = 'changed' where id <= 100"
pg_psql R -c "delete from big where g % 3 = 0"
pg_psql R -c "create table only_in_r as select g from generate_series(1,1000) g"
pg_psql R -c "checkpoint"
pg_stop R
dboid=$(pg_psql src -c "select oid from pg_database where datname = 'postgres'")
[[ -d $R/base/$dboid ]] || fail "no folder base/$dboid in R"
printf 'not from the backup\n' >"$R/extra-file.txt"
printf 'fake relation\n' >"$R/base/$dboid/999999"
mkdir -p "$R/extra-dir/sub"
printf 'x\n' >"$R/extra-dir/sub/f"
chown -R "$PG_OS_USER" "$R"
ok "R was restored, started, changed (rows, a new table), stopped; extra files put in it"

# ---- a plain restore into the non-empty R is refused ---------------------
before=$(tree_digest "$R")
expect_rc 2 cp_ restore "$snap" --target "$R" --immediate
expect_stderr_grep "not empty"
[[ $(tree_digest "$R") == "$before" ]] || fail "the refused restore changed R"
ok "restore into the non-empty R without --delta is refused (exit 2), R untouched"

# ---- the delta restore -------------------------------------------------------
expect_rc 0 cp_ restore "$snap" --target "$R" --delta --immediate --json
is_json "$LAST_OUT" || fail "restore --delta --json is not JSON"
files=$(jget "$LAST_OUT" files)
unchanged=$(jget "$LAST_OUT" unchanged)
removed=$(jget "$LAST_OUT" removed)
((unchanged > 0)) || fail "delta restore: unchanged = $unchanged, want > 0 ($(cat "$LAST_OUT"))"
((removed >= 1)) || fail "delta restore: removed = $removed, want >= 1 ($(cat "$LAST_OUT"))"
((unchanged < files)) || fail "delta restore: all $files files unchanged although R was changed"
[[ ! -e $R/extra-file.txt ]] || fail "delta restore left extra-file.txt"
[[ ! -e $R/base/$dboid/999999 ]] || fail "delta restore left the fake relation file base/$dboid/999999"
[[ ! -e $R/extra-dir ]] || fail "delta restore left extra-dir"
[[ -e $R/recovery.signal ]] || fail "delta restore wrote no recovery.signal"
grep -q "recovery_target = 'immediate'" "$R/postgresql.auto.conf" || fail "no recovery_target in postgresql.auto.conf"
ok "restore --delta: exit 0, $files files, $unchanged unchanged, $removed removed; the extra files are gone"

# The same again: the human output reports the counts too, and now (but
# for the recovery settings cairn writes) everything is unchanged.
expect_rc 0 cp_ restore "$snap" --target "$R" --delta --immediate
expect_stdout_grep "\([0-9]+ unchanged, [0-9]+ removed\)"
u2=$(sed -nE 's/.*\(([0-9]+) unchanged, ([0-9]+) removed\).*/\1/p' "$LAST_OUT")
f2=$(sed -nE 's/.*: ([0-9]+) files, .*/\1/p' "$LAST_OUT")
((u2 >= f2 - 2)) || fail "a second delta restore rewrote $((f2 - u2)) of $f2 files (want at most 2: postgresql.auto.conf, and global/pg_control, always written last)"
ok "a second delta restore: $u2 of $f2 files unchanged (human output)"

# ---- R starts with exactly the backup's data -------------------------------
local_conf
pg_start R
wait_promoted R
[[ $(pg_psql R -c "select count(*) from t") == 2000 ]] || fail "R has $(pg_psql R -c "select count(*) from t") rows in t, want 2000"
[[ $(pg_psql R -c "select count(*) from t where note <> 'in backup'") == 0 ]] || fail "R still has changed rows"
[[ $(pg_psql R -c "select count(*) from big") == 100000 ]] || fail "R lost rows of big"
[[ $(pg_psql R -c "select to_regclass('only_in_r') is null") == t ]] || fail "R still has table only_in_r"
pg_psql src -c "checkpoint" >/dev/null
dumpall src >"$SCRATCH/src.sql"
dumpall R >"$SCRATCH/R.sql"
[[ -s $SCRATCH/src.sql ]] || fail "pg_dumpall printed nothing"
if ! cmp -s "$SCRATCH/src.sql" "$SCRATCH/R.sql"; then
	diff "$SCRATCH/src.sql" "$SCRATCH/R.sql" | head -n 20
	fail "pg_dumpall of R after the delta restore differs from the source"
fi
pg_psql R -c "insert into t values (100000, 'writable')"
ok "R after the delta restore: the backup's data exactly (pg_dumpall equal), not the change; writable"
pg_stop R

# ---- an interrupted restore leaves a folder PostgreSQL refuses -------------
# global/pg_control is written last, once everything else is durable.  A
# ballast file sorted after global/ (zz-ballast, 24 MiB) and a 16 MiB file
# size limit kill the restore (SIGXFSZ, like a crash) after global/ was
# restored: without pg_control the folder must not start; --delta then
# completes it and it starts with the backup's data.
head -c $((24 << 20)) /dev/urandom >"$(pg_datadir src)/zz-ballast"
chown "$PG_OS_USER" "$(pg_datadir src)/zz-ballast"
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
snapB=$(jget "$LAST_OUT" snapshot)
R2=$W/restore/R2
run_rc bash -c 'ulimit -c 0; ulimit -f 16384; exec "$@"' limited \
	runuser -u "$PG_OS_USER" -- "$CAIRN_BIN" --config "$conf" restore "$snapB" --target "$R2" --immediate
((LAST_RC != 0)) || fail "the restore under a 16 MiB file size limit exited 0 (zz-ballast is 24 MiB)"
[[ -d $R2/global && -d $R2/base ]] || fail "the interrupted restore did not get past global/ (rc $LAST_RC): the test proves nothing"
[[ ! -e $R2/global/pg_control ]] || fail "an interrupted restore left global/pg_control: PostgreSQL would start on a partial folder"
pg_attach R2 "$R2"
pg_conf R2 "port = $(pg_port R2)" "unix_socket_directories = '$(pg_sockdir R2)'" \
	"listen_addresses = '127.0.0.1'" "archive_mode = off"
run_rc pg_run_as_postgres "$pg_bin/pg_ctl" -D "$R2" -l "$W/r2-refused.log" -w -t 20 start
((LAST_RC != 0)) || fail "PostgreSQL started on the folder of an interrupted restore"
grep -q pg_control "$W/r2-refused.log" || fail "PostgreSQL's refusal does not name pg_control: $(tail -3 "$W/r2-refused.log")"
ok "a restore killed after global/ (exit $LAST_RC) left no pg_control; PostgreSQL refuses the folder"
expect_rc 0 cp_ restore "$snapB" --target "$R2" --delta --immediate
[[ -e $R2/global/pg_control ]] || fail "the delta restore wrote no global/pg_control"
pg_conf R2 "port = $(pg_port R2)" "unix_socket_directories = '$(pg_sockdir R2)'" \
	"listen_addresses = '127.0.0.1'" "archive_mode = off"
pg_start R2
wait_promoted R2
[[ $(pg_psql R2 -c "select count(*) from t") == 2000 ]] || fail "R2 has $(pg_psql R2 -c "select count(*) from t") rows in t, want 2000"
cmp -s "$(pg_datadir src)/zz-ballast" "$R2/zz-ballast" || fail "R2/zz-ballast differs from the source's"
pg_stop R2
ok "restore --delta completed the interrupted restore; it starts with the backup's data"

# cairn also ran inside the servers (archive_command, restore_command):
# their logs must hold no sanitizer report.
if grep -lE 'ERROR: (Address|Leak|Undefined|Memory)Sanitizer|runtime error:' "$PGSCRATCH"/*.log; then
	fail "a sanitizer report in a server log (cairn run by archive_command or restore_command)"
fi
ok "no sanitizer report in the servers' logs"

finish
