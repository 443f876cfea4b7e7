#!/usr/bin/env bash
# tests/s3/stop-ceph.sh SCRATCH_DIR [--wipe] — stops the daemons that
# start-ceph.sh recorded in SCRATCH_DIR/run/pids ("pid name starttime"), by
# pid only, one at a time in reverse start order (rgw, osd, mon): SIGCONT
# (a test may have stopped one), SIGTERM, up to 30 s, then SIGKILL.  A pid
# whose start time no longer matches (reused by another process) is left
# alone.  With --wipe, SCRATCH_DIR is removed too.  Always exits 0 when
# there was nothing to stop.
set -uo pipefail
DIR=${1:?usage: stop-ceph.sh SCRATCH_DIR [--wipe]}
PIDS=$DIR/run/pids
TIMEOUT=30

. "$(cd "$(dirname "$0")" && pwd)/srvlib.sh"
starttime() { srv_starttime "$1"; }
alive() { srv_alive "$1"; }
stop_one() { # pid name start
	local pid=$1 name=$2 start=$3 end=$((SECONDS + TIMEOUT))
	alive "$pid" || return 0
	[ "$(starttime "$pid")" = "$start" ] || return 0
	kill -CONT "$pid" 2>/dev/null
	kill -TERM "$pid" 2>/dev/null
	while alive "$pid" && [ $SECONDS -lt $end ]; do sleep 0.1; done
	if alive "$pid"; then
		echo "stop-ceph: $name ($pid) ignored TERM for ${TIMEOUT}s: KILL" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
}
if [ -f "$PIDS" ]; then
	tac "$PIDS" | while read -r pid name start; do
		[ -n "$pid" ] && stop_one "$pid" "$name" "$start"
	done
	rm -f "$PIDS"
fi
if [ "${2:-}" = --wipe ]; then
	rm -rf "$DIR"
fi
exit 0
