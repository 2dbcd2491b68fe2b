/*
 * bench_directory: the cluster directory at scale, without the brokerds. N simulated hosts,
 * each a struct directory (the code tagmem-clusterd runs) with a list of M tags, publish to
 * etcd; then they sit at rest for S seconds, renewing their leases as clusterd does. Prints
 * one JSON object: the time to publish everything, the heap a host's directory takes, and
 * how many calls the rest period made (a caller reads etcd's own metrics around it).
 *   bench_directory URL HOSTS TAGS REST_SECONDS
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cluster.h"
#include "etcd.h"
#include "log.h"
#include "util.h"

/* brokerd's list of one host, as clusterd gets it. */
static struct json_object *fake_list(unsigned host, unsigned ntags)
{
	struct json_object *tags = json_object_new_array();

	for (unsigned i = 0; i < ntags; i++) {
		struct json_object *t = json_object_new_object();
		char tag[48], dev[32], path[64];

		snprintf(tag, sizeof(tag), "%08x-%04x-4222-8333-444444444444", host, i);
		snprintf(dev, sizeof(dev), "dax1.%u", i);
		snprintf(path, sizeof(path), "/dev/dax1.%u", i);
		json_object_object_add(t, "tag", json_object_new_string(tag));
		json_object_object_add(t, "state", json_object_new_string(i % 3 ? "ready" : "claimed"));
		json_object_object_add(t, "size", json_object_new_uint64(1ull << 30));
		json_object_object_add(t, "shared", json_object_new_boolean(i % 2));
		json_object_object_add(t, "device", json_object_new_string(dev));
		json_object_object_add(t, "path", json_object_new_string(path));
		json_object_array_add(tags, t);
	}
	return tags;
}

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks;
}

int main(int argc, char **argv)
{
	unsigned nhosts, ntags, rest;
	struct directory **dirs;
	struct etcd **etcds;
	size_t heap0, heap1;
	uint64_t t0, t1, calls = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_directory URL HOSTS TAGS REST_SECONDS\n");
		return 2;
	}
	nhosts = (unsigned)atoi(argv[2]);
	ntags = (unsigned)atoi(argv[3]);
	rest = (unsigned)atoi(argv[4]);
	dirs = calloc(nhosts, sizeof(*dirs));
	etcds = calloc(nhosts, sizeof(*etcds));
	log_set_name("bench_directory");
	heap0 = heap_bytes();
	for (unsigned h = 0; h < nhosts; h++) {
		char name[32];

		snprintf(name, sizeof(name), "bench-h%u", h);
		if (etcd_open(argv[1], 10000, &etcds[h]) < 0 ||
		    directory_new(etcds[h], name, 30, &dirs[h]) < 0)
			return 1;
	}
	t0 = now_usec();
	for (unsigned h = 0; h < nhosts; h++) {
		struct json_object *list = fake_list(h, ntags);
		int r = directory_publish(dirs[h], list);

		json_object_put(list);
		if (r < 0) {
			fprintf(stderr, "publish of host %u: %s\n", h, strerror(-r));
			return 1;
		}
	}
	t1 = now_usec();
	heap1 = heap_bytes();
	/* at rest: keep-alives every TTL/3, as clusterd does, nothing else */
	for (uint64_t end = now_usec() + (uint64_t)rest * 1000000u; now_usec() < end;) {
		for (unsigned h = 0; h < nhosts; h++, calls++)
			if (directory_keepalive(dirs[h]) < 0)
				return 1;
		usleep(10u * 1000000u);
	}
	printf("{\"hosts\":%u,\"tags\":%u,\"publish_s\":%.3f,\"records_per_s\":%.0f,"
	       "\"heap_bytes_per_host\":%zu,\"rest_calls\":%llu}\n", nhosts, ntags,
	       (double)(t1 - t0) / 1e6, (double)nhosts * ntags / ((double)(t1 - t0) / 1e6),
	       (heap1 - heap0) / nhosts, (unsigned long long)calls);
	for (unsigned h = 0; h < nhosts; h++) {
		directory_withdraw(dirs[h]);
		directory_free(dirs[h]);
		etcd_close(etcds[h]);
	}
	free(dirs);
	free(etcds);
	return 0;
}
