/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dcd.h"
#include "nd.h"
#include "util.h"

static void read_opt(struct sysfs *s, const char *path, char *buf, size_t len)
{
	if (sysfs_read(s, path, buf, len) < 0)
		buf[0] = '\0';
}

/* The device a namespace is exposed as: its own block child, or its holder's. */
static void find_device(struct sysfs *s, const char *ns, struct nd_namespace *n)
{
	char path[192], holder[32] = "";
	char **names = NULL;
	size_t cnt = 0;

	snprintf(path, sizeof(path), ND_DEVICES "/%s/holder", ns);
	read_opt(s, path, holder, sizeof(holder));
	if (!holder[0]) {
		snprintf(path, sizeof(path), ND_DEVICES "/%s/block", ns);
		if (sysfs_list(s, path, "pmem", &names, &cnt) == 0 && cnt) {
			snprintf(n->device, sizeof(n->device), "%s", names[0]);
			n->kind = ND_KIND_PMEM;
		}
	} else if (!strncmp(holder, "dax", 3)) {
		/* an nd dax device holds the namespace; the devdax char device is its child */
		snprintf(path, sizeof(path), ND_DEVICES "/%s", holder);
		if (sysfs_list(s, path, "dax", &names, &cnt) == 0 && cnt) {
			snprintf(n->device, sizeof(n->device), "%s", names[0]);
			n->kind = ND_KIND_DAX;
		}
	} else {
		/* pfn (fsdax) or btt (sector): the block device hangs off the holder */
		snprintf(path, sizeof(path), ND_DEVICES "/%s/block", holder);
		if (sysfs_list(s, path, "pmem", &names, &cnt) == 0 && cnt) {
			snprintf(n->device, sizeof(n->device), "%s", names[0]);
			n->kind = ND_KIND_PMEM;
		}
	}
	sysfs_names_free(names, cnt);
}

/*
 * The QEMU nvdimm slot behind a label-less namespace: its region must map exactly one DIMM
 * (mapping0 "nmemX,dpa,size,position"), whose NFIT device handle QEMU sets to slot + 1.
 */
static int dimm_slot(struct sysfs *s, const char *ns)
{
	char path[192], map[128], nmem[32];
	unsigned region, id;
	uint64_t n, handle;

	if (sysfs_parse_dotted(ns, "namespace", &region, &id) < 0)
		return -1;
	snprintf(path, sizeof(path), ND_DEVICES "/region%u/mappings", region);
	if (sysfs_read_u64(s, path, &n) < 0 || n != 1)
		return -1; /* interleaved or absent: no single slot */
	snprintf(path, sizeof(path), ND_DEVICES "/region%u/mapping0", region);
	if (sysfs_read(s, path, map, sizeof(map)) < 0 || sscanf(map, "%31[^,],", nmem) != 1 ||
	    strncmp(nmem, "nmem", 4))
		return -1;
	snprintf(path, sizeof(path), ND_DEVICES "/%s/nfit/handle", nmem);
	if (sysfs_read_u64(s, path, &handle) < 0 || handle == 0 || handle > 256)
		return -1;
	return (int)handle - 1;
}

int nd_read_namespace(struct sysfs *s, const char *name, struct nd_namespace *ret)
{
	struct nd_namespace n = { 0 };
	char path[192];
	int r;

	if (strlen(name) >= sizeof(n.name) || strncmp(name, "namespace", 9))
		return -EINVAL;
	strcpy(n.name, name);
	snprintf(path, sizeof(path), ND_DEVICES "/%s/size", name);
	r = sysfs_read_u64(s, path, &n.size);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), ND_DEVICES "/%s/uuid", name);
	r = sysfs_read_tag_optional(s, path, &n.tag, &n.tagged); /* io namespaces have none */
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), ND_DEVICES "/%s/alt_name", name);
	read_opt(s, path, n.alt_name, sizeof(n.alt_name));
	snprintf(path, sizeof(path), ND_DEVICES "/%s/mode", name);
	read_opt(s, path, n.mode, sizeof(n.mode));
	find_device(s, name, &n);
	n.dimm_slot = n.tagged ? -1 : dimm_slot(s, name);
	*ret = n;
	return 0;
}

int nd_scan(struct sysfs *s, struct nd_namespace **ret, size_t *ret_count)
{
	struct nd_namespace *arr = NULL;
	size_t n = 0, cap = 0, cnt = 0;
	char **names = NULL;
	int r;

	r = sysfs_list(s, ND_DEVICES, "namespace", &names, &cnt);
	if (r < 0)
		return r;
	for (size_t i = 0; i < cnt; i++) {
		struct nd_namespace ns;

		if (nd_read_namespace(s, names[i], &ns) < 0 || ns.size == 0)
			continue; /* seeds (size 0) and unreadable entries */
		r = grow_array(&arr, &cap, n, sizeof(*arr));
		if (r < 0)
			break;
		arr[n++] = ns;
	}
	sysfs_names_free(names, cnt);
	if (r < 0) {
		free(arr);
		return r;
	}
	*ret = arr;
	*ret_count = n;
	return 0;
}
