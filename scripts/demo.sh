#!/usr/bin/env bash
# scripts/demo.sh — cairn in one minute: builds it, creates an encrypted
# repository in a temporary folder, backs up a generated tree twice (the
# second time only changes are stored), restores, and proves the restore is
# byte-identical.  Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cairn_install_deps

echo "== building cairn"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
cairn=$PWD/build/cairn

work=$(mktemp -d /tmp/cairn-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY=$work/repo CAIRN_CACHE_DIR=$work/cache
printf 'demo passphrase\n' >"$work/pass"
chmod 600 "$work/pass"
export CAIRN_PASSWORD_FILE=$work/pass

echo "== generating a tree to back up"
src=$work/data
mkdir -p "$src/logs" "$src/blobs"
for i in $(seq 1 20); do seq $((i * 1000)) $((i * 5000)) >"$src/logs/log$i.txt"; done
for i in 1 2 3; do head -c $((i * 4 * 1024 * 1024)) /dev/urandom >"$src/blobs/b$i.bin"; done
ln -s logs/log1.txt "$src/latest-log"

run() { echo "\$ cairn $*"; "$cairn" "$@"; }
echo "== init, backup, change one file, backup again"
run init
run backup "$src" --tag demo
echo "one more line" >>"$src/logs/log7.txt"
run backup "$src" --tag demo
run snapshots
echo "== restore the latest snapshot and compare"
run restore latest --target "$work/restored"
diff -r "$src" "$work/restored$src"
echo "restored tree is identical to the source"
run check --read-data
run stats
echo "== demo finished"
