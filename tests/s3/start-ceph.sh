#!/usr/bin/env bash
# tests/s3/start-ceph.sh — a throwaway single-node Ceph (Debian 12's 16.2
# packages) with radosgw as the S3 server of the S3 tests: one mon, one osd
# on memstore (objects live in the osd's memory), one radosgw, everything on
# 127.0.0.1, no mgr.  Cluster-internal auth is off; S3 requests are still
# checked for real SigV4 signatures, payload hashes and Content-MD5.
#
# Usage: tests/s3/start-ceph.sh SCRATCH_DIR [PORT]
#   SCRATCH_DIR  config, mon store, osd, logs and pids; wiped first (after
#                stopping a cluster a previous run left there)
#   PORT         the S3 port on 127.0.0.1; default: a free one.  The mon
#                uses PORT+1; the osd takes ports from 6800-7300.
#
# Installs ceph-mon ceph-osd radosgw (and the tools below) with apt-get when
# they are missing and we are root; otherwise fails saying what to install.
# Ready in about 2-6 s once installed (about 30 s with the install).
#
# Writes SCRATCH_DIR/env (KEY=VALUE lines, to source or to parse):
#   CAIRN_S3_ENDPOINT      http://127.0.0.1:PORT
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
#   CAIRN_S3_REGION        us-east-1
#   CAIRN_S3_BUCKET        a bucket name for the tests (not created here)
#   CAIRN_S3_VHOST         the virtual-host domain (s3.localhost: a
#                          bucket is addressed as BUCKET.s3.localhost:PORT)
#   CEPH_CONF              for `ceph -c` and `radosgw-admin -c`
#   CEPH_RGW_PID           the radosgw process (the fault test stops it)
#   CEPH_RGW_ASOK          radosgw's admin socket (perf counters)
# Stop with tests/s3/stop-ceph.sh SCRATCH_DIR [--wipe].
#
# Why the configuration looks the way it does (each line was needed):
#   - `ms mon client mode = crc`: radosgw defaults to "secure", which needs
#     cephx; with auth off it would loop on "get_initial_auth_request
#     returned -13" forever.
#   - `public addr` / `cluster addr` = 127.0.0.1: the osd's cluster address
#     would bind 0.0.0.0 otherwise.  msgr2 only, no IPv6.
#   - `paxos propose interval = 0.05`: radosgw's first start makes about 15
#     osdmap changes (pools, application tags); at the default 1 s each the
#     bring-up takes 13 s instead of 2.
#   - pools of size 1 need `mon allow pool size one`; the mon stops when its
#     disk has less than 5 % free unless `mon data avail crit` is lowered.
#   - `tcp_nodelay=1` on the beast frontend: without it radosgw writes an
#     answer's headers and body in two segments, Nagle holds the second
#     until the client's delayed ACK, and every small GET takes 40 ms.
#   - daemons are stopped one at a time (rgw, osd, mon): TERM to rgw and
#     osd together makes rgw hang until KILL.
set -euo pipefail

DIR=${1:?usage: start-ceph.sh SCRATCH_DIR [PORT]}
PORT=${2:-}
AK=TESTACCESSKEY0000001
SK=testsecretkey0000000000000000000000000001
REGION=us-east-1
BUCKET=cairn-test
VHOST=s3.localhost
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/srvlib.sh"
t0=$(date +%s.%N)

say() { echo "start-ceph: $*" >&2; }

# ---------------------------------------------------------------- install
# (ceph's recommends would pull in far more)
srv_install start-ceph ceph-mon ceph-osd radosgw ceph-common uuid-runtime curl || exit 1

# ---------------------------------------------------------------- layout
port_used() { srv_port_used "$1"; }
if [ -z "$PORT" ]; then
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		if ! port_used "$p" && ! port_used $((p + 1)); then PORT=$p; break; fi
	done
	[ -n "$PORT" ] || { say "no free port pair found"; exit 1; }
fi
case "$PORT" in *[!0-9]*) say "PORT must be a number"; exit 2 ;; esac
MON_PORT=$((PORT + 1))

# A cluster an earlier run left behind (killed test run): stop it first.
if [ -f "$DIR/run/pids" ]; then
	say "stopping the cluster a previous run left in $DIR"
	"$HERE/stop-ceph.sh" "$DIR" >&2 || true
fi
for p in $PORT $MON_PORT; do
	if port_used "$p"; then say "port 127.0.0.1:$p is already in use"; exit 2; fi
done
rm -rf "$DIR"
mkdir -p "$DIR"/{mon,osd/ceph-0,log,run,rgw}
DIR=$(cd "$DIR" && pwd)
FSID=$(uuidgen)
CONF=$DIR/ceph.conf

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms bind ipv6 = false
ms bind msgr1 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
paxos propose interval = 0.05

[mon]
mon data = $DIR/mon/\$cluster-\$id
mon cluster log file = $DIR/log/cluster.log

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $((4 * 1024 * 1024 * 1024))

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw dns name = $VHOST
rgw thread pool size = 64
EOF

: >"$DIR/run/pids"
started_ok=0
on_exit() {
	[ "$started_ok" = 1 ] && return
	say "start failed; stopping what was started (logs in $DIR/log)"
	"$HERE/stop-ceph.sh" "$DIR" >&2 || true
}
trap on_exit EXIT
trap 'exit 1' INT TERM
# start_bg NAME CMD...: in its own session, recorded as "pid name starttime"
# (stop-ceph.sh checks the start time so that a reused pid is left alone).
start_bg() {
	local name=$1
	shift
	setsid "$@" >"$DIR/log/$name.out" 2>&1 </dev/null &
	echo "$! $name $(sed 's/.*) //' "/proc/$!/stat" | cut -d' ' -f20)" >>"$DIR/run/pids"
}
alive() {
	local pid name
	while read -r pid name _; do
		kill -0 "$pid" 2>/dev/null || {
			say "$name (pid $pid) died:"
			tail -n 20 "$DIR/log/$name.out" >&2
			return 1
		}
	done <"$DIR/run/pids"
}
CEPH="ceph -c $CONF --connect-timeout 10"

# ---------------------------------------------------------------- mon
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap"
start_bg mon ceph-mon -c "$CONF" -i a -f
up=0
for _ in $(seq 1 150); do
	alive
	if $CEPH mon stat >/dev/null 2>&1; then up=1; break; fi
	sleep 0.2
done
[ $up = 1 ] || { say "mon did not come up; see $DIR/log/mon.a.log"; exit 1; }

# ---------------------------------------------------------------- osd
OSD_UUID=$(uuidgen)
OSD_ID=$($CEPH osd new "$OSD_UUID")
[ "$OSD_ID" = 0 ] || { say "unexpected osd id $OSD_ID"; exit 1; }
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.out" 2>&1 ||
	{ cat "$DIR/log/osd-mkfs.out" >&2; exit 1; }
start_bg osd ceph-osd -c "$CONF" -i 0 -f
up=0
for _ in $(seq 1 300); do
	alive
	n=$($CEPH osd stat -f json 2>/dev/null | sed -n 's/.*"num_up_osds":\([0-9]*\).*/\1/p')
	if [ "$n" = 1 ]; then up=1; break; fi
	sleep 0.2
done
[ $up = 1 ] || { say "osd did not come up; see $DIR/log/osd.0.log"; exit 1; }

# ---------------------------------------------------------------- rgw
start_bg rgw radosgw -c "$CONF" -n client.rgw.a -f
code=000
for _ in $(seq 1 900); do # rgw creates its pools on the first start
	alive
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/") || true
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || { say "radosgw is not answering on port $PORT"; exit 1; }

radosgw-admin -c "$CONF" user create --uid=test --display-name="cairn tests" \
	--access-key="$AK" --secret-key="$SK" >"$DIR/log/user-create.json"

# Ready when a signed ListBuckets answers.  curl 7.88 does not send
# x-amz-content-sha256 itself, and S3 servers require it: here the sha256
# of the empty body.
ok=0
for _ in $(seq 1 100); do
	code=$(curl -s -o "$DIR/run/probe" -w '%{http_code}' --user "$AK:$SK" \
		--aws-sigv4 "aws:amz:$REGION:s3" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"http://127.0.0.1:$PORT/") || true
	if [ "$code" = 200 ] && grep -q ListAllMyBucketsResult "$DIR/run/probe"; then ok=1; break; fi
	sleep 0.2
done
[ $ok = 1 ] || { say "a signed ListBuckets failed (HTTP $code)"; exit 1; }

rgw_pid=$(awk '$2 == "rgw" { print $1 }' "$DIR/run/pids")
cat >"$DIR/env.tmp" <<EOF
CAIRN_S3_ENDPOINT=http://127.0.0.1:$PORT
AWS_ACCESS_KEY_ID=$AK
AWS_SECRET_ACCESS_KEY=$SK
CAIRN_S3_REGION=$REGION
CAIRN_S3_BUCKET=$BUCKET
CAIRN_S3_VHOST=$VHOST
CEPH_CONF=$CONF
CEPH_RGW_PID=$rgw_pid
CEPH_RGW_ASOK=$DIR/run/client.rgw.a.asok
EOF
mv "$DIR/env.tmp" "$DIR/env"
started_ok=1
cat "$DIR/env"
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "start-ceph: ready in %.1f s\n", b - a }' >&2
