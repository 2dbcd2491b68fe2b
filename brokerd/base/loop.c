/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"

#define LOOP_BATCH 64

struct loop_fd {
	int fd;
	loop_fd_fn fn;
	void *data;
	bool dead;             /* removed during a batch: freed after it */
	struct loop_fd *next;  /* all registrations, for lookup by fd and teardown */
};

struct loop_timer {
	int64_t id;            /* 0: a free slot */
	uint64_t due_usec;
	loop_timer_fn fn;
	void *data;
};

struct loop {
	int epfd;
	bool stop;
	unsigned ndead;          /* marked registrations waiting for reap_dead() */
	struct loop_fd *fds;
	struct loop_timer *timers; /* slots never move while timers run: found by index */
	size_t ntimers;
	int64_t next_timer_id;
	loop_pending_fn pending;   /* work left over from callbacks (fair turns) */
	void *pending_data;
	bool pending_more;         /* it said there is more: do not sleep */
};

int loop_new(struct loop **ret_loop)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	*ret_loop = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	free(l->timers);
	while (l->fds) {
		struct loop_fd *f = l->fds;
		l->fds = f->next;
		free(f);
	}
	close(l->epfd);
	free(l);
}

static struct loop_fd *find_fd(struct loop *l, int fd)
{
	for (struct loop_fd *f = l->fds; f; f = f->next)
		if (f->fd == fd && !f->dead)
			return f;
	return NULL;
}

int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *data)
{
	struct epoll_event ev = { .events = events };
	struct loop_fd *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->fd = fd;
	f->fn = fn;
	f->data = data;
	ev.data.ptr = f;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(f);
		return r;
	}
	f->next = l->fds;
	l->fds = f;
	return 0;
}

int loop_mod_fd(struct loop *l, int fd, uint32_t events)
{
	struct loop_fd *f = find_fd(l, fd);
	struct epoll_event ev = { .events = events };

	if (!f)
		return -ENOENT;
	ev.data.ptr = f;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del_fd(struct loop *l, int fd)
{
	struct loop_fd *f = find_fd(l, fd);

	if (!f)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	/* Events for f may still sit in the current batch: mark it, free it after the batch. */
	f->dead = true;
	l->ndead++;
}

/*
 * The fd list is searched linearly. With the 1,000+ clients of a busy host that is a few µs
 * per add/del, never per event: dispatch goes through epoll's data pointer.
 */
static void reap_dead(struct loop *l)
{
	struct loop_fd **pp = &l->fds;

	if (!l->ndead)
		return;
	l->ndead = 0;
	while (*pp) {
		struct loop_fd *f = *pp;
		if (f->dead) {
			*pp = f->next;
			free(f);
		} else
			pp = &f->next;
	}
}

int64_t loop_add_timer(struct loop *l, uint64_t interval_ms, loop_timer_fn fn, void *data)
{
	struct loop_timer *t = NULL;

	for (size_t i = 0; i < l->ntimers && !t; i++)
		if (!l->timers[i].id)
			t = &l->timers[i];
	if (!t) {
		struct loop_timer *p = realloc(l->timers, (l->ntimers + 1) * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->timers = p;
		t = &l->timers[l->ntimers++];
	}
	*t = (struct loop_timer){ .id = ++l->next_timer_id, .fn = fn, .data = data,
				  .due_usec = now_usec() + interval_ms * 1000u };
	return t->id;
}

static struct loop_timer *find_timer(struct loop *l, int64_t id)
{
	for (size_t i = 0; l && id > 0 && i < l->ntimers; i++)
		if (l->timers[i].id == id)
			return &l->timers[i];
	return NULL;
}

void loop_cancel_timer(struct loop *l, int64_t id)
{
	struct loop_timer *t = find_timer(l, id);

	if (t)
		t->id = 0;
}

bool loop_timer_pending(struct loop *l, int64_t id)
{
	return find_timer(l, id) != NULL;
}

static int next_timeout_ms(struct loop *l)
{
	uint64_t now = now_usec(), best = UINT64_MAX;

	for (size_t i = 0; i < l->ntimers; i++)
		if (l->timers[i].id && l->timers[i].due_usec < best)
			best = l->timers[i].due_usec;
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : (int)MIN((best - now + 999) / 1000, (uint64_t)INT32_MAX);
}

static void run_timers(struct loop *l)
{
	uint64_t now = now_usec();

	/* by index: a callback may add timers (the array may move) or cancel any, itself too */
	for (size_t i = 0; i < l->ntimers; i++) {
		struct loop_timer *t = &l->timers[i];
		int64_t id = t->id, next;

		if (!id || t->due_usec > now)
			continue;
		next = t->fn(l, t->data);
		t = &l->timers[i];
		if (t->id != id)
			continue; /* cancelled while it ran */
		if (next < 0)
			t->id = 0;
		else
			t->due_usec = now + (uint64_t)next * 1000u;
	}
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[LOOP_BATCH];

	while (!l->stop) {
		int n = epoll_wait(l->epfd, evs, LOOP_BATCH, l->pending_more ? 0 : next_timeout_ms(l));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_fd *f = evs[i].data.ptr;
			if (!f->dead)
				f->fn(l, f->fd, evs[i].events, f->data);
		}
		reap_dead(l);
		run_timers(l);
		l->pending_more = l->pending && l->pending(l, l->pending_data);
		reap_dead(l);
	}
	return 0;
}

void loop_set_pending(struct loop *l, loop_pending_fn fn, void *data)
{
	l->pending = fn;
	l->pending_data = data;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}
