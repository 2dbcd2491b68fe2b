/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The typed calls (tagmem.h, LIBTAGMEM_1.2): a request built and its answer read here, so
 * that a program sees tags, paths and errnos, never json-c. A tagmem_info keeps the tag
 * object it was read from (for tagmem_info_get_json) and points into it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "private.h"

struct tagmem_info {
	int refcount;
	struct json_object *obj;   /* the tag object, owned */
	tagmem_tag tag;
	const char *state, *device, *path, *owner_name, *json;
	uint64_t size;
	bool shared, image;
	int64_t owner_uid;
};

/* brokerd's refusal as an errno (the code stays on the client). */
static int refusal(struct tagmem_client *c, int r)
{
	static const struct { const char *code; int err; } map[] = {
		{ "not_found", ENOENT }, { "not_claimed", ENOENT }, { "busy", EBUSY },
		{ "release_pending", EBUSY }, { "not_ready", EAGAIN },
		{ "permission_denied", EPERM }, { "invalid_argument", EINVAL },
	};
	const char *code = tagmem_client_get_error(c, NULL);

	if (r != -EREMOTEIO || !code)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (!strcmp(code, map[i].code))
			return -map[i].err;
	return -EREMOTEIO;
}

/* op on tag (plus name/grant for a claim): the reply, whose result is *ret_result. */
static int tag_call(struct tagmem_client *c, const char *op, const tagmem_tag *tag,
		    struct json_object *extra, struct json_object **ret_reply,
		    struct json_object **ret_result)
{
	_cleanup_json_ struct json_object *req = NULL;
	char s[TAGMEM_TAG_STRING_MAX];
	int r;

	req = tagmem_request_new(op);
	if (!req) {
		json_object_put(extra);
		return -ENOMEM;
	}
	if (tag)
		json_object_object_add(req, "tag", json_object_new_string(tagmem_tag_format(tag, s)));
	if (extra) {
		json_object_object_foreach(extra, k, v)
			json_object_object_add(req, k, json_object_get(v));
		json_object_put(extra);
	}
	r = tagmem_client_call_result(c, req, client_timeout(c), ret_reply);
	if (r < 0)
		return refusal(c, r);
	*ret_result = tagmem_reply_result(*ret_reply);
	return 0;
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
	       json_object_get_string(v) : NULL;
}

static bool bool_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

/* A tag object into an info (taking a reference to it); -EPROTO if it is not one. */
static int info_new(struct json_object *obj, struct tagmem_info **ret)
{
	struct tagmem_info *i;
	struct json_object *owner, *uid;
	uint64_t size = 0;

	if (!json_object_is_type(obj, json_type_object) || !str_of(obj, "state"))
		return -EPROTO;
	i = calloc(1, sizeof(*i));
	if (!i)
		return -ENOMEM;
	if (tagmem_json_get_tag(obj, "tag", &i->tag) < 0) {
		free(i);
		return -EPROTO;
	}
	i->refcount = 1;
	i->obj = json_object_get(obj);
	i->state = str_of(obj, "state");
	i->device = str_of(obj, "device");
	i->path = str_of(obj, "path");
	tagmem_json_get_u64(obj, "size", &size);
	i->size = size;
	i->shared = bool_of(obj, "shared");
	i->image = bool_of(obj, "image");
	i->owner_uid = -1;
	if (json_object_object_get_ex(obj, "owner", &owner) &&
	    json_object_is_type(owner, json_type_object)) {
		i->owner_name = str_of(owner, "name");
		if (json_object_object_get_ex(owner, "uid", &uid) &&
		    json_object_is_type(uid, json_type_int))
			i->owner_uid = json_object_get_int64(uid);
	}
	i->json = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE);
	*ret = i;
	return 0;
}

TAGMEM_EXPORT struct tagmem_info *tagmem_info_unref(struct tagmem_info *i)
{
	if (!i || --i->refcount > 0)
		return NULL;
	json_object_put(i->obj);
	free(i);
	return NULL;
}

TAGMEM_EXPORT void tagmem_info_list_free(struct tagmem_info **infos, size_t n)
{
	for (size_t k = 0; infos && k < n; k++)
		tagmem_info_unref(infos[k]);
	free(infos);
}

TAGMEM_EXPORT const tagmem_tag *tagmem_info_get_tag(const struct tagmem_info *i)
{
	return &i->tag;
}

TAGMEM_EXPORT const char *tagmem_info_get_state(const struct tagmem_info *i)
{
	return i->state;
}

TAGMEM_EXPORT uint64_t tagmem_info_get_size(const struct tagmem_info *i)
{
	return i->size;
}

TAGMEM_EXPORT bool tagmem_info_is_shared(const struct tagmem_info *i)
{
	return i->shared;
}

TAGMEM_EXPORT bool tagmem_info_is_image(const struct tagmem_info *i)
{
	return i->image;
}

TAGMEM_EXPORT const char *tagmem_info_get_device(const struct tagmem_info *i)
{
	return i->device;
}

TAGMEM_EXPORT const char *tagmem_info_get_path(const struct tagmem_info *i)
{
	return i->path;
}

TAGMEM_EXPORT const char *tagmem_info_get_owner_name(const struct tagmem_info *i)
{
	return i->owner_name;
}

TAGMEM_EXPORT int64_t tagmem_info_get_owner_uid(const struct tagmem_info *i)
{
	return i->owner_uid;
}

TAGMEM_EXPORT const char *tagmem_info_get_json(const struct tagmem_info *i)
{
	return i->json;
}

/* A copy of the result's "path", or -EPROTO. */
static int path_of(struct json_object *result, char **ret_path)
{
	const char *p = str_of(result, "path");

	if (!p)
		return -EPROTO;
	*ret_path = strdup(p);
	return *ret_path ? 0 : -ENOMEM;
}

TAGMEM_EXPORT int tagmem_lookup(struct tagmem_client *c, const tagmem_tag *tag, char **ret_path)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res;
	int r;

	if (!c || !tag || !ret_path)
		return -EINVAL;
	r = tag_call(c, "lookup", tag, NULL, &reply, &res);
	return r < 0 ? r : path_of(res, ret_path);
}

TAGMEM_EXPORT int tagmem_show(struct tagmem_client *c, const tagmem_tag *tag,
			      struct tagmem_info **ret_info)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res;
	int r;

	if (!c || !tag || !ret_info)
		return -EINVAL;
	r = tag_call(c, "show", tag, NULL, &reply, &res);
	return r < 0 ? r : info_new(res, ret_info);
}

TAGMEM_EXPORT int tagmem_list(struct tagmem_client *c, struct tagmem_info ***ret_infos,
			      size_t *ret_n)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res, *tags;
	struct tagmem_info **infos;
	size_t n;
	int r;

	if (!c || !ret_infos || !ret_n)
		return -EINVAL;
	r = tag_call(c, "list", NULL, NULL, &reply, &res);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(res, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array))
		return -EPROTO;
	n = json_object_array_length(tags);
	infos = calloc(n ? n : 1, sizeof(*infos));
	if (!infos)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		r = info_new(json_object_array_get_idx(tags, k), &infos[k]);
		if (r < 0) {
			tagmem_info_list_free(infos, k);
			return r;
		}
	}
	*ret_infos = infos;
	*ret_n = n;
	return 0;
}

TAGMEM_EXPORT int tagmem_claim(struct tagmem_client *c, const tagmem_tag *tag, const char *name,
			       bool grant, struct tagmem_info **ret_info)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res, *extra;
	int r;

	if (!c || !tag)
		return -EINVAL;
	extra = json_object_new_object();
	if (name)
		json_object_object_add(extra, "name", json_object_new_string(name));
	if (grant)
		json_object_object_add(extra, "grant", json_object_new_boolean(true));
	r = tag_call(c, "claim", tag, extra, &reply, &res);
	if (r < 0 || !ret_info)
		return r;
	return info_new(res, ret_info);
}

TAGMEM_EXPORT int tagmem_release(struct tagmem_client *c, const tagmem_tag *tag,
				 bool *ret_capacity_released)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res;
	int r;

	if (!c || !tag)
		return -EINVAL;
	r = tag_call(c, "release", tag, NULL, &reply, &res);
	if (r == 0 && ret_capacity_released)
		*ret_capacity_released = bool_of(res, "capacity_released");
	return r;
}

TAGMEM_EXPORT int tagmem_subscribe(struct tagmem_client *c)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *res;

	if (!c)
		return -EINVAL;
	return tag_call(c, "subscribe", NULL, NULL, &reply, &res);
}

TAGMEM_EXPORT int tagmem_next_tag_event(struct tagmem_client *c, int timeout_ms, char **ret_name,
					struct tagmem_info **ret_info)
{
	_cleanup_json_ struct json_object *ev = NULL;
	struct json_object *t;
	const char *name;
	int r;

	if (!c || !ret_name)
		return -EINVAL;
	if (ret_info)
		*ret_info = NULL;
	r = tagmem_client_next_event(c, timeout_ms, &ev);
	if (r == -ETIMEDOUT)
		return 0;
	if (r < 0)
		return r;
	name = str_of(ev, "event");
	if (!name)
		return -EPROTO;
	if (ret_info && json_object_object_get_ex(ev, "tag", &t) &&
	    json_object_is_type(t, json_type_object)) {
		r = info_new(t, ret_info);
		if (r < 0)
			return r;
	}
	*ret_name = strdup(name);
	if (!*ret_name) {
		if (ret_info)
			*ret_info = tagmem_info_unref(*ret_info);
		return -ENOMEM;
	}
	return 1;
}
