#!/usr/bin/env bash
# Theory of operation: the guest asks for durability. A guest writes through its DAX mapping
# of an image (devdax layout), then `tagmem --guest flush` of a range: the request goes to
# the guest agent, over the VM's channel to brokerd, which runs its own range flush. On the
# host, the range is clean (cachestat) and its bytes are on disk (O_DIRECT read), while a
# range the guest wrote and did not flush stays dirty. An asynchronous flush answers with an
# id at once. A guest cannot flush another VM's tag. Then the host hot-plugs an image whose
# filesystem runs out of real space under it (ext4 on a loop device over a small tmpfs): the
# guest's flush of it fails, and the error reaches the guest caller.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || guest_skip "needs root for the loop filesystem"
command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null || guest_skip "needs e2fsprogs and losetup"

D=f1f1f1f1-1111-4222-8333-444444444444   # the guest's image
F=f2f2f2f2-1111-4222-8333-444444444444   # an image on a filesystem that will fail
OTHER=f3f3f3f3-1111-4222-8333-444444444444
MB=$((1 << 20))
thin=$G/thin fs=$G/fs
mkdir -p "$thin" "$fs" "$G/state/images"
mount -t tmpfs -o size=24M tmpfs "$thin"
truncate -s 512M "$thin/backing"
loop=$(losetup --find --show "$thin/backing")
# brokerd and QEMU hold files on the loop filesystem: stop them before it goes, then the rest
cleanup_thin() {
	kill $HOST_BROKERD_PID $GUEST_PID 2>/dev/null || true
	wait 2>/dev/null || true
	umount "$fs" 2>/dev/null || umount -l "$fs" 2>/dev/null || true
	losetup -d "$loop" 2>/dev/null || true
	umount "$thin" 2>/dev/null || umount -l "$thin" 2>/dev/null || true
}
trap 'cleanup_thin; guest_cleanup' EXIT
mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 "$loop"
mount -o errors=continue "$loop" "$fs"

start_host_brokerd --dirty-budget 0 --pressure none --image-dir "$G/state/images" --image-dir "$fs"
tagmem image create "$G/state/images/d.img" --size 64M --tag $D --layout devdax >/dev/null
tagmem image create "$fs/f.img" --size 64M --tag $F --layout devdax >/dev/null
tagmem image create "$G/state/images/o.img" --size 16M --tag $OTHER >/dev/null
tagmem claim $OTHER --name othervm >/dev/null
mapfile -t args < <(tagmem qemu-args $D --vm gf)

cat >"$G/checks.sh" <<GUEST
. /checks-lib.sh
D=$D F=$F OTHER=$OTHER MB=$MB
GUEST
cat >>"$G/checks.sh" <<'GUEST'
udevadm settle
/usr/sbin/tagmem-guestd >/tmp/agent.log 2>&1 &
check "the agent is up" wait_until 30 test -S /run/tagmem/guest.sock
dev=$(readlink -f /dev/dax/by-tag/$D)
random_file /tmp/a $MB
random_file /tmp/b $MB
dax_peek $dev 0 $MB -w </tmp/a
dax_peek $dev $((8 * MB)) $MB -w </tmp/b
check "guest flush of [0, 1M)" tagmem --guest flush $D --offset 0 --length 1M
out=$(tagmem --guest --json flush $D --offset 0 --length 4K --async)
eq "an asynchronous flush answers with an id" "$(echo "$out" | jq -r '.flush_id | type')" number
out=$(tagmem --guest flush $OTHER 2>&1) && st=0 || st=$?
eq "another VM's tag is not this guest's to flush" "$st:$out" "1:tagmem: no tag of this VM has that uuid"
a=$(file_digest /tmp/a $MB)
echo "TAGMEM-FLUSHED $a"
if wait_until 150 test -c /dev/dax/by-tag/$F; then
	fdev=$(readlink -f /dev/dax/by-tag/$F)
	random_file /tmp/big $((48 * MB))
	dax_peek $fdev 0 $((48 * MB)) -w </tmp/big
	rm -f /tmp/big
	tagmem --guest flush $F >/tmp/flush.out 2>&1 && st=0 || st=$?
	eq "a flush the host cannot make durable fails in the guest" "$st" 1
	# why, in the kernel's words: out of space, an I/O error, or (once the journal aborted on
	# the failed write, which errors=continue does not prevent) a read-only filesystem
	check "the guest caller reads why" grep -qiE 'error|no space|input/output|read-only' /tmp/flush.out
	echo "guest got: $(cat /tmp/flush.out)"
else
	bad "the image on the failing filesystem never arrived"
fi
exit $CHECKS_FAILED
GUEST
start_guest "$G/checks.sh" 400 "${args[@]}" -qmp "unix:$G/vm.qmp,server=on,wait=off"
wait_console '^TAGMEM-FLUSHED ' 300
want=$(tr -d '\r' <"$G/console.log" | sed -n 's/^TAGMEM-FLUSHED \([0-9a-f]*\).*/\1/p')
img=$G/state/images/d.img
read -r _ dirty_in _ < <(python3 -c "import sys; sys.path.insert(0, '$top/tests/integration'); from pagecache import cachestat; print(*cachestat('$img', $((16 * MB)), $MB))")
read -r _ dirty_out _ < <(python3 -c "import sys; sys.path.insert(0, '$top/tests/integration'); from pagecache import cachestat; print(*cachestat('$img', $((24 * MB)), $MB))")
[ "$dirty_in" = 0 ] || { echo "FAIL: $dirty_in bytes of the flushed range are still dirty"; exit 1; }
if fs_orders_commits "$img"; then
	[ "$dirty_out" -gt 0 ] || { echo "FAIL: the range the guest did not flush is not dirty ($dirty_out)"; exit 1; }
else
	echo "host: $G is not on ext4 with a journal or XFS: brokerd made the whole image durable"
fi
got=$(dd if="$img" iflag=direct bs=1M skip=16 count=1 status=none | md5sum | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "FAIL: O_DIRECT read of the flushed range: $got, the guest wrote $want"; exit 1; }
echo "host: the flushed range is clean and on disk; $((dirty_out >> 10)) KiB outside it stay dirty"
out=$(tagmem --json attach $F --vm gf --qmp "$G/vm.qmp") || { echo "FAIL: attach F: $out"; exit 1; }
finish_guest 400
