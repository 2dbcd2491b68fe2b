/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem vm migrate-args VM --to HOST [--qmp S] [--to-socket S] [--shell]
 * tagmem vm migrate VM --to HOST --uri URI [--qmp S] --to-qmp S [--to-socket S]
 *
 * Live migration between hosts that map the same tags, driven from here as libvirt's client
 * drives a managed migration: this host's brokerd (the source), HOST's brokerd (its socket as
 * reachable from here: --to-socket, or TAGMEM_HOSTS_DIR/HOST.sock) and this host's
 * tagmem-clusterd (the cluster-wide claims). migrate-args prints the destination QEMU's tag
 * arguments as HOST resolves the tags (the source's slots, -S -incoming defer); migrate then
 *   checks  every backing is a tag HOST has and HOST can take the claims (nothing stopped)
 *   listen  HOST's QEMU listens            send   the device state goes; the VM stops here
 *   flush   the images are durable         switch the claims move in one etcd transaction
 *   finish  HOST runs the VM               confirm this QEMU quits, its claims here go
 * A failure before the switch leaves the VM running here with its claims (the destination's
 * copy is discarded); after it, each step is retried until HOST and this host agree (a
 * brokerd that restarts is waited for), so one VM runs and one host owns its tags.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define RETRY_MS 60000        /* how long a step after the switch waits for a brokerd */

struct end {
	const char *socket;
	const char *name;      /* for messages: "this host's brokerd", "brokerd of h2" */
	char who[96];
};

struct migration {
	struct cli *cli;
	const char *vm, *to, *uri, *qmp, *to_qmp;
	char qmp_path[PATH_MAX];
	struct end src, dst, clusterd;
	struct json_object *begin;   /* vm_migrate_begin's result */
	char code[48], message[768]; /* the first failure */
	uint64_t t0, paused_at;
};

static uint64_t now_ms(void)
{
	return now_usec() / 1000;
}

static void phase(struct migration *m, const char *what)
{
	if (!m->cli->json)
		fprintf(stderr, "  [%5llu ms] %s\n", (unsigned long long)(now_ms() - m->t0), what);
}

/*
 * A test or an operator may stop the migration before a step (TAGMEM_MIGRATE_HOLD=STEP): the
 * process stops itself (SIGSTOP) and goes on at SIGCONT, so that a failure can be injected
 * between two steps.
 */
static void hold(struct migration *m, const char *step)
{
	const char *want = getenv("TAGMEM_MIGRATE_HOLD");

	if (!want || strcmp(want, step))
		return;
	fprintf(stderr, "tagmem: held before %s (pid %d): send SIGCONT to go on\n", step,
		(int)getpid());
	raise(SIGSTOP);
}

/* One request to one end; 0, -EXIT_UNREACHABLE (nothing answered), or -EXIT_FAIL with the
 * refusal in m->code/message (the first one is kept). *ret_result owned by *ret_reply. */
static int call(struct migration *m, struct end *e, struct json_object *req,
		struct json_object **ret_reply, struct json_object **ret_result)
{
	_cleanup_(tagmem_client_unrefp) struct tagmem_client *client = NULL;
	const char *code, *message;
	int r = tagmem_client_connect(m->cli->ctx, e->socket, &client);

	if (r == 0)
		r = tagmem_client_call(client, req, m->cli->timeout_ms, ret_reply);
	if (r < 0) {
		snprintf(e->who, sizeof(e->who), "%s", strerror(-r));
		if (!m->code[0]) {
			snprintf(m->code, sizeof(m->code), "unreachable");
			snprintf(m->message, sizeof(m->message), "cannot reach %s at %s: %s",
				 e->name, e->socket, strerror(-r));
		}
		return -EXIT_UNREACHABLE;
	}
	if (tagmem_reply_error(*ret_reply, &code, &message) < 0) {
		if (!m->code[0]) {
			snprintf(m->code, sizeof(m->code), "%s", code ? code : "internal");
			snprintf(m->message, sizeof(m->message), "%s: %s", e->name,
				 message ? message : "a malformed reply");
		}
		json_object_put(*ret_reply);
		*ret_reply = NULL;
		return -EXIT_FAIL;
	}
	*ret_result = tagmem_reply_result(*ret_reply);
	return 0;
}

static struct json_object *vm_request(struct migration *m, const char *op, const char *qmp,
				      bool uri)
{
	struct json_object *req = tagmem_request_new(op);

	json_object_object_add(req, "vm", json_object_new_string(m->vm));
	if (qmp)
		json_object_object_add(req, "qmp", json_object_new_string(qmp));
	if (uri)
		json_object_object_add(req, "uri", json_object_new_string(m->uri));
	return req;
}

/* A step that must happen (after the switch): asked again until it is done, while the end is
 * unreachable (a brokerd restarting); redo() first when the end forgot what it held. */
static int must(struct migration *m, struct end *e, const char *op, const char *qmp, bool uri,
		struct json_object **ret_reply, struct json_object **ret_result,
		int (*redo)(struct migration *m))
{
	uint64_t until = now_ms() + RETRY_MS;

	for (;;) {
		_cleanup_json_ struct json_object *req = vm_request(m, op, qmp, uri);
		char code[48];
		int r;

		snprintf(code, sizeof(code), "%s", m->code);
		r = call(m, e, req, ret_reply, ret_result);
		if (r == 0)
			return 0;
		if (r == -EXIT_FAIL && redo && !strcmp(m->code, "not_prepared") && redo(m) == 0) {
			snprintf(m->code, sizeof(m->code), "%s", code); /* handled */
			redo = NULL;
			continue;
		}
		if (r != -EXIT_UNREACHABLE || now_ms() > until)
			return r;
		if (!code[0])
			m->code[0] = 0; /* not the failure to report, as long as we wait */
		usleep(200 * 1000);
	}
}

/* The destination's qemu_args for an incoming VM: the source's tags and slots. */
static struct json_object *incoming_request(struct migration *m)
{
	struct json_object *req = tagmem_request_new("qemu_args"), *tags, *t;
	struct json_object *arr = json_object_new_array(), *sl = json_object_new_array();
	bool any_slot = false;

	json_object_object_add(req, "vm", json_object_new_string(m->vm));
	json_object_object_add(req, "incoming", json_object_new_boolean(true));
	if (json_object_object_get_ex(m->begin, "mode", &t))
		json_object_object_add(req, "mode", json_object_get(t));
	if (json_object_object_get_ex(m->begin, "ram", &t) && t)
		json_object_object_add(req, "ram", json_object_get(t));
	json_object_object_get_ex(m->begin, "tags", &tags);
	for (size_t i = 0; i < json_object_array_length(tags); i++) {
		struct json_object *o = json_object_array_get_idx(tags, i), *ram, *slot;

		if (json_object_object_get_ex(o, "ram", &ram) && json_object_get_boolean(ram))
			continue;
		json_object_array_add(arr, json_object_get(json_object_object_get(o, "tag")));
		if (json_object_object_get_ex(o, "slot", &slot)) {
			json_object_array_add(sl, json_object_get(slot));
			any_slot = true;
		}
	}
	json_object_object_add(req, "tags", arr);
	if (any_slot)
		json_object_object_add(req, "slots", sl);
	else
		json_object_put(sl);
	return req;
}

/* The destination brokerd restarted and forgot the provisional claims: hold them again. */
static int reprepare(struct migration *m)
{
	_cleanup_json_ struct json_object *req = incoming_request(m), *reply = NULL;
	struct json_object *res;

	return call(m, &m->dst, req, &reply, &res);
}

static int begin(struct migration *m, struct json_object **ret_reply)
{
	_cleanup_json_ struct json_object *req = vm_request(m, "vm_migrate_begin", m->qmp, false);

	return call(m, &m->src, req, ret_reply, &m->begin);
}

static void fail_said(struct migration *m)
{
	cli_fail(m->cli, m->code[0] ? m->code : "internal", "%s", m->message[0] ? m->message :
		 "the migration failed");
}

static void ends_init(struct migration *m, const char *to_socket, char *buf, size_t len)
{
	const char *dir = getenv("TAGMEM_HOSTS_DIR");

	m->src.socket = m->cli->socket ? m->cli->socket : getenv("TAGMEM_SOCKET");
	if (!m->src.socket || !*m->src.socket)
		m->src.socket = TAGMEM_DEFAULT_SOCKET;
	m->src.name = "this host's brokerd";
	if (!to_socket) {
		snprintf(buf, len, "%s/%s.sock", dir && *dir ? dir : "/run/tagmem/hosts", m->to);
		to_socket = buf;
	}
	m->dst.socket = to_socket;
	m->dst.name = "the destination's brokerd";
	m->clusterd.socket = getenv("TAGMEM_CLUSTER_SOCKET");
	if (!m->clusterd.socket || !*m->clusterd.socket)
		m->clusterd.socket = "/run/tagmem/clusterd.sock";
	m->clusterd.name = "this host's tagmem-clusterd";
}

static int parse(struct cli *cli, struct migration *m, bool args_only, int argc, char **argv,
		 char *sockbuf, size_t socklen, bool *ret_shell)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "to-socket", required_argument, NULL, 's' },
		{ "uri", required_argument, NULL, 'u' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "to-qmp", required_argument, NULL, 'Q' },
		{ "shell", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *synopsis = args_only ? "migrate-args VM --to HOST [--qmp SOCKET] "
					   "[--to-socket SOCKET] [--shell]" :
		"migrate VM --to HOST --uri URI --to-qmp SOCKET [--qmp SOCKET] [--to-socket SOCKET]";
	const char *to_socket = NULL;
	int opt;

	m->cli = cli;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': m->to = optarg; break;
		case 's': to_socket = optarg; break;
		case 'u': m->uri = optarg; break;
		case 'q': m->qmp = optarg; break;
		case 'Q': m->to_qmp = optarg; break;
		case 'S': *ret_shell = true; break;
		case 'h': return cli_usage(cli, "vm", synopsis, false);
		default: return cli_usage(cli, "vm", synopsis, true);
		}
	}
	if (argc - optind != 1 || !m->to)
		return cli_usage(cli, "vm", synopsis, true);
	if (!args_only && (!m->uri || !m->to_qmp)) {
		cli_err(cli, "migrate needs --uri (where the destination's QEMU listens, "
			"tcp:HOST:PORT or unix:/PATH) and --to-qmp (its QMP socket there)");
		return EXIT_USAGE;
	}
	if (!name_valid(m->to, 64)) {
		cli_err(cli, "--to: a host id is 1-64 letters, digits, '-', '_' or '.'");
		return EXIT_USAGE;
	}
	if (m->qmp && !realpath(m->qmp, m->qmp_path)) {
		cli_err(cli, "--qmp %s: %s", m->qmp, strerror(errno));
		return EXIT_USAGE;
	}
	if (m->qmp)
		m->qmp = m->qmp_path;
	if (m->to_qmp && m->to_qmp[0] != '/') {
		cli_err(cli, "--to-qmp: the absolute path of the QMP socket on the destination");
		return EXIT_USAGE;
	}
	m->vm = argv[optind];
	ends_init(m, to_socket, sockbuf, socklen);
	return -1;
}

int vm_migrate_args(struct cli *cli, int argc, char **argv)
{
	struct migration m = { 0 };
	_cleanup_json_ struct json_object *breply = NULL, *req = NULL, *reply = NULL;
	struct json_object *res, *args;
	char sockbuf[PATH_MAX];
	bool shell = false;
	int r = parse(cli, &m, true, argc, argv, sockbuf, sizeof(sockbuf), &shell);

	if (r >= 0)
		return r;
	r = begin(&m, &breply);
	if (r == 0) {
		req = incoming_request(&m);
		r = call(&m, &m.dst, req, &reply, &res);
	}
	if (r < 0) {
		fail_said(&m);
		return -r;
	}
	if (cli->json) {
		cli_print_json(res);
		return EXIT_OK;
	}
	args = json_object_object_get(res, "args");
	for (size_t i = 0; i < json_object_array_length(args); i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(args, i));

		if (shell)
			printf("%s'%s'", i ? " " : "", a); /* QEMU's arguments hold no quote */
		else
			printf("%s\n", a);
	}
	if (shell)
		printf("\n");
	return EXIT_OK;
}

/* Before the switch: the destination's copy goes, the source runs the VM (with its claims). */
static void abandon(struct migration *m, bool source_too)
{
	_cleanup_json_ struct json_object *r1 = NULL, *r2 = NULL;
	struct json_object *res;

	phase(m, "abandoning: the VM stays here");
	if (source_too)
		must(m, &m->src, "vm_migrate_abort", m->qmp, false, &r1, &res, NULL);
	must(m, &m->dst, "vm_migrate_abort", m->to_qmp, false, &r2, &res, NULL);
}

static int flush_images(struct migration *m)
{
	struct json_object *tags;

	json_object_object_get_ex(m->begin, "tags", &tags);
	for (size_t i = 0; i < json_object_array_length(tags); i++) {
		struct json_object *o = json_object_array_get_idx(tags, i), *img, *res;
		_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
		int r;

		if (!json_object_object_get_ex(o, "image", &img) || !json_object_get_boolean(img))
			continue;
		req = tagmem_request_new("flush");
		json_object_object_add(req, "tag", json_object_get(json_object_object_get(o, "tag")));
		json_object_object_add(req, "wait", json_object_new_boolean(true));
		r = call(m, &m->src, req, &reply, &res);
		if (r < 0)
			return r;
	}
	return 0;
}

static int hand_over(struct migration *m, bool check, struct json_object **ret_reply)
{
	_cleanup_json_ struct json_object *req = tagmem_request_new("cluster_hand_over");
	struct json_object *tags, *arr = json_object_new_array(), *uid, *res;

	json_object_object_get_ex(m->begin, "tags", &tags);
	for (size_t i = 0; i < json_object_array_length(tags); i++)
		json_object_array_add(arr, json_object_get(json_object_object_get(
			json_object_array_get_idx(tags, i), "tag")));
	json_object_object_add(req, "to", json_object_new_string(m->to));
	json_object_object_add(req, "tags", arr);
	json_object_object_get_ex(m->begin, "uid", &uid);
	json_object_object_add(req, "uid", json_object_get(uid));
	json_object_object_add(req, "name", json_object_new_string(m->vm));
	json_object_object_add(req, "check", json_object_new_boolean(check));
	return call(m, &m->clusterd, req, ret_reply, &res);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

int vm_migrate(struct cli *cli, int argc, char **argv)
{
	struct migration m = { 0 };
	_cleanup_json_ struct json_object *breply = NULL, *lreply = NULL, *sreply = NULL;
	_cleanup_json_ struct json_object *creply = NULL, *freply = NULL, *qreply = NULL;
	_cleanup_json_ struct json_object *check = NULL, *out = NULL;
	struct json_object *res, *sent = NULL;
	char sockbuf[PATH_MAX];
	uint64_t downtime = 0, bytes = 0, pause_ms, flush_ms;
	bool shell = false;
	int r = parse(cli, &m, false, argc, argv, sockbuf, sizeof(sockbuf), &shell);

	if (r >= 0)
		return r;
	cli_long_operation(cli);
	m.t0 = now_ms();
	if (!cli->json)
		fprintf(stderr, "migrating VM %s to %s over %s\n", m.vm, m.to, m.uri);
	/* nothing stops before every check passed */
	r = begin(&m, &breply);
	if (r == 0) {
		phase(&m, "checked: every backing is a tag the other host can map");
		r = hand_over(&m, true, &check);
	}
	if (r == 0) {
		phase(&m, "checked: the destination has every tag, and the claims can move");
		_cleanup_json_ struct json_object *req = vm_request(&m, "vm_migrate_listen", m.to_qmp,
								    true);
		r = call(&m, &m.dst, req, &lreply, &res);
	}
	if (r < 0) {
		fail_said(&m);
		return -r;
	}
	phase(&m, "the destination listens");
	if (flush_images(&m) < 0) { /* most of the images' dirty pages while the VM runs */
		abandon(&m, false);
		fail_said(&m);
		return EXIT_FAIL;
	}
	hold(&m, "send");
	{
		_cleanup_json_ struct json_object *req = vm_request(&m, "vm_migrate_send", m.qmp, true);
		r = call(&m, &m.src, req, &sreply, &sent);
		if (r == -EXIT_UNREACHABLE) /* brokerd went away mid-send: ask again, it resumes */
			r = must(&m, &m.src, "vm_migrate_send", m.qmp, true, &sreply, &sent, NULL);
	}
	if (r < 0) {
		abandon(&m, false);
		fail_said(&m);
		return -r;
	}
	m.paused_at = now_ms();
	phase(&m, "sent: the VM stopped here");
	/* the fake-DAX rule: durable before another host reads the images */
	if (flush_images(&m) < 0) {
		abandon(&m, true);
		fail_said(&m);
		return EXIT_FAIL;
	}
	flush_ms = now_ms() - m.paused_at;
	hold(&m, "switch");
	r = hand_over(&m, false, &creply);
	if (r < 0) {
		abandon(&m, true);
		fail_said(&m);
		return -r;
	}
	phase(&m, "switched: the claims are the destination's");
	/* from here on only forward: the destination owns the tags */
	hold(&m, "finish");
	r = must(&m, &m.dst, "vm_migrate_finish", m.to_qmp, false, &freply, &res, reprepare);
	if (r < 0) {
		fail_said(&m);
		fprintf(stderr, "tagmem: the claims are %s's: run the migration again to finish it "
			"(it resumes where it stopped)\n", m.to);
		return -r;
	}
	pause_ms = now_ms() - m.paused_at;
	phase(&m, "the VM runs on the destination");
	hold(&m, "confirm");
	r = must(&m, &m.src, "vm_migrate_confirm", m.qmp, false, &qreply, &res, NULL);
	if (r < 0) {
		fail_said(&m);
		return -r;
	}
	phase(&m, "confirmed: the copy here quit, its claims here released");
	tagmem_json_get_u64(sent, "downtime_ms", &downtime);
	tagmem_json_get_u64(sent, "transferred_bytes", &bytes);
	out = json_object_new_object();
	json_object_object_add(out, "vm", json_object_new_string(m.vm));
	json_object_object_add(out, "to", json_object_new_string(m.to));
	add_u64(out, "total_ms", now_ms() - m.t0);
	add_u64(out, "qemu_downtime_ms", downtime);
	add_u64(out, "pause_ms", pause_ms);
	add_u64(out, "flush_ms", flush_ms);
	add_u64(out, "transferred_bytes", bytes);
	json_object_object_add(out, "tags", json_object_get(json_object_object_get(m.begin,
										      "tags")));
	if (cli->json) {
		cli_print_json(out);
		return EXIT_OK;
	}
	printf("migrated VM %s to %s in %llu ms: paused %llu ms (QEMU's downtime %llu ms), "
	       "%llu bytes sent\n", m.vm, m.to, (unsigned long long)(now_ms() - m.t0),
	       (unsigned long long)pause_ms, (unsigned long long)downtime,
	       (unsigned long long)bytes);
	return EXIT_OK;
}
