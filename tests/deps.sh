#!/usr/bin/env bash
# Install what tagmem needs to build and test on Debian 12, and nothing that is already there.
# Sourced or run by tests/run and docs/demo; safe to run again. Needs root (or sudo) only when
# something is actually missing.
set -euo pipefail

TAGMEM_BUILD_PKGS=(build-essential cmake pkg-config libjson-c-dev uuid-dev libudev-dev
                   libcxl-dev libdaxctl-dev libcmocka-dev jq python3)

# For the fuzz targets (tests/fuzz/run): clang with its libFuzzer and sanitizer runtimes.
TAGMEM_FUZZ_PKGS=(clang libclang-rt-14-dev)

# For the real-kernel tests (tests/guest): QEMU, Debian's kernel and the guest's userland.
TAGMEM_GUEST_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static ndctl daxctl cpio kmod)

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
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	# An old package list makes apt fail on versions no longer served: update once, first.
	$sudo apt-get update -qq >&2
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case "${1:-build}" in
	build) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" ;;
	guest) tagmem_install_pkgs "${TAGMEM_GUEST_PKGS[@]}" ;;
	fuzz) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" "${TAGMEM_FUZZ_PKGS[@]}" ;;
	all) tagmem_install_pkgs "${TAGMEM_BUILD_PKGS[@]}" "${TAGMEM_GUEST_PKGS[@]}" \
		"${TAGMEM_FUZZ_PKGS[@]}" ;;
	*) echo "usage: deps.sh [build|guest|fuzz|all]" >&2; exit 2 ;;
	esac
fi
