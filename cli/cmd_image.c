/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem image create PATH --size SIZE [--tag UUID]: a fake-DAX image the broker owns. */
#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int image_create(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "create PATH --size SIZE [--tag UUID]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char path[PATH_MAX], tagstr[TAGMEM_TAG_STRING_MAX];
	const char *sizearg = NULL, *tagarg = NULL, *s = "?";
	struct json_object *result;
	uint64_t size;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sizearg = optarg; break;
		case 't': tagarg = optarg; break;
		case 'h': return cli_usage(cli, "image", synopsis, false);
		default: return cli_usage(cli, "image", synopsis, true);
		}
	}
	if (!sizearg || argc - optind != 1)
		return cli_usage(cli, "image", synopsis, true);
	if (parse_size(sizearg, &size) < 0 || size == 0 || size % (16u << 20)) {
		cli_err(cli, "--size '%s': give a multiple of 16M (the guest aligns namespaces to "
			"16 MiB), like 64M or 1G", sizearg);
		return EXIT_USAGE;
	}
	/* the daemon has another working directory: send an absolute path */
	if (argv[optind][0] == '/')
		snprintf(path, sizeof(path), "%s", argv[optind]);
	else if (!getcwd(path, sizeof(path)) ||
		 strlen(path) + strlen(argv[optind]) + 2 > sizeof(path)) {
		cli_err(cli, "cannot make '%s' absolute", argv[optind]);
		return EXIT_USAGE;
	} else
		strcat(strcat(path, "/"), argv[optind]);
	req = tagmem_request_new("image_create");
	json_object_object_add(req, "path", json_object_new_string(path));
	json_object_object_add(req, "size", json_object_new_uint64(size));
	if (tagarg) {
		if (cli_parse_tag(cli, tagarg, &tag) < 0)
			return EXIT_USAGE;
		json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(&tag, tagstr)));
	}
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_string(result, "tag", &s);
	printf("created image %s with tag %s (%s of data)\n", path, s, sizearg);
	return EXIT_OK;
}

int cmd_image(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = { { "create", image_create, NULL } };

	return cli_dispatch(cli, "image", "create PATH --size SIZE [--tag UUID]", subs,
			    ARRAY_SIZE(subs), argc, argv);
}
