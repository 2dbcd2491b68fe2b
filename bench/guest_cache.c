/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs inside the guest for bench/guest-evict: a program with a hot set it re-reads and a
 * cold set (a cache it could refill), both in a devdax image.
 *   guest_cache DEV TAG PAUSE_S HOT_S [--hint]
 * It writes every page of the device (4 MiB chunks; every 4th chunk hot, the rest cold),
 * with --hint marks the cold chunks cold through the guest agent (without, marks everything
 * hot: no hints), prints CACHE-READY, sleeps PAUSE_S (the host evicts then), then re-reads
 * the hot set, one byte a page, for HOT_S seconds, and prints CACHE-DONE with its passes.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "tagmem.h"

#define CHUNK (4ull << 20)
#define PAGE 4096ull

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct tagmem_client *client = NULL;
	struct tagmem_ctx *ctx = NULL;
	bool hint = argc == 6 && !strcmp(argv[5], "--hint");
	unsigned long long size, passes = 0;
	volatile unsigned long sum = 0;
	char path[128], line[64];
	double pause_s, hot_s, end;
	tagmem_tag tag;
	FILE *f;
	char *p;
	int fd;

	if ((argc != 5 && !hint) || tagmem_tag_parse(argv[2], &tag) < 0) {
		fputs("usage: guest_cache DEV TAG PAUSE_S HOT_S [--hint]\n", stderr);
		return 2;
	}
	pause_s = atof(argv[3]);
	hot_s = atof(argv[4]);
	snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/size", strrchr(argv[1], '/') + 1);
	f = fopen(path, "r");
	if (!f || !fgets(line, sizeof(line), f) || !(size = strtoull(line, NULL, 0))) {
		fprintf(stderr, "cannot read %s\n", path);
		return 1;
	}
	fclose(f);
	fd = open(argv[1], O_RDWR);
	p = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || tagmem_new(&ctx) < 0 ||
	    tagmem_client_connect(ctx, TAGMEM_GUEST_SOCKET, &client) < 0) {
		perror("setup");
		return 1;
	}
	for (unsigned long long off = 0; off < size; off += PAGE)
		p[off] = (char)(off / PAGE);
	/* no hints left from an earlier run; then the cold chunks, if asked */
	if (tagmem_hint_range(client, &tag, 0, size, false) < 0)
		return 1;
	for (unsigned long long c = 0; hint && c < size / CHUNK; c++)
		if (c % 4 && tagmem_hint_range(client, &tag, c * CHUNK, CHUNK, true) < 0)
			return 1;
	printf("CACHE-READY %s\n", hint ? "hint" : "none");
	fflush(stdout);
	usleep((useconds_t)(pause_s * 1e6));
	for (end = now() + hot_s; now() < end; passes++)
		for (unsigned long long c = 0; c < size / CHUNK; c += 4)
			for (unsigned long long off = c * CHUNK; off < (c + 1) * CHUNK; off += PAGE)
				sum += (unsigned char)p[off];
	printf("CACHE-DONE %s passes=%llu\n", hint ? "hint" : "none", passes);
	tagmem_client_unref(client);
	tagmem_unref(ctx);
	return 0;
}
