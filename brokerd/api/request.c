/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Requests: {"id": …, "op": "…", …}. Framing-level checks, the op table, and the helpers
 * every handler uses to read arguments and answer. Every argument is validated before
 * anything changes; unknown request keys are ignored (the schema only grows).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "ops.h"
#include "wire.h"

static struct json_object *reply_new(struct request *rq)
{
	struct json_object *reply = json_object_new_object();

	json_object_object_add(reply, "id", json_object_get(rq->id));
	return reply;
}

void reply_result(struct request *rq, struct json_object *result, uint64_t wait_gen)
{
	struct json_object *reply = reply_new(rq);

	json_object_object_add(reply, "result", result ? result : json_object_new_object());
	client_reply(rq->api->server, rq->c, reply, wait_gen);
}

static void reply_verror(struct request *rq, uint64_t wait_gen, const char *code,
			 const char *fmt, va_list ap)
{
	struct json_object *reply = reply_new(rq), *err = json_object_new_object();
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* what a client sent may be quoted, cut to a length: never cut a character in two */
	utf8_sanitize(msg);
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	json_object_object_add(reply, "error", err);
	rq->api->errors++;
	client_reply(rq->api->server, rq->c, reply, wait_gen);
}

void reply_error(struct request *rq, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(rq, 0, code, fmt, ap);
	va_end(ap);
}

void reply_error_after(struct request *rq, uint64_t wait_gen, const char *code,
		       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(rq, wait_gen, code, fmt, ap);
	va_end(ap);
}

/* The "tag" argument every tag op takes; replies the error itself. */
struct tag *arg_tag(struct request *rq, tagmem_tag *ret_tag, bool must_exist)
{
	tagmem_tag tag;
	struct tag *e;
	int r = tagmem_json_get_tag(rq->msg, "tag", &tag);

	if (r == -ENOENT) {
		reply_error(rq, "invalid_argument", "missing \"tag\" (a UUID string)");
		return NULL;
	}
	if (r < 0) {
		reply_error(rq, "invalid_argument",
			    "\"tag\" must be a UUID string like 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10");
		return NULL;
	}
	if (ret_tag)
		*ret_tag = tag;
	e = core_find(rq->api->core, &tag);
	if (!e && must_exist) {
		char s[TAGMEM_TAG_STRING_MAX];
		reply_error(rq, "not_found", "no capacity carries tag %s",
			    tagmem_tag_format(&tag, s));
	}
	return e;
}

bool is_privileged(struct request *rq)
{
	uid_t uid = client_info(rq->c)->uid;

	return uid == 0 || uid == rq->api->uid;
}

bool valid_vm_name(const char *vm)
{
	if (!*vm || strlen(vm) > 64)
		return false;
	for (const char *p = vm; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

void reply_refusal(struct request *rq, int refusal, const struct tag *t)
{
	switch (refusal) {
	case CORE_NOT_READY:
		reply_error(rq, "not_ready", "tag %s has no device yet; wait for tag_ready",
			    t->tag_str);
		break;
	case CORE_RELEASE_PENDING:
		reply_error(rq, "release_pending", "tag %s is being released", t->tag_str);
		break;
	case CORE_BUSY:
		reply_error(rq, "busy", "tag %s is claimed by uid %u%s%s", t->tag_str, t->owner.uid,
			    t->owner.name[0] ? " as " : "", t->owner.name);
		break;
	case CORE_ATTACHING:
		reply_error(rq, "busy", "tag %s is being attached to a VM", t->tag_str);
		break;
	case CORE_IN_VM:
		reply_error(rq, "busy", "tag %s is plugged into VM %s, which QEMU cannot unplug; use "
			    "'tagmem detach' and it is released when the VM exits", t->tag_str,
			    t->owner.name);
		break;
	case CORE_NOT_CLAIMED:
		reply_error(rq, "not_claimed", "tag %s is not claimed", t->tag_str);
		break;
	case CORE_NOT_ATTACHED:
		reply_error(rq, "not_attached", "tag %s was not hot-plugged by brokerd; once its VM "
			    "has stopped, give it back with 'tagmem release'", t->tag_str);
		break;
	default:
		reply_error(rq, "internal", "tag %s: out of memory", t->tag_str);
		break;
	}
}

static const struct op {
	const char *name;
	void (*fn)(struct request *rq);
} op_table[] = {
	{ "hello", op_hello },
	{ "status", op_status },
	{ "list", op_list },
	{ "show", op_show },
	{ "lookup", op_lookup },
	{ "claim", op_claim },
	{ "release", op_release },
	{ "subscribe", op_subscribe },
	{ "unsubscribe", op_unsubscribe },
	{ "fm_add", op_fm_add },
	{ "fm_release", op_fm_release },
	{ "image_create", op_image_create },
	{ "image_adopt", op_image_adopt },
	{ "image_forget", op_image_forget },
	{ "image_invalidate", op_image_invalidate },
	{ "image_budget", op_image_budget },
	{ "image_clear_error", op_image_clear_error },
	{ "flush", op_flush },
	{ "evict", op_evict },
	{ "qemu_args", op_qemu_args },
	{ "attach", op_attach },
	{ "detach", op_detach },
	{ "vm_save", op_vm_save },
	{ "vm_restore", op_vm_restore },
};

void ops_add_names(struct json_object *arr)
{
	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		json_object_array_add(arr, json_object_new_string(op_table[i].name));
}

static bool id_valid(struct json_object *id)
{
	if (json_object_is_type(id, json_type_int))
		return true;
	return json_object_is_type(id, json_type_string) && json_object_get_string_len(id) <= 128;
}

void api_request(void *userdata, struct client *c, const char *line, size_t len)
{
	struct api *api = userdata;
	_cleanup_json_ struct json_object *msg = NULL;
	struct request rq = { .api = api, .c = c };
	const char *opname, *why;
	int r;

	api->requests++;
	if (len == 0 || (len == 1 && line[0] == '\r'))
		return; /* blank lines are keep-alives */
	r = wire_parse(line, len, api->settings->max_line, &msg, &why);
	if (r == -ERANGE && msg) {
		/* the id is exact, another integer is not: answer that request */
		if (json_object_object_get_ex(msg, "id", &rq.id) && id_valid(rq.id))
			reply_error(&rq, "invalid_argument", "an integer is beyond 64 bits: it would "
				    "not be the value you sent");
		else
			reply_error(&rq, "parse_error", "an integer is beyond 64 bits");
		return;
	}
	if (r < 0) {
		if (r == -EPROTO)
			reply_error(&rq, "parse_error", "a request must be one JSON object on one line");
		else
			reply_error(&rq, "parse_error", "the request is not valid JSON%s%s",
				    why ? ": " : "", why ? why : "");
		return;
	}
	rq.msg = msg;
	if (!json_object_object_get_ex(msg, "id", &rq.id) || !id_valid(rq.id)) {
		rq.id = NULL;
		reply_error(&rq, "invalid_request",
			    "a request needs an \"id\" (integer, or string of at most 128 bytes)");
		return;
	}
	r = tagmem_json_get_string(msg, "op", &opname);
	if (r < 0) {
		reply_error(&rq, "invalid_request", "a request needs an \"op\" string");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		if (!strcmp(op_table[i].name, opname)) {
			op_table[i].fn(&rq);
			return;
		}
	reply_error(&rq, "unknown_op", "unknown op \"%.*s\"; \"hello\" lists what this brokerd "
		    "supports", (int)utf8_prefix(opname, 64), opname);
}
