/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tag state machine (core.h): the table, the verbs, and reconciliation with backends. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "log.h"
#include "view.h"

struct core {
	struct core_callbacks cb;
	unsigned max_tags;
	struct tag **buckets;        /* hash by tag */
	size_t nbuckets, count;
	struct list_head tags;       /* arrival order */
	uint64_t untagged_bytes;     /* capacity without a tag: a host may online it as RAM */
	struct core_claim *restored; /* registry claims during start-up, sorted */
	size_t nrestored;
	uint64_t last_persist;       /* newest generation the persist callback returned */
	uint64_t reconcile_gen;      /* numbers each reconcile, to find what a view lacks */
};

/* ---- the table ---- */

static size_t tag_hash(const tagmem_tag *tag, size_t nbuckets)
{
	/* FNV-1a: tags come from a fabric manager we do not control; do not trust randomness. */
	uint64_t h = 1469598103934665603ull;

	for (unsigned i = 0; i < sizeof(tag->bytes); i++) {
		h ^= tag->bytes[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h & (nbuckets - 1));
}

struct tag *core_find(struct core *c, const tagmem_tag *tag)
{
	for (struct tag *t = c->buckets[tag_hash(tag, c->nbuckets)]; t; t = t->hnext)
		if (!tagmem_tag_compare(&t->tag, tag))
			return t;
	return NULL;
}

static int grow(struct core *c)
{
	size_t nb = c->nbuckets * 2;
	struct tag **buckets = calloc(nb, sizeof(*buckets)), *t;

	if (!buckets)
		return -ENOMEM;
	core_for_each(t, c) {
		size_t h = tag_hash(&t->tag, nb);
		t->hnext = buckets[h];
		buckets[h] = t;
	}
	free(c->buckets);
	c->buckets = buckets;
	c->nbuckets = nb;
	return 0;
}

static struct tag *table_add(struct core *c, const tagmem_tag *tag)
{
	struct tag *t;
	size_t h;

	if (c->count >= c->max_tags) {
		char s[TAGMEM_TAG_STRING_MAX];
		log_err("Tag limit (%u) reached; tag %s not tracked, ignoring", c->max_tags,
			tagmem_tag_format(tag, s));
		return NULL;
	}
	if ((c->count >= c->nbuckets && grow(c) < 0) || !(t = calloc(1, sizeof(*t)))) {
		log_err("Out of memory tracking a tag, ignoring");
		return NULL;
	}
	t->tag = *tag;
	tagmem_tag_format(tag, t->tag_str);
	t->owner.slot = -1;
	h = tag_hash(tag, c->nbuckets);
	t->hnext = c->buckets[h];
	c->buckets[h] = t;
	list_add_tail(&c->tags, &t->node);
	c->count++;
	return t;
}

static void table_remove(struct core *c, struct tag *t)
{
	struct tag **pp = &c->buckets[tag_hash(&t->tag, c->nbuckets)];

	while (*pp && *pp != t)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = t->hnext;
	list_del(&t->node);
	c->count--;
	if (t->image.io && c->cb.image_free)
		c->cb.image_free(t->image.io);
	free(t->cap.path);
	free(t);
}

int core_new(const struct core_callbacks *cb, unsigned max_tags, struct core **ret)
{
	struct core *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->cb = *cb;
	c->max_tags = max_tags;
	c->nbuckets = 256;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	list_init(&c->tags);
	*ret = c;
	return 0;
}

void core_free(struct core *c)
{
	struct tag *t, *tmp;

	if (!c)
		return;
	list_for_each_safe(t, tmp, &c->tags, node)
		table_remove(c, t);
	free(c->buckets);
	free(c->restored);
	free(c);
}

size_t core_count(struct core *c)
{
	return c->count;
}

struct list_head *core_tags(struct core *c)
{
	return &c->tags;
}

uint64_t core_untagged_bytes(struct core *c)
{
	return c->untagged_bytes;
}

/* ---- outward ---- */

static void emit(struct core *c, const char *name, const struct tag *t)
{
	if (c->cb.tag_event)
		c->cb.tag_event(c->cb.userdata, name, t);
}

uint64_t core_persist(struct core *c)
{
	if (c->cb.persist)
		c->last_persist = c->cb.persist(c->cb.userdata);
	return c->last_persist;
}

uint64_t core_last_persist(struct core *c)
{
	return c->last_persist;
}

static void set_owner(struct tag *t, const struct tag_owner *owner, int slot)
{
	t->claimed = true;
	t->owner = *owner;
	t->owner.since = (int64_t)time(NULL);
	t->owner.slot = slot;
}

static void clear_claim(struct tag *t)
{
	t->claimed = false;
	t->vm = TAG_VM_NONE;
	memset(&t->owner, 0, sizeof(t->owner));
	t->owner.slot = -1;
}

static void remove_gone(struct core *c, struct tag *t)
{
	/* forced release: the claim is gone with the memory; an image leaves the registry */
	bool durable = t->claimed || tag_is_image(t);

	t->gone = true;
	emit(c, "tag_released", t);
	table_remove(c, t);
	if (durable)
		core_persist(c);
}

/* Take the device down for a release the fabric manager is waiting for. */
static void destroy_device(struct core *c, struct tag *t)
{
	int r;

	if (!c->cb.destroy)
		return;
	r = c->cb.destroy(c->cb.userdata, t);
	if (r < 0)
		log_err("Failed to tear down the device of released tag %s: %s", t->tag_str,
			strerror(-r));
	else if (r > 0)
		remove_gone(c, t);
}

static void set_device(struct core *c, struct tag *t, const char *name, const char *path)
{
	bool was_added = !t->cap.path;
	char *p = strdup(path);

	if (!p)
		return;
	free(t->cap.path);
	t->cap.path = p;
	snprintf(t->cap.device, sizeof(t->cap.device), "%s", name);
	if (was_added)
		emit(c, "tag_ready", t);
}

/* ---- restored claims ---- */

static int cmp_claim(const void *a, const void *b)
{
	return tagmem_tag_compare(&((const struct core_claim *)a)->tag,
				  &((const struct core_claim *)b)->tag);
}

void core_restore_claims(struct core *c, struct core_claim *claims, size_t n)
{
	free(c->restored);
	c->restored = claims;
	c->nrestored = n;
	/* sorted before anything looks a claim up */
	if (n)
		qsort(claims, n, sizeof(*claims), cmp_claim);
}

int core_restore_withhold(struct core *c, const tagmem_tag *tag, struct core_claim *ret)
{
	struct core_claim key = { .tag = *tag }, *m;

	if (!c->nrestored)
		return -ENOENT;
	m = bsearch(&key, c->restored, c->nrestored, sizeof(key), cmp_claim);
	if (!m || m->owner.uid == (uid_t)-1)
		return -ENOENT;
	*ret = *m;
	m->owner.uid = (uid_t)-1; /* as if matched: neither taken nor dropped here */
	return 0;
}

/* A tag that (re)appears takes its claim from before the restart, so that a release the
 * fabric manager asked for while we were down cannot tear down a device somebody holds. */
static void match_restored(struct core *c, struct tag *t)
{
	struct core_claim key = { .tag = t->tag }, *m;

	if (!c->nrestored)
		return;
	m = bsearch(&key, c->restored, c->nrestored, sizeof(key), cmp_claim);
	if (!m || m->owner.uid == (uid_t)-1)
		return;
	t->claimed = true;
	t->owner = m->owner;
	m->owner.uid = (uid_t)-1; /* matched */
}

void core_restore_done(struct core *c)
{
	size_t dropped = 0;

	for (size_t i = 0; i < c->nrestored; i++) {
		char s[TAGMEM_TAG_STRING_MAX];

		if (c->restored[i].owner.uid == (uid_t)-1)
			continue;
		log_warn("Claim on tag %s (uid %u) dropped: its capacity is gone",
			 tagmem_tag_format(&c->restored[i].tag, s), c->restored[i].owner.uid);
		dropped++;
	}
	log_info("Reconciled %zu claim(s) with %zu tag(s) seen; %zu dropped",
		 c->nrestored - dropped, c->count, dropped);
	free(c->restored);
	c->restored = NULL;
	c->nrestored = 0;
	if (dropped)
		core_persist(c);
}

/* ---- from backends ---- */

static void materialise_pending(struct core *c)
{
	struct tag *t, *tmp;

	if (!c->cb.materialise)
		return;
	list_for_each_safe(t, tmp, &c->tags, node) {
		struct core_device d;
		int r;

		if (t->cap.path || t->release_requested || t->materialise_failed)
			continue;
		r = c->cb.materialise(c->cb.userdata, t, &d);
		if (r > 0)
			set_device(c, t, d.name, d.path);
		else if (r < 0) {
			log_err("Failed to make a device for tag %s: %s; retrying when its capacity "
				"changes", t->tag_str, strerror(-r));
			t->materialise_failed = true;
		}
	}
}

/* One tag of a view: new, or changed. Returns the tag (NULL when it cannot be tracked). */
static struct tag *seen(struct core *c, const struct view_tag *v)
{
	struct tag *t = core_find(c, &v->tag);

	if (!t) {
		t = table_add(c, &v->tag);
		if (!t)
			return NULL;
		t->cap.region = v->region;
		t->cap.shared = v->shared;
		t->cap.size = v->size;
		t->cap.nextents = v->nextents;
		match_restored(c, t);
		emit(c, "tag_added", t);
		return t;
	}
	if (t->cap.size != v->size || t->cap.nextents != v->nextents) {
		t->cap.size = v->size;
		t->cap.nextents = v->nextents;
		t->materialise_failed = false; /* something changed: worth another try */
		if (t->cap.path)
			log_warn("Tag %s changed size to %llu while it has a device", t->tag_str,
				 (unsigned long long)v->size);
	}
	return t;
}

void core_reconcile(struct core *c, const struct view *v, const char *root, int complete)
{
	struct tag *t, *tmp;

	c->reconcile_gen++;
	for (size_t i = 0; i < v->n; i++) {
		char path[4096];

		t = seen(c, &v->tags[i]);
		if (t)
			t->seen_gen = c->reconcile_gen;
		if (t && v->tags[i].device[0] &&
		    view_device_path(root, v->tags[i].device, path, sizeof(path)) == 0)
			set_device(c, t, v->tags[i].device, path);
	}
	if (complete == CORE_VIEW_COMPLETE) {
		/* what the kernel no longer shows is gone; images are the broker's own */
		list_for_each_safe(t, tmp, &c->tags, node)
			if (!tag_is_image(t) && t->seen_gen != c->reconcile_gen)
				remove_gone(c, t);
	}
	materialise_pending(c);
}

void core_release_request(struct core *c, const tagmem_tag *tag)
{
	struct tag *t = core_find(c, tag);

	if (!t || t->release_requested)
		return;
	t->release_requested = true;
	if (t->claimed) {
		/* The owner still uses it: the kernel keeps it until the owner lets go. */
		emit(c, "tag_release_pending", t);
		return;
	}
	if (t->cap.path)
		destroy_device(c, t); /* nobody holds the device: let the release complete */
}

void core_gone(struct core *c, const tagmem_tag *tag)
{
	struct tag *t = core_find(c, tag);

	if (t)
		remove_gone(c, t);
}

void core_untagged(struct core *c, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > c->untagged_bytes)
		c->untagged_bytes = 0;
	else
		c->untagged_bytes += (uint64_t)delta;
	if (c->cb.untagged_event)
		c->cb.untagged_event(c->cb.userdata, delta, c->untagged_bytes);
}

/* ---- from requests ---- */

/* Could the tag be handed to someone now? */
static int usable(const struct tag *t)
{
	if (t->vm == TAG_VM_ATTACHING)
		return CORE_ATTACHING;
	if (!t->cap.path)
		return CORE_NOT_READY;
	if (t->release_requested || tag_state(t) == TAG_RELEASE_PENDING)
		return CORE_RELEASE_PENDING;
	return 0;
}

int core_claim(struct core *c, struct tag *t, const struct tag_owner *owner,
	       uint64_t *ret_gen)
{
	int r = usable(t);

	if (r)
		return r;
	if (t->claimed) {
		if (t->owner.uid != owner->uid || strcmp(t->owner.name, owner->name))
			return CORE_BUSY;
		/* Idempotent, but only durable state may be acknowledged: the claim may be the one
		 * whose write just failed, so write it (again) and wait for that. */
		*ret_gen = core_persist(c);
		return 0;
	}
	set_owner(t, owner, -1);
	/* Acknowledged only once the registry holds it: a kill -9 must not lose the claim. */
	*ret_gen = core_persist(c);
	emit(c, "tag_claimed", t);
	return 0;
}

int core_check_claim_for_vm(struct core *c, const struct tag *t, const struct tag_owner *owner)
{
	int r = usable(t);

	if (r)
		return r;
	if (t->claimed && (t->owner.uid != owner->uid || strcmp(t->owner.name, owner->name)))
		return CORE_BUSY;
	return 0;
}

int core_claim_for_vm(struct core *c, struct tag *t, const struct tag_owner *owner, int slot)
{
	int r = core_check_claim_for_vm(c, t, owner);

	if (r)
		return r;
	if (!t->claimed) {
		set_owner(t, owner, slot);
		emit(c, "tag_claimed", t);
	}
	t->owner.slot = slot;
	return 0;
}

int core_unclaim(struct core *c, struct tag *t, bool *ret_released, uint64_t *ret_gen)
{
	bool pending = t->release_requested;

	if (!t->claimed)
		return CORE_NOT_CLAIMED;
	/* the VM still maps it and QEMU cannot unplug it: giving it to anyone else now would
	 * put two VMs on the same memory */
	if (t->vm != TAG_VM_NONE)
		return CORE_IN_VM;
	clear_claim(t);
	*ret_gen = core_persist(c);
	*ret_released = pending;
	emit(c, "tag_unclaimed", t);
	if (pending)
		destroy_device(c, t); /* the fabric manager was waiting: may free t */
	return 0;
}

int core_attach_begin(struct core *c, struct tag *t, const struct tag_owner *owner, int slot)
{
	int r = usable(t);

	if (r)
		return r;
	if (t->claimed)
		return CORE_BUSY;
	/* provisional: held in memory, never persisted, until QEMU confirms */
	set_owner(t, owner, slot);
	t->vm = TAG_VM_ATTACHING;
	return 0;
}

void core_attach_confirm(struct core *c, struct tag *t, uint64_t *ret_gen)
{
	t->vm = TAG_VM_ATTACHED;
	emit(c, "tag_attached", t);
	*ret_gen = core_persist(c); /* confirmed by QEMU: now it is the registry's */
}

void core_attach_abort(struct core *c, struct tag *t)
{
	if (t->vm == TAG_VM_ATTACHING)
		clear_claim(t);
}

int core_detach(struct core *c, struct tag *t)
{
	if (t->vm != TAG_VM_ATTACHED && t->vm != TAG_VM_DETACH_PENDING)
		return CORE_NOT_ATTACHED;
	t->vm = TAG_VM_DETACH_PENDING;
	emit(c, "tag_detach_pending", t);
	return 0;
}

/* Drop the claims of VM (vm, uid) whose hand-over phase is one of mask (1 << TAG_VM_…). */
static unsigned drop_vm_claims(struct core *c, const char *vm, uid_t uid, unsigned mask)
{
	struct tag *t, *tmp;
	unsigned n = 0;

	list_for_each_safe(t, tmp, &c->tags, node) {
		if (!tag_of_vm(t, uid, vm) || !(mask & (1u << t->vm)))
			continue;
		clear_claim(t);
		emit(c, "tag_unclaimed", t);
		n++;
		if (t->release_requested)
			destroy_device(c, t); /* may free t */
	}
	return n;
}

unsigned core_vm_exited(struct core *c, const char *vm, uid_t uid)
{
	/* hot-plugged tags go with the VM, and so do a migration's provisional claims */
	unsigned n = drop_vm_claims(c, vm, uid, 1u << TAG_VM_ATTACHED |
				    1u << TAG_VM_DETACH_PENDING | 1u << TAG_VM_INCOMING);

	if (n)
		core_persist(c);
	return n;
}

int core_claim_incoming(struct core *c, struct tag *t, const struct tag_owner *owner, int slot)
{
	int r = usable(t);

	if (r)
		return r;
	if (t->claimed && (t->vm != TAG_VM_INCOMING || t->owner.uid != owner->uid ||
			   strcmp(t->owner.name, owner->name)))
		return CORE_BUSY;
	/* the VM is still another host's: nothing here is durable until it runs here */
	set_owner(t, owner, slot);
	t->vm = TAG_VM_INCOMING;
	return 0;
}

unsigned core_incoming_confirm(struct core *c, const char *vm, uid_t uid, uint64_t *ret_gen)
{
	struct tag *t;
	unsigned n = 0;

	core_for_each(t, c)
		if (tag_of_vm(t, uid, vm) && t->vm == TAG_VM_INCOMING) {
			t->vm = TAG_VM_NONE;
			emit(c, "tag_claimed", t);
			n++;
		}
	*ret_gen = core_persist(c);
	return n;
}

unsigned core_incoming_abort(struct core *c, const char *vm, uid_t uid)
{
	return drop_vm_claims(c, vm, uid, 1u << TAG_VM_INCOMING);
}

unsigned core_vm_migrated_out(struct core *c, const char *vm, uid_t uid, uint64_t *ret_gen)
{
	unsigned n = drop_vm_claims(c, vm, uid, ~(1u << TAG_VM_INCOMING));

	*ret_gen = core_persist(c);
	return n;
}

/* ---- images ---- */

int core_add_image(struct core *c, const tagmem_tag *tag, const char *path, uint64_t file_size,
		   uint64_t data_offset, uint64_t data_size, struct image_io *io,
		   uint64_t dirty_budget, uint64_t resident_budget, struct tag **ret)
{
	struct tag *t;

	if (core_find(c, tag))
		return -EEXIST;
	t = table_add(c, tag);
	if (!t)
		return -ENOMEM;
	t->cap.path = strdup(path);
	if (!t->cap.path) {
		table_remove(c, t);
		return -ENOMEM;
	}
	t->image.io = io;
	t->image.file_size = file_size;
	t->image.data_offset = data_offset;
	t->image.dirty_budget = dirty_budget;
	t->image.resident_budget = resident_budget;
	t->cap.size = data_size; /* the guest sees the data part */
	snprintf(t->cap.device, sizeof(t->cap.device), "image");
	match_restored(c, t);
	emit(c, "tag_added", t);
	emit(c, "tag_ready", t);
	if (ret)
		*ret = t;
	return 0;
}

uint64_t core_set_image_budgets(struct core *c, struct tag *t, uint64_t dirty,
				uint64_t resident)
{
	t->image.dirty_budget = dirty;
	t->image.resident_budget = resident;
	return core_persist(c);
}

uint64_t core_set_image_lost(struct core *c, struct tag *t, const struct image_lost *lost)
{
	if (lost)
		t->image.lost = *lost;
	else
		memset(&t->image.lost, 0, sizeof(t->image.lost));
	return core_persist(c);
}

void core_stats(struct core *c, unsigned counts[TAG_STATE_COUNT], uint64_t *ret_tagged)
{
	struct tag *t;
	uint64_t tagged = 0;

	memset(counts, 0, sizeof(unsigned) * TAG_STATE_COUNT);
	core_for_each(t, c) {
		counts[tag_state(t)]++;
		tagged += t->cap.size;
	}
	*ret_tagged = tagged;
}
