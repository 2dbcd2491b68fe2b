/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's view of Dynamic Capacity, read from a sysfs tree (see sysfs.h) exactly as
 * the kernel's DCD patch series lays it out (v3 to v11):
 *   sys/bus/cxl/devices/dax_regionX/extentX.Y/{offset,length,uuid|tag}
 *   sys/bus/cxl/devices/dax_regionX/dax_region/seed      name of the seed dax device
 *   sys/bus/dax/devices/daxX.Y/{size,uuid}               a dax device and the tag it claimed
 *   dev/daxX.Y                                           its character device
 * Shared by brokerd's backends and daemonless resolution. Internal; not installed.
 */
#ifndef TAGMEM_DCD_H
#define TAGMEM_DCD_H

#include "sysfs.h"

#define DCD_CXL_DEVICES "sys/bus/cxl/devices"
#define DCD_DAX_DEVICES "sys/bus/dax/devices"
#define DCD_ALIGN (2u << 20) /* extents are 2 MiB aligned */
#define DCD_NAME_MAX 32

struct dcd_extent {
	unsigned region, id;
	uint64_t offset, length;
	bool tagged;
	tagmem_tag tag;
};

struct dcd_daxdev {
	char name[DCD_NAME_MAX]; /* "dax3.1" */
	unsigned region, id;
	uint64_t size;
	bool tagged;
	tagmem_tag tag;
};

struct dcd_region {
	unsigned id;
	char partition[24];  /* the parent CXL region's mode, "" when not stated */
	bool sharable; /* capacity other hosts see too: must stay devdax and carry a tag */
	char seed[DCD_NAME_MAX];
};

/*
 * One extent. Generation differences are absorbed here: the tag attribute is "uuid" (v9+)
 * or "tag" (v3–v8); an absent attribute means the extent is untagged. Offsets and lengths
 * must be 2 MiB aligned and non-empty, or the extent is refused (-EINVAL).
 */
int dcd_read_extent(struct sysfs *s, unsigned region, unsigned id, struct dcd_extent *ret);
int dcd_read_daxdev(struct sysfs *s, const char *name, struct dcd_daxdev *ret);
int dcd_read_region(struct sysfs *s, unsigned region, struct dcd_region *ret);

/*
 * One record of the cxl:cxl_dynamic_capacity trace event (or the simulator's equivalent).
 * Values are the kernel's; the backend re-reads sysfs to learn what they mean.
 */
enum dcd_event_type {
	DCD_EVENT_ADD = 0,
	DCD_EVENT_RELEASE = 1,
	DCD_EVENT_FORCED_RELEASE = 2,
	DCD_EVENT_REGION_CONFIG = 3,
};

struct dcd_event {
	enum dcd_event_type type;
	unsigned region;
	uint64_t dpa_start, length;
	bool tagged;
	tagmem_tag tag;
	unsigned sh_extent_seq;
};

/*
 * Parse one line of trace output (trace_pipe) of the cxl:cxl_dynamic_capacity event. Both
 * generations are understood: the extent tag is printed as "tag=<uuid>" (the header's
 * "uuid=" names the record type, not the capacity); the region field was "region_id",
 * "partition_id" or "updated_region_index". A null tag means untagged. Returns 0, -ENOMSG
 * for a line of another event, -EBADMSG for a truncated or malformed record.
 */
int dcd_trace_parse(const char *line, struct dcd_event *ret);

/*
 * The kernel series, where what tagmem writes or checks differs between them. v11 (the
 * default): extent tags in "uuid", a sharable group's sequence numbers run 0..n-1. v10 (and
 * v9): the same attribute, sequence numbers 1..n. v8 (v3–v8): the tag attribute was "tag".
 * (What tagmem reads, it reads from every series at once.)
 */
enum dcd_series { DCD_SERIES_V11 = 0, DCD_SERIES_V10, DCD_SERIES_V8 };
/* "v11", "v10", "v9", "v8" → series; -EINVAL otherwise. */
int dcd_series_parse(const char *s, enum dcd_series *ret);

/* DCD partition names across generations: dcN (v1–v8), dynamic_ram_a (v9/v10),
 * dynamic_ram_1 (v11). Anything else (ram, pmem, none) is not dynamic capacity. */
bool dcd_partition_is_dynamic(const char *mode);

/* Everything at once. Unreadable entries are skipped (and counted in *ret_skipped). */
struct dcd_snapshot {
	struct dcd_region *regions;
	size_t nregions;
	struct dcd_extent *extents;
	size_t nextents;
	struct dcd_daxdev *devs;
	size_t ndevs;
	size_t skipped;
};

int dcd_scan(struct sysfs *s, struct dcd_snapshot *ret);
/* The parts of a scan, each appending to snap: the regions (no extents), the extents of one
 * region, the dax devices. */
int dcd_scan_regions(struct sysfs *s, struct dcd_snapshot *snap);
int dcd_scan_region_extents(struct sysfs *s, unsigned region, struct dcd_snapshot *snap);
int dcd_scan_devices(struct sysfs *s, struct dcd_snapshot *snap);
void dcd_snapshot_clear(struct dcd_snapshot *snap);

/*
 * A scan that reads only what changed, for a daemon that rescans after every event (brokerd's
 * host backend). It remembers the extents it read, each with its directory's inode number.
 * A rescan lists each region's directory (readdir gives names and inode numbers at once) and
 * reads only the extents it has not read before; the others are copied, the vanished are
 * dropped. An extent re-created under an old name is a new inode, so it is read again.
 * Regions and dax devices are read every time: they are few, and a seed device's uuid and
 * size change in place. The snapshot returned is the caller's (dcd_snapshot_clear).
 */
struct dcd_cache;
struct dcd_cache_stats {
	size_t read;    /* extents read from sysfs this time */
	size_t kept;    /* extents known from before */
};
int dcd_cache_new(struct dcd_cache **ret);
struct dcd_cache *dcd_cache_free(struct dcd_cache *c);
int dcd_cache_scan(struct sysfs *s, struct dcd_cache *c, struct dcd_snapshot *ret,
		   struct dcd_cache_stats *ret_stats);

/*
 * The mappings of a dax device (daxX.Y/mappingN/{start,end}, one per range: for a DCD device,
 * one per extent it claimed). *ret_count 0 when it lists none (an older kernel or a fixture).
 */
int dcd_read_mappings(struct sysfs *s, const char *device, uint64_t *ret_total,
		      unsigned *ret_count);

#endif
