#!/usr/bin/env bash
# Remote base backups: `backup --remote --pg-conn` takes the backup over the
# replication protocol alone (no --pgdata: cairn reads no file of the
# cluster), with a tablespace.  The snapshot must have the shape of a local
# backup (compared entry by entry with one), restore with a tablespace map
# to a new folder, start, and give the same pg_dumpall as the source.  The
# server's checksum reports are counted and make the backup exit 1 with
# its snapshot written.  Errors: no connection, a role without
# REPLICATION.  Everything cairn does runs as the postgres user.
T_NAME=t_pg_remote
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache" "$W/restore" "$W/ts" "$W/ts-new"
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
json_field() { # FILE KEY
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

expect_rc 0 asp env CAIRN_PASSWORD=remote-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=remote-pass "$CAIRN_BIN" -r "$W/repo" \
	--cache-dir "$W/pgcache" key export-host-key "$W/host.key"
ok "repository and host key, as postgres"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
psql_src() { pg_psql src "$@"; }
psql_src -c "create table t(id int primary key, note text)"
psql_src -c "insert into t select g, 'row ' || g from generate_series(1,5000) g"
psql_src -c "create table big as select g, md5(g::text) h from generate_series(1,100000) g"
psql_src -c "create tablespace ts location '$W/ts'"
psql_src -c "create table tst(id int, v text) tablespace ts"
psql_src -c "insert into tst select g, repeat('x', 100) from generate_series(1,20000) g"
psql_src -c "create index tst_id on tst(id) tablespace ts"
psql_src -c "vacuum analyze"
psql_src -c "checkpoint"
ts_oid=$(psql_src -c "select oid from pg_tablespace where spcname = 'ts'")
sysid=$(psql_src -c "select system_identifier from pg_control_system()")
ok "source cluster with tablespace ts (oid $ts_oid) in $W/ts"

# ---- the remote backup -------------------------------------------------------
expect_rc 0 cp_ backup --remote --pg-conn "$(pg_connstr src)" --json --tag remote
is_json "$LAST_OUT" || fail "backup --remote --json is not JSON: $(cat "$LAST_OUT")"
snap=$(json_field "$LAST_OUT" snapshot)
[[ $(json_field "$LAST_OUT" cluster) == "$sysid" ]] ||
	fail "cluster is $(json_field "$LAST_OUT" cluster), want the system identifier $sysid"
[[ $(json_field "$LAST_OUT" checksum_errors) == 0 ]] || fail "checksum errors reported"
ok "remote backup $snap of cluster $sysid"

# The snapshot's PostgreSQL fields: cluster, timeline, LSNs, and WAL names
# that info can place in the archive.
expect_rc 0 cp_ info --json
python3 - "$LAST_OUT" "$snap" "$sysid" <<'EOF' || fail "info does not list the remote backup right"
import json, sys
info = json.load(open(sys.argv[1]))
c = [x for x in info if x["cluster"] == sys.argv[3]]
assert c, "cluster %s not in info" % sys.argv[3]
s = [x for x in c[0]["snapshots"] if x["id"] == sys.argv[2]]
assert s, "snapshot not listed under its cluster"
s = s[0]
assert s["timeline"] == 1 and s["start_lsn"] != "0/0" and s["stop_lsn"] != "0/0", s
assert s["pitr"].startswith("up to the end of"), s
EOF
ok "info: cluster $sysid, timeline 1, LSNs, its WAL archived"

# Shape: backup_label and tablespace_map at the root, the tablespace as a
# folder under pg_tblspc/<oid>/, pg_wal empty, no postmaster.pid.
expect_rc 0 cp_ ls "$snap" --json
remote_ls=$SCRATCH/remote-ls.json
cp "$LAST_OUT" "$remote_ls"
python3 - "$remote_ls" "$ts_oid" <<'EOF' || fail "remote snapshot shape: see above"
import json, sys
e = {x["path"]: x for x in json.load(open(sys.argv[1]))}
oid = sys.argv[2]
def need(p, t):
    assert p in e, "missing " + p
    assert e[p]["type"] == t, "%s is a %s, want %s" % (p, e[p]["type"], t)
need("/PG_VERSION", "file")
need("/global/pg_control", "file")
need("/backup_label", "file")
need("/tablespace_map", "file")
need("/pg_wal", "dir")
need("/pg_tblspc/" + oid, "dir")
assert any(p.startswith("/pg_tblspc/%s/PG_15_" % oid) and e[p]["type"] == "dir" for p in e), "no PG_15_* in the tablespace"
assert not any(p.startswith("/pg_wal/") and e[p]["type"] == "file" for p in e), "pg_wal has files"
for p in ("/postmaster.pid", "/postmaster.opts"):
    assert p not in e, p + " was stored"
EOF
expect_rc 0 cp_ cat "$snap" backup_label
grep -q "^LABEL: cairn" "$LAST_OUT" || fail "backup_label has no cairn label"
expect_rc 0 cp_ cat "$snap" tablespace_map
grep -q "^$ts_oid $W/ts\$" "$LAST_OUT" || fail "tablespace_map: $(cat "$LAST_OUT")"
ok "shape: backup_label, tablespace_map, pg_tblspc/$ts_oid/PG_15_*, empty pg_wal"

# The same entries as a local backup of the same cluster, taken right after
# (bar visibility-map or free-space-map forks that autovacuum may create in
# between).
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
local_snap=$(json_field "$LAST_OUT" snapshot)
expect_rc 0 cp_ ls "$local_snap" --json
python3 - "$remote_ls" "$LAST_OUT" <<'EOF' || fail "remote and local snapshots differ in shape"
import json, re, sys
r = {x["path"]: x["type"] for x in json.load(open(sys.argv[1]))}
l = {x["path"]: x["type"] for x in json.load(open(sys.argv[2]))}
ok_diff = re.compile(r"_(fsm|vm)$")
only_r = sorted(p for p in r if p not in l and not ok_diff.search(p))
only_l = sorted(p for p in l if p not in r and not ok_diff.search(p))
types = sorted(p for p in r if p in l and r[p] != l[p])
for p in only_r: print("only in the remote backup:", p)
for p in only_l: print("only in the local backup:", p)
for p in types: print("type differs:", p, r[p], l[p])
sys.exit(1 if only_r or only_l or types else 0)
EOF
ok "the remote snapshot has the entries of a local one ($local_snap)"

# ---- restore, with the tablespace elsewhere ----------------------------------
psql_src -c "insert into t values (100001, 'after the backup')"
psql_src -c "insert into tst values (100001, 'after the backup')"
psql_src -c "select pg_switch_wal()" >/dev/null
for _ in $(seq 1 100); do
	[[ $(psql_src -c "select last_archived_wal = pg_walfile_name(pg_current_wal_lsn() - 1) from pg_stat_archiver") == t ]] && break
	sleep 0.2
done
ok "more WAL archived after the backup"

dir=$W/restore/r1
expect_rc 0 cp_ restore "$snap" --target "$dir" --tablespace-map "$W/ts=$W/ts-new"
[[ -L $dir/pg_tblspc/$ts_oid && $(readlink "$dir/pg_tblspc/$ts_oid") == "$W/ts-new" ]] ||
	fail "pg_tblspc/$ts_oid is not a link to $W/ts-new"
[[ -d $W/ts-new/$(ls "$W/ts" | head -1) ]] || fail "the tablespace was not restored into $W/ts-new"
ok "restored, tablespace in $W/ts-new"
pg_attach r1 "$dir"
pg_conf r1 "archive_mode = off"
pg_start r1
for _ in $(seq 1 150); do
	[[ $(pg_psql r1 -c "select pg_is_in_recovery()") == f ]] && break
	sleep 0.2
done
[[ $(pg_psql r1 -c "select pg_is_in_recovery()") == f ]] || fail "r1: still in recovery after 30 s"
[[ $(pg_psql r1 -c "select count(*) from tst") == 20001 ]] || fail "the table in the tablespace does not read back"
[[ $(pg_psql r1 -c "select v from tst where id = 100001") == "after the backup" ]] ||
	fail "the tablespace's table lacks the row written after the backup"
[[ $(pg_psql r1 -c "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts'") == "$W/ts-new" ]] ||
	fail "tablespace ts is not at $W/ts-new"
ok "the table in the tablespace reads back, with the row from the archived WAL"

dumpall() { # cluster -> stdout, without the random \restrict keys of pg_dump 15.14+
	pg_run_as_postgres "$pg_bin/pg_dumpall" -h "$(pg_sockdir "$1")" -p "$(pg_port "$1")" -U postgres |
		grep -Ev '^\\(un)?restrict '
}
psql_src -c "checkpoint" >/dev/null
dumpall src >"$SCRATCH/src.sql"
dumpall r1 | sed "s#$W/ts-new#$W/ts#g" >"$SCRATCH/r1.sql"
[[ -s $SCRATCH/src.sql ]] || fail "pg_dumpall printed nothing"
if ! cmp -s "$SCRATCH/src.sql" "$SCRATCH/r1.sql"; then
	diff "$SCRATCH/src.sql" "$SCRATCH/r1.sql" | head -20 >&2
	fail "pg_dumpall of the restored cluster differs (tablespace location aside)"
fi
ok "restore to the end of the archive: pg_dumpall identical (tablespace location aside)"
pg_psql r1 -c "insert into t values (200000, 'writable')"
ok "the restored cluster is promoted and writable"
pg_stop r1

# ---- checksum failures reported by the server ---------------------------------
pg_init bad
pg_start bad
pg_psql bad -c "create table c(id int, v text)"
pg_psql bad -c "insert into c select g, repeat('y', 200) from generate_series(1,2000) g"
pg_psql bad -c "create table d as select * from c"
pg_psql bad -c "checkpoint"
rel_c=$(pg_psql bad -c "select pg_relation_filepath('c')")
rel_d=$(pg_psql bad -c "select pg_relation_filepath('d')")
pg_stop bad
# Bytes changed in the middle of pages (past the header and its LSN): 7
# pages of c (PostgreSQL lists the first 5 of a file, then its total) and
# 1 of d: 8 in all.
for blk in 1 2 3 4 5 6 7; do
	printf 'CAIRN-BROKE-THIS' | dd of="$(pg_datadir bad)/$rel_c" bs=1 seek=$((8192 * blk + 4000)) conv=notrunc 2>/dev/null
done
printf 'CAIRN-BROKE-THIS' | dd of="$(pg_datadir bad)/$rel_d" bs=1 seek=$((8192 * 3 + 4000)) conv=notrunc 2>/dev/null
pg_start bad
expect_rc 1 cp_ backup --remote --pg-conn "$(pg_connstr bad)" --cluster bad
expect_stderr_grep "checksum verification failed in file .*$rel_d"
expect_stderr_grep "reported 8 page"
expect_stderr_grep "archive_mode is off"
expect_rc 0 cp_ info --json --cluster bad
grep -q '"id"' "$LAST_OUT" || fail "no snapshot of cluster bad was written"
ok "pages failing their checksums: reported, counted (8), exit 1, snapshot written"
expect_rc 0 cp_ backup --remote --pg-conn "$(pg_connstr bad)" --cluster bad --ignore-checksum-errors --json
[[ $(json_field "$LAST_OUT" checksum_errors) == 8 ]] || fail "checksum_errors is not 8: $(cat "$LAST_OUT")"
ok "--ignore-checksum-errors accepts it (exit 0, 8 counted)"
bad_snap=$(json_field "$LAST_OUT" snapshot)
expect_rc 0 cp_ ls "$bad_snap" --json
python3 - "$LAST_OUT" <<'EOF' || fail "snapshot without tablespaces: wrong shape"
import json, sys
e = {x["path"] for x in json.load(open(sys.argv[1]))}
assert "/backup_label" in e, "no backup_label"
assert "/tablespace_map" not in e, "an empty tablespace_map was stored"
assert "/pg_wal/archive_status" not in e, "pg_wal is not empty"
EOF
ok "without tablespaces: no tablespace_map, as a local backup"

# ---- errors ------------------------------------------------------------------------
expect_rc 1 cp_ backup --remote --pg-conn "host=$W/nosocket port=1 user=postgres"
expect_stderr_grep "cannot connect to PostgreSQL for replication"
expect_stderr_grep "REPLICATION"
ok "no server: a clear error"
psql_src -c "create role norepl login"
expect_rc 1 cp_ backup --remote --pg-conn "$(pg_connstr src | sed 's/user=postgres/user=norepl/')"
expect_stderr_grep "cannot connect to PostgreSQL for replication"
expect_stderr_grep "REPLICATION attribute"
ok "a role without REPLICATION: refused, and says what to do"

finish
