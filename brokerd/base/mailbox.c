/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The workers' mailbox to the loop (mailbox.h): a locked list and an eventfd. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mailbox.h"

int mailbox_init(struct mailbox *mb)
{
	mb->head = mb->tail = NULL;
	mb->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mb->efd < 0)
		return -errno;
	pthread_mutex_init(&mb->lock, NULL);
	return 0;
}

void mailbox_fini(struct mailbox *mb)
{
	if (mb->efd < 0)
		return;
	close(mb->efd);
	mb->efd = -1;
	pthread_mutex_destroy(&mb->lock);
}

int mailbox_fd(const struct mailbox *mb)
{
	return mb->efd;
}

void mailbox_append(struct mailbox *mb, struct mailbox_node *n)
{
	n->next = NULL;
	pthread_mutex_lock(&mb->lock);
	if (mb->tail)
		mb->tail->next = n;
	else
		mb->head = n;
	mb->tail = n;
	pthread_mutex_unlock(&mb->lock);
}

void mailbox_wake(struct mailbox *mb)
{
	uint64_t one = 1;

	if (write(mb->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN only when the counter is at its maximum: the loop is woken already */
	}
}

void mailbox_post(struct mailbox *mb, struct mailbox_node *n)
{
	mailbox_append(mb, n);
	mailbox_wake(mb);
}

struct mailbox_node *mailbox_take(struct mailbox *mb)
{
	struct mailbox_node *list;
	uint64_t n;

	/* drain the counter first: a post after it wakes the loop again, none is lost */
	if (read(mb->efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: a previous take already saw what was signalled */
	}
	pthread_mutex_lock(&mb->lock);
	list = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	return list;
}
