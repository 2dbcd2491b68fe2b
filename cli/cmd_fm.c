/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem fm add|release: drive the simulated fabric manager (the embedded backend), as an
 * orchestrator would drive a real one. Root or the daemon's user only.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

static int fm_add(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "shared", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "add --size SIZE [--tag UUID] [--shared]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	const char *sizearg = NULL, *tagarg = NULL, *s;
	bool shared = false;
	uint64_t size;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:t:Sh", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sizearg = optarg; break;
		case 't': tagarg = optarg; break;
		case 'S': shared = true; break;
		case 'h': return cli_usage(cli, "fm", synopsis, false);
		default: return cli_usage(cli, "fm", synopsis, true);
		}
	}
	if (!sizearg || optind != argc)
		return cli_usage(cli, "fm", synopsis, true);
	if (parse_size(sizearg, &size) < 0 || size == 0 || size % (2u << 20)) {
		cli_err(cli, "--size '%s': give a multiple of 2M, like 512M or 1G", sizearg);
		return EXIT_USAGE;
	}
	req = tagmem_request_new("fm_add");
	json_object_object_add(req, "size", json_object_new_uint64(size));
	if (tagarg) {
		if (cli_parse_tag(cli, tagarg, &tag) < 0)
			return EXIT_USAGE;
		json_object_object_add(req, "tag",
				       json_object_new_string(tagmem_tag_format(&tag, tagstr)));
	}
	if (shared)
		json_object_object_add(req, "shared", json_object_new_boolean(true));
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	if (tagmem_json_get_string(result, "tag", &s) == 0) {
		const char *state = "?", *path = NULL;
		tagmem_json_get_string(result, "state", &state);
		tagmem_json_get_string(result, "path", &path);
		printf("added %s %s: %s%s%s\n", shared ? "shared tag" : "tag", s, state,
		       path ? " at " : "", path ? path : "");
	} else {
		printf("added %s of untagged capacity\n", sizearg);
	}
	return EXIT_OK;
}

static int fm_release(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tag", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "release --tag UUID";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	const char *tagarg = NULL, *state = "?";
	int opt, r;

	while ((opt = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': tagarg = optarg; break;
		case 'h': return cli_usage(cli, "fm", synopsis, false);
		default: return cli_usage(cli, "fm", synopsis, true);
		}
	}
	if (!tagarg && optind == argc - 1) /* "fm release UUID" reads naturally too */
		tagarg = argv[optind++];
	if (!tagarg || optind != argc)
		return cli_usage(cli, "fm", synopsis, true);
	r = cli_call_tag(cli, "fm_release", tagarg, NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_string(result, "state", &state);
	if (!strcmp(state, "release_pending"))
		printf("release of %s is pending: it is claimed; it completes when the owner "
		       "releases it\n", tagstr);
	else
		printf("released %s\n", tagstr);
	return EXIT_OK;
}

int cmd_fm(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "add", fm_add, NULL },
		{ "release", fm_release, NULL },
	};

	return cli_dispatch(cli, "fm", "add --size SIZE [--tag UUID] [--shared] | release --tag UUID",
			    subs, ARRAY_SIZE(subs), argc, argv);
}
