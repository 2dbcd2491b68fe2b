/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* With --json, the error as {"error": {"code", "message"}} on stdout, once a run: a script
 * reads one object, the first error, whoever found it (the CLI or brokerd). */
static void json_error(struct cli *cli, const char *code, const char *message)
{
	struct json_object *o, *e;

	if (!cli->json || cli->error_said)
		return;
	cli->error_said = true;
	o = json_object_new_object();
	e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	cli_print_json(o);
	json_object_put(o);
}

/* One error: text on stderr for people, and the JSON object for scripts. */
static void say_error(struct cli *cli, const char *code, const char *message)
{
	fprintf(stderr, "%s: %s\n", cli->prog, message);
	json_error(cli, code, message);
}

void cli_fail(struct cli *cli, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say_error(cli, code, msg);
}

/* brokerd names the request's JSON fields; a person typed the command's options. */
static void fields_to_options(const char *in, char *out, size_t len)
{
	static const char *const map[][2] = {
		{ "\"name\"", "--name" }, { "\"size\"", "--size" }, { "\"offset\"", "--offset" },
		{ "\"length\"", "--length" }, { "\"to\"", "--to" }, { "\"dirty\"", "--dirty" },
		{ "\"resident\"", "--resident" }, { "\"vm\"", "--vm" }, { "\"qmp\"", "--qmp" },
		{ "\"mode\"", "--mode" }, { "\"layout\"", "--layout" }, { "\"ram\"", "--ram" },
		{ "\"threads\"", "--threads" }, { "\"path\"", "the file name" },
		{ "\"tag\"", "the UUID" }, { "\"tags\"", "the UUIDs" },
	};
	size_t o = 0;

	while (*in && o + 1 < len) {
		size_t i;

		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
			size_t n = strlen(map[i][0]);
			if (!strncmp(in, map[i][0], n) && o + strlen(map[i][1]) + 1 < len) {
				o += (size_t)snprintf(out + o, len - o, "%s", map[i][1]);
				in += n;
				break;
			}
		}
		if (i == sizeof(map) / sizeof(map[0]))
			out[o++] = *in++;
	}
	out[o] = '\0';
}

int cli_usage(struct cli *cli, const char *cmd, const char *synopsis, bool error)
{
	fprintf(error ? stderr : stdout, "Usage: %s %s %s\n", cli->prog, cmd, synopsis);
	if (!error) /* asked for help: what it does and what each option means */
		cli_help_text(cmd);
	else
		fprintf(stderr, "('%s help %s' describes the options)\n", cli->prog, cmd);
	if (error) {
		char msg[512];

		snprintf(msg, sizeof(msg), "usage: %s %s %s", cli->prog, cmd, synopsis);
		json_error(cli, "invalid_argument", msg);
	}
	return error ? EXIT_USAGE : EXIT_OK;
}

int cli_dispatch(struct cli *cli, const char *cmd, const char *synopsis,
		 const struct cli_command *subs, size_t nsubs, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage(cli, cmd, synopsis, true);
	for (size_t i = 0; i < nsubs; i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(cli, argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cli_usage(cli, cmd, synopsis, false);
	cli_err(cli, "unknown %s command '%s'", cmd, argv[1]);
	return cli_usage(cli, cmd, synopsis, true);
}

int cli_connect(struct cli *cli, struct tagmem_client **ret_client, bool quiet)
{
	const char *path = cli->socket ? cli->socket : getenv("TAGMEM_SOCKET");
	int r;

	if (!path || !*path)
		path = TAGMEM_DEFAULT_SOCKET;
	r = tagmem_client_connect(cli->ctx, path, ret_client);
	if (r == 0) /* the typed calls keep to --timeout too */
		tagmem_client_set_timeout(*ret_client, cli->timeout_ms);
	if (r < 0 && !quiet && cli->guest)
		cli_fail(cli, "unreachable", "cannot reach the guest agent at %s: %s (is "
			 "tagmem-guestd running in this VM? 'systemctl start tagmem-guestd', or "
			 "start /usr/sbin/tagmem-guestd as root)", path, strerror(-r));
	else if (r < 0 && !quiet && cli->peer)
		cli_fail(cli, "unreachable", "cannot reach %s at %s: %s (%s)", cli->peer, path,
			 strerror(-r), cli->peer_hint);
	else if (r < 0 && !quiet)
		cli_fail(cli, "unreachable", "cannot reach brokerd at %s: %s (is it running? "
			 "start it with 'systemctl start tagmem-brokerd' or pass --socket)", path,
			 strerror(-r));
	return r;
}

int cli_typed_fail(struct cli *cli, struct tagmem_client *client, int r)
{
	const char *message, *code = tagmem_client_get_error(client, &message);
	char text[1024];

	cli_progress_stop();
	if (!code) {
		cli_fail(cli, "unreachable", "%s did not answer: %s", cli->peer ? cli->peer :
			 "brokerd", strerror(-r));
		return -EXIT_UNREACHABLE;
	}
	if (!strcmp(code, "invalid_argument") && !cli->json)
		fields_to_options(message, text, sizeof(text));
	else
		snprintf(text, sizeof(text), "%s", message);
	say_error(cli, code, text);
	return !strcmp(code, "invalid_argument") ? -EXIT_USAGE : -EXIT_FAIL;
}

int cli_call(struct cli *cli, struct json_object *request, struct json_object **ret_reply,
	     struct json_object **ret_result)
{
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	struct json_object *reply = NULL;
	const char *code, *message;
	int r;

	if (cli_connect(cli, &client, false) < 0)
		return -EXIT_UNREACHABLE;
	r = tagmem_client_call(client, request, cli->timeout_ms, &reply);
	cli_progress_stop(); /* the answer is here: the line goes before anything is printed */
	if (r < 0) {
		cli_fail(cli, "unreachable", "%s did not answer: %s", cli->guest ? "the guest agent" :
			 cli->peer ? cli->peer : "brokerd", strerror(-r));
		return -EXIT_UNREACHABLE;
	}
	r = tagmem_reply_error(reply, &code, &message);
	if (r == -EREMOTEIO) {
		char text[1024];
		bool usage = !strcmp(code, "invalid_argument");

		/* an argument brokerd refused is a usage error: exit 2, and name the option */
		if (usage && !cli->json)
			fields_to_options(message, text, sizeof(text));
		else
			snprintf(text, sizeof(text), "%s", message);
		say_error(cli, code, text);
		json_object_put(reply);
		return usage ? -EXIT_USAGE : -EXIT_FAIL;
	}
	if (r < 0) {
		cli_fail(cli, "internal", "brokerd sent a malformed reply");
		json_object_put(reply);
		return -EXIT_FAIL;
	}
	*ret_reply = reply;
	*ret_result = tagmem_reply_result(reply);
	return 0;
}

int cli_call_tag(struct cli *cli, const char *op, const char *tagarg, struct json_object *args,
		 char ret_tag[TAGMEM_TAG_STRING_MAX], struct json_object **ret_reply,
		 struct json_object **ret_result)
{
	_cleanup_json_ struct json_object *req = args;
	tagmem_tag tag;

	if (cli_parse_tag(cli, tagarg, &tag) < 0)
		return -EXIT_USAGE;
	if (!req)
		req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string(op));
	json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(&tag, ret_tag)));
	return cli_call(cli, req, ret_reply, ret_result);
}

void cli_print_json(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
}

int cli_parse_tag(struct cli *cli, const char *arg, tagmem_tag *ret_tag)
{
	if (!arg) {
		cli_err(cli, "a tag (UUID) is required");
		return -EINVAL;
	}
	if (tagmem_tag_parse(arg, ret_tag) < 0) {
		cli_err(cli, "'%s' is not a tag: expected a UUID like "
			"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", arg);
		return -EINVAL;
	}
	return 0;
}

struct json_object *cli_tags_array(struct cli *cli, int n, char **args)
{
	struct json_object *tags = json_object_new_array();

	for (int i = 0; i < n; i++) {
		char s[TAGMEM_TAG_STRING_MAX];
		tagmem_tag t;

		if (cli_parse_tag(cli, args[i], &t) < 0) {
			json_object_put(tags);
			return NULL;
		}
		json_object_array_add(tags, json_object_new_string(tagmem_tag_format(&t, s)));
	}
	return tags;
}

static const char *str(struct json_object *o, const char *key, const char *dflt)
{
	const char *s;

	return tagmem_json_get_string(o, key, &s) == 0 ? s : dflt;
}

void cli_print_tag_header(void)
{
	printf("%-36s  %-15s  %10s  %-8s  %s\n", "TAG", "STATE", "SIZE", "DEVICE", "OWNER");
}

void cli_print_tag_row(struct json_object *tag)
{
	struct json_object *owner;
	char size[32] = "-", who[192] = "-";
	uint64_t v;

	if (tagmem_json_get_u64(tag, "size", &v) == 0)
		format_size(v, size, sizeof(size));
	if (json_object_object_get_ex(tag, "owner", &owner)) {
		uint64_t uid = 0, slot;
		char where[32] = "";
		tagmem_json_get_u64(owner, "uid", &uid);
		/* a VM's tags say which nvdimm slot they sit in */
		if (tagmem_json_get_u64(owner, "slot", &slot) == 0)
			snprintf(where, sizeof(where), " slot %llu", (unsigned long long)slot);
		snprintf(who, sizeof(who), "uid %llu%s%s%s", (unsigned long long)uid,
			 *str(owner, "name", "") ? " " : "", str(owner, "name", ""), where);
	}
	printf("%-36s  %-15s  %10s  %-8s  %s\n", str(tag, "tag", "?"), str(tag, "state", "?"),
	       size, str(tag, "device", "-"), who);
}

const char *cli_size_of(struct json_object *o, const char *key, char *buf, size_t len)
{
	uint64_t v = 0;

	tagmem_json_get_u64(o, key, &v);
	return format_size(v, buf, len);
}
