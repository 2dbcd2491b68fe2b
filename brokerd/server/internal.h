/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internal to brokerd/server: the server and client structs shared by clients.c (framing,
 * queues, fairness) and listen.c (the listening socket, admission, rejects). */
#ifndef BROKERD_SERVER_INTERNAL_H
#define BROKERD_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lines.h"
#include "list.h"
#include "server.h"

/* Requests one client gets handled before the others get a turn. */
#define TURN_REQUESTS 16
/* Replies a client has not read that stop its further requests until it reads them. */
#define PAUSE_OUTPUT (1u << 20)

struct held_reply {
	uint64_t gen;
	char *data;
	size_t len;
	struct held_reply *next;
};

struct client {
	struct server *srv;
	int fd;
	struct client_info info;
	struct lines in;          /* bytes received and not yet handled */
	uint64_t partial_since;   /* when an incomplete line started waiting */
	char *out;                /* bytes queued for the client */
	size_t out_len, out_off, out_cap;
	uint32_t interest;        /* the epoll events asked for now */
	bool closing;             /* flush out[] then close */
	bool processing;          /* in client_process(): replies are flushed after it */
	bool backlogged;          /* complete lines wait for a turn (on srv->backlog) */
	struct held_reply *held_head, *held_tail; /* in request order */
	struct list_node node;    /* in the server's client list */
	struct list_node backlog_node;
};

struct uid_count {
	uid_t uid;
	unsigned n;
};

struct server {
	const struct broker_settings *settings;
	struct loop *loop;
	struct server_callbacks cb;
	int listen_fd;
	bool listen_fd_inherited;
	struct list_head clients;
	struct list_head backlog;    /* clients with complete lines waiting, in turn order */
	unsigned nclients, nsubscribers;
	size_t queued_total;         /* reply and event bytes queued over all clients */
	uint64_t next_client_serial;
	struct client *serving;      /* whose request is being handled: its reply finds it at once */
	uint64_t persist_done_gen;   /* newest registry generation known durable */
	struct uid_count *uids;      /* connections per uid (few distinct uids) */
	size_t nuids, uids_cap;
	struct list_head rejected;   /* told "too many", read until they hang up */
	unsigned nrejected;
	int spare_fd;                /* given up to accept (and refuse) one client at EMFILE */
	bool accept_paused;          /* out of descriptors: the listener rests a moment */
	int64_t stall_timer, reject_timer; /* sweeps (loop.h ids) */
	uint64_t emfile_count, emfile_logged_usec;
};

/* clients.c */
int client_new(struct server *srv, int fd, const struct ucred *cred);
void client_free(struct server *srv, struct client *c);
/* listen.c */
void uid_count_drop(struct server *srv, uid_t uid);

#endif
