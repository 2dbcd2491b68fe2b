/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Intrusive doubly linked lists, the kernel's way: a struct list_node inside the element, a
 * struct list_head that owns the chain, container_of to get back to the element. Used for
 * every list brokerd keeps (tags in arrival order, clients, VM monitors), so none is written
 * by hand. Removal during iteration: use list_for_each_safe.
 */
#ifndef BROKERD_LIST_H
#define BROKERD_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

/* The head is a node whose next is the first element and prev the last (a ring). */
struct list_head {
	struct list_node n;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct list_head *h)
{
	h->n.prev = h->n.next = &h->n;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->n.next == &h->n;
}

static inline void list_add_tail(struct list_head *h, struct list_node *x)
{
	x->prev = h->n.prev;
	x->next = &h->n;
	h->n.prev->next = x;
	h->n.prev = x;
}

static inline void list_add_head(struct list_head *h, struct list_node *x)
{
	x->next = h->n.next;
	x->prev = &h->n;
	h->n.next->prev = x;
	h->n.next = x;
}

static inline void list_del(struct list_node *x)
{
	x->prev->next = x->next;
	x->next->prev = x->prev;
	x->prev = x->next = x;
}

/* The first element, or NULL. */
#define list_first(h, type, member)                                                        \
	(list_empty(h) ? NULL : container_of((h)->n.next, type, member))

#define list_for_each(pos, h, member)                                                      \
	for (pos = container_of((h)->n.next, __typeof__(*pos), member);                    \
	     &pos->member != &(h)->n;                                                      \
	     pos = container_of(pos->member.next, __typeof__(*pos), member))

/* Safe against removal (and freeing) of pos. */
#define list_for_each_safe(pos, tmp, h, member)                                            \
	for (pos = container_of((h)->n.next, __typeof__(*pos), member),                    \
	     tmp = container_of(pos->member.next, __typeof__(*pos), member);               \
	     &pos->member != &(h)->n;                                                      \
	     pos = tmp, tmp = container_of(pos->member.next, __typeof__(*pos), member))

#endif
