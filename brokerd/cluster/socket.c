/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-clusterd's own socket: where a holder asks for a cluster-wide exclusive claim and
 * hears that it lost one. brokerd's framing (one JSON object a line, {"id", "op"} requests,
 * {"id", "result"|"error"} replies, {"event"} events), few clients, small messages; who asks
 * is the peer's uid from the kernel, never a field of the request.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cluster.h"
#include "lines.h"
#include "log.h"
#include "tagmem.h"
#include "util.h"
#include "wire.h"

#define LOCAL_MAX_CLIENTS 64
#define LOCAL_MAX_LINE 4096

struct local_client {
	int fd;
	uid_t uid;
	bool subscribed;
	struct lines in;
};

struct local {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct local_client clients[LOCAL_MAX_CLIENTS];
};

int local_open(const char *path, struct local **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct local *l;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	for (size_t i = 0; i < LOCAL_MAX_CLIENTS; i++)
		l->clients[i].fd = -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	unlink(path); /* one clusterd per host: a socket left by a dead one goes */
	if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0666) < 0 || listen(l->lfd, 16) < 0) {
		int r = -errno;
		if (l->lfd >= 0)
			close(l->lfd);
		free(l);
		return r;
	}
	*ret = l;
	return 0;
}

static void drop(struct local_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	lines_release(&c->in);
}

void local_close(struct local *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < LOCAL_MAX_CLIENTS; i++)
		drop(&l->clients[i]);
	close(l->lfd);
	unlink(l->path);
	free(l);
}

size_t local_pollfds(struct local *l, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (max)
		fds[n++] = (struct pollfd){ .fd = l->lfd, .events = POLLIN };
	for (size_t i = 0; i < LOCAL_MAX_CLIENTS && n < max; i++)
		if (l->clients[i].fd >= 0)
			fds[n++] = (struct pollfd){ .fd = l->clients[i].fd, .events = POLLIN };
	return n;
}

/* A line to the client; one that does not take it at once is dropped (it must read). */
static void send_msg(struct local_client *c, struct json_object *msg)
{
	size_t len;
	char *line = tagmem_msg_format(msg, &len);

	if (line && send(c->fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
		drop(c);
	free(line);
}

void local_reply(struct local_client *c, struct json_object *id, struct json_object *result)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	send_msg(c, o);
	json_object_put(o);
}

void local_error(struct local_client *c, struct json_object *id, const char *code,
		 const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "id", json_object_get(id));
	json_object_object_add(o, "error", wire_error(code, msg));
	send_msg(c, o);
	json_object_put(o);
}

uid_t local_uid(const struct local_client *c)
{
	return c->uid;
}

void local_subscribe(struct local_client *c)
{
	c->subscribed = true;
}

void local_broadcast(struct local *l, struct json_object *event)
{
	for (size_t i = 0; i < LOCAL_MAX_CLIENTS; i++)
		if (l->clients[i].fd >= 0 && l->clients[i].subscribed)
			send_msg(&l->clients[i], event);
}

static void accept_one(struct local *l)
{
	struct ucred peer;
	socklen_t len = sizeof(peer);
	int fd = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
		close(fd);
		return;
	}
	for (size_t i = 0; i < LOCAL_MAX_CLIENTS; i++)
		if (l->clients[i].fd < 0) {
			l->clients[i] = (struct local_client){ .fd = fd, .uid = peer.uid };
			lines_init(&l->clients[i].in, LOCAL_MAX_LINE);
			return;
		}
	close(fd); /* full: the client sees the connection close */
}

static void serve_client(struct local_client *c, local_request_fn fn, void *data)
{
	ssize_t n = lines_read(&c->in, c->fd);
	char *line;
	size_t len;
	int r;

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		drop(c);
		return;
	}
	while (c->fd >= 0 && (r = lines_next(&c->in, &line, &len)) != 0) {
		_cleanup_json_ struct json_object *msg = NULL;
		struct json_object *id = NULL;
		const char *op, *why = NULL;

		if (r < 0) {
			local_error(c, NULL, "line_too_long", "a request is at most %d bytes",
				    LOCAL_MAX_LINE);
			drop(c);
			return;
		}
		if (!len)
			continue;
		if (wire_parse(line, len, len + 1, &msg, &why) < 0 ||
		    !json_object_is_type(msg, json_type_object)) {
			local_error(c, NULL, "parse_error", "%s", why ? why : "one JSON object a line");
			continue;
		}
		json_object_object_get_ex(msg, "id", &id);
		if (tagmem_json_get_string(msg, "op", &op) < 0) {
			local_error(c, id, "invalid_request", "a request needs an \"op\" string");
			continue;
		}
		fn(data, c, op, id, msg);
	}
}

void local_ready(struct local *l, const struct pollfd *fds, size_t n, local_request_fn fn,
		 void *data)
{
	for (size_t k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		if (fds[k].fd == l->lfd) {
			accept_one(l);
			continue;
		}
		for (size_t i = 0; i < LOCAL_MAX_CLIENTS; i++)
			if (l->clients[i].fd == fds[k].fd) {
				serve_client(&l->clients[i], fn, data);
				break;
			}
	}
}
