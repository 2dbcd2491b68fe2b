/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside the simulator: its state, shared by sim.c (the tree, the fabric manager, the
 * kernel's device side) and sim_chain.c (the kernel's receiving side of Add Capacity: More
 * chains and groups). Not a front door: everything else goes through sim.h.
 */
#ifndef TAGMEM_SIM_PRIVATE_H
#define TAGMEM_SIM_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "sim.h"

struct sim_region {
	bool sharable;
	unsigned next_extent; /* extent ids grow: their order is the sequence order */
	unsigned seed;        /* id of the seed dax device */
	uint64_t high;        /* end of the highest extent: allocation continues from here */
};

/* The kernel knows its devices without reading sysfs; so does its emulation. */
struct sim_dev {
	unsigned region, id;
	bool tagged;
	tagmem_tag tag;          /* tagged: the tag it claimed */
	unsigned extent;         /* untagged: the one extent it claimed */
};

struct sim {
	struct sysfs *fs;
	int rootfd;
	int bytes_fd;               /* opts.bytes_dir, or -1 */
	struct sim_options opts;
	struct sim_region regions[SIM_REGIONS];
	struct dcd_extent *extents; /* every extent in the tree, the allocation map */
	size_t nextents, capextents;
	struct sim_dev *devs;       /* devices that claimed a tag */
	size_t ndevs, capdevs;
	struct dcd_event *events;   /* queued trace records */
	size_t nevents, capevents, headevent;
	/* the Add Capacity chain being received (More set on each record so far) */
	struct sim_dc_record chain[SIM_MAX_PENDING];
	size_t nchain;
	uint64_t chain_deadline_ms;
};

/* The first sequence number of a sharable group: the series changed it from 1 to 0. */
unsigned sim_seq_base(const struct sim *sim);
/* A tag some extent of the host already carries. */
bool sim_tag_in_use(struct sim *sim, const tagmem_tag *tag);
/* Write an extent's directory into the tree (whole, by rename), record it in the allocation
 * map, queue its trace record: what the kernel does for each extent of an accepted group. */
int sim_write_extent(struct sim *sim, const struct dcd_extent *e);
int sim_add_extent_record(struct sim *sim, const struct dcd_extent *e);
int sim_queue_event(struct sim *sim, enum dcd_event_type type, const struct dcd_extent *e,
		    unsigned seq);

#endif
