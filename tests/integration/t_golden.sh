#!/usr/bin/env bash
# The frozen repository in tests/golden/v1 (see its README) must stay
# readable: the snapshot lists, check --read-data passes, and a restore
# gives back exactly the files it was made from.  The test works on a copy
# (a scrub records what it read in the repository), and none of the
# objects that were there is modified.
T_NAME=t_golden
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
cp -a "$(dirname "$0")/../golden/v1/repo" "$SCRATCH/golden"
golden=$SCRATCH/golden
export CAIRN_REPOSITORY=$golden CAIRN_PASSWORD=golden
digest() { (cd "$golden" && find config keys packs index snapshots -type f | sort | xargs sha256sum | sha256sum); }
before=$(digest)

expect_rc 0 cairn snapshots --json
is_json "$LAST_OUT" || fail "snapshots --json is not JSON"
python3 - "$LAST_OUT" <<'PY' || fail "the golden snapshot is not as recorded"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s) == 1, s
s = s[0]
assert s["id"].startswith("1129ea96"), s["id"]
assert s["host"] == "golden" and s["tags"] == ["golden"], s
assert s["paths"] == ["/tmp/golden/src"], s
PY
ok "the golden snapshot lists as recorded"

expect_rc 0 cairn check --read-data
expect_stdout_grep "no errors"
ok "check --read-data passes"

expect_rc 0 cairn restore latest --target "$SCRATCH/out"
src=$SCRATCH/out/tmp/golden/src
[[ $(cat "$src/docs/readme.txt") == "cairn golden repository, format version 1" ]] ||
	fail "readme.txt differs"
python3 - "$src/docs/log.txt" <<'PY' || fail "log.txt differs"
import hashlib, sys
want = "".join("line %06d %s\n" % (i, hashlib.sha256(str(i).encode()).hexdigest()[:16])
               for i in range(20000))
assert open(sys.argv[1]).read() == want
PY
[[ -f $src/empty && ! -s $src/empty ]] || fail "empty differs"
[[ $(readlink "$src/link") == docs/readme.txt ]] || fail "link differs"
[[ $(stat -c %a "$src/docs/log.txt") == 644 ]] || fail "mode differs"
[[ $(TZ=UTC stat -c %y "$src/docs/log.txt") == "2026-01-01 00:00:00.000000000 +0000" ]] ||
	fail "mtime differs: $(stat -c %y "$src/docs/log.txt")"
ok "restore gives back the recorded files, modes and times"

expect_rc 0 cairn cat latest /tmp/golden/src/docs/readme.txt
expect_stdout_grep "format version 1"
expect_rc 0 cairn key list --json
is_json "$LAST_OUT" || fail "key list --json is not JSON"
ok "cat and key list work"

after=$(digest)
[[ $before == "$after" ]] || fail "reading the golden repository changed one of its objects"
ok "no object of the golden repository was changed"
finish
