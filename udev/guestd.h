/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The guest agent's parts (tagmem-guestd.c is the loop and the slot map). Internal. */
#ifndef TAGMEM_GUESTD_H
#define TAGMEM_GUESTD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* guestd-relay.c: guest programs' requests to the host's brokerd, over the channel. */
struct relay;
#define RELAY_MAX_FDS 65
int relay_new(const char *socket_path, struct relay **ret);
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
