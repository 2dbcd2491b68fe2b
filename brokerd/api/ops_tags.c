/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ops on tags themselves: hello, status, list, show, lookup, claim, release, subscribe.
 * docs/protocol.md is the contract these handlers implement.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "backend.h"
#include "dataplane.h"
#include "guests.h"
#include "log.h"
#include "ops.h"

/* A guest's hello: its protocol, its VM, the ops of the guest channel. */
static void guest_hello(struct request *rq)
{
	struct json_object *res = json_object_new_object(), *ops = json_object_new_array();

	json_object_object_add(res, "protocol", json_object_new_int(GUEST_PROTOCOL));
	json_object_object_add(res, "vm", json_object_new_string(guest_name(rq->who.guest)));
	ops_add_names(ops, true);
	json_object_object_add(res, "ops", ops);
	reply_result(rq, res, 0);
}

void op_hello(struct request *rq)
{
	struct api *api = rq->api;
	struct json_object *res, *caps, *lim;

	if (rq->who.guest) {
		guest_hello(rq);
		return;
	}
	res = json_object_new_object();
	caps = json_object_new_array();
	lim = json_object_new_object();

	json_object_object_add(res, "protocol", json_object_new_int(TAGMEM_PROTOCOL_VERSION));
	json_object_object_add(res, "version", json_object_new_string(TAGMEM_VERSION));
	json_object_object_add(res, "backend", json_object_new_string(api->backend->ops->name));
	json_object_array_add(caps, json_object_new_string("subscribe"));
	json_object_array_add(caps, json_object_new_string("claim"));
	if (api->backend->ops->fm_add)
		json_object_array_add(caps, json_object_new_string("fm"));
	json_object_object_add(res, "capabilities", caps);
	struct json_object *names = json_object_new_array();
	ops_add_names(names, false);
	json_object_object_add(res, "ops", names);
	json_object_object_add(lim, "max_line", json_object_new_uint64(api->settings->max_line));
	json_object_object_add(lim, "max_clients", json_object_new_uint64(api->settings->max_clients));
	json_object_object_add(lim, "max_subscribers",
			       json_object_new_uint64(api->settings->max_subscribers));
	json_object_object_add(lim, "max_name", json_object_new_uint64(api->settings->max_name));
	json_object_object_add(res, "limits", lim);
	reply_result(rq, res, 0);
}

/* The host's image budget and each VM's part of it, as the last upkeep tick saw them. */
static struct json_object *host_budget_json(struct api *api)
{
	struct json_object *o = json_object_new_object(), *vms = json_object_new_array();
	uint64_t budget = api->host_budget, total = 0;

	for (size_t i = 0; i < api->nshares; i++) {
		const struct vm_share *v = &api->shares[i];
		struct json_object *j = json_object_new_object();

		total += v->resident;
		json_object_object_add(j, "vm", v->vm[0] ? json_object_new_string(v->vm) : NULL);
		json_object_object_add(j, "images", json_object_new_uint64(v->images));
		json_object_object_add(j, "resident_bytes", json_object_new_uint64(v->resident));
		json_object_object_add(j, "share_bytes", budget ?
				       json_object_new_uint64(v->guaranteed) : NULL);
		json_object_object_add(j, "cap_bytes", v->cap != UINT64_MAX ?
				       json_object_new_uint64(v->cap) : NULL);
		json_object_array_add(vms, j);
	}
	json_object_object_add(o, "budget_bytes", budget ? json_object_new_uint64(budget) : NULL);
	json_object_object_add(o, "resident_bytes", json_object_new_uint64(total));
	json_object_object_add(o, "vms", vms);
	return o;
}

void op_status(struct request *rq)
{
	struct api *api = rq->api;
	struct json_object *res = json_object_new_object(), *states = json_object_new_object();
	struct json_object *mp = json_object_new_object(), *gs = json_object_new_object();
	unsigned count[TAG_STATE_COUNT], lost = 0, clients;
	size_t queued;
	uint64_t tagged;
	struct tag *e;

	core_stats(api->core, count, &tagged);
	core_for_each(e, api->core)
		lost += tag_is_image(e) && e->image.lost.since;
	for (unsigned i = 0; i < TAG_RELEASED; i++)
		json_object_object_add(states, tag_state_name(i), json_object_new_uint64(count[i]));
	json_object_object_add(res, "version", json_object_new_string(TAGMEM_VERSION));
	json_object_object_add(res, "backend", json_object_new_string(api->backend->ops->name));
	json_object_object_add(res, "root",
			       json_object_new_string(api->backend->ops->root(api->backend)));
	json_object_object_add(res, "state_dir", json_object_new_string(api->settings->state_dir));
	json_object_object_add(res, "uptime_ms",
			       json_object_new_uint64((now_usec() - api->started_usec) / 1000));
	json_object_object_add(res, "tags", json_object_new_uint64(core_count(api->core)));
	json_object_object_add(res, "states", states);
	json_object_object_add(res, "tagged_bytes", json_object_new_uint64(tagged));
	json_object_object_add(res, "untagged_bytes",
			       json_object_new_uint64(core_untagged_bytes(api->core)));
	api->transport.counts(api->transport.data, &clients, &queued);
	json_object_object_add(res, "clients", json_object_new_uint64(clients));
	json_object_object_add(res, "subscribers", json_object_new_uint64(
		api->transport.subscribers(api->transport.data)));
	json_object_object_add(res, "queued_bytes", json_object_new_uint64(queued));
	json_object_object_add(res, "requests", json_object_new_uint64(api->requests));
	json_object_object_add(res, "errors", json_object_new_uint64(api->errors));
	/* images whose flushes fail until an operator clears them: a monitor's alarm */
	json_object_object_add(res, "images_lost_writes", json_object_new_uint64(lost));
	/* images of the registry whose file cannot be opened now: kept, retried */
	json_object_object_add(res, "images_unavailable",
			       json_object_new_uint64(api->images_unavailable));
	/* is the PSI trigger armed (it may have failed or gone away), and has it fired */
	json_object_object_add(res, "memory_pressure", mp);
	json_object_object_add(mp, "trigger", api->psi_fd >= 0 ?
			       json_object_new_string(api->settings->pressure) : NULL);
	json_object_object_add(mp, "events", json_object_new_uint64(api->pressure_events));
	/* guests: their requests, and how often they chose what an eviction took */
	json_object_object_add(gs, "requests", json_object_new_uint64(api->guest_requests));
	json_object_object_add(gs, "reclaims_asked", json_object_new_uint64(api->reclaims_asked));
	json_object_object_add(gs, "reclaims_answered",
			       json_object_new_uint64(api->reclaims_answered));
	json_object_object_add(gs, "reclaims_expired",
			       json_object_new_uint64(api->reclaims_expired));
	json_object_object_add(res, "guests", gs);
	json_object_object_add(res, "host_budget", host_budget_json(api));
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
void op_list(struct request *rq)
{
	const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
	const char *idtext = json_object_to_json_string_ext(rq->ans.id, flags);
	struct strbuf sb = { 0 };
	bool first = true;
	struct tag *e;

	sb_add(&sb, "{\"id\":", 6);
	sb_add(&sb, idtext, strlen(idtext));
	sb_add(&sb, ",\"result\":{\"tags\":[", 19);
	core_for_each(e, rq->api->core) {
		struct json_object *o = tag_to_json(e);
		size_t len;
		const char *s = json_object_to_json_string_length(o, flags, &len);

		if (!first)
			sb_add(&sb, ",", 1);
		first = false;
		sb_add(&sb, s, len);
		json_object_put(o);
	}
	sb_add(&sb, "]}}\n", 4);
	if (sb.oom) {
		free(sb.p);
		reply_error(rq, "internal", "out of memory building the list");
		return;
	}
	rq->api->transport.client_raw(rq->api->transport.data, rq->ans.client, sb.p, sb.len, 0);
}

void op_show(struct request *rq)
{
	struct tag *e = arg_tag(rq, NULL, true);
	struct json_object *o;

	if (!e || op_show_image(rq, e))
		return;
	o = tag_to_json(e);
	reply_result(rq, o, 0);
}

void op_lookup(struct request *rq)
{
	struct tag *e = arg_tag(rq, NULL, true);
	struct json_object *res;

	if (!e)
		return;
	if (!e->cap.path) {
		reply_error(rq, "not_ready", "tag %s has no device yet (state %s)", e->tag_str,
			    tag_state_name(tag_state(e)));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "path", json_object_new_string(e->cap.path));
	json_object_object_add(res, "state", json_object_new_string(tag_state_name(tag_state(e))));
	reply_result(rq, res, 0);
}

/*
 * Give the device node (or an image's file) to uid, or back to brokerd's own uid. The object
 * is brokerd's: the image's open file, or the node its backend found under /dev (or its own
 * simulator tree), never a name a client gave.
 */
static int grant_device(struct tag *e, uid_t uid)
{
	if (tag_is_image(e) && e->image.io)
		return fchown(image_io_fd(e->image.io), uid, (gid_t)-1) < 0 ? -errno : 0;
	if (!e->cap.path || !e->cap.path[0])
		return -ENODEV;
	return fchownat(AT_FDCWD, e->cap.path, uid, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

void api_grants_restore(struct api *api)
{
	struct tag *e;

	/* a node udev made again at boot is root's: give it back to its claimant */
	core_for_each(e, api->core)
		if (e->claimed && e->owner.granted && grant_device(e, e->owner.uid) < 0)
			log_warn("Cannot give %s to uid %u again (claim of tag %s): %m",
				 e->cap.path ? e->cap.path : "its device", e->owner.uid, e->tag_str);
}

void op_claim(struct request *rq)
{
	struct api *api = rq->api;
	const struct caller *ci = &rq->who;
	struct tag *e = arg_tag(rq, NULL, true);
	struct tag_owner owner = { .uid = ci->uid, .pid = ci->pid };
	const char *name = "";
	uint64_t gen = 0;
	int r;

	if (!e)
		return;
	r = tagmem_json_get_string(rq->msg, "name", &name); /* a string: the op table's rules */
	if (r == 0 && strlen(name) > api->settings->max_name) {
		reply_error(rq, "invalid_argument", "\"name\" must be a string of at most %u bytes",
			    api->settings->max_name);
		return;
	}
	if (r == 0 && strlen(name) >= sizeof(owner.name)) {
		reply_error(rq, "invalid_argument", "\"name\" is too long");
		return;
	}
	snprintf(owner.name, sizeof(owner.name), "%s", name);
	tagmem_json_get_bool(rq->msg, "grant", &owner.granted);
	/* the node first: a claim is acknowledged only with what it promised done */
	if (owner.granted && !e->claimed && (r = grant_device(e, owner.uid)) < 0) {
		reply_error(rq, "io_error", "cannot give %s to uid %u: %s", e->cap.path ? e->cap.path :
			    "the device", owner.uid, strerror(-r));
		return;
	}
	r = core_claim(api->core, e, &owner, &gen);
	if (r) {
		if (owner.granted && !(e->claimed && e->owner.granted))
			grant_device(e, api->uid); /* refused: the node goes back */
		reply_refusal(rq, r, e);
		return;
	}
	reply_result(rq, tag_to_json(e), gen);
}

void op_release(struct request *rq)
{
	const struct caller *ci = &rq->who;
	struct tag *e = arg_tag(rq, NULL, true);
	struct json_object *res;
	struct tag_owner owner;
	bool released = false;
	uint64_t gen = 0;
	int r;

	if (!e)
		return;
	if (e->claimed && ci->uid != 0 && ci->uid != e->owner.uid) {
		reply_error(rq, "permission_denied",
			    "tag %s is claimed by uid %u; only that user or root may release it",
			    e->tag_str, e->owner.uid);
		return;
	}
	owner = e->owner;
	if (!e->claimed)
		owner.slot = -1;
	if (e->claimed && e->owner.granted) {
		r = grant_device(e, rq->api->uid); /* the node is brokerd's again */
		if (r < 0)
			log_warn("Cannot take %s back from uid %u: %s", e->cap.path, e->owner.uid,
				 strerror(-r));
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	r = core_unclaim(rq->api->core, e, &released, &gen); /* may free e */
	if (r) {
		json_object_put(res);
		reply_refusal(rq, r, e);
		return;
	}
	if (owner.slot >= 0)
		api_guest_update(rq->api, owner.uid, owner.name); /* a VM's tag: its guest learns */
	json_object_object_add(res, "capacity_released", json_object_new_boolean(released));
	reply_result(rq, res, gen);
}

void op_subscribe(struct request *rq)
{
	const struct api_transport *t = &rq->api->transport;
	unsigned n = t->subscribers(t->data);

	if (!t->client_subscribed(t->data, rq->ans.client) && n >= rq->api->settings->max_subscribers) {
		reply_error(rq, "too_many_subscribers",
			    "brokerd has %u subscribers, its limit; retry later", n);
		return;
	}
	t->subscribe(t->data, rq->ans.client, true);
	reply_result(rq, NULL, 0);
}

void op_unsubscribe(struct request *rq)
{
	rq->api->transport.subscribe(rq->api->transport.data, rq->ans.client, false);
	reply_result(rq, NULL, 0);
}

