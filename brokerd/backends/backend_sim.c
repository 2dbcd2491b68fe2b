/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The simulated DCD backend. It drives sim.c the way the real backend drives the kernel:
 * it reads extents and devices through the shared sysfs/DCD reader, claims a tag by writing
 * it to the seed device's "uuid", destroys a device by writing its "size", and learns about
 * capacity from trace records. Only the three "kernel reacts" calls are simulator-specific.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "fabric_link.h"
#include "log.h"
#include "sim.h"
#include "util.h"
#include "view.h"

/*
 * The extents the backend has read, so that an event costs what it names and not a re-read
 * of the region: a 10,000-extent region must not turn every add into 30,000 file reads.
 */
struct extent_index {
	struct dcd_extent *ext;
	size_t n, cap;
	unsigned next_id[SIM_REGIONS]; /* where the next new extent is most likely named */
};

struct backend_sim {
	struct backend be;
	struct sim *sim;
	struct fabric_link *link;  /* capacity from a shared fabric manager, or NULL */
	char no_fm[PATH_MAX + 128];
	struct sysfs *fs; /* the broker's own reader, separate from the simulator's */
	struct extent_index idx;
	struct view batch; /* tags the records drained so far named, for one reconcile */
};

#define to_sim(be) ((struct backend_sim *)(be))

static int index_add(struct extent_index *x, const struct dcd_extent *e)
{
	if (grow_array(&x->ext, &x->cap, x->n, sizeof(*x->ext)) < 0)
		return -ENOMEM;
	x->ext[x->n++] = *e;
	if (e->region < SIM_REGIONS && e->id >= x->next_id[e->region])
		x->next_id[e->region] = e->id + 1;
	return 0;
}

static struct dcd_extent *index_find_dpa(struct extent_index *x, unsigned region,
					 uint64_t offset)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->ext[i].region == region && x->ext[i].offset == offset)
			return &x->ext[i];
	return NULL;
}

static bool index_has_id(struct extent_index *x, unsigned region, unsigned id)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->ext[i].region == region && x->ext[i].id == id)
			return true;
	return false;
}

/* Sum a tag's extents as the index knows them. */
static void index_tag_sum(struct extent_index *x, const tagmem_tag *tag, uint64_t *ret_size,
			  unsigned *ret_n)
{
	uint64_t size = 0;
	unsigned n = 0;

	for (size_t i = 0; i < x->n; i++)
		if (x->ext[i].tagged && !tagmem_tag_compare(&x->ext[i].tag, tag)) {
			size += x->ext[i].length;
			n++;
		}
	*ret_size = size;
	*ret_n = n;
}

/* Forget the tag's extents that are gone from sysfs. */
static void index_prune_tag(struct backend_sim *bs, const tagmem_tag *tag)
{
	struct extent_index *x = &bs->idx;

	for (size_t i = 0; i < x->n;) {
		struct dcd_extent *e = &x->ext[i];
		char dir[128];

		if (e->tagged && !tagmem_tag_compare(&e->tag, tag)) {
			snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u/extent%u.%u",
				 e->region, e->region, e->id);
			if (!sysfs_exists(bs->fs, dir)) {
				*e = x->ext[--x->n];
				continue;
			}
		}
		i++;
	}
}

/*
 * An add record names a DPA range; find the extent that holds it. New extents are usually
 * the next id, so try that first (checking it really is this range); otherwise list the
 * region and read only the names the index does not know.
 */
static int learn_extent(struct backend_sim *bs, const struct dcd_event *ev)
{
	struct extent_index *x = &bs->idx;
	struct dcd_extent e;
	char dir[96], prefix[32];
	char **names = NULL;
	size_t n = 0;
	int r;

	if (index_find_dpa(x, ev->region, ev->dpa_start))
		return 0;
	if (ev->region < SIM_REGIONS &&
	    dcd_read_extent(bs->fs, ev->region, x->next_id[ev->region], &e) == 0 &&
	    e.offset == ev->dpa_start && e.length == ev->length)
		return index_add(x, &e);

	snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u", ev->region);
	snprintf(prefix, sizeof(prefix), "extent%u.", ev->region);
	r = sysfs_list(bs->fs, dir, prefix, &names, &n);
	for (size_t i = 0; i < n && r >= 0; i++) {
		unsigned a, id;
		if (sysfs_parse_dotted(names[i], "extent", &a, &id) < 0 || a != ev->region ||
		    index_has_id(x, a, id) || dcd_read_extent(bs->fs, a, id, &e) < 0)
			continue;
		r = index_add(x, &e);
	}
	sysfs_names_free(names, n);
	return r;
}

static bool region_sharable(struct backend_sim *bs, unsigned region)
{
	struct dcd_region rg;

	return dcd_read_region(bs->fs, region, &rg) == 0 && rg.sharable;
}

/* What the batch knows of a tag: the index's sums (devices are the materialiser's). */
static int batch_note(struct backend_sim *bs, const tagmem_tag *tag, unsigned region)
{
	struct view *v = &bs->batch;
	struct view_tag *t = NULL;

	for (size_t i = 0; i < v->n && !t; i++)
		if (!tagmem_tag_compare(&v->tags[i].tag, tag))
			t = &v->tags[i];
	if (!t) {
		if (grow_array(&v->tags, &v->cap, v->n, sizeof(*v->tags)) < 0)
			return -ENOMEM;
		t = &v->tags[v->n++];
		memset(t, 0, sizeof(*t));
		t->tag = *tag;
		t->region = region;
		t->shared = region_sharable(bs, region);
	}
	index_tag_sum(&bs->idx, tag, &t->size, &t->nextents);
	return 0;
}

/* Hand what the batch learned to the core: one reconcile, so a tag whose extents arrive in
 * several records is materialised once, after the last. */
static void batch_flush(struct backend_sim *bs)
{
	if (!bs->batch.n)
		return;
	core_reconcile(bs->be.core, &bs->batch, sysfs_root(bs->fs), CORE_VIEW_PARTIAL);
	bs->batch.n = 0;
}

/* A trace record arrived: re-read what it names and report the truth, not the record. */
static void handle_event(struct backend_sim *bs, const struct dcd_event *ev)
{
	struct core *core = bs->be.core;
	uint64_t size;
	unsigned n;
	int r;

	switch (ev->type) {
	case DCD_EVENT_ADD:
		r = learn_extent(bs, ev);
		if (r < 0) {
			log_err("Failed to read the extent at DPA %#llx of region %u: %s, ignoring",
				(unsigned long long)ev->dpa_start, ev->region, strerror(-r));
			return;
		}
		if (!ev->tagged) {
			core_untagged(core, (int64_t)ev->length);
			return;
		}
		if (batch_note(bs, &ev->tag, ev->region) < 0)
			log_err("Out of memory noting a tag, ignoring");
		break;
	case DCD_EVENT_RELEASE:
	case DCD_EVENT_FORCED_RELEASE:
		if (!ev->tagged) {
			core_untagged(core, -(int64_t)ev->length);
			return;
		}
		batch_flush(bs); /* what came before the release, first */
		index_prune_tag(bs, &ev->tag);
		index_tag_sum(&bs->idx, &ev->tag, &size, &n);
		if (n == 0)
			core_gone(core, &ev->tag);
		else
			core_release_request(core, &ev->tag);
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
	batch_flush(bs);
}

static void link_changed(void *data)
{
	drain_events(data);
}

static int sim_scan(struct backend *be)
{
	struct backend_sim *bs = to_sim(be);
	struct dcd_snapshot snap;
	struct view v = { 0 };
	int64_t untagged = 0;
	int r;

	r = dcd_scan(bs->fs, &snap);
	if (r < 0)
		return r;
	for (size_t i = 0; i < snap.nextents && r >= 0; i++) {
		r = index_add(&bs->idx, &snap.extents[i]);
		if (!snap.extents[i].tagged)
			untagged += (int64_t)snap.extents[i].length;
	}
	if (r >= 0)
		r = view_add_dcd_snapshot(&v, &snap);
	if (r < 0) {
		dcd_snapshot_clear(&snap);
		view_clear(&v);
		return r;
	}
	if (untagged)
		core_untagged(be->core, untagged);
	core_reconcile(be->core, &v, sysfs_root(bs->fs), CORE_VIEW_COMPLETE);
	/* releases the fabric manager asked for while a device held the tag */
	for (size_t i = 0; i < v.n; i++)
		if (v.tags[i].device[0] && sim_release_pending(bs->sim, &v.tags[i].tag))
			core_release_request(be->core, &v.tags[i].tag);
	if (v.skipped)
		log_err("%zu unreadable entries under %s skipped, ignoring", v.skipped,
			sysfs_root(bs->fs));
	dcd_snapshot_clear(&snap);
	view_clear(&v);
	drain_events(bs); /* records queued before the scan describe what it already saw */
	/* what the manager says this host has now comes after what it had */
	if (be->settings->fabric_dir && !bs->link)
		return fabric_link_new(be->loop, bs->sim, be->settings->fabric_dir,
				       be->settings->host_id, link_changed, bs, &bs->link);
	return 0;
}

static int sim_materialise(struct backend *be, const struct tag *t, struct core_device *ret)
{
	struct backend_sim *bs = to_sim(be);
	struct dcd_region rg;
	struct dcd_daxdev d;
	char path[PATH_MAX];
	int r;

	r = dcd_read_region(bs->fs, t->cap.region, &rg);
	if (r < 0)
		return r;
	if (!rg.seed[0])
		return -ENODEV;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
	r = sysfs_write(bs->fs, path, t->tag_str);
	if (r < 0)
		return r;
	r = sim_kernel_seed_written(bs->sim, t->cap.region);
	if (r < 0)
		return r;
	r = dcd_read_daxdev(bs->fs, rg.seed, &d);
	if (r < 0)
		return r;
	if (!view_dcd_device_carries(&d, &t->tag, t->cap.size))
		return -EIO;
	snprintf(ret->name, sizeof(ret->name), "%s", d.name);
	r = view_device_path(sysfs_root(bs->fs), d.name, ret->path, sizeof(ret->path));
	return r < 0 ? r : 1;
}

static int sim_destroy(struct backend *be, const struct tag *t)
{
	struct backend_sim *bs = to_sim(be);
	char path[PATH_MAX];
	uint64_t size;
	unsigned n;
	int r;

	if (!t->cap.device[0])
		return -ENODEV;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/size", t->cap.device);
	r = sysfs_write(bs->fs, path, "0");
	if (r < 0)
		return r;
	r = sim_kernel_size_written(bs->sim, t->cap.device);
	if (r < 0)
		return r;
	/* A deferred release completes when the device goes: see whether the extents went. */
	index_prune_tag(bs, &t->tag);
	index_tag_sum(&bs->idx, &t->tag, &size, &n);
	return n == 0;
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

	fabric_link_free(bs->link);
	sim_close(bs->sim);
	sysfs_close(bs->fs);
	free(bs->idx.ext);
	view_clear(&bs->batch);
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

static const char *fabric_no_fm(struct backend *be)
{
	return to_sim(be)->no_fm;
}

/* One host of a fabric several share: the same kernel emulation, fed by tagmem-fmd. */
static const struct backend_ops sim_fabric_ops = {
	.name = "sim (shared fabric)",
	.scan = sim_scan,
	.materialise = sim_materialise,
	.destroy = sim_destroy,
	.no_fm = fabric_no_fm,
	.root = sim_root_op,
	.free = sim_free,
};

int backend_sim_new(struct core *core, struct loop *loop, const struct broker_settings *set,
		    struct backend **ret)
{
	struct sim_options opts = { .region_size = set->sim_region_size };
	struct backend_sim *bs;
	int r = 0;

	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return -ENOMEM;
	bs->be = (struct backend){ .ops = &sim_ops, .core = core, .loop = loop, .settings = set };
	opts.series = set->sim_dcd;
	if (set->fabric_dir) {
		char bytes[PATH_MAX];

		bs->be.ops = &sim_fabric_ops;
		snprintf(bs->no_fm, sizeof(bs->no_fm), "this host (%s) gets its capacity from the "
			 "fabric manager in %s: drive that one, with 'tagmem fm --fabric %s ... "
			 "--host %s'", set->host_id, set->fabric_dir, set->fabric_dir, set->host_id);
		snprintf(bytes, sizeof(bytes), "%s/bytes", set->fabric_dir);
		opts.bytes_dir = bytes;
		r = sim_open(set->sim_root, &opts, &bs->sim);
		opts.bytes_dir = NULL;
		if (r < 0)
			goto fail;
	}
	if (!bs->sim)
		r = sim_open(set->sim_root, &opts, &bs->sim);
	if (r < 0)
		goto fail;
	r = sysfs_open(set->sim_root, &bs->fs);
	if (r < 0)
		goto fail;
	*ret = &bs->be;
	return 0;
fail:
	sim_close(bs->sim);
	free(bs);
	return r;
}
