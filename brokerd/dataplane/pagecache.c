/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Page-cache mechanisms, one kernel interface each: cachestat, sync_file_range, fadvise,
 * a journal-commit barrier, /proc/PID/maps and process_madvise. No broker state here; the
 * callers (worker threads) decide what to do with them. See dataplane.h.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dataplane.h"
#include "util.h"

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define EXT4_MAGIC 0xEF53
#define XFS_MAGIC 0x58465342
#define TMPFS_MAGIC 0x01021994
#define RAMFS_MAGIC 0x858458f6
#define BARRIER_NAME ".tagmem-barrier"

struct kernel_cachestat_range {
	uint64_t off, len;
};
struct kernel_cachestat {
	uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

static uint64_t page_size(void)
{
	static uint64_t ps;

	if (!ps)
		ps = (uint64_t)sysconf(_SC_PAGESIZE);
	return ps;
}

int pc_cachestat(int fd, uint64_t off, uint64_t len, struct pc_counts *ret)
{
	struct kernel_cachestat_range range = { off, len };
	struct kernel_cachestat cs;
	uint64_t ps = page_size();

	if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0)
		return -errno;
	ret->cached = cs.nr_cache * ps;
	ret->dirty = cs.nr_dirty * ps;
	ret->writeback = cs.nr_writeback * ps;
	ret->evicted = cs.nr_evicted * ps;
	return 0;
}

int pc_write_range(int fd, uint64_t off, uint64_t len)
{
	/* all three flags: wait for writeback already under way (it may have started before
	 * the caller's writes), write, wait; the kernel then reports writeback errors too */
	if (sync_file_range(fd, (off64_t)off, (off64_t)len,
			    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				    SYNC_FILE_RANGE_WAIT_AFTER) < 0)
		return -errno;
	return 0;
}

int pc_start_writeback(int fd, uint64_t off, uint64_t len)
{
	if (sync_file_range(fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE) < 0)
		return -errno;
	return 0;
}

int pc_drop(int fd, uint64_t off, uint64_t len)
{
	return -posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

/*
 * ext4 commits in order only through its journal, and ext4 may have none (made with
 * ^has_journal, or ext2 mounted by the ext4 driver): then an fsync of the barrier writes the
 * barrier's inode alone, and the image's block allocations wait for writeback. Its sysfs
 * directory (named like the device) says whether a journal thread runs; /proc/fs/jbd2 lists
 * the journals where that attribute is older. Anything unreadable counts as no journal, and
 * the image is made durable with fdatasync: slower, never wrong.
 */
static bool ext4_has_journal(dev_t dev)
{
	char link[64], target[PATH_MAX], path[PATH_MAX], buf[32];
	const char *name;
	ssize_t n;
	int fd;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	name = strrchr(target, '/');
	name = name ? name + 1 : target;
	if (!*name || strlen(name) > 200 || !strcmp(name, ".."))
		return false;
	snprintf(path, sizeof(path), "/sys/fs/ext4/%.200s/journal_task", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/fs/jbd2/%.200s-8", name);
		return access(path, F_OK) == 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strncmp(buf, "<none>", 6) != 0;
}

bool pc_fs_commits_in_order(int fd)
{
	struct statfs sf;
	struct stat st;

	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0)
		return false;
	if (sf.f_type == XFS_MAGIC) /* its log is not optional */
		return true;
	return sf.f_type == EXT4_MAGIC && ext4_has_journal(st.st_dev);
}

bool pc_fs_ext4_without_journal(int fd)
{
	struct statfs sf;
	struct stat st;

	return fstatfs(fd, &sf) == 0 && fstat(fd, &st) == 0 && sf.f_type == EXT4_MAGIC &&
	       !ext4_has_journal(st.st_dev);
}

bool pc_fs_in_memory(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == (typeof(sf.f_type))RAMFS_MAGIC);
}

int pc_barrier_open(int dirfd)
{
	int fd = openat(dirfd, BARRIER_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int pc_barrier(int barrier_fd)
{
	/* An explicit timestamp change dirties the inode in the running transaction (lazytime
	 * only defers implicit ones); fsync must then commit that transaction, and with it
	 * everything journalled before, and flush the device's cache. */
	if (futimens(barrier_fd, NULL) < 0 || fsync(barrier_fd) < 0)
		return -errno;
	return 0;
}

bool pc_parse_maps_line(const char *line, dev_t dev, ino_t ino, struct pc_mapping *ret)
{
	unsigned long long start, end, off, inode;
	unsigned maj, min;
	char perms[8];

	/* "7f..-7f.. rw-s 00000000 fe:01 1234   /path" (the path may hold anything) */
	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &off, &maj, &min,
		   &inode) != 7)
		return false;
	if (end <= start || inode != (unsigned long long)ino || makedev(maj, min) != dev)
		return false;
	ret->start = start;
	ret->end = end;
	ret->file_off = off;
	return true;
}

static int scan_pid(const char *proc_root, pid_t pid, dev_t dev, ino_t ino,
		    struct pc_mapping **maps, size_t *n, size_t *cap)
{
	char path[PATH_MAX], line[PATH_MAX + 128];
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, pid);
	f = fopen(path, "re");
	if (!f)
		return 0; /* gone, or not ours to read: nothing we could page out anyway */
	while (fgets(line, sizeof(line), f)) {
		struct pc_mapping m;

		if (!strchr(line, '\n') && !feof(f)) { /* an overlong path: skip its remainder */
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
		}
		if (!pc_parse_maps_line(line, dev, ino, &m))
			continue;
		m.pid = pid;
		r = grow_array(maps, cap, *n, sizeof(**maps));
		if (r < 0)
			break;
		(*maps)[(*n)++] = m;
	}
	fclose(f);
	return r;
}

int pc_find_mappings(const char *proc_root, dev_t dev, ino_t ino, struct pc_mapping **ret,
		     size_t *ret_count)
{
	struct pc_mapping *maps = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(proc_root);
	int r = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == getpid())
			continue;
		r = scan_pid(proc_root, (pid_t)pid, dev, ino, &maps, &n, &cap);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		free(maps);
		return r;
	}
	*ret = maps;
	*ret_count = n;
	return 0;
}

int pc_pageout(const struct pc_mapping *m, uint64_t off, uint64_t len)
{
	uint64_t map_len = m->end - m->start, lo, hi;
	struct iovec iov;
	int pidfd, r = 0;

	/* the mapping shows file bytes [file_off, file_off + map_len) */
	lo = MAX(off, m->file_off);
	hi = MIN(off + len, m->file_off + map_len);
	if (lo >= hi)
		return 0;
	lo &= ~(page_size() - 1);
	pidfd = (int)syscall(SYS_pidfd_open, m->pid, 0);
	if (pidfd < 0)
		return errno == ESRCH ? 0 : -errno;
	iov.iov_base = (void *)(uintptr_t)(m->start + (lo - m->file_off));
	iov.iov_len = hi - lo;
	while (iov.iov_len) {
		ssize_t done = syscall(SYS_process_madvise, pidfd, &iov, 1, MADV_PAGEOUT, 0);

		if (done < 0) {
			/* the process unmapped or exited meanwhile: its pages are its business */
			r = (errno == ESRCH || errno == ENOMEM) ? 0 : -errno;
			break;
		}
		if (done == 0)
			break;
		iov.iov_base = (char *)iov.iov_base + done;
		iov.iov_len -= (size_t)done;
	}
	close(pidfd);
	return r;
}
