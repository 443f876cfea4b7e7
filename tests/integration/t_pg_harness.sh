#!/usr/bin/env bash
# t_pg_harness.sh — tests pglib.sh, the PostgreSQL 15 harness of the
# integration tests: initdb with checksums, start, psql, pgbench, archiving
# into a folder, two servers at once, a start that fails, a port taken
# meanwhile, and that no server outlives its test — on a normal exit, an
# unexpected failure, fail, exit, with either sourcing order, and SIGKILL.
# Skipped (0 passed, 0 failed) when PostgreSQL 15 is not installed.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTLIB=${CAIRN_TESTLIB:-$HERE/../integration/lib.sh}

# This test does not run cairn, but lib.sh wants a binary: the build's if
# there is one (postgres must be able to run it), else `true`.
NO_CAIRN=0
if [[ -z ${CAIRN_BIN:-} ]]; then
	if [[ -x $HERE/../../build/cairn ]]; then
		CAIRN_BIN=$(cd "$HERE/../../build" && pwd)/cairn
	else
		CAIRN_BIN=$(command -v true)
		NO_CAIRN=1
	fi
	export CAIRN_BIN
fi

HAVE_LIB=0
if [[ -f $TESTLIB ]]; then
	HAVE_LIB=1
	source "$TESTLIB"
else
	set -euo pipefail
	echo "# $TESTLIB not found: using pglib.sh's own helpers"
fi
source "$HERE/pglib.sh"
pg_require

T_START=$EPOCHREALTIME
secs() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

expect_eq() { # ACTUAL EXPECTED WHAT
	[[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

# Pids of processes whose current folder is DIR or below it (also when the
# folder has been removed since: "DIR/x (deleted)").
procs_under() {
	local dir=$1 p c
	for p in /proc/[0-9]*; do
		c=$(readlink "$p/cwd" 2>/dev/null) || continue
		if [[ $c == "$dir" || $c == "$dir"/* || $c == "$dir (deleted)" ]]; then
			echo "${p#/proc/}"
		fi
	done
}

alive() { # PID: exists and is no zombie
	_pg_alive "$1"
}

wait_gone() { # PID SECONDS: status 0 once PID is gone
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

listening() { # PORT
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

echo "# PostgreSQL: $("$pg_bin/postgres" --version), runs as $PG_OS_USER; PGSCRATCH=$PGSCRATCH"

# ---- one cluster -------------------------------------------------------------
t=$EPOCHREALTIME
pg_init a
A=$(pg_datadir a)
expect_eq "$(stat -c '%U %a' "$A")" "$PG_OS_USER 700" "owner and mode of the data folder"
[[ -f $A/PG_VERSION && $(<"$A/PG_VERSION") == 15 ]] || fail "pg_init wrote no PostgreSQL 15 data folder"
pg_start a
expect_eq "$(pg_psql a -c 'select 1')" 1 "select 1"
pid_a=$(pg_pid a)
expect_eq "$(readlink "/proc/$pid_a/exe")" "$(readlink -f "$pg_bin/postgres")" "the postmaster's binary"
expect_eq "$(stat -c %U "/proc/$pid_a")" "$PG_OS_USER" "the postmaster's user"
ok "pg_init + pg_start: a PostgreSQL 15 server as $PG_OS_USER on port $(pg_port a) ($(secs "$t") s)"

expect_eq "$(pg_psql a -c 'show data_checksums')" on "data_checksums"
expect_eq "$(pg_psql a -c 'show wal_level')" replica "wal_level"
expect_eq "$(pg_psql a -c 'show fsync')" on "fsync"
expect_eq "$(pg_psql a -c 'show listen_addresses')" 127.0.0.1 "listen_addresses"
ok "data checksums on, wal_level replica, fsync on, listening on 127.0.0.1 only"

pg_psql a <<'EOF'
create table t (id int primary key, note text);
insert into t select g, 'row ' || g from generate_series(1, 1000) g;
create database other;
EOF
expect_eq "$(pg_psql a -c 'select count(*), sum(id) from t')" "1000|500500" "rows in t"
expect_eq "$(pg_psql a -d other -c 'select current_database()')" other "pg_psql -d"
if pg_psql a -c 'select * from no_such_table' >/dev/null 2>&1; then
	fail "pg_psql exits 0 on an SQL error"
fi
ok "pg_psql: table with 1000 rows, -d another database, SQL errors fail"

# The same server through the connection string and through TCP.
expect_eq "$(pg_run_as_postgres "$pg_bin/psql" -X -At "$(pg_connstr a)" -c 'select count(*) from t')" 1000 "psql on pg_connstr"
expect_eq "$(pg_run_as_postgres "$pg_bin/psql" -X -At -h 127.0.0.1 -p "$(pg_port a)" -U postgres -d postgres -c 'select 2')" 2 "psql over TCP"
expect_eq "$(pg_run_as_postgres FOO=bar sh -c 'echo "$FOO $(id -un)"')" "bar $PG_OS_USER" "pg_run_as_postgres VAR=VALUE"
ok "pg_connstr ($(pg_connstr a)), TCP on 127.0.0.1, pg_run_as_postgres with variables"

t=$EPOCHREALTIME
pg_run_as_postgres "$pg_bin/pgbench" -i -s 1 -q -h "$(pg_sockdir a)" -p "$(pg_port a)" -U postgres postgres \
	>"$PGSCRATCH/pgbench.log" 2>&1 || {
	tail -n 20 "$PGSCRATCH/pgbench.log"
	fail "pgbench -i -s 1"
}
expect_eq "$(pg_psql a -c 'select count(*) from pgbench_accounts')" 100000 "pgbench_accounts rows"
ok "pgbench -i -s 1: 100000 accounts ($(secs "$t") s)"

# ---- archiving ---------------------------------------------------------------
t=$EPOCHREALTIME
ARCH=$PGSCRATCH/archive
pg_mkdir "$ARCH"
expect_eq "$(stat -c '%U %a' "$ARCH")" "$PG_OS_USER 700" "owner and mode of pg_mkdir's folder"
pg_conf a "archive_mode = on" "archive_command = 'test ! -f $ARCH/%f && cp %p $ARCH/%f'"
pg_restart a
[[ $(pg_pid a) != "$pid_a" ]] || fail "pg_restart kept the old postmaster"
expect_eq "$(pg_psql a -c 'show archive_mode')" on "archive_mode after the restart"
pg_psql a -c "insert into t select g, 'more' from generate_series(1001, 5000) g"
seg=$(pg_psql a -c 'select pg_walfile_name(pg_current_wal_lsn())')
pg_psql a -c 'select pg_switch_wal()' >/dev/null
archived() { # has the archiver finished with $seg (or a later segment)?
	local last
	last=$(pg_psql a -c 'select last_archived_wal from pg_stat_archiver')
	[[ -n $last && ($last == "$seg" || $last > "$seg") ]]
}
for ((i = 0; i < 300; i++)); do
	archived && break
	sleep 0.1
done
if ! archived || [[ ! -f $ARCH/$seg ]]; then
	ls -l "$ARCH"
	pg_psql a -c 'select * from pg_stat_archiver'
	tail -n 20 "$(pg_logfile a)"
	fail "segment $seg not archived within 30 s"
fi
expect_eq "$(stat -c '%s %U' "$ARCH/$seg")" "16777216 $PG_OS_USER" "size and owner of the archived segment"
ok "archive_mode on + restart: pg_switch_wal archives $seg into $ARCH ($(secs "$t") s)"

if ((NO_CAIRN)); then
	echo "# no cairn binary built: not checking that postgres can run it"
else
	pg_can_access "$CAIRN_BIN" || fail "$PG_OS_USER cannot run $CAIRN_BIN (for an archive_command)"
	pg_run_as_postgres "$CAIRN_BIN" help >/dev/null 2>&1 || fail "$CAIRN_BIN help fails as $PG_OS_USER"
	ok "$PG_OS_USER can run $CAIRN_BIN"
fi

# ---- a second server at the same time ------------------------------------------
t=$EPOCHREALTIME
pg_init b
# b asks for a's port: pg_start must move it to a free one.
pg_conf b "port = $(pg_port a)"
pg_start b 2>"$PGSCRATCH/b-start.err"
grep -q "port $(pg_port a) of 'b' is taken" "$PGSCRATCH/b-start.err" || {
	cat "$PGSCRATCH/b-start.err"
	fail "pg_start b did not report the taken port"
}
[[ $(pg_port b) != "$(pg_port a)" ]] || fail "b kept a's port"
expect_eq "$(pg_psql a -c 'show port')" "$(pg_port a)" "port of a"
expect_eq "$(pg_psql b -c 'show port')" "$(pg_port b)" "port of b"
expect_eq "$(pg_psql a -c 'select count(*) from t')" 5000 "a's rows"
expect_eq "$(pg_psql b -c "select count(*) from pg_class where relname = 't'")" 0 "b is another cluster"
ok "two servers at once on ports $(pg_port a) and $(pg_port b) (b moved off a taken port, $(secs "$t") s)"

t=$EPOCHREALTIME
port_a=$(pg_port a) port_b=$(pg_port b)
pid_a=$(pg_pid a) pid_b=$(pg_pid b)
pg_stop a
pg_stop b
! pg_running a || fail "a still runs after pg_stop"
! pg_running b || fail "b still runs after pg_stop"
alive "$pid_a" && fail "postmaster $pid_a of a still there"
alive "$pid_b" && fail "postmaster $pid_b of b still there"
[[ -z $(pg_procs a) && -z $(pg_procs b) ]] || fail "processes left in the data folders: $(pg_procs a) $(pg_procs b)"
listening "$port_a" && fail "port $port_a still listening"
listening "$port_b" && fail "port $port_b still listening"
pg_stop a || fail "pg_stop of a stopped server fails"
ok "pg_stop of both: no process, no listener; pg_stop again is harmless ($(secs "$t") s)"

# ---- pg_attach: a copy of a's data folder as a third cluster ---------------------
t=$EPOCHREALTIME
cp -a "$A" "$PGSCRATCH/copy-of-a"
pg_attach c "$PGSCRATCH/copy-of-a"
pg_conf c "archive_mode = off"
[[ $(pg_port c) != "$port_a" ]] || fail "pg_attach kept a's port"
pg_start c
expect_eq "$(pg_psql c -c 'select count(*) from t')" 5000 "rows in the copy"
expect_eq "$(pg_psql c -c 'show data_checksums')" on "data_checksums of the copy"
pg_stop c
ok "pg_attach + pg_start of a copied data folder on port $(pg_port c) ($(secs "$t") s)"

# ---- a start that fails ------------------------------------------------------------
t=$EPOCHREALTIME
pg_conf b "no_such_setting = 1"
if pg_start b >"$PGSCRATCH/bad.out" 2>"$PGSCRATCH/bad.err"; then
	fail "pg_start succeeded with a bad setting"
fi
grep -q 'unrecognized configuration parameter "no_such_setting"' "$PGSCRATCH/bad.err" || {
	cat "$PGSCRATCH/bad.err"
	fail "pg_start's failure does not show the log"
}
[[ -z $(pg_procs b) ]] || fail "a failed start left processes: $(pg_procs b)"
ok "a failed pg_start returns 1, shows the server log, leaves nothing running ($(secs "$t") s)"

# ---- no server outlives its test ----------------------------------------------------
# nested.sh MODE: starts a server and ends as MODE says; it writes
# "PID DATADIR SCRATCH PGSCRATCH" to $NEST_INFO once the server runs.
NEST=${SCRATCH:-$PGSCRATCH}/nested
mkdir -p "$NEST"
chmod 755 "$NEST"
cat >"$NEST/nested.sh" <<'EOF'
mode=$1
case $mode in
lib-first) source "$NEST_LIB"; source "$NEST_PGLIB" ;;
sigkill) [[ -f $NEST_LIB ]] && source "$NEST_LIB"; source "$NEST_PGLIB" ;;
pglib-first) source "$NEST_PGLIB"; source "$NEST_LIB" ;;
alone) set -euo pipefail; source "$NEST_PGLIB" ;;
esac
pg_require
pg_init n
pg_start n
ok "server up"
echo "$(pg_pid n) $(pg_datadir n) ${SCRATCH:-none} $PGSCRATCH" >"$NEST_INFO.tmp"
mv "$NEST_INFO.tmp" "$NEST_INFO"
case $mode in
lib-first) false ;;                 # unexpected failure: lib.sh's ERR trap
pglib-first) fail "simulated failure" ;;
alone) exit 3 ;;
sigkill) while :; do sleep 0.1; done ;;
esac
EOF

# nested MODE WANT_RC OUTPUT_RE: run it, check its exit status and output,
# that its postmaster is gone and nothing works in its folders any more.
nested() {
	local mode=$1 want=$2 re=$3 rc=0 pid dir scr pgs
	local info=$NEST/$mode.info out=$NEST/$mode.out
	env -u SCRATCH -u PGSCRATCH TMPDIR="$NEST" NEST_INFO="$info" NEST_LIB="$TESTLIB" \
		NEST_PGLIB="$HERE/pglib.sh" bash "$NEST/nested.sh" "$mode" >"$out" 2>&1 </dev/null || rc=$?
	[[ -f $info ]] || {
		cat "$out"
		fail "nested $mode: the server did not start"
	}
	read -r pid dir scr pgs <"$info"
	[[ $rc == "$want" ]] || {
		cat "$out"
		fail "nested $mode: exit status $rc, expected $want"
	}
	grep -Eq "$re" "$out" || {
		cat "$out"
		fail "nested $mode: output does not match /$re/"
	}
	alive "$pid" && fail "nested $mode: postmaster $pid still runs"
	[[ -z $(procs_under "$pgs") ]] || fail "nested $mode: processes left: $(procs_under "$pgs")"
	[[ ! -e $pgs ]] || fail "nested $mode: $pgs not removed"
	if [[ $scr != none && -e $scr ]]; then
		fail "nested $mode: its scratch $scr not removed"
	fi
}

t=$EPOCHREALTIME
if ((HAVE_LIB)); then
	nested lib-first 1 '^FAIL: unexpected exit status 1 .*: false$'
	grep -q '^1 passed, 1 failed$' "$NEST/lib-first.out" || fail "nested lib-first: no closing line"
	ok "lib.sh then pglib.sh, unexpected failure: servers stopped before the scratch is removed ($(secs "$t") s)"
	t=$EPOCHREALTIME
	nested pglib-first 1 '^FAIL: simulated failure$'
	ok "pglib.sh then lib.sh, fail: servers stopped, scratch removed ($(secs "$t") s)"
else
	echo "# no lib.sh: not testing the cleanup together with it"
fi
t=$EPOCHREALTIME
nested alone 3 '^1 passed, 1 failed$'
ok "pglib.sh alone, exit 3: status kept, servers stopped, its scratch removed ($(secs "$t") s)"

# SIGKILL: no trap runs; the watchdog must stop the server.
t=$EPOCHREALTIME
info=$NEST/sigkill.info
env -u SCRATCH -u PGSCRATCH TMPDIR="$NEST" NEST_INFO="$info" NEST_LIB="$TESTLIB" \
	NEST_PGLIB="$HERE/pglib.sh" bash "$NEST/nested.sh" sigkill >"$NEST/sigkill.out" 2>&1 </dev/null &
npid=$!
for ((i = 0; i < 300; i++)); do
	[[ -f $info ]] && break
	kill -0 "$npid" 2>/dev/null || break
	sleep 0.1
done
[[ -f $info ]] || {
	kill -9 "$npid" 2>/dev/null || true
	cat "$NEST/sigkill.out"
	fail "nested sigkill: the server did not start"
}
read -r pid dir scr pgs <"$info"
kill -9 "$npid"
wait "$npid" 2>/dev/null || true
alive "$pid" || fail "nested sigkill: postmaster $pid gone at once?"
wait_gone "$pid" 15 || fail "nested sigkill: postmaster $pid still runs 15 s after its test was killed"
for ((i = 0; i < 50; i++)); do
	[[ -z $(procs_under "$pgs") ]] && break
	sleep 0.1
done
[[ -z $(procs_under "$pgs") ]] || fail "nested sigkill: processes left: $(procs_under "$pgs")"
for ((i = 0; i < 50; i++)); do
	[[ -e $pgs ]] || break
	sleep 0.1
done
[[ ! -e $pgs ]] || fail "nested sigkill: the watchdog did not remove $pgs"
ok "test killed with SIGKILL: the watchdog stopped its server, removed $pgs ($(secs "$t") s)"
rm -rf "$NEST"

# ---- pg_cleanup_all --------------------------------------------------------------
t=$EPOCHREALTIME
pg_start a
pg_running a || fail "a does not run"
pg_cleanup_all
for n in a b c; do
	[[ -z $(procs_under "$(pg_datadir "$n")") ]] || fail "pg_cleanup_all left processes of $n"
done
ok "pg_cleanup_all stops a running server ($(secs "$t") s)"

echo "# total $(secs "$T_START") s"
finish
