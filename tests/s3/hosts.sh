# tests/s3/hosts.sh — test hosts for the several-hosts S3 tests: each test
# host is a network namespace with an address of its own and a UTS namespace
# with a host name of its own, and reaches the S3 server of the fixture
# (radosgw on 127.0.0.1 of the machine) over that network.
#
# Source it after lib.sh and s3lib.sh and BEFORE pglib.sh (it chains its
# cleanup into the EXIT trap, and pglib.sh then chains its own in front, so
# that the servers stop before the namespaces go).
#
#   hosts_up NAME...      make the hosts (names: a-z, 0-9, at most 8 chars)
#   on_host NAME CMD...   run the program CMD on host NAME (its network,
#                         its host name); CMD must be a program, not a
#                         shell function
#   host_runuser_dir NAME a folder holding a `runuser` that runs on host NAME:
#                         `PATH=$(host_runuser_dir a):$PATH pg_start a` starts
#                         a PostgreSQL server (and so its archive_command)
#                         there
#   host_addr NAME        the host's address
#   hosts_peers           "COUNT ADDRESS" lines: the connections the relay
#                         took, per client address
#   hosts_down            remove everything (also done on exit)
#
# Variables after hosts_up:
#   HOSTS_ENDPOINT   the S3 endpoint as the hosts see it
#   HOSTS_NETNS      1 with namespaces; 0 when they cannot be made (not
#                    root, no `ip`, or CAIRN_TEST_NO_NETNS=1): then every
#                    host is a plain process of this machine on 127.0.0.1,
#                    HOSTS_ENDPOINT is the server's own, and HOSTS_WHY says
#                    why
#
# The network: a namespace "gw" holds a bridge with 10.231.0.1/24 and the
# relay's listening socket (tests/s3/relay.py), each host namespace one end
# of a veth pair (the other end on the bridge) with 10.231.0.(10+i).  None of
# these namespaces has a route anywhere else: the addresses exist only
# between them, and the relay, which runs in the machine's namespace,
# forwards each connection to the S3 server on 127.0.0.1.  The relay stops
# by itself after 15 minutes or when the test is gone.

if [[ -n ${_PGLIB_LOADED:-} ]]; then
	echo "FAIL: source tests/s3/hosts.sh before pglib.sh" >&2
	exit 1
fi

HOSTS_NETNS=0
HOSTS_WHY=
HOSTS_ENDPOINT=
HOSTS_DIR=
_HOSTS_NAMES=()
_HOSTS_PREFIX=cairn$$
_HOSTS_RELAY_PID=
_HOSTS_NET=10.231.0
declare -gA _HOSTS_ADDR=()

_hosts_ns() { echo "$_HOSTS_PREFIX-$1"; }

hosts_down() {
	local n
	if [[ -n $_HOSTS_RELAY_PID ]]; then
		kill "$_HOSTS_RELAY_PID" 2>/dev/null || true
		wait "$_HOSTS_RELAY_PID" 2>/dev/null || true
		_HOSTS_RELAY_PID=
	fi
	if ((HOSTS_NETNS)); then
		for n in ${_HOSTS_NAMES[@]+"${_HOSTS_NAMES[@]}"} gw; do
			ip netns del "$(_hosts_ns "$n")" 2>/dev/null || true
		done
	fi
	_HOSTS_NAMES=()
}

_HOSTS_PREV_EXIT=
_hosts_exit_handler() {
	local rc=$?
	set +e
	hosts_down
	if [[ -n $_HOSTS_PREV_EXIT ]]; then
		(exit "$rc")
		eval "$_HOSTS_PREV_EXIT"
	fi
	exit "$rc"
}
_hosts_cur=$(trap -p EXIT)
if [[ -n $_hosts_cur ]]; then
	eval "_hosts_words=($_hosts_cur)"
	_HOSTS_PREV_EXIT=${_hosts_words[2]}
	unset _hosts_words
fi
unset _hosts_cur
trap _hosts_exit_handler EXIT

_hosts_can_netns() {
	if [[ ${CAIRN_TEST_NO_NETNS:-0} == 1 ]]; then
		HOSTS_WHY="CAIRN_TEST_NO_NETNS=1"
		return 1
	fi
	if ((EUID != 0)); then
		HOSTS_WHY="not root"
		return 1
	fi
	local t
	for t in ip unshare hostname; do
		command -v "$t" >/dev/null 2>&1 || {
			HOSTS_WHY="no $t"
			return 1
		}
	done
	local probe=$_HOSTS_PREFIX-probe
	if ! ip netns add "$probe" 2>"$SCRATCH/.hosts-probe.err"; then
		HOSTS_WHY="ip netns add failed: $(head -c 200 "$SCRATCH/.hosts-probe.err")"
		return 1
	fi
	if ! ip -n "$probe" link add p0 type veth peer name p1 2>"$SCRATCH/.hosts-probe.err" ||
		! ip netns exec "$probe" unshare --uts -- hostname probe 2>>"$SCRATCH/.hosts-probe.err"; then
		HOSTS_WHY="veth or unshare --uts failed: $(head -c 200 "$SCRATCH/.hosts-probe.err")"
		ip netns del "$probe" 2>/dev/null || true
		return 1
	fi
	ip netns del "$probe"
	return 0
}

hosts_up() {
	HOSTS_DIR=$SCRATCH/hosts
	mkdir -p "$HOSTS_DIR"
	chmod 755 "$HOSTS_DIR"
	local ep=${S3_ENDPOINT:-$CAIRN_S3_ENDPOINT}
	local hp=${ep#http://}
	hp=${hp%%/*}
	local thost=${hp%:*} tport=${hp##*:}
	local n i=0 gw
	if _hosts_can_netns; then
		HOSTS_NETNS=1
		gw=$(_hosts_ns gw)
		ip netns add "$gw"
		ip -n "$gw" link set lo up
		ip -n "$gw" link add br0 type bridge
		ip -n "$gw" addr add "$_HOSTS_NET.1/24" dev br0
		ip -n "$gw" link set br0 up
		for n in "$@"; do
			[[ $n =~ ^[a-z0-9]{1,8}$ ]] || fail "hosts_up: bad host name '$n'"
			local ns
			ns=$(_hosts_ns "$n")
			ip netns add "$ns"
			_HOSTS_NAMES+=("$n")
			ip -n "$ns" link set lo up
			ip -n "$gw" link add "v-$n" type veth peer name eth0 netns "$ns"
			ip -n "$gw" link set "v-$n" master br0
			ip -n "$gw" link set "v-$n" up
			_HOSTS_ADDR[$n]=$_HOSTS_NET.$((10 + i))
			ip -n "$ns" addr add "${_HOSTS_ADDR[$n]}/24" dev eth0
			ip -n "$ns" link set eth0 up
			i=$((i + 1))
		done
		# The relay: listens in gw, forwards to the S3 server.
		rm -f "$HOSTS_DIR/relay.ready"
		python3 "$(dirname "${BASH_SOURCE[0]}")/relay.py" "/run/netns/$gw" "$_HOSTS_NET.1" "$tport" \
			"$thost" "$tport" "$HOSTS_DIR/relay.log" "$HOSTS_DIR/relay.ready" "$$" 900 \
			</dev/null >"$HOSTS_DIR/relay.out" 2>&1 9>&- &
		_HOSTS_RELAY_PID=$!
		for _ in $(seq 1 100); do
			[[ -e $HOSTS_DIR/relay.ready ]] && break
			kill -0 "$_HOSTS_RELAY_PID" 2>/dev/null || fail "the relay died: $(cat "$HOSTS_DIR/relay.out")"
			sleep 0.05
		done
		[[ -e $HOSTS_DIR/relay.ready ]] || fail "the relay did not start: $(cat "$HOSTS_DIR/relay.out")"
		HOSTS_ENDPOINT=http://$_HOSTS_NET.1:$tport
	else
		HOSTS_NETNS=0
		for n in "$@"; do
			_HOSTS_NAMES+=("$n")
			_HOSTS_ADDR[$n]=127.0.0.1
		done
		HOSTS_ENDPOINT=$ep
		echo "# hosts.sh: no network namespaces ($HOSTS_WHY): the hosts are processes on 127.0.0.1"
	fi
	# runuser wrappers (and the same wrapper for any program: on-NAME)
	for n in "$@"; do
		mkdir -p "$HOSTS_DIR/bin-$n"
		if ((HOSTS_NETNS)); then
			cat >"$HOSTS_DIR/bin-$n/on-host" <<EOF
#!/bin/sh
exec ip netns exec $(_hosts_ns "$n") unshare --uts -- /bin/sh -c 'hostname "\$0" && exec "\$@"' $n "\$@"
EOF
		else
			printf '#!/bin/sh\nexec "$@"\n' >"$HOSTS_DIR/bin-$n/on-host"
		fi
		printf '#!/bin/sh\nexec "%s/on-host" %s "$@"\n' "$HOSTS_DIR/bin-$n" "$(command -v runuser || echo /usr/sbin/runuser)" \
			>"$HOSTS_DIR/bin-$n/runuser"
		chmod 755 "$HOSTS_DIR/bin-$n" "$HOSTS_DIR/bin-$n/on-host" "$HOSTS_DIR/bin-$n/runuser"
	done
}

on_host() {
	local n=$1
	shift
	[[ -n ${_HOSTS_ADDR[$n]:-} ]] || fail "on_host: no host '$n'"
	"$HOSTS_DIR/bin-$n/on-host" "$@"
}

host_runuser_dir() { echo "$HOSTS_DIR/bin-$1"; }
host_addr() { echo "${_HOSTS_ADDR[$1]}"; }

hosts_peers() {
	[[ -e $HOSTS_DIR/relay.log ]] || return 0
	awk '$1 == "peer" { print $2 }' "$HOSTS_DIR/relay.log" | sort | uniq -c
}
