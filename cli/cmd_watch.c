/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem watch: stream brokerd's events until interrupted (or --count events arrived). */
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

/* flush_done carries the flush, not a tag object: what was made durable, or why not. */
static void print_flush_done(struct json_object *ev)
{
	const char *tag = "?", *durability = "range", *message = "";
	struct json_object *err;
	uint64_t id = 0, off = 0, len = 0;
	char b1[32], b2[32];

	tagmem_json_get_string(ev, "tag", &tag);
	tagmem_json_get_u64(ev, "flush_id", &id);
	tagmem_json_get_u64(ev, "offset", &off);
	tagmem_json_get_u64(ev, "length", &len);
	tagmem_json_get_string(ev, "durability", &durability);
	printf("%s flush %llu: %s at %s", tag, (unsigned long long)id,
	       format_size(len, b1, sizeof(b1)), format_size(off, b2, sizeof(b2)));
	if (json_object_object_get_ex(ev, "error", &err)) {
		tagmem_json_get_string(err, "message", &message);
		printf(" failed: %s\n", message);
	} else {
		printf(" durable (%s)\n", !strcmp(durability, "whole_file") ? "whole file" : "range");
	}
}

static void print_event(struct cli *cli, struct json_object *ev)
{
	struct json_object *tag;
	const char *name = "?";
	char stamp[16];
	time_t now = time(NULL);

	if (cli->json) {
		/* one event per line: a stream that jq and line readers can follow */
		puts(json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE));
		fflush(stdout);
		return;
	}
	strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&now));
	tagmem_json_get_string(ev, "event", &name);
	printf("%s %-20s ", stamp, name);
	if (json_object_object_get_ex(ev, "tag", &tag) && json_object_is_type(tag, json_type_object)) {
		cli_print_tag_row(tag);
	} else if (!strcmp(name, "flush_done")) {
		print_flush_done(ev);
	} else {
		uint64_t size = 0;
		char buf[32];
		tagmem_json_get_u64(ev, "size", &size);
		printf("%s\n", format_size(size, buf, sizeof(buf)));
	}
	fflush(stdout);
}

int cmd_watch(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "[--count N] [--json]";
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t count = 0, seen = 0;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (parse_size(optarg, &count) < 0 || count == 0) {
				cli_err(cli, "--count takes a positive number");
				return EXIT_USAGE;
			}
			break;
		case 'h': return cli_usage(cli, "watch", synopsis, false);
		default: return cli_usage(cli, "watch", synopsis, true);
		}
	}
	if (optind != argc)
		return cli_usage(cli, "watch", synopsis, true);
	if (cli_connect(cli, &client, false) < 0)
		return EXIT_UNREACHABLE;
	req = tagmem_request_new("subscribe");
	r = tagmem_client_call_result(client, req, cli->timeout_ms, &reply);
	if (r < 0) {
		cli_fail(cli, r == -EREMOTEIO ? "too_many_subscribers" : "unreachable",
			 "cannot subscribe: %s", strerror(-r));
		return r == -EREMOTEIO ? EXIT_FAIL : EXIT_UNREACHABLE;
	}
	if (!cli->json)
		fprintf(stderr, "%s: watching %s; interrupt to stop\n", cli->prog,
			tagmem_client_get_path(client));
	/* No SA_RESTART: a signal must wake the poll inside next_event. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!interrupted && (!count || seen < count)) {
		_cleanup_json_ struct json_object *ev = NULL;

		r = tagmem_client_next_event(client, 500, &ev);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r < 0) {
			cli_fail(cli, "unreachable", "lost brokerd: %s", strerror(-r));
			return EXIT_UNREACHABLE;
		}
		print_event(cli, ev);
		seen++;
	}
	return EXIT_OK;
}
