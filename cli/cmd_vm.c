/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem vm save VM FILE [--qmp SOCKET] [--resume] [--threads N]
 * tagmem vm checkpoint VM FILE [--qmp SOCKET] [--full] [--threads N]
 * tagmem vm restore VM FILE [INCREMENT...] [--qmp SOCKET] [--paused] [--threads N]
 * Save a VM whose memory is all tagged capacity to FILE (QEMU writes only device state;
 * brokerd writes the backings, O_DIRECT, in parallel), checkpoint it (a full save first,
 * then only the pages it wrote since the one before), or restore it, from a save or a base
 * and its increments in order, into a QEMU started with the same arguments and -incoming
 * defer. brokerd reports progress as vm_snapshot_progress events (tagmem watch).
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A file name as brokerd needs it: absolute (it opens the file itself). */
static int absolute(struct cli *cli, const char *name, char path[PATH_MAX])
{
	char dir[PATH_MAX];

	if (name[0] == '/') {
		snprintf(path, PATH_MAX, "%s", name);
		return 0;
	}
	if (!getcwd(dir, sizeof(dir)) || snprintf(path, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
		cli_err(cli, "%s: the name is too long", name);
		return -EXIT_USAGE;
	}
	return 0;
}

static void print_checkpoint(const char *vm, struct json_object *result)
{
	uint64_t seq = 0, dirty = 0, zero = 0, file = 0, harvest = 0, capture = 0, dev = 0,
		 paused = 0, write = 0;
	const char *kind = "", *why = "";

	tagmem_json_get_string(result, "kind", &kind);
	tagmem_json_get_u64(result, "sequence", &seq);
	if (strcmp(kind, "increment")) {
		tagmem_json_get_string(result, "why_base", &why);
		printf("  a base (a full save): %s\n", why);
		return;
	}
	tagmem_json_get_u64(result, "dirty_bytes", &dirty);
	tagmem_json_get_u64(result, "zero_bytes", &zero);
	tagmem_json_get_u64(result, "file_bytes", &file);
	tagmem_json_get_u64(result, "harvest_usec", &harvest);
	tagmem_json_get_u64(result, "capture_usec", &capture);
	tagmem_json_get_u64(result, "device_state_usec", &dev);
	tagmem_json_get_u64(result, "paused_usec", &paused);
	tagmem_json_get_u64(result, "write_usec", &write);
	printf("  increment %llu of VM %s: %llu KiB dirty (%llu KiB of it zero), %llu KiB written\n"
	       "  paused %.1f ms (dirty pages found %.1f ms, copied %.1f ms, device state %.1f ms); "
	       "written in %.1f ms\n", (unsigned long long)seq, vm,
	       (unsigned long long)dirty >> 10, (unsigned long long)zero >> 10,
	       (unsigned long long)file >> 10, paused / 1e3, harvest / 1e3, capture / 1e3,
	       dev / 1e3, write / 1e3);
}

static int vm_snapshot(struct cli *cli, const char *sub, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, 'q' },
		{ "resume", no_argument, NULL, 'r' },
		{ "full", no_argument, NULL, 'f' },
		{ "paused", no_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	bool restore = !strcmp(sub, "restore"), checkpoint = !strcmp(sub, "checkpoint");
	bool resume = false, full = false, paused = false;
	const char *synopsis = restore ? "restore VM FILE [INCREMENT...] [--qmp SOCKET] [--paused] [--threads N]" :
			       checkpoint ? "checkpoint VM FILE [--qmp SOCKET] [--full] [--threads N]" :
			       "save VM FILE [--qmp SOCKET] [--resume] [--threads N]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct json_object *result;
	char path[PATH_MAX], qmp[PATH_MAX], b1[32];
	const char *qmparg = NULL, *thrarg = NULL;
	uint64_t threads = 0, usec = 0, dev = 0;
	double gbps = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': qmparg = optarg; break;
		case 'r': resume = true; break;
		case 'f': full = true; break;
		case 'p': paused = true; break;
		case 't': thrarg = optarg; break;
		case 'h': return cli_usage(cli, "vm", synopsis, false);
		default: return cli_usage(cli, "vm", synopsis, true);
		}
	}
	if (argc - optind < 2 || (!restore && argc - optind != 2) ||
	    (resume && (restore || checkpoint)) || (full && !checkpoint) || (paused && !restore))
		return cli_usage(cli, "vm", synopsis, true);
	if (thrarg && (parse_size(thrarg, &threads) < 0 || threads < 1 || threads > 16)) {
		cli_err(cli, "--threads takes 1 to 16");
		return EXIT_USAGE;
	}
	r = absolute(cli, argv[optind + 1], path);
	if (r < 0)
		return -r;
	if (qmparg && !realpath(qmparg, qmp)) {
		cli_err(cli, "--qmp %s: %s", qmparg, strerror(errno));
		return EXIT_USAGE;
	}
	req = tagmem_request_new(restore ? "vm_restore" : checkpoint ? "vm_checkpoint" : "vm_save");
	json_object_object_add(req, "vm", json_object_new_string(argv[optind]));
	json_object_object_add(req, "path", json_object_new_string(path));
	if (argc - optind > 2) {
		struct json_object *incs = json_object_new_array();

		json_object_object_add(req, "increments", incs);
		for (int i = optind + 2; i < argc; i++) {
			char inc[PATH_MAX];

			r = absolute(cli, argv[i], inc);
			if (r < 0)
				return -r;
			json_object_array_add(incs, json_object_new_string(inc));
		}
	}
	if (full)
		json_object_object_add(req, "full", json_object_new_boolean(true));
	if (paused)
		json_object_object_add(req, "paused", json_object_new_boolean(true));
	if (qmparg)
		json_object_object_add(req, "qmp", json_object_new_string(qmp));
	if (threads)
		json_object_object_add(req, "threads", json_object_new_uint64(threads));
	if (resume)
		json_object_object_add(req, "resume", json_object_new_boolean(true));
	cli_long_operation(cli);
	cli_watch_snapshot(cli, argv[optind]);
	if (!cli->json)
		fprintf(stderr, "%s VM %s %s %s…\n", restore ? "restoring" : checkpoint ?
			"checkpointing" : "saving", argv[optind], restore ? "from" : "to", path);
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	if (checkpoint) {
		print_checkpoint(argv[optind], result);
		return EXIT_OK;
	}
	tagmem_json_get_u64(result, "usec", &usec);
	tagmem_json_get_u64(result, "device_state_bytes", &dev);
	gbps = json_object_get_double(json_object_object_get(result, "gb_per_s"));
	printf("%s VM %s: %s of tagged memory in %.2f s (%.2f GB/s), %llu bytes of device "
	       "state\n", restore ? "restored" : "saved", argv[optind],
	       cli_size_of(result, "bytes", b1, sizeof(b1)), usec / 1e6, gbps,
	       (unsigned long long)dev);
	return EXIT_OK;
}

static int vm_save(struct cli *cli, int argc, char **argv)
{
	return vm_snapshot(cli, "save", argc, argv);
}

static int vm_restore(struct cli *cli, int argc, char **argv)
{
	return vm_snapshot(cli, "restore", argc, argv);
}

static int vm_checkpoint(struct cli *cli, int argc, char **argv)
{
	return vm_snapshot(cli, "checkpoint", argc, argv);
}

int cmd_vm(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "save", vm_save, "save a VM to a file" },
		{ "restore", vm_restore, "restore a VM from a save, or a base and its increments" },
		{ "checkpoint", vm_checkpoint, "a full save, then only the pages written since" },
		{ "migrate-args", vm_migrate_args, "the destination QEMU's arguments for a migration" },
		{ "migrate", vm_migrate, "live-migrate a VM to a host that shares its tags" },
	};

	return cli_dispatch(cli, "vm", "save|checkpoint|restore VM FILE | migrate-args|migrate VM --to HOST "
			    "[options]  (tagmem help vm)", subs,
			    ARRAY_SIZE(subs), argc, argv);
}
