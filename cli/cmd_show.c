/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem show <uuid>: everything brokerd knows about one tag (libtagmem's tagmem_show). */
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cmd_show(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	_cleanup_json_ struct json_object *result = NULL;
	struct tagmem_info *info = NULL;
	tagmem_tag tag;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cli_usage(cli, "show", "<uuid> [--json]", opt != 'h');
	if (argc - optind != 1)
		return cli_usage(cli, "show", "<uuid> [--json]", true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	if (cli_connect(cli, &client, false) < 0)
		return EXIT_UNREACHABLE;
	r = tagmem_show(client, &tag, &info);
	if (r < 0)
		return -cli_typed_fail(cli, client, r);
	/* the tag object as brokerd sent it: every field, in its order */
	result = json_tokener_parse(tagmem_info_get_json(info));
	tagmem_info_unref(info);
	if (!result) {
		cli_fail(cli, "internal", "brokerd sent a malformed tag");
		return EXIT_FAIL;
	}
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	/* One "key: value" per line, nested owner flattened: easy for people and for grep. */
	json_object_object_foreach(result, key, val) {
		if (json_object_is_type(val, json_type_object)) {
			json_object_object_foreach(val, k2, v2) {
				if (!strcmp(k2, "since") && json_object_is_type(v2, json_type_int)) {
					/* people read a date, not seconds since 1970 */
					time_t t = (time_t)json_object_get_int64(v2);
					char when[64];
					struct tm tm;

					if (localtime_r(&t, &tm) &&
					    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm)) {
						printf("%s.%s: %s\n", key, k2, when);
						continue;
					}
				}
				printf("%s.%s: %s\n", key, k2, v2 ? json_object_get_string(v2) : "none");
			}
		} else if (!strcmp(key, "size")) {
			char buf[32];
			uint64_t v = 0;
			tagmem_json_get_u64(result, "size", &v);
			printf("size: %s (%s bytes)\n", format_size(v, buf, sizeof(buf)),
			       json_object_get_string(val));
		} else {
			printf("%s: %s\n", key, val ? json_object_get_string(val) : "none");
		}
	}
	return EXIT_OK;
}
