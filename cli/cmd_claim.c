/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem claim <uuid> [--name NAME] [--grant]: take a ready tag for the calling user (and
 * with --grant, the device node too), through libtagmem's typed tagmem_claim. */
#include <getopt.h>

#include "cli.h"

int cmd_claim(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "grant", no_argument, NULL, 'g' },
		{ "cluster-exclusive", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "<uuid> [--name NAME] [--grant] [--cluster-exclusive]";
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	_cleanup_json_ struct json_object *result = NULL;
	struct tagmem_info *info = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	const char *name = NULL;
	bool grant = false, exclusive = false;
	int64_t token = 0;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': name = optarg; break;
		case 'g': grant = true; break;
		case 'x': exclusive = true; break;
		case 'h': return cli_usage(cli, "claim", synopsis, false);
		default: return cli_usage(cli, "claim", synopsis, true);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cli, "claim", synopsis, true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	/* across the cluster first: a host's claim of a tag another host holds exclusively
	 * would be a second owner */
	if (exclusive) {
		r = cluster_exclusive(cli, "cluster_claim", tagmem_tag_format(&tag, tagstr),
				      name ? name : "", &token);
		if (r < 0)
			return -r;
	}
	tagmem_tag_format(&tag, tagstr);
	r = cli_connect(cli, &client, false) < 0 ? -EXIT_UNREACHABLE : 0;
	if (r == 0) {
		r = tagmem_claim(client, &tag, name, grant, &info);
		if (r < 0)
			r = cli_typed_fail(cli, client, r);
	}
	if (r == 0) { /* the tag object as brokerd sent it */
		result = json_tokener_parse(tagmem_info_get_json(info));
		tagmem_info_unref(info);
		if (!result) {
			cli_fail(cli, "internal", "brokerd sent a malformed tag");
			r = -EXIT_FAIL;
		}
	}
	if (r < 0) {
		if (exclusive) /* no claim here: no claim across the cluster either */
			cluster_exclusive(cli, "cluster_release", tagstr, NULL, NULL);
		return -r;
	}
	if (exclusive)
		json_object_object_add(result, "cluster_token", json_object_new_int64(token));
	if (cli->json)
		cli_print_json(result);
	else {
		const char *path = "";

		tagmem_json_get_string(result, "path", &path);
		printf("claimed %s: %s", tagstr, path);
		if (exclusive)
			printf(" (exclusive across the cluster, fencing token %lld)", (long long)token);
		putchar('\n');
	}
	return EXIT_OK;
}
