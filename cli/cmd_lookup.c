/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem lookup <uuid>: print the device path of a tag. Asks brokerd; when brokerd cannot be
 * reached, reads the kernel's (or the simulator's) sysfs tree directly and says so.
 * Exit: 0 found, 1 not found, 3 brokerd unreachable and the tree had no such tag.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_SIM_ROOT "/run/tagmem/sim"

static int print_found(struct cli *cli, const char *tag, const char *path, const char *source,
		       const char *root)
{
	if (cli->json) {
		_cleanup_json_ struct json_object *o = json_object_new_object();
		json_object_object_add(o, "tag", json_object_new_string(tag));
		json_object_object_add(o, "path", json_object_new_string(path));
		json_object_object_add(o, "source", json_object_new_string(source));
		if (root)
			json_object_object_add(o, "root", json_object_new_string(root));
		cli_print_json(o);
	} else {
		puts(path);
	}
	return EXIT_OK;
}

/* Roots to read without brokerd: --root, $TAGMEM_ROOT, else the host and the simulator. */
static int lookup_sysfs(struct cli *cli, const char *root_opt, const tagmem_tag *tag,
			const char *tagstr, bool explain)
{
	const char *roots[2];
	size_t nroots = 0;
	const char *env = getenv("TAGMEM_ROOT");

	if (root_opt)
		roots[nroots++] = root_opt;
	else if (env && *env)
		roots[nroots++] = env;
	else {
		roots[nroots++] = "/";
		roots[nroots++] = DEFAULT_SIM_ROOT;
	}
	for (size_t i = 0; i < nroots; i++) {
		_cleanup_free_ char *path = NULL;
		if (tagmem_resolve_tag(cli->ctx, roots[i], tag, &path) == 0) {
			if (explain && !cli->json)
				fprintf(stderr, "%s: brokerd not reachable; resolved from the sysfs "
					"tree at %s\n", cli->prog, roots[i]);
			return print_found(cli, tagstr, path, "sysfs", roots[i]);
		}
	}
	return -ENOENT;
}

int cmd_lookup(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-daemon", no_argument, NULL, 'n' },
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "<uuid> [--no-daemon] [--root DIR]";
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	const char *root = NULL, *code, *message, *path;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	bool no_daemon = false;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "nr:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': no_daemon = true; break;
		case 'r': root = optarg; break;
		case 'h': return cli_usage(cli, "lookup", synopsis, false);
		default: return cli_usage(cli, "lookup", synopsis, true);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cli, "lookup", synopsis, true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	tagmem_tag_format(&tag, tagstr);

	if (no_daemon || root) {
		if (lookup_sysfs(cli, root, &tag, tagstr, false) == 0)
			return EXIT_OK;
		cli_err(cli, "no device carries tag %s", tagstr);
		return EXIT_FAIL;
	}
	if (cli_connect(cli, &client, true) < 0) {
		if (lookup_sysfs(cli, NULL, &tag, tagstr, true) == 0)
			return EXIT_OK;
		cli_err(cli, "brokerd is not reachable and no device in the sysfs tree carries "
			"tag %s", tagstr);
		return EXIT_UNREACHABLE;
	}
	req = tagmem_request_new("lookup");
	json_object_object_add(req, "tag", json_object_new_string(tagstr));
	r = tagmem_client_call(client, req, cli->timeout_ms, &reply);
	if (r < 0) {
		cli_err(cli, "brokerd did not answer: %s", strerror(-r));
		return EXIT_UNREACHABLE;
	}
	r = tagmem_reply_error(reply, &code, &message);
	if (r == -EREMOTEIO) {
		if (cli->json)
			cli_print_json(reply);
		cli_err(cli, "%s", message);
		return EXIT_FAIL;
	}
	if (r < 0 || tagmem_json_get_string(tagmem_reply_result(reply), "path", &path) < 0) {
		cli_err(cli, "brokerd sent a malformed reply");
		return EXIT_FAIL;
	}
	return print_found(cli, tagstr, path, "brokerd", NULL);
}
