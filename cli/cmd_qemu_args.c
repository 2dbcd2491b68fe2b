/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem qemu-args [UUID…] --vm NAME [--mode nvdimm|virtio-pmem] [--no-channel] [--shell]:
 * claim the tags for a VM and print the QEMU arguments that hand them to it, with the VM's
 * guest channel (one per line, or --shell: one shell-quoted line). Without tags: only the
 * channel, for a VM that gets its tags hot-plugged.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

/* Single-quote for POSIX shells: 'it'\''s' */
static void print_quoted(const char *s)
{
	putchar('\'');
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*s);
	}
	putchar('\'');
}

int cmd_qemu_args(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' },
		{ "shell", no_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "no-channel", no_argument, NULL, 'n' },
		{ "ram", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "[UUID...] --vm NAME [--mode nvdimm|virtio-pmem] "
				       "[--ram UUID] [--no-channel] [--shell]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct json_object *result, *tags, *args;
	const char *vm = NULL, *mode = NULL, *ram = NULL;
	bool shell = false, channel = true;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "v:sm:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'v': vm = optarg; break;
		case 's': shell = true; break;
		case 'n': channel = false; break;
		case 'R': ram = optarg; break;
		case 'm': mode = optarg; break;
		case 'h': return cli_usage(cli, "qemu-args", synopsis, false);
		default: return cli_usage(cli, "qemu-args", synopsis, true);
		}
	}
	if (optind == argc && !channel && !ram)
		return cli_usage(cli, "qemu-args", synopsis, true);
	if (!vm) {
		/* the tags are claimed for that VM: a made-up name would hold them for nobody */
		cli_err(cli, "qemu-args needs --vm NAME, the VM the tags are claimed for");
		return EXIT_USAGE;
	}
	tags = cli_tags_array(cli, argc - optind, argv + optind);
	if (!tags)
		return EXIT_USAGE;
	req = tagmem_request_new("qemu_args");
	json_object_object_add(req, "vm", json_object_new_string(vm));
	if (mode)
		json_object_object_add(req, "mode", json_object_new_string(mode));
	json_object_object_add(req, "tags", tags);
	if (!channel)
		json_object_object_add(req, "channel", json_object_new_boolean(false));
	if (ram) {
		char s[TAGMEM_TAG_STRING_MAX];
		tagmem_tag t;

		if (cli_parse_tag(cli, ram, &t) < 0)
			return EXIT_USAGE;
		json_object_object_add(req, "ram", json_object_new_string(tagmem_tag_format(&t, s)));
	}
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	if (!json_object_object_get_ex(result, "args", &args) ||
	    !json_object_is_type(args, json_type_array)) {
		cli_fail(cli, "internal", "brokerd sent a malformed reply");
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < json_object_array_length(args); i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(args, i));
		if (shell) {
			if (i)
				putchar(' ');
			print_quoted(a);
		} else {
			puts(a);
		}
	}
	if (shell)
		putchar('\n');
	return EXIT_OK;
}
