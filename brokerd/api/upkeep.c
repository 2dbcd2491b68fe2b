/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The loop's side of the data plane: answering finished requests, checking budgets on a
 * timer, and reacting to memory pressure (PSI). Decisions only; the page-cache work itself
 * runs on the data-plane workers (dataplane.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "log.h"
#include "loop.h"
#include "ops.h"

static struct json_object *counts_json(const struct pc_counts *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "resident_bytes", json_object_new_uint64(c->cached));
	json_object_object_add(o, "dirty_bytes", json_object_new_uint64(c->dirty));
	json_object_object_add(o, "writeback_bytes", json_object_new_uint64(c->writeback));
	return o;
}

static const char *error_code(int error)
{
	switch (error) {
	case -ENOENT: return "gone";
	case -EBUSY:
	case -EAGAIN: return "busy";
	case -EOPNOTSUPP: return "unsupported";
	default: return "io_error";
	}
}

static void work_drop(void *ctx)
{
	struct image_work *w = ctx;

	if (w->release)
		w->release(w->arg);
	answer_fini(&w->ans);
	free(w);
}

static void work_done(struct dp_request *d);

struct dp_request *image_work_new(struct api *api, struct tag *e, enum dp_kind kind,
				  const struct answer *ans)
{
	struct image_work *w = calloc(1, sizeof(*w));
	struct dp_request *d = w ? dp_request_new(kind, e->image.io) : NULL;

	if (!d) {
		free(w);
		return NULL;
	}
	w->api = api;
	if (ans)
		answer_copy(&w->ans, ans);
	w->tag = e->tag;
	snprintf(w->tag_str, sizeof(w->tag_str), "%s", e->tag_str);
	w->data_offset = e->image.data_offset;
	d->ctx = w;
	d->done = work_done;
	d->drop = work_drop;
	return d;
}

/* The tag entry a request was for, if it is still the same image. */
static struct tag *entry_of(struct api *api, struct dp_request *d)
{
	struct tag *e = core_find(api->core, &image_work(d)->tag);

	return e && e->image.io == d->io ? e : NULL;
}

/* What a finished request tells its client (the reply's result, or the event's body). */
static struct json_object *result_json(struct api *api, struct dp_request *d)
{
	struct json_object *o = json_object_new_object();
	struct image_work *w = image_work(d);

	switch (d->kind) {
	case DP_FLUSH:
		json_object_object_add(o, "flush_id", json_object_new_uint64(w->flush_id));
		json_object_object_add(o, "tag", json_object_new_string(w->tag_str));
		/* the caller's offset: into the tag's data, not the file */
		json_object_object_add(o, "offset", json_object_new_uint64(d->off - w->data_offset));
		json_object_object_add(o, "length", json_object_new_uint64(d->len));
		json_object_object_add(o, "batch", json_object_new_uint64(d->batch));
		json_object_object_add(o, "batch_size", json_object_new_int((int)d->batch_size));
		json_object_object_add(o, "written_bytes", json_object_new_uint64(d->written));
		json_object_object_add(o, "durability", json_object_new_string(
			d->whole_file ? "whole_file" : "range"));
		break;
	case DP_EVICT:
		json_object_object_add(o, "tag", json_object_new_string(w->tag_str));
		json_object_object_add(o, "target_bytes", json_object_new_uint64(d->target));
		/* whose choice went first: the guest's ranges, or the host's order alone */
		json_object_object_add(o, "chosen_by", json_object_new_string(
			w->guest_chose ? "guest" : "host"));
		json_object_object_add(o, "before", counts_json(&d->before));
		json_object_object_add(o, "after", counts_json(&d->after));
		break;
	case DP_INVALIDATE:
		json_object_object_add(o, "tag", json_object_new_string(w->tag_str));
		json_object_object_add(o, "dropped_bytes", json_object_new_uint64(
			d->before.cached - MIN(d->before.cached, d->after.cached)));
		break;
	case DP_STAT: {
		struct tag *e = entry_of(api, d);
		struct json_object *pc, *bu;
		char last[512];
		uint64_t n;

		json_object_put(o);
		if (!e) /* gone while the worker looked */
			return NULL;
		pc = counts_json(&d->before);
		o = tag_to_json(e);
		json_object_object_add(o, "label", image_label_json(e));
		json_object_object_add(pc, "flush_batches",
				       json_object_new_uint64(image_io_batches(e->image.io)));
		n = image_io_errors(e->image.io, last, sizeof(last));
		json_object_object_add(pc, "errors", json_object_new_uint64(n));
		json_object_object_add(pc, "last_error", n ? json_object_new_string(last) : NULL);
		json_object_object_add(o, "page_cache", pc);
		json_object_object_add(o, "lost_writes", image_lost_json(&e->image.lost));
		bu = json_object_new_object();
		json_object_object_add(bu, "dirty_bytes", e->image.dirty_budget ?
				       json_object_new_uint64(e->image.dirty_budget) : NULL);
		json_object_object_add(bu, "resident_bytes", e->image.resident_budget ?
				       json_object_new_uint64(e->image.resident_budget) : NULL);
		json_object_object_add(o, "budgets", bu);
		return o;
	}
	case DP_MAINTAIN:
	case DP_CALL:
		break;
	}
	json_object_object_add(o, "usec", json_object_new_uint64(d->usec));
	return o;
}

/* A worker found the image's writes lost: the core records it (persisted, so it outlives a
 * restart; the kernel will not report the error again). Returns the generation an answer
 * that tells of it waits for; 0 when nothing changed. */
static uint64_t note_lost_writes(struct api *api, struct dp_request *d)
{
	struct tag *e = entry_of(api, d);
	struct image_lost lost;

	if (!e)
		return 0;
	if (e->image.lost.since) /* recorded already; maybe by a write still under way */
		return core_last_persist(api->core);
	lost.since = image_io_lost(d->io, lost.error, sizeof(lost.error));
	if (!lost.since)
		return 0;
	log_err("Image %s of tag %s lost writes (%s). Its flushes fail until an operator has "
		"checked the storage and the data and runs 'tagmem image clear-error %s'.",
		e->cap.path, e->tag_str, lost.error, e->tag_str);
	return core_set_image_lost(api->core, e, &lost);
}

static void answer_done(struct api *api, struct dp_request *d, uint64_t wait_gen)
{
	struct image_work *w = image_work(d);
	struct json_object *res;

	if (w->wait) {
		if (d->error < 0) {
			answer_error(api, &w->ans, wait_gen, error_code(d->error), "%s", d->errmsg);
			return;
		}
		res = result_json(api, d);
		if (!res)
			answer_error(api, &w->ans, 0, "not_found", "tag %s went away", w->tag_str);
		else
			answer_result(api, &w->ans, res, 0);
		return;
	}
	/* an asynchronous flush: its completion is an event, to the asker and subscribers */
	answer_flush_done(api, &w->ans, result_json(api, d), d->error < 0 ?
			  error_code(d->error) : NULL, d->errmsg,
			  w->ans.peer == ANSWER_GUEST ? w->ans.guest_vm : NULL, wait_gen);
}

/* A data-plane request is done (on the loop): its answer, or the log for background work. */
static void work_done(struct dp_request *d)
{
	struct image_work *w = image_work(d);
	struct api *api = w->api;
	uint64_t gen;

	if (w->finish) {
		w->finish(d);
		dp_request_free(d);
		return;
	}
	gen = note_lost_writes(api, d);
	api_metrics_work_done(api, d);
	if (w->ans.peer != ANSWER_NOBODY) {
		answer_done(api, d, gen);
	} else if (d->error == -ENOSYS) {
		/* a kernel before cachestat (Linux 6.5): the same for every image at every tick,
		 * so said once */
		static bool said;

		if (!said)
			log_warn("This kernel has no cachestat (Linux 6.5 or later): brokerd cannot "
				 "count the images' resident pages, so their resident budgets are not "
				 "enforced (%s)", d->errmsg);
		said = true;
	} else if (d->error < 0) {
		log_warn("Image %s: %s eviction: %s", w->tag_str,
			 d->kind == DP_MAINTAIN ? "budget" : w->reason, d->errmsg);
	}
	if (d->kind == DP_EVICT && w->ans.peer == ANSWER_NOBODY) {
		struct tag *e = entry_of(api, d);

		if (e)
			e->image.evicting = false;
	}
	dp_request_free(d);
}

static void dataplane_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct api *api = data;

	(void)l;
	(void)fd;
	(void)events;
	dataplane_complete(api->dp);
}

/* Shrink to `fraction` of what the image holds when the worker gets to it (never above
 * cap): the loop's counts may be up to a second old. False when nothing was asked. */
static bool evict_in_background(struct api *api, struct tag *e, double fraction,
				uint64_t cap, const char *reason)
{
	struct dp_request *d;

	if (image_io_in_memory(e->image.io)) /* memory itself: nothing to give back */
		return false;
	d = image_work_new(api, e, DP_EVICT, NULL);
	if (!d)
		return false;
	snprintf(image_work(d)->reason, sizeof(image_work(d)->reason), "%s", reason);
	d->target = cap;
	d->fraction = fraction;
	e->image.evicting = true;
	log_debug("Image %s: %s eviction to %.0f%% of its cache", e->tag_str, reason,
		  fraction * 100);
	reclaim_submit(api, e, d);
	return true;
}

/* The VM an image counts for in the host's budget: its claim's owner, "" when unclaimed. */
static const char *image_vm(const struct tag *e)
{
	return e->claimed ? e->owner.name : "";
}

/* Over the host's budget (the shares divided): each VM above its fair level gives back down
 * to it, each of its images in proportion to what it holds (shares.c says why this is fair).
 * The counts are the workers' (counting a large image's page cache is work for them, not for
 * the loop), so each image is asked for a fraction, which its worker applies to what it
 * counts then. */
static void share_out(struct api *api)
{
	struct tag *e;

	core_for_each(e, api->core) {
		struct vm_share *v;

		if (!e->image.io || e->image.evicting)
			continue; /* one eviction at a time per image; the others go ahead */
		v = shares_find(&api->shares, &api->nshares, &api->capshares, image_vm(e));
		if (!v || v->cap == UINT64_MAX || !v->resident || v->cap >= v->resident)
			continue;
		evict_in_background(api, e, (double)v->cap / (double)v->resident, UINT64_MAX,
				    "global");
	}
}

/* Budgets: every image gets a look each interval (its counters come back with it). */
static int64_t upkeep_tick(struct loop *l, void *data)
{
	struct api *api = data;
	uint64_t global = api->host_budget;
	struct tag *e, *tmp;

	api->nshares = 0; /* counted afresh below */

	reclaim_tick(api);
	if (++api->ticks % 10 == 0)
		api_snapshot_progress(api);
	api_metrics_tick(api);
	api_cdi_tick(api);
	list_for_each_safe(e, tmp, core_tags(api->core), node) {
		struct dp_request *d;
		uint64_t cached;
		bool asks;

		if (!e->image.io)
			continue;
		if (image_io_deleted(e->image.io)) {
			/* its file was deleted: the image is gone (a VM that maps it keeps the memory
			 * until it exits; brokerd can neither flush nor hand it out any more) */
			log_warn("Image %s of tag %s was deleted; forgetting it", e->cap.path,
				 e->tag_str);
			core_gone(api->core, &e->tag);
			continue;
		}
		cached = image_io_last_counts(e->image.io).cached;
		{
			struct vm_share *v = shares_find(&api->shares, &api->nshares,
							 &api->capshares, image_vm(e));
			if (v) {
				v->resident += cached;
				v->images++;
			}
		}
		/* a VM's guest may say what goes: the loop evicts over the budget after asking,
		 * instead of the worker on its own */
		asks = e->image.resident_budget && reclaim_asks(api, e);
		if (asks && cached > e->image.resident_budget && !e->image.evicting)
			evict_in_background(api, e, 0, e->image.resident_budget, "budget");
		if (dataplane_maintaining(e->image.io))
			continue;
		d = image_work_new(api, e, DP_MAINTAIN, NULL);
		if (!d)
			continue;
		d->keep_resident = asks;
		dataplane_submit(api->dp, d);
	}
	/* over the host's budget: shared between VMs, fairly (the division is status' too) */
	if (shares_divide(global, api->shares, api->nshares) > 0)
		share_out(api);
	return api->settings->upkeep_interval_ms;
}

static void pressure_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct api *api = data;
	unsigned n = 0;

	if (events & EPOLLERR) {
		log_warn("The memory-pressure trigger went away; eviction now runs on budgets and "
			 "requests only");
		loop_del_fd(l, fd);
		close(fd);
		api->psi_fd = -1;
		return;
	}
	api->pressure_events++;
	/* each image halves what it holds, or goes to its budget if that is lower */
	struct tag *e;

	core_for_each(e, api->core) {
		if (!e->image.io || e->image.evicting)
			continue;
		n += evict_in_background(api, e, 0.5, e->image.resident_budget ?
					 e->image.resident_budget : UINT64_MAX, "pressure");
	}
	log_info("Memory pressure: evicting %u image(s)", n);
}

static void pressure_start(struct api *api)
{
	char path[PATH_MAX];
	const char *trig = api->settings->pressure;
	int fd;

	if (!trig)
		return;
	snprintf(path, sizeof(path), "%s/pressure/memory", api->settings->proc_root);
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && write(fd, trig, strlen(trig) + 1) < 0) {
		int saved = errno;
		close(fd);
		fd = -1;
		errno = saved;
	}
	if (fd < 0) {
		log_info("No memory-pressure trigger (%s: %m); images are evicted on budgets and "
			 "requests only", path);
		return;
	}
	if (loop_add_fd(api->loop, fd, EPOLLPRI, pressure_ready, api) < 0) {
		close(fd);
		return;
	}
	api->psi_fd = fd;
	log_debug("Watching memory pressure: %s", trig);
}

int upkeep_start(struct api *api)
{
	int r = loop_add_fd(api->loop, dataplane_fd(api->dp), EPOLLIN, dataplane_ready, api);

	if (r < 0)
		return r;
	r = reclaim_init(api);
	if (r < 0)
		return r;
	api->host_budget = api->settings->resident_budget;
	api->upkeep_timer = loop_add_timer(api->loop, api->settings->upkeep_interval_ms,
					   upkeep_tick, api);
	if (api->upkeep_timer < 0)
		return (int)api->upkeep_timer;
	pressure_start(api);
	return 0;
}

void upkeep_stop(struct api *api)
{
	if (api->loop)
		loop_cancel_timer(api->loop, api->upkeep_timer);
	reclaim_fini(api);
	free(api->shares);
	api->shares = NULL;
	api->nshares = api->capshares = 0;
	if (api->psi_fd >= 0) {
		loop_del_fd(api->loop, api->psi_fd);
		close(api->psi_fd);
		api->psi_fd = -1;
	}
	if (api->dp && api->loop)
		loop_del_fd(api->loop, dataplane_fd(api->dp));
}
