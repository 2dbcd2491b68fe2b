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

#include "guests.h"
#include "ops.h"
#include "server.h"
#include "wire.h"

void reply_result(struct request *rq, struct json_object *result, uint64_t wait_gen)
{
	answer_result(rq->api, &rq->ans, result, wait_gen);
}

void reply_error(struct request *rq, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	answer_error(rq->api, &rq->ans, 0, code, "%s", msg);
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
	return !rq->who.guest && (rq->who.uid == 0 || rq->who.uid == rq->api->uid);
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

/* Who may call an op: a host client on brokerd's socket, the guest of a VM on its channel. */
enum { HOST = 1, GUEST = 2 };

/* The one op table, of both protocols: each op checks its peer's rules (a host uid's, or a
 * guest's: only its own VM's tags) where they differ. */
static const struct op {
	const char *name;
	void (*fn)(struct request *rq);
	unsigned peers;
} op_table[] = {
	{ "hello", op_hello, HOST | GUEST },
	{ "slots", op_slots, GUEST },
	{ "status", op_status, HOST },
	{ "list", op_list, HOST },
	{ "show", op_show, HOST },
	{ "lookup", op_lookup, HOST },
	{ "claim", op_claim, HOST },
	{ "release", op_release, HOST },
	{ "subscribe", op_subscribe, HOST },
	{ "unsubscribe", op_unsubscribe, HOST },
	{ "fm_add", op_fm_add, HOST },
	{ "fm_release", op_fm_release, HOST },
	{ "image_create", op_image_create, HOST },
	{ "image_adopt", op_image_adopt, HOST },
	{ "image_forget", op_image_forget, HOST },
	{ "image_invalidate", op_image_invalidate, HOST },
	{ "image_budget", op_image_budget, HOST },
	{ "image_clear_error", op_image_clear_error, HOST },
	{ "flush", op_flush, HOST | GUEST },
	{ "reclaim_ranges", op_reclaim_ranges, GUEST },
	{ "evict", op_evict, HOST },
	{ "qemu_args", op_qemu_args, HOST },
	{ "attach", op_attach, HOST },
	{ "detach", op_detach, HOST },
	{ "vm_save", op_vm_save, HOST },
	{ "vm_restore", op_vm_restore, HOST },
};

void ops_add_names(struct json_object *arr, bool guest)
{
	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		if (op_table[i].peers & (guest ? GUEST : HOST))
			json_object_array_add(arr, json_object_new_string(op_table[i].name));
}

/* The one dispatcher: the op, if this peer may call it. */
static void dispatch(struct request *rq, const char *opname)
{
	unsigned peer = rq->who.guest ? GUEST : HOST;

	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		if (!strcmp(op_table[i].name, opname) && (op_table[i].peers & peer)) {
			op_table[i].fn(rq);
			return;
		}
	if (peer == GUEST)
		reply_error(rq, "unknown_op", "the guest channel has no such op");
	else
		reply_error(rq, "unknown_op", "unknown op \"%.*s\"; \"hello\" lists what this "
			    "brokerd supports", (int)utf8_prefix(opname, 64), opname);
}

static bool id_valid(struct json_object *id)
{
	if (json_object_is_type(id, json_type_int))
		return true;
	return json_object_is_type(id, json_type_string) && json_object_get_string_len(id) <= 128;
}

void api_request(void *userdata, struct client *c, const char *line, size_t len)
{
	const struct client_info *ci = client_info(c);

	api_host_request(userdata, ci->uid, ci->pid, ci->serial, line, len);
}

void api_host_request(struct api *api, uid_t uid, pid_t pid, uint64_t serial, const char *line,
		      size_t len)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct request rq = { .api = api, .who = { .uid = uid, .pid = pid },
			      .ans = { .peer = ANSWER_CLIENT, .client = serial } };
	const char *opname, *why;
	int r;

	api->requests++;
	if (len == 0 || (len == 1 && line[0] == '\r'))
		return; /* blank lines are keep-alives */
	r = wire_parse(line, len, api->settings->max_line, &msg, &why);
	if (r == -ERANGE && msg) {
		/* the id is exact, another integer is not: answer that request */
		if (json_object_object_get_ex(msg, "id", &rq.ans.id) && id_valid(rq.ans.id))
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
	if (!json_object_object_get_ex(msg, "id", &rq.ans.id) || !id_valid(rq.ans.id)) {
		rq.ans.id = NULL;
		reply_error(&rq, "invalid_request",
			    "a request needs an \"id\" (integer, or string of at most 128 bytes)");
		return;
	}
	r = tagmem_json_get_string(msg, "op", &opname);
	if (r < 0) {
		reply_error(&rq, "invalid_request", "a request needs an \"op\" string");
		return;
	}
	dispatch(&rq, opname);
}

/* A guest's request line (the guest channel's framing: guests/). Its VM is the channel it
 * came on, never anything it says. */
void api_guest_request(void *userdata, struct guest_vm *g, const char *line, size_t len)
{
	struct api *api = userdata;
	_cleanup_json_ struct json_object *msg = NULL;
	struct request rq = { .api = api, .who = { .uid = guest_uid(g), .guest = g },
			      .ans = { .peer = ANSWER_GUEST, .guest_uid = guest_uid(g) } };
	const char *op, *why = NULL;
	struct json_object *id;

	api->guest_requests++;
	snprintf(rq.ans.guest_vm, sizeof(rq.ans.guest_vm), "%s", guest_name(g));
	if (wire_parse(line, len, len + 1, &msg, &why) < 0 ||
	    !json_object_is_type(msg, json_type_object)) {
		reply_error(&rq, "bad_request", "%s", why ? why : "a request is one JSON object on "
			    "one line");
		return;
	}
	rq.msg = msg;
	/* an id is echoed: only a number or a short string, never a structure to copy back */
	if (json_object_object_get_ex(msg, "id", &id) &&
	    (json_object_is_type(id, json_type_int) ||
	     (json_object_is_type(id, json_type_string) && json_object_get_string_len(id) <= 64)))
		rq.ans.id = id;
	if (tagmem_json_get_string(msg, "op", &op) < 0) {
		reply_error(&rq, "bad_request", "\"op\" must be a string");
		return;
	}
	dispatch(&rq, op);
}
