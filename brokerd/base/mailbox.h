/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A mailbox from worker threads to the event loop: workers append finished items, the
 * loop polls one fd and takes everything posted so far, oldest first. It is the one
 * thread→loop channel of brokerd's workers (the data plane's pool, the VM monitors); what
 * the workers do and how they queue work in is theirs. Items embed a struct mailbox_node.
 */
#ifndef BROKERD_MAILBOX_H
#define BROKERD_MAILBOX_H

#include <pthread.h>
#include <stdbool.h>

struct mailbox_node {
	struct mailbox_node *next;
};

struct mailbox {
	pthread_mutex_t lock;
	struct mailbox_node *head, *tail; /* guarded by lock */
	int efd;                          /* readable while something was posted */
};

int mailbox_init(struct mailbox *mb);
/* Items still inside are the caller's to free first (mailbox_take). */
void mailbox_fini(struct mailbox *mb);
/* The fd the loop polls (EPOLLIN). */
int mailbox_fd(const struct mailbox *mb);
/* From any thread: append (without waking the loop), then wake once for many appends. */
void mailbox_append(struct mailbox *mb, struct mailbox_node *n);
void mailbox_wake(struct mailbox *mb);
/* Append and wake. */
void mailbox_post(struct mailbox *mb, struct mailbox_node *n);
/* On the loop: everything posted so far, oldest first (a NULL-terminated chain), or NULL. */
struct mailbox_node *mailbox_take(struct mailbox *mb);

#endif
