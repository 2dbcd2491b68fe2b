/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What a guest may ask over its channel, and what brokerd tells it (docs/protocol.md,
 * "Guest channel"). A guest is named by the socket it came in on (guests/), never by what it
 * says, and it only ever learns about its own VM's tags: the slot map of the label-less
 * capacity brokerd handed its VM, so the guest agent can name those devices by tag.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "guests.h"
#include "log.h"
#include "ops.h"
#include "wire.h"

/* Capacity the guest cannot learn the tag of from a label: everything but private images. */
static bool labelless(const struct tag *e)
{
	return !tag_is_image(e) || e->cap.shared;
}

/* The VM's label-less tags by slot: cold-plugged (qemu_args), attaching and attached. */
static struct json_object *slots_of(struct api *api, uid_t uid, const char *vm)
{
	struct json_object *arr = json_object_new_array();
	struct tag *e;

	core_for_each(e, api->core) {
		struct json_object *o;

		if (!tag_of_vm(e, uid, vm) || e->owner.slot < 0 || !labelless(e))
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "slot", json_object_new_int(e->owner.slot));
		json_object_object_add(o, "tag", json_object_new_string(e->tag_str));
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *slots_event(struct api *api, struct guest_vm *g)
{
	struct json_object *ev = json_object_new_object();

	json_object_object_add(ev, "event", json_object_new_string("slots"));
	json_object_object_add(ev, "protocol", json_object_new_int(GUEST_PROTOCOL));
	json_object_object_add(ev, "vm", json_object_new_string(guest_name(g)));
	json_object_object_add(ev, "slots", slots_of(api, guest_uid(g), guest_name(g)));
	return ev;
}

void api_guest_update(struct api *api, uid_t uid, const char *vm)
{
	struct guest_vm *g = api->guests ? guests_find(api->guests, uid, vm) : NULL;

	if (g && guest_connected(g))
		guest_send(api->guests, g, slots_event(api, g));
}

void api_guests_restore(struct api *api)
{
	struct guest_vm *g;
	struct tag *e;

	if (!api->guests)
		return;
	core_for_each(e, api->core) {
		if (!e->claimed || e->owner.slot < 0 || guests_find(api->guests, e->owner.uid,
								     e->owner.name))
			continue;
		if (guests_open(api->guests, e->owner.uid, e->owner.name, &g) < 0)
			log_warn("VM %s (uid %u) gets no guest channel", e->owner.name,
				 e->owner.uid);
	}
}

/* A VM needs its channel while it holds a tag (it may be started again with it). */
bool api_guest_in_use(void *userdata, uid_t uid, const char *vm)
{
	struct api *api = userdata;
	struct tag *e;

	core_for_each(e, api->core)
		if (tag_of_vm(e, uid, vm))
			return true;
	return false;
}

void api_guest_connected(void *userdata, struct guest_vm *g)
{
	struct api *api = userdata;

	guest_send(api->guests, g, slots_event(api, g));
}

static void guest_reply(struct api *api, struct guest_vm *g, struct json_object *id,
			struct json_object *result, const char *code, const char *message)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(id));
	if (result) {
		json_object_object_add(o, "result", result);
	} else {
		struct json_object *err = json_object_new_object();

		json_object_object_add(err, "code", json_object_new_string(code));
		json_object_object_add(err, "message", json_object_new_string(message));
		json_object_object_add(o, "error", err);
	}
	guest_send(api->guests, g, o);
}

/* A tag of this guest's VM: claimed for it (cold-plugged, attaching or attached). */
static struct tag *own_tag(struct api *api, struct guest_vm *g, struct json_object *msg,
			   const char **why)
{
	tagmem_tag tag;
	struct tag *e;

	if (tagmem_json_get_tag(msg, "tag", &tag) < 0) {
		*why = "\"tag\" must be a UUID string";
		return NULL;
	}
	e = core_find(api->core, &tag);
	if (!e || !tag_of_vm(e, guest_uid(g), guest_name(g)) || e->owner.slot < 0) {
		/* the same answer whether it exists or not: a guest learns nothing of others */
		*why = "no tag of this VM has that uuid";
		return NULL;
	}
	return e;
}

/* flush: the host's range flush of an image this VM holds; answered at once with an id, the
 * completion follows as a flush_done event (or the answer waits, with "wait": true). */
static void guest_flush(struct api *api, struct guest_vm *g, struct json_object *msg,
			struct json_object *id)
{
	uint64_t off = 0, len = 0;
	bool wait = false, has_len;
	const char *why = NULL;
	struct dp_request *d;
	struct tag *e = own_tag(api, g, msg, &why);
	struct json_object *res;
	int r;

	if (!e) {
		guest_reply(api, g, id, NULL, "not_found", why);
		return;
	}
	if (!tag_is_image(e) || !e->image.io) {
		guest_reply(api, g, id, NULL, "not_supported", "only images have a host page cache "
			    "to flush; a DCD tag's writes are in its memory already");
		return;
	}
	r = tagmem_json_get_u64(msg, "offset", &off);
	if (r == -EINVAL || (r = tagmem_json_get_u64(msg, "length", &len)) == -EINVAL ||
	    tagmem_json_get_bool(msg, "wait", &wait) == -EINVAL) {
		guest_reply(api, g, id, NULL, "invalid_argument", "\"offset\" and \"length\" are "
			    "byte counts, \"wait\" true or false");
		return;
	}
	has_len = r == 0;
	why = flush_range(e, off, has_len, &len);
	if (why) {
		guest_reply(api, g, id, NULL, "invalid_argument", why);
		return;
	}
	d = dp_request_new(DP_FLUSH, e->image.io);
	if (!d) {
		guest_reply(api, g, id, NULL, "io_error", "out of memory");
		return;
	}
	snprintf(d->tag_str, sizeof(d->tag_str), "%s", e->tag_str);
	d->from_guest = true;
	d->guest_uid = guest_uid(g);
	snprintf(d->guest_vm, sizeof(d->guest_vm), "%s", guest_name(g));
	d->id = ++api->next_flush_id;
	d->data_offset = e->image.data_offset;
	d->off = d->data_offset + off;
	d->len = len;
	d->wait = wait;
	d->req_id = json_object_get(id);
	if (!wait) {
		res = json_object_new_object();
		json_object_object_add(res, "flush_id", json_object_new_uint64(d->id));
		json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(res, "state", json_object_new_string("queued"));
		guest_reply(api, g, id, res, NULL, NULL);
	}
	dataplane_submit(api->dp, d);
}

void api_guest_flush_done(struct api *api, struct dp_request *d, struct json_object *res,
			  const char *error_code)
{
	struct guest_vm *g = api->guests ? guests_find(api->guests, d->guest_uid, d->guest_vm) :
			     NULL;
	struct json_object *ev;

	if (d->wait) {
		if (g && guest_connected(g))
			guest_reply(api, g, d->req_id, error_code ? NULL : json_object_get(res),
				    error_code, d->errmsg);
	} else if (g && guest_connected(g)) {
		ev = json_object_get(res);
		json_object_object_add(ev, "event", json_object_new_string("flush_done"));
		if (error_code) {
			struct json_object *err = json_object_new_object();

			json_object_object_add(err, "code", json_object_new_string(error_code));
			json_object_object_add(err, "message", json_object_new_string(d->errmsg));
			json_object_object_add(ev, "error", err);
		}
		guest_send(api->guests, g, json_object_get(ev));
		json_object_put(ev);
	}
	/* the host's subscribers see every flush, and which VM asked */
	json_object_object_add(res, "event", json_object_new_string("flush_done"));
	json_object_object_add(res, "vm", json_object_new_string(d->guest_vm));
	if (error_code) {
		struct json_object *err = json_object_new_object();

		json_object_object_add(err, "code", json_object_new_string(error_code));
		json_object_object_add(err, "message", json_object_new_string(d->errmsg));
		json_object_object_add(res, "error", err);
	}
	api_emit(api, res);
}

void api_guest_request(void *userdata, struct guest_vm *g, const char *line, size_t len)
{
	struct api *api = userdata;
	struct json_object *msg = NULL, *id = NULL, *res;
	const char *op, *why = NULL;
	int r;

	api->guest_requests++;
	r = wire_parse(line, len, len + 1, &msg, &why);
	if (r < 0 || !json_object_is_type(msg, json_type_object)) {
		guest_reply(api, g, NULL, NULL, "bad_request",
			    why ? why : "a request is one JSON object on one line");
		goto out;
	}
	/* an id is echoed: only a number or a short string, never a structure to copy back */
	if (json_object_object_get_ex(msg, "id", &id) &&
	    !(json_object_is_type(id, json_type_int) ||
	      (json_object_is_type(id, json_type_string) && json_object_get_string_len(id) <= 64)))
		id = NULL;
	if (tagmem_json_get_string(msg, "op", &op) < 0) {
		guest_reply(api, g, id, NULL, "bad_request", "\"op\" must be a string");
		goto out;
	}
	if (!strcmp(op, "hello")) {
		struct json_object *ops = json_object_new_array();

		res = json_object_new_object();
		json_object_object_add(res, "protocol", json_object_new_int(GUEST_PROTOCOL));
		json_object_object_add(res, "vm", json_object_new_string(guest_name(g)));
		json_object_array_add(ops, json_object_new_string("hello"));
		json_object_array_add(ops, json_object_new_string("slots"));
		json_object_array_add(ops, json_object_new_string("flush"));
		json_object_array_add(ops, json_object_new_string("reclaim_ranges"));
		json_object_object_add(res, "ops", ops);
		guest_reply(api, g, id, res, NULL, NULL);
	} else if (!strcmp(op, "flush")) {
		guest_flush(api, g, msg, id);
	} else if (!strcmp(op, "reclaim_ranges")) {
		reclaim_answer(api, g, msg, &res, &why);
		guest_reply(api, g, id, res, res ? NULL : "invalid_argument", why);
	} else if (!strcmp(op, "slots")) {
		res = json_object_new_object();
		json_object_object_add(res, "slots", slots_of(api, guest_uid(g), guest_name(g)));
		guest_reply(api, g, id, res, NULL, NULL);
	} else {
		guest_reply(api, g, id, NULL, "unknown_op", "the guest channel has no such op");
	}
out:
	json_object_put(msg);
}
