#!/usr/bin/env bash
# scripts/test.sh — installs dependencies, builds cairn twice (normal, and
# with AddressSanitizer + UndefinedBehaviorSanitizer), and runs every CTest
# test in both builds.  The 1 GiB tests (label "large") run in the normal
# build only.  The OpenStack Swift tests (label "s3-swift": a second S3
# server, 66 more packages) run only with CAIRN_TEST_SWIFT=1.  Exit status:
# 0 when all tests pass.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cairn_install_deps

jobs=$(nproc 2>/dev/null || echo 2)
build() { # dir, extra cmake args...
	local dir=$1; shift
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$jobs" >/dev/null
}

echo "== build (RelWithDebInfo)"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build (ASan+UBSan)"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=ON

skip=s3-swift
[ "${CAIRN_TEST_SWIFT:-0}" = 1 ] && skip='^$'
status=0
echo "== tests (RelWithDebInfo)"
ctest --test-dir build --output-on-failure -j"$jobs" -LE "$skip" || status=1
echo "== tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE "large|$skip" || status=1
if [ $status -eq 0 ]; then echo "== all tests passed"; else echo "== some tests FAILED"; fi
exit $status
