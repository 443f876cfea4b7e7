# pglib.sh — real PostgreSQL 15 servers for the integration tests.
#
# Source it after lib.sh (it also works alone, and before lib.sh):
#
#   source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
#   source "$(dirname "$0")/pglib.sh"
#   pg_require                      # skips the test without PostgreSQL 15
#   pg_init main; pg_start main
#   pg_psql main -c 'select 1'
#
# PostgreSQL refuses to run as root: when the test runs as root, initdb, the
# server (and so its archive_command) and psql run as the `postgres` user
# through runuser.  As an ordinary user everything runs as that user.
#
# Variables:
#   pg_bin        the PostgreSQL 15 bindir (/usr/lib/postgresql/15/bin, or
#                 $PG_BIN); not `pg_config --bindir`, which may be another
#                 version
#   PG_AVAILABLE  1 when the server can be run, else 0 (PG_UNAVAILABLE says why)
#   PG_OS_USER    the user the servers run as (postgres when root)
#   PGSCRATCH     the folder holding the clusters and their logs: $SCRATCH/pg
#                 (or $SCRATCH/pg.XXXXXX) under lib.sh, else /tmp/cairn-pg.XXXXXX;
#                 made on pg_require / the first pg_init, removed on exit.
#                 Every component of it can be traversed by PG_OS_USER.  Set
#                 it beforehand to choose the folder (then it is not removed).
#
# Functions (NAME is a cluster name: letters, digits, . _ -):
#   pg_require                  skip the whole test (skip_all) unless
#                               PostgreSQL 15 can be run
#   pg_free_port                print a free TCP port of 127.0.0.1 (20000-60000)
#   pg_init NAME [INITDB ARGS]  initdb -k -A trust -U postgres -N into
#                               $PGSCRATCH/NAME, with a port, a socket folder
#                               and a test configuration (see _pg_base_conf)
#   pg_attach NAME DATADIR      register an existing data folder (say, a
#                               restored backup) as cluster NAME: owner, mode
#                               700, a new port and socket folder
#   pg_conf NAME 'key = value'...  append settings to postgresql.conf
#   pg_start NAME               pg_ctl start -w (retries on another port when
#                               the port was taken meanwhile); on failure the
#                               last 50 log lines go to stderr, status 1
#   pg_stop NAME                pg_ctl stop -m fast -w; if that fails, kill
#                               the postmaster (SIGQUIT, then SIGKILL)
#   pg_restart NAME             pg_stop then pg_start
#   pg_running NAME             status 0 when the postmaster is alive
#   pg_psql NAME [PSQL ARGS]    psql -X -q -v ON_ERROR_STOP=1 -At on the socket
#                               (user postgres, database postgres; -d DB works)
#   pg_wait_promoted NAME [SECONDS]
#                               wait (default 30 s) until the server is out
#                               of recovery; status 1 if it is not by then
#   pg_connstr NAME             "host=SOCKDIR port=PORT user=postgres dbname=postgres"
#   pg_datadir / pg_port / pg_sockdir / pg_logfile / pg_pid NAME
#   pg_procs NAME               pids of every process working in the data
#                               folder (postmaster, its children, archive_command)
#   pg_mkdir DIR...             mkdir -p, owned by PG_OS_USER, mode 700
#   pg_run_as_postgres [VAR=VALUE...] CMD [ARGS...]
#                               run CMD as PG_OS_USER with those variables
#                               set (the rest of the environment is kept)
#   pg_can_access PATH          status 0 when PG_OS_USER can reach and read
#                               PATH (execute it too, when it is a file with
#                               an x bit); else names the first obstacle
#   pg_cleanup_all              stop every server of pg_init / pg_attach
#                               (immediate shutdown, by the pid in
#                               postmaster.pid, and any process left in their
#                               data folders); the files stay
#
# Cleanup: pg_cleanup_all runs from the EXIT trap, before the EXIT trap that
# was there (lib.sh's, which removes $SCRATCH) — pglib.sh takes the EXIT trap
# over and calls the previous one afterwards with the same exit status.
# INT, TERM and HUP, when not trapped already, become an exit (so the EXIT
# trap runs).  If the test is killed with SIGKILL, a watchdog process (started
# with the first server) notices within a second and stops the servers.
#
# Without lib.sh, minimal ok / fail / finish / skip_all are defined here (the
# same output: "ok N - WHAT", "FAIL: MSG", closing "N passed, M failed").

if [[ -n ${_PGLIB_LOADED:-} ]]; then
	return 0
fi
_PGLIB_LOADED=1

PG_VERSION=15
pg_bin=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
PG_AVAILABLE=1
PG_UNAVAILABLE=
_PG_AS_ROOT=0
if ((EUID == 0)); then
	_PG_AS_ROOT=1
	PG_OS_USER=postgres
else
	PG_OS_USER=$(id -un)
fi

_pg_tool_missing=
for _pg_t in initdb pg_ctl postgres psql; do
	[[ -x $pg_bin/$_pg_t ]] || _pg_tool_missing+=" $_pg_t"
done
if [[ -n $_pg_tool_missing ]]; then
	PG_AVAILABLE=0
	PG_UNAVAILABLE="PostgreSQL $PG_VERSION not installed (missing in $pg_bin:$_pg_tool_missing; apt-get install postgresql-$PG_VERSION)"
elif ((_PG_AS_ROOT)) && ! id -u postgres >/dev/null 2>&1; then
	PG_AVAILABLE=0
	PG_UNAVAILABLE="running as root but there is no 'postgres' user to run PostgreSQL as"
elif ((_PG_AS_ROOT)) && ! command -v runuser >/dev/null 2>&1; then
	PG_AVAILABLE=0
	PG_UNAVAILABLE="running as root but runuser (util-linux) is missing"
fi
unset _pg_t _pg_tool_missing

# ---- minimal test helpers when lib.sh is not there ------------------------
: "${T_PASSED:=0}" "${T_FAILED:=0}" "${T_FINISHED:=0}"
_PG_FALLBACK=0
if ! declare -F fail >/dev/null; then
	_PG_FALLBACK=1
	fail() {
		trap - ERR
		echo "FAIL: $*"
		T_FINISHED=1
		echo "$T_PASSED passed, $((T_FAILED + 1)) failed"
		exit 1
	}
fi
if ! declare -F ok >/dev/null; then
	ok() {
		T_PASSED=$((T_PASSED + 1))
		echo "ok $T_PASSED - $*"
	}
fi
if ! declare -F finish >/dev/null; then
	finish() {
		T_FINISHED=1
		echo "$T_PASSED passed, $T_FAILED failed"
		((T_FAILED == 0)) || exit 1
		exit 0
	}
fi
if ! declare -F skip_all >/dev/null; then
	skip_all() {
		echo "SKIP: $*"
		finish
	}
fi

# ---- running things as the PostgreSQL user ---------------------------------

# _pg_as CMD...: CMD as PG_OS_USER, in / (root's cwd is often closed to it).
_pg_as() {
	if ((_PG_AS_ROOT)); then
		(cd / && exec runuser -u postgres -- "$@")
	else
		(cd / && exec "$@")
	fi
}

# _pg_close_fds: close every descriptor above 2 of the current (sub)shell, so
# that a daemon started from it holds no pipe of the test (lib.sh's fd 9 is
# CTest's stdout: a server holding it would keep CTest waiting).
_pg_close_fds() {
	local f n
	for f in "/proc/$BASHPID/fd"/*; do
		n=${f##*/}
		if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then
			eval "exec $n>&-" 2>/dev/null || true
		fi
	done
}

pg_run_as_postgres() {
	local envs=()
	while (($# > 0)) && [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
		envs+=("$1")
		shift
	done
	(($# > 0)) || {
		echo "pg_run_as_postgres: no command" >&2
		return 2
	}
	if ((_PG_AS_ROOT)); then
		# Stay in the current folder unless postgres cannot enter it.
		if runuser -u postgres -- test -x "$PWD" 2>/dev/null; then
			runuser -u postgres -- env ${envs[@]+"${envs[@]}"} "$@"
		else
			(cd / && exec runuser -u postgres -- env ${envs[@]+"${envs[@]}"} "$@")
		fi
	else
		env ${envs[@]+"${envs[@]}"} "$@"
	fi
}

pg_can_access() {
	local path=$1 p="" comp
	[[ $path == /* ]] || path=$PWD/$path
	local IFS=/
	local parts
	read -r -a parts <<<"${path#/}"
	unset IFS
	p=""
	for comp in "${parts[@]}"; do
		[[ -n $comp ]] || continue
		local parent=${p:-/}
		if ! _pg_as test -x "$parent"; then
			echo "pg_can_access: $PG_OS_USER cannot enter $parent" >&2
			return 1
		fi
		p=$p/$comp
	done
	if [[ -d $path ]]; then
		_pg_as test -r "$path" -a -x "$path" || {
			echo "pg_can_access: $PG_OS_USER cannot list $path" >&2
			return 1
		}
	else
		_pg_as test -r "$path" || {
			echo "pg_can_access: $PG_OS_USER cannot read $path" >&2
			return 1
		}
		if [[ -f $path && -x $path ]]; then
			_pg_as test -x "$path" || {
				echo "pg_can_access: $PG_OS_USER cannot execute $path" >&2
				return 1
			}
		fi
	fi
	return 0
}

pg_mkdir() {
	local d
	for d in "$@"; do
		mkdir -p "$d" || return 1
		if ((_PG_AS_ROOT)); then
			chown postgres:postgres "$d" || return 1
		fi
		chmod 700 "$d" || return 1
	done
}

pg_require() {
	if ((PG_AVAILABLE == 0)); then
		skip_all "$PG_UNAVAILABLE"
	fi
	_pg_setup_scratch || fail "pglib: no scratch folder usable by $PG_OS_USER"
}

# ---- scratch ---------------------------------------------------------------
PGSCRATCH=${PGSCRATCH:-}
_PG_OWN_SCRATCH=0
_PG_SOCKBASE=
_PG_OWN_SOCKBASE=0
_PG_PARENT=$BASHPID
_PG_WATCHDOG_PID=
_PG_USED_PORTS=" "
_PG_CLUSTERS=()
declare -gA _PG_DIR=() _PG_PORT=() _PG_SOCK=() _PG_LOG=() _PG_PID=()

_pg_setup_scratch() {
	[[ -n $_PG_SOCKBASE ]] && return 0
	if [[ -z $PGSCRATCH ]]; then
		if [[ -n ${SCRATCH:-} && -d ${SCRATCH:-} ]]; then
			# $SCRATCH/pg, unless taken (SCRATCH inherited from a parent test).
			PGSCRATCH=$SCRATCH/pg
			if ! mkdir "$PGSCRATCH" 2>/dev/null; then
				PGSCRATCH=$(mktemp -d "$SCRATCH/pg.XXXXXX") || return 1
			fi
			_PG_OWN_SCRATCH=1
			chmod 755 "$PGSCRATCH" || return 1
			if ! pg_can_access "$PGSCRATCH" 2>/dev/null; then
				rmdir "$PGSCRATCH" 2>/dev/null || true
				PGSCRATCH=
			fi
		fi
		if [[ -z $PGSCRATCH ]]; then
			PGSCRATCH=$(mktemp -d /tmp/cairn-pg.XXXXXX) || return 1
			chmod 755 "$PGSCRATCH" || return 1
			_PG_OWN_SCRATCH=1
		fi
	else
		mkdir -p "$PGSCRATCH" || return 1
	fi
	PGSCRATCH=$(cd "$PGSCRATCH" && pwd -P)

	pg_can_access "$PGSCRATCH" || return 1
	# A socket path must stay under 108 bytes ("/sock-NAME/.s.PGSQL.NNNNN.lock").
	if ((${#PGSCRATCH} <= 60)); then
		_PG_SOCKBASE=$PGSCRATCH
	else
		_PG_SOCKBASE=$(mktemp -d /tmp/pgs.XXXXXX) || return 1
		chmod 755 "$_PG_SOCKBASE"
		_PG_OWN_SOCKBASE=1
	fi
	: >"$PGSCRATCH/.pglib-clusters"
}

# ---- ports -----------------------------------------------------------------
pg_free_port() {
	local i p
	for ((i = 0; i < 500; i++)); do
		p=$((20000 + ((RANDOM << 15) + RANDOM + BASHPID) % 40001))
		[[ $_PG_USED_PORTS == *" $p "* ]] && continue
		[[ -e /tmp/.s.PGSQL.$p || -e /tmp/.s.PGSQL.$p.lock ]] && continue
		[[ -e /var/run/postgresql/.s.PGSQL.$p ]] && continue
		# Something answers on it?
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			continue
		fi
		echo "$p"
		return 0
	done
	echo "pg_free_port: no free port found" >&2
	return 1
}

# ---- clusters --------------------------------------------------------------
_pg_check_name() {
	[[ ${1:-} =~ ^[A-Za-z0-9_.-]+$ ]] || {
		echo "pglib: bad cluster name '${1:-}'" >&2
		return 1
	}
}

_pg_known() {
	_pg_check_name "${1:-}" || return 1
	[[ -n ${_PG_DIR[$1]:-} ]] || {
		echo "pglib: no cluster '$1' (pg_init it first)" >&2
		return 1
	}
}

pg_datadir() { _pg_known "${1:-}" && echo "${_PG_DIR[$1]}"; }
pg_port() { _pg_known "${1:-}" && echo "${_PG_PORT[$1]}"; }
pg_sockdir() { _pg_known "${1:-}" && echo "${_PG_SOCK[$1]}"; }
pg_logfile() { _pg_known "${1:-}" && echo "${_PG_LOG[$1]}"; }
pg_connstr() {
	_pg_known "${1:-}" &&
		echo "host=${_PG_SOCK[$1]} port=${_PG_PORT[$1]} user=postgres dbname=postgres"
}

# _pg_alive PID: the process exists and is no zombie (PID 1 of a container
# may be slow to reap an orphaned postmaster).
_pg_alive() {
	local st=""
	kill -0 "$1" 2>/dev/null || return 1
	read -r st <"/proc/$1/stat" 2>/dev/null || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# The postmaster's pid from postmaster.pid, if that process is alive.
_pg_pid_of_dir() {
	local dir=$1 pid=""
	[[ -r $dir/postmaster.pid ]] || return 1
	read -r pid <"$dir/postmaster.pid" 2>/dev/null || true
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	_pg_alive "$pid" || return 1
	# Not a recycled pid: the postmaster works in its data folder.
	[[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$dir" ]] || return 1
	echo "$pid"
}

pg_pid() {
	_pg_known "${1:-}" || return 1
	_pg_pid_of_dir "${_PG_DIR[$1]}"
}

pg_running() {
	pg_pid "${1:-}" >/dev/null 2>&1
}

# Processes whose current folder is DIR: a postmaster, every child of it and
# whatever the archive_command runs.
_pg_procs_in() {
	local dir=$1 p
	for p in /proc/[0-9]*; do
		if [[ $(readlink "$p/cwd" 2>/dev/null) == "$dir" ]]; then
			echo "${p#/proc/}"
		fi
	done
}

pg_procs() {
	_pg_known "${1:-}" || return 1
	_pg_procs_in "${_PG_DIR[$1]}"
}

_pg_base_conf() {
	local name=$1
	cat <<EOF

# ---- pglib.sh ----
port = ${_PG_PORT[$name]}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${_PG_SOCK[$name]}'
wal_level = replica
max_wal_senders = 10
archive_mode = off
fsync = on
shared_buffers = 32MB
max_connections = 20
logging_collector = off
log_line_prefix = '%m [%p] '
EOF
}

_pg_register() {
	local name=$1 dir=$2 port
	_PG_DIR[$name]=$dir
	_PG_SOCK[$name]=$_PG_SOCKBASE/sock-$name
	_PG_LOG[$name]=$PGSCRATCH/$name.log
	port=$(pg_free_port) || return 1
	_PG_PORT[$name]=$port
	_PG_USED_PORTS+="$port "
	_PG_CLUSTERS+=("$name")
	echo "$dir" >>"$PGSCRATCH/.pglib-clusters"
	mkdir -p "${_PG_SOCK[$name]}" || return 1
	chmod 755 "${_PG_SOCK[$name]}"
	: >>"${_PG_LOG[$name]}"
	if ((_PG_AS_ROOT)); then
		chown postgres:postgres "${_PG_SOCK[$name]}" "${_PG_LOG[$name]}" || return 1
	fi
}

pg_init() {
	local name=${1:-}
	_pg_check_name "$name" || return 1
	shift
	((PG_AVAILABLE)) || {
		echo "pg_init: $PG_UNAVAILABLE" >&2
		return 1
	}
	_pg_setup_scratch || return 1
	_pg_install_traps
	if [[ -n ${_PG_DIR[$name]:-} ]]; then
		echo "pg_init: cluster '$name' exists already" >&2
		return 1
	fi
	local dir=$PGSCRATCH/$name
	[[ ! -e $dir ]] || {
		echo "pg_init: $dir exists already" >&2
		return 1
	}
	mkdir -m 700 "$dir" || return 1
	if ((_PG_AS_ROOT)); then
		chown postgres:postgres "$dir" || return 1
	fi
	_pg_register "$name" "$dir" || return 1
	local ilog=$PGSCRATCH/$name.initdb.log
	if ! _pg_as "$pg_bin/initdb" -D "$dir" -k -A trust -U postgres -N \
		--locale=C -E UTF8 "$@" >"$ilog" 2>&1; then
		echo "pg_init: initdb of '$name' failed:" >&2
		tail -n 30 "$ilog" >&2
		return 1
	fi
	_pg_base_conf "$name" >>"$dir/postgresql.conf" || return 1
}

pg_attach() {
	local name=${1:-} dir=${2:-}
	_pg_check_name "$name" || return 1
	((PG_AVAILABLE)) || {
		echo "pg_attach: $PG_UNAVAILABLE" >&2
		return 1
	}
	[[ -f $dir/PG_VERSION ]] || {
		echo "pg_attach: $dir is no data folder (no PG_VERSION)" >&2
		return 1
	}
	_pg_setup_scratch || return 1
	_pg_install_traps
	[[ -z ${_PG_DIR[$name]:-} ]] || {
		echo "pg_attach: cluster '$name' exists already" >&2
		return 1
	}
	dir=$(cd "$dir" && pwd -P)
	pg_can_access "$(dirname "$dir")" || return 1
	if ((_PG_AS_ROOT)); then
		chown -R postgres:postgres "$dir" || return 1
	fi
	chmod 700 "$dir" || return 1
	rm -f "$dir/postmaster.pid" "$dir/postmaster.opts"
	_pg_register "$name" "$dir" || return 1
	_pg_base_conf "$name" | grep -v '^archive_mode' >>"$dir/postgresql.conf" || return 1
}

pg_conf() {
	local name=${1:-} line
	_pg_known "$name" || return 1
	shift
	for line in "$@"; do
		printf '%s\n' "$line" >>"${_PG_DIR[$name]}/postgresql.conf" || return 1
		if [[ $line =~ ^[[:space:]]*port[[:space:]]*=[[:space:]]*\'?([0-9]+) ]]; then
			_PG_PORT[$name]=${BASH_REMATCH[1]}
			_PG_USED_PORTS+="${BASH_REMATCH[1]} "
		fi
	done
}

pg_start() {
	local name=${1:-}
	_pg_known "$name" || return 1
	_pg_install_traps
	_pg_start_watchdog
	local dir=${_PG_DIR[$name]} log=${_PG_LOG[$name]}
	if pg_running "$name"; then
		echo "pg_start: '$name' is running already" >&2
		return 1
	fi
	local attempt from port
	for attempt in 1 2 3; do
		from=$(($(stat -c %s "$log") + 1))
		if (
			_pg_close_fds
			_pg_as "$pg_bin/pg_ctl" -D "$dir" -l "$log" -w -t 60 -s start
		) >/dev/null 2>"$PGSCRATCH/$name.pg_ctl.err"; then
			_PG_PID[$name]=$(_pg_pid_of_dir "$dir") || true
			return 0
		fi
		# Another server may have taken the port since pg_free_port: try anew.
		if ((attempt < 3)) && ! pg_running "$name" &&
			tail -c "+$from" "$log" | grep -q 'Address already in use'; then
			port=$(pg_free_port) || break
			echo "# pg_start: port ${_PG_PORT[$name]} of '$name' is taken, trying $port" >&2
			pg_conf "$name" "port = $port"
			continue
		fi
		break
	done
	{
		echo "pg_start: '$name' did not start; pg_ctl said:"
		cat "$PGSCRATCH/$name.pg_ctl.err"
		echo "--- last 50 lines of $log:"
		tail -n 50 "$log"
		echo "---"
	} >&2
	# pg_ctl -w gave up, the server may still come up: never leave it behind.
	_pg_kill_dir "$dir" immediate
	return 1
}

# _pg_kill_dir DIR MODE: stop the server of DIR (pg_ctl stop -m MODE, then
# signals) and any process still working in DIR.  Status 1 if some survive.
_pg_kill_dir() {
	local dir=$1 mode=$2 pid i p
	if pid=$(_pg_pid_of_dir "$dir"); then
		if ! (
			_pg_close_fds
			_pg_as "$pg_bin/pg_ctl" -D "$dir" -m "$mode" -w -t 30 -s stop
		) >/dev/null 2>&1; then
			echo "# pglib: pg_ctl stop -m $mode of $dir failed, killing $pid" >&2
			kill -QUIT "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				_pg_alive "$pid" || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	# Children of a killed postmaster, archive_command leftovers.
	for ((i = 0; i < 50; i++)); do
		p=$(_pg_procs_in "$dir")
		[[ -z $p ]] && return 0
		if ((i == 20)); then
			kill -KILL $p 2>/dev/null || true
		fi
		sleep 0.1
	done
	echo "# pglib: processes still in $dir: $p" >&2
	return 1
}

pg_stop() {
	local name=${1:-}
	_pg_known "$name" || return 1
	_pg_kill_dir "${_PG_DIR[$name]}" fast
}

pg_restart() {
	pg_stop "${1:-}" && pg_start "${1:-}"
}

pg_psql() {
	local name=${1:-}
	_pg_known "$name" || return 1
	shift
	pg_run_as_postgres "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -At \
		-h "${_PG_SOCK[$name]}" -p "${_PG_PORT[$name]}" -U postgres -d postgres "$@"
}

pg_wait_promoted() {
	local name=${1:-} secs=${2:-30} i
	_pg_known "$name" || return 1
	for ((i = 0; i < secs * 5; i++)); do
		[[ $(pg_psql "$name" -c "select pg_is_in_recovery()" 2>/dev/null) == f ]] && return 0
		sleep 0.2
	done
	return 1
}

pg_cleanup_all() {
	local name dir rc=0
	if [[ -n $_PG_WATCHDOG_PID ]]; then
		kill "$_PG_WATCHDOG_PID" 2>/dev/null || true
		_PG_WATCHDOG_PID=
	fi
	for name in ${_PG_CLUSTERS[@]+"${_PG_CLUSTERS[@]}"}; do
		dir=${_PG_DIR[$name]}
		[[ -d $dir ]] || continue
		_pg_kill_dir "$dir" immediate || rc=1
	done
	if ((_PG_OWN_SOCKBASE)) && [[ -d $_PG_SOCKBASE ]]; then
		rm -rf "$_PG_SOCKBASE"
	fi
	return $rc
}

# ---- traps -----------------------------------------------------------------
_PG_PREV_EXIT=

_pg_exit_handler() {
	local rc=$?
	trap - ERR
	set +e
	pg_cleanup_all
	# The folder pglib.sh made (lib.sh would remove it too, with $SCRATCH).
	if ((_PG_OWN_SCRATCH)) && [[ -n $PGSCRATCH && -d $PGSCRATCH ]]; then
		rm -rf "$PGSCRATCH"
	fi
	if [[ -n $_PG_PREV_EXIT ]]; then
		# The previous handler (lib.sh's _t_cleanup) sees the same status.
		(exit "$rc")
		eval "$_PG_PREV_EXIT"
	fi
	if ((_PG_FALLBACK)) && [[ -z $_PG_PREV_EXIT && $T_FINISHED == 0 && $rc != 0 ]]; then
		echo "$T_PASSED passed, $((T_FAILED + 1)) failed"
	fi
	exit "$rc"
}

# Take the EXIT trap over (again, if something set it since), keeping the one
# that was there to call after pg_cleanup_all.
_pg_install_traps() {
	local cur sig
	local -a words=()
	cur=$(trap -p EXIT)
	if [[ $cur != *_pg_exit_handler* ]]; then
		_PG_PREV_EXIT=
		if [[ -n $cur ]]; then
			# cur is: trap -- 'COMMAND' EXIT
			eval "words=($cur)"
			_PG_PREV_EXIT=${words[2]}
		fi
		trap _pg_exit_handler EXIT
	fi
	for sig in INT TERM HUP; do
		if [[ -z $(trap -p "$sig") ]]; then
			case $sig in
			INT) trap 'exit 130' INT ;;
			TERM) trap 'exit 143' TERM ;;
			HUP) trap 'exit 129' HUP ;;
			esac
		fi
	done
}

# A process outside the test's process tree that stops the servers listed in
# $PGSCRATCH/.pglib-clusters when the test is gone without cleaning up
# (SIGKILL, CTest timeout), then removes the folders pglib.sh made.  It
# leaves when that list is removed or when pg_cleanup_all kills it.
_pg_watchdog() {
	local parent=$1 list=$2 own_scratch=$3 own_sockbase=$4 dir pid i
	trap - ERR EXIT
	trap '' INT HUP
	set +eEu
	_pg_close_fds
	exec </dev/null >/dev/null 2>&1
	while _pg_alive "$parent"; do
		[[ -e $list ]] || exit 0
		sleep 1
	done
	[[ -e $list ]] || exit 0
	while read -r dir; do
		[[ -n $dir ]] || continue
		if pid=$(_pg_pid_of_dir "$dir"); then
			kill -QUIT "$pid"
			for ((i = 0; i < 100; i++)); do
				_pg_alive "$pid" || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
		fi
		sleep 0.5
		pid=$(_pg_procs_in "$dir")
		[[ -z $pid ]] || kill -KILL $pid
	done <"$list"
	# The folders pglib.sh made ($SCRATCH is lib.sh's business).
	[[ -z $own_scratch ]] || rm -rf "$own_scratch"
	[[ -z $own_sockbase ]] || rm -rf "$own_sockbase"
	exit 0
}

_pg_start_watchdog() {
	if [[ -n $_PG_WATCHDOG_PID ]] && kill -0 "$_PG_WATCHDOG_PID" 2>/dev/null; then
		return 0
	fi
	local pidfile=$PGSCRATCH/.pglib-watchdog
	rm -f "$pidfile"
	# Twice forked: not a job of the test (a bare `wait` must not wait for it).
	(
		trap - ERR
		_pg_watchdog "$_PG_PARENT" "$PGSCRATCH/.pglib-clusters" \
			"$( ((_PG_OWN_SCRATCH)) && echo "$PGSCRATCH")" \
			"$( ((_PG_OWN_SOCKBASE)) && echo "$_PG_SOCKBASE")" &
		echo $! >"$pidfile"
	)
	read -r _PG_WATCHDOG_PID <"$pidfile" || _PG_WATCHDOG_PID=
}

if ((PG_AVAILABLE)); then
	_pg_install_traps
fi
