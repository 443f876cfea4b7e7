#!/usr/bin/env bash
# scripts/deps.sh — installs what building and testing cairn needs on Debian.
# Sourced by test.sh and demo.sh.  As root, missing packages are installed
# with apt-get; otherwise the exact command to run is printed.
cairn_deps=(build-essential cmake pkg-config libzstd-dev libsodium-dev liblmdb-dev
            libcurl4-openssl-dev libpq-dev util-linux postgresql-15 postgresql-client-15)

cairn_install_deps() {
	local missing=() p
	for p in "${cairn_deps[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	command -v python3 >/dev/null 2>&1 || missing+=(python3)
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "cairn: missing packages: ${missing[*]}" >&2
		echo "hint: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
		return 1
	fi
	echo "cairn: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# The tests start their own throwaway servers: Debian's default
	# cluster (and its server on port 5432) is not wanted.
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common/createcluster.d
		echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/cairn.conf
	fi
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
