/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem image create|adopt|budget|invalidate|clear-error|forget: fake-DAX images the broker
 * owns.
 *   create PATH --size SIZE [--tag UUID]   a new sparse image with its label tail
 *   adopt PATH [--tag UUID]                an existing file (data + 2 MiB tail)
 *   budget UUID [--dirty SIZE|none] [--resident SIZE|none]
 *   invalidate UUID                        drop every cached page (before migration)
 *   clear-error UUID                       the lost writes were dealt with: flushes report afresh
 *   forget UUID                            stop treating the file as an image (it stays)
 */
#include <getopt.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The daemon has another working directory: send an absolute path. */
static int absolute(struct cli *cli, const char *arg, char path[PATH_MAX])
{
	if (arg[0] == '/') {
		snprintf(path, PATH_MAX, "%s", arg);
		return 0;
	}
	if (!getcwd(path, PATH_MAX) || strlen(path) + strlen(arg) + 2 > PATH_MAX) {
		cli_err(cli, "cannot make '%s' absolute", arg);
		return -EINVAL;
	}
	strcat(strcat(path, "/"), arg);
	return 0;
}

/*
 * Send an image_create/adopt request with the optional --tag. On success *ret_tag is the
 * image's tag for the caller's message, or NULL when --json already printed the result.
 */
static int send_image_request(struct cli *cli, struct json_object *req, const char *tagarg,
			      struct json_object **reply, const char **ret_tag)
{
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	tagmem_tag tag;
	int r;

	if (tagarg) {
		if (cli_parse_tag(cli, tagarg, &tag) < 0)
			return EXIT_USAGE;
		json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(&tag, tagstr)));
	}
	r = cli_call(cli, req, reply, &result);
	if (r < 0)
		return -r;
	*ret_tag = NULL;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	*ret_tag = "?";
	tagmem_json_get_string(result, "tag", ret_tag);
	return EXIT_OK;
}

static int image_create(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "layout", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "create PATH --size SIZE [--tag UUID] [--layout pmem|devdax|fsdax]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char path[PATH_MAX];
	const char *sizearg = NULL, *tagarg = NULL, *s = NULL, *layout = NULL;
	uint64_t size;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': sizearg = optarg; break;
		case 't': tagarg = optarg; break;
		case 'l': layout = optarg; break;
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
	if (layout && strcmp(layout, "pmem") && strcmp(layout, "devdax") && strcmp(layout, "fsdax")) {
		cli_err(cli, "--layout '%s': give pmem (a pmem disk in the guest, data at offset 0 "
			"of the file), devdax (/dev/daxX.Y in the guest; data after a 16 MiB header) or "
			"fsdax (the same header; a /dev/pmemX in the guest to mount with -o dax, so the "
			"guest keeps no page cache of its files)", layout);
		return EXIT_USAGE;
	}
	if (absolute(cli, argv[optind], path) < 0)
		return EXIT_USAGE;
	req = tagmem_request_new("image_create");
	json_object_object_add(req, "path", json_object_new_string(path));
	json_object_object_add(req, "size", json_object_new_uint64(size));
	if (layout)
		json_object_object_add(req, "layout", json_object_new_string(layout));
	r = send_image_request(cli, req, tagarg, &reply, &s);
	if (r != EXIT_OK || !s)
		return r;
	printf("created image %s with tag %s (%s of data)\n", path, s, sizearg);
	return EXIT_OK;
}

static int image_adopt(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tag", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "adopt PATH [--tag UUID]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char path[PATH_MAX];
	const char *tagarg = NULL, *s = NULL;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': tagarg = optarg; break;
		case 'h': return cli_usage(cli, "image", synopsis, false);
		default: return cli_usage(cli, "image", synopsis, true);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cli, "image", synopsis, true);
	if (absolute(cli, argv[optind], path) < 0)
		return EXIT_USAGE;
	req = tagmem_request_new("image_adopt");
	json_object_object_add(req, "path", json_object_new_string(path));
	r = send_image_request(cli, req, tagarg, &reply, &s);
	if (r != EXIT_OK || !s)
		return r;
	printf("adopted image %s with tag %s\n", path, s);
	return EXIT_OK;
}

/* "none" or 0 removes a budget (JSON null), as 0 means none for brokerd's own
 * --dirty-budget; anything else is bytes. */
static int budget_arg(struct cli *cli, const char *name, const char *arg, struct json_object *args)
{
	uint64_t v = 0;

	if (parse_size(arg, &v) < 0 && strcmp(arg, "none")) {
		cli_err(cli, "--%s '%s': give bytes (like 256M or 2G), or none (also 0)", name, arg);
		return -EINVAL;
	}
	if (!strcmp(arg, "none") || v == 0) {
		json_object_object_add(args, name, NULL);
		return 0;
	}
	json_object_object_add(args, name, json_object_new_uint64(v));
	return 0;
}

static int image_budget(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dirty", required_argument, NULL, 'd' },
		{ "resident", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "budget UUID [--dirty SIZE|none] [--resident SIZE|none]";
	_cleanup_json_ struct json_object *reply = NULL, *args = json_object_new_object();
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "d:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
		case 'r':
			if (budget_arg(cli, opt == 'd' ? "dirty" : "resident", optarg, args) < 0)
				return EXIT_USAGE;
			break;
		case 'h': return cli_usage(cli, "image", synopsis, false);
		default: return cli_usage(cli, "image", synopsis, true);
		}
	}
	if (argc - optind != 1 || !json_object_object_length(args))
		return cli_usage(cli, "image", synopsis, true);
	r = cli_call_tag(cli, "image_budget", argv[optind], json_object_get(args), tagstr, &reply,
			 &result);
	if (r < 0)
		return -r;
	if (cli->json)
		cli_print_json(result);
	else
		printf("budgets of tag %s set\n", tagstr);
	return EXIT_OK;
}

/* The host's budget for all images together, shared fairly between VMs, changed at run time
 * (brokerd's --resident-budget applies again at its next start). */
static int image_host_budget(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "host-budget SIZE|none";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct json_object *result;
	char b1[32], b2[32];
	uint64_t now = 0, before = 0;
	int r;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return cli_usage(cli, "image", synopsis, false);
	if (argc != 2)
		return cli_usage(cli, "image", synopsis, true);
	req = tagmem_request_new("host_budget");
	if (budget_arg(cli, "resident", argv[1], req) < 0)
		return EXIT_USAGE;
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_u64(result, "resident_bytes", &now);
	tagmem_json_get_u64(result, "previous_bytes", &before);
	printf("host image budget: %s (was %s); 'tagmem status' shows each VM's part\n",
	       now ? format_size(now, b1, sizeof(b1)) : "none",
	       before ? format_size(before, b2, sizeof(b2)) : "none");
	return EXIT_OK;
}

static int image_invalidate(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "invalidate UUID";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX], b1[32];
	struct json_object *result;
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage(cli, "image", synopsis, argc != 2 || strcmp(argv[1], "--help"));
	cli_long_operation(cli);
	r = cli_call_tag(cli, "image_invalidate", argv[1], NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json)
		cli_print_json(result);
	else
		printf("invalidated tag %s: %s dropped from the host cache\n", tagstr,
		       cli_size_of(result, "dropped_bytes", b1, sizeof(b1)));
	return EXIT_OK;
}

/* After writes were lost: the operator says the data has been dealt with. */
static int image_clear_error(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "clear-error UUID";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result, *was;
	const char *what = "";

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage(cli, "image", synopsis, argc != 2 || strcmp(argv[1], "--help"));
	int r = cli_call_tag(cli, "image_clear_error", argv[1], NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
	} else if (json_object_object_get_ex(result, "cleared", &was) && was) {
		tagmem_json_get_string(was, "error", &what);
		printf("tag %s: cleared its lost writes (%s); its flushes report afresh\n", tagstr,
		       what);
	} else {
		printf("tag %s had lost no writes; nothing to clear\n", tagstr);
	}
	return EXIT_OK;
}

static int image_forget(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "forget UUID";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct json_object *result;
	const char *path = "";
	int r;

	if (argc != 2 || argv[1][0] == '-')
		return cli_usage(cli, "image", synopsis, argc != 2 || strcmp(argv[1], "--help"));
	r = cli_call_tag(cli, "image_forget", argv[1], NULL, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
	} else {
		tagmem_json_get_string(result, "path", &path);
		printf("forgot image %s (tag %s); the file stays\n", path, tagstr);
	}
	return EXIT_OK;
}

int cmd_image(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "create", image_create, NULL },
		{ "adopt", image_adopt, NULL },
		{ "budget", image_budget, NULL },
		{ "host-budget", image_host_budget, NULL },
		{ "invalidate", image_invalidate, NULL },
		{ "clear-error", image_clear_error, NULL },
		{ "forget", image_forget, NULL },
	};

	return cli_dispatch(cli, "image", "create PATH --size SIZE [--tag UUID] | adopt PATH "
			    "[--tag UUID] | budget UUID [--dirty SIZE|none] [--resident SIZE|none] "
			    "| host-budget SIZE|none | invalidate UUID | clear-error UUID | forget UUID", subs, ARRAY_SIZE(subs), argc, argv);
}
