/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sources of tagged capacity, behind one interface. A backend reports what it learns through
 * the broker_tag_*() calls in brokerd.h and acts on the broker's behalf (materialise a tag as
 * a device, tear a device down). Only the simulated backend has a fabric manager.
 */
#ifndef BROKERD_BACKEND_H
#define BROKERD_BACKEND_H

#include "brokerd.h"

struct backend_ops {
	const char *name;
	/* Cold-plug scan: report every tag present now. */
	int (*scan)(struct backend *be);
	/* Make the tag's device; reports it with broker_tag_device(). -ENOENT, -EBUSY. */
	int (*materialise)(struct backend *be, struct tag_entry *e);
	/* Tear the device down (size 0); completes a deferred release. */
	int (*destroy)(struct backend *be, struct tag_entry *e);
	/* Fabric manager (NULL when the backend has none). */
	int (*fm_add)(struct backend *be, uint64_t size, const tagmem_tag *tag, bool shared,
		      unsigned *ret_region, unsigned *ret_nextents);
	int (*fm_release)(struct backend *be, const tagmem_tag *tag);
	/* Root of the sysfs tree it reads ("/" on a host). */
	const char *(*root)(struct backend *be);
	void (*free)(struct backend *be);
};

struct backend {
	const struct backend_ops *ops;
	struct broker *broker;
};

int backend_sim_new(struct broker *b, struct backend **ret);
int backend_host_new(struct broker *b, struct backend **ret);

#endif
