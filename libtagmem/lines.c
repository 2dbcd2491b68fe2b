/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* A read brings at least this much when it can: small reads cost a syscall per line. */
#define LINES_READAHEAD 65536u
#define LINES_FIRST 8192u
#define LINES_LOW 4096u

void lines_init(struct lines *l, size_t max_line)
{
	*l = (struct lines){ .max = max_line };
}

void lines_release(struct lines *l)
{
	free(l->buf);
	lines_init(l, l->max);
}

void lines_reset(struct lines *l)
{
	l->head = l->scan = l->tail = 0;
	l->skipping = false;
}

size_t lines_held(const struct lines *l)
{
	return l->tail - l->head;
}

char *lines_room(struct lines *l, size_t *room)
{
	size_t limit = l->max + 1 + LINES_READAHEAD;

	*room = 0;
	if (l->head) {
		memmove(l->buf, l->buf + l->head, l->tail - l->head);
		l->tail -= l->head;
		l->scan -= l->head;
		l->head = 0;
	}
	if (l->cap - l->tail < LINES_LOW && l->cap < limit) {
		size_t nc = MIN(MAX(l->cap * 2, (size_t)LINES_FIRST), limit);
		char *p = realloc(l->buf, nc);

		if (!p) {
			errno = ENOMEM;
			return NULL;
		}
		l->buf = p;
		l->cap = nc;
	}
	if (l->cap == l->tail) {
		errno = EMSGSIZE; /* a line over the limit fills it all */
		return NULL;
	}
	*room = l->cap - l->tail;
	return l->buf + l->tail;
}

void lines_fill(struct lines *l, size_t n)
{
	l->tail += MIN(n, l->cap - l->tail);
}

ssize_t lines_read(struct lines *l, int fd)
{
	size_t room;
	char *at = lines_room(l, &room);
	ssize_t n;

	if (!at)
		return -errno;
	n = read(fd, at, room);
	if (n < 0)
		return -errno;
	lines_fill(l, (size_t)n);
	return n;
}

/* The next newline at or after head, or NULL; remembers how far it looked. */
static char *find_newline(struct lines *l)
{
	char *nl = memchr(l->buf + l->scan, '\n', l->tail - l->scan);

	l->scan = nl ? (size_t)(nl - l->buf) : l->tail;
	return nl;
}

/* While skipping: drop bytes up to and including the newline that ends the long line. */
static void drop_skipped(struct lines *l)
{
	char *nl = find_newline(l);

	if (nl) {
		l->skipping = false;
		l->head = l->scan = (size_t)(nl - l->buf) + 1;
	} else {
		l->head = l->scan = l->tail;
	}
}

bool lines_ready(struct lines *l)
{
	if (l->skipping)
		drop_skipped(l);
	return !l->skipping && l->tail > l->head && find_newline(l);
}

int lines_next(struct lines *l, char **line, size_t *len)
{
	char *nl;
	size_t n;

	if (l->skipping)
		drop_skipped(l);
	if (l->skipping || l->tail == l->head)
		return 0;
	nl = find_newline(l);
	n = nl ? (size_t)(nl - (l->buf + l->head)) : l->tail - l->head;
	if (n > l->max)
		return -EMSGSIZE;
	if (!nl)
		return 0;
	*nl = '\0';
	*line = l->buf + l->head;
	*len = n;
	l->head = l->scan = l->head + n + 1;
	if (l->head == l->tail)
		l->head = l->scan = l->tail = 0;
	return 1;
}

void lines_skip(struct lines *l)
{
	l->skipping = true;
	drop_skipped(l);
}
