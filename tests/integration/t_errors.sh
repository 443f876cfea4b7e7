#!/usr/bin/env bash
# t_errors.sh — opening a repository the wrong way: wrong passphrase (and
# nothing changes), a location that is not a repository or does not exist,
# no passphrase at all; and the other ways of giving one (--password-file,
# --password-command, their environment variables).
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"

SRC=$SCRATCH/src
make_tree "$SRC" 4
expect_rc 0 cairn init
expect_rc 0 cairn backup "$SRC"
ok "set up: a repository with one snapshot"

listing() {
	find "$1" -printf '%P %y %s %m\n' | LC_ALL=C sort
}
repo_digest() {
	tree_digest "$CAIRN_REPOSITORY"
}

# ---- wrong passphrase ----------------------------------------------------
before_list=$(listing "$CAIRN_REPOSITORY")
before_digest=$(repo_digest)
for cmd in "snapshots" "ls latest" "check" "stats" "key list" "key add" "backup $SRC" \
	"restore latest --target $SCRATCH/never" "cat latest $SRC/empty-file" "backup --stdin --stdin-name x"; do
	# shellcheck disable=SC2086
	expect_rc 1 env CAIRN_PASSWORD=not-the-pass "$CAIRN_BIN" $cmd </dev/null
	expect_stderr_grep 'wrong passphrase'
	[[ ! -s $LAST_OUT ]] || fail "'$cmd' with a wrong passphrase printed on stdout: $(head -3 "$LAST_OUT")"
done
[[ ! -e $SCRATCH/never ]] || fail "restore with a wrong passphrase created its target"
ok "wrong passphrase: exit 1 and 'wrong passphrase' for every command"
[[ $before_list == "$(listing "$CAIRN_REPOSITORY")" && $before_digest == "$(repo_digest)" ]] ||
	fail "the repository changed after commands with a wrong passphrase: $(diff <(echo "$before_list") <(listing "$CAIRN_REPOSITORY") | awk "NR <= 10")"
ok "the repository's files are unchanged after them"
expect_rc 1 env CAIRN_PASSWORD=not-the-pass "$CAIRN_BIN" snapshots
expect_stderr_grep '^hint: .*nothing was changed'
ok "the wrong-passphrase error carries a hint"

# A passphrase that is a prefix / extension of the right one is wrong too.
expect_rc 1 env CAIRN_PASSWORD=test-pas "$CAIRN_BIN" snapshots
expect_rc 1 env CAIRN_PASSWORD=test-pass- "$CAIRN_BIN" snapshots
expect_rc 1 env "CAIRN_PASSWORD=test-pass " "$CAIRN_BIN" snapshots
ok "near-miss passphrases (prefix, extension, trailing space) are refused"

# ---- not a repository ----------------------------------------------------
mkdir "$SCRATCH/empty"
expect_rc 1 cairn -r "$SCRATCH/empty" snapshots
expect_stderr_grep 'not a cairn repository'
expect_stderr_grep '^hint: '
[[ -z $(ls -A "$SCRATCH/empty") ]] || fail "opening an empty folder wrote into it: $(ls -A "$SCRATCH/empty")"
ok "an empty folder: exit 1, 'not a cairn repository', nothing written there"

expect_rc 1 cairn -r "$SCRATCH/missing/repo" snapshots
expect_stderr_grep 'does not exist|not a cairn repository'
[[ ! -e $SCRATCH/missing ]] || fail "opening a missing location created it"
ok "a missing folder: exit 1, 'does not exist', not created"

expect_rc 1 cairn -r "$SCRATCH/missing/repo" backup "$SRC"
[[ ! -e $SCRATCH/missing ]] || fail "backup to a missing location created it"
ok "backup to a missing location: exit 1, nothing created"

mkdir "$SCRATCH/notrepo"
echo "hello" >"$SCRATCH/notrepo/config"
expect_rc 1 cairn -r "$SCRATCH/notrepo" snapshots
expect_stderr_grep 'not a cairn repository'
ok "a folder with a foreign 'config' file: exit 1, 'not a cairn repository'"

echo "x" >"$SCRATCH/a-file"
run_rc cairn -r "$SCRATCH/a-file" snapshots
[[ $LAST_RC == 1 ]] || fail "a plain file as repository: exit $LAST_RC"
ok "a plain file as repository: exit 1 ($(head -1 "$LAST_ERR"))"

# --repo given through the environment and the option: the option wins
expect_rc 0 env CAIRN_REPOSITORY="$SCRATCH/empty" "$CAIRN_BIN" --repo "$CAIRN_REPOSITORY" snapshots
expect_stdout_grep '^1 snapshot\(s\)$'
ok "--repo overrides CAIRN_REPOSITORY"

expect_rc 2 env -u CAIRN_REPOSITORY "$CAIRN_BIN" snapshots
expect_stderr_grep 'no repository'
ok "no repository given at all: exit 2"

# ---- no passphrase at all ------------------------------------------------
run_rc env -u CAIRN_PASSWORD "$CAIRN_BIN" snapshots </dev/null
[[ $LAST_RC == 2 || $LAST_RC == 1 ]] || fail "no passphrase: exit $LAST_RC"
expect_stderr_grep 'no passphrase'
expect_stderr_grep 'password-file|CAIRN_PASSWORD'
ok "no passphrase and no terminal: exit $LAST_RC with a clear message"

run_rc env -u CAIRN_PASSWORD "$CAIRN_BIN" -r "$SCRATCH/new-repo" init </dev/null
[[ $LAST_RC == 2 || $LAST_RC == 1 ]] || fail "init without passphrase: exit $LAST_RC"
expect_stderr_grep 'no passphrase'
[[ ! -e $SCRATCH/new-repo/config ]] || fail "init without a passphrase created a repository"
ok "init without a passphrase: exit $LAST_RC, no repository created"

expect_rc 2 env CAIRN_PASSWORD= "$CAIRN_BIN" snapshots </dev/null
ok "an empty CAIRN_PASSWORD is not a passphrase: exit 2"

# ---- --password-file -----------------------------------------------------
printf 'test-pass\n' >"$SCRATCH/pw"
printf 'test-pass' >"$SCRATCH/pw-nonl"
printf 'test-pass\r\n' >"$SCRATCH/pw-crlf"
printf 'wrong\n' >"$SCRATCH/pw-wrong"
: >"$SCRATCH/pw-empty"
for f in pw pw-nonl pw-crlf; do
	expect_rc 0 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-file "$SCRATCH/$f" snapshots </dev/null
	expect_stdout_grep '^1 snapshot\(s\)$'
done
ok "--password-file works (with a newline, without, with CRLF)"

expect_rc 0 env -u CAIRN_PASSWORD CAIRN_PASSWORD_FILE="$SCRATCH/pw" "$CAIRN_BIN" snapshots </dev/null
ok "CAIRN_PASSWORD_FILE works"

expect_rc 0 env CAIRN_PASSWORD=wrong "$CAIRN_BIN" snapshots --password-file "$SCRATCH/pw"
ok "--password-file wins over CAIRN_PASSWORD (and may come after the command)"

expect_rc 1 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-file "$SCRATCH/pw-wrong" snapshots </dev/null
expect_stderr_grep 'wrong passphrase'
ok "--password-file with the wrong passphrase: exit 1"

expect_rc 1 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-file "$SCRATCH/no-such-file" snapshots </dev/null
expect_stderr_grep 'no-such-file'
ok "--password-file that does not exist: exit 1 naming it"

expect_rc 2 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-file "$SCRATCH/pw-empty" snapshots </dev/null
expect_stderr_grep 'empty'
ok "an empty --password-file: exit 2, 'empty'"

# ---- --password-command --------------------------------------------------
expect_rc 0 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-command "echo test-pass" snapshots </dev/null
expect_stdout_grep '^1 snapshot\(s\)$'
expect_rc 0 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-command "cat $SCRATCH/pw" backup "$SRC/text" </dev/null
ok "--password-command works"

expect_rc 0 env -u CAIRN_PASSWORD CAIRN_PASSWORD_COMMAND="printf test-pass" "$CAIRN_BIN" snapshots </dev/null
expect_stdout_grep '^2 snapshot\(s\)$'
ok "CAIRN_PASSWORD_COMMAND works"

expect_rc 1 env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-command "echo nope" snapshots </dev/null
expect_stderr_grep 'wrong passphrase'
ok "--password-command giving a wrong passphrase: exit 1"

run_rc env -u CAIRN_PASSWORD "$CAIRN_BIN" --password-command "exit 3" snapshots </dev/null
[[ $LAST_RC == 1 || $LAST_RC == 2 ]] || fail "a failing --password-command: exit $LAST_RC"
expect_stderr_grep 'password command'
ok "a failing --password-command: exit $LAST_RC naming the password command"

# ---- the repository is still fine -------------------------------------
expect_rc 0 cairn check --read-data
ok "check --read-data passes at the end"

finish
