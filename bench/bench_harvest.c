/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bench_harvest SIZE_MIB [REPEATS]: what finding a checkpoint's written pages costs over
 * SIZE_MIB of memory mapped shared from a file (on /dev/shm), touched whole, as QEMU's RAM is:
 *   pagemap       brokerd's harvest (dirty.c): /proc/PID/pagemap read, 8 bytes a page
 *   pagemap_scan  the PAGEMAP_SCAN ioctl (Linux ≥ 6.7): the matching pages as ranges, in one
 *                 call (here: the pages not present, which on a touched mapping is none, so
 *                 it walks everything and returns nothing, as a harvest of a clean VM would)
 *   read          baseline: reading the same memory once, which a full save at least does
 * Medians of REPEATS (default 9), in microseconds, one line each. Whether this kernel has
 * soft-dirty does not change the walk's cost: the bits are read either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"
#include "util.h"

/* PAGEMAP_SCAN's ABI (include/uapi/linux/fs.h, 6.7), for headers older than the kernel */
struct pm_scan_arg_abi {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct page_region_abi {
	uint64_t start, end, categories;
};
#define PAGEMAP_SCAN_ABI _IOWR('f', 16, struct pm_scan_arg_abi)
#define PAGE_IS_PRESENT_ABI (1ull << 3)

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	uint64_t size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) << 20;
	unsigned reps = argc > 2 ? (unsigned)atoi(argv[2]) : 9;
	char path[] = "/dev/shm/tagmem-harvest-XXXXXX";
	uint64_t t_pm[64], t_scan[64], t_read[64], sink = 0, found = 0;
	uint64_t *bits = calloc(size / 4096 / 64 + 1, sizeof(uint64_t));
	uint8_t *m;
	struct page_region_abi vec[64];
	struct dirty_proc p;
	struct stat st;
	bool scan = true;
	int fd = mkstemp(path);

	if (fd < 0 || !bits || reps < 1 || reps > 64 || ftruncate(fd, (off_t)size) < 0 ||
	    fstat(fd, &st) < 0) {
		fprintf(stderr, "bench_harvest: setup: %m\n");
		return 1;
	}
	unlink(path);
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || dirty_open(getpid(), &p) < 0) {
		fprintf(stderr, "bench_harvest: map: %m\n");
		return 1;
	}
	for (uint64_t off = 0; off < size; off += 4096)
		m[off] = (uint8_t)off; /* every page present, as a guest that ran a while */
	for (unsigned r = 0; r < reps; r++) {
		struct pm_scan_arg_abi a = {
			.size = sizeof(a), .start = (uintptr_t)m, .end = (uintptr_t)m + size,
			.vec = (uintptr_t)vec, .vec_len = 64, .category_inverted = PAGE_IS_PRESENT_ABI,
			.category_anyof_mask = PAGE_IS_PRESENT_ABI, .return_mask = PAGE_IS_PRESENT_ABI,
		};
		uint64_t t = now_usec();

		memset(bits, 0, (size / 4096 / 64 + 1) * sizeof(uint64_t));
		if (dirty_harvest(&p, st.st_dev, st.st_ino, 0, size, false, bits, NULL) < 0) {
			fprintf(stderr, "bench_harvest: harvest: %m\n");
			return 1;
		}
		t_pm[r] = now_usec() - t;
		t = now_usec();
		if (scan) {
			long n = ioctl(p.pagemap, PAGEMAP_SCAN_ABI, &a);

			if (n < 0)
				scan = false; /* ENOTTY / EINVAL: a kernel before 6.7 */
			else
				found += (uint64_t)n;
		}
		t_scan[r] = now_usec() - t;
		t = now_usec();
		for (uint64_t off = 0; off < size; off += 64)
			sink += *(volatile uint64_t *)(m + off);
		t_read[r] = now_usec() - t;
	}
	printf("pages %llu\n", (unsigned long long)(size / 4096));
	printf("pagemap_usec %llu\n", (unsigned long long)median(t_pm, reps));
	if (scan)
		printf("pagemap_scan_usec %llu\n", (unsigned long long)median(t_scan, reps));
	else
		printf("pagemap_scan_usec none (this kernel has no PAGEMAP_SCAN)\n");
	printf("read_usec %llu\n", (unsigned long long)median(t_read, reps));
	printf("soft_dirty %s\n", dirty_probe() == 0 ? "yes" : "no");
	return sink == 42 && found == 42; /* keeps the reads */
}
