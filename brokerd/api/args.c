/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Argument rules, declared per op in the op table (request.c) and checked here before the op
 * runs, the same way for a host client and a guest: an op reads only arguments that are
 * present when required and of the right shape. What depends on state (does the tag exist,
 * is the file there) stays with the op.
 */
#include <limits.h>
#include <string.h>

#include <json-c/json.h>

#include "ops.h"

bool valid_vm_name(const char *vm)
{
	return name_valid(vm, 64);
}

static bool one_of(const char *s, const char *const *values)
{
	for (; *values; values++)
		if (!strcmp(s, *values))
			return true;
	return false;
}

static bool u64_fits(const struct arg_rule *a, uint64_t v)
{
	return v >= a->min && (!a->max || v <= a->max) && (!a->align || v % a->align == 0);
}

/* Is the present value v good by rule a? */
static bool arg_good(const struct arg_rule *a, struct json_object *msg)
{
	tagmem_tag tag;
	const char *s;
	uint64_t u;
	bool b;

	switch (a->kind) {
	case ARG_TAG:
		return tagmem_json_get_tag(msg, a->name, &tag) == 0;
	case ARG_NAMED_TAG:
		return tagmem_json_get_tag(msg, a->name, &tag) == 0 && !tagmem_tag_is_null(&tag);
	case ARG_BOOL:
		return tagmem_json_get_bool(msg, a->name, &b) == 0;
	case ARG_U64:
		return tagmem_json_get_u64(msg, a->name, &u) == 0 && u64_fits(a, u);
	case ARG_STRING:
		return tagmem_json_get_string(msg, a->name, &s) == 0 &&
		       (!a->max || strlen(s) <= a->max);
	case ARG_ONE_OF:
		return tagmem_json_get_string(msg, a->name, &s) == 0 && one_of(s, a->one_of);
	case ARG_PATH:
		return tagmem_json_get_string(msg, a->name, &s) == 0 && s[0] == '/' &&
		       strlen(s) <= (a->max ? a->max : PATH_MAX - 1);
	case ARG_VM:
		return tagmem_json_get_string(msg, a->name, &s) == 0 && valid_vm_name(s);
	case ARG_ARRAY: {
		struct json_object *v;
		return json_object_object_get_ex(msg, a->name, &v) &&
		       json_object_is_type(v, json_type_array);
	}
	}
	return false;
}

bool args_valid(struct request *rq, const struct arg_rule *rules)
{
	for (const struct arg_rule *a = rules; a && a->name; a++) {
		struct json_object *v;
		bool present = json_object_object_get_ex(rq->msg, a->name, &v);

		if (!present && !a->required)
			continue;
		if (!present || !arg_good(a, rq->msg)) {
			reply_error(rq, "invalid_argument", "%s", a->rule);
			return false;
		}
	}
	return true;
}
