/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lines.h"
#include "qmp.h"
#include "tagmem.h"
#include "util.h"

struct qmp {
	int fd;
	unsigned next_id;
	struct lines in;
};

static int deadline_ms(uint64_t deadline)
{
	uint64_t now = now_usec();
	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

/* Next message before the deadline. */
static int read_msg(struct qmp *q, uint64_t deadline, struct json_object **ret)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		char *line;
		size_t l;
		ssize_t n;
		int r = lines_next(&q->in, &line, &l);

		if (r < 0)
			return -EPROTO; /* QMP messages are small: this is not QMP */
		if (r > 0)
			return tagmem_msg_parse(line, l, QMP_MAX_MESSAGE, ret) < 0 ? -EPROTO : 0;
		r = poll(&pfd, 1, deadline_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = lines_read(&q->in, q->fd);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n == -EMSGSIZE)
			return -EPROTO;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
	}
}

static bool is_event(struct json_object *m)
{
	return json_object_object_get_ex(m, "event", NULL);
}

/* The first bytes of a command with a descriptor alongside (SCM_RIGHTS), as getfd wants it. */
static ssize_t send_with_fd(int sock, const char *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

int qmp_execute(struct qmp *q, const char *command, struct json_object *args, int timeout_ms,
		struct json_object **ret_return, char *errclass, size_t classlen, char *errdesc,
		size_t desclen)
{
	return qmp_execute_fd(q, command, args, -1, timeout_ms, ret_return, errclass, classlen,
			      errdesc, desclen);
}

int qmp_execute_fd(struct qmp *q, const char *command, struct json_object *args, int fd,
		   int timeout_ms, struct json_object **ret_return, char *errclass,
		   size_t classlen, char *errdesc, size_t desclen)
{
	_cleanup_json_ struct json_object *cmd = json_object_new_object();
	uint64_t deadline = now_usec() + (uint64_t)timeout_ms * 1000u;
	unsigned id = ++q->next_id;
	_cleanup_free_ char *line = NULL;
	size_t len;
	int r;

	json_object_object_add(cmd, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(cmd, "arguments", json_object_get(args));
	json_object_object_add(cmd, "id", json_object_new_int((int)id));
	line = tagmem_msg_format(cmd, &len);
	if (!line)
		return -ENOMEM;
	/* send(MSG_NOSIGNAL): a QEMU that exits under us is an error, not a SIGPIPE */
	for (size_t off = 0; off < len;) {
		ssize_t n = off == 0 && fd >= 0 ? send_with_fd(q->fd, line, len, fd) :
			    send(q->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EPIPE ? -ECONNRESET : -errno;
		off += (size_t)n;
	}
	for (;;) {
		_cleanup_json_ struct json_object *m = NULL;
		struct json_object *vid, *v, *cls, *desc;

		r = read_msg(q, deadline, &m);
		if (r < 0)
			return r;
		if (is_event(m))
			continue; /* events interleave with replies; nobody here waits for them */
		if (!json_object_object_get_ex(m, "id", &vid) || json_object_get_int(vid) != (int)id)
			continue; /* a reply to something earlier that timed out */
		if (json_object_object_get_ex(m, "return", &v)) {
			if (ret_return)
				*ret_return = json_object_get(v);
			return 0;
		}
		if (json_object_object_get_ex(m, "error", &v)) {
			if (errclass && classlen) {
				snprintf(errclass, classlen, "%s",
					 json_object_object_get_ex(v, "class", &cls) ?
					 json_object_get_string(cls) : "unknown");
			}
			if (errdesc && desclen)
				snprintf(errdesc, desclen, "%s",
					 json_object_object_get_ex(v, "desc", &desc) ?
					 json_object_get_string(desc) : "");
			return -EREMOTEIO;
		}
		return -EPROTO;
	}
}

int qmp_socket_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	strcpy(sa.sun_path, path);
	/* non-blocking: a Unix-socket connect never waits, it succeeds or says why not */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int qmp_open_fd(int fd, int timeout_ms, struct qmp **ret)
{
	uint64_t deadline = now_usec() + (uint64_t)timeout_ms * 1000u;
	_cleanup_json_ struct json_object *greeting = NULL;
	struct qmp *q;
	int r, fl;

	q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	q->fd = fd;
	lines_init(&q->in, QMP_MAX_MESSAGE);
	/* the client waits with poll() and deadlines: blocking I/O on the fd */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	r = read_msg(q, deadline, &greeting);
	if (r < 0)
		goto fail;
	if (!json_object_object_get_ex(greeting, "QMP", NULL)) {
		r = -EPROTO; /* something answered, but it is not a QEMU monitor */
		goto fail;
	}
	r = qmp_execute(q, "qmp_capabilities", NULL, deadline_ms(deadline), NULL, NULL, 0, NULL, 0);
	if (r < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	qmp_close(q);
	return r;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **ret)
{
	int fd, r = qmp_socket_connect(path, &fd);

	return r < 0 ? r : qmp_open_fd(fd, timeout_ms, ret);
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	lines_release(&q->in);
	free(q);
}

int qmp_fd(struct qmp *q)
{
	return q->fd;
}

int qmp_poll_events(struct qmp *q, int timeout_ms)
{
	_cleanup_json_ struct json_object *m = NULL;
	int r = read_msg(q, now_usec() + (uint64_t)timeout_ms * 1000u, &m);

	if (r == -ETIMEDOUT)
		return 0;
	return r < 0 ? r : 1;
}
