/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-clusterd: publishes what this host's brokerd has to the cluster tag directory on etcd
 * (docs/cluster.md), and keeps it current. It is brokerd's client like any other (subscribed
 * to its events, asking it for its list), so brokerd never waits on etcd; while etcd is away
 * the directory simply falls behind, and is caught up as soon as etcd answers again.
 */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cluster.h"
#include "etcd.h"
#include "log.h"
#include "tagmem.h"
#include "util.h"

#define RETRY_MS 200       /* etcd or brokerd away: try again this soon */
#define COALESCE_MS 5      /* events that come together are published together */
#define CLAIM_MARGIN_MS 500 /* a claim is given up this long before its lease could end */
#define ETCD_TIMEOUT_MS 2000

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

struct agent {
	struct tagmem_ctx *ctx;
	struct tagmem_client *brokerd;
	const char *socket;      /* NULL: $TAGMEM_SOCKET or the default */
	struct directory *dir;
	struct etcd *etcd;
	const char *host;
	struct claims *claims;
	struct local *local;     /* clusterd's own socket: exclusive claims */
	int64_t ttl;
	bool dirty;              /* brokerd's state changed since the last publish */
	bool etcd_down, brokerd_down;
	uint64_t next_keepalive, next_try;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tagmem-clusterd --etcd URLS --host-id ID [--socket PATH] [--ttl SECONDS]\n"
		"Publishes this host's tags to the cluster tag directory on etcd.\n\n"
		"  -e, --etcd URLS       etcd's client URLs, comma-separated (http://127.0.0.1:2379,\n"
		"                        or https:// with --etcd-ca)\n"
		"      --etcd-ca FILE    the CA that signed etcd's certificate (https://)\n"
		"      --etcd-cert FILE  this host's client certificate (its CN: the etcd user)\n"
		"      --etcd-key FILE   and its key\n"
		"      --etcd-user NAME  the etcd user whose role lets this host write its part\n"
		"      --etcd-password-file FILE  that user's password (mode 0600)\n"
		"  -H, --host-id ID      this host's name in the directory\n"
		"  -s, --socket PATH     brokerd's socket [$TAGMEM_SOCKET or %s]\n"
		"  -l, --listen PATH     its own socket, for exclusive claims\n"
		"                        [/run/tagmem/clusterd.sock]\n"
		"      --ttl SECONDS     the host's lease: its entries vanish this long after it\n"
		"                        stops renewing it [10]\n"
		"  -v, --verbose         log debug messages\n"
		"  -h, --help            show this help\n"
		"      --version         print the version\n\n"
		"See tagmem-clusterd(8) and docs/cluster.md.\n", TAGMEM_DEFAULT_SOCKET);
}

/* (Re)connect to brokerd and subscribe; everything is published again after. */
static int brokerd_connect(struct agent *a)
{
	_cleanup_json_ struct json_object *req = tagmem_request_new("subscribe"), *rep = NULL;
	int r;

	tagmem_client_unref(a->brokerd);
	a->brokerd = NULL;
	r = tagmem_client_connect(a->ctx, a->socket, &a->brokerd);
	if (r == 0)
		r = tagmem_client_call_result(a->brokerd, req, 5000, &rep);
	if (r < 0) {
		if (!a->brokerd_down)
			log_warn("brokerd is unreachable (%s); trying again", strerror(-r));
		a->brokerd_down = true;
		tagmem_client_unref(a->brokerd);
		a->brokerd = NULL;
		return r;
	}
	if (a->brokerd_down)
		log_info("Connected to brokerd again");
	a->brokerd_down = false;
	a->dirty = true;
	return 0;
}

/* Read what brokerd sent: any event means the list may have changed. */
static void drain_events(struct agent *a)
{
	struct json_object *ev = NULL;
	int r;

	while ((r = tagmem_client_next_event(a->brokerd, 0, &ev)) == 0) {
		json_object_put(ev);
		a->dirty = true;
	}
	if (r != -ETIMEDOUT) {
		log_warn("Lost brokerd (%s); reconnecting", strerror(-r));
		tagmem_client_unref(a->brokerd);
		a->brokerd = NULL;
	}
}

/* brokerd's list now, and publish it. */
static int publish(struct agent *a)
{
	_cleanup_json_ struct json_object *req = tagmem_request_new("list"), *rep = NULL;
	struct json_object *tags;
	int r = tagmem_client_call_result(a->brokerd, req, 5000, &rep);

	if (r < 0) {
		tagmem_client_unref(a->brokerd); /* reconnect: events may have been lost */
		a->brokerd = NULL;
		return 0;
	}
	tags = json_object_object_get(tagmem_reply_result(rep), "tags");
	r = directory_publish(a->dir, tags);
	if (r < 0) {
		if (a->etcd_down)
			;
		else if (r == -EREMOTEIO || r == -EACCES)
			log_err("etcd refused this host's part of the directory: %s (is this host's "
				"etcd user the one whose role may write /tagmem/v1/hosts/%s/?)",
				etcd_last_error(a->etcd), a->host);
		else
			log_warn("etcd is unreachable (%s): the directory falls behind until it "
				 "answers", strerror(-r));
		a->etcd_down = true;
		return r;
	}
	if (a->etcd_down)
		log_info("etcd answers again: the directory is current");
	a->etcd_down = false;
	a->dirty = false;
	/* Events that came in while the list call waited are parked in the client, and bytes
	 * read with its reply sit in the client's buffer: poll() on the socket says nothing of
	 * either, so an event right after the reply (a claim, say) would wait unseen for the
	 * next one. Read them now: any one means another publish. */
	drain_events(a);
	/* a put under the lease does not renew it: the next keep-alive is due a third of the TTL
	 * after the last renewal (or the grant a publish may just have made), however busy the
	 * host is with changes */
	a->next_keepalive = directory_renewed_at(a->dir) + (uint64_t)a->ttl * 1000000u / 3;
	return 0;
}

/* The claims are gone with the lease, or may be: tell their holders, before anyone else can
 * have won them (etcd ends a lease no sooner than TTL after the last renewal was sent). */
static void lose_claims(struct agent *a, const char *why)
{
	_cleanup_json_ struct json_object *lost = claims_lose_all(a->claims);

	for (size_t i = 0; i < json_object_array_length(lost); i++) {
		struct json_object *ev = json_object_get(json_object_array_get_idx(lost, i));

		log_warn("Lost the cluster-wide claim of %s: %s",
			 json_object_get_string(json_object_object_get(ev, "tag")), why);
		json_object_object_add(ev, "event", json_object_new_string("cluster_claim_lost"));
		json_object_object_add(ev, "reason", json_object_new_string(why));
		local_broadcast(a->local, ev);
		json_object_put(ev);
	}
}

/* The latest moment the lease surely lives: its last renewal's sending, plus TTL, less a
 * margin for the clocks' and the network's slack. */
static uint64_t claims_deadline(struct agent *a)
{
	uint64_t at = directory_renewed_at(a->dir);

	return at ? at + (uint64_t)a->ttl * 1000000u - CLAIM_MARGIN_MS * 1000u : 0;
}

static void keepalive(struct agent *a)
{
	int r = directory_keepalive(a->dir);

	if (r == -ENOENT) {
		a->dirty = true; /* a new lease, everything again */
		lose_claims(a, "the host's lease expired");
	}
	else if (r < 0 && !a->etcd_down) {
		log_warn("etcd is unreachable (%s)", strerror(-r));
		a->etcd_down = true;
	}
	if (r == 0 && a->etcd_down)
		a->dirty = true; /* it is back: catch up */
	a->next_keepalive = now_usec() + (uint64_t)(r == 0 ? a->ttl * 1000000 / 3 : RETRY_MS * 1000);
}

static int wait_ms(struct agent *a)
{
	uint64_t now = now_usec(), until = a->next_keepalive;

	if (claims_count(a->claims) && claims_deadline(a))
		until = MIN(until, claims_deadline(a));

	if (!a->brokerd || (a->dirty && a->next_try))
		until = MIN(until, a->next_try);
	if (a->dirty && !a->next_try)
		return COALESCE_MS;
	return until <= now ? 0 : (int)MIN((until - now + 999) / 1000, 60000u);
}

/* An etcd call must not outlast the claims' deadline: a holder learns of a loss on time even
 * when etcd does not answer at all (a partition drops packets, it does not refuse them). */
static void bound_calls(struct agent *a)
{
	uint64_t now = now_usec(), until = claims_deadline(a);
	int ms = ETCD_TIMEOUT_MS;

	if (claims_count(a->claims) && until)
		ms = until > now ? (int)MIN((until - now) / 1000 + 1, (uint64_t)ETCD_TIMEOUT_MS) : 1;
	etcd_set_timeout(a->etcd, ms);
}

static void op_claim(struct agent *a, struct local_client *c, struct json_object *id,
		     struct json_object *msg)
{
	_cleanup_json_ struct json_object *holder = NULL;
	const char *tag, *name = "";
	struct json_object *res;
	tagmem_tag t;
	int64_t token;
	int r;

	if (tagmem_json_get_tag(msg, "tag", &t) < 0) {
		local_error(c, id, "invalid_argument", "\"tag\" must be a UUID string");
		return;
	}
	tag = json_object_get_string(json_object_object_get(msg, "tag"));
	if (tagmem_json_get_string(msg, "name", &name) == -EINVAL || strlen(name) > 64) {
		local_error(c, id, "invalid_argument", "\"name\" must be a string of at most 64 bytes");
		return;
	}
	if (!directory_has(a->dir, tag)) {
		local_error(c, id, "not_found", "this host has no tag %s (in the directory)", tag);
		return;
	}
	r = claims_acquire(a->claims, tag, local_uid(c), name, &token, &holder);
	if (r == -EBUSY) {
		local_error(c, id, "busy", "tag %s is held across the cluster by host %s (uid %s%s%s)",
			    tag, holder ? json_object_get_string(json_object_object_get(holder, "host")) : "?",
			    holder ? json_object_get_string(json_object_object_get(holder, "uid")) : "?",
			    holder ? " as " : "",
			    holder ? json_object_get_string(json_object_object_get(holder, "name")) : "");
		return;
	}
	if (r < 0) {
		local_error(c, id, "unreachable", "etcd did not answer: %s", strerror(-r));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(tag));
	json_object_object_add(res, "token", json_object_new_int64(token));
	local_reply(c, id, res);
}

static void op_release(struct agent *a, struct local_client *c, struct json_object *id,
		       struct json_object *msg)
{
	const char *tag;
	int r;

	if (tagmem_json_get_string(msg, "tag", &tag) < 0) {
		local_error(c, id, "invalid_argument", "\"tag\" must be a UUID string");
		return;
	}
	r = claims_release(a->claims, tag, local_uid(c));
	if (r == -ENOENT || r == -EPERM)
		local_error(c, id, r == -ENOENT ? "not_claimed" : "permission_denied",
			    r == -ENOENT ? "this host holds no cluster-wide claim of %s" :
			    "the cluster-wide claim of %s is another user's", tag);
	else if (r < 0)
		local_error(c, id, "unreachable", "etcd did not answer: %s", strerror(-r));
	else
		local_reply(c, id, NULL);
}

#define HAND_OVER_MAX 32

/* A live migration's switch (claims_hand_over): root only, as brokerd's migration ops are. */
static void op_hand_over(struct agent *a, struct local_client *c, struct json_object *id,
			 struct json_object *msg)
{
	_cleanup_json_ struct json_object *holder = NULL;
	const char *tags[HAND_OVER_MAX];
	struct hand_over h = { .name = "" };
	struct json_object *arr, *res;
	int64_t token = 0;
	uint64_t uid = 0;
	bool check = false;
	int r;

	if (local_uid(c) != 0) {
		local_error(c, id, "permission_denied", "only root may move claims between hosts");
		return;
	}
	if (tagmem_json_get_string(msg, "to", &h.to) < 0 || !name_valid(h.to, 64) ||
	    tagmem_json_get_string(msg, "name", &h.name) < 0 || !name_valid(h.name, 64) ||
	    tagmem_json_get_u64(msg, "uid", &uid) < 0 || uid > UINT32_MAX - 1 ||
	    tagmem_json_get_bool(msg, "check", &check) == -EINVAL ||
	    !json_object_object_get_ex(msg, "tags", &arr) ||
	    !json_object_is_type(arr, json_type_array) || !json_object_array_length(arr) ||
	    json_object_array_length(arr) > HAND_OVER_MAX) {
		local_error(c, id, "invalid_argument", "cluster_hand_over takes \"to\" (a host id), "
			    "\"tags\" (1-%d UUIDs), \"uid\" and \"name\" (the VM), optional "
			    "\"check\"", HAND_OVER_MAX);
		return;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *t = json_object_array_get_idx(arr, i);
		tagmem_tag tag;

		if (!json_object_is_type(t, json_type_string) ||
		    tagmem_tag_parse(json_object_get_string(t), &tag) < 0) {
			local_error(c, id, "invalid_argument", "tags[%zu] is not a UUID string", i);
			return;
		}
		tags[h.n++] = json_object_get_string(t);
	}
	h.tags = tags;
	h.uid = (uid_t)uid;
	h.check_only = check;
	r = claims_hand_over(a->claims, &h, &token, &holder);
	if (r == -EHOSTUNREACH)
		local_error(c, id, "no_destination", "host %s has no tagmem-clusterd alive (no "
			    "hostinfo in etcd): start it there, or pick another host", h.to);
	else if (r == -ENXIO)
		local_error(c, id, "not_on_destination", "host %s has no tag %s (by the directory): "
			    "it cannot map that memory", h.to, json_object_get_string(holder));
	else if (r == -EBUSY)
		local_error(c, id, "busy", "tag %s is held across the cluster by host %s as %s",
			    holder ? json_object_get_string(json_object_object_get(holder, "tag")) : "?",
			    holder ? json_object_get_string(json_object_object_get(holder, "host")) : "?",
			    holder ? json_object_get_string(json_object_object_get(holder, "name")) : "?");
	else if (r == -EAGAIN)
		local_error(c, id, "conflict", "a claim or host %s's lease changed meanwhile; "
			    "nothing moved", h.to);
	else if (r < 0)
		local_error(c, id, "unreachable", "etcd did not answer: %s", strerror(-r));
	if (r < 0)
		return;
	res = json_object_new_object();
	json_object_object_add(res, "to", json_object_new_string(h.to));
	json_object_object_add(res, "moved", json_object_new_int(check ? 0 : (int)h.n));
	if (!check)
		json_object_object_add(res, "token", json_object_new_int64(token));
	local_reply(c, id, res);
}

static void on_request(void *data, struct local_client *c, const char *op, struct json_object *id,
		       struct json_object *msg)
{
	struct agent *a = data;

	if (!strcmp(op, "hello")) {
		local_reply(c, id, NULL);
	} else if (!strcmp(op, "cluster_claim")) {
		op_claim(a, c, id, msg);
	} else if (!strcmp(op, "cluster_release")) {
		op_release(a, c, id, msg);
	} else if (!strcmp(op, "cluster_hand_over")) {
		op_hand_over(a, c, id, msg);
	} else if (!strcmp(op, "cluster_claims")) {
		struct json_object *res = json_object_new_object();
		json_object_object_add(res, "claims", claims_json(a->claims));
		local_reply(c, id, res);
	} else if (!strcmp(op, "subscribe")) {
		local_subscribe(c);
		local_reply(c, id, NULL);
	} else {
		local_error(c, id, "unknown_op", "tagmem-clusterd has no op \"%.64s\"", op);
	}
}

static void run(struct agent *a)
{
	while (!stop) {
		struct pollfd fds[80];
		size_t n = 1;
		uint64_t now;

		fds[0] = (struct pollfd){ .fd = a->brokerd ? tagmem_client_get_fd(a->brokerd) : -1,
					  .events = POLLIN };
		n += local_pollfds(a->local, fds + 1, ARRAY_SIZE(fds) - 1);
		if (poll(fds, n, wait_ms(a)) < 0 && errno != EINTR)
			break;
		if (a->brokerd && fds[0].revents)
			drain_events(a);
		bound_calls(a);
		local_ready(a->local, fds + 1, n - 1, on_request, a);
		now = now_usec();
		if (claims_count(a->claims) && claims_deadline(a) && now >= claims_deadline(a))
			lose_claims(a, "etcd has not renewed the host's lease in time");
		if (!a->brokerd && now >= a->next_try && brokerd_connect(a) < 0)
			a->next_try = now + RETRY_MS * 1000u;
		bound_calls(a);
		if (a->brokerd && a->dirty && now >= a->next_try) {
			a->next_try = publish(a) < 0 ? now + RETRY_MS * 1000u : 0;
			continue;
		}
		if (now >= a->next_keepalive) {
			bound_calls(a);
			keepalive(a);
		}
	}
}

int main(int argc, char **argv)
{
	enum { OPT_TTL = 256, OPT_VERSION, OPT_CA, OPT_CERT, OPT_KEY, OPT_USER, OPT_PASSWORD };
	static const struct option opts[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "host-id", required_argument, NULL, 'H' },
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "etcd-ca", required_argument, NULL, OPT_CA },
		{ "etcd-cert", required_argument, NULL, OPT_CERT },
		{ "etcd-key", required_argument, NULL, OPT_KEY },
		{ "etcd-user", required_argument, NULL, OPT_USER },
		{ "etcd-password-file", required_argument, NULL, OPT_PASSWORD },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	struct agent a = { .ttl = 10 };
	const char *endpoints = NULL, *host = NULL, *listen_path = "/run/tagmem/clusterd.sock";
	struct etcd *etcd = NULL;
	struct etcd_credentials tls = { 0 };
	_cleanup_free_ char *password = NULL;
	const char *password_file = NULL;
	uint64_t v;
	int opt, r;

	log_set_name("tagmem-clusterd");
	while ((opt = getopt_long(argc, argv, "e:H:s:l:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen_path = optarg; break;
		case OPT_CA: tls.ca = optarg; break;
		case OPT_CERT: tls.cert = optarg; break;
		case OPT_KEY: tls.key = optarg; break;
		case OPT_USER: tls.user = optarg; break;
		case OPT_PASSWORD: password_file = optarg; break;
		case 'e': endpoints = optarg; break;
		case 'H': host = optarg; break;
		case 's': a.socket = optarg; break;
		case OPT_TTL:
			if (parse_size(optarg, &v) < 0 || v < 2 || v > 3600) {
				fprintf(stderr, "tagmem-clusterd: --ttl '%s': give 2 to 3600 seconds\n",
					optarg);
				return 2;
			}
			a.ttl = (int64_t)v;
			break;
		case 'v': log_set_max_priority(7); break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("tagmem-clusterd %s\n", TAGMEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!endpoints || !host || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!name_valid(host, 64)) {
		fprintf(stderr, "tagmem-clusterd: --host-id '%s': give 1-64 letters, digits, '-', "
			"'_' or '.'\n", host);
		return 2;
	}
	if (tls.user) {
		r = etcd_read_password(password_file, &password);
		if (r < 0) {
			fprintf(stderr, "tagmem-clusterd: --etcd-user needs --etcd-password-file, a file "
				"of mode 0600 holding the password: %s\n", strerror(-r));
			return 2;
		}
		tls.password = password;
	}
	r = etcd_open_as(endpoints, &tls, ETCD_TIMEOUT_MS, &etcd);
	if (r == -EKEYREJECTED) {
		fprintf(stderr, "tagmem-clusterd: https:// needs --etcd-ca (and, for client "
			"certificates, --etcd-cert and --etcd-key) that load: check those files\n");
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "tagmem-clusterd: --etcd '%s': give http://HOST:PORT (or "
			"https://) URLs, comma-separated\n", endpoints);
		return 2;
	}
	a.etcd = etcd;
	a.host = host;
	log_setup(NULL);
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	signal(SIGPIPE, SIG_IGN);
	r = tagmem_new(&a.ctx);
	if (r == 0)
		r = directory_new(etcd, host, a.ttl, &a.dir);
	if (r == 0)
		r = claims_new(etcd, a.dir, host, &a.claims);
	if (r == 0) {
		r = local_open(listen_path, &a.local);
		if (r < 0)
			log_err("Cannot listen on %s: %s", listen_path, strerror(-r));
	}
	if (r < 0) {
		log_err("Cannot start: %s", strerror(-r));
		return 1;
	}
	log_info("Publishing host %s to etcd at %s (lease %llds)", host, endpoints,
		 (long long)a.ttl);
	run(&a);
	directory_withdraw(a.dir); /* a clean stop: gone now, not after the lease */
	local_close(a.local);
	claims_free(a.claims);
	directory_free(a.dir);
	tagmem_client_unref(a.brokerd);
	tagmem_unref(a.ctx);
	etcd_close(etcd);
	return 0;
}
