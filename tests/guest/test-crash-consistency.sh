#!/usr/bin/env bash
# Theory of operation: tagmem's durability promises hold across a power cut, not only across
# kill -9 (which loses no page cache). Inside the tests' guest, brokerd keeps its state and
# images on a filesystem over dm-log-writes, which logs every write to a second disk in the
# order the writes became durable (a write enters the log only once a flush or FUA covered
# it). A workload mixes what a VM and an orchestrator do: writes into images through a
# shared mapping, range flushes, whole flushes, asynchronous flushes, image creation, claims
# and releases, and puts a mark in the log after each acknowledgement. At the end a dm table
# under the filesystem fails the writeback of one image block: the flush's io_error is the
# acknowledgement that the lost-writes record is durable (not with data=journal, where the
# flush is durable in the journal and the failure comes later, at a checkpoint). Then the log is
# replayed onto a third disk and, at every mark and at a random sample of flushes between
# them (each a point where the power could have gone), the replayed filesystem is mounted
# on a snapshot (so its journal recovery runs and changes nothing of the replay) and checked:
# every block acknowledged durable holds its bytes, registry.json parses and holds every
# image and claim acknowledged and the acknowledged lost-writes record, and no release
# acknowledged comes back.
#
# Filesystems (CRASH_FS): ext4 (default options: a journal, data=ordered), ext4-journal
# (data=journal) and xfs by default. ctest runs this script once per filesystem, as
# guest/crash-ext4, guest/crash-ext4-journal and guest/crash-xfs (the sanitizer build registers
# ext4 alone: the filesystems are the kernel's; what the sanitizer watches is brokerd).
# ext4-nojournal runs on request: there
# brokerd falls back to an fdatasync of the whole image, and the filesystem itself loses
# files after a power cut (e2fsck drops inodes that were durable), so it has violations that
# no flush can prevent (docs/operations.md). Journal commits are made rare (commit=600) so
# that only the product's own barriers make things durable: the test must not pass because a
# timer happened to fire. CRASH_OPS (default 30) operations per filesystem, CRASH_SAMPLES
# (default 10) flush points sampled between the marks, CRASH_SEED (default 1).
. "$(dirname "$0")/lib.sh"

fs_list=${CRASH_FS:-ext4 ext4-journal xfs}
ops=${CRASH_OPS:-30} samples=${CRASH_SAMPLES:-10} seed=${CRASH_SEED:-1}
export GUEST_BINS="/usr/sbin/dmsetup /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck /usr/sbin/mkfs.xfs"
export GUEST_MODULES="virtio_blk dm_log_writes dm_snapshot ext4 xfs"
for b in $GUEST_BINS; do
	[ -x "$b" ] || guest_skip "$b is missing (tests/deps.sh guest installs it)"
done

total_points=0 total_violations=0
for fs in $fs_list; do
	for d in data log replay cow; do rm -f "$G/$d.img"; done
	truncate -s 512M "$G/data.img" "$G/replay.img"
	truncate -s 2G "$G/log.img"
	truncate -s 256M "$G/cow.img"
	drives=()
	for d in data log replay cow; do
		drives+=(-drive "file=$G/$d.img,if=none,id=$d,format=raw,cache=unsafe,discard=unmap"
			-device "virtio-blk-pci,drive=$d,serial=crash-$d")
	done
	{
		echo ". /checks-lib.sh"
		echo "FS=$fs OPS=$ops SAMPLES=$samples SEED=$seed"
		cat "$top/tests/guest/crash-workload.sh"
	} >"$G/checks.sh"
	start_guest "$G/checks.sh" 900 "${drives[@]}"
	finish_guest 900
	line=$(grep -E '^TAGMEM-CRASH ' "$G/report" | tail -1)
	[ -n "$line" ] || { echo "FAIL: $fs: the guest gave no crash figures" >&2; exit 1; }
	echo "crash: $fs: ${line#TAGMEM-CRASH }"
	set -- $line
	total_points=$((total_points + $3)) total_violations=$((total_violations + $5))
	mv "$G/console.log" "$G/console-$fs.log"
done
echo "crash: $total_points crash points checked on ${fs_list// /, }: $total_violations violations"
[ "$total_violations" = 0 ] && [ "$total_points" -gt 0 ]
