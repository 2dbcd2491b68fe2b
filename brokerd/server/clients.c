/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Clients: framing, replies and flow control. Requests are lines; every client has a bounded
 * input buffer (max_line) and output queue (max_output), and a client that stalls mid-line
 * is closed after request_timeout_ms. Replies that acknowledge a registry change are held
 * until the persister says that change is on disk.
 *
 * No client can keep the others waiting or make brokerd hold much memory for it:
 *   - a client gets TURN_REQUESTS requests handled, then every other client with work gets
 *     its turn (srv->backlog, run from the loop's pending hook) before it gets another;
 *     while it has lines waiting, brokerd does not read more from it (its socket fills and
 *     its own writes block, not anybody else);
 *   - a client with PAUSE_OUTPUT bytes of replies unread gets no more requests handled until
 *     it reads them, and while all clients together have max_output_total bytes queued, only
 *     clients with nothing queued are served;
 *   - an event subscriber that falls behind is dropped: at max_output queued for it, or when
 *     the total is over max_output_total and it has not read what it already has.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <json-c/json.h>

#include "internal.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "wire.h"

const struct client_info *client_info(const struct client *c)
{
	return &c->info;
}

struct client *server_find_client(struct server *srv, uint64_t serial)
{
	struct client *c = srv->serving;

	/* a reply mostly goes to the client whose request is being handled: no walk */
	if (c && c->info.serial == serial && !c->closing)
		return c;
	list_for_each(c, &srv->clients, node)
		if (c->info.serial == serial && !c->closing)
			return c;
	return NULL;
}

static size_t queued(const struct client *c)
{
	return c->out_len - c->out_off;
}

static void set_backlogged(struct server *srv, struct client *c, bool on)
{
	if (c->backlogged == on)
		return;
	c->backlogged = on;
	if (on)
		list_add_tail(&srv->backlog, &c->backlog_node);
	else
		list_del(&c->backlog_node);
}

void client_free(struct server *srv, struct client *c)
{
	if (srv->serving == c)
		srv->serving = NULL;
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
	set_backlogged(srv, c, false);
	srv->queued_total -= queued(c);
	uid_count_drop(srv, c->info.uid);
	list_del(&c->node);
	srv->nclients--;
	lines_release(&c->in);
	free(c->out);
	free(c);
}

/* Read while nothing waits to be handled; write while something is queued. One epoll_ctl
 * only when that changes, not per request. */
static void update_interest(struct server *srv, struct client *c)
{
	uint32_t ev = (c->closing || c->backlogged ? 0 : EPOLLIN) | (queued(c) ? EPOLLOUT : 0);

	if (ev == c->interest)
		return;
	c->interest = ev;
	loop_mod_fd(srv->loop, c->fd, ev);
}

/* May the next request of c be handled now? (see the top of the file) */
static bool may_run(struct server *srv, const struct client *c)
{
	size_t q = queued(c);

	return q < PAUSE_OUTPUT && (q == 0 || srv->queued_total < srv->settings->max_output_total);
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
		srv->queued_total -= (size_t)n;
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

/* Drop what is queued for c and close it once that is said. */
static void drop_queue(struct server *srv, struct client *c)
{
	srv->queued_total -= queued(c);
	c->out_len = c->out_off = 0;
	c->closing = true;
}

/* Queue bytes; a client that lets max_output pile up is dropped, not waited for. */
static int client_queue(struct server *srv, struct client *c, const char *data, size_t len)
{
	size_t used = queued(c);

	if (used + len > srv->settings->max_output) {
		log_warn("Client pid %d (uid %u) does not read its replies; dropping it",
			 c->info.pid, c->info.uid);
		drop_queue(srv, c);
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
	srv->queued_total += len;
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
	json_object_object_add(err, "error", wire_error("io_error", text));
	free(h->data);
	h->data = tagmem_msg_format(err, &h->len);
}

void server_persist_done(struct server *srv, uint64_t gen, int error)
{
	struct client *c, *tmp;

	if (gen <= srv->persist_done_gen)
		return;
	srv->persist_done_gen = gen;
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
		/* over the global budget, a subscriber that has not read what it has is dropped
		 * rather than given more: events cannot wait for it */
		if (queued(c) && srv->queued_total + len > srv->settings->max_output_total) {
			log_warn("Subscriber pid %d (uid %u) does not read its events while brokerd "
				 "holds %zu bytes for its clients; dropping it", c->info.pid,
				 c->info.uid, srv->queued_total);
			drop_queue(srv, c);
			client_flush(srv, c);
			continue;
		}
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
	struct json_object *reply = json_object_new_object();

	json_object_object_add(reply, "id", NULL);
	json_object_object_add(reply, "error", wire_error(code, msg));
	client_reply(srv, c, reply, 0);
	c->closing = true;
}

/*
 * Hand complete lines to the request callback: at most one turn's worth, and only while the
 * client reads its replies. Lines left over wait on the backlog for the next turn. Returns
 * -1 if the client was freed.
 */
static int client_process(struct server *srv, struct client *c)
{
	unsigned handled = 0;
	bool more = false;

	while (!c->closing) {
		char *line;
		size_t len;
		int r;

		if (handled == TURN_REQUESTS || !may_run(srv, c)) {
			more = lines_ready(&c->in);
			break;
		}
		r = lines_next(&c->in, &line, &len);
		if (r == -EMSGSIZE)
			reply_fatal(srv, c, "line_too_long", "request line exceeds the limit");
		if (r <= 0)
			break;
		c->processing = true;
		srv->serving = c;
		srv->cb.request(srv->cb.userdata, c, line, len);
		srv->serving = NULL;
		c->processing = false;
		handled++;
	}
	if (c->closing) {
		lines_reset(&c->in);
		more = false;
	}
	set_backlogged(srv, c, more);
	/* a partial line is timed from when it starts to wait, not while whole lines queue */
	c->partial_since = !more && lines_held(&c->in) ?
			   (c->partial_since ? c->partial_since : now_usec()) : 0;
	return client_flush(srv, c);
}

static void on_client_io(struct server *srv, struct client *c, uint32_t events)
{
	if ((events & EPOLLOUT) && client_flush(srv, c) < 0)
		return;
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	while (!c->closing && !c->backlogged) {
		size_t room;
		char *at = lines_room(&c->in, &room);
		ssize_t n;

		if (!at && errno == EMSGSIZE) {
			if (client_process(srv, c) < 0) /* says line_too_long and closes */
				return;
			continue;
		}
		if (!at) {
			client_free(srv, c);
			return;
		}
		n = recv(c->fd, at, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				client_free(srv, c);
			return;
		}
		if (n == 0) {
			/* Gone, possibly mid-request: what it sent in full was handled. */
			client_free(srv, c);
			return;
		}
		lines_fill(&c->in, (size_t)n);
		if (client_process(srv, c) < 0)
			return;
		/* A short read drained the socket; epoll is level-triggered and will say when
		 * more arrives, so skip the recv() that would only return EAGAIN. */
		if ((size_t)n < room)
			return;
	}
}

static void on_client(struct loop *l, int fd, uint32_t events, void *data)
{
	struct client *c = data;

	on_client_io(c->srv, c, events);
}

/* The loop's pending hook: one turn for every client whose lines wait and who may run.
 * True while some such client remains (the loop then does not sleep). */
static bool run_backlog(struct loop *l, void *data)
{
	struct server *srv = data;
	struct client *c;
	size_t turns = 0;
	bool runnable = false;

	list_for_each(c, &srv->backlog, backlog_node)
		turns++;
	/* one turn each, from the head; a client served (or still paused) goes to the tail.
	 * No pointer is kept across a turn: a request may drop other clients. */
	while (turns--) {
		c = list_first(&srv->backlog, struct client, backlog_node);
		if (!c)
			break;
		set_backlogged(srv, c, false);
		if (!may_run(srv, c)) {
			set_backlogged(srv, c, true);
			continue;
		}
		client_process(srv, c);
	}
	list_for_each(c, &srv->backlog, backlog_node)
		runnable |= may_run(srv, c);
	return runnable;
}

int client_new(struct server *srv, int fd, const struct ucred *cred)
{
	struct client *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->srv = srv;
	c->fd = fd;
	lines_init(&c->in, srv->settings->max_line);
	c->info.uid = cred->uid;
	c->info.pid = cred->pid;
	c->info.serial = ++srv->next_client_serial;
	c->interest = EPOLLIN;
	r = loop_add_fd(srv->loop, fd, EPOLLIN, on_client, c);
	if (r < 0) {
		free(c);
		return r;
	}
	list_add_head(&srv->clients, &c->node);
	srv->nclients++;
	return 0;
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
			lines_reset(&c->in);
			client_flush(srv, c);
		}
	}
	return MAX(srv->settings->request_timeout_ms / 4, 50u);
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
	srv->spare_fd = -1;
	list_init(&srv->clients);
	list_init(&srv->backlog);
	list_init(&srv->rejected);
	srv->stall_timer = loop_add_timer(loop, 100, sweep_stalled, srv);
	if (srv->stall_timer < 0) {
		free(srv);
		return -ENOMEM;
	}
	loop_set_pending(loop, run_backlog, srv);
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

size_t server_queued_bytes(const struct server *srv)
{
	return srv->queued_total;
}

void server_free(struct server *srv)
{
	if (!srv)
		return;
	server_close_all(srv);
	loop_cancel_timer(srv->loop, srv->stall_timer);
	loop_cancel_timer(srv->loop, srv->reject_timer);
	free(srv->uids);
	free(srv);
}
