#!/usr/bin/env bash
# Theory of operation: DCD capacity, private and shared, reaches an unmodified guest by tag.
# brokerd must not write a label into a DCD tag (its bytes are all the tag's, and a shared
# tag's bytes are other hosts' too), so `tagmem qemu-args` hands it over label-less and names
# its nvdimm slot's tag in the SMBIOS OEM strings. In the guest, real udevd and tagmem-id make
# /dev/disk/by-tag/<uuid> from that table, `tagmem lookup` agrees with and without a guest
# brokerd, the bytes at offsets 0 and 1 MiB are the host's, and a guest write lands at the
# same offset of the private tag. The shared tag's backing bytes are unchanged by the
# hand-over. An image in the same VM keeps its label.
. "$(dirname "$0")/lib.sh"

P=d0d0d0d0-1111-4222-8333-444444444444  # private DCD tag
S=5a5a5a5a-1111-4222-8333-444444444444  # shared DCD tag
I=1a1a1a1a-1111-4222-8333-444444444444  # image
start_host_brokerd

tagmem fm add --size 64M --tag $P >/dev/null
tagmem fm add --size 32M --tag $S --shared >/dev/null
tagmem image create "$G/state/images/i.img" --size 32M --tag $I >/dev/null
pp=$(tagmem lookup $P)
sp=$(tagmem lookup $S)
# known bytes at offsets 0 and 1 MiB of each DCD tag, as another host's writer would leave them
for dev in "$pp" "$sp"; do
	for off in 0 256; do
		head -c 4096 /dev/urandom | dd of="$dev" bs=4096 seek=$off conv=notrunc status=none
	done
done
sum_at() { dd if="$1" bs=4096 skip="$2" count=1 status=none | md5sum | cut -d' ' -f1; }
shared_before=$(sha256sum <"$sp")

mapfile -t args < <(tagmem qemu-args $P $S $I --vm dcd)
printf '%s\n' "${args[@]}" | grep -qx "type=11,value=tagmem.nvdimm.0=$P" ||
	{ echo "FAIL: no SMBIOS string names slot 0's tag"; printf '%s\n' "${args[@]}"; exit 1; }
[ "$(tagmem --json qemu-args $P $S $I --vm dcd | jq -r '[.devices[].tag_in_guest] | join(",")')" = \
	firmware,firmware,label ] || { echo "FAIL: tag_in_guest is not firmware,firmware,label"; exit 1; }

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
P=$P S=$S I=$I
P0=$(sum_at "$pp" 0) P1=$(sum_at "$pp" 256) S0=$(sum_at "$sp" 0) S1=$(sum_at "$sp" 256)
GUEST
cat >>"$G/checks.sh" <<'GUEST'
sum_at() { dd if="$1" bs=4096 skip="$2" count=1 2>/dev/null | digest 4096; }
udevadm settle
for t in $P $S $I; do
	check "udev link for $t" test -b "/dev/disk/by-tag/$t"
done
pp=$(readlink -f /dev/disk/by-tag/$P)
sp=$(readlink -f /dev/disk/by-tag/$S)
eq "P's size is the whole tag" "$(blockdev --getsize64 "$pp")" $((64 << 20))
eq "S's size is the whole tag" "$(blockdev --getsize64 "$sp")" $((32 << 20))
eq "P: host bytes at offset 0" "$(sum_at "$pp" 0)" "$P0"
eq "P: host bytes at offset 1M" "$(sum_at "$pp" 256)" "$P1"
eq "S: host bytes at offset 0" "$(sum_at "$sp" 0)" "$S0"
eq "S: host bytes at offset 1M" "$(sum_at "$sp" 256)" "$S1"
eq "tagmem-id says the slot named P" \
	"$(/lib/udev/tagmem-id "/sys/class/block/${pp#/dev/}" | grep NAMED_BY)" TAGMEM_NAMED_BY=slot
eq "daemonless lookup of S = udev link" "$(tagmem lookup $S 2>/dev/null)" "$sp"
printf 'GUEST-WROTE-P-AT-2M' | dd of="$pp" bs=1 seek=$((2 << 20)) conv=notrunc 2>/dev/null
sync
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
check "brokerd in the guest serves" wait_until 20 tagmem status
for t in $P $S $I; do
	eq "guest tagmem lookup $t = udev link" "$(tagmem lookup $t)" "$(readlink -f /dev/disk/by-tag/$t)"
done
exit $CHECKS_FAILED
GUEST
run_guest "$G/checks.sh" 240 "${args[@]}"
got=$(dd if="$pp" bs=1 skip=$((2 << 20)) count=19 status=none)
[ "$got" = GUEST-WROTE-P-AT-2M ] || { echo "FAIL: host reads '$got' at offset 2M of P"; exit 1; }
echo "host: the guest's write is at the same offset of the private tag"
[ "$(sha256sum <"$sp")" = "$shared_before" ] ||
	{ echo "FAIL: the hand-over changed the shared tag's bytes"; exit 1; }
echo "host: the shared tag's bytes are unchanged (sha256)"
