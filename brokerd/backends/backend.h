/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sources of tagged capacity, behind one interface: the front door of brokerd/backends.
 * A backend learns what exists (cold-plug scan, then kernel or simulator events) and tells
 * the core with core_reconcile() and the release/gone verbs; the core drives materialise and
 * destroy through the adapter the daemon builds from these ops. A backend never walks or
 * writes the core's tags, and nothing it is called with calls back into the core.
 * Only the simulated backend has a fabric manager.
 */
#ifndef BROKERD_BACKEND_H
#define BROKERD_BACKEND_H

#include "core.h"
#include "settings.h"

struct loop;
struct backend;

struct backend_ops {
	const char *name;
	/* Cold-plug scan: reconcile the core with everything present now. */
	int (*scan)(struct backend *be);
	/* Make the tag's device (core_callbacks.materialise has the contract). */
	int (*materialise)(struct backend *be, const struct tag *t, struct core_device *ret);
	/* Tear the device down (size 0) (core_callbacks.destroy has the contract). */
	int (*destroy)(struct backend *be, const struct tag *t);
	/* Fabric manager (NULL when the backend has none; then, if the capacity comes from a
	 * manager elsewhere, no_fm says where, for the error a caller sees). */
	const char *(*no_fm)(struct backend *be);
	int (*fm_add)(struct backend *be, uint64_t size, const tagmem_tag *tag, bool shared,
		      unsigned *ret_region, unsigned *ret_nextents);
	int (*fm_release)(struct backend *be, const tagmem_tag *tag);
	/* Root of the sysfs tree it reads ("/" on a host). */
	const char *(*root)(struct backend *be);
	void (*free)(struct backend *be);
};

struct backend {
	const struct backend_ops *ops;
	struct core *core;                   /* where what it learns goes */
	struct loop *loop;                   /* for its event sources */
	const struct broker_settings *settings;
};

int backend_sim_new(struct core *core, struct loop *loop, const struct broker_settings *s,
		    struct backend **ret);
int backend_host_new(struct core *core, struct loop *loop, const struct broker_settings *s,
		     struct backend **ret);

#endif
