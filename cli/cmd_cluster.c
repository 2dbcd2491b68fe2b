/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem cluster list|where|hosts|watch: the cluster tag directory on etcd (docs/cluster.md),
 * read from etcd itself (--etcd URLS or $TAGMEM_ETCD), not from any brokerd: "which hosts
 * have tag T, as which device, used by whom?"
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "etcd.h"

#define PREFIX "/tagmem/v1/"

static int open_etcd(struct cli *cli, const char *endpoints, struct etcd **ret)
{
	if (!endpoints)
		endpoints = getenv("TAGMEM_ETCD");
	_cleanup_free_ char *password = NULL;
	struct etcd_credentials tls = { .ca = getenv("TAGMEM_ETCD_CA"),
					.cert = getenv("TAGMEM_ETCD_CERT"),
					.key = getenv("TAGMEM_ETCD_KEY"),
					.user = getenv("TAGMEM_ETCD_USER") };
	int r;

	if (tls.user) {
		r = etcd_read_password(getenv("TAGMEM_ETCD_PASSWORD_FILE"), &password);
		if (r < 0) {
			cli_err(cli, "TAGMEM_ETCD_USER needs TAGMEM_ETCD_PASSWORD_FILE, a file holding "
				"the password: %s", strerror(-r));
			return EXIT_USAGE;
		}
		tls.password = password;
	}

	if (!endpoints)
		endpoints = "http://127.0.0.1:2379";
	r = etcd_open_as(endpoints, &tls, cli->timeout_ms > 0 ? cli->timeout_ms : 5000, ret);
	if (r == -EKEYREJECTED) {
		cli_err(cli, "https:// needs TAGMEM_ETCD_CA (and TAGMEM_ETCD_CERT, TAGMEM_ETCD_KEY "
			"for a client certificate) naming files that load");
		return EXIT_USAGE;
	}
	if (r < 0) {
		cli_err(cli, "--etcd '%s': give etcd's client URLs, http://HOST:PORT or https://, "
			"comma-separated", endpoints);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* etcd's refusal or absence, said; the exit status. */
static int read_failed(struct cli *cli, struct etcd *e, int r)
{
	if (r == -EREMOTEIO || r == -EACCES) {
		cli_fail(cli, "permission_denied", "etcd at %s refused to show the cluster directory: "
			 "%s", etcd_endpoint(e), etcd_last_error(e));
		return EXIT_FAIL;
	}
	cli_fail(cli, "unreachable", "cannot read the cluster directory from etcd at %s: %s",
		 etcd_endpoint(e), strerror(-r));
	return EXIT_UNREACHABLE;
}

/* The values of kvs that parse as records (and whose keys hold need, if given). */
static struct json_object *records_of(struct json_object *kvs, const char *need)
{
	struct json_object *out = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(kvs); i++) {
		struct json_object *kv = json_object_array_get_idx(kvs, i), *rec = NULL;
		const char *key = json_object_get_string(json_object_object_get(kv, "key"));
		const char *value = json_object_get_string(json_object_object_get(kv, "value"));

		if (need && !strstr(key, need))
			continue;
		if (tagmem_msg_parse(value, strlen(value), 1 << 20, &rec) < 0)
			continue; /* not ours to show: the directory is read by anyone */
		json_object_array_add(out, rec);
	}
	return out;
}

/* Every record under prefix (whose key holds need, if given). */
static int read_prefix(struct cli *cli, struct etcd *e, const char *prefix, const char *need,
		       struct json_object **ret)
{
	_cleanup_json_ struct json_object *kvs = NULL;
	int64_t rev;
	int r = etcd_get_prefix(e, prefix, &kvs, &rev);

	if (r < 0)
		return read_failed(cli, e, r);
	*ret = records_of(kvs, need);
	return EXIT_OK;
}

/* The hosts that have tag: one key per host that publishes (hostinfo/), read together. */
static int read_where(struct cli *cli, struct etcd *e, const char *tag, struct json_object **ret)
{
	_cleanup_json_ struct json_object *hosts = NULL, *kvs = NULL;
	char **keys;
	size_t n;
	int r = read_prefix(cli, e, PREFIX "hostinfo/", NULL, &hosts);

	if (r != EXIT_OK)
		return r;
	n = json_object_array_length(hosts);
	keys = calloc(n + 1, sizeof(*keys));
	for (size_t i = 0; keys && i < n; i++) {
		const char *h;
		if (tagmem_json_get_string(json_object_array_get_idx(hosts, i), "host", &h) < 0 ||
		    !name_valid(h, 64) || asprintf(&keys[i], PREFIX "hosts/%s/tags/%s", h, tag) < 0)
			keys[i] = NULL;
	}
	/* a host info that named no valid host: skipped (compact the list) */
	size_t k = 0;
	for (size_t i = 0; keys && i < n; i++)
		if (keys[i])
			keys[k++] = keys[i];
	r = keys ? etcd_get_keys(e, (const char *const *)keys, k, &kvs) : -ENOMEM;
	for (size_t i = 0; keys && i < k; i++)
		free(keys[i]);
	free(keys);
	if (r < 0)
		return read_failed(cli, e, r);
	*ret = records_of(kvs, NULL);
	return EXIT_OK;
}

static const char *str(struct json_object *o, const char *key)
{
	const char *s;

	return tagmem_json_get_string(o, key, &s) == 0 ? s : "-";
}

static void print_records(struct json_object *recs)
{
	printf("%-36s  %-12s  %-10s  %-8s  %-7s  %s\n", "TAG", "HOST",
	       "DEVICE", "STATE", "SHARED", "OWNER");
	for (size_t i = 0; i < json_object_array_length(recs); i++) {
		struct json_object *r = json_object_array_get_idx(recs, i), *owner;
		bool shared = false;
		char who[96] = "-";

		tagmem_json_get_bool(r, "shared", &shared);
		if (json_object_object_get_ex(r, "owner", &owner)) {
			uint64_t uid = 0;
			tagmem_json_get_u64(owner, "uid", &uid);
			snprintf(who, sizeof(who), "uid %llu%s%s", (unsigned long long)uid,
				 strcmp(str(owner, "name"), "-") ? " as " : "",
				 strcmp(str(owner, "name"), "-") ? str(owner, "name") : "");
		}
		printf("%-36s  %-12s  %-10s  %-8s  %-7s  %s\n", str(r, "tag"), str(r, "host"),
		       str(r, "device"), str(r, "state"), shared ? "yes" : "no", who);
	}
}

/* The one option of every cluster command: --etcd. */
static int parse(struct cli *cli, int argc, char **argv, const char *synopsis,
		 const char **endpoints)
{
	static const struct option opts[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int opt;

	*endpoints = NULL;
	while ((opt = getopt_long(argc, argv, "e:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'e': *endpoints = optarg; break;
		case 'h': return cli_usage(cli, "cluster", synopsis, false);
		default: return cli_usage(cli, "cluster", synopsis, true);
		}
	}
	return -1; /* parsed: go on */
}

enum query { Q_LIST, Q_WHERE, Q_HOSTS };

static int show(struct cli *cli, const char *endpoints, enum query q, const char *tag)
{
	_cleanup_json_ struct json_object *recs = NULL;
	struct etcd *e;
	int r = open_etcd(cli, endpoints, &e);

	if (r != EXIT_OK)
		return r;
	if (q == Q_WHERE)
		r = read_where(cli, e, tag, &recs);
	else
		r = read_prefix(cli, e, q == Q_LIST ? PREFIX "hosts/" : PREFIX "hostinfo/",
				q == Q_LIST ? "/tags/" : NULL, &recs);
	etcd_close(e);
	if (r != EXIT_OK)
		return r;
	if (cli->json)
		cli_print_json(recs);
	else if (q == Q_HOSTS)
		for (size_t i = 0; i < json_object_array_length(recs); i++)
			printf("%s\n", str(json_object_array_get_idx(recs, i), "host"));
	else
		print_records(recs);
	return q == Q_WHERE && !json_object_array_length(recs) ? EXIT_FAIL : EXIT_OK;
}

/* A command without arguments but --etcd. */
static int show_all(struct cli *cli, int argc, char **argv, const char *synopsis, enum query q)
{
	const char *endpoints;
	int r = parse(cli, argc, argv, synopsis, &endpoints);

	if (r >= 0)
		return r;
	if (optind != argc)
		return cli_usage(cli, "cluster", synopsis, true);
	return show(cli, endpoints, q, NULL);
}

static int cluster_list(struct cli *cli, int argc, char **argv)
{
	return show_all(cli, argc, argv, "list [--etcd URLS]", Q_LIST);
}

static int cluster_where(struct cli *cli, int argc, char **argv)
{
	static const char synopsis[] = "where UUID [--etcd URLS]";
	char s[TAGMEM_TAG_STRING_MAX];
	const char *endpoints;
	tagmem_tag tag;
	int r = parse(cli, argc, argv, synopsis, &endpoints);

	if (r >= 0)
		return r;
	if (optind != argc - 1)
		return cli_usage(cli, "cluster", synopsis, true);
	if (cli_parse_tag(cli, argv[optind], &tag) < 0)
		return EXIT_USAGE;
	r = show(cli, endpoints, Q_WHERE, tagmem_tag_format(&tag, s));
	if (r == EXIT_FAIL && !cli->json)
		fprintf(stderr, "%s: no host has tag %s\n", cli->prog, s);
	return r;
}

static int cluster_hosts(struct cli *cli, int argc, char **argv)
{
	return show_all(cli, argc, argv, "hosts [--etcd URLS]", Q_HOSTS);
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* One watch event as a line: "put KEY VALUE" or "delete KEY" (--json: an object). */
static void print_event(struct cli *cli, struct json_object *ev)
{
	struct json_object *kv = json_object_object_get(ev, "kv"), *o;
	_cleanup_free_ char *key = NULL, *value = NULL;
	size_t kl, vl;
	const char *type = str(ev, "type");
	bool del = !strcmp(type, "DELETE");

	if (!kv || etcd_unb64(json_object_object_get(kv, "key"), &key, &kl) < 0)
		return;
	if (!del && etcd_unb64(json_object_object_get(kv, "value"), &value, &vl) < 0)
		return;
	if (!cli->json) {
		printf("%s %s%s%s\n", del ? "delete" : "put", key, del ? "" : " ", del ? "" : value);
		fflush(stdout);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(del ? "delete" : "put"));
	json_object_object_add(o, "key", json_object_new_string(key));
	if (!del) {
		struct json_object *rec = NULL;
		if (tagmem_msg_parse(value, vl, 1 << 20, &rec) == 0)
			json_object_object_add(o, "value", rec);
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
					       JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stdout);
	json_object_put(o);
}

static int cluster_watch(struct cli *cli, int argc, char **argv)
{
	const char *endpoints;
	struct etcd_watch *w = NULL;
	struct etcd *e;
	int r = parse(cli, argc, argv, "watch [--etcd URLS]", &endpoints);

	if (r >= 0)
		return r;
	if (optind != argc)
		return cli_usage(cli, "cluster", "watch [--etcd URLS]", true);
	r = open_etcd(cli, endpoints, &e);
	if (r != EXIT_OK)
		return r;
	r = etcd_watch_open(e, PREFIX, 0, &w);
	if (r < 0) {
		cli_fail(cli, "unreachable", "cannot watch the cluster directory at %s: %s",
			 etcd_endpoint(e), strerror(-r));
		etcd_close(e);
		return EXIT_UNREACHABLE;
	}
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	while (!interrupted) {
		struct json_object *res = NULL, *evs;

		r = etcd_watch_next(w, 500, &res);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		evs = json_object_object_get(res, "events");
		for (size_t i = 0; evs && i < json_object_array_length(evs); i++)
			print_event(cli, json_object_array_get_idx(evs, i));
		json_object_put(res);
	}
	etcd_watch_close(w);
	etcd_close(e);
	if (!interrupted) {
		cli_fail(cli, "unreachable", "the watch of the cluster directory ended: %s",
			 strerror(-r));
		return EXIT_UNREACHABLE;
	}
	return EXIT_OK;
}

int cluster_exclusive(struct cli *cli, const char *op, const char *tagstr, const char *name,
		      int64_t *ret_token)
{
	_cleanup_json_ struct json_object *req = tagmem_request_new(op), *reply = NULL;
	struct cli sub = *cli;
	struct json_object *result;
	int r;

	sub.socket = getenv("TAGMEM_CLUSTER_SOCKET");
	if (!sub.socket)
		sub.socket = "/run/tagmem/clusterd.sock";
	sub.peer = "tagmem-clusterd";
	sub.peer_hint = "a cluster-wide claim needs this host's tagmem-clusterd; is it running? "
			"TAGMEM_CLUSTER_SOCKET names its socket";
	json_object_object_add(req, "tag", json_object_new_string(tagstr));
	if (name)
		json_object_object_add(req, "name", json_object_new_string(name));
	r = cli_call(&sub, req, &reply, &result);
	cli->error_said = sub.error_said;
	if (r < 0)
		return r;
	if (ret_token)
		tagmem_json_get_u64(result, "token", (uint64_t *)ret_token);
	return 0;
}

int cmd_cluster(struct cli *cli, int argc, char **argv)
{
	static const struct cli_command subs[] = {
		{ "list", cluster_list, NULL },
		{ "where", cluster_where, NULL },
		{ "hosts", cluster_hosts, NULL },
		{ "watch", cluster_watch, NULL },
	};

	return cli_dispatch(cli, "cluster", "list | where UUID | hosts | watch  [--etcd URLS]", subs,
			    ARRAY_SIZE(subs), argc, argv);
}
