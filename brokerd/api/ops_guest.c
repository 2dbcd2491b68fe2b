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

static struct json_object *slots_event(struct api *api, uid_t uid, const char *vm)
{
	struct json_object *ev = json_object_new_object();

	json_object_object_add(ev, "event", json_object_new_string("slots"));
	json_object_object_add(ev, "protocol", json_object_new_int(GUEST_PROTOCOL));
	json_object_object_add(ev, "vm", json_object_new_string(vm));
	json_object_object_add(ev, "slots", slots_of(api, uid, vm));
	return ev;
}

void api_guest_update(struct api *api, uid_t uid, const char *vm)
{
	struct guest_vm *g = api->guests ? guests_find(api->guests, uid, vm) : NULL;

	if (g && guest_connected(g)) /* built only for a guest that listens */
		answer_tell_guest(api, uid, vm, slots_event(api, uid, vm));
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

	answer_tell_guest(api, guest_uid(g), guest_name(g),
			  slots_event(api, guest_uid(g), guest_name(g)));
}

struct tag *arg_vm_tag(struct request *rq)
{
	struct guest_vm *g = rq->who.guest;
	tagmem_tag tag;
	struct tag *e;

	if (tagmem_json_get_tag(rq->msg, "tag", &tag) < 0) {
		reply_error(rq, "invalid_argument", "\"tag\" must be a UUID string");
		return NULL;
	}
	e = core_find(rq->api->core, &tag);
	if (!e || !tag_of_vm(e, guest_uid(g), guest_name(g)) || e->owner.slot < 0) {
		/* the same answer whether it exists or not: a guest learns nothing of others */
		reply_error(rq, "not_found", "no tag of this VM has that uuid");
		return NULL;
	}
	return e;
}

/* slots: the slot map of the label-less tags this guest's VM holds (the event's body). */
void op_slots(struct request *rq)
{
	struct json_object *res = json_object_new_object();

	json_object_object_add(res, "slots", slots_of(rq->api, rq->who.uid,
						      guest_name(rq->who.guest)));
	reply_result(rq, res, 0);
}

/* reclaim_ranges: the guest's answer to a reclaim event (reclaim.c). */
void op_reclaim_ranges(struct request *rq)
{
	struct json_object *res;
	const char *why = NULL;

	reclaim_answer(rq->api, rq->who.guest, rq->msg, &res, &why);
	if (res)
		reply_result(rq, res, 0);
	else
		reply_error(rq, "invalid_argument", "%s", why);
}
