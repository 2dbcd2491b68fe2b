#!/usr/bin/env bash
# Theory of operation: an image with the devdax layout reaches an unmodified guest as a
# device-DAX character device whose offset 0 is the tag's offset 0 (what famfs and other DAX
# consumers need), cold- and hot-plugged. The file holds a 16 MiB header with a DAX info
# block for the tag's namespace, then the data, then the label tail; the guest kernel finds
# the info block itself and makes /dev/daxX.Y of the data alone. In the guest, real udevd
# makes /dev/dax/by-tag/<uuid>, `tagmem lookup` agrees, the device's size is the data's, the
# host's bytes at data offsets 0 and 1 MiB are at the device's 0 and 1 MiB (read through
# mmap: device DAX has no read(2)), and a guest write lands at the same data offset of the
# file. A host flush of that range is a range flush of the file at the data's offset.
. "$(dirname "$0")/lib.sh"

C=dada0000-1111-4222-8333-444444444444   # cold-plugged
H=dada1111-1111-4222-8333-444444444444   # hot-plugged
start_host_brokerd
MB=$((1 << 20))
for t in $C $H; do
	tagmem image create "$G/state/images/$t.img" --size 32M --tag $t --layout devdax >/dev/null
	for off in 0 1; do
		head -c 4096 /dev/urandom |
			dd of="$G/state/images/$t.img" bs=1M seek=$((16 + off)) conv=notrunc status=none
	done
done
show=$(tagmem --json show $C)
[ "$(jq -r '.layout + " " + (.data_offset|tostring) + " " + (.size|tostring)' <<<"$show")" = \
	"devdax $((16 * MB)) $((32 * MB))" ] || { echo "FAIL: show says $show"; exit 1; }
sum_at() { dd if="$1" bs=4096 skip=$(($2 / 4096)) count=1 status=none | md5sum | cut -d' ' -f1; }

mapfile -t args < <(tagmem qemu-args $C --vm dax)
{
	echo ". /checks-lib.sh"
	echo "C=$C H=$H MB=$MB"
	for t in C H; do
		img=$G/state/images/${!t}.img
		echo "${t}0=$(sum_at "$img" $((16 * MB))) ${t}1=$(sum_at "$img" $((17 * MB)))"
	done
} >"$G/checks.sh"
cat >>"$G/checks.sh" <<'GUEST'
peek_sum() { dax_peek "$1" "$2" 4096 | digest 4096; }
verify() { # NAME TAG SUM0 SUM1
	local dev
	check "$1: /dev/dax/by-tag link" test -c "/dev/dax/by-tag/$2"
	dev=$(readlink -f "/dev/dax/by-tag/$2")
	eq "$1: the dax device is the data, without the header" \
		"$(cat /sys/bus/dax/devices/${dev#/dev/}/size)" $((32 * MB))
	eq "$1: host bytes at data offset 0 = device offset 0" "$(peek_sum "$dev" 0)" "$3"
	eq "$1: host bytes at data offset 1M = device offset 1M" "$(peek_sum "$dev" $MB)" "$4"
	check "$1: brokerd in the guest sees it" wait_until 20 tagmem lookup "$2"
	eq "$1: tagmem lookup = udev link" "$(tagmem lookup "$2")" "$dev"
}
udevadm settle
brokerd --backend host --socket /run/tagmem/brokerd.sock --state-dir /var/lib/tagmem 2>/tmp/brokerd.log &
wait_until 20 tagmem status
verify cold $C "$C0" "$C1"
printf 'GUEST-WROTE-AT-2M' | dax_peek "$(readlink -f /dev/dax/by-tag/$C)" $((2 * MB)) 17 -w
echo "TAGMEM-READY-FOR-HOTPLUG"
if wait_until 120 test -c /dev/dax/by-tag/$H; then
	echo "TAGMEM-SEEN $H"
	verify hot $H "$H0" "$H1"
else
	bad "hot-plugged $H never appeared as /dev/dax/by-tag"
fi
exit $CHECKS_FAILED
GUEST
start_guest "$G/checks.sh" 300 "${args[@]}" -qmp "unix:$G/vm.qmp,server=on,wait=off"
wait_console '^TAGMEM-READY-FOR-HOTPLUG' 200
out=$(tagmem --json attach $H --vm dax --qmp "$G/vm.qmp") || { echo "FAIL: attach: $out"; exit 1; }
wait_console "^TAGMEM-SEEN $H" 150
finish_guest 300
got=$(dd if="$G/state/images/$C.img" bs=1 skip=$((18 * MB)) count=17 status=none)
[ "$got" = GUEST-WROTE-AT-2M ] ||
	{ echo "FAIL: the file has '$got' at 16 MiB + 2 MiB, not the guest's write"; exit 1; }
echo "host: the guest's write at device offset 2M is at data offset 2M of the file"
out=$(tagmem --json flush $C --offset 2M --length 4K)
[ "$(jq -r '(.offset|tostring) + " " + (.length|tostring)' <<<"$out")" = "$((2 * MB)) 4096" ] ||
	{ echo "FAIL: flush of data offset 2M: $out"; exit 1; }
echo "host: a range flush names the data's offsets"
