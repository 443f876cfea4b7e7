#!/usr/bin/env bash
# t_large.sh — LARGE: a 1 GiB tree (meant for a longer CTest timeout; not run
# in the sanitizer build).  Backup and restore byte-identical; an unchanged
# second backup adds < 0.5%; one byte inserted at the start of a 100 MiB
# file adds < 1 MiB (content-defined chunking); a marker planted in file
# contents and names never appears in the repository (compressed, then
# encrypted).  Prints timings.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

if [[ $CAIRN_SANITIZE == ON ]]; then
	skip_all "t_large runs only in the normal build (CAIRN_SANITIZE=ON)"
fi

MARKER=CAIRN-MARKER-5f3a9c
SRC=$SCRATCH/src
T0=$(now_s)
make_tree "$SRC" 1024 11
mkdir -p "$SRC/shift"
rand_bytes $((100 * 1024 * 1024)) shift100 >"$SRC/shift/rand100.bin"
# The marker in a compressible text file (zstd keeps one literal copy of
# it), in the middle of a random file, and in a file name.
{
	text_bytes 200000 42
	for ((i = 0; i < 2000; i++)); do printf 'line %d: %s the marker\n' "$i" "$MARKER"; done
	text_bytes 200000 43
} >"$SRC/text/marked.txt"
{
	rand_bytes 1000000 mk1
	printf '%s' "$MARKER"
	rand_bytes 1000000 mk2
} >"$SRC/medium/marked.bin"
printf 'named\n' >"$SRC/text/$MARKER-in-the-name.txt"
grep -q "$MARKER" "$SRC/text/marked.txt" || fail "the marker is not in the source"
SIZE=$(du -sb "$SRC" | cut -f1)
NFILES=$(find "$SRC" -type f | wc -l)
echo "# generated $((SIZE / 1024 / 1024)) MiB in $NFILES files in $(elapsed "$T0" "$(now_s)") s"

expect_rc 0 cairn init

# ---- backup and restore ------------------------------------------------
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
t_backup=$(elapsed "$T0" "$(now_s)")
SNAP1=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
size1=$(repo_bytes)
echo "# backup 1: $t_backup s ($(awk -v b="$SIZE" -v t="$t_backup" 'BEGIN { printf "%.0f", b / 1048576 / (t > 0 ? t : 0.1) }') MiB/s), repository $((size1 / 1024 / 1024)) MiB"
ok "backup of $((SIZE / 1024 / 1024)) MiB ($NFILES files) in $t_backup s"

T0=$(now_s)
expect_rc 0 cairn restore "${SNAP1:0:8}" --target "$SCRATCH/restore"
t_restore=$(elapsed "$T0" "$(now_s)")
echo "# restore: $t_restore s"
expect_same_tree "$SRC" "$SCRATCH/restore$SRC" "restore of the 1 GiB tree is byte-identical ($t_restore s)"
rm -rf "$SCRATCH/restore"

# ---- unchanged second backup -------------------------------------------
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
t_backup2=$(elapsed "$T0" "$(now_s)")
size2=$(repo_bytes)
growth=$((size2 - size1))
echo "# backup 2 (unchanged): $t_backup2 s, +$growth bytes"
((growth * 1000 < size1 * 5)) || fail "unchanged second backup added $growth bytes to $size1 (>= 0.5%)"
ok "unchanged second backup adds < 0.5% (+$growth bytes, $t_backup2 s)"

# ---- one byte inserted at the start of a 100 MiB file ------------------
{
	printf 'X'
	cat "$SRC/shift/rand100.bin"
} >"$SRC/shift/rand100.bin.new"
mv "$SRC/shift/rand100.bin.new" "$SRC/shift/rand100.bin"
T0=$(now_s)
expect_rc 0 cairn backup "$SRC"
t_backup3=$(elapsed "$T0" "$(now_s)")
SNAP3=$(sed -n 's/^snapshot \([0-9a-f]\{64\}\) saved$/\1/p' "$LAST_OUT")
size3=$(repo_bytes)
growth=$((size3 - size2))
echo "# backup 3 (1 byte inserted at the start of 100 MiB): $t_backup3 s, +$growth bytes"
((growth < 1024 * 1024)) || fail "inserting one byte at the start of a 100 MiB file added $growth bytes (>= 1 MiB)"
ok "one byte inserted at the start of a 100 MiB file adds < 1 MiB (+$growth bytes)"
expect_rc 0 cairn cat "${SNAP3:0:8}" "$SRC/shift/rand100.bin"
cmp -s "$LAST_OUT" "$SRC/shift/rand100.bin" || fail "cat of the shifted file differs"
: >"$LAST_OUT"
ok "the shifted file reads back identical"

# ---- the marker is nowhere in the repository ------------------------------
hits=$(grep -r -a -c -F "$MARKER" "$CAIRN_REPOSITORY" | grep -v ':0$' || true)
[[ -z $hits ]] || fail "the marker $MARKER appears in the repository: $hits"
hits=$(grep -r -a -c -F "$MARKER" "$CAIRN_CACHE_DIR" | grep -v ':0$' || true)
[[ -z $hits ]] || fail "the marker $MARKER appears in the cache: $hits"
ok "the marker (in contents and a file name) appears nowhere in the repository or the cache"
# ... and the text was compressed before encryption: stored < logical.
expect_rc 0 cairn stats --json "${SNAP1:0:8}"
python3 - "$LAST_OUT" <<'EOF' || fail "stats: $(cat "$LAST_OUT")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["stored_bytes"] < v["unique_bytes"] * 0.98, v
EOF
ok "stored bytes are below the logical bytes (text compressed before encryption)"

# ---- full check ---------------------------------------------------------
T0=$(now_s)
expect_rc 0 cairn check --read-data
t_check=$(elapsed "$T0" "$(now_s)")
ok "check --read-data passes ($t_check s)"

echo "# timings: backup ${t_backup}s, restore ${t_restore}s, unchanged backup ${t_backup2}s, shifted backup ${t_backup3}s, check --read-data ${t_check}s"
finish
