/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The embedded simulated DCD: a fabric manager and an emulation of the kernel's DCD ABI
 * (the kernel's DCD sysfs layout, see libtagmem/dcd.h) inside a sandbox directory. Its state *is* the tree it writes, like the
 * kernel's is sysfs, so it survives a brokerd restart and daemonless lookups can read it:
 *
 *   <root>/sys/bus/cxl/devices/dax_regionN/{sharable,dax_region/seed,extentN.M/...}
 *   <root>/sys/bus/dax/devices/daxN.M/{size,uuid}
 *   <root>/dev/daxN.M               regular file standing in for the devdax node
 *   <root>/sim/{region_size,pending/<tag>}   the emulation's own bookkeeping
 *
 * Region 0 holds private capacity, region 1 sharable capacity (always tagged).
 * Internal to brokerd.
 */
#ifndef BROKERD_SIM_H
#define BROKERD_SIM_H

#include "dcd.h"

#define SIM_REGIONS 2
#define SIM_MAX_EXTENT (1ull << 30) /* one allocation may span several extents */

/* The kernel's defensive limits on an Add Capacity chain (v11 drivers/cxl/core/mbox.c:
 * CXL_DC_MAX_PENDING_EXTENTS, CXL_DC_ADD_TIMEOUT). */
#define SIM_MAX_PENDING 100
#define SIM_CHAIN_TIMEOUT_MS 20000

struct sim;

struct sim_options {
	uint64_t region_size;
	enum dcd_series series;     /* the kernel series it follows where they differ */
	/* A shared fabric's memory: one file per tag, named by the tag, holding its bytes in
	 * sequence order. A device made for a tag is then a hard link to that file, so every
	 * host that has the tag maps the same bytes. NULL: each device is a file of its own. */
	const char *bytes_dir;
};

int sim_open(const char *root, const struct sim_options *opts, struct sim **ret_sim);
struct sim *sim_close(struct sim *sim);
const char *sim_root(struct sim *sim);
uint64_t sim_region_size(struct sim *sim);

/* ---- fabric-manager side ---- */
struct sim_alloc {
	unsigned region;
	unsigned nextents;
	uint64_t size;
};
/* tag NULL: untagged (private only). -ENOSPC, -EINVAL (size, shared without tag), -EEXIST,
 * -E2BIG the free space is so fragmented that the allocation would take more extents than
 * the kernel accepts in one chain (SIM_MAX_PENDING). */
int sim_fm_add(struct sim *sim, uint64_t size, const tagmem_tag *tag, bool shared,
	       struct sim_alloc *ret_alloc);
/* A fabric manager elsewhere placed the tag's extents (offset and length each, in sequence
 * order) in region 0 (private) or 1 (sharable): record them as the kernel would. -EEXIST the
 * tag is here already, -ERANGE an extent outside the region or over another, -EINVAL. */
int sim_place(struct sim *sim, unsigned region, const tagmem_tag *tag,
	      const struct dcd_extent *extents, size_t n);
/* The tag's extents in sequence order, at most max of them; returns how many it has. */
size_t sim_tag_extents(struct sim *sim, const tagmem_tag *tag, struct dcd_extent *out,
		       size_t max);
/* The distinct tags of the extents, sorted (*ret to free). */
int sim_list_tags(struct sim *sim, tagmem_tag **ret, size_t *ret_n);
/* Bytes of region given out as extents. */
uint64_t sim_region_used(struct sim *sim, unsigned region);
/* Returns 0 released now, 1 deferred (a device holds the tag), -ENOENT unknown tag. */
int sim_fm_release(struct sim *sim, const tagmem_tag *tag);
bool sim_release_pending(struct sim *sim, const tagmem_tag *tag);

/* ---- kernel side: Dynamic Capacity event records, as the kernel receives them ----
 * The fabric manager's additions above arrive this way too. A chain of Add Capacity records
 * is staged while each says More; the record without More closes it. Then each group (the
 * records of one tag; each untagged record alone) is checked and added whole, or refused
 * whole: extents 2 MiB aligned, inside one region and over nothing; a tag not already on
 * the host (-EEXIST); a sharable region's group tagged, its sequence numbers dense from
 * the generation's base. A chain longer than SIM_MAX_PENDING records is dropped whole, as
 * is one left open SIM_CHAIN_TIMEOUT_MS (sim_dc_tick). */
struct sim_dc_record {
	unsigned region;
	uint64_t offset, length;  /* within the region */
	bool tagged;
	tagmem_tag tag;
	unsigned seq;             /* shared_extn_seq, stamped by the device (sharable) */
	bool more;
};
struct sim_chain_result {
	unsigned accepted, refused;  /* groups */
	int error;                   /* why the first refused group was refused */
};
/* 0 staged; 1 the chain closed (*ret); -ENOSPC the chain grew too long and was dropped. */
int sim_dc_add_record(struct sim *sim, const struct sim_dc_record *rec, uint64_t now_ms,
		      struct sim_chain_result *ret);
/* The chain watchdog: 1 an open chain timed out and was dropped, 0 otherwise. */
int sim_dc_tick(struct sim *sim, uint64_t now_ms);

/* ---- kernel side: what the kernel does after a sysfs write ----
 * The broker wrote to the region's seed device "uuid": a tag claims all of its extents in
 * sequence order (-ENOENT none, -EBUSY a device on this host holds the tag already); "0"
 * claims one untagged extent (the device's uuid then reads as the null UUID). */
int sim_kernel_seed_written(struct sim *sim, unsigned region);
/* The broker wrote the device's "size": 0 destroys it (and completes a deferred release). */
int sim_kernel_size_written(struct sim *sim, const char *device);

/* ---- trace records for the backend: 1 one returned, 0 none queued ---- */
int sim_next_event(struct sim *sim, struct dcd_event *ret_event);

#endif
