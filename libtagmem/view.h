/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The view: which device carries which tag, under one sysfs root. It is the single answer
 * to that question for everything in tagmem — brokerd's backends (host and simulated),
 * daemonless `tagmem lookup` and the udev helper tagmem-id — so that a by-tag link, a
 * daemonless lookup and brokerd can never name different devices. Internal; not installed.
 *
 * The rules, in one place (view.c):
 *   - CXL DCD: a tag is the set of tagged extents sharing a uuid; a dax device carries the
 *     tag only if it claimed that uuid and its size equals the sum of those extents (a
 *     device caught half-way through a claim, or holding something else, names nothing).
 *   - NVDIMM: a namespace with a label uuid carries it through its block or devdax device,
 *     if the namespace policy admits it (default: label name "tagmem" or "tagmem-…").
 *   - NVDIMM without a label (capacity brokerd must not write into, e.g. a DCD tag handed
 *     to a VM): the tag the hypervisor names for the DIMM's slot (slots.h), unless the
 *     policy is "none".
 *   - A tag present as both is the DCD tag: the namespace would be a second name for it.
 */
#ifndef TAGMEM_VIEW_H
#define TAGMEM_VIEW_H

#include "dcd.h"
#include "nd.h"

enum view_nd_policy {
	VIEW_ND_TAGMEM, /* namespaces whose label is named "tagmem" or "tagmem-…" (the default) */
	VIEW_ND_ALL,    /* every namespace with a label uuid */
	VIEW_ND_NONE,   /* no namespaces */
};
#define VIEW_ND_DEFAULT VIEW_ND_TAGMEM

/* "tagmem", "all", "none" → policy; -EINVAL otherwise. */
int view_nd_policy_parse(const char *s, enum view_nd_policy *ret);

enum view_source { VIEW_SOURCE_CXL, VIEW_SOURCE_NVDIMM };

struct view_tag {
	tagmem_tag tag;
	enum view_source source;
	unsigned region;             /* DCD region (cxl) */
	bool shared;                 /* on a sharable DCD region: other hosts see the bytes */
	uint64_t size;               /* cxl: sum of the extents; nvdimm: the device's size */
	unsigned nextents;           /* cxl: extents; nvdimm: 1 */
	char device[DCD_NAME_MAX];   /* "dax3.1", "pmem0"; "" while no device carries it */
	enum nd_kind kind;           /* ND_KIND_DAX or ND_KIND_PMEM once there is a device */
	char ns[32];                 /* nvdimm: the namespace */
	bool from_slot;              /* nvdimm: label-less, named by the hypervisor's slot map */
};

struct view {
	struct view_tag *tags;       /* sorted by tag */
	size_t n, cap;
	size_t skipped;              /* unreadable sysfs entries passed over */
};

struct view_options {
	enum view_nd_policy nd_policy;
	/* The usable size of a devdax namespace's device (libdaxctl's answer on a real host);
	 * NULL or 0 keeps the namespace's size. */
	uint64_t (*dax_size)(const char *device, void *userdata);
	void *userdata;
};

/* Build the view of everything under the root. Unreadable entries are skipped and counted. */
int view_build(struct sysfs *s, const struct view_options *opts, struct view *ret);
/* The same from a DCD snapshot the caller read (dcd_cache_scan): its extents get sorted. */
int view_build_with(struct sysfs *s, const struct view_options *opts,
		    struct dcd_snapshot *snap, struct view *ret);
void view_clear(struct view *v);
/* The DCD part of a view from a snapshot the caller also keeps (its extents get sorted by
 * tag); into an empty view. */
int view_add_dcd_snapshot(struct view *v, struct dcd_snapshot *snap);
struct view_tag *view_find(const struct view *v, const tagmem_tag *tag);
/* The tag a device ("pmem0", "dax3.1") carries, if any. */
const struct view_tag *view_find_device(const struct view *v, const char *device);

/*
 * The tag of the block or dax device at devpath (a sysfs path under the root: udev's DEVPATH
 * "/devices/.../pmem0", or "sys/class/block/pmem0"): the view's answer for that device.
 * -ENODATA when the view gives it no tag; -EXDEV for a link that leads out of the tree.
 * A DCD dax device costs its own attributes (uuid, size, mappings), not the whole view: udev
 * runs this once per device event, and a host may hold thousands of extents.
 */
int view_device_tag(struct sysfs *s, const struct view_options *opts, const char *devpath,
		    struct view_tag *ret);

/* The DCD rule, for callers that learn extents one event at a time instead of by scan. */
bool view_dcd_device_carries(const struct dcd_daxdev *d, const tagmem_tag *tag,
			     uint64_t extents_size);
/* The namespace rule. */
/* Is a namespace label's name tagmem's: "tagmem" or "tagmem-…" (adopt and the policy alike)? */
bool view_name_is_tagmem(const char *name);
bool view_namespace_admitted(const struct nd_namespace *ns, enum view_nd_policy policy);

/* The device node of a device under the root: "/dev/dax0.1", "<root>/dev/dax0.1". */
int view_device_path(const char *root, const char *device, char *buf, size_t len);

#endif
