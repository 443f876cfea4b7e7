#!/usr/bin/env bash
# bench/compare.sh — cairn side by side with pgBackRest, restic, borg and
# pg_basebackup on the same PostgreSQL 15 data (issue 6).  Run by hand, as
# root (PostgreSQL and every tool then run as the `postgres` user; missing
# peers are installed from Debian's packages); see bench/README.md.
#
#   bench/compare.sh [--scale N] [--runs R] [--tools LIST] [--out FILE]
#                    [--datasets pgbench,mixed] [--tx T] [--segments S]
#                    [--cairn BIN] [--keep]
#
#   --scale N     pgbench scale of the datasets (default 100: about 1.5 GB each)
#   --runs R      runs of everything; tables show medians (default 3)
#   --tools LIST  comma-separated, from: cairn, pgbackrest (= pgbackrest-plain,
#                 pgbackrest-enc and pgbackrest-block), pgbackrest-plain,
#                 pgbackrest-enc, pgbackrest-block, restic, borg, pg_basebackup
#                 (default: all)
#   --out FILE    also write the report to FILE (and the raw measurements to
#                 FILE.tsv)
#   --datasets    which datasets (default pgbench,mixed)
#   --tx T        transactions per client of the change workload (default
#                 100 × scale, at least 100); the tiny change runs T/10
#   --segments S  WAL segments of the archive phases (default 20)
#   --cairn BIN   measure this cairn binary instead of building one (Release,
#                 build-bench/, from the working tree)
#   --cairn-label TEXT  how the report names that binary (say, a commit)
#   --keep        keep the work folder
#
# The phases, per dataset and run, every tool on the same cluster state:
#   full backup; change workload (pgbench -c 2 -t T, CHECKPOINT); second
#   backup; tiny change (-t T/10, CHECKPOINT); third backup; restore of the
#   third backup to an empty folder; archive-push of S real WAL segments, one
#   process per segment; archive-get of them (each compared with the original).
# Each measured step: wall time, CPU time (user+sys of the process tree) and
# peak RSS (largest single process of the tree) from /usr/bin/time, and the
# bytes the repository grew by (du -sb before/after).
set -euo pipefail

scale=100 runs=3 tools_arg=all out="" datasets_arg=pgbench,mixed tx="" segments=20 cairn_arg="" cairn_label="" keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($# > 0)); do
	case $1 in
	--scale) scale=${2:?}; shift 2 ;;
	--runs) runs=${2:?}; shift 2 ;;
	--tools) tools_arg=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--datasets) datasets_arg=${2:?}; shift 2 ;;
	--tx) tx=${2:?}; shift 2 ;;
	--segments) segments=${2:?}; shift 2 ;;
	--cairn) cairn_arg=${2:?}; shift 2 ;;
	--cairn-label) cairn_label=${2:?}; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) usage ;;
	*) echo "compare.sh: unknown option $1" >&2; usage ;;
	esac
done
[[ $scale =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ && $segments =~ ^[1-9][0-9]*$ ]] ||
	{ echo "compare.sh: --scale, --runs and --segments take positive integers" >&2; exit 2; }
[[ -z $tx || $tx =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --tx takes a positive integer" >&2; exit 2; }
[[ -n $tx ]] || tx=$((scale * 100 < 100 ? 100 : scale * 100))
tx_small=$((tx / 10 < 10 ? 10 : tx / 10))
[[ -z $out || $out == /* ]] || out=$PWD/$out
[[ -z $cairn_arg || $cairn_arg == /* ]] || cairn_arg=$PWD/$cairn_arg
cd "$(dirname "$0")/.."
src=$PWD

t_begin=$(date +%s)
say() { printf '# [%4ds] %s\n' $(($(date +%s) - t_begin)) "$*" >&2; }
die() { echo "compare.sh: $*" >&2; exit 1; }

# ---- tools -----------------------------------------------------------------
all_tools=(cairn pgbackrest-plain pgbackrest-enc pgbackrest-block restic borg pg_basebackup)
[[ $tools_arg == all ]] && tools_arg=$(IFS=,; echo "${all_tools[*]}")
declare -A want=()
IFS=, read -r -a _t <<<"$tools_arg"
for t in "${_t[@]}"; do
	case $t in
	pgbackrest) want[pgbackrest-plain]=1 want[pgbackrest-enc]=1 want[pgbackrest-block]=1 ;;
	cairn | pgbackrest-plain | pgbackrest-enc | pgbackrest-block | restic | borg | pg_basebackup) want[$t]=1 ;;
	*) die "unknown tool '$t' (cairn, pgbackrest, pgbackrest-plain, pgbackrest-enc, pgbackrest-block, restic, borg, pg_basebackup)" ;;
	esac
done
IFS=, read -r -a datasets <<<"$datasets_arg"
for d in "${datasets[@]}"; do
	[[ $d == pgbench || $d == mixed ]] || die "unknown dataset '$d' (pgbench, mixed)"
done

pgbin=/usr/lib/postgresql/15/bin
notes=()
apt_install() {
	((EUID == 0)) || die "missing packages: $*; run as root, or: apt-get install -y --no-install-recommends $*"
	say "installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if [[ " $* " == *" postgresql-15 "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
		# Throwaway servers only: no Debian default cluster on port 5432.
		mkdir -p /etc/postgresql-common/createcluster.d
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/cairn.conf
	fi
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
missing=()
[[ -x $pgbin/initdb && -x $pgbin/pgbench && -x $pgbin/pg_basebackup ]] || missing+=(postgresql-15 postgresql-client-15)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v zstd >/dev/null || missing+=(zstd)
if [[ -n ${want[pgbackrest-plain]:-}${want[pgbackrest-enc]:-}${want[pgbackrest-block]:-} ]]; then
	command -v pgbackrest >/dev/null || missing+=(pgbackrest)
fi
[[ -z ${want[restic]:-} ]] || command -v restic >/dev/null || missing+=(restic)
[[ -z ${want[borg]:-} ]] || command -v borg >/dev/null || missing+=(borgbackup)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
if [[ -n ${want[pgbackrest-block]:-} ]] && ! pgbackrest help backup repo-block >/dev/null 2>&1; then
	unset 'want[pgbackrest-block]'
	notes+=("pgbackrest-block left out: pgBackRest $(pgbackrest version | awk '{print $2}') has no block incremental (repo-block).")
fi
tools=()
for t in "${all_tools[@]}"; do [[ -z ${want[$t]:-} ]] || tools+=("$t"); done
((${#tools[@]} > 0)) || die "no tool to measure"

if [[ -n $cairn_arg ]]; then
	cairn=$cairn_arg
	[[ -x $cairn ]] || die "--cairn $cairn is not executable"
	cairn_version="${cairn_label:-$cairn} (--cairn $cairn)"
else
	say "building cairn (Release, build-bench/)"
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-bench -j"$(nproc)" --target cairn >/dev/null
	cairn=$src/build-bench/cairn
	cairn_version="$(git describe --always --dirty 2>/dev/null || echo unknown) (Release build of this checkout)"
fi

# ---- work folder, running as postgres ----------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-compare.XXXXXX")
chmod 755 "$work"
pgdata=$work/pg sock=$work/sock port=5432 # unix socket only, in our own folder
if ((${#sock} > 80)); then # a socket path must stay under 108 bytes
	sock=$(mktemp -d /tmp/cc-sock.XXXXXX)
	chmod 755 "$sock"
	((EUID != 0)) || chown postgres: "$sock"
fi
raw=$work/raw.tsv
: >"$raw"
if ((EUID == 0)); then
	id -u postgres >/dev/null 2>&1 || die "running as root but there is no postgres user"
	chown postgres: "$work"
	as_pg() { (cd "$work" && exec runuser -u postgres -- "$@"); }
	pg_user=postgres
else
	as_pg() { (cd "$work" && exec "$@"); }
	pg_user=$(id -un)
fi
# The cairn binary must be reachable by postgres (say, under /root it is not).
if ! as_pg test -x "$cairn"; then
	cp "$cairn" "$work/cairn" && chmod 755 "$work/cairn"
	cairn=$work/cairn
fi

close_fds() { # in a subshell: no descriptor above 2 reaches a daemon
	local f n
	for f in "/proc/$BASHPID/fd"/*; do
		n=${f##*/}
		[[ $n =~ ^[0-9]+$ ]] && ((n > 2)) && { eval "exec $n>&-" 2>/dev/null || true; }
	done
	return 0
}
pg_up() { [[ -f $pgdata/postmaster.pid ]] && as_pg "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; }
pg_start() {
	(close_fds; as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$work/pg.log" -w -t 300 -s start) >/dev/null 2>&1 ||
		{ tail -n 30 "$work/pg.log" >&2; die "PostgreSQL did not start"; }
}
pg_stop() { # MODE
	pg_up || return 0
	(close_fds; as_pg "$pgbin/pg_ctl" -D "$pgdata" -m "${1:-fast}" -w -t 300 -s stop) >/dev/null 2>&1 || true
}
cleanup() {
	local rc=$?
	set +e
	pg_stop immediate
	if ((keep)); then say "work folder kept: $work"; else rm -rf "$work"; fi
	[[ $sock == "$work"/* ]] || rm -rf "$sock"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
psql_() { as_pg "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$sock" -p "$port" -U postgres -d postgres "$@"; }

# ---- what runs as postgres: helpers.sh ----------------------------------------
# Every measured command, and the archive_command, is a function of this file
# run by `bash -c`; the variables are fixed for the whole bench.
h_archive() { # %p %f — the archive_command: where WAL goes depends on the phase
	local mode
	mode=$(<"$work/archive.mode")
	case $mode in
	discard) return 0 ;; # restic, borg, pg_basebackup do not use the WAL archive
	pool) cp "$1" "$work/pool/$2.tmp" && mv "$work/pool/$2.tmp" "$work/pool/$2" ;;
	cairn) "$cairn" -q -r "$work/repo/cairn" --key-file "$work/cairn.key" archive-push "$1" ;;
	pgbackrest-*) pgbackrest --config="$work/$mode.conf" --stanza=bench archive-push "$1" ;;
	*) echo "h_archive: bad mode $mode" >&2; return 1 ;;
	esac
}
h_online() { # CMD...: CMD between pg_backup_start(fast) and pg_backup_stop on one session
	local line="" rc=0
	coproc PSQL { exec "$pgbin/psql" -X -q -At -h "$sock" -p "$port" -U postgres -d postgres 2>&1; }
	local pin=${PSQL[1]} pout=${PSQL[0]} ppid=$PSQL_PID
	printf "select pg_backup_start('bench', true);\nselect 'bench:started';\n" >&"$pin"
	while read -r line <&"$pout"; do
		[[ $line == bench:started ]] && break
	done
	[[ $line == bench:started ]] || { echo "h_online: pg_backup_start failed" >&2; return 1; }
	"$@" || rc=$?
	printf "\\\\o %s\nselect labelfile from pg_backup_stop(false);\n\\\\q\n" "$work/backup_label" >&"$pin"
	wait "$ppid" || rc=1
	return $rc
}
h_warn_ok() { # OK_STATUS CMD...: CMD, whose status OK_STATUS means "done, with warnings"
	local okrc=$1 rc=0
	shift
	"$@" || rc=$?
	((rc == 0 || rc == okrc)) || return $rc
	((rc == 0)) || echo "h_warn_ok: $1 exited $rc (warnings: a file changed or vanished while read)" >&2
}
h_backup() { # TOOL N
	local t=$1 n=$2
	case $t in
	cairn) "$cairn" -q -r "$work/repo/cairn" --key-file "$work/cairn.key" backup --pgdata "$pgdata" \
		--pg-conn "host=$sock port=$port user=postgres dbname=postgres" ;;
	pgbackrest-*) pgbackrest --config="$work/$t.conf" --stanza=bench backup --type="$( ((n == 1)) && echo full || echo incr)" ;;
	restic) h_online h_warn_ok 3 restic -r "$work/repo/restic" backup -q --host bench --exclude "$pgdata/pg_wal/*" "$pgdata" ;;
	borg) h_online h_warn_ok 1 borg create --compression zstd,3 --exclude "$pgdata/pg_wal/*" "$work/repo/borg::b$n" "$pgdata" ;;
	pg_basebackup) "$pgbin/pg_basebackup" -h "$sock" -p "$port" -U postgres -D "$work/repo/pg_basebackup/b$n" \
		-Ft --compress=client-zstd -c fast -X stream ;;
	esac
}
h_restore() { # TOOL DIR: the newest backup into the empty folder DIR
	local t=$1 dir=$2 b
	case $t in
	cairn) "$cairn" -q -r "$work/repo/cairn" --key-file "$work/cairn.key" restore --target "$dir" ;;
	pgbackrest-*) pgbackrest --config="$work/$t.conf" --stanza=bench --pg1-path="$dir" restore ;;
	restic) restic -r "$work/repo/restic" restore -q latest --target "$dir" ;;
	borg) (cd "$dir" && borg extract "$work/repo/borg::b3") ;;
	pg_basebackup)
		b=$work/repo/pg_basebackup/b3
		# (PostgreSQL 15 writes pg_wal.tar uncompressed under client-zstd)
		tar -I zstd -xf "$b/base.tar.zst" -C "$dir" &&
			if [[ -f $b/pg_wal.tar.zst ]]; then tar -I zstd -xf "$b/pg_wal.tar.zst" -C "$dir/pg_wal"; else tar -xf "$b/pg_wal.tar" -C "$dir/pg_wal"; fi ;;
	esac
}
h_push() { # TOOL: archive-push of every segment in segs.list, one process each (cwd: the data folder)
	local t=$1 s
	cd "$pgdata"
	while read -r s; do
		case $t in
		cairn) "$cairn" -q -r "$work/repo/cairn" --key-file "$work/cairn.key" archive-push "$work/pool/$s" ;;
		pgbackrest-*) pgbackrest --config="$work/$t.conf" --stanza=bench archive-push "$work/pool/$s" ;;
		restic) restic -r "$work/repo/restic" backup -q --host bench --tag "$s" "$work/pool/$s" ;;
		borg) borg create --compression zstd,3 "$work/repo/borg::$s" "$work/pool/$s" ;;
		cp) cp "$work/pool/$s" "$work/repo/cp/$s" && sync "$work/repo/cp/$s" ;;
		esac || return 1
	done <"$work/segs.list"
}
h_get() { # TOOL: archive-get of every segment in segs.list into got/, one process each
	local t=$1 s
	cd "$pgdata"
	while read -r s; do
		case $t in
		cairn) "$cairn" -q -r "$work/repo/cairn" --key-file "$work/cairn.key" archive-get "$s" "$work/got/$s" ;;
		pgbackrest-*) pgbackrest --config="$work/$t.conf" --stanza=bench archive-get "$s" "$work/got/$s" ;;
		restic) restic -r "$work/repo/restic" dump -q --tag "$s" latest "$work/pool/$s" >"$work/got/$s" ;;
		borg) borg extract --stdout "$work/repo/borg::$s" "${work#/}/pool/$s" >"$work/got/$s" ;;
		cp) cp "$work/repo/cp/$s" "$work/got/$s" && sync "$work/got/$s" ;;
		esac || return 1
	done <"$work/segs.list"
}
{
	echo 'set -eo pipefail'
	declare -p work pgdata sock port pgbin cairn
	cat <<ENV
export CAIRN_CACHE_DIR=$work/cache/cairn
export RESTIC_PASSWORD=bench-restic RESTIC_CACHE_DIR=$work/cache/restic
export BORG_PASSPHRASE=bench-borg BORG_BASE_DIR=$work/cache/borg
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
ENV
	declare -f h_archive h_online h_warn_ok h_backup h_restore h_push h_get
} >"$work/helpers.sh"
# (pgbackrest backup insists that archive_command contains "pgbackrest")
archive_cmd=$work/archive-to-cairn-or-pgbackrest.sh
printf '#!/bin/bash\n. %q\nh_archive "$@"\n' "$work/helpers.sh" >"$archive_cmd"
chmod 755 "$archive_cmd"
chmod 644 "$work/helpers.sh"
as_pg mkdir -p "$work/repo" "$work/cache" "$work/pool" "$work/got" "$work/restore"
as_pg sh -c "echo discard >'$work/archive.mode'"

# ---- archive mode --------------------------------------------------------------
set_mode() { as_pg sh -c "echo $1 >'$work/archive.mode.tmp' && mv '$work/archive.mode.tmp' '$work/archive.mode'"; }
wait_archiver() { # until no segment waits for archive_command
	local i
	for ((i = 0; i < 1800; i++)); do
		compgen -G "$pgdata/pg_wal/archive_status/*.ready" >/dev/null || return 0
		sleep 0.1
	done
	tail -n 20 "$work/pg.log" >&2
	die "the archiver is stuck (archive mode $(<"$work/archive.mode"))"
}
mode_for() { # the archive mode while TOOL's backup runs
	case $1 in
	cairn | pgbackrest-*) echo "$1" ;;
	*) echo discard ;;
	esac
}

# ---- measurement ---------------------------------------------------------------
# measure DATASET RUN PHASE TOOL SIZE_PATH CMD...: one line of raw.tsv.
# SIZE_PATH is the repository (bytes added = du -sb after - before), or for a
# restore the target folder (bytes = what was restored).
measure() {
	local ds=$1 run=$2 phase=$3 tool=$4 path=$5 before=0 after wall user sys rss status=ok
	shift 5
	sync
	[[ $phase == restore ]] || before=$(du -sb "$path" | cut -f1)
	rm -f "$work/time.out"
	if ! as_pg /usr/bin/time -f '%e %U %S %M' -o "$work/time.out" \
		bash -c '. "$1"; shift; "$@"' _ "$work/helpers.sh" "$@" >"$work/cmd.log" 2>&1; then
		status=failed
		say "FAILED: $tool $phase ($ds, run $run):"
		tail -n 15 "$work/cmd.log" | sed 's/^/#   /' >&2
	fi
	after=$(du -sb "$path" | cut -f1)
	wall=0 user=0 sys=0 rss=0
	[[ -s $work/time.out ]] && read -r wall user sys rss < <(tail -n 1 "$work/time.out")
	[[ $wall =~ ^[0-9.]+$ ]] || wall=0 user=0 sys=0 rss=0 status=failed
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$run" "$phase" "$tool" "$wall" \
		"$(echo "$user + $sys" | bc)" "$rss" "$((after - before))" "$status" >>"$raw"
	say "$(printf '%-8s run %d  %-13s %-17s %7.2f s wall %7.2f s cpu %7.1f MiB %12d bytes %s' \
		"$ds" "$run" "$phase" "$tool" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$rss / 1024" | bc -l)" \
		"$((after - before))" "$status")"
	[[ $status == ok ]]
}
record() { # DATASET RUN PHASE TOOL WALL BYTES: a step that is not a tool's (the workloads)
	printf '%s\t%s\t%s\t%s\t%s\t\t\t%s\tok\n' "$@" >>"$raw"
}

# ---- datasets --------------------------------------------------------------------
mixed_rows=$((scale * 60000)) # about the size of pgbench's tables at the same scale
cat >"$work/mixed.pgbench" <<'SQL'
\set id random(1, :rows)
update docs set qty = qty + 1, score = random() * 100000, meta = jsonb_set(meta, '{ok}', to_jsonb(random() < 0.5)) where id = :id;
insert into docs_log(doc_id, at, delta) values (:id, now(), 1);
SQL
chmod 644 "$work/mixed.pgbench"

make_pristine() { # DATASET: a stopped cluster in $work/pristine
	local ds=$1
	as_pg "$pgbin/initdb" -D "$pgdata" -k -A trust -U postgres -N --locale=C -E UTF8 >"$work/initdb.log" 2>&1 ||
		{ cat "$work/initdb.log" >&2; die "initdb failed"; }
	as_pg mkdir -p "$sock"
	cat >>"$pgdata/postgresql.conf" <<CONF

# ---- bench/compare.sh ----
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '$archive_cmd %p %f'
synchronous_commit = off        # the change workloads only: every backup checkpoints
max_wal_size = 2GB
CONF
	set_mode discard
	pg_start
	case $ds in
	pgbench)
		as_pg "$pgbin/pgbench" -h "$sock" -p "$port" -U postgres -i -q -s "$scale" postgres >"$work/load.log" 2>&1 ||
			{ tail "$work/load.log" >&2; die "pgbench -i failed"; }
		;;
	mixed)
		psql_ >/dev/null <<SQL
create table docs(id bigint, created timestamptz, qty int, score float8, code text, body text, meta jsonb);
insert into docs
select g, timestamptz '2026-01-01' + g * interval '1 second', (random() * 1000)::int,
       round((random() * 100000)::numeric, 2), upper(substr(md5(g::text), 1, 10)),
       translate(md5(random()::text) || md5(random()::text), '0123456789', 'etaoin shr'),
       jsonb_build_object('user', 'u' || (random() * 100000)::int,
                          'tags', jsonb_build_array('t' || (random() * 50)::int, 't' || (random() * 50)::int),
                          'ok', random() < 0.5, 'ref', md5(random()::text))
from generate_series(1, $mixed_rows) g;
alter table docs add primary key (id);
create table docs_log(id bigserial primary key, doc_id bigint, at timestamptz, delta int);
vacuum analyze;
SQL
		;;
	esac
	psql_ -c checkpoint
	wait_archiver
	pg_stop fast
	rm -rf "$work/pristine"
	mv "$pgdata" "$work/pristine"
	ds_bytes[$ds]=$(du -sb "$work/pristine/base" | cut -f1)
	ds_zstd[$ds]=$(find "$work/pristine/base" -type f -print0 | xargs -0 cat | zstd -3 -T0 -c | wc -c)
}
change_workload() { # DATASET TX
	local ds=$1 t=$2
	case $ds in
	pgbench) as_pg "$pgbin/pgbench" -h "$sock" -p "$port" -U postgres -c 2 -t "$t" postgres ;;
	mixed) as_pg "$pgbin/pgbench" -h "$sock" -p "$port" -U postgres -n -c 2 -t "$t" \
		-f "$work/mixed.pgbench" -D rows="$mixed_rows" postgres ;;
	esac >"$work/change.log" 2>&1 || { tail "$work/change.log" >&2; die "change workload failed"; }
	psql_ -c checkpoint
}
lsn_bytes() { psql_ -c "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"; }

# ---- repositories ----------------------------------------------------------------
init_repos() {
	local t
	as_pg rm -rf "$work/repo" "$work/cache"
	as_pg mkdir -p "$work/repo" "$work/cache" "$work/repo/cp"
	for t in "${tools[@]}"; do
		case $t in
		cairn)
			as_pg env CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$work/cache/cairn" "$cairn" -q -r "$work/repo/cairn" init
			as_pg rm -f "$work/cairn.key"
			as_pg env CAIRN_PASSWORD=bench CAIRN_CACHE_DIR="$work/cache/cairn" \
				"$cairn" -q -r "$work/repo/cairn" key export-host-key "$work/cairn.key" >/dev/null
			;;
		pgbackrest-*)
			{
				echo "[global]"
				echo "repo1-path=$work/repo/$t"
				echo "repo1-retention-full=9999"
				echo "compress-type=zst"
				echo "process-max=2"
				echo "start-fast=y"
				echo "log-level-console=warn"
				echo "log-level-file=off"
				echo "lock-path=$work/lock-$t"
				case $t in
				pgbackrest-enc) echo "repo1-cipher-type=aes-256-cbc"; echo "repo1-cipher-pass=bench-pgbackrest-cipher" ;;
				pgbackrest-block) echo "beta=y"; echo "repo1-bundle=y"; echo "repo1-block=y" ;;
				esac
				echo "[bench]"
				echo "pg1-path=$pgdata"
				echo "pg1-socket-path=$sock"
				echo "pg1-port=$port"
			} >"$work/$t.conf"
			((EUID != 0)) || chown postgres: "$work/$t.conf"
			chmod 600 "$work/$t.conf"
			as_pg pgbackrest --config="$work/$t.conf" --stanza=bench stanza-create >"$work/cmd.log" 2>&1 ||
				{ cat "$work/cmd.log" >&2; die "pgbackrest stanza-create ($t) failed"; }
			;;
		restic) as_pg env RESTIC_PASSWORD=bench-restic RESTIC_CACHE_DIR="$work/cache/restic" \
			restic -r "$work/repo/restic" init --repository-version 2 >/dev/null ;;
		borg) as_pg env BORG_PASSPHRASE=bench-borg BORG_BASE_DIR="$work/cache/borg" \
			borg init -e repokey-blake2 "$work/repo/borg" >/dev/null 2>&1 ;;
		pg_basebackup) as_pg mkdir -p "$work/repo/pg_basebackup" ;;
		esac
	done
}

# ---- one run -----------------------------------------------------------------------
backup_phase() { # DATASET RUN N PHASE
	local ds=$1 run=$2 n=$3 phase=$4 t
	for t in "${order[@]}"; do
		wait_archiver
		set_mode "$(mode_for "$t")"
		measure "$ds" "$run" "$phase" "$t" "$work/repo/$t" h_backup "$t" "$n" || true
		wait_archiver
	done
	set_mode pool
}
fill_pool() { # DATASET: real WAL segments for the archive phases, up to $segments
	local ds=$1 table n
	table=$([[ $ds == pgbench ]] && echo pgbench_accounts || echo docs)
	set_mode pool
	psql_ -c "create table if not exists bench_walfill as select * from $table limit 0"
	while n=$(find "$work/pool" -name '[0-9A-F]*' ! -name '*.*' | wc -l); ((n < segments)); do
		# Inserts of the dataset's own rows: heap and index WAL, full segments.
		psql_ -c "insert into bench_walfill select * from $table limit 100000"
		wait_archiver
	done
	find "$work/pool" -name '[0-9A-F]*' ! -name '*.*' -printf '%f\n' | sort | head -n "$segments" >"$work/segs.list"
	chmod 644 "$work/segs.list"
}
one_run() { # DATASET RUN
	local ds=$1 run=$2 t i w0 w1 l0 l1 dir ok s
	say "$ds: run $run of $runs"
	as_pg rm -rf "$pgdata" "$work/pool"
	as_pg mkdir -p "$work/pool"
	as_pg cp -a "$work/pristine" "$pgdata"
	set_mode discard
	pg_start
	init_repos
	# Tools in turn, the order rotated from run to run.
	order=()
	for ((i = 0; i < ${#tools[@]}; i++)); do order+=("${tools[(i + run - 1) % ${#tools[@]}]}"); done

	backup_phase "$ds" "$run" 1 full
	l0=$(lsn_bytes) w0=$(date +%s.%N)
	change_workload "$ds" "$tx"
	w1=$(date +%s.%N) l1=$(lsn_bytes)
	record "$ds" "$run" change "pgbench -c 2 -t $tx$([[ $ds == mixed ]] && echo " -f mixed.pgbench")" "$(echo "$w1 - $w0" | bc)" "$((l1 - l0))"
	backup_phase "$ds" "$run" 2 second
	l0=$(lsn_bytes) w0=$(date +%s.%N)
	change_workload "$ds" "$tx_small"
	w1=$(date +%s.%N) l1=$(lsn_bytes)
	record "$ds" "$run" tiny "pgbench -c 2 -t $tx_small$([[ $ds == mixed ]] && echo " -f mixed.pgbench")" "$(echo "$w1 - $w0" | bc)" "$((l1 - l0))"
	backup_phase "$ds" "$run" 3 third

	for t in "${order[@]}"; do
		dir=$work/restore/$t
		as_pg rm -rf "$dir"
		as_pg mkdir -m 700 "$dir"
		if measure "$ds" "$run" restore "$t" "$dir" h_restore "$t" "$dir"; then
			# Something like a data folder came back (restic and borg nest it under its path).
			if [[ -z $(find "$dir" -name PG_VERSION -path '*/PG_VERSION' -print -quit) ||
				-z $(find "$dir" -path '*/global/pg_control' -print -quit) ]]; then
				say "FAILED: $t restore: no data folder in $dir"
				sed -i '$ s/\tok$/\tfailed/' "$raw"
			fi
		fi
		as_pg rm -rf "$dir"
	done

	fill_pool "$ds"
	set_mode discard
	wait_archiver
	for t in "${order[@]}" cp; do
		case $t in cairn | pgbackrest-plain | pgbackrest-enc | restic | borg | cp) ;; *) continue ;; esac
		measure "$ds" "$run" archive-push "$t" "$work/repo/$t" h_push "$t" || continue
		as_pg find "$work/got" -mindepth 1 -delete
		measure "$ds" "$run" archive-get "$t" "$work/got" h_get "$t" || continue
		ok=1
		while read -r s; do cmp -s "$work/pool/$s" "$work/got/$s" || ok=0; done <"$work/segs.list"
		if ((!ok)); then
			say "FAILED: $t archive-get gave back different bytes"
			sed -i '$ s/\tok$/\tfailed/' "$raw"
		fi
		# archive-get "bytes": what was fetched, not a repository's growth
		as_pg find "$work/got" -mindepth 1 -delete
	done
	for t in cairn restic borg; do
		[[ -d $work/cache/$t ]] && record "$ds" "$run" cache "$t" "" "$(du -sb "$work/cache/$t" | cut -f1)"
	done
	pg_stop fast
}

# ---- the bench -----------------------------------------------------------------------
declare -A ds_bytes=() ds_zstd=()
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for ds in "${datasets[@]}"; do
	say "dataset $ds: building (scale $scale)"
	make_pristine "$ds"
	say "dataset $ds: $((ds_bytes[$ds] / 1000000)) MB in base/, zstd -3 ratio $(echo "scale=1; ${ds_bytes[$ds]} / ${ds_zstd[$ds]}" | bc)"
	for ((run = 1; run <= runs; run++)); do
		one_run "$ds" "$run"
	done
	as_pg rm -rf "$work/pristine" "$pgdata" "$work/repo"
done
elapsed=$(($(date +%s) - t_start))

# ---- report ---------------------------------------------------------------------------
ver() { "$@" 2>/dev/null | head -n 1 || echo "not installed"; }
report() {
	local ds cpu mem
	cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
	mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
	echo "## bench/compare.sh --scale $scale --runs $runs --tools $(IFS=,; echo "${tools[*]}") ($started)"
	echo
	echo "Machine: $(nproc) cores (${cpu:-unknown CPU}), $mem, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r);"
	echo "load average at the start: $load_start; the whole bench took $((elapsed / 60)) min $((elapsed % 60)) s."
	echo
	echo "Versions: cairn $cairn_version;"
	for t in "${tools[@]}"; do
		case $t in
		pgbackrest-plain) echo "$(ver pgbackrest version);" ;;
		restic) echo "$(ver restic version);" ;;
		borg) echo "$(ver borg --version);" ;;
		pg_basebackup) echo "$(ver "$pgbin/pg_basebackup" --version);" ;;
		esac
	done
	echo "$(ver "$pgbin/postgres" --version); zstd $(zstd --version | grep -o 'v[0-9.]*' | head -n 1)."
	echo
	echo "Datasets (each its own cluster, initdb -k, so page checksums are on):"
	for ds in "${datasets[@]}"; do
		case $ds in
		pgbench) printf -- '- **pgbench**: `pgbench -i -s %s`' "$scale" ;;
		mixed) printf -- '- **mixed**: %s rows of random-ish text, numbers and jsonb made by SQL (md5/random); its change workload (mixed.pgbench) updates one random row and inserts a log row per transaction' "$mixed_rows" ;;
		esac
		printf '; %.2f GB in base/, compresses %.1fx with zstd -3.\n' "$(echo "${ds_bytes[$ds]} / 1000000000" | bc -l)" \
			"$(echo "${ds_bytes[$ds]} / ${ds_zstd[$ds]}" | bc -l)"
	done
	echo
	cat <<'TXT'
Every tool works on the same cluster state, in turn (the order rotates from
run to run), with a warm page cache: full backup; change workload (pgbench
-c 2 -t T, then CHECKPOINT); second backup; tiny change (T/10) and third
backup; restore of the third backup into an empty folder; archive-push of real
WAL segments, one process per segment; archive-get of each (compared with the
original afterwards). wall = elapsed seconds; CPU = user+sys seconds of the
whole process tree; RSS = peak resident memory of the largest single process
of the tree; bytes = what the repository grew by (du -sb before/after; for a
restore, the size of what was restored). Medians over the runs; `cairn/x` is
cairn's median divided by the peer's (below 1: cairn is faster / smaller).

- cairn: `cairn backup --pgdata` with a host key file (no passphrase KDF);
  during cairn's backups the archive_command is `cairn archive-push`.
  cairn always encrypts: pgbackrest-enc is its like-for-like peer.
- pgbackrest-plain/-enc/-block: compress-type=zst, process-max=2,
  start-fast=y, file logging off; -enc adds repo1-cipher-type=aes-256-cbc;
  -block adds `beta=y repo1-bundle=y repo1-block=y` (block incremental,
  from the full backup on). Backups are full, then incr; during a variant's
  backups the archive_command is its `pgbackrest archive-push`.
- restic (repository v2, default compression) and borg (`-e repokey-blake2`,
  `--compression zstd,3`) back up the running cluster's data folder
  (pg_wal's contents excluded) between `pg_backup_start(fast)` and
  `pg_backup_stop` on one psql session, both inside the measured time (the
  backup_label pg_backup_stop returns is not stored). They do not use the
  WAL archive, so during their backups it discards.
- pg_basebackup: `-Ft --compress=client-zstd -c fast -X stream` into a new
  folder each time (its "repository" bytes = the output size; it has no
  incremental, so its second and third backups are full; PostgreSQL 15
  writes the streamed WAL as an uncompressed pg_wal.tar, 16 MiB or more
  per backup); restore = `tar -x` of both files.
- archive-push/-get: cairn with its host key file, pgbackrest with its
  stanza (pgbackrest-block is left out: the same code as pgbackrest-plain);
  for restic and borg, a `restic backup` / `borg create` of the single
  segment file per call (one snapshot / archive per segment), and `restic
  dump` / `borg extract --stdout` to get it back, are their equivalent;
  `cp` (+ fsync) is the floor. Wall time is for all segments; seg/s =
  segments per second. The segments were written by the change workloads
  (topped up by inserts of the dataset's rows when fewer than needed).
TXT
	for n in ${notes[@]+"${notes[@]}"}; do echo "- $n"; done
	echo
	awk -F'\t' -v tools="$(IFS=,; echo "${tools[*]},cp")" -v dsl="$(IFS=,; echo "${datasets[*]}")" \
		-v segs="$segments" '
	function median(list,   a, n, i, j, t) {
		n = split(list, a, ",")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function human(b) {
		if (b == "") return "–"
		if (b < 0) return "-" human(-b)
		if (b >= 1e9) return sprintf("%.2f GB", b / 1e9)
		if (b >= 1e6) return sprintf("%.1f MB", b / 1e6)
		if (b >= 1e3) return sprintf("%.0f kB", b / 1e3)
		return sprintf("%d B", b)
	}
	function ratio(a, b) {
		if (a == "" || b == "" || b + 0 == 0) return "–"
		return sprintf("%.2f", a / b)
	}
	{
		k = $1 SUBSEP $3 SUBSEP $4
		if ($9 != "ok") { failed[k]++; seen[k] = 1; next }
		seen[k] = 1
		W[k] = W[k] (W[k] == "" ? "" : ",") $5
		C[k] = C[k] (C[k] == "" ? "" : ",") $6
		R[k] = R[k] (R[k] == "" ? "" : ",") $7
		B[k] = B[k] (B[k] == "" ? "" : ",") $8
		runs[k]++
	}
	END {
		nt = split(tools, T, ","); nd = split(dsl, D, ",")
		np = split("full,second,third,restore,archive-push,archive-get", P, ",")
		title["full"] = "full backup"
		title["second"] = "second backup, after the change workload"
		title["third"] = "third backup, after the tiny change"
		title["restore"] = "restore of the third backup to an empty folder"
		title["archive-push"] = "archive-push of " segs " WAL segments, one process each"
		title["archive-get"] = "archive-get of the same " segs " segments, one process each"
		for (d = 1; d <= nd; d++) {
			ds = D[d]
			printf "### %s\n\n", ds
			for (x in seen) { split(x, kk, SUBSEP); if (kk[1] == ds && kk[2] == "change") chg = kk[3]; if (kk[1] == ds && kk[2] == "tiny") tiny = kk[3] }
			kc = ds SUBSEP "change" SUBSEP chg; kt = ds SUBSEP "tiny" SUBSEP tiny
			if (kc in runs) printf "Change workload `%s`: %.1f s, %s of WAL; tiny change `%s`: %.1f s, %s of WAL (medians).\n\n", chg, median(W[kc]), human(median(B[kc])), tiny, median(W[kt]), human(median(B[kt]))
			for (p = 1; p <= np; p++) {
				ph = P[p]; any = 0
				for (t = 1; t <= nt; t++) if ((ds SUBSEP ph SUBSEP T[t]) in seen) any = 1
				if (!any) continue
				arch = (ph ~ /^archive/)
				printf "**%s — %s**\n\n", ds, title[ph]
				printf "| tool | wall s | CPU s | peak RSS MiB | %s |%s cairn/x wall | cairn/x CPU | cairn/x RSS | cairn/x bytes |\n", (ph == "restore" ? "restored" : (ph == "archive-get" ? "fetched" : "bytes added")), (arch ? " seg/s |" : "")
				printf "| --- | ---: | ---: | ---: | ---: |%s ---: | ---: | ---: | ---: |\n", (arch ? " ---: |" : "")
				kc = ds SUBSEP ph SUBSEP "cairn"
				cw = cc = cr = cb = ""
				if (kc in runs) { cw = median(W[kc]); cc = median(C[kc]); cr = median(R[kc]); cb = median(B[kc]) }
				for (t = 1; t <= nt; t++) {
					k = ds SUBSEP ph SUBSEP T[t]
					if (!(k in seen)) continue
					if (!(k in runs)) { printf "| %s | failed | | | |%s | | | |\n", T[t], (arch ? " |" : ""); continue }
					w = median(W[k]); c = median(C[k]); r = median(R[k]); b = median(B[k])
					note = (k in failed) ? " (" failed[k] " run(s) failed)" : ""
					bcell = (ph == "archive-get") ? human(segs * 16777216) : human(b)
					printf "| %s%s | %.2f | %.2f | %.1f | %s |", T[t], note, w, c, r / 1024, bcell
					if (arch) printf " %.1f |", segs / w
					printf " %s | %s | %s | %s |\n", ratio(cw, w), ratio(cc, c), ratio(cr, r), (ph == "archive-get" || ph == "restore") ? "–" : ratio(cb, b)
				}
				printf "\n"
			}
			kc = ds SUBSEP "cache"
			line = ""
			for (t = 1; t <= nt; t++) { k = ds SUBSEP "cache" SUBSEP T[t]; if (k in runs) line = line (line == "" ? "" : ", ") T[t] " " human(median(B[k])) }
			if (line != "") printf "Local caches at the end (not counted above): %s.\n\n", line
			# The summary: cairn/x per phase.
			if (!((ds SUBSEP "full" SUBSEP "cairn") in runs)) continue
			printf "**%s — summary: cairn/x, wall time (bytes added)**\n\n| peer |", ds
			for (p = 1; p <= np; p++) printf " %s |", P[p]
			printf "\n| --- |"
			for (p = 1; p <= np; p++) printf " ---: |"
			printf "\n"
			for (t = 1; t <= nt; t++) {
				if (T[t] == "cairn") continue
				row = ""; any = 0
				for (p = 1; p <= np; p++) {
					k = ds SUBSEP P[p] SUBSEP T[t]; kc = ds SUBSEP P[p] SUBSEP "cairn"
					if ((k in runs) && (kc in runs)) {
						any = 1
						cell = ratio(median(W[kc]), median(W[k]))
						if (P[p] !~ /restore|archive-get/) cell = cell " (" ratio(median(B[kc]), median(B[k])) ")"
					} else cell = "–"
					row = row " " cell " |"
				}
				if (any) printf "| %s |%s\n", T[t], row
			}
			printf "\n"
		}
	}' "$raw"
}
report >"$work/report.md"
cat "$work/report.md"
if [[ -n $out ]]; then
	cp "$work/report.md" "$out"
	cp "$raw" "$out.tsv"
	say "report written to $out (raw measurements: $out.tsv)"
fi
