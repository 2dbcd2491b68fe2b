/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem release <uuid>: give a claimed tag back (owner or root only). */
#include <getopt.h>

#include "cli.h"

int cmd_release(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cluster-exclusive", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	bool gone = false, exclusive = false;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'x')
			exclusive = true;
		else
			return cli_usage(cli, "release", "<uuid> [--cluster-exclusive]", opt != 'h');
	}
	if (argc - optind != 1)
		return cli_usage(cli, "release", "<uuid> [--cluster-exclusive]", true);
	r = cli_call_tag(cli, "release", argv[optind], NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	/* the host's claim first, then the cluster's: never a moment with a claim here that
	 * another host could also hold */
	if (exclusive) {
		r = cluster_exclusive(cli, "cluster_release", tagstr, NULL, NULL);
		if (r < 0)
			return -r;
	}
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_bool(result, "capacity_released", &gone);
	printf("released %s%s\n", tagstr,
	       gone ? "; the fabric manager's pending release completed" : "");
	return EXIT_OK;
}
