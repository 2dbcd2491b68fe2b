#!/usr/bin/env bash
# Build the guest initramfs for the real-kernel tests:
#   mkinitramfs.sh OUT.cpio.gz BUILD_DIR GUEST_SCRIPT
# It holds busybox, Debian's own nvdimm/dax/virtio-pmem modules for the installed kernel, ndctl/daxctl,
# the real systemd-udevd and udevadm, the project's freshly built brokerd, tagmem, tagmem-id
# and udev rules, each binary with the shared libraries ldd reports, an /init that brings
# up devtmpfs, modules and udevd, and the check script that the test wants to run.
set -euo pipefail
out=$1 build=$2 script=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
kver=${TAGMEM_GUEST_KVER:-$(ls /lib/modules | sort -V | tail -1)}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,etc/udev/rules.d,lib/udev/rules.d,proc,sys,dev,run,tmp,var/lib/tagmem,usr/bin}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# copy_bin SRC [DEST]: a binary and every shared library it needs, at the same paths (none for
# a static one, such as tagmem-id: ldd says "not a dynamic executable" and fails).
copy_bin() {
	local src=$1 dest=${2:-$1}
	mkdir -p "$root$(dirname "$dest")"
	cp -L "$src" "$root$dest"
	{ ldd "$src" 2>/dev/null || true; } | { grep -oE '/[^ ]+' || true; } | while read -r lib; do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

copy_bin "$build/brokerd/brokerd" /usr/bin/brokerd
copy_bin "$build/cli/tagmem" /usr/bin/tagmem
copy_bin "$build/udev/tagmem-id" /lib/udev/tagmem-id
copy_bin "$build/udev/tagmem-guestd" /usr/sbin/tagmem-guestd
copy_bin "$build/tests/dax_peek" /usr/bin/dax_peek
copy_bin "$build/tests/log_replay" /usr/bin/log_replay
copy_bin "$build/tests/stamp" /usr/bin/stamp
copy_bin "$build/tests/vm_standin" /usr/bin/vm_standin
# benchmarks that run in the guest, when they are built (bench/guest-flush)
for b in guest_flushbench guest_cache; do
	[ -x "$build/bench/$b" ] && copy_bin "$build/bench/$b" "/usr/bin/$b"
done
for lib in "$build"/libtagmem/libtagmem.so*; do cp -a "$lib" "$root/lib/"; done
copy_bin /usr/bin/ndctl
copy_bin /usr/bin/daxctl
copy_bin /lib/systemd/systemd-udevd
copy_bin /usr/bin/udevadm
copy_bin /usr/bin/jq
# what one test needs beyond the rest (GUEST_BINS: host binaries, each at its own path or
# SRC=DEST; GUEST_MODULES: modules; GUEST_FILES: other files, SRC=DEST each, such as a nested
# QEMU's firmware). The guest mounts its own /tmp: nothing is copied there.
for b in ${GUEST_BINS:-}; do
	case $b in
	*=*) copy_bin "${b%%=*}" "${b#*=}" ;;
	*) copy_bin "$(command -v "$b")" ;;
	esac
done
for f in ${GUEST_FILES:-}; do
	mkdir -p "$root$(dirname "${f#*=}")"
	cp -L "${f%%=*}" "$root${f#*=}"
done
[ -r /etc/mke2fs.conf ] && mkdir -p "$root/etc" && cp /etc/mke2fs.conf "$root/etc/"
cp "$top/udev/60-tagmem.rules" "$root/lib/udev/rules.d/"
# udevd's own basics: device node permissions and the block/dax naming it relies on
for r in 50-udev-default.rules 60-block.rules; do
	[ -f "/lib/udev/rules.d/$r" ] && cp "/lib/udev/rules.d/$r" "$root/lib/udev/rules.d/"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\nkvm:x:104:\n' >"$root/etc/group"

# kernel modules, in the order modprobe would load them
modlist=$root/etc/modules.order
: >"$modlist"
for m in libnvdimm nfit nd_btt nd_pmem device_dax dax_pmem virtio_pci nd_virtio virtio_pmem \
	virtio_console ${GUEST_MODULES:-}; do
	modprobe -S "$kver" --show-depends --ignore-install "$m" 2>/dev/null |
		awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	mkdir -p "$root$(dirname "$ko")"
	cp "$ko" "$root$ko"
	echo "$ko" >>"$modlist"
done

cp "$script" "$root/guest-checks.sh"
cp "$top/tests/guest/checks.sh" "$root/checks-lib.sh"
chmod +x "$root/guest-checks.sh"
cat >"$root/init" <<'INIT'
#!/bin/sh
# Guest side of the tagmem real-kernel tests: bring the system up, run the checks, power off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run/udev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/udev /run/tagmem
while read -r ko; do insmod "$ko" 2>/dev/null; done </etc/modules.order
/lib/systemd/systemd-udevd --daemon --resolve-names=never
udevadm trigger --action=add --type=subsystems
udevadm trigger --action=add --type=devices
udevadm settle --timeout=30
echo "TAGMEM-GUEST-UP $(uname -r)"
sh /guest-checks.sh
echo "TAGMEM-GUEST-DONE rc=$?"
sync
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
