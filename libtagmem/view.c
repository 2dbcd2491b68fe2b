/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The view of tagged devices under a sysfs root: see view.h for the rules. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"
#include "util.h"
#include "view.h"

int view_nd_policy_parse(const char *s, enum view_nd_policy *ret)
{
	if (!strcmp(s, "tagmem"))
		*ret = VIEW_ND_TAGMEM;
	else if (!strcmp(s, "all"))
		*ret = VIEW_ND_ALL;
	else if (!strcmp(s, "none"))
		*ret = VIEW_ND_NONE;
	else
		return -EINVAL;
	return 0;
}

bool view_dcd_device_carries(const struct dcd_daxdev *d, const tagmem_tag *tag,
			     uint64_t extents_size)
{
	/* a seed (size 0) may hold a uuid just written to it; it carries nothing yet */
	return d->tagged && d->size && extents_size && d->size == extents_size &&
	       !tagmem_tag_compare(&d->tag, tag);
}

bool view_name_is_tagmem(const char *name)
{
	/* "tagmem" itself (what the QEMU adapter writes) or "tagmem-…": "tagmemEVIL" is another
	 * owner's name that merely begins the same */
	return !strcmp(name, "tagmem") || !strncmp(name, "tagmem-", 7);
}

bool view_namespace_admitted(const struct nd_namespace *ns, enum view_nd_policy policy)
{
	if (!ns->tagged)
		return false;
	if (ns->from_slot)
		return policy != VIEW_ND_NONE; /* the hypervisor named it a tagmem tag */
	switch (policy) {
	case VIEW_ND_ALL: return true;
	case VIEW_ND_NONE: return false;
	case VIEW_ND_TAGMEM: break;
	}
	return view_name_is_tagmem(ns->alt_name);
}

int view_device_path(const char *root, const char *device, char *buf, size_t len)
{
	size_t rl = strlen(root);
	int n = snprintf(buf, len, "%.*s/dev/%s", (int)(rl && root[rl - 1] == '/' ? rl - 1 : rl),
			 root, device);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int cmp_extent_tag(const void *a, const void *b)
{
	return tagmem_tag_compare(&((const struct dcd_extent *)a)->tag,
				  &((const struct dcd_extent *)b)->tag);
}

static int cmp_view_tag(const void *a, const void *b)
{
	return tagmem_tag_compare(&((const struct view_tag *)a)->tag,
				  &((const struct view_tag *)b)->tag);
}

struct view_tag *view_find(const struct view *v, const tagmem_tag *tag)
{
	struct view_tag key = { .tag = *tag };

	return v->n ? bsearch(&key, v->tags, v->n, sizeof(key), cmp_view_tag) : NULL;
}

const struct view_tag *view_find_device(const struct view *v, const char *device)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->tags[i].device[0] && !strcmp(v->tags[i].device, device))
			return &v->tags[i];
	return NULL;
}

static struct view_tag *view_append(struct view *v, const tagmem_tag *tag)
{
	if (grow_array(&v->tags, &v->cap, v->n, sizeof(*v->tags)) < 0)
		return NULL;
	memset(&v->tags[v->n], 0, sizeof(v->tags[0]));
	v->tags[v->n].tag = *tag;
	return &v->tags[v->n++];
}

/* DCD: extents grouped by tag (sorted, so 10,000 extents stay O(n log n)), then the devices
 * that claimed them. */
int view_add_dcd_snapshot(struct view *v, struct dcd_snapshot *snap)
{
	int r = 0;

	v->skipped += snap->skipped;
	if (snap->nextents)
		qsort(snap->extents, snap->nextents, sizeof(*snap->extents), cmp_extent_tag);
	for (size_t i = 0; i < snap->nextents; i++) {
		struct dcd_extent *e = &snap->extents[i];
		struct view_tag *t = v->n ? &v->tags[v->n - 1] : NULL;

		if (!e->tagged)
			continue;
		if (!t || tagmem_tag_compare(&t->tag, &e->tag)) {
			t = view_append(v, &e->tag);
			if (!t) {
				r = -ENOMEM;
				break;
			}
			t->source = VIEW_SOURCE_CXL;
			t->region = e->region;
			for (size_t k = 0; k < snap->nregions; k++)
				if (snap->regions[k].id == e->region)
					t->shared = snap->regions[k].sharable;
		}
		t->size += e->length;
		t->nextents++;
	}
	for (size_t i = 0; i < snap->ndevs && r >= 0; i++) {
		struct dcd_daxdev *d = &snap->devs[i];
		struct view_tag *t = d->tagged ? view_find(v, &d->tag) : NULL;

		if (t && view_dcd_device_carries(d, &t->tag, t->size)) {
			snprintf(t->device, sizeof(t->device), "%s", d->name);
			t->kind = ND_KIND_DAX;
		}
	}
	return r;
}

/* NVDIMM namespaces (few): appended, then the whole view is sorted again. */
static int add_namespaces(struct sysfs *s, const struct view_options *o, struct view *v)
{
	_cleanup_free_ struct slot_map *slots = NULL;
	struct nd_namespace *ns = NULL;
	size_t n = 0, before = v->n;
	int r = nd_scan(s, &ns, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct view_tag *t;

		if (ns[i].device[0] && !ns[i].tagged && ns[i].dimm_slot >= 0 &&
		    o->nd_policy != VIEW_ND_NONE) {
			/* label-less: the tag, if any, is the one the hypervisor named for its slot */
			const tagmem_tag *named;

			if (!slots && (slots = malloc(sizeof(*slots))) && slot_map_read(s, slots) < 0)
				slot_map_init(slots);
			named = slots ? slot_map_get(slots, (unsigned)ns[i].dimm_slot) : NULL;
			if (named) {
				ns[i].tag = *named;
				ns[i].tagged = true;
				ns[i].from_slot = true;
			}
		}
		if (!ns[i].device[0] || !view_namespace_admitted(&ns[i], o->nd_policy))
			continue;
		if (view_find(v, &ns[i].tag))
			continue; /* a DCD tag wins: the namespace would be a second name for it */
		t = view_append(v, &ns[i].tag);
		if (!t) {
			r = -ENOMEM;
			break;
		}
		t->source = VIEW_SOURCE_NVDIMM;
		t->size = ns[i].size;
		t->nextents = 1;
		t->kind = ns[i].kind;
		snprintf(t->device, sizeof(t->device), "%s", ns[i].device);
		snprintf(t->ns, sizeof(t->ns), "%s", ns[i].name);
		t->from_slot = ns[i].from_slot;
		if (ns[i].kind == ND_KIND_DAX) {
			uint64_t sz = o->dax_size ? o->dax_size(ns[i].device, o->userdata) : 0;
			if (sz)
				t->size = sz; /* usable size: the namespace minus its metadata */
		} else {
			char path[96];
			uint64_t sectors;
			snprintf(path, sizeof(path), "sys/class/block/%s/size", ns[i].device);
			if (sysfs_read_u64(s, path, &sectors) == 0)
				t->size = sectors * 512;
		}
	}
	free(ns);
	if (v->n != before)
		qsort(v->tags, v->n, sizeof(*v->tags), cmp_view_tag);
	return r;
}

int view_build_with(struct sysfs *s, const struct view_options *opts,
		    struct dcd_snapshot *snap, struct view *ret)
{
	static const struct view_options defaults = { .nd_policy = VIEW_ND_DEFAULT };
	struct view v = { 0 };
	int r;

	if (!opts)
		opts = &defaults;
	r = view_add_dcd_snapshot(&v, snap);
	if (r >= 0)
		r = add_namespaces(s, opts, &v);
	if (r < 0) {
		view_clear(&v);
		return r;
	}
	*ret = v;
	return 0;
}

int view_build(struct sysfs *s, const struct view_options *opts, struct view *ret)
{
	struct dcd_snapshot snap;
	int r = dcd_scan(s, &snap);

	if (r < 0)
		return r;
	r = view_build_with(s, opts, &snap, ret);
	dcd_snapshot_clear(&snap);
	return r;
}

void view_clear(struct view *v)
{
	free(v->tags);
	memset(v, 0, sizeof(*v));
}

/* Path relative to the sysfs root, of the canonical (symlink-free) location of devpath. */
static int canonical(struct sysfs *s, const char *devpath, char *buf, size_t len)
{
	char full[PATH_MAX], real[PATH_MAX], rootreal[PATH_MAX];
	const char *p = devpath;
	size_t rl;

	while (*p == '/')
		p++;
	/* udev's DEVPATH is relative to /sys; accept "sys/..." too */
	if (strncmp(p, "sys/", 4))
		snprintf(full, sizeof(full), "%s/sys/%s", sysfs_root(s), p);
	else
		snprintf(full, sizeof(full), "%s/%s", sysfs_root(s), p);
	if (!realpath(full, real) || !realpath(sysfs_root(s), rootreal))
		return -errno;
	rl = strlen(rootreal);
	if (rl == 1)
		rl = 0; /* root "/" */
	if (strncmp(real, rootreal, rl) || real[rl] != '/')
		return -EXDEV; /* a link out of the tree: not a device we name */
	snprintf(buf, len, "%s", real + rl + 1);
	return 0;
}

/* Is the device's parent a DCD dax region ("…/dax_region4/dax4.1")? base is the device's
 * name within path. */
static bool under_dax_region(const char *path, const char *base)
{
	const char *slash = base - 1, *p = slash;

	if (base == path)
		return false;
	while (p > path && p[-1] != '/')
		p--;
	return slash - p > 10 && !strncmp(p, "dax_region", 10);
}

/* The extents' total of a tag in one region, by reading that region's extents: for a device
 * whose mappings are not listed. */
static int region_tag_size(struct sysfs *s, unsigned region, const tagmem_tag *tag,
			   uint64_t *ret_size, unsigned *ret_n)
{
	struct dcd_snapshot snap = { 0 };
	int r = dcd_scan_region_extents(s, region, &snap);

	*ret_size = 0;
	*ret_n = 0;
	for (size_t i = 0; i < snap.nextents && r >= 0; i++)
		if (snap.extents[i].tagged && !tagmem_tag_compare(&snap.extents[i].tag, tag)) {
			*ret_size += snap.extents[i].length;
			(*ret_n)++;
		}
	dcd_snapshot_clear(&snap);
	return r;
}

/*
 * A DCD dax device answers for itself, at the cost of its own attributes: its uuid, its size,
 * its mappings (one per extent it claimed) and its region. The kernel claims a tag's extents
 * all at once and refuses to resize the device, so a device whose mappings add up to its
 * size holds its whole tag. Without listed mappings, the region's extents of that tag are
 * summed instead (the rule of the whole view).
 */
static int dcd_device_tag(struct sysfs *s, const char *name, struct view_tag *ret)
{
	struct view_tag t = { .source = VIEW_SOURCE_CXL, .kind = ND_KIND_DAX };
	struct dcd_daxdev d;
	struct dcd_region rg;
	uint64_t total;
	unsigned n;
	int r;

	r = dcd_read_daxdev(s, name, &d);
	if (r < 0)
		return r;
	if (!d.tagged || !d.size)
		return -ENODATA;
	r = dcd_read_region(s, d.region, &rg);
	if (r < 0)
		return r == -ENOENT ? -ENODATA : r;
	r = dcd_read_mappings(s, name, &total, &n);
	if (r >= 0 && n == 0)
		r = region_tag_size(s, d.region, &d.tag, &total, &n);
	if (r < 0)
		return r;
	if (!view_dcd_device_carries(&d, &d.tag, total))
		return -ENODATA;
	t.tag = d.tag;
	t.region = d.region;
	t.shared = rg.sharable;
	t.size = total;
	t.nextents = n;
	memcpy(t.device, d.name, sizeof(t.device)); /* dcd_read_daxdev bounded it */
	*ret = t;
	return 0;
}

int view_device_tag(struct sysfs *s, const struct view_options *opts, const char *devpath,
		    struct view_tag *ret)
{
	char path[PATH_MAX];
	const struct view_tag *t;
	const char *base;
	struct view v;
	int r;

	r = canonical(s, devpath, path, sizeof(path));
	if (r < 0)
		return r;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strncmp(base, "pmem", 4) && strncmp(base, "dax", 3))
		return -ENODATA;
	/* a DCD dax device is the child of its dax_regionN; a namespace's dax device is not
	 * (and v11 shows a null uuid on every dax device, so the attribute alone cannot say) */
	if (!strncmp(base, "dax", 3) && under_dax_region(path, base))
		return dcd_device_tag(s, base, ret);
	/* a namespace's device: the whole view, since a DCD tag of the same uuid wins */
	r = view_build(s, opts, &v);
	if (r < 0)
		return r;
	t = view_find_device(&v, base);
	if (t)
		*ret = *t;
	view_clear(&v);
	return t ? 0 : -ENODATA;
}
