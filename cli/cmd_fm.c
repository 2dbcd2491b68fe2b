/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem fm add|release|add-host|list: drive a simulated fabric manager, as an orchestrator
 * would drive a real one. Without --host it is the one embedded in this host's brokerd; with
 * --host (or --fabric) it is tagmem-fmd, which several hosts share, found at
 * --fabric DIR or $TAGMEM_FABRIC. Root or the daemon's user only.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define FM_MAX_HOSTS 64

/* The options of the fm subcommands; each takes those its synopsis names. */
struct fm_target {
	const char *size, *tag;
	bool shared;
	const char *fabric;          /* --fabric DIR, or $TAGMEM_FABRIC */
	const char *hosts[FM_MAX_HOSTS];
	size_t nhosts;
	char socket[PATH_MAX];
};

enum { FM_SIZE = 1, FM_TAG = 2, FM_SHARED = 4, FM_HOST = 8, FM_HOSTS = 16 };

static int add_host(struct cli *cli, struct fm_target *t, const char *host)
{
	if (t->nhosts == FM_MAX_HOSTS) {
		cli_err(cli, "at most %d --host", FM_MAX_HOSTS);
		return -1;
	}
	t->hosts[t->nhosts++] = host;
	return 0;
}

/* After the options: talk to tagmem-fmd if a host or a fabric was named. 0 embedded, 1
 * shared, -1 a usage error. */
static int fm_route(struct cli *cli, struct fm_target *t, bool need_host)
{
	if (!t->fabric)
		t->fabric = getenv("TAGMEM_FABRIC"); /* set: the shared fabric is the one meant */
	if (!t->nhosts && !t->fabric)
		return 0;
	if (!t->fabric) {
		cli_err(cli, "--host names a host of a shared fabric: give its directory with "
			"--fabric DIR (or TAGMEM_FABRIC)");
		return -1;
	}
	if (need_host && !t->nhosts) {
		cli_err(cli, "a shared fabric needs --host: which host(s) get the capacity");
		return -1;
	}
	if (snprintf(t->socket, sizeof(t->socket), "%s/fabric.sock", t->fabric) >= 108) {
		cli_err(cli, "--fabric '%s' is too long a path", t->fabric);
		return -1;
	}
	cli->socket = t->socket;
	cli->peer = "the fabric manager";
	cli->peer_hint = "is 'tagmem-fmd --dir DIR' running for that directory?";
	return 1;
}

static struct json_object *hosts_json(const struct fm_target *t)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < t->nhosts; i++)
		json_object_array_add(arr, json_object_new_string(t->hosts[i]));
	return arr;
}

static void print_hosts(struct json_object *o)
{
	struct json_object *hosts = json_object_object_get(o, "hosts");

	for (size_t i = 0; hosts && i < json_object_array_length(hosts); i++)
		printf("%s%s", i ? "," : "", json_object_get_string(json_object_array_get_idx(hosts, i)));
}

/*
 * Parse a subcommand's options: those in allowed (FM_*; --fabric always), the tag also as the
 * one argument ("fm release UUID"). EXIT_OK, or the exit status of the usage it printed.
 */
static int fm_parse(struct cli *cli, int argc, char **argv, const char *synopsis,
		    unsigned allowed, struct fm_target *t)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "tag", required_argument, NULL, 't' },
		{ "shared", no_argument, NULL, 'S' },
		{ "host", required_argument, NULL, 'H' },
		{ "fabric", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "s:t:SH:F:h", opts, NULL)) != -1) {
		bool ok = (opt == 's' && (allowed & FM_SIZE)) || (opt == 't' && (allowed & FM_TAG)) ||
			  (opt == 'S' && (allowed & FM_SHARED)) || opt == 'F' ||
			  (opt == 'H' && (allowed & (FM_HOST | FM_HOSTS)));

		if (opt == 'h')
			return cli_usage(cli, "fm", synopsis, false);
		if (!ok)
			return cli_usage(cli, "fm", synopsis, true);
		switch (opt) {
		case 's': t->size = optarg; break;
		case 't': t->tag = optarg; break;
		case 'S': t->shared = true; break;
		case 'F': t->fabric = optarg; break;
		case 'H':
			if (t->nhosts && !(allowed & FM_HOSTS))
				return cli_usage(cli, "fm", synopsis, true); /* one --host */
			if (add_host(cli, t, optarg) < 0)
				return EXIT_USAGE;
			break;
		}
	}
	if ((allowed & FM_TAG) && !t->tag && optind == argc - 1)
		t->tag = argv[optind++]; /* "fm release UUID" reads naturally too */
	return optind == argc ? EXIT_OK : cli_usage(cli, "fm", synopsis, true);
}

static int fm_add(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "add --size SIZE [--tag UUID] [--shared] "
				       "[--fabric DIR --host ID...]";
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct fm_target t = { 0 };
	struct json_object *result;
	const char *s;
	uint64_t size;
	tagmem_tag tag;
	int r, shared_fabric;

	r = fm_parse(cli, argc, argv, synopsis, FM_SIZE | FM_TAG | FM_SHARED | FM_HOSTS, &t);
	if (r != EXIT_OK || !t.size)
		return r != EXIT_OK ? r : cli_usage(cli, "fm", synopsis, true);
	if (parse_size(t.size, &size) < 0 || size == 0 || size % (2u << 20)) {
		cli_err(cli, "--size '%s': give a multiple of 2M, like 512M or 1G", t.size);
		return EXIT_USAGE;
	}
	shared_fabric = fm_route(cli, &t, true);
	if (shared_fabric < 0)
		return EXIT_USAGE;
	req = tagmem_request_new("fm_add");
	json_object_object_add(req, "size", json_object_new_uint64(size));
	if (t.tag) {
		if (cli_parse_tag(cli, t.tag, &tag) < 0)
			return EXIT_USAGE;
		json_object_object_add(req, "tag",
				       json_object_new_string(tagmem_tag_format(&tag, tagstr)));
	}
	if (t.shared)
		json_object_object_add(req, "shared", json_object_new_boolean(true));
	if (shared_fabric)
		json_object_object_add(req, "hosts", hosts_json(&t));
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	if (shared_fabric && tagmem_json_get_string(result, "tag", &s) == 0) {
		printf("added %s %s for ", t.shared ? "shared tag" : "tag", s);
		print_hosts(result);
		putchar('\n');
	} else if (tagmem_json_get_string(result, "tag", &s) == 0) {
		const char *state = "?", *path = NULL;
		tagmem_json_get_string(result, "state", &state);
		tagmem_json_get_string(result, "path", &path);
		printf("added %s %s: %s%s%s\n", t.shared ? "shared tag" : "tag", s, state,
		       path ? " at " : "", path ? path : "");
	} else {
		printf("added %s of untagged capacity\n", t.size);
	}
	return EXIT_OK;
}

/* A tag op ("fm_release", "fm_add_reference") with the optional "host": its result. */
static int fm_tag_call(struct cli *cli, const char *op, struct fm_target *t, bool need_host,
		       char tagstr[TAGMEM_TAG_STRING_MAX], struct json_object **reply,
		       struct json_object **result)
{
	struct json_object *args = NULL; /* cli_call_tag takes it */
	int shared_fabric = fm_route(cli, t, need_host), r;

	if (shared_fabric < 0)
		return -EXIT_USAGE;
	if (t->nhosts) {
		args = json_object_new_object();
		json_object_object_add(args, "host", json_object_new_string(t->hosts[0]));
	}
	r = cli_call_tag(cli, op, t->tag, args, tagstr, reply, result);
	if (r == 0 && cli->json)
		cli_print_json(*result);
	return r < 0 ? r : shared_fabric;
}

static int fm_release(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "release --tag UUID [--fabric DIR [--host ID]]";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct fm_target t = { 0 };
	struct json_object *result;
	const char *state = "?";
	bool freed = false;
	int r = fm_parse(cli, argc, argv, synopsis, FM_TAG | FM_HOST, &t);

	if (r != EXIT_OK || !t.tag)
		return r != EXIT_OK ? r : cli_usage(cli, "fm", synopsis, true);
	r = fm_tag_call(cli, "fm_release", &t, false, tagstr, &reply, &result);
	if (r < 0 || cli->json)
		return r < 0 ? -r : EXIT_OK;
	tagmem_json_get_string(result, "state", &state);
	tagmem_json_get_bool(result, "freed", &freed);
	if (r && t.nhosts)
		printf("host %s gave back %s%s\n", t.hosts[0], tagstr,
		       freed ? "; no host has it now: its capacity is free" : "");
	else if (!strcmp(state, "release_pending"))
		printf("release of %s is pending: it is claimed; it completes when the owner "
		       "releases it\n", tagstr);
	else
		printf("released %s\n", tagstr);
	return EXIT_OK;
}

static int fm_add_host(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "add-host --tag UUID --host ID [--fabric DIR]";
	_cleanup_json_ struct json_object *reply = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	struct fm_target t = { 0 };
	struct json_object *result;
	int r = fm_parse(cli, argc, argv, synopsis, FM_TAG | FM_HOST, &t);

	if (r != EXIT_OK || !t.tag || !t.nhosts)
		return r != EXIT_OK ? r : cli_usage(cli, "fm", synopsis, true);
	r = fm_tag_call(cli, "fm_add_reference", &t, true, tagstr, &reply, &result);
	if (r < 0 || cli->json)
		return r < 0 ? -r : EXIT_OK;
	printf("%s is now on ", tagstr);
	print_hosts(result);
	putchar('\n');
	return EXIT_OK;
}

static int fm_list(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "list [--fabric DIR] [--host ID]";
	_cleanup_json_ struct json_object *req = tagmem_request_new("fm_list"), *reply = NULL;
	struct fm_target t = { 0 };
	struct json_object *result, *tags;
	int r = fm_parse(cli, argc, argv, synopsis, FM_HOST, &t);

	if (r != EXIT_OK)
		return r;
	if (!t.fabric && !getenv("TAGMEM_FABRIC")) {
		cli_err(cli, "fm list asks a shared fabric manager: give --fabric DIR (or "
			"TAGMEM_FABRIC); this host's own tags are 'tagmem list'");
		return EXIT_USAGE;
	}
	if (fm_route(cli, &t, false) < 0)
		return EXIT_USAGE;
	if (t.nhosts)
		json_object_object_add(req, "host", json_object_new_string(t.hosts[0]));
	r = cli_call(cli, req, &reply, &result);
	if (r < 0)
		return -r;
	if (cli->json) {
		cli_print_json(result);
		return EXIT_OK;
	}
	tags = json_object_object_get(result, "tags");
	printf("%-36s  %-7s  %12s  %s\n", "TAG", "SHARED", "SIZE", "HOSTS");
	for (size_t i = 0; tags && i < json_object_array_length(tags); i++) {
		struct json_object *o = json_object_array_get_idx(tags, i);
		const char *tag = "?";
		uint64_t size = 0;
		bool sh = false;

		tagmem_json_get_string(o, "tag", &tag);
		tagmem_json_get_u64(o, "size", &size);
		tagmem_json_get_bool(o, "shared", &sh);
		printf("%-36s  %-7s  %12llu  ", tag, sh ? "yes" : "no", (unsigned long long)size);
		print_hosts(o);
		putchar('\n');
	}
	return EXIT_OK;
}

int cmd_fm(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "add", fm_add, NULL },
		{ "release", fm_release, NULL },
		{ "add-host", fm_add_host, NULL },
		{ "list", fm_list, NULL },
	};

	return cli_dispatch(cli, "fm", "add --size SIZE [--tag UUID] [--shared] [--fabric DIR "
			    "--host ID...] | release --tag UUID [--fabric DIR [--host ID]] | "
			    "add-host --tag UUID --host ID | list [--host ID]",
			    subs, ARRAY_SIZE(subs), argc, argv);
}
