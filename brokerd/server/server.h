/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Unix-socket server: the front door of brokerd/server. Connections, framing and flow
 * control only: each complete request line goes to the request callback; replies come back
 * through client_reply(). It knows nothing of what requests mean.
 */
#ifndef BROKERD_SERVER_H
#define BROKERD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "settings.h"

struct json_object;
struct loop;
struct server;
struct client;

struct server_callbacks {
	void *userdata;
	/* One request line (without its newline); answer with client_reply*(). */
	void (*request)(void *userdata, struct client *c, const char *line, size_t len);
};

struct client_info {
	uid_t uid;
	pid_t pid;
	bool subscribed;
	uint64_t serial;        /* unique for the daemon's life: answers find their client */
};

int server_new(struct loop *loop, const struct broker_settings *settings,
	       const struct server_callbacks *cb, struct server **ret);
/* Listen (or take the socket systemd passed) and accept clients. */
int server_listen(struct server *srv);
/* Close every client and the listening socket (removed unless inherited). */
void server_close_all(struct server *srv);
void server_free(struct server *srv);
unsigned server_clients(const struct server *srv);
unsigned server_subscribers(const struct server *srv);
/* Reply and event bytes queued for all clients (bounded by max_output_total). */
size_t server_queued_bytes(const struct server *srv);

struct client *server_find_client(struct server *srv, uint64_t serial);
const struct client_info *client_info(const struct client *c);
void client_set_subscribed(struct server *srv, struct client *c, bool on);
/* Queue a reply; if wait_gen > 0 it is held until that registry generation is durable. */
void client_reply(struct server *srv, struct client *c, struct json_object *reply,
		  uint64_t wait_gen);
/* A reply that was already serialised (large results streamed without a DOM). */
void client_reply_raw(struct server *srv, struct client *c, char *data, size_t len,
		      uint64_t wait_gen);
/* Registry generation gen is written (error 0) or failed: release the replies it held. */
void server_persist_done(struct server *srv, uint64_t gen, int error);
/* An event line to every subscriber. */
void server_broadcast(struct server *srv, const char *line, size_t len);

#endif
