/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the host says to the agent, read (guestd.h): the slot map event, and the reclaim
 * question with the agent's answer. The host is trusted no more than it must be: a message
 * that is not exactly what is expected changes nothing, and the answer always fits the
 * channel's line on brokerd's side.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "guestd.h"
#include "slots.h"
#include "util.h"

/* What an answer's own fields take, besides its ranges. */
#define RECLAIM_ANSWER_FIELDS 192

int guestd_parse_slots(struct json_object *ev, struct slot_map *ret)
{
	struct json_object *arr;
	size_t n;

	slot_map_init(ret);
	if (!json_object_object_get_ex(ev, "slots", &arr) ||
	    !json_object_is_type(arr, json_type_array) ||
	    (n = json_object_array_length(arr)) > SLOT_MAP_SLOTS)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(arr, i), *slot;
		tagmem_tag tag;
		int64_t s;

		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, "slot", &slot) ||
		    !json_object_is_type(slot, json_type_int) ||
		    (s = json_object_get_int64(slot)) < 0 || s >= SLOT_MAP_SLOTS ||
		    tagmem_json_get_tag(o, "tag", &tag) < 0 || tagmem_tag_is_null(&tag))
			return -EBADMSG;
		slot_map_add(ret, (unsigned)s, &tag);
	}
	return 0;
}

char *guestd_reclaim_answer(struct hints *hints, struct json_object *ev, size_t *ret_offered,
			    size_t *ret_cold)
{
	static struct hint_range r[HINT_RANGES];
	struct json_object *ans, *arr;
	const struct hint_range *cold = NULL;
	char s[TAGMEM_TAG_STRING_MAX];
	uint64_t req;
	tagmem_tag tag;
	size_t n, all;
	char *line;

	if (tagmem_json_get_u64(ev, "request", &req) < 0 || tagmem_json_get_tag(ev, "tag", &tag) < 0)
		return NULL;
	all = hints ? hints_cold(hints, &tag, &cold) : 0;
	n = hints_offer(cold, MIN(all, (size_t)HINT_RANGES),
			GUESTD_CHANNEL_LINE - RECLAIM_ANSWER_FIELDS, r);
	ans = json_object_new_object();
	arr = json_object_new_array();
	json_object_object_add(ans, "id", json_object_new_int(0)); /* the agent's own */
	json_object_object_add(ans, "op", json_object_new_string("reclaim_ranges"));
	json_object_object_add(ans, "request", json_object_new_uint64(req));
	json_object_object_add(ans, "tag", json_object_new_string(tagmem_tag_format(&tag, s)));
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "offset", json_object_new_uint64(r[i].off));
		json_object_object_add(o, "length", json_object_new_uint64(r[i].len));
		json_object_array_add(arr, o);
	}
	json_object_object_add(ans, "ranges", arr);
	line = strdup(json_object_to_json_string_ext(ans, JSON_C_TO_STRING_PLAIN));
	json_object_put(ans);
	*ret_offered = n;
	*ret_cold = all;
	return line;
}
