/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Guest channels (guests.h): one listening socket per VM, at most one connection each. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guests.h"
#include "lines.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define REFILL_MS 100
#define SWEEP_MS 10000 /* how often idle channels are looked for (at most) */

struct guest_vm {
	struct list_node node;
	struct guests *gs;
	uid_t uid;
	char name[65];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;                    /* listening */
	int fd;                     /* the connection, or -1 */
	struct lines in;
	char *out;
	size_t out_len, out_off, out_cap;
	unsigned tokens;            /* requests it may still have handled now */
	bool paused;                /* out of tokens: not reading until the refill */
	uint64_t idle_since;        /* usec: opened or last disconnected (unconnected only) */
};

struct guests {
	struct loop *loop;
	char dir[PATH_MAX];
	int dirfd;
	struct guest_limits lim;
	struct guest_callbacks cb;
	struct list_head vms;
	unsigned nvms;
	int64_t refill_timer, sweep_timer; /* loop.h ids */
};

uid_t guest_uid(const struct guest_vm *g) { return g->uid; }
const char *guest_name(const struct guest_vm *g) { return g->name; }
const char *guest_path(const struct guest_vm *g) { return g->path; }
bool guest_connected(const struct guest_vm *g) { return g->fd >= 0; }

unsigned guests_count(const struct guests *gs, unsigned *ret_connected)
{
	const struct guest_vm *g;

	*ret_connected = 0;
	list_for_each(g, &gs->vms, node)
		*ret_connected += g->fd >= 0;
	return gs->nvms;
}

static void conn_events(struct guest_vm *g)
{
	uint32_t ev = g->paused ? 0 : EPOLLIN;

	if (g->out_len > g->out_off)
		ev |= EPOLLOUT;
	loop_mod_fd(g->gs->loop, g->fd, ev);
}

static void disconnect(struct guest_vm *g, const char *why)
{
	if (g->fd < 0)
		return;
	log_info("Guest channel of VM %s (uid %u): %s", g->name, g->uid, why);
	loop_del_fd(g->gs->loop, g->fd);
	close(g->fd);
	g->fd = -1;
	lines_release(&g->in);
	free(g->out);
	g->out = NULL;
	g->out_len = g->out_off = g->out_cap = 0;
	g->paused = false;
	g->idle_since = now_usec();
}

static void flush_out(struct guest_vm *g)
{
	while (g->out_off < g->out_len) {
		ssize_t n = send(g->fd, g->out + g->out_off, g->out_len - g->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				disconnect(g, "write failed");
			return;
		}
		g->out_off += (size_t)n;
	}
	g->out_off = g->out_len = 0;
}

void guest_send(struct guests *gs, struct guest_vm *g, struct json_object *msg)
{
	const char *s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);

	if (g->fd < 0)
		goto out;
	if (g->out_len - g->out_off + n + 1 > gs->lim.max_output) {
		/* it does not read what it is sent: not brokerd's memory to hold */
		disconnect(g, "it stopped reading (output limit)");
		goto out;
	}
	if (g->out_len + n + 1 > g->out_cap) {
		size_t cap = g->out_len + n + 1 + 4096;
		char *p;

		if (g->out_off) { /* compact first */
			memmove(g->out, g->out + g->out_off, g->out_len - g->out_off);
			g->out_len -= g->out_off;
			g->out_off = 0;
		}
		p = realloc(g->out, cap);
		if (!p) {
			disconnect(g, "out of memory");
			goto out;
		}
		g->out = p;
		g->out_cap = cap;
	}
	memcpy(g->out + g->out_len, s, n);
	g->out[g->out_len + n] = '\n';
	g->out_len += n + 1;
	flush_out(g);
	if (g->fd >= 0)
		conn_events(g);
out:
	json_object_put(msg);
}

/* Handle the complete lines in the buffer while the VM has tokens. */
static void handle_lines(struct guest_vm *g)
{
	struct guests *gs = g->gs;

	while (g->fd >= 0 && g->tokens > 0) {
		char *line;
		size_t len;
		int r = lines_next(&g->in, &line, &len);

		if (r == -EMSGSIZE) {
			disconnect(g, "a line longer than the limit");
			return;
		}
		if (r <= 0)
			break;
		g->tokens--;
		/* a blank line is no request: nothing to answer (it still costs a token) */
		if (len && !(len == 1 && line[0] == '\r'))
			gs->cb.request(gs->cb.userdata, g, line, len);
	}
	if (g->fd < 0)
		return;
	/* out of tokens with a line waiting: stop reading; the refill resumes it */
	g->paused = g->tokens == 0;
	conn_events(g);
}

static void conn_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct guest_vm *g = data;

	(void)l;
	(void)fd;
	if (events & EPOLLOUT) {
		flush_out(g);
		if (g->fd < 0)
			return;
	}
	if ((events & EPOLLIN) && !g->paused) {
		ssize_t n = lines_read(&g->in, g->fd);

		if (n == -EMSGSIZE) {
			disconnect(g, "a line longer than the limit");
			return;
		}
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
			disconnect(g, "closed");
			return;
		}
		handle_lines(g);
		if (g->fd < 0)
			return;
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		disconnect(g, "closed");
		return;
	}
	if (g->fd >= 0)
		conn_events(g);
}

static void accept_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct guest_vm *g = data;
	struct ucred peer;
	socklen_t len = sizeof(peer);
	int c;

	(void)events;
	c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
	    (peer.uid != g->uid && peer.uid != 0)) {
		/* the socket is the VM owner's (0600); anyone else got in by some other means */
		log_warn("Guest channel of VM %s: refused a connection from uid %u", g->name,
			 (unsigned)peer.uid);
		close(c);
		return;
	}
	disconnect(g, "replaced by a new connection");
	lines_init(&g->in, g->gs->lim.max_line);
	if (loop_add_fd(l, c, EPOLLIN, conn_ready, g) < 0) {
		close(c);
		return;
	}
	g->fd = c;
	g->tokens = g->gs->lim.burst;
	/* an empty line first: whatever part of a line an earlier connection left in the
	 * guest's port ends here, so the next message is read whole */
	if (send(c, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
		/* the connection is already gone: the first read says so */
	}
	log_info("Guest channel of VM %s (uid %u) connected", g->name, g->uid);
	g->gs->cb.connected(g->gs->cb.userdata, g);
}

static void vm_free(struct guests *gs, struct guest_vm *g);

/* Nobody connected for idle_ms (0: any time) and the VM holds nothing: the channel may end. */
static bool unused(struct guests *gs, struct guest_vm *g, uint64_t now, uint64_t idle_ms)
{
	return g->fd < 0 && now - g->idle_since >= idle_ms * 1000 &&
	       !gs->cb.in_use(gs->cb.userdata, g->uid, g->name);
}

/* Every so often (at most SWEEP_MS, at least as often as idle_ms): channels that ended. */
static int64_t sweep(struct loop *l, void *data)
{
	struct guests *gs = data;
	struct guest_vm *g, *tmp;
	uint64_t now = now_usec();

	(void)l;
	list_for_each_safe(g, tmp, &gs->vms, node)
		if (unused(gs, g, now, gs->lim.idle_ms)) {
			log_info("Guest channel of VM %s (uid %u): closed, unused for %u s", g->name,
				 g->uid, gs->lim.idle_ms / 1000);
			vm_free(gs, g);
		}
	return MIN(gs->lim.idle_ms, SWEEP_MS);
}

/* Room for one more channel of uid (any uid: (uid_t)-1): the unused one idle longest ends. */
static bool make_room(struct guests *gs, uid_t uid)
{
	struct guest_vm *g, *oldest = NULL;
	uint64_t now = now_usec();

	list_for_each(g, &gs->vms, node)
		if ((uid == (uid_t)-1 || g->uid == uid) &&
		    (!oldest || g->idle_since < oldest->idle_since) && unused(gs, g, now, 0))
			oldest = g;
	if (!oldest)
		return false;
	log_info("Guest channel of VM %s (uid %u): closed to make room (unused)", oldest->name,
		 oldest->uid);
	vm_free(gs, oldest);
	return true;
}

static int64_t refill(struct loop *l, void *data)
{
	struct guests *gs = data;
	unsigned add = gs->lim.rate * REFILL_MS / 1000;
	struct guest_vm *g;

	(void)l;
	list_for_each(g, &gs->vms, node) {
		if (g->fd < 0)
			continue;
		g->tokens = g->tokens + (add ? add : 1) > gs->lim.burst ? gs->lim.burst :
			    g->tokens + (add ? add : 1);
		if (g->paused) {
			g->paused = false;
			handle_lines(g); /* what waited first, then reading again */
		}
	}
	return REFILL_MS;
}

int guests_path(const struct guests *gs, uid_t uid, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%u-%s.sock", gs->dir, (unsigned)uid, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

struct guest_vm *guests_find(struct guests *gs, uid_t uid, const char *name)
{
	struct guest_vm *g;

	list_for_each(g, &gs->vms, node)
		if (g->uid == uid && !strcmp(g->name, name))
			return g;
	return NULL;
}

/*
 * Listen at dir/<uid>-<name>.sock, owned by uid, 0600. The socket is bound under a temporary
 * name, given its owner and mode, and only then renamed into place and listened on: nobody
 * else can connect in between, and the directory is brokerd's own.
 */
static int listen_at(struct guests *gs, struct guest_vm *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *base = strrchr(g->path, '/') + 1;
	char tmp[sizeof(sa.sun_path)];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.new", g->path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlinkat(gs->dirfd, strrchr(tmp, '/') + 1, 0);
	memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	if ((g->uid != geteuid() &&
	     fchownat(gs->dirfd, strrchr(tmp, '/') + 1, g->uid, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0) ||
	    fchmodat(gs->dirfd, strrchr(tmp, '/') + 1, 0600, 0) < 0 ||
	    renameat(gs->dirfd, strrchr(tmp, '/') + 1, gs->dirfd, base) < 0 || listen(fd, 4) < 0) {
		r = -errno;
		unlinkat(gs->dirfd, strrchr(tmp, '/') + 1, 0);
		close(fd);
		return r;
	}
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

int guests_open(struct guests *gs, uid_t uid, const char *name, struct guest_vm **ret)
{
	struct guest_vm *g = guests_find(gs, uid, name), *o;
	unsigned mine = 0;
	int r;

	if (g) {
		*ret = g;
		return 0;
	}
	if (strlen(name) >= sizeof(g->name))
		return -EINVAL;
	list_for_each(o, &gs->vms, node)
		mine += o->uid == uid;
	if (uid != 0 && mine >= gs->lim.max_vms_per_uid && !make_room(gs, uid))
		return -EUSERS;
	if (gs->nvms >= gs->lim.max_vms && !make_room(gs, (uid_t)-1))
		return -ENFILE;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->gs = gs;
	g->uid = uid;
	g->fd = g->lfd = -1;
	g->idle_since = now_usec();
	strcpy(g->name, name);
	r = guests_path(gs, uid, name, g->path, sizeof(g->path));
	if (r == 0)
		r = g->lfd = listen_at(gs, g);
	if (r >= 0)
		r = loop_add_fd(gs->loop, g->lfd, EPOLLIN, accept_ready, g);
	if (r < 0) {
		if (g->lfd >= 0) {
			close(g->lfd);
			unlinkat(gs->dirfd, strrchr(g->path, '/') + 1, 0);
		}
		free(g);
		return r;
	}
	list_add_tail(&gs->vms, &g->node);
	gs->nvms++;
	*ret = g;
	return 0;
}

static void vm_free(struct guests *gs, struct guest_vm *g)
{
	disconnect(g, "closed by brokerd");
	loop_del_fd(gs->loop, g->lfd);
	close(g->lfd);
	unlinkat(gs->dirfd, strrchr(g->path, '/') + 1, 0);
	list_del(&g->node);
	gs->nvms--;
	free(g);
}

void guests_close(struct guests *gs, uid_t uid, const char *name)
{
	struct guest_vm *g = guests_find(gs, uid, name);

	if (g)
		vm_free(gs, g);
}

int guests_new(struct loop *loop, const char *dir, const struct guest_limits *limits,
	       const struct guest_callbacks *cb, struct guests **ret)
{
	struct guests *gs;
	int r;

	if (strlen(dir) >= sizeof(gs->dir) || !limits->max_line || !limits->burst || !limits->idle_ms ||
	    !cb->in_use)
		return -EINVAL;
	r = mkdir_parents(dir, 0755);
	if (r < 0)
		return r;
	gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (gs->dirfd < 0) {
		r = -errno;
		free(gs);
		return r;
	}
	gs->loop = loop;
	strcpy(gs->dir, dir);
	gs->lim = *limits;
	gs->cb = *cb;
	list_init(&gs->vms);
	gs->refill_timer = loop_add_timer(loop, REFILL_MS, refill, gs);
	gs->sweep_timer = loop_add_timer(loop, MIN(limits->idle_ms, SWEEP_MS), sweep, gs);
	r = gs->refill_timer < 0 ? (int)gs->refill_timer :
	    gs->sweep_timer < 0 ? (int)gs->sweep_timer : 0;
	if (r < 0) {
		loop_cancel_timer(loop, gs->refill_timer);
		close(gs->dirfd);
		free(gs);
		return r;
	}
	*ret = gs;
	return 0;
}

void guests_free(struct guests *gs)
{
	struct guest_vm *g, *tmp;

	if (!gs)
		return;
	list_for_each_safe(g, tmp, &gs->vms, node)
		vm_free(gs, g);
	loop_cancel_timer(gs->loop, gs->refill_timer);
	loop_cancel_timer(gs->loop, gs->sweep_timer);
	close(gs->dirfd);
	free(gs);
}
