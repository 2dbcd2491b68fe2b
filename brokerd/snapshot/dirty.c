/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which pages of a backing QEMU wrote since the last checkpoint (snapshot.h), from the
 * kernel's soft-dirty bits: writing "4" to /proc/PID/clear_refs clears them (and
 * write-protects the process's page table entries), the next write through QEMU's mapping
 * sets the bit again, and /proc/PID/pagemap shows it (bit 55) for every page of the mapping.
 *
 * What soft-dirty does not see, and so what counts as dirty anyway:
 *  - a page whose entry is gone. The kernel drops the entries of file pages it reclaims, or
 *    that a hole punch (a balloon) emptied, and the bit goes with the entry: such a page may
 *    have changed. So a page not present in QEMU's page table is dirty, except on device
 *    DAX, whose pages are never reclaimed and never punched;
 *  - pages of the backing QEMU has not mapped at all (nothing to ask about).
 * Writes through another process's mapping are not seen: brokerd checkpoints only backings
 * QEMU alone writes (its RAM and nvdimms; docs/save-format.md says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "snapshot.h"
#include "util.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_SOFT_DIRTY (1ull << 55)
#define PM_BATCH 8192                /* entries read at once: 64 KiB, 32 MiB of memory */

static int write_clear_refs(int procfd)
{
	_cleanup_close_ int fd = openat(procfd, "clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		return -errno;
	return 0;
}

static int read_entry(int pagemap, uintptr_t addr, uint64_t *ret)
{
	ssize_t n = pread(pagemap, ret, sizeof(*ret), (off_t)(addr / 4096 * sizeof(*ret)));

	return n == sizeof(*ret) ? 0 : n < 0 ? -errno : -EIO;
}

int dirty_probe(void)
{
	_cleanup_close_ int procfd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int pagemap = -1;
	volatile uint8_t *page;
	uint64_t before = 0, after = 0;
	int r;

	if (procfd < 0)
		return -errno;
	pagemap = openat(procfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap < 0)
		return -errno;
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return -errno;
	/* brokerd's own bits: nobody reads them, and clearing them costs only write faults */
	page[0] = 1;
	r = write_clear_refs(procfd);
	if (r == 0)
		r = read_entry(pagemap, (uintptr_t)page, &before);
	page[0] = 2;
	if (r == 0)
		r = read_entry(pagemap, (uintptr_t)page, &after);
	munmap((void *)page, 4096);
	if (r < 0)
		return r;
	/* cleared, then set by the write: the kernel tracks writes. A kernel without
	 * CONFIG_MEM_SOFT_DIRTY accepts the "4" and never sets the bit. */
	return !(before & PM_SOFT_DIRTY) && (after & PM_SOFT_DIRTY) ? 0 : -EOPNOTSUPP;
}

int dirty_open(pid_t pid, struct dirty_proc *p)
{
	char path[32];

	*p = (struct dirty_proc){ .pid = pid, .procfd = -1, .pagemap = -1 };
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	p->procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p->procfd < 0)
		return -errno;
	p->pagemap = openat(p->procfd, "pagemap", O_RDONLY | O_CLOEXEC);
	if (p->pagemap < 0) {
		int r = -errno;

		dirty_close(p);
		return r;
	}
	return 0;
}

void dirty_close(struct dirty_proc *p)
{
	if (p->procfd >= 0)
		close(p->procfd);
	if (p->pagemap >= 0)
		close(p->pagemap);
	p->procfd = p->pagemap = -1;
}

int dirty_clear(struct dirty_proc *p)
{
	return write_clear_refs(p->procfd);
}

/* One line of /proc/PID/maps: the addresses, the file offset, and the file (device, inode). */
static bool parse_maps_line(const char *line, uintptr_t *start, uintptr_t *end, uint64_t *off,
			    dev_t *dev, ino_t *ino)
{
	unsigned long long s, e, o, inode;
	unsigned maj, mn;
	char perms[8];

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &s, &e, perms, &o, &maj, &mn, &inode) != 7 ||
	    e <= s || (s | e) % 4096 || o % 4096 || perms[3] != 's')
		return false; /* only shared mappings write through to the backing */
	*start = (uintptr_t)s;
	*end = (uintptr_t)e;
	*off = o;
	*dev = makedev(maj, mn);
	*ino = (ino_t)inode;
	return true;
}

/* Set bits [from, to) of a bitmap of 64-bit words, a word at a time where it can. */
static void set_bits(uint64_t *map, uint64_t from, uint64_t to)
{
	while (from < to && from % 64)
		map[from / 64] |= 1ull << (from % 64), from++;
	for (; from + 64 <= to; from += 64)
		map[from / 64] = ~0ull;
	for (; from < to; from++)
		map[from / 64] |= 1ull << (from % 64);
}

/* Mark in `dirty` the pages of [vstart, vend) (file offsets from `off`, within the region
 * that starts at rstart) that are soft-dirty, or not present unless absent_clean. The loop
 * is the harvest's cost (a page each): one test of the entry, a store only for a dirty page. */
static int harvest_range(struct dirty_proc *p, uintptr_t vstart, uintptr_t vend, uint64_t off,
			 uint64_t rstart, bool absent_clean, uint64_t *dirty)
{
	uint64_t buf[PM_BATCH];

	for (uintptr_t a = vstart; a < vend;) {
		size_t want = (size_t)((vend - a) / 4096);
		uint64_t first = (off + (a - vstart) - rstart) / 4096;
		ssize_t n;

		if (want > PM_BATCH)
			want = PM_BATCH;
		n = pread(p->pagemap, buf, want * sizeof(buf[0]), (off_t)(a / 4096 * sizeof(buf[0])));
		if (n < 0)
			return -errno;
		if (n == 0 || n % sizeof(buf[0]))
			return -EIO;
		for (size_t i = 0; i < (size_t)n / sizeof(buf[0]); i++) {
			uint64_t e = buf[i];

			if ((e & PM_SOFT_DIRTY) || (!(e & (PM_PRESENT | PM_SWAPPED)) && !absent_clean)) {
				uint64_t page = first + i;

				dirty[page / 64] |= 1ull << (page % 64);
			}
		}
		a += (uintptr_t)n / sizeof(buf[0]) * 4096;
	}
	return 0;
}

int dirty_harvest(struct dirty_proc *p, dev_t dev, ino_t ino, uint64_t rstart, uint64_t rlen,
		  bool absent_clean, uint64_t *dirty, uint64_t *ret_mapped)
{
	_cleanup_close_ int mfd = openat(p->procfd, "maps", O_RDONLY | O_CLOEXEC);
	uint64_t npages = rlen / 4096, words = (npages + 63) / 64, mapped = 0;
	uint64_t *seen = calloc(words ? words : 1, sizeof(*seen));
	FILE *f = mfd >= 0 ? fdopen(mfd, "re") : NULL;
	char line[4096 + 128];
	int r = 0;

	if (!seen || !f) {
		r = !seen ? -ENOMEM : -errno;
		goto out;
	}
	mfd = -1; /* the FILE owns it */
	while (r == 0 && fgets(line, sizeof(line), f)) {
		uintptr_t s, e;
		uint64_t off, lo, hi;
		dev_t d;
		ino_t i;

		if (!parse_maps_line(line, &s, &e, &off, &d, &i) || d != dev || i != ino)
			continue;
		/* the part of this mapping inside the region */
		lo = off > rstart ? off : rstart;
		hi = off + (e - s) < rstart + rlen ? off + (e - s) : rstart + rlen;
		if (lo >= hi)
			continue;
		set_bits(seen, (lo - rstart) / 4096, (hi - rstart) / 4096);
		r = harvest_range(p, s + (uintptr_t)(lo - off), s + (uintptr_t)(hi - off), lo, rstart,
				  absent_clean, dirty);
	}
	/* a page QEMU does not map is not tracked: dirty */
	for (uint64_t w = 0; r == 0 && w < words; w++) {
		uint64_t valid = w == words - 1 && npages % 64 ? (1ull << (npages % 64)) - 1 : ~0ull;

		mapped += (uint64_t)__builtin_popcountll(seen[w] & valid);
		dirty[w] |= ~seen[w] & valid;
	}
	if (ret_mapped)
		*ret_mapped = mapped * 4096;
out:
	if (f)
		fclose(f);
	free(seen);
	return r;
}
