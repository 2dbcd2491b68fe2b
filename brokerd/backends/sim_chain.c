/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel's receiving side of Add Capacity, as the DCD series specify it: records arrive
 * chained by More; nothing surfaces until the chain closes; a chain longer than
 * SIM_MAX_PENDING, or left open SIM_CHAIN_TIMEOUT_MS, is dropped; each tag's records are one
 * group, checked and added whole or refused whole. sim.c's fabric manager sends through it,
 * and the tests send to it directly, as a device would.
 */
#include <errno.h>
#include <stdlib.h>

#include "sim_private.h"

static bool overlaps(const struct dcd_extent *a, const struct dcd_extent *b)
{
	return a->offset < b->offset + b->length && b->offset < a->offset + a->length;
}

static bool rec_overlaps(const struct sim_dc_record *a, const struct sim_dc_record *b)
{
	return a->offset < b->offset + b->length && b->offset < a->offset + a->length;
}

static int cmp_rec_seq(const void *a, const void *b)
{
	const struct sim_dc_record *x = *(const struct sim_dc_record *const *)a;
	const struct sim_dc_record *y = *(const struct sim_dc_record *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The kernel's checks of one group before it is added (v11 cxl_validate_group() and
 * cxl_add_extent()), on g[] in sequence order once it returns 0: aligned, in one region and
 * inside it, over no extent of the host or of the group, a tag not already on the host, and
 * on a sharable region a tag and dense sequence numbers.
 */
static int check_group(struct sim *sim, const struct sim_dc_record **g, size_t n)
{
	unsigned region = g[0]->region;
	struct sim_region *rg;
	bool sharable;

	if (region >= SIM_REGIONS)
		return -ENXIO;
	rg = &sim->regions[region];
	sharable = rg->sharable;
	for (size_t i = 0; i < n; i++) {
		if (!g[i]->length || g[i]->offset % DCD_ALIGN || g[i]->length % DCD_ALIGN)
			return -EINVAL;
		if (g[i]->region != region) /* one group, one partition */
			return -EINVAL;
		if (g[i]->offset > sim->opts.region_size ||
		    g[i]->length > sim->opts.region_size - g[i]->offset)
			return -ENXIO;
	}
	if (sharable && !g[0]->tagged) /* other hosts find shared capacity only by its tag */
		return -EINVAL;
	if (g[0]->tagged && sim_tag_in_use(sim, &g[0]->tag))
		return -EEXIST;
	if (sharable) {
		qsort(g, n, sizeof(*g), cmp_rec_seq);
		for (size_t i = 0; i < n; i++)
			if (g[i]->seq != sim_seq_base(sim) + i)
				return -EINVAL; /* a gap, a duplicate, or the wrong base */
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++)
			if (rec_overlaps(g[i], g[j]))
				return -ENXIO;
		/* above everything handed out so far: nothing to compare with */
		if (g[i]->offset >= rg->high)
			continue;
		for (size_t j = 0; j < sim->nextents; j++) {
			struct dcd_extent e = { .offset = g[i]->offset, .length = g[i]->length };

			if (sim->extents[j].region == region && overlaps(&e, &sim->extents[j]))
				return -ENXIO;
		}
	}
	return 0;
}

/* Add a checked group: its extents appear in sequence order (ids grow with it). */
static int add_group(struct sim *sim, const struct sim_dc_record **g, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		struct sim_region *rg = &sim->regions[g[i]->region];
		struct dcd_extent e = { .region = g[i]->region, .offset = g[i]->offset,
					.length = g[i]->length, .tagged = g[i]->tagged,
					.tag = g[i]->tag };

		e.id = rg->next_extent++;
		r = sim_write_extent(sim, &e);
		if (r >= 0)
			r = sim_add_extent_record(sim, &e);
		if (r >= 0)
			r = sim_queue_event(sim, DCD_EVENT_ADD, &e, rg->sharable ? g[i]->seq : 0);
	}
	return r;
}

/* The chain closed: each group added whole or refused whole. */
static int close_chain(struct sim *sim, struct sim_chain_result *res)
{
	const struct sim_dc_record *g[SIM_MAX_PENDING];
	bool taken[SIM_MAX_PENDING] = { false };
	int r = 0;

	*res = (struct sim_chain_result){ 0 };
	for (size_t i = 0; i < sim->nchain && r >= 0; i++) {
		size_t n = 0;
		int c;

		if (taken[i])
			continue;
		/* one tag, one group; untagged extents are independent allocations */
		for (size_t j = i; j < sim->nchain; j++)
			if (j == i || (sim->chain[i].tagged && sim->chain[j].tagged &&
				       !tagmem_tag_compare(&sim->chain[i].tag, &sim->chain[j].tag))) {
				taken[j] = true;
				g[n++] = &sim->chain[j];
			}
		c = check_group(sim, g, n);
		if (c < 0) {
			if (!res->refused++)
				res->error = c;
			continue;
		}
		r = add_group(sim, g, n);
		if (r >= 0)
			res->accepted++;
	}
	sim->nchain = 0;
	return r < 0 ? r : 1;
}

int sim_dc_add_record(struct sim *sim, const struct sim_dc_record *rec, uint64_t now,
		      struct sim_chain_result *ret)
{
	sim_dc_tick(sim, now);
	if (sim->nchain >= SIM_MAX_PENDING) {
		/* a device that never closes its chain: dropped whole, as the kernel does */
		sim->nchain = 0;
		return -ENOSPC;
	}
	sim->chain[sim->nchain++] = *rec;
	if (rec->more) {
		sim->chain_deadline_ms = now + SIM_CHAIN_TIMEOUT_MS;
		return 0;
	}
	return close_chain(sim, ret);
}

int sim_dc_tick(struct sim *sim, uint64_t now)
{
	if (!sim->nchain || now < sim->chain_deadline_ms)
		return 0;
	sim->nchain = 0;
	return 1;
}
