/* SPDX-License-Identifier: GPL-2.0-or-later */
/* An image's I/O state, shared by image_io.c (what it is and what it counts) and dataplane.c
 * (the pool that works on it). Internal to brokerd/dataplane. */
#ifndef BROKERD_DATAPLANE_IMAGE_IO_H
#define BROKERD_DATAPLANE_IMAGE_IO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "dataplane.h"

struct image_io {
	atomic_uint refs;
	int fd;                      /* flushes only: see image_io_open */
	int evict_fd;                /* everything else that waits on writeback */
	int barrier_fd;              /* -1: durability is fdatasync of the image */
	bool in_memory;              /* on tmpfs: flush, evict, invalidate, budgets do not apply */
	dev_t dev;
	ino_t ino;
	uint64_t data_size;
	pthread_mutex_t lock;        /* guards everything below */
	struct dp_request *pending, *pending_tail;
	bool queued, running, maintaining;
	struct image_budgets budgets;
	unsigned holds;              /* image_io_hold_writeback */
	uint64_t wb_steps;           /* background writeback steps started (under lock, with
				      * the hold checked in the same section) */
	struct pc_counts last;
	uint64_t batches;
	uint64_t errors;             /* batches that met an error, and the last one's message */
	char last_error[512];
	int64_t lost_since;          /* writes lost (realtime s of the first error); 0: none */
	char lost_error[192];
	/* DP_MAINTAIN's own state (one runs at a time per image): */
	struct timespec seen_mtime;  /* the file's mtime at the last look */
	unsigned ticks;
	uint64_t count_usec;         /* what the last whole-image cachestat cost, */
	uint64_t counted_at_usec;    /* and when it ran */
	uint64_t wb_cursor;          /* where background writeback goes on from */
	bool wb_started;             /* background writeback since the last barrier */
	struct image_io *runq_next;
};

/* A step of background writeback may start (not held; counted as it starts). */
bool writeback_step_begins(struct image_io *io);
bool writeback_held(struct image_io *io);
/* A writeback of the image failed: its writes are gone (the first failure is remembered). */
void lose_writes(struct image_io *io, const char *what);

#endif
