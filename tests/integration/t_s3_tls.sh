#!/usr/bin/env bash
# t_s3_tls.sh — S3 over TLS with a private CA.  The test makes a CA and a
# server certificate (tests/s3/tls-certs.sh, openssl) and starts a second
# radosgw on the fixture's Ceph cluster (CTest fixture "s3") with a TLS-only
# frontend on 127.0.0.1.  It shows:
#   - without --s3-ca-file cairn refuses the server: exit 1, one line that
#     names the TLS certificate and --s3-ca-file, at once (no retries), and
#     nothing is written;
#   - with --s3-ca-file (or s3-ca-file in the --config file) everything
#     works: init, backup, restore identical, check --read-data;
#   - the right CA does not excuse a wrong name (https://localhost for a
#     certificate of 127.0.0.1), another CA is refused, a file that is no
#     certificate is named;
#   - there is no switch that turns verification off.
source "${CAIRN_TESTLIB:-$(dirname "$0")/lib.sh}"
source "$(dirname "$0")/../s3/s3lib.sh"
: "${CEPH_CONF:?the S3 env file names no CEPH_CONF}"
command -v radosgw >/dev/null || fail "no radosgw (tests/s3/start-ceph.sh installs it)"

CERTS=$SCRATCH/certs
bash "$(dirname "$0")/../s3/tls-certs.sh" "$CERTS" || fail "tests/s3/tls-certs.sh failed"
ok "a private CA and a server certificate for 127.0.0.1 (openssl)"

# ---- radosgw with a TLS frontend -----------------------------------------
port=
for _ in $(seq 1 100); do
	p=$((20000 + RANDOM % 30000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[[ -n $port ]] || fail "no free port"
mkdir -p "$SCRATCH/rgw-tls"
TLS_PID=
stop_tls_rgw() {
	[[ -n $TLS_PID ]] || return 0
	kill -TERM "$TLS_PID" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$TLS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$TLS_PID" 2>/dev/null || true
	wait "$TLS_PID" 2>/dev/null || true
	TLS_PID=
}
trap '_rc=$?; trap - ERR; set +e; stop_tls_rgw; (exit $_rc); _t_cleanup' EXIT
radosgw -c "$CEPH_CONF" -n "client.rgw.tls$$" -f --rgw-data="$SCRATCH/rgw-tls" \
	--rgw-frontends="beast ssl_endpoint=127.0.0.1:$port ssl_certificate=$CERTS/server.pem ssl_private_key=$CERTS/server.key tcp_nodelay=1" \
	</dev/null >"$SCRATCH/rgw-tls.out" 2>&1 9>&- &
TLS_PID=$!
TLS=https://127.0.0.1:$port
code=000
for _ in $(seq 1 300); do
	kill -0 "$TLS_PID" 2>/dev/null || fail "radosgw with TLS died: $(tail -n 20 "$SCRATCH/rgw-tls.out")"
	code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CERTS/ca.pem" "$TLS/") || true
	[[ $code == 200 ]] && break
	sleep 0.1
done
[[ $code == 200 ]] || fail "radosgw with TLS does not answer on $TLS (HTTP $code)"
ok "radosgw serves TLS on $TLS (curl --cacert ca.pem: HTTP 200)"

export CAIRN_S3_ENDPOINT=$TLS
PFX=$(s3_repo_prefix)

# ---- no CA given: refused, clearly, at once --------------------------------
T0=$(now_s)
expect_rc 1 cairn init
took=$(elapsed "$T0" "$(now_s)")
[[ $(wc -l <"$LAST_ERR") == 1 ]] || fail "expected one line on stderr, got: $(cat "$LAST_ERR")"
expect_stderr_grep '^cairn: error: .*TLS certificate of https://127\.0\.0\.1:[0-9]+ is not trusted'
expect_stderr_grep -- '--s3-ca-file'
awk -v t="$took" 'BEGIN { exit !(t < 5) }' || fail "refusing an untrusted certificate took $took s (retried?)"
[[ -z $(s3_keys "$PFX/") ]] || fail "init wrote objects through an untrusted connection"
ok "no --s3-ca-file: exit 1 in $took s, one line: $(cat "$LAST_ERR")"
expect_rc 1 cairn snapshots
expect_stderr_grep 'TLS certificate .* is not trusted'
ok "the same for any command (snapshots)"

# ---- the CA given: everything works ----------------------------------------
SRC=$SCRATCH/src
make_tree "$SRC" 8
expect_rc 0 cairn --s3-ca-file "$CERTS/ca.pem" init
expect_rc 0 cairn --s3-ca-file "$CERTS/ca.pem" backup "$SRC"
expect_stdout_grep '^snapshot [0-9a-f]{64} saved'
expect_rc 0 cairn --s3-ca-file "$CERTS/ca.pem" restore latest --target "$SCRATCH/r"
expect_same_tree "$SRC" "$SCRATCH/r$SRC" "--s3-ca-file: init, backup and restore over TLS, identical"
expect_rc 0 cairn --s3-ca-file "$CERTS/ca.pem" check --read-data
expect_stdout_grep 'no errors'
ok "check --read-data over TLS passes"
[[ -n $(s3_keys "$PFX/packs/") ]] || fail "no packs on the server"

printf 'repo = %s\ns3-endpoint = %s\ns3-ca-file = %s\n' "$CAIRN_REPOSITORY" "$TLS" "$CERTS/ca.pem" >"$SCRATCH/c.conf"
expect_rc 0 env -u CAIRN_REPOSITORY -u CAIRN_S3_ENDPOINT "$CAIRN_BIN" --config "$SCRATCH/c.conf" snapshots
expect_stdout_grep '^1 snapshot\(s\)$'
ok "s3-ca-file in the --config file works too"

# ---- the CA does not excuse the rest ---------------------------------------
expect_rc 1 cairn --s3-endpoint "https://localhost:$port" --s3-ca-file "$CERTS/ca.pem" snapshots
[[ $(wc -l <"$LAST_ERR") == 1 ]] || fail "expected one line on stderr, got: $(cat "$LAST_ERR")"
expect_stderr_grep 'TLS certificate of https://localhost:[0-9]+ is not trusted'
expect_stderr_grep 'not issued for that host name'
ok "the right CA but the wrong name (localhost for a certificate of 127.0.0.1) is refused: $(cat "$LAST_ERR")"
expect_rc 1 cairn --s3-ca-file "$CERTS/other-ca.pem" snapshots
expect_stderr_grep "not signed by the CA in --s3-ca-file $CERTS/other-ca.pem"
ok "another CA is refused, and the message names the file given"
expect_rc 1 cairn --s3-ca-file "$CERTS/not-pem.pem" snapshots
expect_stderr_grep "s3-ca-file $CERTS/not-pem.pem holds no usable CA certificate"
ok "a --s3-ca-file that is no certificate is named"
expect_rc 1 cairn --s3-ca-file "$SCRATCH/missing.pem" snapshots
expect_stderr_grep "s3-ca-file $SCRATCH/missing.pem"
ok "a missing --s3-ca-file is named"

# ---- there is no way around it ---------------------------------------------
expect_rc 0 cairn --help
if grep -Eqi 'insecure|no-verify|skip-verify|verify-peer' "$LAST_OUT"; then
	fail "the help names a switch that skips verification: $(grep -Ei 'insecure|verify' "$LAST_OUT")"
fi
expect_rc 2 cairn --s3-insecure snapshots
expect_rc 2 cairn --insecure snapshots
ok "no 'insecure' switch: the help names none, --insecure and --s3-insecure are usage errors"

finish
