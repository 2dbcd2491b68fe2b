/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem claim <uuid> [--name NAME] [--grant]: take a ready tag for the calling user (and
 * with --grant, the device node too). */
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
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result, *args;
	const char *name = NULL, *path = "";
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
	args = json_object_new_object();
	if (name)
		json_object_object_add(args, "name", json_object_new_string(name));
	if (grant)
		json_object_object_add(args, "grant", json_object_new_boolean(true));
	r = cli_call_tag(cli, "claim", argv[optind], args, tagstr, &reply, &result);
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
		tagmem_json_get_string(result, "path", &path);
		printf("claimed %s: %s", tagstr, path);
		if (exclusive)
			printf(" (exclusive across the cluster, fencing token %lld)", (long long)token);
		putchar('\n');
	}
	return EXIT_OK;
}
