/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon: the front door of brokerd/daemon, and the only place that knows every
 * subsystem. It builds them (loop, core, backend, registry persister, data plane, VM
 * monitors, server, api), wires their callbacks together, restores state from the registry,
 * and runs the loop until SIGINT/SIGTERM.
 */
#ifndef BROKERD_DAEMON_H
#define BROKERD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "settings.h"

struct tagmem_ctx;
struct persister;
struct registry_image;

struct daemon {
	struct broker_settings settings;
	struct tagmem_ctx *ctx;        /* the one logging context (log.h) */
	struct api api;                /* what requests reach: core, server, backend, … */
	struct persister *persister;
	uint64_t persist_gen;          /* newest registry snapshot submitted */
	uint64_t persist_done_gen;     /* newest one known durable */
	bool persist_failed;           /* the last write failed: memory is ahead of the disk */
	int64_t persist_retry;         /* the retry timer (loop.h id; 0: none yet) */
	bool restoring;                /* from reading the registry to the end of the first
					  scan: a snapshot then would lack the images not yet read
					  and the claims not yet matched, so persisting waits */
	bool persist_deferred;
	/* images of the registry brokerd could not open at start (a read-only or failing
	 * filesystem, permissions): kept in the registry as they were and retried, never
	 * forgotten for a passing fault */
	struct registry_image *unavailable;
	size_t nunavailable;
	char default_image_dir[4096];
	int state_lock, sim_lock;      /* flock()ed: one brokerd per state directory and sim tree */
};

int daemon_init(struct daemon *d, const struct broker_settings *settings);
/* Serve until SIGINT/SIGTERM; ready() is called once the socket accepts clients. */
int daemon_run(struct daemon *d, void (*ready)(void));
void daemon_fini(struct daemon *d);

#endif
