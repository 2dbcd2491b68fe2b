#!/usr/bin/env bash
# Theory of operation: the Debian packages install, run and purge on a fresh Debian 12. The
# packages are built by the project's own script (cmake/package-deb.sh: a release build,
# CPack's DEB generator): libtagmem1, libtagmem-dev, tagmem. A minimal bookworm root made by
# debootstrap (cached as a tarball between runs, made afresh when there is none) installs
# them with apt, which brings what they depend on from Debian. There the maintainer scripts
# enabled brokerd's socket, the conffile is registered, brokerd runs from the package and
# `tagmem lookup` finds a tag through it. Purging the three packages (and what apt brought
# for them) leaves no file behind that was not there before. The figures: each package's
# size, the installed size, the time apt took to install them with their dependencies, and
# the time of dpkg -i of the three alone.
set -euo pipefail
: "${TAGMEM:?}"
build=$(cd "$(dirname "$TAGMEM")/.." && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
if grep -q '^TAGMEM_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
	echo "SKIP: the packages come from their own release build; the sanitizer pass adds nothing"
	exit 77
fi
command -v debootstrap >/dev/null || { echo "FAIL: debootstrap is missing (tests/deps.sh all)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: a chroot needs root"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/tagmem-package.XXXXXX")
R=$T/root
mounted=()
cleanup() {
	[ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
ms() { date +%s%3N; }

# the packages
"$top/cmake/package-deb.sh" "$T/deb" >/dev/null
debs=("$T"/deb/*.deb)
[ ${#debs[@]} = 3 ] || fail "the build made ${#debs[@]} packages, not 3: ${debs[*]}"

# a fresh bookworm root: debootstrap's, or its tarball from an earlier run
cache=${TAGMEM_ROOT_CACHE:-/var/cache/tagmem-tests}
tarball=$cache/bookworm-minbase.tar
mirror=${TAGMEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$R" "$cache"
if [ -s "$tarball" ]; then
	tar -C "$R" -xf "$tarball"
else
	echo "making a bookworm root with debootstrap (once; cached in $tarball)"
	debootstrap --variant=minbase bookworm "$R" "$mirror" >"$T/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$T/debootstrap.log" >&2; fail "debootstrap"; }
	tar -C "$R" -cf "$tarball.tmp.$$" . && mv "$tarball.tmp.$$" "$tarball"
fi
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
for m in proc sys dev; do
	mount --bind "/$m" "$R/$m"
	mounted+=("$R/$m")
done
# a chroot's services must not start (Debian's policy-rc.d convention)
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"

snapshot() { # every file and link of the root that packages may own
	(cd "$R" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp \
		-o -path ./run -o -path ./var/cache -o -path ./var/lib/apt -o -path ./var/lib/dpkg \
		-o -path ./var/log -o -path ./pkgs \) -prune -o -print | sort)
}
in_root apt-get update -qq >"$T/apt.log" 2>&1 || { cat "$T/apt.log" >&2; fail "apt-get update in the root"; }
snapshot >"$T/before"
mkdir -p "$R/pkgs"
cp "${debs[@]}" "$R/pkgs/"
inside=()   # the packages as the root sees them, the library first
for p in libtagmem1 libtagmem-dev tagmem; do inside+=("/pkgs/$(basename "$T"/deb/${p}_*.deb)"); done
t0=$(ms)
in_root apt-get install -y -qq --no-install-recommends "${inside[@]}" >"$T/install.log" 2>&1 || { tail -n 30 "$T/install.log" >&2; fail "apt-get install"; }
apt_ms=$(($(ms) - t0))
for p in libtagmem1 libtagmem-dev tagmem; do
	in_root dpkg-query -W -f='${Status}\n' $p | grep -qx 'install ok installed' || fail "$p is not installed"
done
t0=$(ms)
in_root dpkg -i "${inside[@]}" >"$T/dpkg.log" 2>&1 ||
	{ tail -n 20 "$T/dpkg.log" >&2; fail "dpkg -i"; }
dpkg_ms=$(($(ms) - t0))
echo "installed in a fresh bookworm root: apt (with dependencies) ${apt_ms} ms, dpkg -i of the three ${dpkg_ms} ms"

# what the maintainer scripts and the package did
[ -L "$R/etc/systemd/system/sockets.target.wants/tagmem-brokerd.socket" ] ||
	fail "postinst did not enable tagmem-brokerd.socket"
in_root dpkg-query -W -f='${Conffiles}\n' tagmem | grep -q '/etc/default/tagmem-brokerd' ||
	fail "/etc/default/tagmem-brokerd is not a conffile"
for f in /usr/sbin/brokerd /usr/bin/tagmem /usr/lib/udev/rules.d/60-tagmem.rules \
	/usr/lib/systemd/system/tagmem-brokerd.service /usr/share/man/man8/brokerd.8 \
	/usr/include/tagmem.h; do
	[ -e "$R$f" ] || fail "$f is not installed"
done
grep -qx 'ExecStart=/usr/sbin/brokerd $BROKERD_OPTS' "$R/usr/lib/systemd/system/tagmem-brokerd.service" ||
	fail "the unit runs another brokerd: $(grep ExecStart "$R/usr/lib/systemd/system/tagmem-brokerd.service")"
grep -qx 'prefix=/usr' "$R/usr/lib/x86_64-linux-gnu/pkgconfig/libtagmem.pc" || fail "libtagmem.pc names another prefix"

# brokerd from the package, and tagmem lookup through it (the simulated fabric: no CXL here)
mkdir -p "$R/run/tagmem"
chroot "$R" /usr/sbin/brokerd --sim-root /run/tagmem/sim --guest-dir none 2>"$T/brokerd.log" &
bpid=$!
for _ in $(seq 200); do in_root tagmem status >/dev/null 2>&1 && break; sleep 0.05; done
in_root tagmem status >/dev/null || { cat "$T/brokerd.log" >&2; fail "the packaged brokerd does not answer"; }
X=de600001-1111-4222-8333-444444444444
in_root tagmem fm add --size 2M --tag $X >/dev/null
path=
for _ in $(seq 100); do path=$(in_root tagmem lookup $X 2>/dev/null) && break; sleep 0.05; done
[ -n "$path" ] && [ -e "$R$path" ] || fail "tagmem lookup $X found nothing ($path)"
echo "the packaged brokerd runs; tagmem lookup $X: $path"
kill "$bpid"
wait "$bpid" 2>/dev/null || true
bpid=

# purge: nothing of it stays
in_root apt-get purge -y -qq tagmem libtagmem-dev libtagmem1 >"$T/purge.log" 2>&1 ||
	{ tail -n 20 "$T/purge.log" >&2; fail "apt-get purge"; }
in_root apt-get autoremove --purge -y -qq >>"$T/purge.log" 2>&1 || fail "apt-get autoremove"
rm -rf "$R/pkgs"
snapshot >"$T/after"
left=$(comm -13 "$T/before" "$T/after")
[ -z "$left" ] || fail "the purge left files behind:"$'\n'"$left"
echo "purged: no file left behind"

size() { stat -c %s "$1"; }
installed=0
for d in "${debs[@]}"; do installed=$((installed + $(dpkg-deb -f "$d" Installed-Size))); done
echo "figures: tagmem $(size "$T"/deb/tagmem_*.deb) B, libtagmem1 $(size "$T"/deb/libtagmem1_*.deb) B," \
	"libtagmem-dev $(size "$T"/deb/libtagmem-dev_*.deb) B (installed: $installed KiB);" \
	"install ${apt_ms} ms with dependencies, dpkg -i ${dpkg_ms} ms"
