/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One newline framer for every line protocol tagmem speaks: the broker socket (both ends),
 * the guest channel (both ends), the guest agent's local relay, QMP and the kernel's trace
 * pipe. Each reader owns a struct lines, reads into lines_room() and takes whole lines
 * with lines_next(); what to do with a line longer than the limit (close, skip it, fail) is
 * the reader's policy, so the framer only reports it.
 *
 * Internal: not installed, not part of the public API.
 */
#ifndef TAGMEM_LINES_H
#define TAGMEM_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lines {
	char *buf;
	size_t head;     /* first byte not yet taken */
	size_t scan;     /* [head, scan) is known to hold no newline: never scanned twice */
	size_t tail;     /* end of the bytes held */
	size_t cap;
	size_t max;      /* the longest line accepted, newline excluded */
	bool skipping;   /* dropping the rest of an over-long line, up to its newline */
};

/* A framer for lines of at most max_line bytes. Allocates nothing until the first read. */
void lines_init(struct lines *l, size_t max_line);
void lines_release(struct lines *l);

/*
 * Where the next read goes and how many bytes fit. Taken lines are dropped and the buffer
 * grows, up to the limit plus a read's worth, so one read can bring many lines. Returns NULL
 * with errno EMSGSIZE when the unfinished line already exceeds the limit (lines_next says
 * so too), and NULL with errno ENOMEM when memory runs out.
 */
char *lines_room(struct lines *l, size_t *room);
/* n bytes were read into lines_room(). */
void lines_fill(struct lines *l, size_t n);
/* One read(2) into the room: bytes read, 0 at end of file, -errno (-EAGAIN, -EMSGSIZE...). */
ssize_t lines_read(struct lines *l, int fd);

/*
 * Take the next whole line: 1 with *line (NUL-terminated in place, valid until the next
 * lines_room/lines_read) and *len (newline excluded); 0 when no whole line is held;
 * -EMSGSIZE when the line in hand is longer than the limit (it stays: lines_skip or
 * lines_reset, or give up on the peer).
 */
int lines_next(struct lines *l, char **line, size_t *len);
/* Is a whole line held? (The reader can then decide whether to take it now or later.) */
bool lines_ready(struct lines *l);
/* Bytes held and not yet taken: > 0 with !lines_ready() means a line has begun. */
size_t lines_held(const struct lines *l);
/* Drop the over-long line in hand, including what of it has not arrived yet. */
void lines_skip(struct lines *l);
/* Drop everything held. */
void lines_reset(struct lines *l);

#endif
