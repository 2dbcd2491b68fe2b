/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest-chosen eviction. The host knows how many pages it needs back; the guest knows which
 * of its pages matter least. Before brokerd evicts an image that a VM with a guest channel
 * holds, it asks that guest which ranges it can give back ("reclaim" event) and waits until
 * the deadline (--guest-reclaim-ms) for a "reclaim_ranges" answer. The eviction then takes
 * those ranges first and its own order for the rest, or only its own order when the guest
 * says nothing in time. Nothing dirty is ever dropped: the data plane writes back first.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "guests.h"
#include "log.h"
#include "ops.h"

#define RECLAIMS_MAX 64

struct reclaim {
	uint64_t id;                /* 0: free */
	struct dp_request *d;       /* the eviction, submitted once answered or expired */
	uint64_t deadline_usec;
	uid_t uid;
	char vm[128];               /* the owner's name: a VM's is at most 64 bytes */
	tagmem_tag tag;
};

static struct guest_vm *channel_of(struct api *api, const struct tag *e);

bool reclaim_asks(struct api *api, const struct tag *e)
{
	return api->settings->guest_reclaim_ms && channel_of(api, e);
}

static struct guest_vm *channel_of(struct api *api, const struct tag *e)
{
	struct guest_vm *g;

	if (!api->guests || !e->claimed || e->owner.slot < 0)
		return NULL;
	g = guests_find(api->guests, e->owner.uid, e->owner.name);
	return g && guest_connected(g) ? g : NULL;
}

void reclaim_submit(struct api *api, struct tag *e, struct dp_request *d)
{
	struct guest_vm *g = channel_of(api, e);
	struct reclaim *rc = NULL;
	struct json_object *ev;

	for (unsigned i = 0; g && api->reclaims && i < RECLAIMS_MAX && !rc; i++)
		if (!api->reclaims[i].id)
			rc = &api->reclaims[i];
	if (!rc || !api->settings->guest_reclaim_ms) {
		dataplane_submit(api->dp, d); /* nobody to ask, or asking is off */
		return;
	}
	rc->id = ++api->next_reclaim_id;
	rc->d = d;
	rc->deadline_usec = now_usec() + api->settings->guest_reclaim_ms * 1000ull;
	rc->uid = e->owner.uid;
	snprintf(rc->vm, sizeof(rc->vm), "%s", e->owner.name);
	rc->tag = e->tag;
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string("reclaim"));
	json_object_object_add(ev, "request", json_object_new_uint64(rc->id));
	json_object_object_add(ev, "tag", json_object_new_string(e->tag_str));
	/* what the host wants resident afterwards, if it knows (a share: 0) */
	json_object_object_add(ev, "keep_bytes", json_object_new_uint64(
		d->fraction > 0 || d->target == UINT64_MAX ? 0 : d->target));
	json_object_object_add(ev, "reason", json_object_new_string(image_work(d)->reason[0] ?
								    image_work(d)->reason : "request"));
	json_object_object_add(ev, "deadline_ms", json_object_new_uint64(
		api->settings->guest_reclaim_ms));
	answer_tell_guest(api, rc->uid, rc->vm, ev);
	api->reclaims_asked++;
}

/* reclaim_ranges — request, tag, ranges [{offset, length}…] (the tag's data offsets) */
void reclaim_answer(struct api *api, struct guest_vm *g, struct json_object *msg,
		    struct json_object **ret_result, const char **ret_error)
{
	struct json_object *arr;
	struct reclaim *rc = NULL;
	struct dp_range *ranges;
	struct tag *e;
	uint64_t req, size, base;
	size_t n, k = 0;

	*ret_result = NULL;
	if (tagmem_json_get_u64(msg, "request", &req) < 0) {
		*ret_error = "\"request\" must be the id of a reclaim event";
		return;
	}
	for (unsigned i = 0; api->reclaims && i < RECLAIMS_MAX && !rc; i++)
		if (api->reclaims[i].id == req && api->reclaims[i].uid == guest_uid(g) &&
		    !strcmp(api->reclaims[i].vm, guest_name(g)))
			rc = &api->reclaims[i];
	if (!rc) {
		*ret_error = "no reclaim of this VM is waiting with that id (late, or never asked)";
		return;
	}
	e = core_find(api->core, &rc->tag);
	if (!json_object_object_get_ex(msg, "ranges", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    (n = json_object_array_length(arr)) > DP_PREFER_MAX || !e || !tag_is_image(e)) {
		*ret_error = "\"ranges\" must be an array of at most 1024 {offset, length}";
		return;
	}
	size = e->cap.size;
	base = e->image.data_offset;
	ranges = n ? calloc(n, sizeof(*ranges)) : NULL;
	if (n && !ranges) {
		*ret_error = "out of memory";
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(arr, i);
		uint64_t off, len;

		if (!json_object_is_type(o, json_type_object) ||
		    tagmem_json_get_u64(o, "offset", &off) < 0 ||
		    tagmem_json_get_u64(o, "length", &len) < 0 || !len || off >= size) {
			free(ranges);
			*ret_error = "each range is {\"offset\": bytes, \"length\": bytes > 0} inside "
				     "the image's data";
			return;
		}
		len = MIN(len, size - off);
		/* whole pages: the part of a page a range touches is not the guest's to give */
		ranges[k].off = base + ((off + 4095) & ~4095ull);
		ranges[k].len = ((base + off + len) & ~4095ull) > ranges[k].off ?
				((base + off + len) & ~4095ull) - ranges[k].off : 0;
		if (ranges[k].len)
			k++;
	}
	rc->d->prefer = ranges;
	rc->d->nprefer = k;
	image_work(rc->d)->guest_chose = true;
	dataplane_submit(api->dp, rc->d);
	api->reclaims_answered++;
	memset(rc, 0, sizeof(*rc));
	*ret_result = json_object_new_object();
	json_object_object_add(*ret_result, "accepted", json_object_new_uint64(k));
}

void reclaim_tick(struct api *api)
{
	uint64_t now = now_usec();

	for (unsigned i = 0; api->reclaims && i < RECLAIMS_MAX; i++) {
		struct reclaim *rc = &api->reclaims[i];

		if (!rc->id || now < rc->deadline_usec)
			continue;
		log_debug("VM %s did not say in time which ranges of %s to give back; brokerd "
			  "chooses", rc->vm, image_work(rc->d)->tag_str);
		dataplane_submit(api->dp, rc->d); /* the host's own choice, as without a guest */
		api->reclaims_expired++;
		memset(rc, 0, sizeof(*rc));
	}
}

int reclaim_init(struct api *api)
{
	api->reclaims = calloc(RECLAIMS_MAX, sizeof(*api->reclaims));
	return api->reclaims ? 0 : -ENOMEM;
}

void reclaim_fini(struct api *api)
{
	for (unsigned i = 0; api->reclaims && i < RECLAIMS_MAX; i++)
		if (api->reclaims[i].id)
			dp_request_free(api->reclaims[i].d);
	free(api->reclaims);
	api->reclaims = NULL;
}
