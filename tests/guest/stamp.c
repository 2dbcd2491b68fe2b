/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest-side crash-test helper: stamped 4 KiB blocks in an image, written the way a VM writes
 * them (through a shared mapping, left dirty in the page cache for brokerd to flush) and
 * checked after a replayed crash.
 *
 *   stamp write IMAGE DATA_OFFSET VERSION BLOCK…   each block filled with its stamp
 *   stamp check IMAGE DATA_OFFSET < EXPECTED       lines "BLOCK MIN_VERSION"
 *   stamp where IMAGE OFFSET                       the byte on the filesystem's device
 *                                                  that holds OFFSET (FIEMAP), to make
 *                                                  exactly its writes fail
 *
 * A block's stamp is 256 copies of { le64 block, le64 version }: a block holding one version
 * whole is intact; a mixture is a torn write; zeroes are a lost one. check accepts a block
 * whose every copy names the block and one version at least MIN_VERSION (a later write that
 * was not yet acknowledged may be there too), prints each block that fails and exits 1.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK 4096u
#define UNITS (BLOCK / 16)

static int usage(void)
{
	fputs("usage: stamp write IMAGE DATA_OFFSET VERSION BLOCK...\n"
	      "       stamp check IMAGE DATA_OFFSET < lines 'BLOCK MIN_VERSION'\n"
	      "       stamp where IMAGE OFFSET\n", stderr);
	return 2;
}

static int write_blocks(const char *path, uint64_t base, uint64_t version, int n, char **blocks)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		perror(path);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		uint64_t b = strtoull(blocks[i], NULL, 0), *p;

		p = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 (off_t)(base + b * BLOCK));
		if (p == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
		for (unsigned u = 0; u < UNITS; u++) {
			p[2 * u] = htole64(b);
			p[2 * u + 1] = htole64(version);
		}
		munmap(p, BLOCK);
	}
	close(fd);
	return 0;
}

static int check_blocks(const char *path, uint64_t base)
{
	unsigned long long b, min;
	uint64_t buf[BLOCK / 8];
	int fd = open(path, O_RDONLY | O_CLOEXEC), bad = 0, seen = 0;

	if (fd < 0) {
		printf("stamp: %s: %s\n", path, strerror(errno));
		return 1;
	}
	while (scanf("%llu %llu", &b, &min) == 2) {
		uint64_t v0;
		ssize_t got = pread(fd, buf, BLOCK, (off_t)(base + b * BLOCK));

		seen++;
		if (got != (ssize_t)BLOCK) {
			printf("stamp: %s block %llu: short read (%zd)\n", path, b, got);
			bad++;
			continue;
		}
		v0 = le64toh(buf[1]);
		for (unsigned u = 0; u < UNITS; u++) {
			if (le64toh(buf[2 * u]) != b || le64toh(buf[2 * u + 1]) != v0) {
				printf("stamp: %s block %llu: %s (unit %u holds block %" PRIu64
				       " version %" PRIu64 ")\n", path, b,
				       buf[2 * u] || buf[2 * u + 1] ? "torn or misplaced" : "lost",
				       u, le64toh(buf[2 * u]), le64toh(buf[2 * u + 1]));
				bad++;
				goto next;
			}
		}
		if (v0 < min) {
			printf("stamp: %s block %llu: version %" PRIu64 ", acknowledged %llu\n", path,
			       b, v0, min);
			bad++;
		}
next:;
	}
	close(fd);
	fprintf(stderr, "stamp: %s: %d blocks checked, %d bad\n", path, seen, bad);
	return bad ? 1 : 0;
}

static int where(const char *path, uint64_t off)
{
	struct {
		struct fiemap map;
		struct fiemap_extent ext[1];
	} q = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	const struct fiemap_extent *e = &q.ext[0];

	if (fd < 0) {
		perror(path);
		return 1;
	}
	q.map.fm_start = off;
	q.map.fm_length = 1;
	q.map.fm_flags = FIEMAP_FLAG_SYNC;
	q.map.fm_extent_count = 1;
	if (ioctl(fd, FS_IOC_FIEMAP, &q.map) < 0) {
		perror("FIEMAP");
		return 1;
	}
	close(fd);
	if (q.map.fm_mapped_extents != 1 || off < e->fe_logical ||
	    off >= e->fe_logical + e->fe_length ||
	    (e->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
			    FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_ENCODED))) {
		fprintf(stderr, "stamp: %s: offset %" PRIu64 " has no plain block on the device\n",
			path, off);
		return 1;
	}
	printf("%llu\n", (unsigned long long)(e->fe_physical + (off - e->fe_logical)));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "write"))
		return write_blocks(argv[2], strtoull(argv[3], NULL, 0),
				    strtoull(argv[4], NULL, 0), argc - 5, argv + 5);
	if (argc == 4 && !strcmp(argv[1], "where"))
		return where(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "check"))
		return check_blocks(argv[2], strtoull(argv[3], NULL, 0));
	return usage();
}
