/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem vm save VM FILE [--qmp SOCKET] [--resume] [--threads N]
 * tagmem vm restore VM FILE [--qmp SOCKET] [--threads N]
 * Save a VM whose memory is all tagged capacity to FILE (QEMU writes only device state;
 * brokerd writes the backings, O_DIRECT, in parallel), or restore it into a QEMU started with
 * the same arguments and -incoming defer. brokerd reports progress as vm_snapshot_progress
 * events (tagmem watch).
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int vm_snapshot(struct cli *cli, const char *sub, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "qmp", required_argument, NULL, 'q' },
		{ "resume", no_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	bool restore = !strcmp(sub, "restore"), resume = false;
	const char *synopsis = restore ? "restore VM FILE [--qmp SOCKET] [--threads N]" :
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
		case 't': thrarg = optarg; break;
		case 'h': return cli_usage(cli, "vm", synopsis, false);
		default: return cli_usage(cli, "vm", synopsis, true);
		}
	}
	if (argc - optind != 2 || (restore && resume))
		return cli_usage(cli, "vm", synopsis, true);
	if (thrarg && (parse_size(thrarg, &threads) < 0 || threads < 1 || threads > 16)) {
		cli_err(cli, "--threads takes 1 to 16");
		return EXIT_USAGE;
	}
	/* brokerd opens the file itself: an absolute name, in a directory that exists */
	if (argv[optind + 1][0] == '/') {
		snprintf(path, sizeof(path), "%s", argv[optind + 1]);
	} else {
		char dir[PATH_MAX];

		if (!getcwd(dir, sizeof(dir)) ||
		    snprintf(path, sizeof(path), "%s/%s", dir, argv[optind + 1]) >= (int)sizeof(path)) {
			cli_err(cli, "FILE: the name is too long");
			return EXIT_USAGE;
		}
	}
	if (qmparg && !realpath(qmparg, qmp)) {
		cli_err(cli, "--qmp %s: %s", qmparg, strerror(errno));
		return EXIT_USAGE;
	}
	req = tagmem_request_new(restore ? "vm_restore" : "vm_save");
	json_object_object_add(req, "vm", json_object_new_string(argv[optind]));
	json_object_object_add(req, "path", json_object_new_string(path));
	if (qmparg)
		json_object_object_add(req, "qmp", json_object_new_string(qmp));
	if (threads)
		json_object_object_add(req, "threads", json_object_new_uint64(threads));
	if (resume)
		json_object_object_add(req, "resume", json_object_new_boolean(true));
	cli_long_operation(cli);
	cli_watch_snapshot(cli, argv[optind]);
	if (!cli->json)
		fprintf(stderr, "%s VM %s %s %s…\n", restore ? "restoring" : "saving", argv[optind],
			restore ? "from" : "to", path);
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
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

int cmd_vm(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "save", vm_save, "save a VM to a file" },
		{ "restore", vm_restore, "restore a VM from a file" },
		{ "migrate-args", vm_migrate_args, "the destination QEMU's arguments for a migration" },
		{ "migrate", vm_migrate, "live-migrate a VM to a host that shares its tags" },
	};

	return cli_dispatch(cli, "vm", "save|restore VM FILE | migrate-args|migrate VM --to HOST "
			    "[options]  (tagmem help vm)", subs,
			    ARRAY_SIZE(subs), argc, argv);
}
