#!/usr/bin/env bash
# Theory of operation: the mission's promise, end to end. On the host, brokerd creates two
# tagged images and `tagmem qemu-args` claims them for a VM, writes their NVDIMM labels and
# prints the QEMU arguments; QEMU boots Debian's kernel with exactly those arguments. In the
# unmodified guest, `ndctl list` shows each namespace with uuid = its tag, real udevd makes
# /dev/disk/by-tag/<uuid>, brokerd and `tagmem lookup` agree, bytes the host wrote before
# boot are read at the same offset, and bytes the guest writes land at the same offset of the
# host's image file.
. "$(dirname "$0")/lib.sh"

A=a0a0a0a0-1111-4222-8333-444444444444
B=b0b0b0b0-1111-4222-8333-444444444444
start_host_brokerd

tagmem image create "$G/state/images/a.img" --size 48M --tag $A >/dev/null
tagmem image create "$G/state/images/b.img" --size 32M --tag $B >/dev/null
printf 'HOST-WROTE-A-AT-1M' | dd of="$G/state/images/a.img" bs=1 seek=$((1 << 20)) conv=notrunc status=none
mapfile -t args < <(tagmem qemu-args $A $B --vm coldplug)
[ "$(tagmem --json show $A | jq -r '.owner.name + " " + (.owner.slot|tostring)')" = "coldplug 0" ] ||
	{ echo "FAIL: A not claimed for the VM at slot 0"; exit 1; }
[ "$(tagmem --json show $B | jq -r .label.nvdimm_slot)" = 1 ] ||
	{ echo "FAIL: B's label is not for slot 1"; exit 1; }
tagmem list | grep -q "$B .*uid $(id -u) coldplug slot 1" ||
	{ echo "FAIL: tagmem list does not show B in VM coldplug at slot 1"; tagmem list; exit 1; }

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
A=$A
B=$B
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
for t in $A $B; do
	eq "ndctl shows namespace uuid $t" "$(ndctl list -N | jq -r --arg t $t '[.[] | select(.uuid == $t)] | length')" 1
	check "udev link for $t" test -b "/dev/disk/by-tag/$t"
done
pa=$(readlink -f /dev/disk/by-tag/$A)
pb=$(readlink -f /dev/disk/by-tag/$B)
eq "A's size is the image's data part" "$(blockdev --getsize64 "$pa")" $((48 << 20))
eq "host bytes at offset 1M read at offset 1M" "$(dd if="$pa" bs=1 skip=$((1 << 20)) count=18 2>/dev/null)" HOST-WROTE-A-AT-1M
printf 'GUEST-WROTE-B-AT-2M' | dd of="$pb" bs=1 seek=$((2 << 20)) conv=notrunc 2>/dev/null
sync
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
check "brokerd in the guest serves" wait_until 20 tagmem status
eq "guest tagmem lookup A = udev link" "$(tagmem lookup $A)" "$pa"
eq "guest tagmem lookup B = udev link" "$(tagmem lookup $B)" "$pb"
exit $CHECKS_FAILED
GUEST
run_guest "$G/checks.sh" 240 "${args[@]}"
got=$(dd if="$G/state/images/b.img" bs=1 skip=$((2 << 20)) count=19 status=none)
[ "$got" = GUEST-WROTE-B-AT-2M ] || { echo "FAIL: host reads '$got' at offset 2M of B"; exit 1; }
echo "host: guest bytes found at the same offset of the image file"
