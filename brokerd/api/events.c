/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The core's events for subscribers: {"event": name, …}, built only when somebody listens
 * (sent by answer.c). */
#include <json-c/json.h>

#include "api.h"
#include "core.h"
#include "util.h"

void api_tag_event(void *userdata, const char *name, const struct tag *t)
{
	struct api *api = userdata;
	struct json_object *ev;

	api_cdi_changed(api);
	if (!api->transport.subscribers(api->transport.data))
		return; /* nobody listens: do not even build it */
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(name));
	json_object_object_add(ev, "tag", tag_to_json(t));
	api_emit(api, ev);
}

void api_untagged_event(void *userdata, int64_t delta, uint64_t total)
{
	struct api *api = userdata;
	struct json_object *ev;

	if (!api->transport.subscribers(api->transport.data))
		return;
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(
		delta >= 0 ? "untagged_added" : "untagged_released"));
	json_object_object_add(ev, "size",
			       json_object_new_uint64((uint64_t)(delta < 0 ? -delta : delta)));
	json_object_object_add(ev, "untagged_bytes", json_object_new_uint64(total));
	api_emit(api, ev);
}
