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

static int tag_from_namespace(struct sysfs *s, const char *ns, struct device_tag *ret)
{
	struct nd_namespace n;
	int r = nd_read_namespace(s, ns, &n);

	if (r < 0)
		return r;
	if (!n.tagged)
		return -ENODATA;
	ret->tag = n.tag;
	ret->source = "nvdimm";
	snprintf(ret->ns, sizeof(ret->ns), "%s", n.name);
	snprintf(ret->alt_name, sizeof(ret->alt_name), "%s", n.alt_name);
	return 0;
}

int device_tag(struct sysfs *s, const char *devpath, struct device_tag *ret)
{
	struct device_tag t = { 0 };
	char path[PATH_MAX], attr[PATH_MAX + 16], value[64];
	char name[64];
	const char *base;
	char *slash;
	int r;

	r = canonical(s, devpath, path, sizeof(path));
	if (r < 0)
		return r;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (!strncmp(base, "pmem", 4))
		t.kind = ND_KIND_PMEM;
	else if (!strncmp(base, "dax", 3))
		t.kind = ND_KIND_DAX;
	else
		return -ENODATA;

	/* DCD: the dax device itself carries the tag it claimed (a seed, size 0, has none yet
	 * even when a tag was just written to it) */
	if (t.kind == ND_KIND_DAX && strlen(base) < sizeof(name)) {
		bool tagged = false;
		uint64_t size = 0;
		strcpy(name, base);
		snprintf(attr, sizeof(attr), DCD_DAX_DEVICES "/%s/size", name);
		sysfs_read_u64(s, attr, &size);
		snprintf(attr, sizeof(attr), DCD_DAX_DEVICES "/%s/uuid", name);
		if (size && sysfs_read_tag(s, attr, &t.tag, &tagged) == 0 && tagged) {
			t.source = "cxl";
			*ret = t;
			return 0;
		}
	}
	/* NVDIMM: walk up to the namespace, directly or through the pfn/dax/btt claiming it */
	while ((slash = strrchr(path, '/'))) {
		*slash = '\0';
		base = strrchr(path, '/');
		base = base ? base + 1 : path;
		if (!strncmp(base, "namespace", 9))
			return tag_from_namespace(s, base, &t) == 0 ? (*ret = t, 0) : -ENODATA;
		snprintf(attr, sizeof(attr), "%s/namespace", path);
		if (sysfs_read(s, attr, value, sizeof(value)) == 0 && value[0])
			return tag_from_namespace(s, value, &t) == 0 ? (*ret = t, 0) : -ENODATA;
		if (!strcmp(base, "devices") || !strcmp(path, "sys"))
			break;
	}
	return -ENODATA;
}
