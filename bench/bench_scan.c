/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cold-plug scan of a DCD sysfs tree: R dax regions and N extents (each tagged), laid out as
 * the kernel does (regions under CXL regions, bus links), on tmpfs.
 *   bench_scan DIR REGIONS EXTENTS [RUNS]
 * Prints the median time of dcd_scan() (what brokerd's host backend does at start) and, as
 * the floor, the median time to open/read/close the same attribute files in a plain loop.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dcd.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void put(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, value, strlen(value)) < 0) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	char path[512], val[64];
	unsigned regions, extents, runs = 5;
	double t_scan[32], t_floor[32];
	char **files;
	size_t nfiles = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_scan DIR REGIONS EXTENTS [RUNS]\n");
		return 2;
	}
	regions = (unsigned)atoi(argv[2]);
	extents = (unsigned)atoi(argv[3]);
	if (argc > 4)
		runs = (unsigned)atoi(argv[4]);
	if (runs > 32)
		runs = 32;
	files = calloc((size_t)extents * 3 + regions, sizeof(*files));
	snprintf(path, sizeof(path), "mkdir -p %s/sys/bus/cxl/devices %s/sys/bus/dax/devices "
		 "%s/sys/devices/cxl", argv[1], argv[1], argv[1]);
	if (system(path) != 0)
		return 1;
	for (unsigned r = 0; r < regions; r++) {
		char link[512];
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u", argv[1], r);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/mode", argv[1], r);
		put(path, "dynamic_ram_a\n");
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u", argv[1], r, r);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u/dax_region", argv[1], r, r);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u/dax_region/seed", argv[1], r, r);
		snprintf(val, sizeof(val), "dax%u.0\n", r);
		put(path, val);
		files[nfiles++] = strdup(path);
		snprintf(link, sizeof(link), "../../../devices/cxl/region%u/dax_region%u", r, r);
		snprintf(path, sizeof(path), "%s/sys/bus/cxl/devices/dax_region%u", argv[1], r);
		if (symlink(link, path) < 0)
			return 1;
		/* every DCD region has a seed dax device (size 0) to claim tags with */
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u/dax%u.0", argv[1], r, r, r);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u/dax%u.0/size", argv[1], r, r, r);
		put(path, "0\n");
		snprintf(path, sizeof(path), "%s/sys/devices/cxl/region%u/dax_region%u/dax%u.0/uuid", argv[1], r, r, r);
		put(path, "\n");
		snprintf(link, sizeof(link), "../../../devices/cxl/region%u/dax_region%u/dax%u.0", r, r, r);
		snprintf(path, sizeof(path), "%s/sys/bus/dax/devices/dax%u.0", argv[1], r);
		if (symlink(link, path) < 0)
			return 1;
	}
	for (unsigned i = 0; i < extents; i++) {
		unsigned r = i % regions, id = i / regions;
		char dir[400];
		snprintf(dir, sizeof(dir), "%s/sys/devices/cxl/region%u/dax_region%u/extent%u.%u",
			 argv[1], r, r, r, id);
		mkdir(dir, 0755);
		snprintf(path, sizeof(path), "%s/offset", dir);
		snprintf(val, sizeof(val), "%#llx\n", (unsigned long long)id << 28);
		put(path, val);
		files[nfiles++] = strdup(path);
		snprintf(path, sizeof(path), "%s/length", dir);
		put(path, "0x10000000\n");
		files[nfiles++] = strdup(path);
		snprintf(path, sizeof(path), "%s/uuid", dir);
		snprintf(val, sizeof(val), "%08x-0000-4000-8000-%012x\n", r, i);
		put(path, val);
		files[nfiles++] = strdup(path);
	}

	for (unsigned k = 0; k < runs; k++) {
		struct sysfs *s;
		struct dcd_snapshot snap;
		double t0 = now_ms();

		if (sysfs_open(argv[1], &s) < 0 || dcd_scan(s, &snap) < 0)
			return 1;
		t_scan[k] = now_ms() - t0;
		if (snap.nextents != extents || snap.nregions != regions) {
			fprintf(stderr, "bench_scan: read %zu extents in %zu regions, wrote %u in %u\n",
				snap.nextents, snap.nregions, extents, regions);
			return 1;
		}
		dcd_snapshot_clear(&snap);
		sysfs_close(s);

		t0 = now_ms();
		for (size_t f = 0; f < nfiles; f++) {
			char buf[128];
			int fd = open(files[f], O_RDONLY);
			if (fd < 0 || read(fd, buf, sizeof(buf)) < 0)
				return 1;
			close(fd);
		}
		t_floor[k] = now_ms() - t0;
	}
	qsort(t_scan, runs, sizeof(double), cmp_d);
	qsort(t_floor, runs, sizeof(double), cmp_d);
	printf("{\"regions\":%u,\"extents\":%u,\"scan_ms\":%.1f,\"floor_ms\":%.1f,\"us_per_extent\":%.2f}\n",
	       regions, extents, t_scan[runs / 2], t_floor[runs / 2],
	       t_scan[runs / 2] * 1000 / extents);
	return 0;
}
