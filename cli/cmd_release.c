/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem release <uuid>: give a claimed tag back (owner or root only), through libtagmem's
 * typed tagmem_release. */
#include <getopt.h>

#include "cli.h"

int cmd_release(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "cluster-exclusive", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	bool gone = false, exclusive = false;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'x')
			exclusive = true;
		else
			return cli_usage(cli, "release", "<uuid> [--cluster-exclusive]", opt != 'h');
	}
	if (argc - optind != 1)
		return cli_usage(cli, "release", "<uuid> [--cluster-exclusive]", true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	tagmem_tag_format(&tag, tagstr);
	if (cli_connect(cli, &client, false) < 0)
		return EXIT_UNREACHABLE;
	r = tagmem_release(client, &tag, &gone);
	if (r < 0)
		return -cli_typed_fail(cli, client, r);
	/* the host's claim first, then the cluster's: never a moment with a claim here that
	 * another host could also hold */
	if (exclusive) {
		r = cluster_exclusive(cli, "cluster_release", tagstr, NULL, NULL);
		if (r < 0)
			return -r;
	}
	if (cli->json) {
		_cleanup_json_ struct json_object *o = json_object_new_object();

		json_object_object_add(o, "tag", json_object_new_string(tagstr));
		json_object_object_add(o, "capacity_released", json_object_new_boolean(gone));
		cli_print_json(o);
		return EXIT_OK;
	}
	printf("released %s%s\n", tagstr,
	       gone ? "; the fabric manager's pending release completed" : "");
	return EXIT_OK;
}
