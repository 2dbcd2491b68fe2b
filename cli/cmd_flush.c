/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem flush <uuid> [--offset O --length L] [--async]: make an image's writes durable. */
#include <getopt.h>
#include <string.h>

#include "cli.h"

int cmd_flush(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "async", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "<uuid> [--offset BYTES] [--length BYTES] [--async]";
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *args, *result;
	char tagstr[TAGMEM_TAG_STRING_MAX], b1[32];
	const char *offarg = NULL, *lenarg = NULL, *durability = "?";
	bool async = false;
	uint64_t off = 0, len = 0, id = 0, batch = 0, n = 0, usec = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "o:l:ah", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': offarg = optarg; break;
		case 'l': lenarg = optarg; break;
		case 'a': async = true; break;
		case 'h': return cli_usage(cli, "flush", synopsis, false);
		default: return cli_usage(cli, "flush", synopsis, true);
		}
	}
	if (argc - optind != 1)
		return cli_usage(cli, "flush", synopsis, true);
	if ((offarg && parse_size(offarg, &off) < 0) ||
	    (lenarg && (parse_size(lenarg, &len) < 0 || len == 0))) {
		cli_err(cli, "--offset and --length take bytes (like 4096, 2M or 1G); a length is "
			"more than 0");
		return EXIT_USAGE;
	}
	args = json_object_new_object();
	if (offarg)
		json_object_object_add(args, "offset", json_object_new_uint64(off));
	if (lenarg)
		json_object_object_add(args, "length", json_object_new_uint64(len));
	json_object_object_add(args, "wait", json_object_new_boolean(!async));
	cli_long_operation(cli);
	if (!async)
		cli_watch_image(cli, argv[optind], false);
	r = cli_call_tag(cli, "flush", argv[optind], args, tagstr, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tagmem_json_get_u64(result, "flush_id", &id);
	if (async) {
		/* the completion is an event: `tagmem watch` shows it as flush_done */
		printf("flush %llu of tag %s queued\n", (unsigned long long)id, tagstr);
		return EXIT_OK;
	}
	tagmem_json_get_u64(result, "batch", &batch);
	tagmem_json_get_u64(result, "batch_size", &n);
	tagmem_json_get_u64(result, "usec", &usec);
	tagmem_json_get_string(result, "durability", &durability);
	if (!strcmp(durability, "whole_file"))
		/* fdatasync of the whole image: brokerd does not count what it wrote (counting
		 * every cached page would cost more than a small flush), so say nothing of bytes */
		printf("flushed tag %s: the whole image is durable, in %.1f ms (fdatasync; "
		       "writeback %llu, shared by %llu request%s)\n", tagstr, usec / 1000.0,
		       (unsigned long long)batch, (unsigned long long)n, n == 1 ? "" : "s");
	else
		printf("flushed tag %s: %s written in %.1f ms (writeback %llu, shared by %llu "
		       "request%s; durability: range)\n", tagstr,
		       cli_size_of(result, "written_bytes", b1, sizeof(b1)), usec / 1000.0,
		       (unsigned long long)batch, (unsigned long long)n, n == 1 ? "" : "s");
	return EXIT_OK;
}
