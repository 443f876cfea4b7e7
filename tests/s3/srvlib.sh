# tests/s3/srvlib.sh — what the test servers' scripts share (start-ceph.sh,
# start-swift.sh, their stop scripts, tls-certs.sh).  Sourced by bash.
#
#   srv_install WHO PKG...  install the PKGs that are missing (apt-get
#                           install --no-install-recommends; apt-get update
#                           first if that fails) when root; otherwise say
#                           what to install ("WHO: ...") and return 1.
#                           Never `apt-get autoremove` afterwards: here it
#                           removes unrelated packages.
#   srv_port_used PORT      status 0 when something answers on 127.0.0.1:PORT
#   srv_starttime PID       the process's start time (field 22 of
#                           /proc/PID/stat), to tell a reused pid apart
#   srv_alive PID           the process exists and is no zombie (PID 1 of a
#                           container may reap late)

srv_install() {
	local who=$1 p need=""
	shift
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
	done
	[ -n "$need" ] || return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "$who: missing packages:$need" >&2
		echo "$who: hint: run as root, or: sudo apt-get install -y --no-install-recommends$need" >&2
		return 1
	fi
	echo "$who: installing:$need" >&2
	# (word splitting of $need is wanted: one word a package)
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >&2 ||
		{ apt-get update -q >&2 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >&2; }
}

srv_port_used() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

srv_starttime() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

srv_alive() { [ -n "$(sed -n 's/.*) \([^Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)" ]; }
