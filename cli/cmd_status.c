/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem status: is brokerd up, what backend, how many tags in which state. */
#include <getopt.h>

#include "cli.h"

/* The host's image budget and each VM's part of it: what it holds, its guaranteed share,
 * and the level it is being brought down to when the images hold more than the budget. */
static void print_image_budget(struct json_object *result)
{
	struct json_object *ib, *vms;
	char a[32], b[32], c[32];
	uint64_t budget, v;

	if (!json_object_object_get_ex(result, "host_budget", &ib) ||
	    !json_object_object_get_ex(ib, "vms", &vms) || !json_object_array_length(vms))
		return;
	if (tagmem_json_get_u64(ib, "budget_bytes", &budget) < 0)
		return; /* no host-wide budget: nothing is shared out */
	tagmem_json_get_u64(ib, "resident_bytes", &v);
	printf("image cache: %s of a %s budget\n", format_size(v, a, sizeof(a)),
	       format_size(budget, b, sizeof(b)));
	printf("  %-24s %7s %12s %12s %12s\n", "VM", "images", "resident", "share", "cap");
	for (size_t i = 0; i < json_object_array_length(vms); i++) {
		struct json_object *vm = json_object_array_get_idx(vms, i);
		const char *name = "(unclaimed)";
		uint64_t images = 0, res = 0, share = 0, cap;

		tagmem_json_get_string(vm, "vm", &name);
		tagmem_json_get_u64(vm, "images", &images);
		tagmem_json_get_u64(vm, "resident_bytes", &res);
		tagmem_json_get_u64(vm, "share_bytes", &share);
		printf("  %-24.24s %7llu %12s %12s %12s\n", name, (unsigned long long)images,
		       format_size(res, a, sizeof(a)), format_size(share, b, sizeof(b)),
		       tagmem_json_get_u64(vm, "cap_bytes", &cap) == 0 ?
		       format_size(cap, c, sizeof(c)) : "-");
	}
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct json_object *result, *states, *mp;
	const char *s;
	uint64_t v;
	char buf[32];
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "status", "[--json]", opt != 'h');
	req = tagmem_request_new("status");
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	if (tagmem_json_get_string(result, "version", &s) == 0)
		printf("brokerd %s", s);
	if (tagmem_json_get_string(result, "backend", &s) == 0)
		printf(", %s backend", s);
	if (tagmem_json_get_string(result, "root", &s) == 0)
		printf(" at %s", s);
	if (tagmem_json_get_u64(result, "uptime_ms", &v) == 0)
		printf(", up %llus", (unsigned long long)(v / 1000));
	printf("\n");
	if (tagmem_json_get_u64(result, "tags", &v) == 0)
		printf("tags: %llu", (unsigned long long)v);
	if (json_object_object_get_ex(result, "states", &states)) {
		json_object_object_foreach(states, k, val)
			printf(", %s %s", k, json_object_get_string(val));
	}
	printf("\n");
	if (tagmem_json_get_u64(result, "tagged_bytes", &v) == 0)
		printf("tagged capacity: %s\n", format_size(v, buf, sizeof(buf)));
	if (tagmem_json_get_u64(result, "untagged_bytes", &v) == 0)
		printf("untagged capacity: %s\n", format_size(v, buf, sizeof(buf)));
	if (tagmem_json_get_u64(result, "clients", &v) == 0)
		printf("clients: %llu", (unsigned long long)v);
	if (tagmem_json_get_u64(result, "subscribers", &v) == 0)
		printf(", subscribers: %llu", (unsigned long long)v);
	printf("\n");
	if (tagmem_json_get_u64(result, "images_lost_writes", &v) == 0 && v)
		printf("images that lost writes: %llu (their flushes fail; 'tagmem show UUID' says "
		       "which writes and what to do)\n", (unsigned long long)v);
	if (tagmem_json_get_u64(result, "images_unavailable", &v) == 0 && v)
		printf("images unavailable: %llu (their files cannot be opened; brokerd's log says "
		       "why, and it keeps trying)\n", (unsigned long long)v);
	if (json_object_object_get_ex(result, "memory_pressure", &mp)) {
		if (tagmem_json_get_string(mp, "trigger", &s) == 0)
			printf("memory pressure: watching \"%s\"", s);
		else
			printf("memory pressure: not watched (images shrink on budgets only)");
		if (tagmem_json_get_u64(mp, "events", &v) == 0)
			printf(", fired %llu time(s)", (unsigned long long)v);
		printf("\n");
	}
	print_image_budget(result);
	return EXIT_OK;
}
