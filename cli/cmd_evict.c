/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem evict <uuid> [--to BYTES]: write back, then give an image's cached pages back. */
#include <getopt.h>
#include <string.h>

#include "cli.h"

int cmd_evict(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "<uuid> [--to BYTES]";
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *args = NULL, *result, *before = NULL, *after = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX], b1[32], b2[32], b3[32];
	const char *toarg = NULL;
	uint64_t to = 0, usec = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': toarg = optarg; break;
		case 'h': return cli_usage(cli, "evict", synopsis, false);
		default: return cli_usage(cli, "evict", synopsis, true);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cli, "evict", synopsis, true);
	if (toarg) {
		if (parse_size(toarg, &to) < 0) {
			cli_err(cli, "--to '%s': give the bytes to keep cached, like 0, 256M or 1G",
				toarg);
			return EXIT_USAGE;
		}
		args = json_object_new_object();
		json_object_object_add(args, "to", json_object_new_uint64(to));
	}
	cli_long_operation(cli);
	cli_watch_image(cli, argv[optind], true);
	r = cli_call_tag(cli, "evict", argv[optind], args, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	json_object_object_get_ex(result, "before", &before);
	json_object_object_get_ex(result, "after", &after);
	tagmem_json_get_u64(result, "usec", &usec);
	printf("evicted tag %s: resident %s -> %s (target %s) in %.1f ms\n", tagstr,
	       cli_size_of(before, "resident_bytes", b1, sizeof(b1)),
	       cli_size_of(after, "resident_bytes", b2, sizeof(b2)),
	       cli_size_of(result, "target_bytes", b3, sizeof(b3)), usec / 1000.0);
	return EXIT_OK;
}
