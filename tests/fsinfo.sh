# Sourced by tests and benchmarks: what the filesystem under a path means for flushes.
# fs_orders_commits PATH: is PATH on ext4 with a journal, or on XFS? Only there can brokerd
# make a range durable alone (tests/run puts the tests' files on such an ext4; /tmp and the
# build tree may not be one).
fs_orders_commits() {
	local t name
	t=$(stat -f -c %T "$1")
	[ "$t" = xfs ] && return 0
	[ "$t" = ext2/ext3 ] || return 1
	name=$(basename "$(readlink "/sys/dev/block/$(stat -c %Hd:%Ld "$1")")")
	[ -r "/sys/fs/ext4/$name/journal_task" ] && [ "$(cat "/sys/fs/ext4/$name/journal_task")" != "<none>" ]
}

# fs_describe PATH: one line for a benchmark's header.
fs_describe() {
	local how="range flushes are made durable alone"
	fs_orders_commits "$1" || how="NO journal: every flush is an fdatasync of the whole image (use a journaled ext4 or XFS, e.g. TMPDIR=\$(tests/scratchfs.sh up))"
	echo "$(stat -f -c %T "$1" | sed 's|ext2/ext3|ext4|') on $(df --output=source "$1" | tail -1): $how"
}
