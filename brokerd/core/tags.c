/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tag record: derived state, and the protocol's tag object (one builder everywhere). */
#include <json-c/json.h>

#include "core.h"

enum tag_state tag_state(const struct tag *t)
{
	if (t->gone)
		return TAG_RELEASED;
	if (!t->cap.path)
		return TAG_ADDED;
	if (t->claimed && (t->release_requested || t->vm == TAG_VM_DETACH_PENDING))
		return TAG_RELEASE_PENDING;
	return t->claimed ? TAG_CLAIMED : TAG_READY;
}

const char *tag_state_name(enum tag_state s)
{
	switch (s) {
	case TAG_ADDED: return "added";
	case TAG_READY: return "ready";
	case TAG_CLAIMED: return "claimed";
	case TAG_RELEASE_PENDING: return "release_pending";
	case TAG_RELEASED: return "released";
	}
	return "unknown";
}

const char *tag_layout(const struct tag *t)
{
	if (!t->image.data_offset)
		return "pmem";
	return t->image.fsdax ? "fsdax" : "devdax";
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* Unknown values are left out, never null. */
struct json_object *tag_to_json(const struct tag *t)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_str(o, "tag", t->tag_str);
	add_str(o, "state", tag_state_name(tag_state(t)));
	add_u64(o, "size", t->cap.size);
	add_u64(o, "region", t->cap.region);
	json_object_object_add(o, "shared", json_object_new_boolean(t->cap.shared));
	add_u64(o, "extents", t->cap.nextents);
	if (t->cap.device[0])
		add_str(o, "device", t->cap.device);
	if (t->cap.path)
		add_str(o, "path", t->cap.path);
	if (t->claimed) {
		struct json_object *own = json_object_new_object();
		add_u64(own, "uid", t->owner.uid);
		if (t->owner.pid > 0)
			add_u64(own, "pid", (uint64_t)t->owner.pid);
		if (t->owner.name[0])
			add_str(own, "name", t->owner.name);
		json_object_object_add(own, "since", json_object_new_int64(t->owner.since));
		if (t->owner.slot >= 0)
			json_object_object_add(own, "slot", json_object_new_int(t->owner.slot));
		if (t->owner.granted)
			json_object_object_add(own, "granted", json_object_new_boolean(true));
		json_object_object_add(o, "owner", own);
	}
	if (tag_is_image(t)) {
		json_object_object_add(o, "image", json_object_new_boolean(true));
		add_u64(o, "file_size", t->image.file_size);
		add_str(o, "layout", tag_layout(t));
		add_u64(o, "data_offset", t->image.data_offset);
	}
	if (t->vm == TAG_VM_ATTACHED || t->vm == TAG_VM_DETACH_PENDING)
		json_object_object_add(o, "attached", json_object_new_boolean(true));
	if (t->vm == TAG_VM_DETACH_PENDING)
		json_object_object_add(o, "detach_pending", json_object_new_boolean(true));
	if (t->vm == TAG_VM_INCOMING)
		json_object_object_add(o, "incoming", json_object_new_boolean(true));
	if (t->release_requested)
		json_object_object_add(o, "release_requested", json_object_new_boolean(true));
	return o;
}

struct json_object *image_lost_json(const struct image_lost *lost)
{
	struct json_object *o;

	if (!lost->since)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "since", json_object_new_int64(lost->since));
	json_object_object_add(o, "error", json_object_new_string(lost->error));
	return o;
}
