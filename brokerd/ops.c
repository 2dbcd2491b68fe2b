/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Requests: {"id": …, "op": "…", …}. One handler per op in a table; every argument is
 * validated before anything changes. Unknown request keys are ignored (the schema only grows).
 * docs/protocol.md is the contract these handlers implement.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <fcntl.h>

#include "backend.h"
#include "qemu.h"
#include "brokerd.h"
#include "util.h"

#include "ops.h"

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
	client_reply(rq->b, rq->c, reply, wait_gen);
}

void reply_error(struct request *rq, const char *code, const char *fmt, ...)
{
	struct json_object *reply = reply_new(rq), *err = json_object_new_object();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	json_object_object_add(reply, "error", err);
	rq->b->errors++;
	client_reply(rq->b, rq->c, reply, 0);
}

/* The "tag" argument every tag op takes; replies the error itself. */
struct tag_entry *arg_tag(struct request *rq, tagmem_tag *ret_tag, bool must_exist)
{
	tagmem_tag tag;
	struct tag_entry *e;
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
	e = tag_table_find(&rq->b->tags, &tag);
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

	return uid == 0 || uid == rq->b->uid;
}

/* ---- ops ---- */

static void add_op_names(struct json_object *arr);

static void op_hello(struct request *rq)
{
	struct broker *b = rq->b;
	struct json_object *res = json_object_new_object(), *caps = json_object_new_array(),
			   *lim = json_object_new_object();

	json_object_object_add(res, "protocol", json_object_new_int(TAGMEM_PROTOCOL_VERSION));
	json_object_object_add(res, "version", json_object_new_string(TAGMEM_VERSION));
	json_object_object_add(res, "backend", json_object_new_string(b->backend->ops->name));
	json_object_array_add(caps, json_object_new_string("subscribe"));
	json_object_array_add(caps, json_object_new_string("claim"));
	if (b->backend->ops->fm_add)
		json_object_array_add(caps, json_object_new_string("fm"));
	json_object_object_add(res, "capabilities", caps);
	struct json_object *names = json_object_new_array();
	add_op_names(names);
	json_object_object_add(res, "ops", names);
	json_object_object_add(lim, "max_line", json_object_new_uint64(b->settings.max_line));
	json_object_object_add(lim, "max_clients", json_object_new_uint64(b->settings.max_clients));
	json_object_object_add(lim, "max_subscribers",
			       json_object_new_uint64(b->settings.max_subscribers));
	json_object_object_add(lim, "max_name", json_object_new_uint64(b->settings.max_name));
	json_object_object_add(res, "limits", lim);
	reply_result(rq, res, 0);
}

static void op_status(struct request *rq)
{
	struct broker *b = rq->b;
	struct json_object *res = json_object_new_object(), *states = json_object_new_object();
	struct json_object *mp = json_object_new_object();
	unsigned count[TAG_STATE_COUNT] = { 0 };
	uint64_t tagged = 0;

	for (struct tag_entry *e = b->tags.head; e; e = e->next) {
		count[e->state]++;
		tagged += e->size;
	}
	for (unsigned i = 0; i < TAG_RELEASED; i++)
		json_object_object_add(states, tag_state_name(i), json_object_new_uint64(count[i]));
	json_object_object_add(res, "version", json_object_new_string(TAGMEM_VERSION));
	json_object_object_add(res, "backend", json_object_new_string(b->backend->ops->name));
	json_object_object_add(res, "root",
			       json_object_new_string(b->backend->ops->root(b->backend)));
	json_object_object_add(res, "state_dir", json_object_new_string(b->settings.state_dir));
	json_object_object_add(res, "uptime_ms",
			       json_object_new_uint64((now_usec() - b->started_usec) / 1000));
	json_object_object_add(res, "tags", json_object_new_uint64(b->tags.count));
	json_object_object_add(res, "states", states);
	json_object_object_add(res, "tagged_bytes", json_object_new_uint64(tagged));
	json_object_object_add(res, "untagged_bytes", json_object_new_uint64(b->untagged_bytes));
	json_object_object_add(res, "clients", json_object_new_uint64(b->nclients));
	json_object_object_add(res, "subscribers", json_object_new_uint64(b->nsubscribers));
	json_object_object_add(res, "requests", json_object_new_uint64(b->requests));
	json_object_object_add(res, "errors", json_object_new_uint64(b->errors));
	/* is the PSI trigger armed (it may have failed or gone away), and has it fired */
	json_object_object_add(res, "memory_pressure", mp);
	json_object_object_add(mp, "trigger", b->psi_fd >= 0 ?
			       json_object_new_string(b->settings.pressure) : NULL);
	json_object_object_add(mp, "events", json_object_new_uint64(b->pressure_events));
	reply_result(rq, res, 0);
}

struct strbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct strbuf *sb, const char *s, size_t len)
{
	if (sb->oom)
		return;
	if (sb->len + len + 2 > sb->cap) {
		size_t nc = MAX(sb->cap * 2, sb->len + len + 4096);
		char *p = realloc(sb->p, nc);
		if (!p) {
			sb->oom = true;
			return;
		}
		sb->p = p;
		sb->cap = nc;
	}
	memcpy(sb->p + sb->len, s, len);
	sb->len += len;
	sb->p[sb->len] = '\0';
}

/*
 * A list of 10,000 tags would be a 10,000-object DOM; instead each tag is built, serialised
 * and freed in turn, and the pieces are joined. Peak memory is the reply text itself.
 */
static void op_list(struct request *rq)
{
	struct strbuf sb = { 0 };
	const char *idtext = json_object_to_json_string_ext(rq->id, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	sb_add(&sb, "{\"id\":", 6);
	sb_add(&sb, idtext, strlen(idtext));
	sb_add(&sb, ",\"result\":{\"tags\":[", 19);
	for (struct tag_entry *e = rq->b->tags.head; e; e = e->next) {
		struct json_object *o = tag_to_json(e);
		size_t len;
		const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

		if (e != rq->b->tags.head)
			sb_add(&sb, ",", 1);
		sb_add(&sb, s, len);
		json_object_put(o);
	}
	sb_add(&sb, "]}}\n", 4);
	if (sb.oom) {
		free(sb.p);
		reply_error(rq, "internal", "out of memory building the list");
		return;
	}
	client_reply_raw(rq->b, rq->c, sb.p, sb.len, 0);
}

/* What the label in an image's tail says (the reader the guest's kernel would agree with). */
struct json_object *image_label_json(const struct tag_entry *e)
{
	_cleanup_free_ uint8_t *area = malloc(LABEL_AREA_SIZE);
	_cleanup_close_ int fd = open(e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct json_object *o = json_object_new_object();
	struct label_info li[2];
	char s[TAGMEM_TAG_STRING_MAX], cookie[24];
	int n;

	if (fd < 0 || !area || label_area_read_file(fd, e->file_size, area) < 0) {
		json_object_object_add(o, "error", json_object_new_string("unreadable"));
		return o;
	}
	n = label_area_parse(area, li, 2);
	if (n < 0) {
		json_object_object_add(o, "error", json_object_new_string("corrupt"));
		return o;
	}
	json_object_object_add(o, "labels", json_object_new_int(n));
	if (n >= 1) {
		json_object_object_add(o, "uuid", json_object_new_string(tagmem_tag_format(&li[0].tag, s)));
		json_object_object_add(o, "name", json_object_new_string(li[0].name));
		snprintf(cookie, sizeof(cookie), "%#llx", (unsigned long long)li[0].isetcookie);
		json_object_object_add(o, "isetcookie", json_object_new_string(cookie));
		for (unsigned slot = 0; slot < NVDIMM_MAX_SLOTS; slot++)
			if (label_isetcookie(slot) == li[0].isetcookie)
				json_object_object_add(o, "nvdimm_slot", json_object_new_int((int)slot));
		json_object_object_add(o, "rawsize", json_object_new_uint64(li[0].rawsize));
	}
	return o;
}

static void op_show(struct request *rq)
{
	struct tag_entry *e = arg_tag(rq, NULL, true);
	struct json_object *o;

	if (!e || op_show_image(rq, e))
		return;
	o = tag_to_json(e);
	reply_result(rq, o, 0);
}

static void op_lookup(struct request *rq)
{
	struct tag_entry *e = arg_tag(rq, NULL, true);
	struct json_object *res;

	if (!e)
		return;
	if (!e->path) {
		reply_error(rq, "not_ready", "tag %s has no device yet (state %s)", e->tag_str,
			    tag_state_name(e->state));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "path", json_object_new_string(e->path));
	json_object_object_add(res, "state", json_object_new_string(tag_state_name(e->state)));
	reply_result(rq, res, 0);
}

static void op_claim(struct request *rq)
{
	struct broker *b = rq->b;
	const struct client_info *ci = client_info(rq->c);
	struct tag_entry *e = arg_tag(rq, NULL, true);
	const char *name = "";
	int r;

	if (!e)
		return;
	if (e->attaching) {
		reply_error(rq, "busy", "tag %s is being attached to a VM", e->tag_str);
		return;
	}
	r = tagmem_json_get_string(rq->msg, "name", &name);
	if (r == -EINVAL || (r == 0 && strlen(name) > b->settings.max_name)) {
		reply_error(rq, "invalid_argument", "\"name\" must be a string of at most %u bytes",
			    b->settings.max_name);
		return;
	}
	if (r == 0 && strlen(name) >= sizeof(e->owner.name)) {
		reply_error(rq, "invalid_argument", "\"name\" is too long");
		return;
	}
	switch (e->state) {
	case TAG_ADDED:
		reply_error(rq, "not_ready", "tag %s has no device yet; wait for tag_ready",
			    e->tag_str);
		return;
	case TAG_RELEASE_PENDING:
		reply_error(rq, "release_pending",
			    "tag %s is being released by the fabric manager", e->tag_str);
		return;
	case TAG_CLAIMED:
		if (e->owner.uid == ci->uid && !strcmp(e->owner.name, name)) {
			/* Idempotent, but only durable state may be acknowledged: the claim may be
			 * the one whose write just failed, so write it (again) and wait for that. */
			reply_result(rq, tag_to_json(e), broker_persist(b));
			return;
		}
		reply_error(rq, "busy", "tag %s is claimed by uid %u%s%s", e->tag_str,
			    e->owner.uid, e->owner.name[0] ? " as " : "", e->owner.name);
		return;
	case TAG_READY:
		break;
	case TAG_RELEASED:
		reply_error(rq, "not_found", "tag %s was released", e->tag_str);
		return;
	}
	if (e->release_requested) {
		reply_error(rq, "release_pending", "tag %s is being released", e->tag_str);
		return;
	}
	e->claimed = true;
	e->state = TAG_CLAIMED;
	e->owner.uid = ci->uid;
	e->owner.pid = ci->pid;
	snprintf(e->owner.name, sizeof(e->owner.name), "%s", name);
	e->owner.since = (int64_t)time(NULL);
	e->owner.slot = -1;
	/* Acknowledged only once the registry holds it: a kill -9 must not lose the claim. */
	uint64_t gen = broker_persist(b);
	reply_result(rq, tag_to_json(e), gen);
	broker_emit_tag_event(b, "tag_claimed", e);
}

static void op_release(struct request *rq)
{
	struct broker *b = rq->b;
	const struct client_info *ci = client_info(rq->c);
	struct tag_entry *e = arg_tag(rq, NULL, true);
	struct json_object *res;
	bool pending;
	uint64_t gen;
	int r;

	if (!e)
		return;
	if (!e->claimed) {
		reply_error(rq, "not_claimed", "tag %s is not claimed", e->tag_str);
		return;
	}
	if (ci->uid != 0 && ci->uid != e->owner.uid) {
		reply_error(rq, "permission_denied",
			    "tag %s is claimed by uid %u; only that user or root may release it",
			    e->tag_str, e->owner.uid);
		return;
	}
	if (e->attached || e->attaching) {
		/* the VM still maps it and QEMU 7.2 cannot unplug it: giving it to anyone else
		 * now would put two VMs on the same memory */
		reply_error(rq, "busy", "tag %s is plugged into VM %s, which QEMU cannot unplug; use "
			    "'tagmem detach' and it is released when the VM exits", e->tag_str,
			    e->owner.name);
		return;
	}
	pending = e->release_requested;
	e->claimed = false;
	memset(&e->owner, 0, sizeof(e->owner));
	e->owner.slot = -1;
	e->state = TAG_READY;
	gen = broker_persist(b);
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "capacity_released", json_object_new_boolean(pending));
	broker_emit_tag_event(b, "tag_unclaimed", e);
	if (pending) {
		/* The fabric manager was waiting for this: let the kernel finish the release. */
		r = b->backend->ops->destroy(b->backend, e); /* may free e */
		if (r < 0)
			log_err("Failed to tear down a released device: %s", strerror(-r));
	}
	reply_result(rq, res, gen);
}

static void op_subscribe(struct request *rq)
{
	struct broker *b = rq->b;

	if (!client_info(rq->c)->subscribed && b->nsubscribers >= b->settings.max_subscribers) {
		reply_error(rq, "too_many_subscribers",
			    "brokerd has %u subscribers, its limit; retry later", b->nsubscribers);
		return;
	}
	client_set_subscribed(b, rq->c, true);
	reply_result(rq, NULL, 0);
}

static void op_unsubscribe(struct request *rq)
{
	client_set_subscribed(rq->b, rq->c, false);
	reply_result(rq, NULL, 0);
}

static bool fm_allowed(struct request *rq)
{
	if (!rq->b->backend->ops->fm_add) {
		reply_error(rq, "unsupported", "the %s backend has no fabric manager",
			    rq->b->backend->ops->name);
		return false;
	}
	if (!is_privileged(rq)) {
		reply_error(rq, "permission_denied",
			    "only root or the daemon's user may drive the fabric manager");
		return false;
	}
	return true;
}

static void op_fm_add(struct request *rq)
{
	struct broker *b = rq->b;
	struct json_object *res;
	tagmem_tag tag;
	bool shared = false, tagged;
	uint64_t size;
	unsigned region, n;
	int r;

	if (!fm_allowed(rq))
		return;
	r = tagmem_json_get_u64(rq->msg, "size", &size);
	if (r < 0 || size == 0 || size % (2u << 20)) {
		reply_error(rq, "invalid_argument",
			    "\"size\" must be a positive number of bytes, a multiple of 2 MiB");
		return;
	}
	r = tagmem_json_get_bool(rq->msg, "shared", &shared);
	if (r == -EINVAL) {
		reply_error(rq, "invalid_argument", "\"shared\" must be true or false");
		return;
	}
	r = tagmem_json_get_tag(rq->msg, "tag", &tag);
	if (r == -EINVAL || (r == 0 && tagmem_tag_is_null(&tag))) {
		reply_error(rq, "invalid_argument", "\"tag\" must be a non-nil UUID string");
		return;
	}
	tagged = r == 0;
	if (!tagged && shared) {
		/* Shared capacity is only ever found by its tag: the fabric manager names it. */
		tagmem_tag_generate(&tag);
		tagged = true;
	}
	if (tagged && tag_table_find(&b->tags, &tag)) {
		reply_error(rq, "exists", "tag %s is already allocated", json_object_get_string(
			json_object_object_get(rq->msg, "tag")));
		return;
	}
	r = b->backend->ops->fm_add(b->backend, size, tagged ? &tag : NULL, shared, &region, &n);
	if (r == -ENOSPC) {
		reply_error(rq, "no_space", "the %s region has no %llu bytes free",
			    shared ? "shared" : "private", (unsigned long long)size);
		return;
	}
	if (r == -EEXIST) {
		reply_error(rq, "exists", "that tag is already allocated");
		return;
	}
	if (r < 0) {
		reply_error(rq, "internal", "the fabric manager failed: %s", strerror(-r));
		return;
	}
	broker_settle(b);
	res = json_object_new_object();
	if (tagged) {
		char s[TAGMEM_TAG_STRING_MAX];
		struct tag_entry *e = tag_table_find(&b->tags, &tag);
		json_object_object_add(res, "tag",
				       json_object_new_string(tagmem_tag_format(&tag, s)));
		if (e)
			json_object_object_add(res, "state",
					       json_object_new_string(tag_state_name(e->state)));
		if (e && e->path)
			json_object_object_add(res, "path", json_object_new_string(e->path));
	}
	json_object_object_add(res, "size", json_object_new_uint64(size));
	json_object_object_add(res, "region", json_object_new_uint64(region));
	json_object_object_add(res, "shared", json_object_new_boolean(shared));
	json_object_object_add(res, "extents", json_object_new_uint64(n));
	reply_result(rq, res, 0);
}

static void op_fm_release(struct request *rq)
{
	struct broker *b = rq->b;
	struct json_object *res;
	tagmem_tag tag;
	char s[TAGMEM_TAG_STRING_MAX];
	int r;

	if (!fm_allowed(rq))
		return;
	if (!arg_tag(rq, &tag, true))
		return;
	r = b->backend->ops->fm_release(b->backend, &tag);
	if (r == -ENOENT) {
		reply_error(rq, "not_found", "the fabric manager has no allocation with that tag");
		return;
	}
	if (r < 0) {
		reply_error(rq, "internal", "the fabric manager failed: %s", strerror(-r));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(tagmem_tag_format(&tag, s)));
	/* Report what happened, not what was asked: the tag may still be held. */
	json_object_object_add(res, "state", json_object_new_string(
		tag_table_find(&b->tags, &tag) ? "release_pending" : "released"));
	reply_result(rq, res, b->persist_gen);
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
	{ "image_invalidate", op_image_invalidate },
	{ "image_budget", op_image_budget },
	{ "flush", op_flush },
	{ "evict", op_evict },
	{ "qemu_args", op_qemu_args },
	{ "attach", op_attach },
	{ "detach", op_detach },
};

static void add_op_names(struct json_object *arr)
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

void ops_handle(struct broker *b, struct client *c, const char *line, size_t len)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct request rq = { .b = b, .c = c };
	const char *opname;
	int r;

	b->requests++;
	if (len == 0 || (len == 1 && line[0] == '\r'))
		return; /* blank lines are keep-alives */
	r = tagmem_msg_parse(line, len, b->settings.max_line, &msg);
	if (r < 0) {
		reply_error(&rq, "parse_error", "%s",
			    r == -EPROTO ? "a request must be one JSON object on one line"
					 : "the request is not valid JSON");
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
	reply_error(&rq, "unknown_op", "unknown op \"%.64s\"; \"hello\" lists what this brokerd "
		    "supports", opname);
}
