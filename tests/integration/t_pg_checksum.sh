#!/usr/bin/env bash
# Page checksums (pglib's initdb uses -k): one byte of page 1 of a table is
# changed on disk while the server is down.  A backup then exits 1, names
# the file, the block and both checksums on stderr, and still writes its
# snapshot (listed); the intact pages of the same file and every other file
# are checked without complaint.  --ignore-checksum-errors (with --full-read,
# so the file is read again) exits 0, still reporting the page.  The damaged
# byte is in the snapshot as it was on disk (cairn copies, it does not
# repair).  Everything cairn does runs as the postgres user.
T_NAME=t_pg_checksum
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

W=$SCRATCH/w
pg_mkdir "$W" "$W/repo" "$W/pgcache"
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
nsnaps() {
	asp "$CAIRN_BIN" --config "$conf" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

expect_rc 0 asp env CAIRN_PASSWORD=ck-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" init
expect_rc 0 asp env CAIRN_PASSWORD=ck-pass "$CAIRN_BIN" -r "$W/repo" --cache-dir "$W/pgcache" \
	key export-host-key "$W/host.key"

pg_init src
pg_conf src "archive_mode = on" \
	"archive_command = '$CAIRN_BIN --config $conf archive-push %p'" \
	"archive_timeout = 0"
pg_start src
[[ $(pg_psql src -c "show data_checksums") == on ]] || fail "the test cluster has no data checksums"
# No autovacuum on t: nothing but the backup reads the damaged page.
pg_psql src -c "create table t(id int, note text) with (autovacuum_enabled = off)"
pg_psql src -c "insert into t select g, repeat(md5(g::text), 3) from generate_series(1, 2000) g"
pg_psql src -c "checkpoint"
relpath=$(pg_psql src -c "select pg_relation_filepath('t')")
pages=$(pg_psql src -c "select pg_relation_size('t') / 8192")
((pages >= 3)) || fail "table t has only $pages pages"
[[ $relpath =~ ^base/[0-9]+/[0-9]+$ ]] || fail "unexpected relation path $relpath"
ok "table t: $relpath, $pages pages, checksums on"

# A clean backup first: no checksum error anywhere.
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" --json
[[ $(jget checksum_errors) == 0 ]] || fail "a clean cluster reports $(jget checksum_errors) checksum errors"
checked0=$(jget pages_checked)
((checked0 > pages)) || fail "only $checked0 pages checked"
! grep -qi checksum "$LAST_ERR" || fail "a clean backup warns about checksums: $(cat "$LAST_ERR")"
ok "clean backup: $checked0 pages checked, no error"

# Damage one byte in the middle of page 1, server down.
pg_stop src
file=$(pg_datadir src)/$relpath
off=$((8192 + 4000))
old=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
new=$(((old + 0x5a) % 256))
printf "\\$(printf %03o "$new")" | dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
[[ $(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ') == "$new" ]] || fail "could not change the byte at $off"
# PostgreSQL's own verdict, as the reference: pg_checksums --check (offline).
run_rc asp "$pg_bin/pg_checksums" --check -D "$(pg_datadir src)"
((LAST_RC == 1)) || fail "pg_checksums --check exited $LAST_RC on the damaged cluster"
pgline=$(cat "$LAST_ERR" "$LAST_OUT" | grep 'checksum verification failed' | head -1)
[[ $(cat "$LAST_ERR" "$LAST_OUT" | grep -c 'checksum verification failed') == 1 ]] ||
	fail "pg_checksums finds other damage: $(cat "$LAST_ERR")"
[[ $pgline =~ /$relpath\",\ block\ 1:\ calculated\ checksum\ ([0-9A-Fa-f]+)\ but\ block\ contains\ ([0-9A-Fa-f]+) ]] ||
	fail "unexpected pg_checksums line: $pgline"
pg_calc=$(printf '0x%04x' "0x${BASH_REMATCH[1]}")
pg_have=$(printf '0x%04x' "0x${BASH_REMATCH[2]}")
pg_start src
n0=$(nsnaps)
ok "byte $off of $relpath changed from $old to $new (pg_checksums: block 1 calculated $pg_calc, contains $pg_have), server restarted"

# No --full-read: dd changed the file's mtime and ctime, so the file is not
# reused from the clean backup but read (and checked) again.
expect_rc 1 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)"
expect_stderr_grep "checksum mismatch in $relpath, block 1: expected 0x[0-9a-f]{4}, found 0x[0-9a-f]{4}"
[[ $(grep -c "checksum mismatch" "$LAST_ERR") == 1 ]] || fail "expected exactly one page reported: $(cat "$LAST_ERR")"
line=$(grep "checksum mismatch" "$LAST_ERR")
# cairn's "expected" is the checksum computed over the page, "found" the one
# in its header: the same two values pg_checksums printed.
[[ $line == *"expected $pg_calc, found $pg_have"* ]] ||
	fail "cairn says '$line'; pg_checksums: calculated $pg_calc, block contains $pg_have"
expect_stderr_grep "failed their checksums"
[[ $(nsnaps) == $((n0 + 1)) ]] || fail "the backup with a checksum error did not write its snapshot"
expect_stdout_grep "snapshot [0-9a-f]{64} saved"
snapBad=$(sed -nE 's/^snapshot ([0-9a-f]{64}) saved$/\1/p' "$LAST_OUT")
ok "backup: exit 1, '$line', snapshot ${snapBad:0:8} written and listed"

# The snapshot holds the page as it was on disk.
expect_rc 0 cp_ cat "$snapBad" "$relpath"
cmp -s "$LAST_OUT" "$file" || fail "the snapshot's copy of $relpath differs from the file on disk"
ok "the snapshot's $relpath is byte-identical to the damaged file"

# Accepting the damage: exit 0, still reported.
expect_rc 0 cp_ backup --pgdata "$(pg_datadir src)" --pg-conn "$(pg_connstr src)" \
	--ignore-checksum-errors --full-read --json
[[ $(jget checksum_errors) == 1 ]] || fail "--ignore-checksum-errors: checksum_errors is $(jget checksum_errors), want 1"
expect_stderr_grep "checksum mismatch in $relpath, block 1"
((n0 + 2 == $(nsnaps))) || fail "the accepted backup is not listed"
ok "--ignore-checksum-errors --full-read: exit 0, the page still reported (checksum_errors 1)"

finish
