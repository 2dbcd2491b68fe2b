/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A DCD scan that reads only the extents it has not read before: see dcd.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcd.h"
#include "util.h"

struct cached_extent {
	uint64_t ino;
	struct dcd_extent e;
};

struct dcd_cache {
	struct cached_extent *ext; /* sorted by (region, id) */
	size_t n, cap;
};

int dcd_cache_new(struct dcd_cache **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

struct dcd_cache *dcd_cache_free(struct dcd_cache *c)
{
	if (c) {
		free(c->ext);
		free(c);
	}
	return NULL;
}

static int cmp_cached(const void *a, const void *b)
{
	const struct dcd_extent *x = &((const struct cached_extent *)a)->e;
	const struct dcd_extent *y = &((const struct cached_extent *)b)->e;

	if (x->region != y->region)
		return x->region < y->region ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static const struct cached_extent *cache_find(const struct dcd_cache *c, unsigned region,
					      unsigned id)
{
	struct cached_extent key = { .e = { .region = region, .id = id } };

	return c->n ? bsearch(&key, c->ext, c->n, sizeof(key), cmp_cached) : NULL;
}

/* One region's extents into the new cache: copied when the same directory was read before,
 * read otherwise. */
static int scan_region(struct sysfs *s, const struct dcd_cache *old, struct dcd_cache *new,
		       unsigned region, struct dcd_snapshot *snap, struct dcd_cache_stats *st)
{
	char dir[96], prefix[32];
	struct sysfs_entry *ent;
	size_t n;
	int r;

	snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u", region);
	snprintf(prefix, sizeof(prefix), "extent%u.", region);
	r = sysfs_list_entries(s, dir, prefix, &ent, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const struct cached_extent *known;
		struct cached_extent ce = { .ino = ent[i].ino };
		unsigned a, b;

		if (sysfs_parse_dotted(ent[i].name, "extent", &a, &b) < 0 || a != region) {
			snap->skipped++;
			continue;
		}
		known = cache_find(old, region, b);
		if (known && known->ino == ent[i].ino) {
			ce.e = known->e;
			st->kept++;
		} else if (dcd_read_extent(s, region, b, &ce.e) == 0) {
			st->read++;
		} else {
			snap->skipped++; /* not remembered: read again next time */
			continue;
		}
		r = grow_array(&new->ext, &new->cap, new->n, sizeof(*new->ext));
		if (r >= 0)
			new->ext[new->n++] = ce;
	}
	sysfs_entries_free(ent, n);
	return r;
}

/* Append the cached extents of new to snap. */
static int snapshot_extents(struct dcd_snapshot *snap, const struct dcd_cache *new)
{
	struct dcd_extent *e;

	if (!new->n)
		return 0;
	e = realloc(snap->extents, (snap->nextents + new->n) * sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < new->n; i++)
		e[snap->nextents + i] = new->ext[i].e;
	snap->extents = e;
	snap->nextents += new->n;
	return 0;
}

/* One region's extents, all read (a cache that knows nothing): the same listing the cached
 * scan makes, for readers that look once. */
int dcd_scan_region_extents(struct sysfs *s, unsigned region, struct dcd_snapshot *snap)
{
	struct dcd_cache none = { 0 }, new = { 0 };
	struct dcd_cache_stats st = { 0 };
	int r = scan_region(s, &none, &new, region, snap, &st);

	if (r >= 0 && new.n) /* in id order, as the kernel made them */
		qsort(new.ext, new.n, sizeof(*new.ext), cmp_cached);
	if (r >= 0)
		r = snapshot_extents(snap, &new);
	free(new.ext);
	return r;
}

int dcd_cache_scan(struct sysfs *s, struct dcd_cache *c, struct dcd_snapshot *ret,
		   struct dcd_cache_stats *ret_stats)
{
	struct dcd_snapshot snap = { 0 };
	struct dcd_cache new = { 0 };
	struct dcd_cache_stats st = { 0 };
	int r = dcd_scan_regions(s, &snap);

	for (size_t i = 0; i < snap.nregions && r >= 0; i++)
		r = scan_region(s, c, &new, snap.regions[i].id, &snap, &st);
	if (r >= 0)
		r = dcd_scan_devices(s, &snap);
	if (r >= 0 && new.n)
		qsort(new.ext, new.n, sizeof(*new.ext), cmp_cached);
	if (r >= 0)
		r = snapshot_extents(&snap, &new);
	if (r < 0) {
		free(new.ext);
		dcd_snapshot_clear(&snap);
		return r; /* the cache stays as it was */
	}
	free(c->ext);
	*c = new;
	*ret = snap;
	if (ret_stats)
		*ret_stats = st;
	return 0;
}
