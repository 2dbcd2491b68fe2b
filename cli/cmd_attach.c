/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem attach UUID --vm NAME --qmp SOCKET: hot-plug a tag into a running QEMU.
 * tagmem detach UUID: QEMU 7.2 cannot unplug an nvdimm, so the tag stays in the VM and is
 * released when the VM exits; detach says so and marks it.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_attach(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "libvirt", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "UUID --vm NAME --qmp SOCKET | UUID --libvirt DOMAIN "
				       "[--connect URI]";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX], qmp[PATH_MAX];
	struct json_object *result, *args;
	const char *vm = NULL, *qmparg = NULL, *domain = NULL, *uri = NULL;
	uint64_t slot = 0, usec = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "v:q:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'v': vm = optarg; break;
		case 'q': qmparg = optarg; break;
		case 'l': domain = optarg; break;
		case 'c': uri = optarg; break;
		case 'h': return cli_usage(cli, "attach", synopsis, false);
		default: return cli_usage(cli, "attach", synopsis, true);
		}
	}
	if (domain) {
		/* libvirt holds the domain's monitor: through virsh, not QMP */
		if (vm || qmparg || argc - optind != 1)
			return cli_usage(cli, "attach", synopsis, true);
		return libvirt_attach(cli, domain, uri, argv[optind]);
	}
	if (!vm || !qmparg || argc - optind != 1 || uri)
		return cli_usage(cli, "attach", synopsis, true);
	/* brokerd connects to the socket itself: give it an absolute path */
	if (!realpath(qmparg, qmp)) {
		cli_err(cli, "--qmp %s: %s", qmparg, strerror(errno));
		return EXIT_USAGE;
	}
	args = json_object_new_object();
	json_object_object_add(args, "vm", json_object_new_string(vm));
	json_object_object_add(args, "qmp", json_object_new_string(qmp));
	r = cli_call_tag(cli, "attach", argv[optind], args, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_u64(result, "slot", &slot);
	tagmem_json_get_u64(result, "qmp_usec", &usec);
	printf("attached %s to VM %s as nvdimm slot %llu (QMP %.1f ms)\n", tagstr, vm,
	       (unsigned long long)slot, usec / 1000.0);
	return EXIT_OK;
}

int cmd_detach(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	const char *vm = "?";
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "detach", "UUID", opt != 'h');
	if (argc - optind != 1)
		return cli_usage(cli, "detach", "UUID", true);
	r = cli_call_tag(cli, "detach", argv[optind], NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_string(result, "vm", &vm);
	printf("QEMU 7.2 cannot unplug an nvdimm: %s stays in VM %s and is released when that "
	       "VM exits\n", tagstr, vm);
	return EXIT_OK;
}
