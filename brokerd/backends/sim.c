/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sim_private.h"
#include "util.h"

/* The first sequence number of a sharable group: the series changed it from 1 to 0. */
unsigned sim_seq_base(const struct sim *sim)
{
	return sim->opts.series == DCD_SERIES_V11 ? 0 : 1;
}

/* ---- file helpers (relative to the sandbox root) ---- */

static int put_file(struct sim *sim, const char *path, const char *value)
{
	_cleanup_close_ int fd = openat(sim->rootfd, path,
					O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	return write_all(fd, value, strlen(value));
}

static int put_u64(struct sim *sim, const char *path, bool hex, uint64_t v)
{
	char buf[32];

	/* extents print "%#llx" like the kernel, sizes print decimal */
	if (hex)
		snprintf(buf, sizeof(buf), "%#" PRIx64 "\n", v);
	else
		snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);
	return put_file(sim, path, buf);
}

static int mkdir_p(struct sim *sim, const char *path)
{
	char buf[PATH_MAX];

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (*buf && mkdirat(sim->rootfd, buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

/* Remove a directory of plain files (a device or extent: no subdirectories). */
static int rm_flat_dir(struct sim *sim, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	int r = sysfs_list(sim->fs, dir, "", &names, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (unlinkat(sim->rootfd, path, 0) < 0 && errno != ENOENT)
			r = -errno;
	}
	sysfs_names_free(names, n);
	if (unlinkat(sim->rootfd, dir, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

static void dev_dir(char *buf, size_t len, unsigned region, unsigned id)
{
	snprintf(buf, len, DCD_DAX_DEVICES "/dax%u.%u", region, id);
}

static void pending_path(char *buf, size_t len, const tagmem_tag *tag)
{
	char s[TAGMEM_TAG_STRING_MAX];

	snprintf(buf, len, "sim/pending/%s", tagmem_tag_format(tag, s));
}

/* ---- tree creation and loading ---- */

static int make_seed(struct sim *sim, unsigned region, unsigned id)
{
	char dir[96], path[160], seed[32];
	int r;

	dev_dir(dir, sizeof(dir), region, id);
	r = mkdir_p(sim, dir);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/size", dir);
	r = put_file(sim, path, "0\n");
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/uuid", dir);
	r = put_file(sim, path, "\n");
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/dax_region/seed", region);
	snprintf(seed, sizeof(seed), "dax%u.%u\n", region, id);
	r = put_file(sim, path, seed);
	if (r < 0)
		return r;
	sim->regions[region].seed = id;
	return 0;
}

static int create_tree(struct sim *sim)
{
	char path[160];
	int r;

	for (unsigned rg = 0; rg < SIM_REGIONS; rg++) {
		snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/dax_region", rg);
		r = mkdir_p(sim, path);
		if (r < 0)
			return r;
		snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/sharable", rg);
		r = put_file(sim, path, rg == 1 ? "1\n" : "0\n");
		if (r < 0)
			return r;
		r = make_seed(sim, rg, 0);
		if (r < 0)
			return r;
	}
	r = mkdir_p(sim, "dev");
	if (r < 0)
		return r;
	r = mkdir_p(sim, "sim/pending");
	if (r < 0)
		return r;
	return put_u64(sim, "sim/region_size", false, sim->opts.region_size);
}

static int add_dev_record(struct sim *sim, const struct sim_dev *d)
{
	if (grow_array(&sim->devs, &sim->capdevs, sim->ndevs, sizeof(*sim->devs)) < 0)
		return -ENOMEM;
	sim->devs[sim->ndevs++] = *d;
	return 0;
}

int sim_add_extent_record(struct sim *sim, const struct dcd_extent *e)
{
	struct sim_region *rg = &sim->regions[e->region];

	if (e->offset + e->length > rg->high)
		rg->high = e->offset + e->length;
	if (grow_array(&sim->extents, &sim->capextents, sim->nextents, sizeof(*sim->extents)) < 0)
		return -ENOMEM;
	sim->extents[sim->nextents++] = *e;
	return 0;
}

static int untagged_claim_extent(struct sim *sim, const struct dcd_daxdev *d, unsigned *ret)
{
	char path[160];
	uint64_t start;

	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/mapping0/start", d->name);
	if (sysfs_read_u64(sim->fs, path, &start) < 0)
		return -ENOENT;
	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].region == d->region && !sim->extents[i].tagged &&
		    sim->extents[i].offset == start) {
			*ret = sim->extents[i].id;
			return 0;
		}
	return -ENOENT;
}

static int load_tree(struct sim *sim)
{
	struct dcd_snapshot snap;
	int r = dcd_scan(sim->fs, &snap);

	if (r < 0)
		return r;
	for (size_t i = 0; i < snap.nregions; i++) {
		struct dcd_region *rg = &snap.regions[i];
		unsigned a, b;

		if (rg->id >= SIM_REGIONS ||
		    sysfs_parse_dotted(rg->seed, "dax", &a, &b) < 0 || a != rg->id) {
			r = -EUCLEAN;
			goto out;
		}
		sim->regions[rg->id].sharable = rg->sharable;
		sim->regions[rg->id].seed = b;
	}
	for (size_t i = 0; i < snap.nextents && r >= 0; i++) {
		struct dcd_extent *e = &snap.extents[i];
		if (e->region >= SIM_REGIONS)
			continue;
		r = sim_add_extent_record(sim, e);
		if (e->id >= sim->regions[e->region].next_extent)
			sim->regions[e->region].next_extent = e->id + 1;
	}
	for (size_t i = 0; i < snap.ndevs && r >= 0; i++) {
		struct dcd_daxdev *d = &snap.devs[i];
		struct sim_dev rec = { .region = d->region, .id = d->id, .tagged = d->tagged,
				       .tag = d->tag };

		if (d->region >= SIM_REGIONS || !d->size)
			continue;
		/* an untagged claim's extent is the one its single mapping starts at */
		if (!d->tagged && untagged_claim_extent(sim, d, &rec.extent) < 0)
			continue;
		r = add_dev_record(sim, &rec);
	}
out:
	dcd_snapshot_clear(&snap);
	return r;
}

int sim_open(const char *root, const struct sim_options *opts, struct sim **ret_sim)
{
	struct sim *sim;
	uint64_t size;
	int r;

	if (opts->region_size == 0 || opts->region_size % DCD_ALIGN)
		return -EINVAL;
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		return -errno;
	sim = calloc(1, sizeof(*sim));
	if (!sim)
		return -ENOMEM;
	sim->opts = *opts;
	sim->bytes_fd = -1;
	if (opts->bytes_dir) {
		sim->bytes_fd = open(opts->bytes_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (sim->bytes_fd < 0) {
			r = -errno;
			goto fail;
		}
	}
	r = sysfs_open(root, &sim->fs);
	if (r < 0)
		goto fail;
	sim->rootfd = sysfs_root_fd(sim->fs);
	sim->regions[1].sharable = true;

	if (sysfs_read_u64(sim->fs, "sim/region_size", &size) == 0) {
		/* An existing sandbox keeps its geometry: capacity already handed out stays valid. */
		sim->opts.region_size = size;
		r = load_tree(sim);
	} else {
		r = create_tree(sim);
	}
	if (r < 0)
		goto fail;
	*ret_sim = sim;
	return 0;
fail:
	sim_close(sim);
	return r;
}

struct sim *sim_close(struct sim *sim)
{
	if (!sim)
		return NULL;
	sysfs_close(sim->fs);
	if (sim->bytes_fd >= 0)
		close(sim->bytes_fd);
	free(sim->extents);
	free(sim->devs);
	free(sim->events);
	free(sim);
	return NULL;
}

const char *sim_root(struct sim *sim)
{
	return sysfs_root(sim->fs);
}

uint64_t sim_region_size(struct sim *sim)
{
	return sim->opts.region_size;
}

/* ---- trace records ---- */

int sim_queue_event(struct sim *sim, enum dcd_event_type type, const struct dcd_extent *e,
		    unsigned seq)
{
	struct dcd_event ev = {
		.type = type, .region = e->region, .dpa_start = e->offset,
		.length = e->length, .tagged = e->tagged, .tag = e->tag, .sh_extent_seq = seq,
	};

	if (sim->headevent == sim->nevents)
		sim->headevent = sim->nevents = 0;
	if (grow_array(&sim->events, &sim->capevents, sim->nevents, sizeof(*sim->events)) < 0)
		return -ENOMEM;
	sim->events[sim->nevents++] = ev;
	return 0;
}

int sim_next_event(struct sim *sim, struct dcd_event *ret_event)
{
	if (sim->headevent == sim->nevents)
		return 0;
	*ret_event = sim->events[sim->headevent++];
	return 1;
}

/* ---- fabric manager ---- */

static int cmp_offset(const void *a, const void *b)
{
	const struct dcd_extent *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* First-fit over the holes of a region; fills chunks[] with (offset, length). */
static int plan_allocation(struct sim *sim, unsigned region, uint64_t size,
			   struct dcd_extent **ret_chunks, size_t *ret_n)
{
	_cleanup_free_ struct dcd_extent *used = NULL;
	struct dcd_extent *chunks = NULL;
	size_t nused = 0, n = 0, cap = 0;
	uint64_t cursor = 0, left = size;
	uint64_t high = sim->regions[region].high;

	/* Fast path: room after the highest extent. Holes are searched only when there is not,
	 * so adding capacity costs O(extents of the allocation), not O(extents in the region). */
	if (high <= sim->opts.region_size && sim->opts.region_size - high >= size) {
		n = (size + SIM_MAX_EXTENT - 1) / SIM_MAX_EXTENT;
		chunks = calloc(n, sizeof(*chunks));
		if (!chunks)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			uint64_t len = MIN(left, SIM_MAX_EXTENT);
			chunks[i] = (struct dcd_extent){ .region = region, .offset = high, .length = len };
			high += len;
			left -= len;
		}
		*ret_chunks = chunks;
		*ret_n = n;
		return 0;
	}

	used = calloc(sim->nextents + 1, sizeof(*used));
	if (!used)
		return -ENOMEM;
	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].region == region)
			used[nused++] = sim->extents[i];
	qsort(used, nused, sizeof(*used), cmp_offset);
	/* sentinel: the end of the region */
	used[nused].offset = sim->opts.region_size;
	used[nused].length = 0;

	for (size_t i = 0; i <= nused && left; i++) {
		while (cursor < used[i].offset && left) {
			uint64_t len = MIN(MIN(used[i].offset - cursor, left), SIM_MAX_EXTENT);
			if (grow_array(&chunks, &cap, n, sizeof(*chunks)) < 0) {
				free(chunks);
				return -ENOMEM;
			}
			chunks[n++] = (struct dcd_extent){ .region = region, .offset = cursor,
							   .length = len };
			cursor += len;
			left -= len;
		}
		cursor = MAX(cursor, used[i].offset + used[i].length);
	}
	if (left) {
		free(chunks);
		return -ENOSPC;
	}
	*ret_chunks = chunks;
	*ret_n = n;
	return 0;
}

/* Build the extent in a hidden directory and rename it into place, so that a reader never
 * sees an extent without its offset, length or tag. */
int sim_write_extent(struct sim *sim, const struct dcd_extent *e)
{
	char tmp[128], dir[128], path[192], tagstr[TAGMEM_TAG_STRING_MAX];
	int r;

	snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u/extent%u.%u", e->region,
		 e->region, e->id);
	snprintf(tmp, sizeof(tmp), DCD_CXL_DEVICES "/dax_region%u/.extent%u.%u.new", e->region,
		 e->region, e->id);
	rm_flat_dir(sim, tmp);
	if (mkdirat(sim->rootfd, tmp, 0755) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/offset", tmp);
	r = put_u64(sim, path, true, e->offset);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/length", tmp);
	r = put_u64(sim, path, true, e->length);
	if (r < 0)
		return r;
	if (e->tagged) {
		char line[TAGMEM_TAG_STRING_MAX + 1];
		snprintf(path, sizeof(path), "%s/%s", tmp,
			 sim->opts.series == DCD_SERIES_V8 ? "tag" : "uuid");
		snprintf(line, sizeof(line), "%s\n", tagmem_tag_format(&e->tag, tagstr));
		r = put_file(sim, path, line);
		if (r < 0)
			return r;
	}
	if (renameat(sim->rootfd, tmp, sim->rootfd, dir) < 0)
		return -errno;
	return 0;
}

bool sim_tag_in_use(struct sim *sim, const tagmem_tag *tag)
{
	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].tagged && !tagmem_tag_compare(&sim->extents[i].tag, tag))
			return true;
	return false;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What a fabric manager's device sends for one allocation: one chain, one group. */
static int send_allocation(struct sim *sim, unsigned region, const tagmem_tag *tag,
			   const struct dcd_extent *chunks, size_t n)
{
	struct sim_chain_result res = { 0 };
	uint64_t now = now_ms();
	int r = 0;

	if (n > SIM_MAX_PENDING)
		return -E2BIG; /* the kernel would drop the chain */
	for (size_t i = 0; i < n && r == 0; i++) {
		struct sim_dc_record rec = {
			.region = region, .offset = chunks[i].offset, .length = chunks[i].length,
			.tagged = tag != NULL, .seq = sim_seq_base(sim) + (unsigned)i, .more = i + 1 < n,
		};

		if (tag)
			rec.tag = *tag;
		r = sim_dc_add_record(sim, &rec, now, &res);
	}
	if (r < 0)
		return r;
	/* a tag is one group; untagged extents are one group each */
	if (res.refused)
		return res.error;
	return res.accepted == (tag ? 1 : n) ? 0 : -EIO;
}

int sim_fm_add(struct sim *sim, uint64_t size, const tagmem_tag *tag, bool shared,
	       struct sim_alloc *ret_alloc)
{
	unsigned region = shared ? 1 : 0;
	struct dcd_extent *chunks = NULL;
	size_t n = 0;
	int r;

	if (size == 0 || size % DCD_ALIGN)
		return -EINVAL;
	if (shared && !tag) /* other hosts find shared capacity only by its tag */
		return -EINVAL;
	if (tag && (tagmem_tag_is_null(tag) || sim_tag_in_use(sim, tag)))
		return -EEXIST;
	r = plan_allocation(sim, region, size, &chunks, &n);
	if (r < 0)
		return r;
	r = send_allocation(sim, region, tag, chunks, n);
	free(chunks);
	if (r < 0)
		return r;
	ret_alloc->region = region;
	ret_alloc->nextents = (unsigned)n;
	ret_alloc->size = size;
	return 0;
}

int sim_place(struct sim *sim, unsigned region, const tagmem_tag *tag,
	      const struct dcd_extent *extents, size_t n)
{
	int r;

	if (region >= SIM_REGIONS || !tag || tagmem_tag_is_null(tag) || n == 0)
		return -EINVAL;
	/* the kernel's own checks of the group decide (check_group): aligned, inside the
	 * region and over nothing (-ENXIO there, -ERANGE to the fabric), a tag not here yet */
	r = send_allocation(sim, region, tag, extents, n);
	return r == -ENXIO ? -ERANGE : r;
}

static int cmp_id(const void *a, const void *b)
{
	const struct dcd_extent *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

size_t sim_tag_extents(struct sim *sim, const tagmem_tag *tag, struct dcd_extent *out,
		       size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].tagged && !tagmem_tag_compare(&sim->extents[i].tag, tag)) {
			if (n < max)
				out[n] = sim->extents[i];
			n++;
		}
	qsort(out, MIN(n, max), sizeof(*out), cmp_id); /* ids grow with the sequence */
	return n;
}

static int cmp_tag(const void *a, const void *b)
{
	return tagmem_tag_compare(a, b);
}

int sim_list_tags(struct sim *sim, tagmem_tag **ret, size_t *ret_n)
{
	tagmem_tag *tags = calloc(sim->nextents + 1, sizeof(*tags));
	size_t n = 0, u = 0;

	if (!tags)
		return -ENOMEM;
	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].tagged)
			tags[n++] = sim->extents[i].tag;
	qsort(tags, n, sizeof(*tags), cmp_tag);
	for (size_t i = 0; i < n; i++)
		if (!u || tagmem_tag_compare(&tags[u - 1], &tags[i]))
			tags[u++] = tags[i];
	*ret = tags;
	*ret_n = u;
	return 0;
}

uint64_t sim_region_used(struct sim *sim, unsigned region)
{
	uint64_t used = 0;

	for (size_t i = 0; i < sim->nextents; i++)
		if (sim->extents[i].region == region)
			used += sim->extents[i].length;
	return used;
}

/* The device (if any) on this host that claimed a tag; its index in sim->devs. Tags are
 * unique host-wide (v11 keeps one registry of tag groups for all regions and memdevs). */
static int find_device(struct sim *sim, const tagmem_tag *tag)
{
	for (size_t i = 0; i < sim->ndevs; i++)
		if (sim->devs[i].tagged && !tagmem_tag_compare(&sim->devs[i].tag, tag))
			return (int)i;
	return -ENOENT;
}

static int remove_tag_extents(struct sim *sim, const tagmem_tag *tag)
{
	int r = 0;

	for (size_t i = 0; i < sim->nextents;) {
		struct dcd_extent *e = &sim->extents[i];
		char dir[128];

		if (!e->tagged || tagmem_tag_compare(&e->tag, tag)) {
			i++;
			continue;
		}
		snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u/extent%u.%u", e->region,
			 e->region, e->id);
		r = rm_flat_dir(sim, dir);
		if (r < 0)
			return r;
		*e = sim->extents[--sim->nextents];
	}
	return r;
}

int sim_fm_release(struct sim *sim, const tagmem_tag *tag)
{
	bool found = false;
	char path[96];
	int r;

	for (size_t i = 0; i < sim->nextents; i++) {
		struct dcd_extent *e = &sim->extents[i];
		if (e->tagged && !tagmem_tag_compare(&e->tag, tag)) {
			found = true;
			r = sim_queue_event(sim, DCD_EVENT_RELEASE, e, 0);
			if (r < 0)
				return r;
		}
	}
	if (!found)
		return -ENOENT;
	if (find_device(sim, tag) >= 0) {
		/* In use: the kernel keeps the extents until the device goes away. */
		pending_path(path, sizeof(path), tag);
		r = put_file(sim, path, "");
		return r < 0 ? r : 1;
	}
	r = remove_tag_extents(sim, tag);
	return r < 0 ? r : 0;
}

bool sim_release_pending(struct sim *sim, const tagmem_tag *tag)
{
	char path[96];

	pending_path(path, sizeof(path), tag);
	return sysfs_exists(sim->fs, path);
}

/* ---- kernel emulation ---- */

/* The device node of a shared fabric's tag: a hard link to the tag's bytes, which must be
 * the size of its extents (-EXDEV: the sandbox is on another filesystem than the fabric). */
static int link_bytes(struct sim *sim, const tagmem_tag *tag, const char *node, uint64_t size)
{
	char name[TAGMEM_TAG_STRING_MAX];
	struct stat st;

	tagmem_tag_format(tag, name);
	if (fstatat(sim->bytes_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -EIO;
	if (unlinkat(sim->rootfd, node, 0) < 0 && errno != ENOENT)
		return -errno;
	return linkat(sim->bytes_fd, name, sim->rootfd, node, 0) < 0 ? -errno : 0;
}

/* The device's ranges, as the kernel lists them: mappingN/{start,end,page_offset}. */
static int write_mappings(struct sim *sim, const char *dir, const struct dcd_extent *ext,
			  size_t n)
{
	uint64_t pgoff = 0;
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		char path[192];

		snprintf(path, sizeof(path), "%s/mapping%zu", dir, i);
		r = mkdir_p(sim, path);
		snprintf(path, sizeof(path), "%s/mapping%zu/start", dir, i);
		if (r >= 0)
			r = put_u64(sim, path, true, ext[i].offset);
		snprintf(path, sizeof(path), "%s/mapping%zu/end", dir, i);
		if (r >= 0)
			r = put_u64(sim, path, true, ext[i].offset + ext[i].length - 1);
		snprintf(path, sizeof(path), "%s/mapping%zu/page_offset", dir, i);
		if (r >= 0)
			r = put_u64(sim, path, true, pgoff);
		pgoff += ext[i].length / 4096;
	}
	return r;
}

/* A device directory: its attributes and its mapping subdirectories. */
static int rm_dev_dir(struct sim *sim, const char *dir)
{
	char **names = NULL;
	size_t n = 0;
	int r = sysfs_list(sim->fs, dir, "mapping", &names, &n);

	for (size_t i = 0; i < n && r >= 0; i++) {
		char path[192];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		r = rm_flat_dir(sim, path);
	}
	sysfs_names_free(names, n);
	return r < 0 ? r : rm_flat_dir(sim, dir);
}

static bool untagged_claimed(const struct sim *sim, unsigned region, unsigned extent)
{
	for (size_t i = 0; i < sim->ndevs; i++)
		if (!sim->devs[i].tagged && sim->devs[i].region == region &&
		    sim->devs[i].extent == extent)
			return true;
	return false;
}

/* The extents a seed claims: a tag's, in sequence order, or the lowest free untagged one
 * (untagged extents are independent allocations: one per claim). */
static int claim_extents(struct sim *sim, unsigned region, const struct sim_dev *d,
			 struct dcd_extent **ret, size_t *ret_n)
{
	struct dcd_extent *out = NULL;
	const struct dcd_extent *free_one = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < sim->nextents; i++) {
		const struct dcd_extent *e = &sim->extents[i];

		if (e->region != region || e->tagged != d->tagged)
			continue;
		if (!d->tagged) {
			if (!untagged_claimed(sim, region, e->id) && (!free_one || e->id < free_one->id))
				free_one = e;
			continue;
		}
		if (tagmem_tag_compare(&e->tag, &d->tag))
			continue;
		if (grow_array(&out, &cap, n, sizeof(*out)) < 0) {
			free(out);
			return -ENOMEM;
		}
		out[n++] = *e;
	}
	if (free_one) {
		out = malloc(sizeof(*out));
		if (!out)
			return -ENOMEM;
		out[n++] = *free_one;
	}
	if (!n)
		return -ENOENT;
	qsort(out, n, sizeof(*out), cmp_id); /* ids grow with the sequence */
	*ret = out;
	*ret_n = n;
	return 0;
}

int sim_kernel_seed_written(struct sim *sim, unsigned region)
{
	char dir[96], path[160], text[64];
	_cleanup_free_ struct dcd_extent *ext = NULL;
	_cleanup_close_ int fd = -1;
	struct sim_dev dev = { .region = region };
	uint64_t size = 0;
	size_t n = 0;
	int r;

	if (region >= SIM_REGIONS)
		return -ENXIO;
	dev.id = sim->regions[region].seed;
	dev_dir(dir, sizeof(dir), region, dev.id);
	snprintf(path, sizeof(path), "%s/uuid", dir);
	r = sysfs_read(sim->fs, path, text, sizeof(text));
	if (r < 0)
		goto reject;
	if (!strcmp(text, "0")) {
		dev.tagged = false; /* "0": one untagged extent */
	} else {
		r = sysfs_parse_tag(text, &dev.tag, &dev.tagged);
		if (r >= 0 && !dev.tagged)
			r = -EINVAL;
		if (r < 0)
			goto reject;
		if (find_device(sim, &dev.tag) >= 0) {
			r = -EBUSY;
			goto reject;
		}
	}
	r = claim_extents(sim, region, &dev, &ext, &n);
	if (r < 0)
		goto reject;
	for (size_t i = 0; i < n; i++)
		size += ext[i].length;
	if (!dev.tagged)
		dev.extent = ext[0].id;
	snprintf(path, sizeof(path), "dev/dax%u.%u", region, dev.id);
	r = sim->bytes_fd >= 0 && dev.tagged ? link_bytes(sim, &dev.tag, path, size) : 0;
	if (r < 0)
		goto reject;
	fd = openat(sim->rootfd, path, O_RDWR |
		    (sim->bytes_fd >= 0 && dev.tagged ? 0 : O_CREAT | O_TRUNC) | O_CLOEXEC, 0600);
	if (fd < 0 || ((sim->bytes_fd < 0 || !dev.tagged) && ftruncate(fd, (off_t)size) < 0)) {
		r = -errno;
		goto reject;
	}
	r = write_mappings(sim, dir, ext, n);
	snprintf(path, sizeof(path), "%s/size", dir);
	if (r >= 0)
		r = put_u64(sim, path, false, size);
	/* v11 reads back the claimed tag, or the null UUID for an untagged claim */
	snprintf(path, sizeof(path), "%s/uuid", dir);
	if (r >= 0 && !dev.tagged)
		r = put_file(sim, path, "00000000-0000-0000-0000-000000000000\n");
	if (r >= 0)
		r = add_dev_record(sim, &dev);
	if (r < 0)
		goto reject;
	return make_seed(sim, region, dev.id + 1);
reject:
	/* a failed sysfs write leaves the attribute as it was */
	snprintf(path, sizeof(path), "%s/uuid", dir);
	put_file(sim, path, "\n");
	return r;
}

int sim_kernel_size_written(struct sim *sim, const char *device)
{
	struct dcd_daxdev d;
	char dir[96], path[160];
	int r;

	r = dcd_read_daxdev(sim->fs, device, &d);
	if (r < 0)
		return r;
	if (d.size != 0) /* resizing a DCD device is not part of the emulated ABI */
		return -EINVAL;
	if (d.id == sim->regions[d.region].seed)
		return 0;
	snprintf(path, sizeof(path), "dev/%s", device);
	if (unlinkat(sim->rootfd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	dev_dir(dir, sizeof(dir), d.region, d.id);
	r = rm_dev_dir(sim, dir);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sim->ndevs; i++)
		if (sim->devs[i].region == d.region && sim->devs[i].id == d.id) {
			sim->devs[i] = sim->devs[--sim->ndevs];
			break;
		}
	if (d.tagged && sim_release_pending(sim, &d.tag)) {
		r = remove_tag_extents(sim, &d.tag);
		if (r < 0)
			return r;
		pending_path(path, sizeof(path), &d.tag);
		unlinkat(sim->rootfd, path, 0);
	}
	return 0;
}
