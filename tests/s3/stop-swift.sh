#!/usr/bin/env bash
# tests/s3/stop-swift.sh SCRATCH_DIR [--wipe] — stops the Swift servers and
# memcached that start-swift.sh recorded in SCRATCH_DIR/run/pids ("pid name
# starttime"), by pid only: SIGCONT (a test may have stopped one), SIGTERM
# to all of them at once (each takes about 2 s to exit), up to 15 s, then
# SIGKILL.  A pid whose start time no longer matches (reused by another
# process) is left alone.  With --wipe, SCRATCH_DIR is removed too.  Always
# exits 0 when there was nothing to stop.
set -uo pipefail
DIR=${1:?usage: stop-swift.sh SCRATCH_DIR [--wipe]}
PIDS=$DIR/run/pids
TIMEOUT=15

. "$(cd "$(dirname "$0")" && pwd)/srvlib.sh"
starttime() { srv_starttime "$1"; }
alive() { srv_alive "$1"; }
if [ -f "$PIDS" ]; then
	live=""
	while read -r pid name start; do
		[ -n "$pid" ] || continue
		alive "$pid" && [ "$(starttime "$pid")" = "$start" ] || continue
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null && live="$live $pid:$name"
	done <"$PIDS"
	end=$((SECONDS + TIMEOUT))
	for pn in $live; do
		pid=${pn%%:*}
		while alive "$pid" && [ $SECONDS -lt $end ]; do sleep 0.1; done
		if alive "$pid"; then
			echo "stop-swift: ${pn#*:} ($pid) ignored TERM for ${TIMEOUT}s: KILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	rm -f "$PIDS"
fi
if [ "${2:-}" = --wipe ]; then
	rm -rf "$DIR"
fi
exit 0
