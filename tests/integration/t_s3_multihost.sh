#!/usr/bin/env bash
# t_s3_multihost.sh — one S3 repository (Ceph radosgw from the CTest
# fixture "s3") shared by three writers at the same time:
#   pga, pgc  two PostgreSQL 15 clusters (two initdb runs: two system
#             identifiers), each with archive_command = cairn archive-push
#             into the repository, each loaded and backed up twice while
#             the others work;
#   files     a third writer backing up a changing folder three times.
# Each writer is a test host of its own (tests/s3/hosts.sh): a network
# namespace with its own address that reaches radosgw through a relay, a
# host name of its own, its own --cache-dir and --host.  Where namespaces
# cannot be made (not root, CAIRN_TEST_NO_NETNS=1) the writers are separate
# processes on 127.0.0.1 with separate caches, and the test says so.
#
# It asserts: the writers overlapped in time and all succeeded; the relay
# saw every host's own address; no lock is left; every snapshot names its
# host; then every snapshot restores — the first backup of each cluster
# recovered to its consistent point (--immediate) has exactly the rows it
# had when the backup started, the second (newest) recovered to the end of
# the archive has every row, both start and take writes; each plain
# snapshot is byte-identical to the folder it was taken of — and
# check --read-data passes.  The restores run outside the test hosts.
T_NAME=t_s3_multihost
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"
source "$(dirname "$0")/../s3/hosts.sh"
source "$(dirname "$0")/pglib.sh"
pg_require
T_START=$(now_s)

W=$SCRATCH/w
pg_mkdir "$W" "$W/cache-pga" "$W/cache-pgc" "$W/cache-root" "$W/restore"
mkdir -p "$W/cache-files" "$W/cache-rootfiles"
repo=$CAIRN_REPOSITORY
ep=$CAIRN_S3_ENDPOINT
# Only the configuration files say where the repository and its caches are.
unset CAIRN_REPOSITORY CAIRN_CACHE_DIR CAIRN_PASSWORD CAIRN_S3_ENDPOINT

hosts_up pga pgc files
if ((HOSTS_NETNS)); then
	ok "three test hosts in network namespaces ($(host_addr pga), $(host_addr pgc), $(host_addr files)) reach the S3 server at $HOSTS_ENDPOINT"
fi

# conf NAME ENDPOINT CACHE: a configuration file for one host.
conf() { s3_write_conf "$W/$1.conf" "$repo" "$W/host.key" "$2" "$3"; }
conf pga "$HOSTS_ENDPOINT" "$W/cache-pga"
conf pgc "$HOSTS_ENDPOINT" "$W/cache-pgc"
conf files "$HOSTS_ENDPOINT" "$W/cache-files"
conf root "$ep" "$W/cache-root"
asp() { pg_run_as_postgres "$@"; }
rc_() { asp "$CAIRN_BIN" --config "$W/root.conf" "$@"; }

expect_rc 0 asp env CAIRN_PASSWORD=mh-pass "$CAIRN_BIN" -r "$repo" --cache-dir "$W/cache-root" \
	--s3-endpoint "$ep" init
expect_rc 0 asp env CAIRN_PASSWORD=mh-pass "$CAIRN_BIN" -r "$repo" --cache-dir "$W/cache-root" \
	--s3-endpoint "$ep" key export-host-key "$W/host.key"
ok "repository on S3 and a host key"

# ---- two clusters, each on its own host -----------------------------------
for h in pga pgc; do
	pg_init "$h"
	pg_conf "$h" "archive_mode = on" \
		"archive_command = '$CAIRN_BIN --config $W/$h.conf archive-push %p'" \
		"archive_timeout = 0"
	PATH="$(host_runuser_dir "$h"):$PATH" pg_start "$h"
	pg_psql "$h" -c "create table big as select g, md5(g::text) h from generate_series(1, 150000) g"
	pg_psql "$h" -c "create table t(id serial primary key, host text, round int)"
	pg_psql "$h" -c "vacuum freeze" -c "checkpoint"
done
sysa=$(pg_psql pga -c "select system_identifier from pg_control_system()")
sysc=$(pg_psql pgc -c "select system_identifier from pg_control_system()")
[[ -n $sysa && $sysa != "$sysc" ]] || fail "the clusters should have two system identifiers: $sysa, $sysc"
ok "clusters pga ($sysa) and pgc ($sysc) run on their hosts, archiving to S3"

SRC=$W/files-src
make_tree "$SRC" 12 7

# ---- all three writers at once -------------------------------------------
# Each job writes "BEGIN END" of every backup to $W/HOST.times, and its
# outcome to $W/HOST.status; it never calls fail (a subshell).
pg_job() {
	local h=$1 r k
	set +e
	for r in 1 2; do
		for k in 1 2 3; do
			pg_psql "$h" -c "insert into t(host, round) select '$h', $r from generate_series(1, 200)" \
				-c "select pg_switch_wal()" >/dev/null || {
				echo "insert failed" >"$W/$h.status"
				return 1
			}
		done
		pg_psql "$h" -c "select count(*) from t" >"$W/$h.count$r"
		local t0
		t0=$(now_s)
		on_host "$h" runuser -u postgres -- "$CAIRN_BIN" --config "$W/$h.conf" backup \
			--pgdata "$(pg_datadir "$h")" --pg-conn "$(pg_connstr "$h")" --host "$h" --json \
			>"$W/$h.backup$r.json" 2>"$W/$h.backup$r.err" || {
			echo "backup $r failed: $(tail -n 5 "$W/$h.backup$r.err")" >"$W/$h.status"
			return 1
		}
		echo "$t0 $(now_s)" >>"$W/$h.times"
	done
	pg_psql "$h" -c "insert into t(host, round) values ('$h', 99)" -c "select pg_switch_wal()" >/dev/null
	pg_psql "$h" -c "select count(*) from t" >"$W/$h.count-end"
	echo ok >"$W/$h.status"
}
files_job() {
	local r t0
	set +e
	for r in 1 2 3; do
		text_bytes $((300 * 1024)) "$((40 + r))" >"$SRC/text/round-$r.txt"
		rand_bytes $((1024 * 1024)) "mh-$r" >"$SRC/medium/round-$r.bin"
		[[ $r == 3 ]] && rm -f "$SRC/large/big-3.bin"
		tree_digest "$SRC" >"$W/files.digest$r"
		t0=$(now_s)
		on_host files "$CAIRN_BIN" --config "$W/files.conf" backup "$SRC" --host files --json \
			>"$W/files.backup$r.json" 2>"$W/files.backup$r.err" || {
			echo "backup $r failed: $(tail -n 5 "$W/files.backup$r.err")" >"$W/files.status"
			return 1
		}
		echo "$t0 $(now_s)" >>"$W/files.times"
	done
	echo ok >"$W/files.status"
}

T0=$(now_s)
pg_job pga &
ja=$!
pg_job pgc &
jc=$!
files_job &
jf=$!
# While they run: which hosts hold a lease at the same moment.
maxhosts=0
seen=""
while kill -0 $ja 2>/dev/null || kill -0 $jc 2>/dev/null || kill -0 $jf 2>/dev/null; do
	hs=$("$CAIRN_BIN" --config "$W/root.conf" --cache-dir "$W/cache-rootfiles" locks --json 2>/dev/null |
		python3 -c 'import json,sys; print(" ".join(sorted({l.get("host","?") for l in json.load(sys.stdin)})))' 2>/dev/null) || hs=""
	n=$(wc -w <<<"$hs")
	((n > maxhosts)) && maxhosts=$n && seen=$hs
	sleep 0.3
done
wait $ja $jc $jf || true
echo "# the three writers took $(elapsed "$T0" "$(now_s)") s"
for h in pga pgc files; do
	[[ $(cat "$W/$h.status" 2>/dev/null) == ok ]] || fail "writer $h: $(cat "$W/$h.status" 2>/dev/null || echo 'no status')"
done
ok "all writers succeeded: 2 base backups from each cluster, 3 file backups"
echo "# at most $maxhosts hosts held leases at the same moment ($seen)"

# Did they overlap?  Some backup of one host ran while one of another did.
overlap=$(cat "$W"/pga.times "$W"/pgc.times "$W"/files.times | wc -l)
python3 - "$W" <<'EOP' || fail "no two backups of different hosts ran at the same time"
import sys
w = sys.argv[1]
iv = []
for h in ("pga", "pgc", "files"):
    for line in open("%s/%s.times" % (w, h)):
        a, b = map(float, line.split())
        iv.append((h, a, b))
pairs = [(x, y) for i, x in enumerate(iv) for y in iv[i + 1:]
         if x[0] != y[0] and x[1] < y[2] and y[1] < x[2]]
print("# %d pairs of backups of different hosts overlapped" % len(pairs))
sys.exit(0 if pairs else 1)
EOP
ok "backups of different hosts ran at the same time ($overlap backups)"

# WAL: every segment up to the last switch reaches S3.
# (On a slow server the archiver may be a dozen segments behind: wait as
# long as it makes progress, and at most 30 s without any.)
for h in pga pgc; do
	archived=0
	last=-1
	still=0
	while ((still < 150)); do
		if [[ $(pg_psql "$h" -c "select last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver") == t ]]; then
			archived=1
			break
		fi
		n=$(pg_psql "$h" -c "select archived_count from pg_stat_archiver")
		if [[ $n == "$last" ]]; then still=$((still + 1)); else still=0; last=$n; fi
		sleep 0.2
	done
	((archived)) || fail "$h: the archiver made no progress for 30 s ($(pg_psql "$h" -c "select archived_count, failed_count, last_failed_wal from pg_stat_archiver"))"
	echo "# $h: $(pg_psql "$h" -c "select archived_count || ' segments archived, ' || failed_count || ' failed attempts' from pg_stat_archiver")"
done
ok "both clusters archived all their WAL to S3"

if ((HOSTS_NETNS)); then
	hosts_peers | sed 's/^/# relay: connections from /'
	for h in pga pgc files; do
		hosts_peers | grep -qw "$(host_addr "$h")" || fail "radosgw was never reached from $h's address $(host_addr "$h")"
	done
	ok "radosgw was reached from each host's own address"
fi

# ---- what the repository says --------------------------------------------
expect_rc 0 rc_ --cache-dir "$W/cache-root" locks --json
[[ $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LAST_OUT") == 0 ]] ||
	fail "locks left behind: $(cat "$LAST_OUT")"
ok "every writer released its lease"

expect_rc 0 rc_ snapshots --json
cp "$LAST_OUT" "$W/snapshots.json"
python3 - "$W/snapshots.json" <<'EOP' || fail "snapshots: $(cat "$W/snapshots.json")"
import json, sys
s = json.load(open(sys.argv[1]))
by = {}
for x in s:
    by.setdefault(x["host"], []).append(x)
assert sorted((h, len(v)) for h, v in by.items()) == [("files", 3), ("pga", 2), ("pgc", 2)], \
    sorted((h, len(v)) for h, v in by.items())
EOP
ok "7 snapshots: 2 from host pga, 2 from pgc, 3 from files"
expect_rc 0 rc_ info --json
python3 - "$LAST_OUT" "$sysa" "$sysc" <<'EOP' || fail "info: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
names = sorted(c["cluster"] for c in v)
assert names == sorted(sys.argv[2:4]), names
EOP
ok "info lists the two clusters by system identifier"

# ---- every snapshot restores ---------------------------------------------
snap_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' "$1"; }
recover() { # name, restore args...
	local name=$1
	shift
	s3_pg_recover "$name" "$W/restore/$name" rc_ "$@"
}
T0=$(now_s)
for h in pga pgc; do
	s1=$(snap_of "$W/$h.backup1.json")
	s2=$(snap_of "$W/$h.backup2.json")
	recover "$h-1" "$s1" --immediate
	got=$(pg_psql "$h-1" -c "select count(*) from t")
	[[ $got == "$(cat "$W/$h.count1")" ]] || fail "$h backup 1: $got rows, want $(cat "$W/$h.count1")"
	[[ $(pg_psql "$h-1" -c "select count(*) from big") == 150000 ]] || fail "$h backup 1: table big incomplete"
	pg_psql "$h-1" -c "insert into t(host, round) values ('restored', 0)"
	pg_stop "$h-1"
	ok "$h: backup 1 (${s1:0:8}) restores and recovers to its consistent point: $got rows, writable"

	recover "$h-2" --cluster "$([[ $h == pga ]] && echo "$sysa" || echo "$sysc")"
	grep -q "${s2:0:8}" "$LAST_OUT" || fail "$h: the restore to the end did not start from backup 2 ${s2:0:8}: $(cat "$LAST_OUT")"
	got=$(pg_psql "$h-2" -c "select count(*) from t")
	[[ $got == "$(cat "$W/$h.count-end")" ]] || fail "$h to the end: $got rows, want $(cat "$W/$h.count-end")"
	[[ $(pg_psql "$h-2" -c "select count(*) from t where round = 99") == 1 ]] || fail "$h: the last row is missing"
	[[ $(pg_psql "$h-2" -c "select count(distinct host) from t") == 1 ]] || fail "$h: rows of another cluster"
	pg_psql "$h-2" -c "insert into t(host, round) values ('restored', 0)"
	pg_stop "$h-2"
	ok "$h: backup 2 (${s2:0:8}) plus the archived WAL recovers every row ($got), writable"
done
echo "# PostgreSQL restores: $(elapsed "$T0" "$(now_s)") s"

for r in 1 2 3; do
	s=$(snap_of "$W/files.backup$r.json")
	expect_rc 0 "$CAIRN_BIN" --config "$W/root.conf" --cache-dir "$W/cache-rootfiles" \
		restore "$s" --target "$W/files-r$r"
	[[ $(tree_digest "$W/files-r$r$SRC") == "$(cat "$W/files.digest$r")" ]] ||
		fail "files backup $r (${s:0:8}) restores different bytes"
done
ok "the 3 file snapshots restore byte-identical to the folder at each backup"

T0=$(now_s)
expect_rc 0 rc_ check --read-data
expect_stdout_grep 'no errors'
echo "# check --read-data: $(elapsed "$T0" "$(now_s)") s"
ok "check --read-data of the shared repository passes"

echo "# t_s3_multihost: $(elapsed "$T_START" "$(now_s)") s in all"
finish
