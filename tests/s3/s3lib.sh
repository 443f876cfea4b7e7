# tests/s3/s3lib.sh — sourced by tests/integration/t_s3_*.sh after lib.sh.
#
# Reads the S3 server's settings from $CAIRN_S3_ENV_FILE (written by
# tests/s3/start-ceph.sh; CTest's fixture "s3" sets the variable), exports
# CAIRN_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and points
# CAIRN_REPOSITORY at a fresh prefix of the test bucket:
#   s3://$CAIRN_S3_BUCKET/$T_NAME-<random>
# Without CAIRN_S3_ENV_FILE the test is skipped (run it through CTest, or
# start a server by hand and set the variable); a missing file is a failure
# (the fixture did not start the server).
#
# Helpers, all talking to the server directly with curl --aws-sigv4 (the
# way a test may, where cairn would refuse: overwriting an object):
#   s3_req METHOD PATH [CURL ARGS]   PATH is "/BUCKET/KEY[?QUERY]", encoded;
#                                    prints the HTTP status, the body goes to
#                                    $S3_OUT; S3_BODY=FILE uploads FILE
#   s3_get KEY FILE                  the object KEY of the bucket into FILE
#   s3_put KEY FILE                  FILE as object KEY (overwrites)
#   s3_keys PREFIX                   "KEY SIZE" lines of the bucket's objects
#                                    under PREFIX (every listing page)
#   s3_repo_prefix [URL]             the key prefix of URL ($CAIRN_REPOSITORY)
#   s3_write_conf FILE REPO KEYFILE ENDPOINT CACHE
#                                    a --config file (mode 644) for one host
#   s3_pg_recover NAME DIR RUNNER [RESTORE ARGS...]
#                                    RUNNER restore --target DIR ARGS (RUNNER:
#                                    a command or function running cairn with
#                                    its config), then start DIR as cluster
#                                    NAME (pglib.sh; archive_mode off) and
#                                    wait until it is promoted
#   rgw_pid                          the radosgw process id (Ceph only)
#   S3_DIALECT                       ceph or swift (CAIRN_S3_DIALECT of the
#                                    env file; ceph when it names none)

if [[ -z ${CAIRN_S3_ENV_FILE:-} ]]; then
	skip_all "no S3 server: CAIRN_S3_ENV_FILE is not set (run through CTest, which starts Ceph radosgw with tests/s3/start-ceph.sh)"
fi
[[ -r $CAIRN_S3_ENV_FILE ]] || fail "the S3 fixture wrote no $CAIRN_S3_ENV_FILE: did tests/s3/start-ceph.sh fail?"
while IFS='=' read -r _k _v; do
	[[ $_k =~ ^[A-Z0-9_]+$ ]] || continue
	printf -v "$_k" '%s' "$_v"
	export "${_k?}"
done <"$CAIRN_S3_ENV_FILE"
unset _k _v
: "${CAIRN_S3_ENDPOINT:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}" "${CAIRN_S3_BUCKET:?}"
unset AWS_SESSION_TOKEN CAIRN_S3_TIMEOUT_SECONDS CAIRN_S3_RETRIES CAIRN_S3_LIST_PAGE
S3_REGION=${CAIRN_S3_REGION:-us-east-1}
S3_ENDPOINT=$CAIRN_S3_ENDPOINT # (a test may unset CAIRN_S3_ENDPOINT)
S3_DIALECT=${CAIRN_S3_DIALECT:-ceph}
export CAIRN_REPOSITORY="s3://$CAIRN_S3_BUCKET/$T_NAME-$$-$RANDOM"
S3_OUT=$SCRATCH/.s3.out
# The credentials for curl as a netrc file: Swift's access key
# ("account:user") has a colon, where --user would split it.
_S3_NETRC=$SCRATCH/.s3.netrc
_s3_host=${S3_ENDPOINT#*://}
_s3_host=${_s3_host%%/*}
(umask 077 && printf 'machine %s\nlogin %s\npassword %s\n' "${_s3_host%:*}" \
	"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$_S3_NETRC")
unset _s3_host
S3_EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
echo "# S3: $CAIRN_S3_ENDPOINT, repository $CAIRN_REPOSITORY"

s3_repo_prefix() {
	local url=${1:-$CAIRN_REPOSITORY}
	local p=${url#s3://*/}
	echo "${p%/}"
}

rgw_pid() {
	echo "$CEPH_RGW_PID"
}

s3_req() {
	local m=$1 p=$2
	shift 2
	local sha=$S3_EMPTY_SHA
	local up=()
	if [[ -n ${S3_BODY:-} ]]; then
		sha=$(sha256sum "$S3_BODY" | cut -c1-64)
		up=(-T "$S3_BODY")
	fi
	curl -sS -o "$S3_OUT" -w '%{http_code}' -X "$m" \
		--netrc-file "$_S3_NETRC" --aws-sigv4 "aws:amz:$S3_REGION:s3" \
		-H "x-amz-content-sha256: $sha" ${up[@]+"${up[@]}"} "$@" "$S3_ENDPOINT$p"
}

s3_get() {
	local code
	code=$(s3_req GET "/$CAIRN_S3_BUCKET/$1")
	[[ $code == 200 ]] || { echo "s3_get $1: HTTP $code: $(head -c 300 "$S3_OUT")" >&2; return 1; }
	cp "$S3_OUT" "$2"
}

s3_put() {
	local code
	code=$(S3_BODY=$2 s3_req PUT "/$CAIRN_S3_BUCKET/$1")
	[[ $code == 200 ]] || { echo "s3_put $1: HTTP $code: $(head -c 300 "$S3_OUT")" >&2; return 1; }
}

_s3_enc() {
	python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$1"
}

s3_keys() {
	local prefix=$1 token="" q code
	while :; do
		# parameters sorted by name (curl 7.88 signs the query as written)
		q="list-type=2&prefix=$(_s3_enc "$prefix")"
		[[ -z $token ]] || q="continuation-token=$(_s3_enc "$token")&$q"
		code=$(s3_req GET "/$CAIRN_S3_BUCKET?$q")
		[[ $code == 200 ]] || { echo "s3_keys: HTTP $code: $(head -c 300 "$S3_OUT")" >&2; return 1; }
		# "KEY SIZE" lines on stdout; the continuation token into a file
		python3 - "$S3_OUT" "$S3_OUT.token" <<'EOP'
import html, re, sys
x = open(sys.argv[1]).read()
for c in re.findall(r"<Contents>(.*?)</Contents>", x, re.S):
    k = html.unescape(re.search(r"<Key>(.*?)</Key>", c, re.S).group(1))
    print(k, re.search(r"<Size>(\d+)</Size>", c).group(1))
m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", x, re.S)
t = re.search(r"<IsTruncated>true</IsTruncated>", x)
open(sys.argv[2], "w").write(html.unescape(m.group(1)) if (m and t) else "")
EOP
		token=$(cat "$S3_OUT.token")
		[[ -n $token ]] || break
	done
}

s3_write_conf() {
	cat >"$1" <<EOC
repo = $2
key-file = $3
cache-dir = $5
s3-endpoint = $4
s3-region = $S3_REGION
EOC
	chmod 644 "$1"
}

s3_pg_recover() {
	local name=$1 dir=$2 runner=$3
	shift 3
	expect_rc 0 "$runner" restore --target "$dir" "$@"
	pg_attach "$name" "$dir"
	pg_conf "$name" "archive_mode = off"
	pg_start "$name"
	pg_wait_promoted "$name" 90 || fail "$name: still in recovery after 90 s"
}
