/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The guest agent's parts (tagmem-guestd.c is the loop and the slot map). Internal. */
#ifndef TAGMEM_GUESTD_H
#define TAGMEM_GUESTD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tagmem.h"

struct json_object;

/* guestd-hints.c: ranges guest programs marked cold (they can lose them), per tag. */
struct hints;
struct hint_range {
	uint64_t off, len;  /* the tag's data offsets */
};
#define HINT_RANGES 1024 /* per tag; brokerd takes at most as many */
struct hints *hints_new(void);
void hints_free(struct hints *h);
/* Mark [off, off + len) cold (merged with what touches it) or hot (taken out). -ENOSPC when
 * the tag or the range table is full, -EINVAL for an empty range. */
int hints_mark(struct hints *h, const tagmem_tag *tag, uint64_t off, uint64_t len, bool cold);
/* The tag's cold ranges, by offset (borrowed until the next mark). */
size_t hints_cold(struct hints *h, const tagmem_tag *tag, const struct hint_range **ret);
uint64_t hints_cold_bytes(struct hints *h, const tagmem_tag *tag);
/* What to offer brokerd from n cold ranges (by offset) when the answer must fit `budget`
 * bytes of JSON: as many as fit, the largest first, handed back by offset in ret (room for
 * n). Returns how many. */
size_t hints_offer(const struct hint_range *r, size_t n, size_t budget, struct hint_range *ret);

/* guestd-host.c: what the host says, read. */
struct slot_map;
/* The channel's line limit on brokerd's side (its newline not counted). */
#define GUESTD_CHANNEL_LINE 4096
/* The map of a "slots" event; -EBADMSG for anything but a list of {slot, tag}. */
int guestd_parse_slots(struct json_object *ev, struct slot_map *ret);
/* The answer line (malloc'd, no newline) to a "reclaim" event: the cold ranges of its tag
 * that fit one channel line, the largest first; *ret_offered of *ret_cold. NULL when the
 * event lacks a request id or a tag. */
char *guestd_reclaim_answer(struct hints *hints, struct json_object *ev, size_t *ret_offered,
			    size_t *ret_cold);

/* guestd-relay.c: guest programs' requests to the host's brokerd, over the channel. */
struct relay;
#define RELAY_MAX_FDS 65
/* hints: where "hint" requests are kept (the relay answers them itself), or NULL. */
int relay_new(const char *socket_path, struct hints *hints, struct relay **ret);
void relay_free(struct relay *r);
/* Its descriptors to poll (at most RELAY_MAX_FDS), appended at fds + *n. */
void relay_poll_fds(struct relay *r, struct pollfd *fds, size_t *n);
/* Serve what poll found ready; port is the channel (-1 while the host is away). */
void relay_ready(struct relay *r, const struct pollfd *fds, size_t n, int port);
/* A reply or event from the host: true if it was a client's (and went to it). */
bool relay_from_host(struct relay *r, struct json_object *msg);
/* The host went away: every request in flight is answered "unreachable". */
void relay_host_down(struct relay *r);

#endif
