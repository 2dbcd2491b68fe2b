/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A Container Device Interface spec of this host's tags (--cdi-spec, docs/operations.md
 * "Containers"), so that `podman run --device tagmem.io/tag=<uuid>` gets a tag's capacity by
 * its tag, the way a guest finds it. Every tag that has a device (ready or claimed) is a
 * device named by its tag; the container sees it at /dev/tagmem/<uuid>: a device node where
 * the host has one, a bind mount of the file for an image or a simulated device. CDI does
 * not claim: a container's user claims the tag first, as for any other use.
 *
 * Rebuilt on the upkeep tick after a tag changed (api_cdi_changed, from the tag events), and
 * written off the loop (base/textfile.h) only when the text differs from the last one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core.h"
#include "ops.h"
#include "textfile.h"

#define CDI_VERSION "0.5.0" /* deviceNodes' hostPath, names beginning with a digit */
#define CDI_KIND "tagmem.io/tag"

void api_cdi_changed(struct api *api)
{
	api->cdi_stale = true;
}

static struct json_object *device_edits(const struct tag *t)
{
	struct json_object *edits = json_object_new_object(), *list = json_object_new_array();
	struct json_object *one = json_object_new_object();
	char inside[64];

	snprintf(inside, sizeof(inside), "/dev/tagmem/%s", t->tag_str);
	if (!tag_is_image(t) && !strncmp(t->cap.path, "/dev/", 5)) {
		/* a node of the host's devtmpfs: the runtime makes the same node inside */
		json_object_object_add(one, "path", json_object_new_string(inside));
		json_object_object_add(one, "hostPath", json_object_new_string(t->cap.path));
		json_object_array_add(list, one);
		json_object_object_add(edits, "deviceNodes", list);
	} else {
		struct json_object *opts = json_object_new_array();

		json_object_array_add(opts, json_object_new_string("bind"));
		json_object_array_add(opts, json_object_new_string("rw"));
		json_object_object_add(one, "hostPath", json_object_new_string(t->cap.path));
		json_object_object_add(one, "containerPath", json_object_new_string(inside));
		json_object_object_add(one, "options", opts);
		json_object_array_add(list, one);
		json_object_object_add(edits, "mounts", list);
	}
	return edits;
}

static char *build_spec(struct api *api, size_t *len)
{
	struct json_object *spec = json_object_new_object(), *devices = json_object_new_array();
	const char *text;
	struct tag *t;
	char *copy;

	json_object_object_add(spec, "cdiVersion", json_object_new_string(CDI_VERSION));
	json_object_object_add(spec, "kind", json_object_new_string(CDI_KIND));
	core_for_each(t, api->core) {
		struct json_object *dev;
		enum tag_state s = tag_state(t);

		if ((s != TAG_READY && s != TAG_CLAIMED) || !t->cap.path)
			continue;
		dev = json_object_new_object();
		json_object_object_add(dev, "name", json_object_new_string(t->tag_str));
		json_object_object_add(dev, "containerEdits", device_edits(t));
		json_object_array_add(devices, dev);
	}
	json_object_object_add(spec, "devices", devices);
	text = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE);
	copy = strdup(text);
	*len = copy ? strlen(copy) : 0;
	json_object_put(spec);
	return copy;
}

void api_cdi_tick(struct api *api)
{
	size_t len;
	char *text;

	if (!api->cdi_file || !api->cdi_stale)
		return;
	text = build_spec(api, &len);
	if (!text)
		return; /* out of memory: stale stays set, the next tick tries again */
	api->cdi_stale = false;
	if (api->cdi_last && !strcmp(api->cdi_last, text)) {
		free(text);
		return; /* a tag event that changed nothing a container sees */
	}
	free(api->cdi_last);
	api->cdi_last = strdup(text);
	textfile_put(api->cdi_file, text, len);
}
