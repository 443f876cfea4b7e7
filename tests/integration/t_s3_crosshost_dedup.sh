#!/usr/bin/env bash
# t_s3_crosshost_dedup.sh — dedup across hosts, measured, with the
# repository on S3 (Ceph radosgw from the CTest fixture "s3").
#
# Host a runs a PostgreSQL 15 cluster that archives to the repository and
# takes its first base backup.  Host b restores that backup (a copy, as a
# staging or reporting clone is made), starts it with its own
# archive_command, and takes the copy's first base backup under another
# --cluster name and --host, with a cache of its own that has never seen
# host a's data.  Relation files are cut at fixed 16 KiB offsets, so the
# pages the copy shares with the original are found in the repository's
# index and not stored again: the copy's first backup must store less than
# 10% of what the original's first backup stored (asserted; the ratio is
# printed, by cairn's own count and by the bytes added on S3).  Both
# backups restore, and check --read-data passes.
#
# The copy keeps the original's system identifier (PostgreSQL has no tool
# to give a copy a new one), so it is told apart by --cluster, as a user
# would do it.  The hosts are network namespaces with their own addresses
# (tests/s3/hosts.sh), or separate processes where those cannot be made.
T_NAME=t_s3_crosshost_dedup
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"
source "$(dirname "$0")/../s3/hosts.sh"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/cache-a" "$W/cache-b" "$W/cache-root" "$W/restore"
repo=$CAIRN_REPOSITORY
ep=$CAIRN_S3_ENDPOINT
PFX=$(s3_repo_prefix "$repo")
unset CAIRN_REPOSITORY CAIRN_CACHE_DIR CAIRN_PASSWORD CAIRN_S3_ENDPOINT

hosts_up a b
conf() { s3_write_conf "$W/$1.conf" "$repo" "$W/host.key" "$2" "$3"; }
conf a "$HOSTS_ENDPOINT" "$W/cache-a"
conf b "$HOSTS_ENDPOINT" "$W/cache-b"
conf root "$ep" "$W/cache-root"
asp() { pg_run_as_postgres "$@"; }
on_() { # HOST CAIRN ARGS...: cairn as postgres on HOST with HOST's config
	local h=$1
	shift
	on_host "$h" runuser -u postgres -- "$CAIRN_BIN" --config "$W/$h.conf" "$@"
}
s3_bytes() { s3_keys "$PFX/" | awk '{ s += $2 } END { print s + 0 }'; }

expect_rc 0 asp env CAIRN_PASSWORD=dd-pass "$CAIRN_BIN" -r "$repo" --cache-dir "$W/cache-root" \
	--s3-endpoint "$ep" init
expect_rc 0 asp env CAIRN_PASSWORD=dd-pass "$CAIRN_BIN" -r "$repo" --cache-dir "$W/cache-root" \
	--s3-endpoint "$ep" key export-host-key "$W/host.key"

# ---- host a: the original and its first backup ----------------------------
pg_init orig
pg_conf orig "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $W/a.conf archive-push %p'" "archive_timeout = 0"
PATH="$(host_runuser_dir a):$PATH" pg_start orig
pg_psql orig -c "create table big as select g, md5(g::text) h, repeat(md5((g * 7)::text), 3) pad from generate_series(1, 200000) g"
pg_psql orig -c "create index on big (h)"
pg_psql orig -c "create table t(id int primary key, note text)" \
	-c "insert into t select g, 'original' from generate_series(1, 1000) g"
pg_psql orig -c "vacuum freeze" -c "checkpoint"
size=$(pg_psql orig -c "select pg_database_size('postgres')")

s3a0=$(s3_bytes)
expect_rc 0 on_ a backup --pgdata "$(pg_datadir orig)" --pg-conn "$(pg_connstr orig)" --host a --json
cp "$LAST_OUT" "$W/a.json"
s3a1=$(s3_bytes)
read -r snapa storeda totala < <(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["snapshot"], v["bytes_stored"], v["bytes_total"])' "$W/a.json")
((storeda > 1000000)) || fail "the original's first backup stored only $storeda bytes"
ok "host a: first backup of the original (${snapa:0:8}): $totala bytes read, $storeda stored (database $size bytes)"

# ---- host b: a copy made from that backup ---------------------------------
expect_rc 0 on_ b restore "$snapa" --target "$W/restore/copy" --immediate
pg_attach copy "$W/restore/copy"
pg_conf copy "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $W/b.conf archive-push --cluster copy %p'"
PATH="$(host_runuser_dir b):$PATH" pg_start copy
pg_wait_promoted copy 90 || fail "the copy is still in recovery after 90 s"
pg_psql copy -c "update t set note = 'copy' where id <= 10"
ok "host b: the copy is restored from ${snapa:0:8}, promoted, archiving as cluster 'copy'"

s3b0=$(s3_bytes)
expect_rc 0 on_ b backup --pgdata "$(pg_datadir copy)" --pg-conn "$(pg_connstr copy)" \
	--cluster copy --host b --json
cp "$LAST_OUT" "$W/b.json"
s3b1=$(s3_bytes)
read -r snapb storedb totalb parentb < <(python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["snapshot"], v["bytes_stored"], v["bytes_total"], v["parent"])' "$W/b.json")
[[ $parentb == None ]] || fail "the copy's backup has a parent ($parentb): it should be its first"
pct=$(awk -v a="$storeda" -v b="$storedb" 'BEGIN { printf "%.2f", 100 * b / a }')
s3pct=$(awk -v a="$((s3a1 - s3a0))" -v b="$((s3b1 - s3b0))" 'BEGIN { printf "%.2f", 100 * b / a }')
echo "# cross-host dedup: the copy's first backup read $totalb bytes and stored $storedb; the original's stored $storeda: ratio $pct%"
echo "# on S3 (objects added, WAL archived meanwhile included): original +$((s3a1 - s3a0)) bytes, copy +$((s3b1 - s3b0)) bytes: ratio $s3pct%"
((storedb * 10 < storeda)) || fail "the copy's first backup stored $storedb bytes, $pct% of the original's $storeda (want < 10%)"
ok "host b: the copy's first backup (${snapb:0:8}, cluster copy) stores $pct% of the original's first backup (< 10%)"

# ---- both restore, check passes -------------------------------------------
rc_() { asp "$CAIRN_BIN" --config "$W/root.conf" "$@"; }
expect_rc 0 rc_ info --json
python3 - "$LAST_OUT" <<'EOP' || fail "info: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert len(v) == 2 and "copy" in [c["cluster"] for c in v], v
EOP
s3_pg_recover copy2 "$W/restore/copy2" rc_ "$snapb" --immediate
[[ $(pg_psql copy2 -c "select count(*) from t where note = 'copy'") == 10 ]] || fail "the copy's backup lacks its own change"
[[ $(pg_psql copy2 -c "select count(*) from big") == 200000 ]] || fail "the copy's backup lacks rows of big"
pg_stop copy2
ok "the copy's backup restores (its own change and the shared table are there)"

expect_rc 0 rc_ check --read-data
expect_stdout_grep 'no errors'
ok "check --read-data passes"
finish
