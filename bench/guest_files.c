/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs inside the guest for bench/density: a program that works on files, as a VM's
 * application does, through the guest's filesystem (on a disk, or on a DAX mount).
 *   guest_files DIR TOTAL_MIB HOT_MIB SECONDS [GO]
 * It writes TOTAL_MIB of files (4 MiB each; every byte set, so every page exists), reads all
 * of them once, prints FILES-READY, waits for a line from GO if given (the console: the host
 * starts every guest's hot phase at once), then for SECONDS does 4 KiB operations at random places in
 * the first HOT_MIB of them (9 reads to 1 write), and prints FILES-DONE with the operations
 * per second and the guest's own page cache (Cached, kB). Exits non-zero on any short I/O.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_SIZE (4u << 20)
#define OP 4096u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long cached_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Cached: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	static char buf[FILE_SIZE];
	unsigned total, hot, nfiles, nhot;
	unsigned long long ops = 0, seed = 88172645463325252ull;
	double secs, t0, end;
	int *fds;

	if (argc != 5 && argc != 6) {
		fputs("usage: guest_files DIR TOTAL_MIB HOT_MIB SECONDS [GO]\n", stderr);
		return 2;
	}
	total = (unsigned)atoi(argv[2]);
	hot = (unsigned)atoi(argv[3]);
	secs = atof(argv[4]);
	nfiles = total / 4;
	nhot = hot / 4;
	if (!nfiles || !nhot || nhot > nfiles || secs <= 0) {
		fputs("guest_files: TOTAL_MIB and HOT_MIB must be multiples of 4, HOT ≤ TOTAL\n", stderr);
		return 2;
	}
	fds = calloc(nfiles, sizeof(*fds));
	for (unsigned i = 0; i < nfiles; i++) {
		char path[256];

		snprintf(path, sizeof(path), "%s/f%03u", argv[1], i);
		for (size_t b = 0; b < FILE_SIZE; b += OP)
			memset(buf + b, (int)((i * 131 + b / OP) & 0xff), OP);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fds[i] < 0 || write(fds[i], buf, FILE_SIZE) != FILE_SIZE) {
			perror(path);
			return 1;
		}
	}
	if (syncfs(fds[0]) < 0)
		return 1;
	for (unsigned i = 0; i < nfiles; i++)
		if (pread(fds[i], buf, FILE_SIZE, 0) != FILE_SIZE) {
			fprintf(stderr, "guest_files: short read of file %u\n", i);
			return 1;
		}
	printf("FILES-READY files=%u cached_kb=%ld\n", nfiles, cached_kb());
	fflush(stdout);
	if (argc == 6) {
		FILE *go = fopen(argv[5], "r");
		char line[64];

		if (!go || !fgets(line, sizeof(line), go)) {
			perror(argv[5]);
			return 1;
		}
		fclose(go);
	}
	t0 = now();
	end = t0 + secs;
	while (now() < end) {
		for (int k = 0; k < 256; k++, ops++) {
			unsigned f, page;

			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			f = (unsigned)(seed % nhot);
			page = (unsigned)((seed >> 20) % (FILE_SIZE / OP));
			if (ops % 10 == 9) {
				memset(buf, (int)(ops & 0xff), OP);
				if (pwrite(fds[f], buf, OP, (off_t)page * OP) != OP)
					return 1;
			} else if (pread(fds[f], buf, OP, (off_t)page * OP) != OP) {
				return 1;
			}
		}
	}
	printf("FILES-DONE ops=%llu ops_per_s=%.0f cached_kb=%ld\n", ops, (double)ops / (now() - t0),
	       cached_kb());
	return 0;
}
