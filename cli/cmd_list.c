/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem list: every tag brokerd knows, as a table or (--json) an array. */
#include <getopt.h>

#include "cli.h"

int cmd_list(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct json_object *result, *tags;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "list", "[--json]", opt != 'h');
	if (optind != argc)
		return cli_usage(cli, "list", "[--json]", true);
	req = tagmem_request_new("list");
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (!json_object_object_get_ex(result, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array)) {
		cli_fail(cli, "internal", "brokerd sent a malformed list");
		return EXIT_FAIL;
	}
	if (cli->json) {
		cli_print_json(tags);
		return EXIT_OK;
	}
	cli_print_tag_header();
	for (size_t i = 0; i < json_object_array_length(tags); i++)
		cli_print_tag_row(json_object_array_get_idx(tags, i));
	return EXIT_OK;
}
