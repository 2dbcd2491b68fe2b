/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Daemonless resolution: what `tagmem lookup` does when brokerd is not running. It asks the
 * same view brokerd's backends and the udev helper use (view.h), with the default namespace
 * policy, so all three always agree on which device carries a tag. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "view.h"

TAGMEM_EXPORT int tagmem_resolve_tag(struct tagmem_ctx *ctx, const char *root,
				     const tagmem_tag *tag, char **ret_path)
{
	struct sysfs *s = NULL;
	struct view_tag *t;
	struct view v;
	char path[PATH_MAX];
	int r;

	if (!root || !tag || !ret_path)
		return -EINVAL;
	r = sysfs_open(root, &s);
	if (r < 0) {
		tm_dbg(ctx, "cannot open sysfs root %s: %s\n", root, strerror(-r));
		return r;
	}
	r = view_build(s, NULL, &v);
	sysfs_close(s);
	if (r < 0) {
		tm_dbg(ctx, "cannot read the devices under %s: %s\n", root, strerror(-r));
		return r;
	}
	if (v.skipped)
		tm_dbg(ctx, "%zu unreadable entries under %s skipped\n", v.skipped, root);
	t = view_find(&v, tag);
	r = !t || !t->device[0] ? -ENOENT : view_device_path(root, t->device, path, sizeof(path));
	view_clear(&v);
	if (r < 0)
		return r;
	*ret_path = strdup(path);
	return *ret_path ? 0 : -ENOMEM;
}
