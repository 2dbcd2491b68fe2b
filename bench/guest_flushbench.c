/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs inside the guest for bench/guest-flush: one writer, two ways to make its write durable
 * on the host, timed per operation (CLOCK_MONOTONIC):
 *   vpmem DEV N            pwrite 4 KiB to a virtio-pmem disk, then fsync: the guest's flush
 *                          reaches QEMU, which fsyncs the whole backing file
 *   dax DEV TAG N          store 4 KiB through the DAX mapping, then tagmem_flush_range of those
 *                          4 KiB through the guest agent: brokerd's range flush
 *   ping DEV TAG N         as dax, but a hello instead of the flush: the channel's round trip
 *                          alone (agent, virtio-serial, QEMU, brokerd and back)
 * Before each operation the writer also dirties OTHER bytes elsewhere in the same image (a
 * VM's memory is written all the time), which a whole-file fsync must write too.
 * Prints "op_usec N" per operation and a summary line.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tagmem.h"

#define BLOCK 4096u
#define SPAN (32u << 20) /* where the writes land: the first 32 MiB */
#define OTHER_MAX (8u << 20)

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint64_t other = getenv("OTHER") ? strtoull(getenv("OTHER"), NULL, 0) : 1u << 20;
	struct tagmem_client *client = NULL;
	struct tagmem_ctx *ctx = NULL;
	static char buf[OTHER_MAX];
	uint64_t *lat, t0, total = 0;
	bool dax, ping;
	tagmem_tag tag;
	unsigned n;
	char *map = NULL;
	int fd;

	if (other == 0 || other > sizeof(buf) || other % BLOCK) {
		fputs("OTHER: bytes, a multiple of 4096, at most 8 MiB\n", stderr);
		return 2;
	}
	ping = argc > 1 && !strcmp(argv[1], "ping");
	dax = ping || (argc > 1 && !strcmp(argv[1], "dax"));
	if (argc < 4 || (strcmp(argv[1], "vpmem") && !dax) || (dax && argc != 5)) {
		fputs("usage: guest_flushbench vpmem DEV N | dax DEV TAG N | ping DEV TAG N\n", stderr);
		return 2;
	}
	n = (unsigned)strtoul(argv[dax ? 4 : 3], NULL, 0);
	lat = calloc(n, sizeof(*lat));
	fd = open(argv[2], O_RDWR);
	if (!lat || fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (dax) {
		if (tagmem_tag_parse(argv[3], &tag) < 0 || tagmem_new(&ctx) < 0 ||
		    tagmem_client_connect(ctx, TAGMEM_GUEST_SOCKET, &client) < 0) {
			fputs("cannot reach the guest agent\n", stderr);
			return 1;
		}
		map = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			perror("mmap");
			return 1;
		}
	}
	memset(buf, 0x5a, sizeof(buf));
	srand(42);
	for (unsigned i = 0; i < n; i++) {
		uint64_t off = ((uint64_t)rand() % (SPAN / 2 / BLOCK)) * BLOCK;        /* the write */
		uint64_t elsewhere = SPAN / 2 + ((uint64_t)rand() % (SPAN / 2 - other) & ~(BLOCK - 1));
		int r;

		buf[0] = (char)i;
		/* other writes of the same VM, not asked to be durable now */
		if (dax)
			memcpy(map + elsewhere, buf, other);
		else if (pwrite(fd, buf, other, (off_t)elsewhere) != (ssize_t)other) {
			perror("pwrite");
			return 1;
		}
		t0 = now_usec();
		if (ping) {
			struct json_object *req = tagmem_request_new("hello"), *reply = NULL;

			memcpy(map + off, buf, BLOCK);
			r = tagmem_client_call_result(client, req, -1, &reply);
			json_object_put(req);
			json_object_put(reply);
		} else if (dax) {
			memcpy(map + off, buf, BLOCK);
			r = tagmem_flush_range(client, &tag, off, BLOCK, true, NULL);
		} else {
			r = pwrite(fd, buf, BLOCK, (off_t)off) == BLOCK ? fsync(fd) : -1;
		}
		lat[i] = now_usec() - t0;
		total += lat[i];
		if (r < 0) {
			fprintf(stderr, "flush %u failed: %d\n", i, r);
			return 1;
		}
	}
	qsort(lat, n, sizeof(*lat), cmp);
	printf("FLUSHBENCH %s n=%u p50_usec=%llu p90_usec=%llu p99_usec=%llu max_usec=%llu "
	       "ops_per_s=%.1f\n", argv[1], n, (unsigned long long)lat[n / 2],
	       (unsigned long long)lat[(n * 9) / 10], (unsigned long long)lat[(n * 99) / 100],
	       (unsigned long long)lat[n - 1], total ? n * 1e6 / (double)total : 0.0);
	tagmem_client_unref(client);
	tagmem_unref(ctx);
	return 0;
}
