/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The listening socket and who gets in. The socket is 0666 by design (what a caller may do
 * is decided per request from its credentials), so admission must hold per user:
 *   - max_clients connections in all, and at most max_clients_per_uid for one uid; the last
 *     ROOT_RESERVE places are kept for root and the daemon's own uid, so no user can lock
 *     the administrator out;
 *   - a client turned away is told why (too_many_clients), then read until it hangs up, so
 *     it sees the answer rather than "connection reset";
 *   - out of file descriptors (EMFILE), the listener would stay readable and spin the loop:
 *     a spare descriptor is given up to accept and refuse one client, and the listener rests
 *     for a moment if even that fails.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "internal.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define REJECTED_MAX 64           /* refused clients read until they hang up, at most */
#define REJECTED_LINGER_USEC (2 * 1000000ull)
#define ACCEPT_REST_MS 100        /* the listener's pause when out of descriptors */

struct rejected {
	int fd;
	uint64_t since;
	struct list_node node;
};

static unsigned root_reserve(const struct server *srv)
{
	return MAX(8u, srv->settings->max_clients / 32);
}

static struct uid_count *uid_find(struct server *srv, uid_t uid)
{
	for (size_t i = 0; i < srv->nuids; i++)
		if (srv->uids[i].uid == uid)
			return &srv->uids[i];
	return NULL;
}

void uid_count_drop(struct server *srv, uid_t uid)
{
	struct uid_count *u = uid_find(srv, uid);

	if (u && --u->n == 0)
		*u = srv->uids[--srv->nuids];
}

static int uid_count_take(struct server *srv, uid_t uid)
{
	struct uid_count *u = uid_find(srv, uid);

	if (!u) {
		if (grow_array(&srv->uids, &srv->uids_cap, srv->nuids, sizeof(*srv->uids)) < 0)
			return -ENOMEM;
		u = &srv->uids[srv->nuids++];
		*u = (struct uid_count){ .uid = uid };
	}
	u->n++;
	return 0;
}

/* Why uid may not connect now, or NULL. */
static const char *refusal(struct server *srv, uid_t uid, char *buf, size_t len)
{
	const struct broker_settings *s = srv->settings;
	struct uid_count *u = uid_find(srv, uid);
	bool admin = uid == 0 || uid == geteuid();

	if (srv->nclients >= s->max_clients)
		return "brokerd serves its maximum number of clients; retry later";
	if (!admin && srv->nclients >= s->max_clients - MIN(root_reserve(srv), s->max_clients))
		return "brokerd keeps its last connections for root; retry later";
	if (!admin && u && u->n >= s->max_clients_per_uid) {
		snprintf(buf, len, "uid %u has %u connections to brokerd, its limit "
			 "(--max-clients-per-uid); close some and retry", uid, u->n);
		return buf;
	}
	return NULL;
}

static void rejected_free(struct server *srv, struct rejected *r)
{
	loop_del_fd(srv->loop, r->fd);
	close(r->fd);
	list_del(&r->node);
	srv->nrejected--;
	free(r);
}

static void on_rejected(struct loop *l, int fd, uint32_t events, void *data)
{
	struct rejected *r = data;
	char buf[4096];
	ssize_t n;

	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n > 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		r->since = 0; /* hung up: the sweep closes it */
}

/* Tell the client why, stop writing, and keep reading until it hangs up (bounded). */
static void reject(struct server *srv, int fd, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "{\"id\":null,\"error\":{\"code\":\"too_many_clients\","
			 "\"message\":\"%s\"}}\n", why);
	struct rejected *r;

	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* best effort: the close says it too */
	}
	shutdown(fd, SHUT_WR);
	r = srv->nrejected < REJECTED_MAX ? calloc(1, sizeof(*r)) : NULL;
	if (!r || loop_add_fd(srv->loop, fd, EPOLLIN, on_rejected, r) < 0) {
		free(r);
		close(fd);
		return;
	}
	r->fd = fd;
	r->since = now_usec();
	list_add_tail(&srv->rejected, &r->node);
	srv->nrejected++;
}

static int64_t sweep_rejected(struct loop *l, void *data)
{
	struct server *srv = data;
	uint64_t now = now_usec();
	struct rejected *r, *tmp;

	list_for_each_safe(r, tmp, &srv->rejected, node)
		if (!r->since || now - r->since > REJECTED_LINGER_USEC)
			rejected_free(srv, r);
	return 200;
}

static int64_t accept_resume(struct loop *l, void *data)
{
	struct server *srv = data;

	srv->accept_paused = false;
	if (srv->listen_fd >= 0)
		loop_mod_fd(l, srv->listen_fd, EPOLLIN);
	return -1;
}

/* Out of descriptors: refuse one client with the spare, or rest the listener. */
static void out_of_fds(struct server *srv, int lfd, int err)
{
	uint64_t now = now_usec();
	int fd = -1;

	srv->emfile_count++;
	if (now - srv->emfile_logged_usec > 10 * 1000000ull) {
		log_warn("Out of file descriptors (%s) accepting clients; %llu refused so far. "
			 "Raise LimitNOFILE or lower --max-clients", strerror(err),
			 (unsigned long long)srv->emfile_count);
		srv->emfile_logged_usec = now;
	}
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		srv->spare_fd = -1;
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			static const char busy[] =
				"{\"id\":null,\"error\":{\"code\":\"too_many_clients\",\"message\":"
				"\"brokerd is out of file descriptors; retry later\"}}\n";
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* best effort */
			}
			close(fd);
		}
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0 && !srv->accept_paused &&
	    loop_add_timer(srv->loop, ACCEPT_REST_MS, accept_resume, srv) > 0) {
		/* nothing could be accepted: stop polling the listener for a moment */
		srv->accept_paused = true;
		loop_mod_fd(srv->loop, lfd, 0);
	}
}

static void on_accept(struct loop *l, int lfd, uint32_t events, void *data)
{
	struct server *srv = data;

	for (;;) {
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		char buf[160];
		const char *why;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				out_of_fds(srv, lfd, errno);
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
			close(fd);
			continue;
		}
		why = refusal(srv, cred.uid, buf, sizeof(buf));
		if (why) {
			reject(srv, fd, why);
			continue;
		}
		if (uid_count_take(srv, cred.uid) < 0) {
			close(fd);
			continue;
		}
		if (client_new(srv, fd, &cred) < 0) {
			uid_count_drop(srv, cred.uid);
			close(fd);
		}
	}
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
		int r;
		*slash = '\0';
		r = mkdir_parents(dir, 0755);
		if (r < 0)
			return r;
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
	/* a descriptor to give up when there are none left (out_of_fds) */
	srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	srv->reject_timer = loop_add_timer(srv->loop, 200, sweep_rejected, srv);
	if (srv->reject_timer < 0)
		return (int)srv->reject_timer;
	return loop_add_fd(srv->loop, fd, EPOLLIN, on_accept, srv);
}

void server_close_all(struct server *srv)
{
	struct client *c, *tmp;
	struct rejected *r, *rtmp;

	list_for_each_safe(c, tmp, &srv->clients, node)
		client_free(srv, c);
	list_for_each_safe(r, rtmp, &srv->rejected, node)
		rejected_free(srv, r);
	if (srv->spare_fd >= 0) {
		close(srv->spare_fd);
		srv->spare_fd = -1;
	}
	if (srv->listen_fd >= 0) {
		loop_del_fd(srv->loop, srv->listen_fd);
		close(srv->listen_fd);
		if (!srv->listen_fd_inherited)
			unlink(srv->settings->socket_path);
		srv->listen_fd = -1;
	}
}
