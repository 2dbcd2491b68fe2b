/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The guest agent's local side (guestd.h): programs in the guest ask brokerd on the host
 * through the agent's Unix socket, in brokerd's own protocol (one JSON object per line), and
 * the agent relays over the one channel it holds. Each request gets the agent's own id on the
 * channel, so replies find their way back whatever ids clients chose; an asynchronous flush's
 * flush_done event goes to the client that asked for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guestd.h"
#include "lines.h"
#include "tagmem.h"
#include "util.h"

#define MAX_CLIENTS 64
#define MAX_PENDING 1024
#define MAX_FLUSH_OWNERS 1024
#define CLIENT_LINE 8192

/* What a guest program may ask; the rest is not the host's business. */
static const char *const relayed_ops[] = { "hello", "flush", NULL };

struct client {
	int fd;                     /* -1: free */
	uint64_t serial;
	struct lines in;
};

struct pending {
	uint64_t host_id;           /* 0: free */
	uint64_t client_serial;
	struct json_object *id;     /* the client's own id */
	bool async_flush;
};

struct relay {
	int lfd;
	struct hints *hints;
	struct client clients[MAX_CLIENTS];
	struct pending pending[MAX_PENDING];
	struct { uint64_t flush_id, client_serial; } owners[MAX_FLUSH_OWNERS];
	unsigned next_owner;
	uint64_t next_serial, next_host_id;
};

int relay_new(const char *path, struct hints *hints, struct relay **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct relay *r;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	r->next_host_id = 1;
	r->hints = hints;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	unlink(path); /* our own, left by an earlier run: /run/tagmem is root's */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 16) < 0)
		goto fail;
	r->lfd = fd;
	*ret = r;
	return 0;
fail:
	fd = -errno;
	free(r);
	return fd;
}

static void client_drop(struct relay *r, struct client *c)
{
	close(c->fd);
	c->fd = -1;
	lines_release(&c->in);
	for (unsigned i = 0; i < MAX_PENDING; i++)
		if (r->pending[i].host_id && r->pending[i].client_serial == c->serial) {
			/* its answer will come and find nobody: keep the slot until it does */
			r->pending[i].client_serial = 0;
		}
}

static struct client *client_by_serial(struct relay *r, uint64_t serial)
{
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (r->clients[i].fd >= 0 && r->clients[i].serial == serial)
			return &r->clients[i];
	return NULL;
}

/* One line to a client; a client that cannot take it now is dropped, never waited for. */
static void client_send(struct relay *r, struct client *c, struct json_object *msg)
{
	const char *s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 1);
	bool sent = false;

	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		sent = send(c->fd, line, n + 1, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)(n + 1);
	}
	if (!sent)
		client_drop(r, c);
	free(line);
}

static void client_error(struct relay *r, struct client *c, struct json_object *id,
			 const char *code, const char *message)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(e, "code", json_object_new_string(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "error", e);
	client_send(r, c, o);
	json_object_put(o);
}

/* hint — tag, offset, length, state "cold" | "hot": kept here, for when brokerd asks. */
static void client_hint(struct relay *r, struct client *c, struct json_object *msg,
			struct json_object *id)
{
	const char *state;
	uint64_t off, len;
	tagmem_tag tag;
	struct json_object *o, *res;
	int e;

	if (!r->hints || tagmem_json_get_tag(msg, "tag", &tag) < 0 ||
	    tagmem_json_get_u64(msg, "offset", &off) < 0 ||
	    tagmem_json_get_u64(msg, "length", &len) < 0 || !len ||
	    tagmem_json_get_string(msg, "state", &state) < 0 ||
	    (strcmp(state, "cold") && strcmp(state, "hot"))) {
		client_error(r, c, id, "invalid_argument", "hint takes \"tag\", \"offset\", "
			     "\"length\" (bytes > 0) and \"state\": \"cold\" (can be given back) or "
			     "\"hot\"");
		return;
	}
	e = hints_mark(r->hints, &tag, off, len, !strcmp(state, "cold"));
	if (e < 0) {
		client_error(r, c, id, e == -ENOSPC ? "no_space" : "invalid_argument",
			     e == -ENOSPC ? "too many cold ranges or tags; mark larger ranges, or "
			     "some hot again" : "the range is empty or wraps");
		return;
	}
	o = json_object_new_object();
	res = json_object_new_object();
	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(res, "cold_bytes", json_object_new_uint64(
		hints_cold_bytes(r->hints, &tag)));
	json_object_object_add(o, "result", res);
	client_send(r, c, o);
	json_object_put(o);
}

static void client_line(struct relay *r, struct client *c, const char *line, size_t len,
			int port)
{
	struct json_object *msg = NULL, *id = NULL;
	struct pending *p = NULL;
	const char *op, *s;
	bool ok = false, wait = false;
	size_t n;
	char *out;

	if (tagmem_msg_parse(line, len, CLIENT_LINE, &msg) < 0 ||
	    !json_object_is_type(msg, json_type_object)) {
		client_error(r, c, NULL, "bad_request", "a request is one JSON object on one line");
		goto done;
	}
	json_object_object_get_ex(msg, "id", &id);
	if (tagmem_json_get_string(msg, "op", &op) < 0) {
		client_error(r, c, id, "bad_request", "\"op\" must be a string");
		goto done;
	}
	if (!strcmp(op, "hint")) {
		client_hint(r, c, msg, id);
		goto done;
	}
	for (const char *const *o = relayed_ops; *o; o++)
		ok = ok || !strcmp(*o, op);
	if (!ok) {
		client_error(r, c, id, "unknown_op", "in a guest, brokerd serves hello and flush "
			     "(through tagmem-guestd), and the agent itself hint");
		goto done;
	}
	if (port < 0) {
		client_error(r, c, id, "unreachable", "the host's brokerd is not on this VM's "
			     "channel now; retry");
		goto done;
	}
	for (unsigned i = 0; i < MAX_PENDING && !p; i++)
		if (!r->pending[i].host_id)
			p = &r->pending[i];
	if (!p) {
		client_error(r, c, id, "busy", "too many requests in flight; retry");
		goto done;
	}
	p->host_id = r->next_host_id++;
	p->client_serial = c->serial;
	p->id = json_object_get(id);
	tagmem_json_get_bool(msg, "wait", &wait);
	p->async_flush = !strcmp(op, "flush") && !wait;
	json_object_object_add(msg, "id", json_object_new_uint64(p->host_id));
	s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	n = strlen(s);
	out = malloc(n + 1);
	if (out) {
		memcpy(out, s, n);
		out[n] = '\n';
	}
	if (!out || write_all(port, out, n + 1) < 0) {
		client_error(r, c, p->id, "unreachable", "cannot write to the channel");
		json_object_put(p->id);
		memset(p, 0, sizeof(*p));
	}
	free(out);
done:
	json_object_put(msg);
}

void relay_poll_fds(struct relay *r, struct pollfd *fds, size_t *n)
{
	fds[(*n)++] = (struct pollfd){ .fd = r->lfd, .events = POLLIN };
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (r->clients[i].fd >= 0)
			fds[(*n)++] = (struct pollfd){ .fd = r->clients[i].fd, .events = POLLIN };
}

void relay_ready(struct relay *r, const struct pollfd *fds, size_t n, int port)
{
	for (size_t k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		if (fds[k].fd == r->lfd) {
			int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			struct client *c = NULL;

			for (unsigned i = 0; i < MAX_CLIENTS && fd >= 0 && !c; i++)
				if (r->clients[i].fd < 0)
					c = &r->clients[i];
			if (fd >= 0 && !c) {
				close(fd); /* full: the client sees the connection close */
			} else if (c) {
				c->fd = fd;
				c->serial = ++r->next_serial;
				lines_init(&c->in, CLIENT_LINE);
			}
			continue;
		}
		for (unsigned i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &r->clients[i];
			ssize_t got;
			char *line;
			size_t l;
			int lr;

			if (c->fd != fds[k].fd)
				continue;
			got = lines_read(&c->in, c->fd);
			if (got <= 0) {
				if (got != -EAGAIN && got != -EINTR)
					client_drop(r, c); /* gone, or a line longer than any request */
				break;
			}
			while (c->fd >= 0 && (lr = lines_next(&c->in, &line, &l)) != 0) {
				if (lr < 0)
					client_drop(r, c); /* a line longer than any request */
				else
					client_line(r, c, line, l, port);
			}
			break;
		}
	}
}

bool relay_from_host(struct relay *r, struct json_object *msg)
{
	struct json_object *idv, *res, *fid;
	const char *ev;

	if (tagmem_json_get_string(msg, "event", &ev) == 0) {
		uint64_t flush_id;
		struct client *c = NULL;

		if (strcmp(ev, "flush_done") || tagmem_json_get_u64(msg, "flush_id", &flush_id) < 0)
			return false;
		for (unsigned i = 0; i < MAX_FLUSH_OWNERS; i++)
			if (r->owners[i].flush_id == flush_id) {
				c = client_by_serial(r, r->owners[i].client_serial);
				r->owners[i].flush_id = 0;
				break;
			}
		if (c)
			client_send(r, c, msg);
		return true;
	}
	if (!json_object_object_get_ex(msg, "id", &idv) || !json_object_is_type(idv, json_type_int))
		return false;
	for (unsigned i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &r->pending[i];
		struct client *c;

		if (!p->host_id || p->host_id != (uint64_t)json_object_get_int64(idv))
			continue;
		c = p->client_serial ? client_by_serial(r, p->client_serial) : NULL;
		if (c && p->async_flush && json_object_object_get_ex(msg, "result", &res) &&
		    json_object_object_get_ex(res, "flush_id", &fid)) {
			/* its flush_done comes later: remember who gets it */
			r->owners[r->next_owner].flush_id = (uint64_t)json_object_get_int64(fid);
			r->owners[r->next_owner].client_serial = c->serial;
			r->next_owner = (r->next_owner + 1) % MAX_FLUSH_OWNERS;
		}
		if (c) {
			json_object_object_add(msg, "id", json_object_get(p->id));
			client_send(r, c, msg);
		}
		json_object_put(p->id);
		memset(p, 0, sizeof(*p));
		return true;
	}
	return false;
}

void relay_host_down(struct relay *r)
{
	for (unsigned i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &r->pending[i];
		struct client *c;

		if (!p->host_id)
			continue;
		c = p->client_serial ? client_by_serial(r, p->client_serial) : NULL;
		if (c)
			client_error(r, c, p->id, "unreachable", "the host's brokerd went away before "
				     "it answered; the request may or may not have been carried out");
		json_object_put(p->id);
		memset(p, 0, sizeof(*p));
	}
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	relay_host_down(r);
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (r->clients[i].fd >= 0)
			client_drop(r, &r->clients[i]);
	close(r->lfd);
	free(r);
}
