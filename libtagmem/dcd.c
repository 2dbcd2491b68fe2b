/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "dcd.h"
#include "util.h"

int dcd_read_extent(struct sysfs *s, unsigned region, unsigned id, struct dcd_extent *ret)
{
	char dir[128], path[160];
	struct dcd_extent e = { .region = region, .id = id };
	int r;

	snprintf(dir, sizeof(dir), DCD_CXL_DEVICES "/dax_region%u/extent%u.%u", region, region, id);
	snprintf(path, sizeof(path), "%s/offset", dir);
	r = sysfs_read_u64(s, path, &e.offset);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/length", dir);
	r = sysfs_read_u64(s, path, &e.length);
	if (r < 0)
		return r;
	if (e.length == 0 || e.offset % DCD_ALIGN || e.length % DCD_ALIGN ||
	    e.offset + e.length < e.offset)
		return -EINVAL;

	snprintf(path, sizeof(path), "%s/uuid", dir);
	r = sysfs_read_tag(s, path, &e.tag, &e.tagged);
	if (r == -ENOENT) { /* DCD v3–v8 called it "tag"; untagged extents have neither */
		snprintf(path, sizeof(path), "%s/tag", dir);
		r = sysfs_read_tag_optional(s, path, &e.tag, &e.tagged);
	}
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

int dcd_read_daxdev(struct sysfs *s, const char *name, struct dcd_daxdev *ret)
{
	struct dcd_daxdev d = { 0 };
	char path[160];
	int r;

	if (strlen(name) >= sizeof(d.name))
		return -EINVAL;
	r = sysfs_parse_dotted(name, "dax", &d.region, &d.id);
	if (r < 0)
		return r;
	strcpy(d.name, name);
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/size", name);
	r = sysfs_read_u64(s, path, &d.size);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", name);
	r = sysfs_read_tag_optional(s, path, &d.tag, &d.tagged); /* non-DCD devices have none */
	if (r < 0)
		return r;
	*ret = d;
	return 0;
}

int dcd_series_parse(const char *s, enum dcd_series *ret)
{
	if (!strcmp(s, "v11"))
		*ret = DCD_SERIES_V11;
	else if (!strcmp(s, "v10") || !strcmp(s, "v9"))
		*ret = DCD_SERIES_V10;
	else if (!strcmp(s, "v8"))
		*ret = DCD_SERIES_V8;
	else
		return -EINVAL;
	return 0;
}

bool dcd_partition_is_dynamic(const char *mode)
{
	if (!strncmp(mode, "dc", 2) && mode[2] >= '0' && mode[2] <= '9') {
		for (const char *p = mode + 2; *p; p++)
			if (*p < '0' || *p > '9')
				return false;
		return true;
	}
	return !strcmp(mode, "dynamic_ram_a") || !strcmp(mode, "dynamic_ram_1");
}

int dcd_read_region(struct sysfs *s, unsigned region, struct dcd_region *ret)
{
	struct dcd_region rg = { .id = region };
	char path[160];
	uint64_t v = 0;
	int r;

	/* the dax region sits under its CXL region, whose mode names the partition */
	snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/../mode", region);
	if (sysfs_read(s, path, rg.partition, sizeof(rg.partition)) < 0)
		rg.partition[0] = '\0';

	snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/dax_region/seed", region);
	r = sysfs_read(s, path, rg.seed, sizeof(rg.seed));
	if (r == -ENOENT)
		rg.seed[0] = '\0'; /* a region with no seed cannot make devices, but exists */
	else if (r < 0)
		return r;
	snprintf(path, sizeof(path), DCD_CXL_DEVICES "/dax_region%u/sharable", region);
	r = sysfs_read_u64(s, path, &v);
	if (r < 0 && r != -ENOENT)
		return r;
	rg.sharable = v != 0;
	*ret = rg;
	return 0;
}

int dcd_scan_regions(struct sysfs *s, struct dcd_snapshot *snap)
{
	char **names = NULL;
	size_t n = 0, cap = snap->nregions;
	int r;

	r = sysfs_list(s, DCD_CXL_DEVICES, "dax_region", &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct dcd_region rg;
		unsigned long id;
		char *end;

		id = strtoul(names[i] + strlen("dax_region"), &end, 10);
		if (*end || end == names[i] + strlen("dax_region") || id > INT_MAX ||
		    dcd_read_region(s, (unsigned)id, &rg) < 0) {
			snap->skipped++;
			continue;
		}
		r = grow_array(&snap->regions, &cap, snap->nregions, sizeof(*snap->regions));
		if (r >= 0)
			snap->regions[snap->nregions++] = rg;
	}
	sysfs_names_free(names, n);
	return r;
}

int dcd_scan_devices(struct sysfs *s, struct dcd_snapshot *snap)
{
	char **names = NULL;
	size_t n = 0, cap = snap->ndevs;
	int r;

	r = sysfs_list(s, DCD_DAX_DEVICES, "dax", &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		struct dcd_daxdev d;

		if (dcd_read_daxdev(s, names[i], &d) < 0) {
			snap->skipped++;
			continue;
		}
		r = grow_array(&snap->devs, &cap, snap->ndevs, sizeof(*snap->devs));
		if (r >= 0)
			snap->devs[snap->ndevs++] = d;
	}
	sysfs_names_free(names, n);
	return r;
}

int dcd_scan(struct sysfs *s, struct dcd_snapshot *ret)
{
	struct dcd_snapshot snap = { 0 };
	int r = dcd_scan_regions(s, &snap);

	for (size_t i = 0; i < snap.nregions && r >= 0; i++)
		r = dcd_scan_region_extents(s, snap.regions[i].id, &snap);
	if (r >= 0)
		r = dcd_scan_devices(s, &snap);
	if (r < 0) {
		dcd_snapshot_clear(&snap);
		return r;
	}
	*ret = snap;
	return 0;
}

void dcd_snapshot_clear(struct dcd_snapshot *snap)
{
	free(snap->regions);
	free(snap->extents);
	free(snap->devs);
	memset(snap, 0, sizeof(*snap));
}

/* The value of " key=" in a trace line: quoted ('…') or up to the next space. */
static bool trace_field(const char *line, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key))) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=') {
			const char *v = p + klen + 1, *end;
			size_t n;

			if (*v == '\'') {
				v++;
				end = strchr(v, '\'');
				if (!end)
					return false; /* truncated */
			} else {
				end = v + strcspn(v, " \n");
			}
			n = (size_t)(end - v);
			if (n >= len)
				return false;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return true;
		}
		p += klen;
	}
	return false;
}

static bool parse_hex(const char *s, uint64_t *ret)
{
	char *end;

	if (!*s || !isxdigit((unsigned char)*s))
		return false;
	errno = 0;
	*ret = strtoull(s, &end, 16);
	return !errno && !*end;
}

int dcd_trace_parse(const char *line, struct dcd_event *ret)
{
	static const struct { const char *name; enum dcd_event_type type; } types[] = {
		{ "Add capacity", DCD_EVENT_ADD },
		{ "Release capacity", DCD_EVENT_RELEASE },
		{ "Forced capacity release", DCD_EVENT_FORCED_RELEASE },
		{ "Region Configuration Updated", DCD_EVENT_REGION_CONFIG },
	};
	struct dcd_event ev = { 0 };
	const char *body = strstr(line, "cxl_dynamic_capacity:");
	char buf[64];
	bool known = false;
	unsigned long v;
	char *end;

	if (!body)
		return -ENOMSG;
	if (!trace_field(body, "event_type", buf, sizeof(buf)))
		return -EBADMSG;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(buf, types[i].name)) {
			ev.type = types[i].type;
			known = true;
		}
	if (!known)
		return -EBADMSG;
	if (!trace_field(body, "starting_dpa", buf, sizeof(buf)) || !parse_hex(buf, &ev.dpa_start) ||
	    !trace_field(body, "length", buf, sizeof(buf)) || !parse_hex(buf, &ev.length))
		return -EBADMSG;
	if (!trace_field(body, "tag", buf, sizeof(buf)) || tagmem_tag_parse(buf, &ev.tag) < 0)
		return -EBADMSG;
	ev.tagged = !tagmem_tag_is_null(&ev.tag);
	if (trace_field(body, "shared_extent_sequence", buf, sizeof(buf))) {
		errno = 0;
		v = strtoul(buf, &end, 10);
		if (errno || *end || v > 0xffff)
			return -EBADMSG;
		ev.sh_extent_seq = (unsigned)v;
	}
	/* the record names no dax region: the backend re-reads the regions it affects */
	ev.region = UINT32_MAX;
	*ret = ev;
	return 0;
}

int dcd_read_mappings(struct sysfs *s, const char *device, uint64_t *ret_total,
		      unsigned *ret_count)
{
	char dir[96], path[160];
	char **names = NULL;
	size_t n = 0;
	uint64_t total = 0;
	int r;

	if (strlen(device) >= DCD_NAME_MAX || strchr(device, '/'))
		return -EINVAL;
	snprintf(dir, sizeof(dir), DCD_DAX_DEVICES "/%s", device);
	r = sysfs_list(s, dir, "mapping", &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		uint64_t start, end;

		snprintf(path, sizeof(path), "%s/%s/start", dir, names[i]);
		r = sysfs_read_u64(s, path, &start);
		if (r < 0)
			break;
		snprintf(path, sizeof(path), "%s/%s/end", dir, names[i]);
		r = sysfs_read_u64(s, path, &end);
		/* end is inclusive; a range that ends before it starts, or sums past 2^64, is
		 * not the kernel's */
		if (r >= 0 && (end < start || end - start + 1 > UINT64_MAX - total))
			r = -EINVAL;
		if (r >= 0)
			total += end - start + 1;
	}
	sysfs_names_free(names, n);
	if (r < 0)
		return r;
	*ret_total = total;
	*ret_count = (unsigned)n;
	return 0;
}
