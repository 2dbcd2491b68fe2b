/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem lookup <uuid>: print the device path of a tag. Asks brokerd; when brokerd cannot be
 * reached, reads the kernel's (or the simulator's) sysfs tree directly and says so.
 * Exit: 0 found; 1 not found; 3 brokerd is there but could not be asked and the tree has no
 * such tag. Where no brokerd runs at all (no socket: a guest without one, say), the kernel's
 * tree is the whole answer, so a tag that is not in it is not found (1), not unreachable:
 * a script must be able to tell "not here" from "could not ask".
 */
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

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

/* Roots to read without brokerd: --root, $TAGMEM_ROOT, else the host and the simulator.
 * 0 found (printed), -ENOENT no tree that could be read has it, -ENODEV no tree at all. */
static int lookup_sysfs(struct cli *cli, const char *root_opt, const tagmem_tag *tag,
			const char *tagstr, bool explain)
{
	bool read_one = false;
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
		struct stat st;
		int r;

		if (stat(roots[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue; /* no such tree here (the simulator's, on most machines) */
		r = tagmem_resolve_tag(cli->ctx, roots[i], tag, &path);
		read_one |= r == 0 || r == -ENOENT;
		if (r == 0) {
			if (explain && !cli->json)
				fprintf(stderr, "%s: brokerd not reachable; resolved from the sysfs "
					"tree at %s\n", cli->prog, roots[i]);
			return print_found(cli, tagstr, path, "sysfs", roots[i]);
		}
	}
	return read_one ? -ENOENT : -ENODEV;
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
	_cleanup_free_ char *path = NULL;
	const char *root = NULL;
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
		r = lookup_sysfs(cli, root, &tag, tagstr, false);
		if (r == 0)
			return EXIT_OK;
		cli_fail(cli, "not_found", r == -ENODEV ? "there is no sysfs tree at %s to read" :
			 "no device carries tag %s", r == -ENODEV ? (root ? root : "/") : tagstr);
		return EXIT_FAIL;
	}
	r = cli_connect(cli, &client, true);
	if (r < 0) {
		/* no socket at all: no brokerd runs here, and the kernel's tree is the answer */
		bool none_here = r == -ENOENT;
		int s = lookup_sysfs(cli, NULL, &tag, tagstr, true);

		if (s == 0)
			return EXIT_OK;
		if (none_here && s == -ENOENT) {
			cli_fail(cli, "not_found", "no device carries tag %s (no brokerd runs here; "
				 "the kernel's sysfs tree was read instead)", tagstr);
			return EXIT_FAIL;
		}
		cli_fail(cli, "unreachable", "brokerd is not reachable (%s) and no device in the "
			 "sysfs tree carries tag %s: brokerd may know it (an image); start brokerd "
			 "or pass --socket", strerror(-r), tagstr);
		return EXIT_UNREACHABLE;
	}
	r = tagmem_lookup(client, &tag, &path);
	if (r < 0)
		return -cli_typed_fail(cli, client, r);
	return print_found(cli, tagstr, path, "brokerd", NULL);
}
