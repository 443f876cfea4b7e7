#!/usr/bin/env bash
# tests/s3/start-swift.sh — a throwaway OpenStack Swift (Debian 12's 2.30
# packages) with the s3api middleware, the second S3 dialect of the tests:
# proxy, object, container and account servers (one process each,
# workers = 0), tempauth, and a memcached for it, all on 127.0.0.1, data in
# SCRATCH_DIR.  Swift differs from Ceph RGW where cairn must cope:
# conditional PUTs (If-None-Match: *) get 501, re-creating one's own bucket
# gets 409 BucketAlreadyOwnedByYou, and the access key ("account:user")
# contains a colon.
#
# Usage: tests/s3/start-swift.sh SCRATCH_DIR [PORT]
#   SCRATCH_DIR  config, rings, objects, logs and pids; wiped first.  Must be
#                on a file system with user xattrs (ext4, xfs; not tmpfs
#                before Linux 6.6): the object server keeps metadata there.
#   PORT         the S3 port on 127.0.0.1; default: a free one.  PORT+1..+3
#                are the object, container and account servers, PORT+4
#                memcached.
#
# Installs swift swift-proxy swift-object swift-container swift-account
# python3-swift memcached (with apt-get --no-install-recommends) when they
# are missing and we are root; otherwise fails saying what to install.
# Ready in about 4-7 s once installed (about 25 s with the install).
#
# Writes SCRATCH_DIR/env (KEY=VALUE lines, the same names as
# start-ceph.sh's, so tests/s3/s3lib.sh reads either):
#   CAIRN_S3_ENDPOINT      http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID      test:tester (with a colon)
#   AWS_SECRET_ACCESS_KEY  testing
#   CAIRN_S3_REGION        us-east-1
#   CAIRN_S3_BUCKET        a bucket name for the tests (not created here)
#   CAIRN_S3_VHOST         s3.localhost (storage_domain)
#   CAIRN_S3_DIALECT       swift
#   SWIFT_OBJECT_PID       the object server (a fault test may stop it)
# Stop with tests/s3/stop-swift.sh SCRATCH_DIR [--wipe].
#
# Why the configuration looks the way it does:
#   - Swift 2.30 servers read swift.conf only from /etc/swift/swift.conf
#     (swift_dir is for the rings): a wrapper (bin/swift-server.py) points
#     swift.common.utils.SWIFT_CONF_FILE at the scratch copy, so /etc is
#     never touched.
#   - max_meta_value_length 2048: at Swift's default 256 larger user
#     metadata gives a 500 from s3api.
#   - the pipeline: s3api before tempauth, tempauth needs the cache
#     middleware (memcached), slo is needed for multipart uploads.
#   - the rings are built in one Python call (nine swift-ring-builder runs
#     take about 6 s).
#   - /usr/bin/python3 explicitly: a python3 earlier on PATH may lack swift.
set -euo pipefail

DIR=${1:?usage: start-swift.sh SCRATCH_DIR [PORT]}
PORT=${2:-}
ACCOUNT=test
USERNAME=tester
SECRET=testing
REGION=us-east-1
BUCKET=cairn-test
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/srvlib.sh"
RUNAS=$(id -un)
PY=/usr/bin/python3
t0=$(date +%s.%N)

say() { echo "start-swift: $*" >&2; }

# ---------------------------------------------------------------- install
# (--no-install-recommends: 66 packages instead of 159)
srv_install start-swift swift swift-proxy swift-object swift-container swift-account \
	python3-swift memcached curl || exit 1

# ---------------------------------------------------------------- layout
ports_free() { local i; for i in 0 1 2 3 4; do srv_port_used $(($1 + i)) && return 1; done; return 0; }
if [ -z "$PORT" ]; then
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		if ports_free "$p"; then PORT=$p; break; fi
	done
	[ -n "$PORT" ] || { say "no 5 free ports found"; exit 1; }
fi
case "$PORT" in *[!0-9]*) say "PORT must be a number"; exit 2 ;; esac
OBJ_PORT=$((PORT + 1)) CONT_PORT=$((PORT + 2)) ACC_PORT=$((PORT + 3)) MC_PORT=$((PORT + 4))

if [ -f "$DIR/run/pids" ]; then
	say "stopping the servers a previous run left in $DIR"
	"$HERE/stop-swift.sh" "$DIR" >&2 || true
fi
# A taken port: Swift would retry the bind for 30 s, or a foreign server
# would answer the readiness probe.
ports_free "$PORT" || { say "a port of $PORT..$((PORT + 4)) on 127.0.0.1 is in use"; exit 2; }
rm -rf "$DIR"
mkdir -p "$DIR"/{etc,srv/d1,log,run,cache,bin}
DIR=$(cd "$DIR" && pwd)

$PY - "$DIR/srv/d1" <<'EOF'
import os, sys, tempfile
fd, p = tempfile.mkstemp(dir=sys.argv[1])
try:
    for i in range(4):  # Swift writes its metadata as 254-byte xattr chunks
        os.setxattr(p, "user.swift.test%d" % i, b"x" * 254)
except OSError as e:
    sys.exit("start-swift: the file system under %s lacks user xattrs (%s): "
             "use a folder on ext4 or xfs" % (sys.argv[1], e))
finally:
    os.close(fd)
    os.unlink(p)
EOF

cat >"$DIR/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = s3test-suffix
swift_hash_path_prefix = s3test-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
# Swift's default max_meta_value_length is 256 bytes; s3api turns the
# resulting 400 into a 500 InternalError.  AWS allows 2 KiB of user metadata.
# (On ext4 all xattrs of a file must fit in ~3.5 KiB, so don't go higher.)
max_meta_value_length = 2048
max_meta_overall_size = 2560
EOF

common_default() { # $1 port $2 name
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $RUNAS
swift_dir = $DIR/etc
devices = $DIR/srv
mount_check = false
log_name = $2
log_level = INFO
recon_cache_path = $DIR/cache
EOF
}

{ common_default "$OBJ_PORT" object-server; cat <<EOF
[pipeline:main]
pipeline = object-server

[app:object-server]
use = egg:swift#object
# keep ETag/metadata semantics; no fsync games
[object-replicator]
[object-reconstructor]
[object-updater]
[object-auditor]
[object-relinker]
EOF
} >"$DIR/etc/object-server.conf"

{ common_default "$CONT_PORT" container-server; cat <<EOF
[pipeline:main]
pipeline = container-server

[app:container-server]
use = egg:swift#container
allow_versions = true
[container-replicator]
[container-updater]
[container-auditor]
[container-sync]
[container-sharder]
EOF
} >"$DIR/etc/container-server.conf"

{ common_default "$ACC_PORT" account-server; cat <<EOF
[pipeline:main]
pipeline = account-server

[app:account-server]
use = egg:swift#account
[account-replicator]
[account-auditor]
[account-reaper]
EOF
} >"$DIR/etc/account-server.conf"

cat >"$DIR/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
workers = 0
user = $RUNAS
swift_dir = $DIR/etc
log_name = proxy-server
log_level = INFO

[pipeline:main]
# order follows Swift's SAIO sample: s3api before tempauth; slo needed for
# multipart, copy for PUT-copy, versioned_writes+symlink for S3 versioning
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
allow_account_management = true
account_autocreate = true
# short timeouts so fault tests (killed backend) fail fast
conn_timeout = 2
node_timeout = 10
recoverable_node_timeout = 10

[filter:s3api]
use = egg:swift#s3api
location = $REGION
# path-style always works; virtual-host style works when Host is
# <bucket>.s3.localhost:PORT (needs a resolver entry or curl --resolve)
storage_domain = s3.localhost
s3_acl = false
dns_compliant_bucket_names = true
allow_multipart_uploads = true
# S3 default 5 MiB minimum part size (except last part)
min_segment_size = 5242880
# allow clock skew between client and server of 15 min like AWS
allowable_clock_skew = 900

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${USERNAME} = $SECRET .admin

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC_PORT

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true

[filter:symlink]
use = egg:swift#symlink
EOF

# ---------------------------------------------------------------- rings
# part_power 8, 1 replica, min_part_hours 1, one device per ring.  Built in
# one Python process with Swift's RingBuilder API: the equivalent nine
# swift-ring-builder CLI calls (create/add/rebalance x3) take ~6 s here.
# (/usr/bin/python3 explicitly: a pyenv python3 on PATH lacks the swift module)
$PY - "$DIR/etc" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" <<'PY'
import os, sys
from swift.common.ring import RingBuilder
d = sys.argv[1]
for name, port in zip(('object', 'container', 'account'), sys.argv[2:5]):
    b = RingBuilder(8, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1',
               'port': int(port), 'replication_ip': '127.0.0.1',
               'replication_port': int(port), 'device': 'd1', 'weight': 1,
               'meta': ''})
    b.rebalance()
    b.get_ring().save(os.path.join(d, name + '.ring.gz'))
    b.save(os.path.join(d, name + '.builder'))
PY

# ---------------------------------------------------------------- start
: >"$DIR/run/pids"
started_ok=0
on_exit() {
	[ "$started_ok" = 1 ] && return
	say "start failed; stopping what was started (logs in $DIR/log)"
	"$HERE/stop-swift.sh" "$DIR" >&2 || true
}
trap on_exit EXIT
trap 'exit 1' INT TERM
# start_bg NAME CMD...: in its own session, recorded as "pid name starttime"
# (stop-swift.sh checks the start time so that a reused pid is left alone).
start_bg() {
	local name=$1
	shift
	setsid "$@" >"$DIR/log/$name.log" 2>&1 </dev/null &
	echo "$! $name $(sed 's/.*) //' "/proc/$!/stat" | cut -d' ' -f20)" >>"$DIR/run/pids"
}
cat >"$DIR/bin/swift-server.py" <<'EOF'
import runpy, sys
import swift.common.utils as u
u.SWIFT_CONF_FILE = sys.argv[1]
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
EOF
SRV="$PY $DIR/bin/swift-server.py $DIR/etc/swift.conf"
start_bg memcached memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 64 -u "$RUNAS"
start_bg account $SRV /usr/bin/swift-account-server "$DIR/etc/account-server.conf" -v
start_bg container $SRV /usr/bin/swift-container-server "$DIR/etc/container-server.conf" -v
start_bg object $SRV /usr/bin/swift-object-server "$DIR/etc/object-server.conf" -v
start_bg proxy $SRV /usr/bin/swift-proxy-server "$DIR/etc/proxy-server.conf" -v

# the access key has a colon: curl's --user would split it there
printf 'machine 127.0.0.1\nlogin %s\npassword %s\n' "$ACCOUNT:$USERNAME" "$SECRET" >"$DIR/netrc"
chmod 600 "$DIR/netrc"

# ---------------------------------------------------------------- wait
ready=0
code=000
for _ in $(seq 1 600); do
	while read -r pid name _; do
		kill -0 "$pid" 2>/dev/null || {
			say "$name (pid $pid) died:"
			tail -n 30 "$DIR/log/$name.log" >&2
			exit 1
		}
	done <"$DIR/run/pids"
	# Ready when a signed ListBuckets answers.  curl 7.88 does not send
	# x-amz-content-sha256 itself, and s3api requires it.
	code=$(curl -s -o "$DIR/run/probe" -w '%{http_code}' --netrc-file "$DIR/netrc" \
		--aws-sigv4 "aws:amz:$REGION:s3" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"http://127.0.0.1:$PORT/") || true
	if [ "$code" = 200 ] && grep -q ListAllMyBucketsResult "$DIR/run/probe"; then
		ready=1
		break
	fi
	sleep 0.1
done
[ $ready = 1 ] || { say "no signed ListBuckets answer on port $PORT (HTTP $code); logs in $DIR/log"; exit 1; }

obj_pid=$(awk '$2 == "object" { print $1 }' "$DIR/run/pids")
cat >"$DIR/env.tmp" <<EOF
CAIRN_S3_ENDPOINT=http://127.0.0.1:$PORT
AWS_ACCESS_KEY_ID=$ACCOUNT:$USERNAME
AWS_SECRET_ACCESS_KEY=$SECRET
CAIRN_S3_REGION=$REGION
CAIRN_S3_BUCKET=$BUCKET
CAIRN_S3_VHOST=s3.localhost
CAIRN_S3_DIALECT=swift
SWIFT_OBJECT_PID=$obj_pid
EOF
mv "$DIR/env.tmp" "$DIR/env"
started_ok=1
cat "$DIR/env"
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "start-swift: ready in %.1f s\n", b - a }' >&2
