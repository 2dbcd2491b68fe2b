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
		"  -e, --etcd URLS       etcd's client URLs, comma-separated (http://127.0.0.1:2379)\n"
		"  -H, --host-id ID      this host's name in the directory\n"
		"  -s, --socket PATH     brokerd's socket [$TAGMEM_SOCKET or %s]\n"
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
		if (!a->etcd_down)
			log_warn("etcd is unreachable (%s): the directory falls behind until it "
				 "answers", strerror(-r));
		a->etcd_down = true;
		return r;
	}
	if (a->etcd_down)
		log_info("etcd answers again: the directory is current");
	a->etcd_down = false;
	a->dirty = false;
	a->next_keepalive = now_usec() + (uint64_t)a->ttl * 1000000u / 3;
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

static void keepalive(struct agent *a)
{
	int r = directory_keepalive(a->dir);

	if (r == -ENOENT)
		a->dirty = true; /* a new lease, everything again */
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

	if (!a->brokerd || (a->dirty && a->next_try))
		until = MIN(until, a->next_try);
	if (a->dirty && !a->next_try)
		return COALESCE_MS;
	return until <= now ? 0 : (int)MIN((until - now + 999) / 1000, 60000u);
}

static void run(struct agent *a)
{
	while (!stop) {
		struct pollfd pfd = { .fd = a->brokerd ? tagmem_client_get_fd(a->brokerd) : -1,
				      .events = POLLIN };
		uint64_t now;

		if (poll(&pfd, 1, wait_ms(a)) < 0 && errno != EINTR)
			break;
		if (a->brokerd && pfd.revents)
			drain_events(a);
		now = now_usec();
		if (!a->brokerd && now >= a->next_try && brokerd_connect(a) < 0)
			a->next_try = now + RETRY_MS * 1000u;
		if (a->brokerd && a->dirty && now >= a->next_try) {
			a->next_try = publish(a) < 0 ? now + RETRY_MS * 1000u : 0;
			continue;
		}
		if (now >= a->next_keepalive)
			keepalive(a);
	}
}

int main(int argc, char **argv)
{
	enum { OPT_TTL = 256, OPT_VERSION };
	static const struct option opts[] = {
		{ "etcd", required_argument, NULL, 'e' },
		{ "host-id", required_argument, NULL, 'H' },
		{ "socket", required_argument, NULL, 's' },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	struct agent a = { .ttl = 10 };
	const char *endpoints = NULL, *host = NULL;
	struct etcd *etcd = NULL;
	uint64_t v;
	int opt, r;

	log_set_name("tagmem-clusterd");
	while ((opt = getopt_long(argc, argv, "e:H:s:vh", opts, NULL)) != -1) {
		switch (opt) {
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
	if (etcd_open(endpoints, 2000, &etcd) < 0) {
		fprintf(stderr, "tagmem-clusterd: --etcd '%s': give http://HOST:PORT URLs, "
			"comma-separated\n", endpoints);
		return 2;
	}
	log_setup(NULL);
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	signal(SIGPIPE, SIG_IGN);
	r = tagmem_new(&a.ctx);
	if (r == 0)
		r = directory_new(etcd, host, a.ttl, &a.dir);
	if (r < 0) {
		log_err("Cannot start: %s", strerror(-r));
		return 1;
	}
	log_info("Publishing host %s to etcd at %s (lease %llds)", host, endpoints,
		 (long long)a.ttl);
	run(&a);
	directory_withdraw(a.dir); /* a clean stop: gone now, not after the lease */
	directory_free(a.dir);
	tagmem_client_unref(a.brokerd);
	tagmem_unref(a.ctx);
	etcd_close(etcd);
	return 0;
}
