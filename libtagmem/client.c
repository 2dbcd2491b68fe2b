/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client side of the brokerd socket. Synchronous by design (the CLI and simple orchestrator
 * glue want "call and get the answer"): tagmem_client_call() reads until the reply with its
 * id arrives and parks events that come in between, in order, for tagmem_client_next_event().
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "lines.h"
#include "private.h"

/* Replies can be large (a list of 10,000 tags); the daemon is trusted more than a client,
 * but not without bound. */
#define CLIENT_MAX_REPLY (256u << 20)

struct event_node {
	struct json_object *msg;
	struct event_node *next;
};

struct tagmem_client {
	struct tagmem_ctx *ctx;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t next_id;
	struct lines in; /* received bytes not yet split into lines */
	struct event_node *events_head, *events_tail;
	char err_code[32], err_message[512]; /* brokerd's last refusal (tagmem_client_get_error) */
	int timeout_ms;                      /* of the typed calls; -1: none */
};

TAGMEM_EXPORT void tagmem_client_set_timeout(struct tagmem_client *c, int timeout_ms)
{
	if (c)
		c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

int client_timeout(const struct tagmem_client *c)
{
	return c->timeout_ms;
}

TAGMEM_EXPORT const char *tagmem_client_get_error(struct tagmem_client *c,
						  const char **ret_message)
{
	if (ret_message)
		*ret_message = c && c->err_code[0] ? c->err_message : NULL;
	return c && c->err_code[0] ? c->err_code : NULL;
}

TAGMEM_EXPORT int tagmem_client_connect(struct tagmem_ctx *ctx, const char *path,
					struct tagmem_client **ret_client)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct tagmem_client *c;

	if (!ret_client)
		return -EINVAL;
	if (!path)
		path = secure_getenv("TAGMEM_SOCKET");
	if (!path || !*path)
		path = TAGMEM_DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		tm_dbg(ctx, "connect %s: %m\n", path);
		return -errno;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ctx = tagmem_ref(ctx);
	c->fd = TAKE_FD(fd);
	c->next_id = 1;
	c->timeout_ms = -1;
	lines_init(&c->in, CLIENT_MAX_REPLY);
	strcpy(c->path, path);
	*ret_client = c;
	return 0;
}

TAGMEM_EXPORT struct tagmem_client *tagmem_client_unref(struct tagmem_client *c)
{
	if (!c)
		return NULL;
	while (c->events_head) {
		struct event_node *n = c->events_head;
		c->events_head = n->next;
		json_object_put(n->msg);
		free(n);
	}
	if (c->fd >= 0)
		close(c->fd);
	lines_release(&c->in);
	tagmem_unref(c->ctx);
	free(c);
	return NULL;
}

TAGMEM_EXPORT int tagmem_client_get_fd(struct tagmem_client *c)
{
	return c ? c->fd : -EINVAL;
}

TAGMEM_EXPORT const char *tagmem_client_get_path(struct tagmem_client *c)
{
	return c ? c->path : NULL;
}

/* Pop one complete line from the buffer as a parsed message: 1 got one, 0 none yet. */
static int take_message(struct tagmem_client *c, struct json_object **ret_msg)
{
	char *line;
	size_t line_len;
	int r = lines_next(&c->in, &line, &line_len);

	if (r <= 0)
		return r; /* none yet, or -EMSGSIZE: a reply over the limit */
	r = tagmem_msg_parse(line, line_len, CLIENT_MAX_REPLY, ret_msg);
	if (r < 0) {
		tm_err(c->ctx, "malformed message from brokerd: %s\n", strerror(-r));
		return -EPROTO;
	}
	return 1;
}

/* Wait until more bytes arrive; -ETIMEDOUT, -ECONNRESET at EOF. */
static int fill(struct tagmem_client *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = lines_read(&c->in, c->fd);
	if (n < 0)
		return n == -EINTR || n == -EAGAIN ? 0 : (int)n;
	if (n == 0)
		return -ECONNRESET;
	return 0;
}

static int queue_event(struct tagmem_client *c, struct json_object *msg)
{
	struct event_node *n = calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->msg = msg;
	if (c->events_tail)
		c->events_tail->next = n;
	else
		c->events_head = n;
	c->events_tail = n;
	return 0;
}

static int deadline_left(uint64_t deadline, int timeout_ms)
{
	uint64_t now;

	if (timeout_ms < 0)
		return -1;
	now = now_usec();
	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

TAGMEM_EXPORT int tagmem_client_call(struct tagmem_client *c, struct json_object *request,
				     int timeout_ms, struct json_object **ret_reply)
{
	uint64_t id, deadline;
	_cleanup_free_ char *line = NULL;
	size_t len;
	int r;

	if (!c || !request || !ret_reply)
		return -EINVAL;
	id = c->next_id++;
	json_object_object_add(request, "id", json_object_new_uint64(id));
	line = tagmem_msg_format(request, &len);
	if (!line)
		return -ENOMEM;
	r = write_all(c->fd, line, len);
	if (r == -EPIPE || r == -ECONNRESET) {
		/* brokerd may have refused the connection and closed it before the request went
		 * out: what it said is still there to read */
		struct json_object *msg = NULL;
		if (fill(c, 0) >= 0 && take_message(c, &msg) > 0 &&
		    json_object_object_get_ex(msg, "error", NULL)) {
			*ret_reply = msg;
			return 0;
		}
		json_object_put(msg);
		return -ECONNRESET;
	}
	if (r < 0)
		return r;

	deadline = now_usec() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000u;
	for (;;) {
		struct json_object *msg = NULL, *vid;

		r = take_message(c, &msg);
		if (r < 0)
			return r;
		if (r == 0) {
			int left = deadline_left(deadline, timeout_ms);
			if (left == 0)
				return -ETIMEDOUT;
			r = fill(c, left);
			if (r < 0)
				return r;
			continue;
		}
		if (json_object_object_get_ex(msg, "event", NULL)) {
			r = queue_event(c, msg);
			if (r < 0) {
				json_object_put(msg);
				return r;
			}
			continue;
		}
		if (json_object_object_get_ex(msg, "id", &vid) &&
		    json_object_is_type(vid, json_type_int) && json_object_get_uint64(vid) == id) {
			*ret_reply = msg;
			return 0;
		}
		/* an error with id null is said to the connection (too_many_clients, timeout,
		 * line_too_long): it answers this call too */
		if (json_object_object_get_ex(msg, "id", &vid) && !vid &&
		    json_object_object_get_ex(msg, "error", NULL)) {
			*ret_reply = msg;
			return 0;
		}
		/* A reply to an earlier, timed-out call: nobody waits for it any more. */
		json_object_put(msg);
	}
}

TAGMEM_EXPORT int tagmem_client_call_result(struct tagmem_client *c,
					    struct json_object *request, int timeout_ms,
					    struct json_object **ret_reply)
{
	_cleanup_json_ struct json_object *reply = NULL;
	const char *code, *message;
	int r;

	c->err_code[0] = c->err_message[0] = 0;
	r = tagmem_client_call(c, request, timeout_ms, &reply);
	if (r < 0)
		return r;
	r = tagmem_reply_error(reply, &code, &message);
	if (r == -EREMOTEIO) {
		tm_err(c->ctx, "%s (%s)\n", message, code);
		snprintf(c->err_code, sizeof(c->err_code), "%s", code);
		snprintf(c->err_message, sizeof(c->err_message), "%s", message);
	}
	if (r < 0)
		return r;
	*ret_reply = TAKE_PTR(reply);
	return 0;
}

TAGMEM_EXPORT int tagmem_flush_range(struct tagmem_client *c, const tagmem_tag *tag,
				     uint64_t offset, uint64_t length, bool wait,
				     uint64_t *ret_flush_id)
{
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char s[TAGMEM_TAG_STRING_MAX];
	uint64_t id = 0;
	int r;

	if (!c || !tag)
		return -EINVAL;
	req = tagmem_request_new("flush");
	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(tag, s)));
	json_object_object_add(req, "offset", json_object_new_uint64(offset));
	if (length)
		json_object_object_add(req, "length", json_object_new_uint64(length));
	json_object_object_add(req, "wait", json_object_new_boolean(wait));
	r = tagmem_client_call_result(c, req, -1, &reply);
	if (r < 0)
		return r;
	tagmem_json_get_u64(tagmem_reply_result(reply), "flush_id", &id);
	if (ret_flush_id)
		*ret_flush_id = id;
	return 0;
}

TAGMEM_EXPORT int tagmem_hint_range(struct tagmem_client *c, const tagmem_tag *tag,
				    uint64_t offset, uint64_t length, bool cold)
{
	_cleanup_json_ struct json_object *req = NULL, *reply = NULL;
	char s[TAGMEM_TAG_STRING_MAX];

	if (!c || !tag || !length)
		return -EINVAL;
	req = tagmem_request_new("hint");
	if (!req)
		return -ENOMEM;
	json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(tag, s)));
	json_object_object_add(req, "offset", json_object_new_uint64(offset));
	json_object_object_add(req, "length", json_object_new_uint64(length));
	json_object_object_add(req, "state", json_object_new_string(cold ? "cold" : "hot"));
	return tagmem_client_call_result(c, req, -1, &reply);
}

TAGMEM_EXPORT int tagmem_client_next_event(struct tagmem_client *c, int timeout_ms,
					   struct json_object **ret_event)
{
	uint64_t deadline = now_usec() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000u;
	int r;

	if (!c || !ret_event)
		return -EINVAL;
	for (;;) {
		struct json_object *msg = NULL;

		if (c->events_head) {
			struct event_node *n = c->events_head;
			c->events_head = n->next;
			if (!c->events_head)
				c->events_tail = NULL;
			*ret_event = n->msg;
			free(n);
			return 0;
		}
		r = take_message(c, &msg);
		if (r < 0)
			return r;
		if (r > 0) {
			if (json_object_object_get_ex(msg, "event", NULL)) {
				*ret_event = msg;
				return 0;
			}
			json_object_put(msg); /* stale reply */
			continue;
		}
		r = fill(c, deadline_left(deadline, timeout_ms));
		if (r < 0)
			return r;
	}
}
