/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The data-plane ops: flush, evict, image_invalidate, image_budget, image_clear_error, and
 * show's page-cache figures. Each validates its arguments here, on the loop, then hands the
 * work to the data-plane workers (dataplane.h); upkeep.c answers when a worker is done.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "log.h"
#include "ops.h"

#define BUDGET_MIN (2ull << 20)

static bool may_manage(struct request *rq, const struct tag *e)
{
	return is_privileged(rq) || (e->claimed && e->owner.uid == rq->who.uid);
}

/* The "tag" argument, which must name an image the caller may manage (a guest: one its VM
 * holds). */
static struct tag *arg_image(struct request *rq, const char *verb)
{
	struct tag *e = rq->who.guest ? arg_vm_tag(rq) : arg_tag(rq, NULL, true);

	if (!e)
		return NULL;
	if (!tag_is_image(e) || !e->image.io) {
		reply_error(rq, "not_supported", "tag %s is a %s device, not an image: only images "
			    "have a host page cache to %s", e->tag_str, e->cap.shared ? "shared" : "dax",
			    verb);
		return NULL;
	}
	if (!rq->who.guest && !may_manage(rq, e)) {
		reply_error(rq, "permission_denied", "only root, the daemon's user or the owner of "
			    "tag %s may %s it", e->tag_str, verb);
		return NULL;
	}
	return e;
}

static struct dp_request *new_request(struct request *rq, struct tag *e,
				      enum dp_kind kind)
{
	struct dp_request *d = image_work_new(rq->api, e, kind, &rq->ans);

	if (!d)
		reply_error(rq, "io_error", "out of memory");
	return d;
}

/* Queue work whose answer is the reply. */
static void submit_waiting(struct request *rq, struct dp_request *d)
{
	image_work(d)->wait = true;
	dataplane_submit(rq->api->dp, d);
}

/* An optional u64 argument the op table's rules checked: is it there? */
static bool arg_u64(struct request *rq, const char *key, uint64_t *val)
{
	return tagmem_json_get_u64(rq->msg, key, val) == 0;
}

const char *flush_range(const struct tag *e, uint64_t off, bool has_len, uint64_t *len)
{
	static char why[160];

	if (!has_len)
		*len = off < e->cap.size ? e->cap.size - off : 0;
	if (off >= e->cap.size || *len == 0 || *len > e->cap.size - off) {
		snprintf(why, sizeof(why), "range %llu+%llu is not inside the image's %llu data "
			 "bytes", (unsigned long long)off, (unsigned long long)*len,
			 (unsigned long long)e->cap.size);
		return why;
	}
	return NULL;
}

void op_flush(struct request *rq)
{
	struct tag *e = arg_image(rq, "flush");
	uint64_t off = 0, len = 0;
	bool has_len, wait = false;
	struct dp_request *d;
	const char *why;

	if (!e)
		return;
	arg_u64(rq, "offset", &off);
	has_len = arg_u64(rq, "length", &len);
	tagmem_json_get_bool(rq->msg, "wait", &wait);
	why = flush_range(e, off, has_len, &len);
	if (why) {
		reply_error(rq, "invalid_argument", "%s", why);
		return;
	}
	d = new_request(rq, e, DP_FLUSH);
	if (!d)
		return;
	image_work(d)->flush_id = ++rq->api->next_flush_id;
	d->off = e->image.data_offset + off; /* the data plane works in file offsets */
	d->len = len;
	if (wait) {
		submit_waiting(rq, d);
		return;
	}
	struct json_object *res = json_object_new_object();
	json_object_object_add(res, "flush_id", json_object_new_uint64(image_work(d)->flush_id));
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "state", json_object_new_string("queued"));
	dataplane_submit(rq->api->dp, d);
	reply_result(rq, res, 0);
}

void op_evict(struct request *rq)
{
	struct tag *e = arg_image(rq, "evict");
	uint64_t to = 0;
	bool has_to;
	struct dp_request *d;

	if (!e)
		return;
	has_to = arg_u64(rq, "to", &to);
	if (!has_to)
		to = e->image.resident_budget;
	if (to > e->image.file_size) {
		reply_error(rq, "invalid_argument", "\"to\" (%llu) is more than the whole image "
			    "(%llu bytes): nothing would be evicted", (unsigned long long)to,
			    (unsigned long long)e->image.file_size);
		return;
	}
	d = new_request(rq, e, DP_EVICT);
	if (!d)
		return;
	d->target = to;
	snprintf(image_work(d)->reason, sizeof(image_work(d)->reason), "request");
	image_work(d)->wait = true;
	reclaim_submit(rq->api, e, d); /* its guest may say which ranges go first */
}

void op_image_invalidate(struct request *rq)
{
	struct tag *e = arg_image(rq, "invalidate");
	struct dp_request *d;

	if (!e)
		return;
	if (e->vm != TAG_VM_NONE) {
		reply_error(rq, "busy", "tag %s is attached to VM %s: its guest would keep using "
			    "the cache; invalidate after the VM stops", e->tag_str, e->owner.name);
		return;
	}
	d = new_request(rq, e, DP_INVALIDATE);
	if (d)
		submit_waiting(rq, d);
}

/* A budget argument: absent, null (remove), or bytes within reason. */
static int arg_budget(struct request *rq, struct tag *e, const char *key, uint64_t *val)
{
	struct json_object *v;
	uint64_t n;

	if (!json_object_object_get_ex(rq->msg, key, &v))
		return 0;
	if (!v) {
		*val = 0;
		return 1;
	}
	if (tagmem_json_get_u64(rq->msg, key, &n) < 0) {
		reply_error(rq, "invalid_argument", "\"%s\" must be bytes, or null to remove the "
			    "budget", key);
		return -1;
	}
	if (n < BUDGET_MIN || n > e->image.file_size) {
		reply_error(rq, "invalid_argument", "\"%s\" must be from 2 MiB to the image's %llu "
			    "bytes (a budget of %llu would %s); use null to remove the budget", key,
			    (unsigned long long)e->image.file_size, (unsigned long long)n,
			    n < BUDGET_MIN ? "make the broker fight the guest for every page"
					   : "never be reached");
		return -1;
	}
	*val = n;
	return 1;
}

void op_image_budget(struct request *rq)
{
	struct tag *e = arg_image(rq, "budget");
	struct image_budgets bu;
	int rd, rr;

	if (!e)
		return;
	bu = (struct image_budgets){ e->image.dirty_budget, e->image.resident_budget };
	rd = arg_budget(rq, e, "dirty", &bu.dirty);
	if (rd < 0)
		return;
	rr = arg_budget(rq, e, "resident", &bu.resident);
	if (rr < 0)
		return;
	if (rd == 0 && rr == 0) {
		reply_error(rq, "invalid_argument", "give \"dirty\" and/or \"resident\" (bytes, or "
			    "null to remove)");
		return;
	}
	image_io_set_budgets(e->image.io, &bu);
	reply_result(rq, tag_to_json(e), core_set_image_budgets(rq->api->core, e, bu.dirty,
								bu.resident));
}

/* The host's image budget, changed at run time (until brokerd restarts: --resident-budget is
 * the configuration). Takes effect on the next upkeep tick; over it, VMs give back fairly. */
void op_host_budget(struct request *rq)
{
	struct api *api = rq->api;
	struct json_object *v, *res;
	uint64_t n = 0, before = api->host_budget;

	if (!json_object_object_get_ex(rq->msg, "resident", &v)) {
		reply_error(rq, "invalid_argument", "give \"resident\": bytes, or null for no host "
			    "budget");
		return;
	}
	if (v && (tagmem_json_get_u64(rq->msg, "resident", &n) < 0 || n < BUDGET_MIN ||
		  n > (1ull << 50))) {
		reply_error(rq, "invalid_argument", "\"resident\" must be bytes, from 2 MiB to 1 PiB, "
			    "or null for no host budget");
		return;
	}
	api->host_budget = n;
	log_info("Host image budget %llu bytes (was %llu), set by uid %u; --resident-budget "
		 "applies again at the next start", (unsigned long long)n,
		 (unsigned long long)before, rq->who.uid);
	res = json_object_new_object();
	json_object_object_add(res, "resident_bytes", n ? json_object_new_uint64(n) : NULL);
	json_object_object_add(res, "previous_bytes", before ? json_object_new_uint64(before) : NULL);
	reply_result(rq, res, 0);
}

/* An operator has dealt with the writes an image lost (checked the storage, restored or
 * rewritten the data): its flushes may succeed again. Privileged: the owner must not be
 * able to make its own failure disappear. */
void op_image_clear_error(struct request *rq)
{
	struct tag *e = arg_image(rq, "clear errors of");
	struct json_object *res;
	uint64_t gen;

	if (!e)
		return;
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "cleared", image_lost_json(&e->image.lost));
	if (!e->image.lost.since) {
		reply_result(rq, res, 0);
		return;
	}
	log_info("Image %s of tag %s: lost writes cleared by uid %u", e->cap.path, e->tag_str,
		 rq->who.uid);
	image_io_set_lost(e->image.io, 0, NULL);
	gen = core_set_image_lost(rq->api->core, e, NULL);
	reply_result(rq, res, gen);
}

/* show of an image: the tag, its label and its page-cache figures (read by a worker). */
bool op_show_image(struct request *rq, struct tag *e)
{
	struct dp_request *d;

	if (!tag_is_image(e) || !e->image.io)
		return false;
	d = new_request(rq, e, DP_STAT);
	if (d)
		submit_waiting(rq, d);
	return true;
}
