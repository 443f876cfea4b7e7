#!/usr/bin/env bash
# scripts/demo.sh — cairn with PostgreSQL in a few minutes: builds cairn,
# starts a throwaway PostgreSQL 15 that archives its WAL with
# `cairn archive-push`, takes a base backup, writes more rows, drops the
# table "by accident", restores to just before the drop (point-in-time
# recovery) into a new folder, starts that copy and shows the table is back.
# Then, briefly, plain files.  Stops every server and removes everything it
# made when it ends (also on failure or Ctrl-C).
#
# Run it as root on a fresh Debian 12 (missing packages are installed with
# apt-get; PostgreSQL and cairn then run as the `postgres` user, as in
# production), or as an ordinary user with the packages installed.
# CAIRN_BUILD_DIR chooses the build folder (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cairn_install_deps

pg_bin=/usr/lib/postgresql/15/bin
for t in initdb pg_ctl psql; do
	[ -x "$pg_bin/$t" ] || { echo "demo: $pg_bin/$t is missing (apt-get install postgresql-15)" >&2; exit 1; }
done
if [ "$(id -u)" -eq 0 ]; then
	pg_user=postgres
	id -u postgres >/dev/null 2>&1 || { echo "demo: no 'postgres' user (it comes with postgresql-15)" >&2; exit 1; }
	as_pg() { (cd / && exec runuser -u postgres -- "$@"); }
else
	pg_user=$(id -un)
	as_pg() { (cd / && exec "$@"); }
fi
# Only what this script sets: no repository or passphrase from the caller.
unset CAIRN_REPOSITORY CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND \
	CAIRN_KEY_FILE CAIRN_CONFIG CAIRN_CACHE_DIR PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD

step() { printf '\n== %s\n' "$*"; }
show() { # CMD ARGS...: print the command, words with spaces quoted
	local a out=
	for a in "$@"; do
		case $a in
		*\'*) out+=" \"$a\"" ;;
		*[[:space:]]* | '') out+=" '$a'" ;;
		*) out+=" $a" ;;
		esac
	done
	printf '$%s\n' "$out"
}

step "building cairn"
build=${CAIRN_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
echo "built $build/cairn"

# ---- the scratch folder and cleanup ------------------------------------------
work=$(mktemp -d /tmp/cairn-demo.XXXXXX)
pgdata=$work/pgdata
restored=$work/restored
stop_server() { # DATADIR: stop its server, whatever it takes
	local d=$1 pid
	[ -f "$d/postmaster.pid" ] || return 0
	as_pg "$pg_bin/pg_ctl" -D "$d" -m fast -w -t 30 stop >/dev/null 2>&1 && return 0
	as_pg "$pg_bin/pg_ctl" -D "$d" -m immediate -w -t 10 stop >/dev/null 2>&1 && return 0
	pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null) || return 0
	if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; fi
	return 0
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	stop_server "$restored"
	stop_server "$pgdata"
	rm -rf "$work"
	if [ "$rc" -eq 0 ]; then
		printf '\n== demo finished: servers stopped, %s removed\n' "$work"
	else
		printf '\n== demo FAILED (exit %s): servers stopped, %s removed\n' "$rc" "$work" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The server's user runs cairn too (archive_command does): it gets its own
# copy of the binary (the checkout may be closed to it, say under /root).
chmod 755 "$work"
install -m 755 "$build/cairn" "$work/cairn"
mkdir -m 700 "$work/pg" "$pgdata" "$restored"
[ "$pg_user" = "$(id -un)" ] || chown "$pg_user:" "$work/pg" "$pgdata" "$restored"
cairn_bin=$work/cairn
repo=$work/pg/repo
conf=$work/pg/cairn.conf
sock=$work/sock
mkdir -m 755 "$sock"
[ "$pg_user" = "$(id -un)" ] || chown "$pg_user:" "$sock"
port=54329    # on a socket of its own (no TCP): no clash with another server
cairn() { show cairn "$@"; as_pg "$cairn_bin" "$@"; }
ccairn() { show cairn --config cairn.conf "$@"; as_pg "$cairn_bin" --config "$conf" "$@"; }
psql_() { as_pg "$pg_bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$sock" -p "$1" -U postgres -d postgres -c "$2"; }
sql() { show psql -c "$2"; psql_ "$@"; }

# ---- the repository -------------------------------------------------------------
step "1. an encrypted repository, and a host key for archive_command (as $pg_user)"
as_pg sh -c "umask 077; head -c 24 /dev/urandom | base64 > '$work/pg/passphrase'"
cairn -r "$repo" --password-file "$work/pg/passphrase" --cache-dir "$work/pg/cache" init
cairn -r "$repo" --password-file "$work/pg/passphrase" --cache-dir "$work/pg/cache" \
	key export-host-key "$work/pg/host.key"
as_pg sh -c "printf 'repo = %s\nkey-file = %s\ncache-dir = %s\n' '$repo' '$work/pg/host.key' '$work/pg/cache' > '$conf'"
echo "cairn.conf:"
sed 's/^/    /' "$conf"

# ---- a PostgreSQL 15 that archives with cairn --------------------------------
step "2. a throwaway PostgreSQL 15 that archives its WAL with cairn"
as_pg "$pg_bin/initdb" -D "$pgdata" -k -A trust -U postgres --locale=C -E UTF8 >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log"; exit 1; }
as_pg tee -a "$pgdata/postgresql.conf" >/dev/null <<EOF

# ---- scripts/demo.sh ----
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
shared_buffers = 32MB
max_connections = 20
archive_mode = on
archive_command = '$cairn_bin --config $conf archive-push %p'
EOF
echo "postgresql.conf:"
echo "    archive_mode = on"
echo "    archive_command = 'cairn --config cairn.conf archive-push %p'"
as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$work/pg/server.log" -w -t 60 -s start
echo "PostgreSQL running in $pgdata (socket $sock, port $port)"

step "3. a table with rows"
sql $port "create table accounts(id int primary key, owner text not null, balance numeric not null)"
sql $port "insert into accounts select g, 'owner ' || g, g * 10 from generate_series(1, 1000) g"
echo "rows: $(psql_ $port "select count(*) from accounts")"

step "4. a base backup"
ccairn backup --pgdata "$pgdata" --pg-conn "host=$sock port=$port user=postgres dbname=postgres" --tag demo

step "5. more rows after the backup (they live only in the WAL archive)"
sql $port "insert into accounts select g, 'owner ' || g, g * 10 from generate_series(1001, 1500) g"
echo "rows: $(psql_ $port "select count(*) from accounts")"
sleep 1
target=$(psql_ $port "select to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
echo "the time is now $target"
sleep 1

step "6. oops: the table is dropped by accident"
sql $port "drop table accounts"
# Close the current WAL segment so that it is archived now.
sql $port "select pg_switch_wal()" >/dev/null
archived=0
for _ in $(seq 1 300); do
	if [ "$(psql_ $port "select coalesce(last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1), false) from pg_stat_archiver")" = t ]; then
		archived=1
		break
	fi
	sleep 0.2
done
[ $archived = 1 ] || { echo "demo: the WAL was not archived within 60 s; server log:" >&2; tail -n 20 "$work/pg/server.log" >&2; exit 1; }
echo "the WAL up to the drop is archived"
ccairn info

step "7. restore to just before the drop ($target) into a new folder"
ccairn restore --target "$restored" --target-time "$target"
# The copy gets its own socket, and does not archive (it is only a check).
as_pg tee -a "$restored/postgresql.conf" >/dev/null <<EOF

# ---- scripts/demo.sh: the restored copy ----
port = $((port + 1))
archive_mode = off
EOF
as_pg "$pg_bin/pg_ctl" -D "$restored" -l "$work/pg/restored.log" -w -t 60 -s start
recovered=0
for _ in $(seq 1 300); do
	if [ "$(psql_ $((port + 1)) "select pg_is_in_recovery()" 2>/dev/null)" = f ]; then
		recovered=1
		break
	fi
	sleep 0.2
done
[ $recovered = 1 ] || { echo "demo: the restored copy did not finish recovery; its log:" >&2; tail -n 20 "$work/pg/restored.log" >&2; exit 1; }
echo "the restored copy replayed the WAL up to $target and was promoted"

step "8. the table is back"
show psql -p $((port + 1)) -c "select count(*) from accounts"
count=$(psql_ $((port + 1)) "select count(*) from accounts")
echo "$count"
[ "$count" = 1500 ] || { echo "demo: expected 1500 rows, found $count" >&2; exit 1; }
echo "all 1500 rows are back: 1000 from the base backup, 500 replayed from the archived WAL"
echo "(the original server still has no table: $(psql_ $port "select count(*) from pg_tables where tablename = 'accounts'") tables named accounts)"

# ---- plain files, briefly ---------------------------------------------------------
step "9. plain files too: back up a folder twice (the second time only changes are stored), restore, compare"
files=$work/pg/files
as_pg sh -c "mkdir -p '$files/logs' && for i in 1 2 3 4 5; do seq \$((i * 1000)) \$((i * 90000)) > '$files/logs/log'\$i.txt; done && head -c 4194304 /dev/urandom > '$files/blob.bin'"
ccairn backup "$files" --tag files
as_pg sh -c "echo 'one more line' >> '$files/logs/log3.txt'"
ccairn backup "$files" --tag files
ccairn restore latest --target "$work/pg/files-restored"
diff -r "$files" "$work/pg/files-restored$files"
echo "the restored folder is identical to the source"
ccairn check --read-data
