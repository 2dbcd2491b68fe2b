/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem release <uuid>: give a claimed tag back (owner or root only). */
#include <getopt.h>

#include "cli.h"

int cmd_release(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	bool gone = false;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "release", "<uuid>", opt != 'h');
	if (argc - optind != 1)
		return cli_usage(cli, "release", "<uuid>", true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	req = tagmem_request_new("release");
	json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(&tag, tagstr)));
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_bool(result, "capacity_released", &gone);
	printf("released %s%s\n", tagstr,
	       gone ? "; the fabric manager's pending release completed" : "");
	return EXIT_OK;
}
