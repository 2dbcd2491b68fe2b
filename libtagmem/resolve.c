/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Daemonless resolution: what `tagmem lookup` does when brokerd is not running. It reads the
 * same attributes the broker does (dcd.h), so both always agree on what a tag names. */
#include <stdio.h>
#include <string.h>

#include "dcd.h"
#include "nd.h"
#include "private.h"

static int device_path(const char *root, const char *device, char **ret_path)
{
	return asprintf(ret_path, "%s%sdev/%s", root, root[strlen(root) - 1] == '/' ? "" : "/",
			device) < 0 ? -ENOMEM : 0;
}

/* A namespace whose label uuid is the tag (what a guest sees of a tagged nvdimm). */
static int resolve_namespace(struct sysfs *s, const char *root, const tagmem_tag *tag,
			     char **ret_path)
{
	struct nd_namespace *ns = NULL;
	size_t n = 0;
	int r = nd_scan(s, &ns, &n);

	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (ns[i].tagged && ns[i].device[0] && !tagmem_tag_compare(&ns[i].tag, tag)) {
			r = device_path(root, ns[i].device, ret_path);
			break;
		}
	free(ns);
	return r;
}

TAGMEM_EXPORT int tagmem_resolve_tag(struct tagmem_ctx *ctx, const char *root,
				     const tagmem_tag *tag, char **ret_path)
{
	struct sysfs *s = NULL;
	char **names = NULL;
	size_t n = 0;
	int r;

	if (!root || !tag || !ret_path)
		return -EINVAL;
	r = sysfs_open(root, &s);
	if (r < 0) {
		tm_dbg(ctx, "cannot open sysfs root %s: %s\n", root, strerror(-r));
		return r;
	}
	r = sysfs_list(s, DCD_DAX_DEVICES, "dax", &names, &n);
	if (r < 0)
		goto out;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		struct dcd_daxdev d;
		char *path;

		if (dcd_read_daxdev(s, names[i], &d) < 0 || !d.tagged || d.size == 0 ||
		    tagmem_tag_compare(&d.tag, tag))
			continue;
		r = device_path(root, d.name, &path);
		if (r == 0)
			*ret_path = path;
		break;
	}
	if (r == -ENOENT)
		r = resolve_namespace(s, root, tag, ret_path);
out:
	sysfs_names_free(names, n);
	sysfs_close(s);
	return r;
}
