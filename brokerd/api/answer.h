/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Who gets the answer, and the protocol's shapes, built once (answer.c). A request's answer
 * is an object of its own: the peer it goes to (a host client, the guest of a VM, or nobody)
 * and the request's id. Work that ends later (on a data-plane worker, a VM's monitor) keeps
 * it in its completion's context and answers through it; the lower layers never see it.
 *
 * Everything goes out through the api's transport (api.h): the server and the guest
 * channels in brokerd, a recorder in the unit tests. Internal to brokerd/api.
 */
#ifndef BROKERD_ANSWER_H
#define BROKERD_ANSWER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct api;
struct json_object;

enum answer_peer {
	ANSWER_NOBODY,  /* background work: nobody waits */
	ANSWER_CLIENT,  /* a host client on brokerd's socket */
	ANSWER_GUEST,   /* the guest of a VM, on its channel */
};

struct answer {
	enum answer_peer peer;
	uint64_t client;           /* ANSWER_CLIENT: its serial */
	uid_t guest_uid;           /* ANSWER_GUEST: the VM's owner and name */
	char guest_vm[65];
	struct json_object *id;    /* the request's id, echoed (a reference; NULL: none) */
};

/* An answer for the same peer and id that lives on its own (a reference to the id). */
void answer_copy(struct answer *dst, const struct answer *src);
/* Drop the id's reference. */
void answer_fini(struct answer *a);

/* {"id", "result"} (result consumed; NULL for {}), held until registry generation gen. */
void answer_result(struct api *api, const struct answer *a, struct json_object *result,
		   uint64_t gen);
/* {"id", "error": {"code", "message"}}, held until gen (a change that failed half-way). */
void answer_error(struct api *api, const struct answer *a, uint64_t gen, const char *code,
		  const char *fmt, ...) _printf_(5, 6);
/* A flush that finished without its asker waiting: a flush_done event (body consumed; code
 * NULL when it succeeded) to the asker, unless it hears every event anyway, and to every
 * subscriber; vm names the guest that asked (NULL: a host client). */
void answer_flush_done(struct api *api, const struct answer *a, struct json_object *body,
		       const char *code, const char *message, const char *vm, uint64_t gen);
/* A message (consumed) to the guest of VM (uid, vm), outside any request (slot map, reclaim). */
void answer_tell_guest(struct api *api, uid_t uid, const char *vm, struct json_object *msg);

#endif
