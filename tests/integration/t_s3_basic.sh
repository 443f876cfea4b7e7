#!/usr/bin/env bash
# t_s3_basic.sh — the everyday commands with the repository on S3 (Ceph
# radosgw from the CTest fixture "s3"): init, backup, snapshots, restore
# identical, an unchanged second backup adds almost nothing, check
# --read-data, the local cache deleted and rebuilt from the index objects
# on S3, clear errors for a wrong secret key, a missing bucket, a missing
# endpoint and missing credentials, and a byte flipped in a pack object on
# S3 found by check --read-data (exit 3).
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"

SRC=$SCRATCH/src
make_tree "$SRC" 30
PFX=$(s3_repo_prefix)

# ---- init ----------------------------------------------------------------
expect_rc 0 cairn init
expect_stdout_grep "created cairn repository [0-9a-f]{8} at $CAIRN_REPOSITORY"
s3_keys "$PFX/" >"$SCRATCH/keys"
grep -q "^$PFX/config " "$SCRATCH/keys" || fail "init wrote no $PFX/config: $(cat "$SCRATCH/keys")"
grep -q "^$PFX/keys/" "$SCRATCH/keys" || fail "init wrote no key object"
ok "init creates a repository under the prefix ($(wc -l <"$SCRATCH/keys") objects)"
expect_rc 1 cairn init
expect_stderr_grep 'already a (cairn )?repository'
ok "init again refuses (exit 1)"

# ---- backup, snapshots, restore -----------------------------------------
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
echo "# first backup of 30 MiB to S3: $(elapsed "$T0" "$(now_s)") s"
expect_stdout_grep '^snapshot [0-9a-f]{64} saved'
SNAP1=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
ok "backup of a 30 MiB tree"
s3_keys "$PFX/" >"$SCRATCH/keys"
npacks=$(grep -c "^$PFX/packs/" "$SCRATCH/keys" || true)
nindex=$(grep -c "^$PFX/index/" "$SCRATCH/keys" || true)
((npacks >= 2 && nindex >= 1)) || fail "expected packs and an index on S3: $(cat "$SCRATCH/keys")"
stored1=$(awk '{ s += $2 } END { print s }' "$SCRATCH/keys")
ok "the objects are on S3: $npacks packs, $nindex index objects, $stored1 bytes"

expect_rc 0 cairn snapshots
expect_stdout_grep "^${SNAP1:0:8} "
expect_stdout_grep '^1 snapshot\(s\)$'
ok "snapshots lists it"

T0=$(now_s)
expect_rc 0 cairn restore latest --target "$SCRATCH/r1"
echo "# restore of 30 MiB from S3: $(elapsed "$T0" "$(now_s)") s"
expect_same_tree "$SRC" "$SCRATCH/r1$SRC" "restore from S3 is identical"

# ---- a second backup of the unchanged tree ------------------------------
expect_rc 0 cairn backup "$SRC" --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["bytes_stored"] < 65536, v' "$LAST_OUT" ||
	fail "the second backup stored too much: $(cat "$LAST_OUT")"
s3_keys "$PFX/" >"$SCRATCH/keys"
stored2=$(awk '{ s += $2 } END { print s }' "$SCRATCH/keys")
growth=$((stored2 - stored1))
((growth * 1000 < stored1 * 5)) || fail "the unchanged backup added $growth bytes to $stored1 on S3"
ok "a second backup of the unchanged tree adds $growth bytes on S3 (< 0.5%)"

expect_rc 0 cairn check --read-data
expect_stdout_grep 'no errors'
ok "check --read-data passes"

# ---- the local cache is only a cache -------------------------------------
rm -rf "$CAIRN_CACHE_DIR"
expect_rc 0 cairn snapshots
expect_stdout_grep '^2 snapshot\(s\)$'
expect_rc 0 cairn restore "${SNAP1:0:8}" --target "$SCRATCH/r2"
expect_same_tree "$SRC" "$SCRATCH/r2$SRC" "after the cache was deleted, restore is identical"
[[ -n $(find "$CAIRN_CACHE_DIR" -type f 2>/dev/null) ]] || fail "no cache was rebuilt in $CAIRN_CACHE_DIR"
echo "more" >"$SRC/new-file.txt"
expect_rc 0 cairn backup "$SRC" --json
python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["bytes_stored"] < 65536, v' "$LAST_OUT" ||
	fail "with a rebuilt cache the backup stored again: $(cat "$LAST_OUT")"
ok "the cache is rebuilt from the index objects on S3 and dedup still works"

# ---- errors that must be clear --------------------------------------------
expect_rc 1 env AWS_SECRET_ACCESS_KEY=wrong-secret "$CAIRN_BIN" snapshots
expect_stderr_grep "access denied to S3 bucket $CAIRN_S3_BUCKET"
expect_stderr_grep 'AWS_SECRET_ACCESS_KEY'
ok "a wrong secret key: exit 1, 'access denied' naming the bucket and the credentials"

expect_rc 1 cairn -r "s3://cairn-no-such-bucket-$$/x" snapshots
expect_stderr_grep "bucket cairn-no-such-bucket-$$ does not exist"
expect_stderr_grep 'hint: '
ok "a missing bucket: exit 1, 'does not exist', with a hint"

expect_rc 1 cairn -r "$CAIRN_REPOSITORY-nothing-here" snapshots
expect_stderr_grep 'not a cairn repository'
ok "an empty prefix is not a repository (exit 1)"

expect_rc 2 env -u CAIRN_S3_ENDPOINT "$CAIRN_BIN" snapshots
expect_stderr_grep -- '--s3-endpoint'
expect_stderr_grep 'CAIRN_S3_ENDPOINT'
ok "no endpoint: exit 2 naming --s3-endpoint and CAIRN_S3_ENDPOINT"

expect_rc 2 env -u AWS_ACCESS_KEY_ID "$CAIRN_BIN" snapshots
expect_stderr_grep 'AWS_ACCESS_KEY_ID'
ok "no credentials: exit 2 naming AWS_ACCESS_KEY_ID"

expect_rc 0 env -u CAIRN_S3_ENDPOINT "$CAIRN_BIN" --s3-endpoint "$CAIRN_S3_ENDPOINT" \
	--s3-region us-east-1 --s3-uri-style path snapshots
expect_stdout_grep '^3 snapshot\(s\)$'
ok "--s3-endpoint, --s3-region and --s3-uri-style on the command line"

expect_rc 0 cairn --limit-download 100000 --limit-upload 100000 check
ok "--limit-upload and --limit-download are accepted"

# The same settings from a --config file (the keys README and --help list).
printf 'repo = %s\ns3-endpoint = %s\ns3-region = us-east-1\ns3-uri-style = path\nlimit-upload = 100000\nlimit-download = 100000\n' \
	"$CAIRN_REPOSITORY" "$CAIRN_S3_ENDPOINT" >"$SCRATCH/s3.conf"
expect_rc 0 env -u CAIRN_REPOSITORY -u CAIRN_S3_ENDPOINT "$CAIRN_BIN" --config "$SCRATCH/s3.conf" snapshots
expect_stdout_grep '^3 snapshot\(s\)$'
sed 's/^s3-uri-style = path$/s3-uri-style = sideways/' "$SCRATCH/s3.conf" >"$SCRATCH/bad1.conf"
expect_rc 2 cairn --config "$SCRATCH/bad1.conf" snapshots
expect_stderr_grep 'bad1.conf:4: s3-uri-style is path or host'
sed 's/^limit-upload = 100000$/limit-upload = fast/' "$SCRATCH/s3.conf" >"$SCRATCH/bad2.conf"
expect_rc 2 cairn --config "$SCRATCH/bad2.conf" snapshots
expect_stderr_grep 'bad2.conf:5: limit-upload takes KiB per second'
ok "s3-endpoint, s3-region, s3-uri-style, limit-upload and limit-download in a --config file; bad values are usage errors naming the line"

# ---- a flipped byte in a pack on S3 ---------------------------------------
pack=$(grep "^$PFX/packs/" "$SCRATCH/keys" | sort -k2 -n | tail -1 | cut -d' ' -f1)
s3_get "$pack" "$SCRATCH/pack"
size=$(stat -c %s "$SCRATCH/pack")
off=$((size / 2))
orig=$(dd if="$SCRATCH/pack" bs=1 skip="$off" count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(((orig + 1) % 256)))" |
	dd of="$SCRATCH/pack" bs=1 seek="$off" conv=notrunc 2>/dev/null
s3_put "$pack" "$SCRATCH/pack"
s3_get "$pack" "$SCRATCH/pack.back"
cmp -s "$SCRATCH/pack" "$SCRATCH/pack.back" || fail "the damaged pack did not land on S3"
ok "one byte of ${pack##*/} flipped on S3 (at $off of $size)"

expect_rc 0 cairn check
ok "check without --read-data does not read pack contents (exit 0)"
expect_rc 3 cairn check --read-data
grep -q "${pack##*/}" "$LAST_OUT" "$LAST_ERR" || fail "check --read-data does not name the damaged pack ${pack##*/}"
ok "check --read-data finds the damage (exit 3) and names the pack"

finish
