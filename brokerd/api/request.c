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
#include "qemu.h"
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

#define TAG_RULE "\"tag\" must be a UUID string like 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define NAMED_TAG_RULE "\"tag\" must be a non-nil UUID string"
#define BYTES_RULE(k) "\"" k "\" must be a non-negative integer (bytes)"
#define BOOL_RULE(k) "\"" k "\" must be true or false"
#define SNAP_RULE "\"path\" (an absolute file name), optional \"qmp\" (the VM's QMP socket), " \
		  "\"threads\" (1-16), \"resume\" (bool)"
#define REQUIRED(n, k, why, ...) { .name = n, .kind = k, .required = true, .rule = why, __VA_ARGS__ }
#define OPTIONAL(n, k, why, ...) { .name = n, .kind = k, .rule = why, __VA_ARGS__ }
#define END { .name = NULL }

static const struct arg_rule a_tag[] = { REQUIRED("tag", ARG_TAG, TAG_RULE), END };
static const struct arg_rule a_claim[] = {
	REQUIRED("tag", ARG_TAG, TAG_RULE),
	OPTIONAL("name", ARG_STRING, "\"name\" must be a string"),
	OPTIONAL("grant", ARG_BOOL, BOOL_RULE("grant")), END };
static const struct arg_rule a_fm_add[] = {
	REQUIRED("size", ARG_U64, "\"size\" must be a positive number of bytes, a multiple of 2 MiB",
		 .min = 2u << 20, .align = 2u << 20),
	OPTIONAL("shared", ARG_BOOL, BOOL_RULE("shared")),
	OPTIONAL("tag", ARG_NAMED_TAG, NAMED_TAG_RULE), END };
static const char *const layouts[] = { "pmem", "devdax", "fsdax", NULL };
static const struct arg_rule a_image_create[] = {
	OPTIONAL("layout", ARG_ONE_OF, "\"layout\" must be \"pmem\" (data at offset 0 of the file; "
		 "a pmem disk in the guest), \"devdax\" (a 16 MiB header first; /dev/daxX.Y in the "
		 "guest, its offset 0 the tag's) or \"fsdax\" (the same header; a /dev/pmemX in the "
		 "guest that a filesystem mounts with -o dax)", .one_of = layouts),
	REQUIRED("path", ARG_PATH, "\"path\" must be an absolute file name"),
	REQUIRED("size", ARG_U64, "\"size\" must be a multiple of 16 MiB, from 16 MiB to 64 TiB (the "
		 "guest aligns namespaces to 16 MiB)", .min = NVDIMM_REGION_ALIGN,
		 .max = IMAGE_MAX_SIZE, .align = NVDIMM_REGION_ALIGN),
	OPTIONAL("tag", ARG_NAMED_TAG, NAMED_TAG_RULE), END };
static const struct arg_rule a_image_adopt[] = {
	REQUIRED("path", ARG_PATH, "\"path\" must be an absolute file name"),
	OPTIONAL("tag", ARG_NAMED_TAG, NAMED_TAG_RULE), END };
static const struct arg_rule a_flush[] = {
	REQUIRED("tag", ARG_TAG, TAG_RULE),
	OPTIONAL("offset", ARG_U64, BYTES_RULE("offset")),
	OPTIONAL("length", ARG_U64, BYTES_RULE("length")),
	OPTIONAL("wait", ARG_BOOL, BOOL_RULE("wait")), END };
static const struct arg_rule a_evict[] = {
	REQUIRED("tag", ARG_TAG, TAG_RULE),
	OPTIONAL("to", ARG_U64, BYTES_RULE("to")), END };
static const char *const modes[] = { "nvdimm", "virtio-pmem", NULL };
static const struct arg_rule a_qemu_args[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	OPTIONAL("mode", ARG_ONE_OF, "\"mode\" must be \"nvdimm\" (labelled, the tag visible in "
		 "the guest) or \"virtio-pmem\" (guest flushes reach the host)", .one_of = modes),
	OPTIONAL("channel", ARG_BOOL, BOOL_RULE("channel")),
	OPTIONAL("ram", ARG_TAG, "\"ram\" must be a UUID string"),
	OPTIONAL("incoming", ARG_BOOL, BOOL_RULE("incoming")),
	OPTIONAL("slots", ARG_ARRAY, "\"slots\" must be an array of nvdimm slots"), END };
static const struct arg_rule a_attach[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	REQUIRED("qmp", ARG_PATH, "\"qmp\" must be the absolute path of the VM's QMP socket "
		 "(-qmp unix:PATH,server=on,wait=off)", .max = 107 /* sun_path */),
	REQUIRED("tag", ARG_TAG, TAG_RULE), END };
static const struct arg_rule a_snapshot[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	REQUIRED("path", ARG_PATH, SNAP_RULE),
	OPTIONAL("qmp", ARG_STRING, SNAP_RULE),
	OPTIONAL("threads", ARG_U64, SNAP_RULE, .min = 1, .max = 16),
	OPTIONAL("resume", ARG_BOOL, SNAP_RULE), END };
static const struct arg_rule a_restore[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	REQUIRED("path", ARG_PATH, SNAP_RULE),
	OPTIONAL("qmp", ARG_STRING, SNAP_RULE),
	OPTIONAL("threads", ARG_U64, SNAP_RULE, .min = 1, .max = 16),
	OPTIONAL("increments", ARG_ARRAY, INCREMENTS_RULE),
	OPTIONAL("paused", ARG_BOOL, BOOL_RULE("paused")), END };
static const struct arg_rule a_checkpoint[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	REQUIRED("path", ARG_PATH, SNAP_RULE),
	OPTIONAL("qmp", ARG_STRING, SNAP_RULE),
	OPTIONAL("threads", ARG_U64, SNAP_RULE, .min = 1, .max = 16),
	OPTIONAL("full", ARG_BOOL, BOOL_RULE("full")), END };
#define MIGRATE_QMP_RULE "\"qmp\" must be the absolute path of the VM's QMP socket here"
#define URI_RULE "\"uri\" must be tcp:HOST:PORT or unix:/PATH, where the destination's QEMU listens"
static const struct arg_rule a_migrate[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	OPTIONAL("qmp", ARG_PATH, MIGRATE_QMP_RULE, .max = 107 /* sun_path */), END };
static const struct arg_rule a_migrate_uri[] = {
	REQUIRED("vm", ARG_VM, VM_NAME_RULE),
	REQUIRED("uri", ARG_STRING, URI_RULE, .max = 255),
	OPTIONAL("qmp", ARG_PATH, MIGRATE_QMP_RULE, .max = 107), END };

/*
 * The one op table, of both protocols. Each op says who may call it (the peers; privileged:
 * only root or brokerd's own uid, and what for) and its argument rules, checked before it
 * runs; the op checks what depends on state, and a guest's ops only its own VM's tags.
 */
struct op {
	const char *name;
	void (*fn)(struct request *rq);
	unsigned peers;
	const char *privileged;        /* "only root or the daemon's user may <privileged>" */
	const struct arg_rule *args;
};
#define OP(n, f, who, ...) { .name = n, .fn = f, .peers = who, __VA_ARGS__ }
#define ROOT(what) .privileged = what

static const struct op op_table[] = {
	OP("hello", op_hello, HOST | GUEST),
	OP("slots", op_slots, GUEST),
	OP("status", op_status, HOST),
	OP("list", op_list, HOST),
	OP("show", op_show, HOST, .args = a_tag),
	OP("lookup", op_lookup, HOST, .args = a_tag),
	OP("claim", op_claim, HOST, .args = a_claim),
	OP("release", op_release, HOST, .args = a_tag),
	OP("subscribe", op_subscribe, HOST),
	OP("unsubscribe", op_unsubscribe, HOST),
	OP("fm_add", op_fm_add, HOST, ROOT("drive the fabric manager"), .args = a_fm_add),
	OP("fm_release", op_fm_release, HOST, ROOT("drive the fabric manager"), .args = a_tag),
	OP("image_create", op_image_create, HOST, ROOT("create images"), .args = a_image_create),
	OP("image_adopt", op_image_adopt, HOST, ROOT("adopt images"), .args = a_image_adopt),
	OP("image_forget", op_image_forget, HOST, ROOT("forget images"), .args = a_tag),
	OP("image_invalidate", op_image_invalidate, HOST, .args = a_tag),
	OP("image_budget", op_image_budget, HOST, ROOT("set budgets"), .args = a_tag),
	OP("host_budget", op_host_budget, HOST, ROOT("set the host's image budget")),
	OP("image_clear_error", op_image_clear_error, HOST, ROOT("clear an image's lost writes"),
	   .args = a_tag),
	OP("flush", op_flush, HOST | GUEST, .args = a_flush),
	OP("reclaim_ranges", op_reclaim_ranges, GUEST),
	OP("evict", op_evict, HOST, .args = a_evict),
	OP("qemu_args", op_qemu_args, HOST, .args = a_qemu_args),
	OP("attach", op_attach, HOST, .args = a_attach),
	OP("detach", op_detach, HOST, .args = a_tag),
	OP("vm_save", op_vm_save, HOST, ROOT("save or restore VMs"), .args = a_snapshot),
	OP("vm_restore", op_vm_restore, HOST, ROOT("save or restore VMs"), .args = a_restore),
	OP("vm_checkpoint", op_vm_checkpoint, HOST, ROOT("save or restore VMs"),
	   .args = a_checkpoint),
	OP("vm_migrate_begin", op_vm_migrate_begin, HOST, ROOT("migrate VMs"), .args = a_migrate),
	OP("vm_migrate_listen", op_vm_migrate_listen, HOST, ROOT("migrate VMs"),
	   .args = a_migrate_uri),
	OP("vm_migrate_send", op_vm_migrate_send, HOST, ROOT("migrate VMs"), .args = a_migrate_uri),
	OP("vm_migrate_finish", op_vm_migrate_finish, HOST, ROOT("migrate VMs"), .args = a_migrate),
	OP("vm_migrate_confirm", op_vm_migrate_confirm, HOST, ROOT("migrate VMs"),
	   .args = a_migrate),
	OP("vm_migrate_abort", op_vm_migrate_abort, HOST, ROOT("migrate VMs"), .args = a_migrate),
};

void ops_add_names(struct json_object *arr, bool guest)
{
	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		if (op_table[i].peers & (guest ? GUEST : HOST))
			json_object_array_add(arr, json_object_new_string(op_table[i].name));
}

static void run_op(struct request *rq, const struct op *op)
{
	if (op->privileged && !is_privileged(rq)) {
		reply_error(rq, "permission_denied", "only root or the daemon's user may %s",
			    op->privileged);
		return;
	}
	if (args_valid(rq, op->args))
		op->fn(rq);
}

/* The one dispatcher: the op, if this peer may call it. */
static void dispatch(struct request *rq, const char *opname)
{
	unsigned peer = rq->who.guest ? GUEST : HOST;

	for (size_t i = 0; i < ARRAY_SIZE(op_table); i++)
		if (!strcmp(op_table[i].name, opname) && (op_table[i].peers & peer)) {
			run_op(rq, &op_table[i]);
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
