/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Unix-socket server: connections, framing and flow control. Requests are lines; every
 * client has a bounded input buffer (max_line) and a bounded output queue (max_output), and
 * a client that stalls mid-line is closed after request_timeout_ms. Replies that acknowledge
 * a registry change are held until the persister says that change is on disk.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "list.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "util.h"

struct held_reply {
	uint64_t gen;
	char *data;
	size_t len;
	struct held_reply *next;
};

struct client {
	struct server *srv;
	int fd;
	struct client_info info;
	char *in;                 /* bytes received, not yet a full line */
	size_t in_len, in_cap;
	uint64_t partial_since;   /* when in[] became non-empty */
	char *out;                /* bytes queued for the client */
	size_t out_len, out_off, out_cap;
	bool want_write;
	bool closing;             /* flush out[] then close */
	bool processing;          /* in client_process(): replies are flushed after it */
	struct held_reply *held_head, *held_tail; /* in request order */
	struct list_node node;    /* in the server's client list */
};

struct server {
	const struct broker_settings *settings;
	struct loop *loop;
	struct server_callbacks cb;
	int listen_fd;
	bool listen_fd_inherited;
	struct list_head clients;
	unsigned nclients, nsubscribers;
	uint64_t next_client_serial;
	uint64_t persist_done_gen;   /* newest registry generation known durable */
};

const struct client_info *client_info(const struct client *c)
{
	return &c->info;
}

struct client *server_find_client(struct server *srv, uint64_t serial)
{
	struct client *c;

	list_for_each(c, &srv->clients, node)
		if (c->info.serial == serial && !c->closing)
			return c;
	return NULL;
}

static void client_free(struct server *srv, struct client *c)
{
	loop_del_fd(srv->loop, c->fd);
	close(c->fd);
	if (c->info.subscribed)
		srv->nsubscribers--;
	while (c->held_head) {
		struct held_reply *h = c->held_head;
		c->held_head = h->next;
		free(h->data);
		free(h);
	}
	list_del(&c->node);
	srv->nclients--;
	free(c->in);
	free(c->out);
	free(c);
}

static void update_interest(struct server *srv, struct client *c)
{
	bool want = c->out_len > c->out_off;
	uint32_t ev = (c->closing ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0);

	if (want == c->want_write && !c->closing)
		return;
	c->want_write = want;
	loop_mod_fd(srv->loop, c->fd, ev);
}

/* Write what the socket takes now; returns -1 if the client was freed. */
static int client_flush(struct server *srv, struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_free(srv, c); /* EPIPE, ECONNRESET: the client is gone */
			return -1;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->closing) {
			client_free(srv, c);
			return -1;
		}
	}
	update_interest(srv, c);
	return 0;
}

/* Queue bytes; a client that lets max_output pile up is dropped, not waited for. */
static int client_queue(struct server *srv, struct client *c, const char *data, size_t len)
{
	size_t used = c->out_len - c->out_off;

	if (used + len > srv->settings->max_output) {
		log_warn("Client pid %d (uid %u) does not read its replies; dropping it",
			 c->info.pid, c->info.uid);
		c->closing = true;
		c->out_len = c->out_off = 0;
		return -ENOBUFS;
	}
	if (c->out_off && c->out_len + len > c->out_cap) {
		memmove(c->out, c->out + c->out_off, used);
		c->out_len = used;
		c->out_off = 0;
	}
	if (c->out_len + len > c->out_cap) {
		size_t nc = MAX(c->out_cap * 2, c->out_len + len);
		char *p = realloc(c->out, nc);
		if (!p)
			return -ENOMEM;
		c->out = p;
		c->out_cap = nc;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

void client_reply_raw(struct server *srv, struct client *c, char *data, size_t len,
		      uint64_t wait_gen)
{
	/* Order matters: a reply never overtakes one held before it. */
	if (wait_gen > srv->persist_done_gen || c->held_head) {
		struct held_reply *h = calloc(1, sizeof(*h));
		if (!h) {
			free(data);
			return;
		}
		h->gen = MAX(wait_gen, c->held_tail ? c->held_tail->gen : 0);
		h->data = data;
		h->len = len;
		if (c->held_tail)
			c->held_tail->next = h;
		else
			c->held_head = h;
		c->held_tail = h;
		return;
	}
	client_queue(srv, c, data, len);
	free(data);
	/* A reply made outside request processing (a hot-plug finishing on a worker) must ask
	 * for write-readiness; inside it, client_process() flushes right after, for free. */
	if (!c->processing)
		update_interest(srv, c);
}

void client_reply(struct server *srv, struct client *c, struct json_object *reply,
		  uint64_t wait_gen)
{
	size_t len;
	char *line = tagmem_msg_format(reply, &len);

	json_object_put(reply);
	if (line)
		client_reply_raw(srv, c, line, len, wait_gen);
}

/* An error reply in place of a held acknowledgement: the change may not be durable. */
static void replace_with_io_error(struct held_reply *h, int error)
{
	_cleanup_json_ struct json_object *msg = NULL, *err = NULL;
	struct json_object *id = NULL;
	char text[256];

	if (tagmem_msg_parse(h->data, h->len - 1, h->len, &msg) < 0)
		return;
	if (!json_object_object_get_ex(msg, "result", NULL))
		return; /* already an error reply */
	json_object_object_get_ex(msg, "id", &id);
	err = json_object_new_object();
	json_object_object_add(err, "id", json_object_get(id));
	snprintf(text, sizeof(text),
		 "the registry could not be written (%s); the change is not durable, check the "
		 "state directory and retry", strerror(-error));
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "code", json_object_new_string("io_error"));
	json_object_object_add(e, "message", json_object_new_string(text));
	json_object_object_add(err, "error", e);
	free(h->data);
	h->data = tagmem_msg_format(err, &h->len);
}

void server_persist_done(struct server *srv, uint64_t gen, int error)
{
	if (gen <= srv->persist_done_gen)
		return;
	srv->persist_done_gen = gen;
	struct client *c, *tmp;

	list_for_each_safe(c, tmp, &srv->clients, node) {
		while (c->held_head && c->held_head->gen <= gen) {
			struct held_reply *h = c->held_head;
			c->held_head = h->next;
			if (!c->held_head)
				c->held_tail = NULL;
			if (error < 0)
				replace_with_io_error(h, error);
			if (h->data)
				client_queue(srv, c, h->data, h->len);
			free(h->data);
			free(h);
		}
		client_flush(srv, c);
	}
}

void server_broadcast(struct server *srv, const char *line, size_t len)
{
	struct client *c, *tmp;

	list_for_each_safe(c, tmp, &srv->clients, node) {
		if (!c->info.subscribed || c->closing)
			continue;
		if (client_queue(srv, c, line, len) == 0 || c->closing)
			client_flush(srv, c);
	}
}

void client_set_subscribed(struct server *srv, struct client *c, bool on)
{
	if (c->info.subscribed == on)
		return;
	c->info.subscribed = on;
	if (on)
		srv->nsubscribers++;
	else
		srv->nsubscribers--;
}

static void reply_fatal(struct server *srv, struct client *c, const char *code, const char *msg)
{
	struct json_object *reply = json_object_new_object(), *err = json_object_new_object();

	json_object_object_add(reply, "id", NULL);
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	json_object_object_add(reply, "error", err);
	client_reply(srv, c, reply, 0);
	c->closing = true;
}

/* Split input into lines and hand each to ops; returns -1 if the client was freed. */
static int client_process(struct server *srv, struct client *c)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t len;

		if (!nl)
			break;
		len = (size_t)(nl - (c->in + start));
		if (len > srv->settings->max_line) {
			reply_fatal(srv, c, "line_too_long", "request line exceeds the limit");
			break;
		}
		c->processing = true;
		srv->cb.request(srv->cb.userdata, c, c->in + start, len);
		c->processing = false;
		start += len + 1;
		if (c->closing)
			break;
	}
	if (start) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (!c->closing && c->in_len > srv->settings->max_line)
		reply_fatal(srv, c, "line_too_long", "request line exceeds the limit");
	if (c->closing)
		c->in_len = 0;
	c->partial_since = c->in_len ? (c->partial_since ? c->partial_since : now_usec()) : 0;
	return client_flush(srv, c);
}

static void on_client_io(struct server *srv, struct client *c, uint32_t events)
{
	if (events & EPOLLOUT) {
		if (client_flush(srv, c) < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n;

			if (c->closing)
				return;
			if (c->in_cap - c->in_len < 4096) {
				/* never more than one line over the limit, plus a read's worth */
				size_t nc = MIN(MAX(c->in_cap * 2, (size_t)8192),
						srv->settings->max_line + 65536);
				char *p;
				if (nc <= c->in_cap) {
					if (client_process(srv, c) < 0)
						return;
					if (c->in_cap - c->in_len == 0)
						return;
				} else {
					p = realloc(c->in, nc);
					if (!p) {
						client_free(srv, c);
						return;
					}
					c->in = p;
					c->in_cap = nc;
				}
			}
			size_t room = c->in_cap - c->in_len;
			n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				client_free(srv, c);
				return;
			}
			if (n == 0) {
				/* Gone, possibly mid-request: what it sent in full was handled. */
				client_free(srv, c);
				return;
			}
			c->in_len += (size_t)n;
			if (client_process(srv, c) < 0)
				return;
			/* A short read drained the socket; epoll is level-triggered and will say when
			 * more arrives, so skip the recv() that would only return EAGAIN. */
			if ((size_t)n < room)
				break;
		}
	}
}

static void on_client(struct loop *l, int fd, uint32_t events, void *data)
{
	struct client *c = data;

	on_client_io(c->srv, c, events);
}

static void on_accept(struct loop *l, int lfd, uint32_t events, void *data)
{
	struct server *srv = data;

	for (;;) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		struct client *c;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				log_warn("Out of file descriptors accepting a client, ignoring");
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
			close(fd);
			continue;
		}
		if (srv->nclients >= srv->settings->max_clients) {
			static const char busy[] =
				"{\"id\":null,\"error\":{\"code\":\"too_many_clients\",\"message\":"
				"\"brokerd serves its maximum number of clients; retry later\"}}\n";
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* best effort: the close says it too */
			}
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		c->info.uid = cred.uid;
		c->info.pid = cred.pid;
		c->info.serial = ++srv->next_client_serial;
		if (loop_add_fd(srv->loop, fd, EPOLLIN, on_client, c) < 0) {
			close(fd);
			free(c);
			continue;
		}
		list_add_head(&srv->clients, &c->node);
		srv->nclients++;
	}
}

/* Close clients that sent part of a line and then nothing for request_timeout_ms. */
static int64_t sweep_stalled(struct loop *l, void *data)
{
	struct server *srv = data;
	uint64_t now = now_usec(), limit = (uint64_t)srv->settings->request_timeout_ms * 1000u;

	struct client *c, *tmp;

	list_for_each_safe(c, tmp, &srv->clients, node) {
		if (c->partial_since && now - c->partial_since > limit) {
			log_info("Client pid %d stalled mid-request; closing it", c->info.pid);
			reply_fatal(srv, c, "timeout", "incomplete request line timed out");
			c->in_len = 0;
			client_flush(srv, c);
		}
	}
	return MAX(srv->settings->request_timeout_ms / 4, 50u);
}

/* systemd socket activation: LISTEN_FDS=1 for our pid means fd 3 is our socket. */
static int inherited_socket(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int fd = 3;

	if (!pid || !fds || (pid_t)strtol(pid, NULL, 10) != getpid() || strtol(fds, NULL, 10) < 1)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int bind_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *dir = NULL;
	char *slash;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket from a crashed daemon is replaced; a live one is refused. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return -EADDRINUSE;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	/* Anyone may connect; what they may do is decided per request from SO_PEERCRED. */
	chmod(path, 0666);
	if (listen(fd, 1024) < 0)
		return -errno;
	return TAKE_FD(fd);
}

int server_listen(struct server *srv)
{
	int fd = inherited_socket();

	if (fd >= 0) {
		srv->listen_fd_inherited = true;
		log_info("Using the socket passed by the service manager");
	} else {
		fd = bind_socket(srv->settings->socket_path);
		if (fd < 0) {
			log_err("Failed to listen on %s: %s%s", srv->settings->socket_path,
				strerror(-fd), fd == -EADDRINUSE ? " (another brokerd is running)" : "");
			return fd;
		}
	}
	srv->listen_fd = fd;
	if (loop_add_timer(srv->loop, 100, sweep_stalled, srv) < 0)
		return -ENOSPC;
	return loop_add_fd(srv->loop, fd, EPOLLIN, on_accept, srv);
}

int server_new(struct loop *loop, const struct broker_settings *settings,
	       const struct server_callbacks *cb, struct server **ret)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return -ENOMEM;
	srv->settings = settings;
	srv->loop = loop;
	srv->cb = *cb;
	srv->listen_fd = -1;
	list_init(&srv->clients);
	*ret = srv;
	return 0;
}

unsigned server_clients(const struct server *srv)
{
	return srv->nclients;
}

unsigned server_subscribers(const struct server *srv)
{
	return srv->nsubscribers;
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	server_close_all(srv);
	free(srv);
}

void server_close_all(struct server *srv)
{
	struct client *c, *tmp;

	list_for_each_safe(c, tmp, &srv->clients, node)
		client_free(srv, c);
	if (srv->listen_fd >= 0) {
		loop_del_fd(srv->loop, srv->listen_fd);
		close(srv->listen_fd);
		if (!srv->listen_fd_inherited)
			unlink(srv->settings->socket_path);
		srv->listen_fd = -1;
	}
}
