/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem list: every tag brokerd knows, as a table or (--json) an array (libtagmem's
 * tagmem_list). */
#include <getopt.h>

#include "cli.h"

int cmd_list(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	_cleanup_json_ struct json_object *tags = json_object_new_array();
	struct tagmem_info **infos = NULL;
	size_t n = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "list", "[--json]", opt != 'h');
	if (optind != argc)
		return cli_usage(cli, "list", "[--json]", true);
	if (cli_connect(cli, &client, false) < 0)
		return EXIT_UNREACHABLE;
	r = tagmem_list(client, &infos, &n);
	if (r < 0)
		return -cli_typed_fail(cli, client, r);
	/* each tag object as brokerd sent it */
	for (size_t i = 0; i < n; i++)
		json_object_array_add(tags, json_tokener_parse(tagmem_info_get_json(infos[i])));
	tagmem_info_list_free(infos, n);
	if (cli->json) {
		cli_print_json(tags);
		return EXIT_OK;
	}
	cli_print_tag_header();
	for (size_t i = 0; i < json_object_array_length(tags); i++)
		cli_print_tag_row(json_object_array_get_idx(tags, i));
	return EXIT_OK;
}
