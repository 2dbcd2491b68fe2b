#!/usr/bin/env bash
# Theory of operation: the two ways a guest's writes to fake-DAX memory become durable on
# the host, in a real guest. (1) virtio-pmem: the guest's own fsync travels to QEMU, which
# fsyncs the image, so after the guest says "synced" the host page cache holds no dirty page
# of the range and an O_DIRECT read of the file finds the bytes. (2) nvdimm: the guest's
# writes land in the host page cache and stay dirty (the guest cannot flush them); a broker
# flush makes them durable. The broker runs with no dirty budget and no pressure trigger, so
# nothing of the broker's writes the pages back behind the test's back; and the images are
# synced before the guest starts, so the kernel's own writeback of inodes dirty for 30 s
# (dirty_expire_centisecs) counts from the guest's write, not from the image's creation.
. "$(dirname "$0")/lib.sh"

P=d0d0d0d0-1111-4222-8333-444444444444
N=e0e0e0e0-1111-4222-8333-444444444444
start_host_brokerd --dirty-budget 0 --pressure none
tagmem image create "$G/state/images/p.img" --size 32M --tag $P >/dev/null
tagmem image create "$G/state/images/n.img" --size 32M --tag $N >/dev/null
# a second call for the same VM: the first one brings the guest channel
mapfile -t pargs < <(tagmem qemu-args $P --vm flush --mode virtio-pmem --no-channel)
mapfile -t nargs < <(tagmem qemu-args $N --vm flush)
printf '%s\n' "${pargs[@]}" | grep -q '^virtio-pmem-pci,' ||
	{ echo "FAIL: qemu-args --mode virtio-pmem printed: ${pargs[*]}"; exit 1; }

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
N=$N
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
check "udev link for the nvdimm image" test -b /dev/disk/by-tag/$N
pn=$(readlink -f /dev/disk/by-tag/$N)
pp=
for d in /dev/pmem*; do [ "$d" = "$pn" ] || pp=$d; done
check "a virtio-pmem disk" test -b "$pp"
eq "the virtio-pmem disk is the image's data part" "$(blockdev --getsize64 "$pp")" $((32 << 20))
check "guest write + fsync of the virtio-pmem disk" \
	sh -c "printf VPMEM-GUEST-FSYNC | dd of=$pp bs=1 seek=$((4 << 20)) conv=notrunc,fsync"
echo "TAGMEM-VPMEM-SYNCED"
printf 'NVDIMM-GUEST-WROTE' | dd of="$pn" bs=1 seek=$((6 << 20)) conv=notrunc 2>/dev/null
echo "TAGMEM-NVDIMM-WROTE"
sleep 10   # the host checks meanwhile; the guest must still be running when it flushes
exit $CHECKS_FAILED
GUEST

host_check() { # python snippet using the integration tests' page-cache helpers
	PYTHONPATH="$top/tests/integration" python3 -c "from pagecache import *; $1" && return 0
	tr -d '\r' <"$G/console.log" | tail -n 30 >&2
	exit 1
}
sync -f "$G/state/images/p.img" "$G/state/images/n.img"
start_guest "$G/checks.sh" 240 "${pargs[@]}" "${nargs[@]}"
wait_console '^TAGMEM-VPMEM-SYNCED' 200
host_check "
c = cachestat('$G/state/images/p.img', 4 << 20, 4096)
assert c[1] == 0 and c[2] == 0, f'virtio-pmem page still dirty on the host after the guest fsync: {c}'
d = read_direct('$G/state/images/p.img', 4 << 20, 4096)[:17]
assert d == b'VPMEM-GUEST-FSYNC', f'O_DIRECT read on the host: {d!r}'
"
echo "host: the guest's fsync over virtio-pmem made its bytes durable"
wait_console '^TAGMEM-NVDIMM-WROTE' 60
sleep 0.5
host_check "
c = cachestat('$G/state/images/n.img', 6 << 20, 4096)
assert c[1] + c[2] > 0, f'the guest write should be a dirty host page before the flush: {c}'
"
out=$(tagmem flush $N --offset 6M --length 2M) || { echo "FAIL: tagmem flush: $out"; exit 1; }
echo "host: $out"
host_check "
c = cachestat('$G/state/images/n.img', 6 << 20, 4096)
assert c[1] == 0 and c[2] == 0, f'dirty after the broker flush: {c}'
d = read_direct('$G/state/images/n.img', 6 << 20, 4096)[:18]
assert d == b'NVDIMM-GUEST-WROTE', f'O_DIRECT read on the host: {d!r}'
"
echo "host: a broker flush made the guest's nvdimm writes durable"
finish_guest 240
