/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The simulated fabric manager's ops: fm_add and fm_release (root or the daemon's user). */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "backend.h"
#include "ops.h"

static bool fm_allowed(struct request *rq)
{
	const struct backend_ops *ops = rq->api->backend->ops;

	if (!ops->fm_add && ops->no_fm) {
		reply_error(rq, "unsupported", "%s", ops->no_fm(rq->api->backend));
		return false;
	}
	if (!ops->fm_add) {
		reply_error(rq, "unsupported", "the %s backend has no fabric manager", ops->name);
		return false;
	}
	return true;
}

void op_fm_add(struct request *rq)
{
	struct api *api = rq->api;
	struct json_object *res;
	tagmem_tag tag;
	bool shared = false, tagged;
	uint64_t size;
	unsigned region, n;
	int r;

	if (!fm_allowed(rq))
		return;
	/* the op table's rules checked size, shared and tag */
	tagmem_json_get_u64(rq->msg, "size", &size);
	tagmem_json_get_bool(rq->msg, "shared", &shared);
	tagged = tagmem_json_get_tag(rq->msg, "tag", &tag) == 0;
	if (!tagged && shared) {
		/* Shared capacity is only ever found by its tag: the fabric manager names it. */
		tagmem_tag_generate(&tag);
		tagged = true;
	}
	if (tagged && core_find(api->core, &tag)) {
		reply_error(rq, "exists", "tag %s is already allocated", json_object_get_string(
			json_object_object_get(rq->msg, "tag")));
		return;
	}
	r = api->backend->ops->fm_add(api->backend, size, tagged ? &tag : NULL, shared, &region, &n);
	if (r == -ENOSPC) {
		char human[32];

		/* in the units the user typed the size in, and the exact bytes */
		reply_error(rq, "no_space", "the %s region has no %s (%llu bytes) free; brokerd "
			    "--sim-region-size sets how much a simulated region holds",
			    shared ? "shared" : "private", format_size(size, human, sizeof(human)),
			    (unsigned long long)size);
		return;
	}
	if (r == -EEXIST) {
		reply_error(rq, "exists", "that tag is already allocated");
		return;
	}
	if (r == -E2BIG) {
		reply_error(rq, "no_space", "the free capacity of the %s region is so scattered "
			    "that this allocation would take more extents than the kernel accepts "
			    "in one allocation; ask for less, or release capacity first", shared ? "shared" : "private");
		return;
	}
	if (r < 0) {
		reply_error(rq, "internal", "the fabric manager failed: %s", strerror(-r));
		return;
	}
	res = json_object_new_object();
	if (tagged) {
		char s[TAGMEM_TAG_STRING_MAX];
		struct tag *e = core_find(api->core, &tag);
		json_object_object_add(res, "tag",
				       json_object_new_string(tagmem_tag_format(&tag, s)));
		if (e)
			json_object_object_add(res, "state",
					       json_object_new_string(tag_state_name(tag_state(e))));
		if (e && e->cap.path)
			json_object_object_add(res, "path", json_object_new_string(e->cap.path));
	}
	json_object_object_add(res, "size", json_object_new_uint64(size));
	json_object_object_add(res, "region", json_object_new_uint64(region));
	json_object_object_add(res, "shared", json_object_new_boolean(shared));
	json_object_object_add(res, "extents", json_object_new_uint64(n));
	reply_result(rq, res, 0);
}

void op_fm_release(struct request *rq)
{
	struct api *api = rq->api;
	struct json_object *res;
	tagmem_tag tag;
	char s[TAGMEM_TAG_STRING_MAX];
	int r;

	if (!fm_allowed(rq))
		return;
	if (!arg_tag(rq, &tag, true))
		return;
	r = api->backend->ops->fm_release(api->backend, &tag);
	if (r == -ENOENT) {
		reply_error(rq, "not_found", "the fabric manager has no allocation with that tag");
		return;
	}
	if (r < 0) {
		reply_error(rq, "internal", "the fabric manager failed: %s", strerror(-r));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(tagmem_tag_format(&tag, s)));
	/* Report what happened, not what was asked: the tag may still be held. */
	json_object_object_add(res, "state", json_object_new_string(
		core_find(api->core, &tag) ? "release_pending" : "released"));
	reply_result(rq, res, core_last_persist(api->core));
}

