/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The DCD host path at scale, on a sysfs-shaped tree (tmpfs) laid out as the v11 kernel
 * does: R dax regions, E extents, a tag per 10 extents, and a device that claimed each tag
 * (its mappings listed).
 *   bench_hostpath DIR EXTENTS TAGMEM_ID [RUNS]
 * Prints one JSON line:
 *   id_us / own_us      one device event as the udev helper answers it (view_device_tag)
 *                       against reading that device's own attributes in a plain loop
 *                       (uuid, size, region, the mappings directory and each mapping),
 *                       medians over every device; whole_view_us: the former per-event cost
 *   helper_ms / true_ms 1,000 device events as udev runs them (a tagmem-id process each)
 *                       against spawning /bin/true as many times
 *   rescan_ms / full_ms brokerd's rescan after one extent appeared (dcd_cache_scan + view)
 *                       against the full scan it replaced (dcd_scan + view), medians
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dcd.h"
#include "view.h"

#define REGIONS 10
#define PER_TAG 10
#define MiB ((uint64_t)1 << 20)

extern char **environ;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void put(const char *root, const char *path, const char *value)
{
	char full[1024];
	int fd;

	snprintf(full, sizeof(full), "%s/%s", root, path);
	for (char *p = full + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(full, 0755);
			*p = '/';
		}
	fd = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, value, strlen(value)) < 0) {
		perror(full);
		exit(1);
	}
	close(fd);
}

static void link_in(const char *root, const char *target, const char *path)
{
	char full[1024];

	snprintf(full, sizeof(full), "%s/%s", root, path);
	if (symlink(target, full) < 0) {
		perror(full);
		exit(1);
	}
}

static void extent(const char *root, unsigned r, unsigned id, uint64_t off, const char *tag)
{
	char path[256], v[64];

	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.%u/offset",
		 r, r, r, id);
	snprintf(v, sizeof(v), "%#" PRIx64 "\n", off);
	put(root, path, v);
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.%u/length",
		 r, r, r, id);
	put(root, path, "0x200000\n");
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.%u/uuid",
		 r, r, r, id);
	put(root, path, tag);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[n / 2];
}

/* What the device's own attributes cost to read, without any of tagmem's logic. */
static void read_own(const char *root, unsigned r, unsigned d, unsigned nmap)
{
	static const char *attrs[] = { "uuid", "size" };
	char path[512], buf[128];
	DIR *dir;
	int fd;

	for (size_t i = 0; i < 2 + 2 * nmap + 1; i++) {
		if (i < 2)
			snprintf(path, sizeof(path), "%s/sys/bus/dax/devices/dax%u.%u/%s", root, r, d,
				 attrs[i]);
		else if (i < 2 + 2 * nmap)
			snprintf(path, sizeof(path), "%s/sys/bus/dax/devices/dax%u.%u/mapping%zu/%s",
				 root, r, d, (i - 2) / 2, (i - 2) % 2 ? "end" : "start");
		else
			snprintf(path, sizeof(path), "%s/sys/bus/cxl/devices/dax_region%u/dax_region/seed",
				 root, r);
		fd = open(path, O_RDONLY);
		if (fd < 0 || read(fd, buf, sizeof(buf)) < 0)
			exit(1);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/sys/bus/dax/devices/dax%u.%u", root, r, d);
	dir = opendir(path); /* the mappings' listing */
	if (!dir)
		exit(1);
	while (readdir(dir))
		;
	closedir(dir);
}

/* Run argv as udev does (its output read, here thrown away) and wait for it. */
static int spawn_wait(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char **argv)
{
	unsigned extents, tags, runs = 5, per_region;
	const char *root, *helper;
	double *t_id, *t_own, t_whole[5], t_rescan[32], t_full[32];
	double helper_ms, true_ms, t0;
	size_t nid = 0;
	struct sysfs *s;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_hostpath DIR EXTENTS TAGMEM_ID [RUNS]\n");
		return 2;
	}
	root = argv[1];
	extents = (unsigned)atoi(argv[2]);
	helper = argv[3];
	if (argc > 4)
		runs = (unsigned)atoi(argv[4]);
	if (runs > 32 || runs < 1 || extents < REGIONS * PER_TAG || extents % (REGIONS * PER_TAG))
		return 2;
	tags = extents / PER_TAG;
	per_region = tags / REGIONS;
	put(root, "sys/bus/cxl/devices/.keep", "");
	put(root, "sys/bus/dax/devices/.keep", "");

	/* the tree: each region holds per_region tags of PER_TAG extents, interleaved as a
	 * fabric manager's allocations come, and a device per tag with its mappings */
	for (unsigned r = 0; r < REGIONS; r++) {
		char path[512], target[256], v[64];

		snprintf(path, sizeof(path), "sys/devices/platform/region%u/mode", r);
		put(root, path, "dynamic_ram_1\n");
		snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/dax_region/seed",
			 r, r);
		snprintf(v, sizeof(v), "dax%u.0\n", r);
		put(root, path, v);
		snprintf(target, sizeof(target), "../../../devices/platform/region%u/dax_region%u", r, r);
		snprintf(path, sizeof(path), "sys/bus/cxl/devices/dax_region%u", r);
		link_in(root, target, path);
		for (unsigned k = 0; k < per_region * PER_TAG; k++) {
			unsigned t = k % per_region, seq = k / per_region;
			char tag[64];

			snprintf(tag, sizeof(tag), "%08x-0000-4000-8000-%012x\n", r, t);
			extent(root, r, k, (uint64_t)k * 2 * MiB, tag);
			(void)seq;
		}
		for (unsigned t = 0; t < per_region; t++) {
			char dir[256], tag[64];
			unsigned d = t + 1;

			snprintf(dir, sizeof(dir), "sys/devices/platform/region%u/dax_region%u/dax%u.%u",
				 r, r, r, d);
			for (unsigned m = 0; m < PER_TAG; m++) {
				uint64_t start = (uint64_t)(m * per_region + t) * 2 * MiB;

				snprintf(path, sizeof(path), "%s/mapping%u/start", dir, m);
				snprintf(v, sizeof(v), "%#" PRIx64 "\n", start);
				put(root, path, v);
				snprintf(path, sizeof(path), "%s/mapping%u/end", dir, m);
				snprintf(v, sizeof(v), "%#" PRIx64 "\n", start + 2 * MiB - 1);
				put(root, path, v);
			}
			snprintf(path, sizeof(path), "%s/size", dir);
			snprintf(v, sizeof(v), "%llu\n", (unsigned long long)PER_TAG * 2 * MiB);
			put(root, path, v);
			snprintf(path, sizeof(path), "%s/uuid", dir);
			snprintf(tag, sizeof(tag), "%08x-0000-4000-8000-%012x\n", r, t);
			put(root, path, tag);
			snprintf(target, sizeof(target),
				 "../../../devices/platform/region%u/dax_region%u/dax%u.%u", r, r, r, d);
			snprintf(path, sizeof(path), "sys/bus/dax/devices/dax%u.%u", r, d);
			link_in(root, target, path);
		}
	}
	if (sysfs_open(root, &s) < 0)
		return 1;

	/* (a) one device event, in process: every device, each run */
	t_id = calloc((size_t)tags * runs, sizeof(*t_id));
	t_own = calloc((size_t)tags * runs, sizeof(*t_own));
	for (unsigned k = 0; k < runs; k++)
		for (unsigned r = 0; r < REGIONS; r++)
			for (unsigned t = 0; t < per_region; t++) {
				char devpath[128];
				struct view_tag vt;

				snprintf(devpath, sizeof(devpath),
					 "/devices/platform/region%u/dax_region%u/dax%u.%u", r, r, r, t + 1);
				t0 = now_us();
				if (view_device_tag(s, NULL, devpath, &vt) < 0 ||
				    vt.nextents != PER_TAG) {
					fprintf(stderr, "bench_hostpath: %s names no tag\n", devpath);
					return 1;
				}
				t_id[nid] = now_us() - t0;
				t0 = now_us();
				read_own(root, r, t + 1, PER_TAG);
				t_own[nid++] = now_us() - t0;
			}
	/* what each event cost before: the whole view */
	for (unsigned k = 0; k < 5; k++) {
		struct view v;

		t0 = now_us();
		if (view_build(s, NULL, &v) < 0 || v.n != tags)
			return 1;
		t_whole[k] = now_us() - t0;
		view_clear(&v);
	}

	/* (b) 1,000 device events as udev runs them */
	{
		char rootarg[512], devpath[128], *hargv[] = { (char *)helper, "--root", rootarg,
							      devpath, NULL };
		char *targv[] = { "/bin/true", NULL };
		unsigned n = 1000;

		snprintf(rootarg, sizeof(rootarg), "%s", root);
		t0 = now_us();
		for (unsigned i = 0; i < n; i++) {
			unsigned r = i % REGIONS, t = (i / REGIONS) % per_region;

			snprintf(devpath, sizeof(devpath),
				 "/devices/platform/region%u/dax_region%u/dax%u.%u", r, r, r, t + 1);
			if (spawn_wait(hargv) != 0)
				return 1;
		}
		helper_ms = (now_us() - t0) / 1000;
		t0 = now_us();
		for (unsigned i = 0; i < n; i++)
			if (spawn_wait(targv) != 0)
				return 1;
		true_ms = (now_us() - t0) / 1000;
	}

	/* (c) brokerd's rescan after one new extent, against the full scan */
	{
		struct dcd_cache *c;
		struct dcd_snapshot snap;
		struct dcd_cache_stats st;
		struct view v;

		if (dcd_cache_new(&c) < 0 || dcd_cache_scan(s, c, &snap, NULL) < 0)
			return 1;
		dcd_snapshot_clear(&snap);
		for (unsigned k = 0; k < runs; k++) {
			char tag[64];
			unsigned id = per_region * PER_TAG + k;

			snprintf(tag, sizeof(tag), "ffffffff-0000-4000-8000-%012x\n", k);
			extent(root, k % REGIONS, id, (uint64_t)id * 2 * MiB, tag);
			t0 = now_us();
			if (dcd_cache_scan(s, c, &snap, &st) < 0 || st.read != 1 ||
			    view_build_with(s, NULL, &snap, &v) < 0)
				return 1;
			t_rescan[k] = (now_us() - t0) / 1000;
			dcd_snapshot_clear(&snap);
			view_clear(&v);
			t0 = now_us();
			if (dcd_scan(s, &snap) < 0 || view_build_with(s, NULL, &snap, &v) < 0)
				return 1;
			t_full[k] = (now_us() - t0) / 1000;
			dcd_snapshot_clear(&snap);
			view_clear(&v);
		}
		dcd_cache_free(c);
	}
	printf("{\"extents\":%u,\"devices\":%u,\"id_us\":%.1f,\"own_us\":%.1f,\"whole_view_us\":%.0f,"
	       "\"helper_ms\":%.0f,\"true_ms\":%.0f,\"rescan_ms\":%.2f,\"full_ms\":%.1f}\n",
	       extents, tags, median(t_id, nid), median(t_own, nid), median(t_whole, 5), helper_ms,
	       true_ms, median(t_rescan, runs), median(t_full, runs));
	sysfs_close(s);
	return 0;
}
