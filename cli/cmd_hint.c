/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem --guest hint <uuid> --offset O --length L --cold|--hot: inside a VM, tell the guest
 * agent that a range of one of this VM's tags can be given back first when the host must
 * shrink it (a cache the program can refill), or no longer can.
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"

int cmd_hint(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "cold", no_argument, NULL, 'c' },
		{ "hot", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "<uuid> --offset BYTES --length BYTES --cold|--hot "
				       "(in a VM, with --guest)";
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *args, *result;
	char tagstr[TAGMEM_TAG_STRING_MAX], b1[32];
	const char *offarg = NULL, *lenarg = NULL, *state = NULL;
	uint64_t off, len;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "o:l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': offarg = optarg; break;
		case 'l': lenarg = optarg; break;
		case 'c': state = "cold"; break;
		case 'H': state = "hot"; break;
		case 'h': return cli_usage(cli, "hint", synopsis, false);
		default: return cli_usage(cli, "hint", synopsis, true);
		}
	}
	if (argc - optind != 1 || !offarg || !lenarg || !state)
		return cli_usage(cli, "hint", synopsis, true);
	if (!cli->guest) {
		/* brokerd has no such op: on the host, brokerd itself chooses what goes */
		cli_err(cli, "hint is for programs inside a VM, through the guest agent: run "
			"'tagmem --guest hint …' there (on the host, 'tagmem evict' gives memory back)");
		return EXIT_USAGE;
	}
	if (parse_size(offarg, &off) < 0 || parse_size(lenarg, &len) < 0 || len == 0) {
		cli_err(cli, "--offset and --length take bytes (like 4096, 2M or 1G); a length is "
			"more than 0");
		return EXIT_USAGE;
	}
	args = json_object_new_object();
	json_object_object_add(args, "offset", json_object_new_uint64(off));
	json_object_object_add(args, "length", json_object_new_uint64(len));
	json_object_object_add(args, "state", json_object_new_string(state));
	r = cli_call_tag(cli, "hint", argv[optind], args, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	printf("tag %s: %s cold (given back first when the host needs memory)\n", tagstr,
	       cli_size_of(result, "cold_bytes", b1, sizeof(b1)));
	return EXIT_OK;
}
