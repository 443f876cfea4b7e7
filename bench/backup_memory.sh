#!/usr/bin/env bash
# bench/backup_memory.sh — peak memory and speed of `cairn backup` and
# `cairn restore` at two input sizes, to show that memory does not grow
# with the amount of data.  Run by hand (not a test):
#
#   bench/backup_memory.sh [SIZES_GIB...]      default: 1 10
#
# Input: files of 256 MiB each, half random bytes and half text, so that
# both the compressor and the chunker do real work.  Needs about
# 2.2 × the largest size of free space under ${TMPDIR:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[[ $# -gt 0 ]] || sizes=(1 10)
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target cairn >/dev/null
cairn=$PWD/build-bench/cairn
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CAIRN_PASSWORD=bench CAIRN_CACHE_DIR=$work/cache

measure() { # label, command...: prints wall s and peak RSS MiB
	local label=$1; shift
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
	read -r wall rss <"$work/time"
	printf '%-28s %8.1f s %8.1f MiB peak RSS\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

echo "cairn $(git rev-parse --short HEAD), $(nproc) cores, $(date -u +%Y-%m-%d)"
for gib in "${sizes[@]}"; do
	src=$work/src-$gib
	mkdir -p "$src"
	for i in $(seq 1 $((gib * 4))); do
		# (seq is cut short by head: its SIGPIPE is expected)
		{ head -c $((128 << 20)) /dev/urandom; seq 1 $((128 << 20)) | head -c $((128 << 20)) || true; } \
			>"$src/f$i"
	done
	export CAIRN_REPOSITORY=$work/repo-$gib
	"$cairn" init -q
	measure "backup ${gib} GiB" "$cairn" backup -q "$src"
	measure "backup ${gib} GiB unchanged" "$cairn" backup -q "$src"
	measure "restore ${gib} GiB" "$cairn" restore -q latest --target "$work/out-$gib"
	rm -rf "$src" "$work/out-$gib" "$work/repo-$gib"
done
