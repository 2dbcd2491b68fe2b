#!/usr/bin/env bash
# tests/scratchfs.sh up|down [MOUNTPOINT]: a journaled ext4 filesystem for the tests' files.
#
# Images are expected to live on a journaled filesystem (ext4, XFS), and brokerd's range
# flush relies on the journal's ordered commits. A build machine's own filesystem need not
# have a journal (this project's CI machines run ext4 without one), and /tmp may be tmpfs,
# which has no writeback at all: there, what the tests check would quietly be a different
# path. So tests/run makes a fresh ext4 (default features, journal included) on a loop
# device backed by a sparse file beside it, and points TMPDIR at it.
#   up     prints the mount point (empty, and exit 0, where it cannot: not root, no loop
#          device or mkfs.ext4; the tests then use /tmp and say what they skip)
#   down   unmounts it and removes it and its backing file
set -euo pipefail
size=${TAGMEM_SCRATCH_SIZE:-32G}

case ${1:-} in
up)
	[ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null ||
		exit 0
	mnt=$(mktemp -d /var/tmp/tagmem-tests.XXXXXX)
	img=$mnt.img
	truncate -s "$size" "$img"
	# direct I/O: the loop device then behaves like a disk, whose cache flush is a flush, not
	# an fsync of whatever the backing file has in the host's page cache
	dev=$(losetup --find --show --direct-io=on "$img" 2>/dev/null) || dev=""
	if [ -z "$dev" ] || ! mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 || ! mount "$dev" "$mnt" 2>/dev/null; then
		[ -n "$dev" ] && losetup -d "$dev"
		rm -f "$img"
		rmdir "$mnt"
		echo "tests/scratchfs.sh: cannot make a loop ext4 here; the tests use /tmp" >&2
		exit 0
	fi
	chmod 1777 "$mnt" # like /tmp: tests run parts as other users
	echo "$mnt"
	;;
down)
	mnt=${2:?which mount point}
	case $mnt in /var/tmp/tagmem-tests.*) ;; *) echo "not a scratch fs: $mnt" >&2; exit 2 ;; esac
	dev=$(findmnt -no SOURCE "$mnt" 2>/dev/null || true)
	umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	case $dev in /dev/loop*) losetup -d "$dev" 2>/dev/null || true ;; esac
	rm -f "$mnt.img"
	rmdir "$mnt" 2>/dev/null || true
	;;
*)
	echo "usage: tests/scratchfs.sh up | down MOUNTPOINT" >&2
	exit 2
	;;
esac
