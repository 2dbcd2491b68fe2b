/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The simulated DCD backend. It drives sim.c the way the real backend drives the kernel:
 * it reads extents and devices through the shared sysfs/DCD reader, claims a tag by writing
 * it to the seed device's "uuid", destroys a device by writing its "size", and learns about
 * capacity from trace records. Only the three "kernel reacts" calls are simulator-specific.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "sim.h"
#include "util.h"

struct backend_sim {
	struct backend be;
	struct sim *sim;
	struct sysfs *fs; /* the broker's own reader, separate from the simulator's */
};

#define to_sim(be) ((struct backend_sim *)(be))

static void device_path(struct backend_sim *bs, const char *device, char *buf, size_t len)
{
	snprintf(buf, len, "%s/dev/%s", sysfs_root(bs->fs), device);
}

/* Sum the extents of one tag as sysfs shows them now. */
static int tag_extents(struct backend_sim *bs, const tagmem_tag *tag, unsigned region,
		       uint64_t *ret_size, unsigned *ret_n)
{
	struct dcd_snapshot snap = { 0 };
	uint64_t size = 0;
	unsigned n = 0;
	int r;

	r = dcd_scan_region_extents(bs->fs, region, &snap);
	if (r < 0)
		return r;
	for (size_t i = 0; i < snap.nextents; i++)
		if (snap.extents[i].tagged && !tagmem_tag_compare(&snap.extents[i].tag, tag)) {
			size += snap.extents[i].length;
			n++;
		}
	dcd_snapshot_clear(&snap);
	*ret_size = size;
	*ret_n = n;
	return 0;
}

static bool region_sharable(struct backend_sim *bs, unsigned region)
{
	struct dcd_region rg;

	return dcd_read_region(bs->fs, region, &rg) == 0 && rg.sharable;
}

/* A trace record arrived: re-read what it names and report the truth, not the record. */
static void handle_event(struct backend_sim *bs, const struct dcd_event *ev)
{
	struct broker *b = bs->be.broker;
	uint64_t size;
	unsigned n;

	if (!ev->tagged) {
		if (ev->type == DCD_EVENT_ADD)
			broker_untagged(b, (int64_t)ev->length);
		else
			broker_untagged(b, -(int64_t)ev->length);
		return;
	}
	if (tag_extents(bs, &ev->tag, ev->region, &size, &n) < 0)
		return;
	switch (ev->type) {
	case DCD_EVENT_ADD:
		broker_tag_seen(b, &ev->tag, ev->region, region_sharable(bs, ev->region), size, n);
		break;
	case DCD_EVENT_RELEASE:
	case DCD_EVENT_FORCED_RELEASE:
		if (n == 0)
			broker_tag_gone(b, &ev->tag);
		else
			broker_tag_release_requested(b, &ev->tag);
		break;
	case DCD_EVENT_REGION_CONFIG:
		break;
	}
}

static void drain_events(struct backend_sim *bs)
{
	struct dcd_event ev;

	while (sim_next_event(bs->sim, &ev) > 0)
		handle_event(bs, &ev);
}

static int sim_scan(struct backend *be)
{
	struct backend_sim *bs = to_sim(be);
	struct broker *b = be->broker;
	struct dcd_snapshot snap;
	int r;

	r = dcd_scan(bs->fs, &snap);
	if (r < 0)
		return r;
	/* Extents first (a tag with no device is "added"), then the devices that claimed them. */
	for (size_t i = 0; i < snap.nextents; i++) {
		struct dcd_extent *e = &snap.extents[i];
		struct tag_entry *t;

		if (!e->tagged) {
			broker_untagged(b, (int64_t)e->length);
			continue;
		}
		t = tag_table_find(&b->tags, &e->tag);
		uint64_t size = e->length + (t ? t->size : 0);
		unsigned n = 1 + (t ? t->nextents : 0);
		bool shared = false;
		for (size_t k = 0; k < snap.nregions; k++)
			if (snap.regions[k].id == e->region)
				shared = snap.regions[k].sharable;
		broker_tag_seen(b, &e->tag, e->region, shared, size, n);
	}
	for (size_t i = 0; i < snap.ndevs; i++) {
		struct dcd_daxdev *d = &snap.devs[i];
		struct tag_entry *t;
		char path[PATH_MAX];

		if (!d->tagged || d->size == 0)
			continue;
		t = tag_table_find(&b->tags, &d->tag);
		if (!t || t->size != d->size)
			continue; /* a device that does not match its extents is not trusted */
		device_path(bs, d->name, path, sizeof(path));
		broker_tag_device(b, &d->tag, d->name, path);
		if (sim_release_pending(bs->sim, &d->tag))
			broker_tag_release_requested(b, &d->tag);
	}
	if (snap.skipped)
		log_err("%zu unreadable entries under %s skipped (see TAGMEM_LOG=debug), ignoring",
			snap.skipped, sysfs_root(bs->fs));
	dcd_snapshot_clear(&snap);
	drain_events(bs); /* records queued before the scan describe what it already saw */
	return 0;
}

static int sim_materialise(struct backend *be, struct tag_entry *e)
{
	struct backend_sim *bs = to_sim(be);
	struct dcd_region rg;
	struct dcd_daxdev d;
	char path[PATH_MAX];
	int r;

	r = dcd_read_region(bs->fs, e->region, &rg);
	if (r < 0)
		return r;
	if (!rg.seed[0])
		return -ENODEV;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
	r = sysfs_write(bs->fs, path, e->tag_str);
	if (r < 0)
		return r;
	r = sim_kernel_seed_written(bs->sim, e->region);
	if (r < 0)
		return r;
	/* Trust the device only if it holds exactly the tag's extents. */
	r = dcd_read_daxdev(bs->fs, rg.seed, &d);
	if (r < 0)
		return r;
	if (!d.tagged || tagmem_tag_compare(&d.tag, &e->tag) || d.size != e->size)
		return -EIO;
	device_path(bs, d.name, path, sizeof(path));
	broker_tag_device(be->broker, &e->tag, d.name, path);
	return 0;
}

static int sim_destroy(struct backend *be, struct tag_entry *e)
{
	struct backend_sim *bs = to_sim(be);
	tagmem_tag tag = e->tag; /* e may be freed by the events below */
	unsigned region = e->region;
	char path[PATH_MAX];
	uint64_t size;
	unsigned n;
	int r;

	if (!e->device[0])
		return -ENODEV;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/size", e->device);
	r = sysfs_write(bs->fs, path, "0");
	if (r < 0)
		return r;
	r = sim_kernel_size_written(bs->sim, e->device);
	if (r < 0)
		return r;
	/* A deferred release completes when the device goes: see whether the extents went. */
	r = tag_extents(bs, &tag, region, &size, &n);
	if (r < 0)
		return r;
	if (n == 0)
		broker_tag_gone(be->broker, &tag);
	return 0;
}

static int sim_fm_add_op(struct backend *be, uint64_t size, const tagmem_tag *tag, bool shared,
			 unsigned *ret_region, unsigned *ret_nextents)
{
	struct backend_sim *bs = to_sim(be);
	struct sim_alloc a;
	int r;

	r = sim_fm_add(bs->sim, size, tag, shared, &a);
	if (r < 0)
		return r;
	*ret_region = a.region;
	*ret_nextents = a.nextents;
	drain_events(bs);
	return 0;
}

static int sim_fm_release_op(struct backend *be, const tagmem_tag *tag)
{
	struct backend_sim *bs = to_sim(be);
	int r;

	r = sim_fm_release(bs->sim, tag);
	if (r < 0)
		return r;
	drain_events(bs);
	return r;
}

static const char *sim_root_op(struct backend *be)
{
	return sysfs_root(to_sim(be)->fs);
}

static void sim_free(struct backend *be)
{
	struct backend_sim *bs = to_sim(be);

	sim_close(bs->sim);
	sysfs_close(bs->fs);
	free(bs);
}

static const struct backend_ops sim_ops = {
	.name = "sim",
	.scan = sim_scan,
	.materialise = sim_materialise,
	.destroy = sim_destroy,
	.fm_add = sim_fm_add_op,
	.fm_release = sim_fm_release_op,
	.root = sim_root_op,
	.free = sim_free,
};

int backend_sim_new(struct broker *b, struct backend **ret)
{
	struct sim_options opts = { .region_size = b->settings.sim_region_size };
	struct backend_sim *bs;
	int r;

	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return -ENOMEM;
	bs->be.ops = &sim_ops;
	bs->be.broker = b;
	opts.legacy_tag_attr = getenv("TAGMEM_SIM_LEGACY_TAG") != NULL;
	r = sim_open(b->settings.sim_root, &opts, &bs->sim);
	if (r < 0)
		goto fail;
	r = sysfs_open(b->settings.sim_root, &bs->fs);
	if (r < 0)
		goto fail;
	*ret = &bs->be;
	return 0;
fail:
	sim_close(bs->sim);
	free(bs);
	return r;
}
