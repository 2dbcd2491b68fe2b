#!/usr/bin/env bash
# Theory of operation: the fake-DAX promise, in a real guest. An image with the fsdax layout
# reaches an unmodified guest (Debian's 6.1 kernel) as a DAX-capable /dev/pmemX: the pfn info
# block brokerd wrote in the image's header makes the guest kernel put a pfn device under the
# namespace, with the page map in guest RAM. The guest makes ext4 on it (4 KiB blocks, which
# DAX needs) and mounts it with -o dax, then writes and reads a 24 MiB file. Its own page
# cache (Cached in /proc/meminfo) must not grow by the file, while on the host the image's
# resident pages (brokerd's cachestat, `tagmem show`) grow by at least the file: the host
# holds the only copy in memory. Afterwards the host reads the file out of the image's data
# (a loop device at the data offset, debugfs) and it is the guest's, byte for byte.
. "$(dirname "$0")/lib.sh"
export GUEST_BINS="/usr/sbin/mkfs.ext4"
export GUEST_MODULES="ext4"
for b in $GUEST_BINS /usr/sbin/debugfs /usr/sbin/losetup; do
	[ -x "$b" ] || guest_skip "$b is missing (tests/deps.sh guest installs e2fsprogs)"
done

T=fda50000-1111-4222-8333-444444444444
MB=$((1 << 20))
FILE_MB=24
start_host_brokerd
tagmem image create "$G/state/images/$T.img" --size 64M --tag $T --layout fsdax >/dev/null
show=$(tagmem --json show $T)
[ "$(jq -r '.layout + " " + (.data_offset|tostring)' <<<"$show")" = "fsdax $((16 * MB))" ] ||
	{ echo "FAIL: show says $show"; exit 1; }
resident() { tagmem --json show $T | jq -er .page_cache.resident_bytes; }
before=$(resident)

mapfile -t args < <(tagmem qemu-args $T --vm fsdax)
{
	echo ". /checks-lib.sh"
	echo "T=$T MB=$MB FILE_MB=$FILE_MB"
} >"$G/checks.sh"
cat >>"$G/checks.sh" <<'GUEST'
cached_kb() { awk '/^Cached:/ {print $2}' /proc/meminfo; }
udevadm settle
check "by-tag link to a block device" test -b "/dev/disk/by-tag/$T"
dev=$(readlink -f "/dev/disk/by-tag/$T")
ns=$(basename "$(readlink -f /sys/block/${dev#/dev/}/device)")
case $ns in pfn*) ok "the namespace is held by a pfn device ($ns)" ;;
	*) bad "the namespace is held by a pfn device" "its device is $ns" ;; esac
eq "the device is the data, without the header" \
	"$(($(cat /sys/block/${dev#/dev/}/size) * 512))" $((64 * MB))
check "dax is supported by the device" test "$(cat /sys/block/${dev#/dev/}/queue/dax)" = 1
mkfs.ext4 -q -F -b 4096 "$dev"
mkdir -p /mnt
mount -t ext4 -o dax "$dev" /mnt
check "mounted with dax" grep -q " /mnt ext4 [^ ]*dax" /proc/mounts
sync
echo 3 >/proc/sys/vm/drop_caches
c0=$(cached_kb)
random_file /mnt/f $((FILE_MB * MB))
sync
c1=$(cached_kb)
echo 3 >/proc/sys/vm/drop_caches
sum=$(file_digest /mnt/f $((FILE_MB * MB)))
c2=$(cached_kb)
echo "TAGMEM-SUM $sum"
echo "TAGMEM-CACHED before=$c0 written=$c1 read=$c2 kB"
# without dax the guest would hold the whole file: 24576 kB
check "writing 24 MiB grew the guest's page cache by less than 2 MiB" test $((c1 - c0)) -lt 2048
check "reading it back grew it by less than 2 MiB" test $((c2 - c0)) -lt 2048
umount /mnt
exit $CHECKS_FAILED
GUEST
run_guest "$G/checks.sh" 300 "${args[@]}"
after=$(resident)
echo "host: the image's resident pages went from $((before / MB)) MiB to $((after / MB)) MiB"
[ $((after - before)) -ge $((FILE_MB * MB)) ] ||
	{ echo "FAIL: the host's page cache of the image did not take the file"; exit 1; }
# the file, read by the host out of the image's data (the filesystem starts at data offset 0)
sum=$(sed -n 's/^TAGMEM-SUM //p' "$G/report")
[ -n "$sum" ] || { echo "FAIL: the guest reported no digest"; exit 1; }
loop=$(losetup --find --show --read-only --offset $((16 * MB)) --sizelimit $((64 * MB)) \
	"$G/state/images/$T.img")
trap 'losetup -d "$loop" 2>/dev/null || true; guest_cleanup' EXIT
debugfs -R "dump /f $G/f.host" "$loop" 2>/dev/null
losetup -d "$loop"
[ "$(stat -c %s "$G/f.host")" = $((FILE_MB * MB)) ] || { echo "FAIL: the host read $(stat -c %s "$G/f.host") bytes"; exit 1; }
[ "$(md5sum <"$G/f.host" | cut -d' ' -f1)" = "$sum" ] ||
	{ echo "FAIL: the file in the image is not the guest's"; exit 1; }
echo "host: the guest's file, read out of the image's data, matches the guest's digest"
