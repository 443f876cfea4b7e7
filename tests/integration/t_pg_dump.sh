#!/usr/bin/env bash
# Logical dumps through standard input: pg_dump -Fc -Z0 | cairn backup
# --stdin dedups day over day, and one table comes back with
# cairn cat | pg_restore -t TABLE, as the README shows.
T_NAME=t_pg_dump
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/pglib.sh"
pg_require

pg_init db
pg_start db
rows=200000
[[ ${CAIRN_SANITIZE:-OFF} == ON ]] && rows=50000
pg_psql db -c "create table orders(id int primary key, customer text, amount numeric)"
pg_psql db -c "insert into orders select g, 'customer ' || (g % 977), g * 1.5 from generate_series(1,$rows) g"
pg_psql db -c "create table notes(id int, body text)"
pg_psql db -c "insert into notes select g, md5(g::text) from generate_series(1,5000) g"

dump() { pg_run_as_postgres "$pg_bin/pg_dump" -Fc -Z0 -h "$(pg_sockdir db)" -p "$(pg_port db)" -U postgres postgres; }
expect_rc 0 cairn init
dump >"$SCRATCH/day1.dump"
expect_rc 0 cairn backup --stdin --stdin-name postgres.dump --tag logical --json <"$SCRATCH/day1.dump"
stored1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_stored"])' "$LAST_OUT")
ok "day 1 dump stored: $stored1 bytes for $(stat -c %s "$SCRATCH/day1.dump")"

# A day's changes, as they usually go: the newest orders change (1% of the
# rows), new ones come in.  (Updates scattered uniformly over a whole table
# touch every chunk of its COPY data: there, dedup saves little.)
pg_psql db -c "update orders set amount = amount + 1 where id > $rows - $rows / 100"
pg_psql db -c "insert into orders select g, 'new', 1 from generate_series($rows + 1, $rows + 1000) g"
dump >"$SCRATCH/day2.dump"
expect_rc 0 cairn backup --stdin --stdin-name postgres.dump --tag logical --json <"$SCRATCH/day2.dump"
stored2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_stored"])' "$LAST_OUT")
((stored2 * 4 < stored1)) || fail "day 2 stored $stored2 bytes, not far less than day 1's $stored1"
ok "day 2 dump stored $stored2 bytes ($((stored2 * 100 / stored1))% of day 1)"

# The dump comes back byte for byte, and one table restores from it.
expect_rc 0 cairn cat latest postgres.dump
cmp -s "$LAST_OUT" "$SCRATCH/day2.dump" || fail "cat of the dump differs"
ok "cat gives back the dump byte for byte"
pg_psql db -c "drop table notes"
# pg_restore stops reading once it has the table: cairn then dies of
# SIGPIPE like any writer to a closed pipe; pg_restore's status counts.
set +o pipefail
cairn cat latest postgres.dump | pg_run_as_postgres "$pg_bin/pg_restore" -t notes \
	-h "$(pg_sockdir db)" -p "$(pg_port db)" -U postgres -d postgres
[[ ${PIPESTATUS[1]} == 0 ]] || fail "pg_restore -t notes failed"
set -o pipefail
[[ $(pg_psql db -c "select count(*) from notes") == 5000 ]] || fail "table notes not restored"
ok "cairn cat | pg_restore -t notes brings the table back"
finish
