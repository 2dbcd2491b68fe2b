#!/usr/bin/env bash
# Install what tagmem needs to build and test on Debian 12, and nothing that is already there.
# Sourced or run by tests/run and docs/demo; safe to run again. Needs root (or sudo) only when
# something is actually missing.
set -euo pipefail

TAGMEM_BUILD_PKGS=(build-essential cmake pkg-config libjson-c-dev uuid-dev libudev-dev
                   libcxl-dev libdaxctl-dev libcmocka-dev libssl-dev jq python3 strace openssl)

# For the fuzz targets (tests/fuzz/run): clang with its libFuzzer and sanitizer runtimes.
TAGMEM_FUZZ_PKGS=(clang libclang-rt-14-dev)

# For the cluster tests (integration/cluster-directory): a real etcd cluster on loopback.
TAGMEM_CLUSTER_PKGS=(etcd-server etcd-client)

# For the metrics test (integration/metrics): a real node_exporter reads brokerd's metrics file.
# For the containers test (integration/cdi): podman runs a container with a tag as a CDI
# device (runc: crun refuses this machine's hybrid cgroups; busybox-static: its root).
# For the package test (integration/package): a fresh bookworm root to install the .debs in.
# For the libvirt test (integration/libvirt): a real libvirtd (run privately) and virsh.
TAGMEM_OPS_PKGS=(prometheus-node-exporter podman runc busybox-static debootstrap
	libvirt-daemon-system libvirt-clients)

# For the real-kernel tests (tests/guest): QEMU, Debian's kernel and the guest's userland.
# dmsetup, e2fsprogs and xfsprogs: the crash-consistency test's dm-log-writes and filesystems.
TAGMEM_GUEST_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static ndctl daxctl cpio kmod
	dmsetup e2fsprogs xfsprogs)

tagmem_missing_pkgs() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
			printf '%s\n' "$p"
	done
}

tagmem_install_pkgs() {
	local missing
	missing=$(tagmem_missing_pkgs "$@")
	[ -z "$missing" ] && return 0
	echo "deps: installing:" $missing >&2
	# An old package list makes apt fail on versions no longer served: update once, first.
	tagmem_apt update -qq
	# shellcheck disable=SC2086
	tagmem_apt install -y -qq --no-install-recommends $missing
}

# tagmem_apt ARGS…: apt-get (through sudo when not root) that waits for another apt or dpkg
# (unattended-upgrades on a new machine, say) to let go of its lock instead of failing at once.
# dpkg's lock is waited for by apt itself (DPkg::Lock::Timeout); the lists lock of
# 'apt-get update' is not, so a refusal that names a lock is tried again, for up to
# TAGMEM_APT_WAIT seconds (default 900).
tagmem_apt() {
	local sudo="" out rc deadline=$((SECONDS + ${TAGMEM_APT_WAIT:-900})) said=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	out=$(mktemp)
	while :; do
		rc=0
		DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=60 "$@" \
			2>"$out" >&2 || rc=$?
		if [ $rc = 0 ] || ! grep -qiE 'could not get lock|unable to (acquire|lock)' "$out" ||
			[ $SECONDS -ge $deadline ]; then
			cat "$out" >&2
			rm -f "$out"
			return $rc
		fi
		[ -n "$said" ] || echo "deps: another apt or dpkg holds its lock; waiting" >&2
		said=1
		sleep 5
	done
}

# QEMU 10 beside Debian's 7.2, for the benchmarks that compare with it (bench/vm-save): the
# packages from bookworm-backports, unpacked under /opt/tagmem-qemu10 rather than installed
# (installing would replace 7.2, which the tests use). apt reads backports' lists into a
# private directory: the machine's own apt sources stay as they are.
TAGMEM_QEMU10=/opt/tagmem-qemu10
TAGMEM_QEMU10_PKGS=(qemu-system-x86 qemu-system-common qemu-system-data)

tagmem_qemu10() {
	local dir=$TAGMEM_QEMU10 tmp apt
	[ -x "$dir/usr/bin/qemu-system-x86_64" ] && return 0
	tagmem_install_pkgs "${TAGMEM_GUEST_PKGS[@]}" # its libraries and firmware are 7.2's
	tmp=$(mktemp -d)
	echo 'deb http://deb.debian.org/debian bookworm-backports main' >"$tmp/sources.list"
	mkdir -p "$tmp/lists/partial"
	apt=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=-
	     -o "Dir::State::Lists=$tmp/lists" -o APT::Sandbox::User=root)
	echo "deps: fetching QEMU 10 from bookworm-backports into $dir" >&2
	tagmem_apt "${apt[@]}" update -qq
	(cd "$tmp" && tagmem_apt "${apt[@]}" download -qq \
		$(for p in "${TAGMEM_QEMU10_PKGS[@]}"; do printf '%s/bookworm-backports ' "$p"; done) >&2)
	mkdir -p "$dir"
	for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir"; done
	rm -rf "$tmp"
	"$dir/usr/bin/qemu-system-x86_64" --version >/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case "${1:-build}" in
	build) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" ;;
	guest) tagmem_install_pkgs "${TAGMEM_GUEST_PKGS[@]}" ;;
	fuzz) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" "${TAGMEM_FUZZ_PKGS[@]}" ;;
	all) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" "${TAGMEM_GUEST_PKGS[@]}" \
		"${TAGMEM_FUZZ_PKGS[@]}" "${TAGMEM_CLUSTER_PKGS[@]}" "${TAGMEM_OPS_PKGS[@]}" ;;
	cluster) tagmem_install_pkgs "${TAGMEM_CLUSTER_PKGS[@]}" ;;
	qemu10) tagmem_qemu10 ;;
	*) echo "usage: deps.sh [build|guest|fuzz|cluster|all|qemu10]" >&2; exit 2 ;;
	esac
fi
