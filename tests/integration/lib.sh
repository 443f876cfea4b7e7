# lib.sh — sourced by every tests/integration/t_*.sh.
#
# Environment (set by CTest, see CMakeLists.txt):
#   CAIRN_BIN       the cairn binary under test
#   CAIRN_SANITIZE  ON when the binary is built with ASan/UBSan
#   CAIRN_TESTLIB   this file
#
# Gives each test a scratch folder ($SCRATCH, removed on exit), a repository
# location ($CAIRN_REPOSITORY, not yet initialised), a cache folder and a
# passphrase, plus helpers:
#   ok WHAT                  count one passed assertion (prints "ok N - WHAT")
#   fail MSG                 print "FAIL: MSG" and the closing line, exit 1
#   bug MSG                  a failure caused by a known cairn bug: counted,
#                            printed as "FAIL (cairn bug): MSG"; the test goes
#                            on and finish then exits 1
#   skip_all REASON          print the reason and the closing line, exit 0
#   finish                   print the closing line "N passed, 0 failed"
#   run_rc CMD...            run CMD, stdout/stderr to $LAST_OUT/$LAST_ERR,
#                            exit status in $LAST_RC (fails on sanitizer reports)
#   expect_rc N CMD...       run CMD, stdout/stderr to $LAST_OUT/$LAST_ERR;
#                            fail unless it exits N (and on sanitizer reports)
#   expect_stderr_grep RE    the last expect_rc's stderr matches RE (grep -E)
#   expect_stdout_grep RE    the last expect_rc's stdout matches RE (grep -E)
#   cairn ARGS...            "$CAIRN_BIN" ARGS...
#   rand_bytes N SEED        N pseudo-random bytes on stdout (deterministic when
#                            openssl is available, else from /dev/urandom)
#   make_tree DIR SIZE_MB    a deterministic mixed tree of about SIZE_MB MiB
#   tree_digest DIR          sha256 of every entry's path, type, mode, content
#                            and symlink target below DIR (tree_listing: the
#                            lines it hashes); expect_same_tree A B WHAT
#   repo_bytes [DIR]         du -sb of the repository (default $CAIRN_REPOSITORY)
#   is_json FILE             FILE parses as JSON (python3)
#   now_s                    seconds since the epoch, with fractions
#
# CI reads the closing line: "N passed, M failed" (M = 0 on success).

set -euo pipefail
set -E

: "${CAIRN_BIN:?CAIRN_BIN must name the cairn binary}"
CAIRN_SANITIZE=${CAIRN_SANITIZE:-OFF}
case "$CAIRN_SANITIZE" in
ON | on | 1 | TRUE | true | YES | yes) CAIRN_SANITIZE=ON ;;
*) CAIRN_SANITIZE=OFF ;;
esac
export CAIRN_SANITIZE
[[ -x $CAIRN_BIN ]] || { echo "FAIL: CAIRN_BIN=$CAIRN_BIN is not executable"; echo "0 passed, 1 failed"; exit 1; }

# Sanitizer reports must never pass unnoticed, even from a command that is
# expected to fail: give them their own exit codes and grep for them too.
export ASAN_OPTIONS="detect_leaks=1:exitcode=86:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

T_NAME=$(basename "${0%.sh}")
T_PASSED=0
T_FAILED=0
T_FINISHED=0
T_MOUNTS=()

# Messages of the harness go to the test's own stdout even from inside a
# redirected function (fd 9 is the original stdout).
exec 9>&1

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/itest-$T_NAME.XXXXXX")
chmod 755 "$SCRATCH"
export SCRATCH

_t_cleanup() {
	local rc=$?
	trap - ERR
	set +e
	# Processes a test left running (a backup being killed, ...).
	local p
	for p in $(jobs -p 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	local m
	for m in "${T_MOUNTS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	# The closing line, unless fail (maybe in a subshell) printed it.
	if [[ $T_FINISHED == 0 && $rc != 0 && ! -e ${SCRATCH:-/nonexistent}/.closed ]]; then
		echo "$T_PASSED passed, $((T_FAILED + 1)) failed" >&9
	fi
	if [[ -n ${SCRATCH:-} && -d $SCRATCH ]]; then
		chmod -R u+rwX "$SCRATCH" 2>/dev/null
		rm -rf "$SCRATCH"
	fi
	exit "$rc"
}
trap _t_cleanup EXIT

# An unexpected failure of a plain command (set -e) says where it happened.
# Only in the test's own shell: in a subshell (a command substitution) the
# failure reaches the main shell through the subshell's exit status.
T_MAIN_PID=$BASHPID
_t_on_err() {
	local rc=$? line=${BASH_LINENO[0]} cmd=$BASH_COMMAND
	[[ $BASHPID == "$T_MAIN_PID" ]] || return 0
	trap - ERR
	echo "FAIL: unexpected exit status $rc at $T_NAME.sh line $line: $cmd" >&9
	exit 1
}
trap _t_on_err ERR

export CAIRN_PASSWORD=test-pass
export CAIRN_CACHE_DIR=$SCRATCH/cache
export CAIRN_REPOSITORY=$SCRATCH/repo
unset CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND
LAST_OUT=$SCRATCH/.last.out
LAST_ERR=$SCRATCH/.last.err
LAST_RC=0

echo "# $T_NAME: cairn=$CAIRN_BIN sanitize=$CAIRN_SANITIZE scratch=$SCRATCH"

ok() {
	T_PASSED=$((T_PASSED + 1))
	echo "ok $T_PASSED - $*"
}

fail() {
	trap - ERR
	echo "FAIL: $*" >&9
	if [[ ! -e $SCRATCH/.closed ]]; then
		echo "$T_PASSED passed, $((T_FAILED + 1)) failed" >&9
		: >"$SCRATCH/.closed"
	fi
	T_FINISHED=1
	exit 1
}

# bug MSG: an assertion that fails because of a known cairn bug.  The test
# goes on (so that the other assertions still run) but ends failed.
bug() {
	T_FAILED=$((T_FAILED + 1))
	echo "FAIL (cairn bug): $*" >&9
}

finish() {
	T_FINISHED=1
	echo "$T_PASSED passed, $T_FAILED failed"
	if ((T_FAILED > 0)); then
		exit 1
	fi
	exit 0
}

skip_all() {
	echo "SKIP: $*"
	finish
}

cairn() {
	"$CAIRN_BIN" "$@"
}

_t_show_last() {
	echo "--- command: $*"
	echo "--- exit status: $LAST_RC"
	echo "--- stdout (last 40 lines):"
	tail -n 40 "$LAST_OUT" || true
	echo "--- stderr (last 40 lines):"
	tail -n 40 "$LAST_ERR" || true
	echo "---"
}

_t_sanitizer_report() {
	grep -Eq 'ERROR: (Address|Leak|Undefined|Memory)Sanitizer|runtime error:|SUMMARY: (Address|Leak|Undefined)Sanitizer' "$1"
}

# run_rc CMD...: like expect_rc but never fails on the exit status; it is
# left in $LAST_RC.
run_rc() {
	LAST_RC=0
	"$@" >"$LAST_OUT" 2>"$LAST_ERR" || LAST_RC=$?
	if _t_sanitizer_report "$LAST_ERR"; then
		_t_show_last "$@"
		fail "sanitizer report from: $*"
	fi
	return 0
}

expect_rc() {
	local want=$1
	shift
	LAST_RC=0
	"$@" >"$LAST_OUT" 2>"$LAST_ERR" || LAST_RC=$?
	if _t_sanitizer_report "$LAST_ERR"; then
		_t_show_last "$@"
		fail "sanitizer report from: $*"
	fi
	if [[ $LAST_RC != "$want" ]]; then
		_t_show_last "$@"
		fail "expected exit status $want, got $LAST_RC: $*"
	fi
}

expect_stderr_grep() {
	if ! grep -Eq -- "$1" "$LAST_ERR"; then
		echo "--- stderr:"
		tail -n 40 "$LAST_ERR"
		fail "stderr of the last command does not match /$1/"
	fi
}

expect_stdout_grep() {
	if ! grep -Eq -- "$1" "$LAST_OUT"; then
		echo "--- stdout:"
		tail -n 40 "$LAST_OUT"
		fail "stdout of the last command does not match /$1/"
	fi
}

now_s() {
	date +%s.%N
}

# Seconds between two now_s values, one decimal.
elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

repo_bytes() {
	du -sb "${1:-$CAIRN_REPOSITORY}" | cut -f1
}

is_json() {
	python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1"
}

if command -v openssl >/dev/null 2>&1 &&
	[[ $(head -c 16 /dev/zero | openssl enc -aes-128-ctr -pass pass:probe -nosalt -pbkdf2 -iter 1 2>/dev/null | wc -c) == 16 ]]; then
	T_HAVE_OPENSSL=1
else
	T_HAVE_OPENSSL=0
	echo "# note: openssl not usable: random data comes from /dev/urandom (not reproducible)"
fi

rand_bytes() {
	local n=$1 seed=${2:-0}
	if [[ $T_HAVE_OPENSSL == 1 ]]; then
		# AES-CTR keystream under a key derived from the seed.
		head -c "$n" /dev/zero | openssl enc -aes-128-ctr -pass "pass:cairn-it-$seed" -nosalt -pbkdf2 -iter 1
	else
		head -c "$n" /dev/urandom
	fi
}

# Deterministic text: numbered lines of words.
text_bytes() {
	local n=$1 seed=${2:-0}
	awk -v seed="$seed" 'BEGIN {
		srand(seed)
		split("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu wal checkpoint relation tuple vacuum", w, " ")
		n = ARGV[1] + 0; ARGV[1] = ""
		for (i = 1; n > 0; i++) {
			line = sprintf("%08d", i)
			k = 3 + int(rand() * 12)
			for (j = 0; j < k; j++)
				line = line " " w[1 + int(rand() * 32)]
			line = line "\n"
			if (length(line) > n)
				line = substr(line, 1, n)
			printf "%s", line
			n -= length(line)
		}
	}' "$n"
}

# make_tree DIR SIZE_MB [SEED]: about SIZE_MB MiB in
#   - a few large random files (together ~55%),
#   - medium random files of 64 KiB - 2 MiB (~30%),
#   - many small random and text files of 0 - 16 KiB in nested folders,
#   - text files (~10%), an empty file, an empty folder, a name with spaces,
#     an executable, a private file, a relative and a dangling symlink.
make_tree() {
	local dir=$1 mb=$2 seed=${3:-1}
	local total=$((mb * 1024 * 1024))
	local s=$seed i n sz
	# A small LCG so that sizes and layout are reproducible.
	_lcg() { s=$(((s * 1103515245 + 12345) % 2147483648)); }
	mkdir -p "$dir"/large "$dir"/medium "$dir"/small "$dir"/text "$dir/empty dir" "$dir"/deep/a/b/c/d/e
	local large=$((total * 55 / 100)) medium=$((total * 30 / 100)) text=$((total * 10 / 100))
	# large: 3 files of unequal size
	local l1=$((large / 2)) l2=$((large * 3 / 10))
	local l3=$((large - l1 - l2))
	rand_bytes "$l1" "$seed-l1" >"$dir/large/big-1.bin"
	rand_bytes "$l2" "$seed-l2" >"$dir/large/big-2.bin"
	rand_bytes "$l3" "$seed-l3" >"$dir/large/big-3.bin"
	# medium
	i=0
	while ((medium > 0)); do
		_lcg
		sz=$((65536 + s % (2 * 1024 * 1024 - 65536)))
		((sz > medium)) && sz=$medium
		rand_bytes "$sz" "$seed-m$i" >"$dir/medium/m-$i.bin"
		medium=$((medium - sz))
		i=$((i + 1))
	done
	# text
	i=0
	while ((text > 0)); do
		_lcg
		sz=$((4096 + s % (512 * 1024)))
		((sz > text)) && sz=$text
		text_bytes "$sz" "$((seed * 1000 + i))" >"$dir/text/doc-$i.txt"
		text=$((text - sz))
		i=$((i + 1))
	done
	# small: 200 files spread over nested folders (about 1.6 MiB)
	for ((i = 0; i < 200; i++)); do
		_lcg
		local sub="$dir/small/g$((i % 7))/h$((i % 3))"
		mkdir -p "$sub"
		sz=$((s % 16384))
		if ((i % 4 == 0)); then
			text_bytes "$sz" "$((seed * 7 + i))" >"$sub/s-$i.txt"
		else
			rand_bytes "$sz" "$seed-s$i" >"$sub/s-$i.bin"
		fi
	done
	: >"$dir/empty-file"
	printf 'deep file\n' >"$dir/deep/a/b/c/d/e/leaf.txt"
	printf 'name with spaces\n' >"$dir/text/with space and ünïcode.txt"
	printf '#!/bin/sh\necho hello\n' >"$dir/run.sh"
	chmod 755 "$dir/run.sh"
	printf 'secret\n' >"$dir/private.txt"
	chmod 600 "$dir/private.txt"
	ln -s text/doc-0.txt "$dir/link-to-doc"
	ln -s ../nowhere/missing "$dir/small/dangling-link"
	unset -f _lcg
}

# tree_listing DIR: for every entry below DIR, sorted by path: type, mode,
# path and symlink target; then the sha256 of every file's content.
tree_listing() {
	(
		cd "$1"
		find . -mindepth 1 -printf '%y %m %P -> %l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	)
}

# tree_digest DIR: one sha256 over tree_listing DIR.
tree_digest() {
	tree_listing "$1" | sha256sum | cut -c1-64
}

# expect_same_tree A B WHAT: fails (showing the first differences) unless
# the two trees have the same digest.
expect_same_tree() {
	local a=$1 b=$2 what=$3
	if [[ $(tree_digest "$a") != "$(tree_digest "$b")" ]]; then
		diff <(tree_listing "$a") <(tree_listing "$b") | head -n 20 || true
		fail "$what: $b differs from $a"
	fi
	ok "$what"
}
