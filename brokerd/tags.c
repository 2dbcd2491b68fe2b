/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tag table: a hash by tag for lookups and a list in arrival order for listing. */
#include <string.h>

#include <json-c/json.h>

#include "brokerd.h"
#include "util.h"

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

int tag_table_init(struct tag_table *t)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 256;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	return t->buckets ? 0 : -ENOMEM;
}

static void tag_entry_free(struct tag_entry *e)
{
	image_io_unref(e->io);
	free(e->path);
	free(e);
}

void tag_table_clear(struct tag_table *t)
{
	while (t->head) {
		struct tag_entry *e = t->head;
		t->head = e->next;
		tag_entry_free(e);
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

struct tag_entry *tag_table_find(struct tag_table *t, const tagmem_tag *tag)
{
	for (struct tag_entry *e = t->buckets[tag_hash(tag, t->nbuckets)]; e; e = e->hnext)
		if (!tagmem_tag_compare(&e->tag, tag))
			return e;
	return NULL;
}

static int grow(struct tag_table *t)
{
	size_t nb = t->nbuckets * 2;
	struct tag_entry **buckets = calloc(nb, sizeof(*buckets));

	if (!buckets)
		return -ENOMEM;
	for (struct tag_entry *e = t->head; e; e = e->next) {
		size_t h = tag_hash(&e->tag, nb);
		e->hnext = buckets[h];
		buckets[h] = e;
	}
	free(t->buckets);
	t->buckets = buckets;
	t->nbuckets = nb;
	return 0;
}

int tag_table_add(struct tag_table *t, const tagmem_tag *tag, struct tag_entry **ret)
{
	struct tag_entry *e;
	size_t h;

	if (t->count >= t->nbuckets && grow(t) < 0)
		return -ENOMEM;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->tag = *tag;
	tagmem_tag_format(tag, e->tag_str);
	h = tag_hash(tag, t->nbuckets);
	e->hnext = t->buckets[h];
	t->buckets[h] = e;
	e->prev = t->tail;
	if (t->tail)
		t->tail->next = e;
	else
		t->head = e;
	t->tail = e;
	t->count++;
	*ret = e;
	return 0;
}

void tag_table_remove(struct tag_table *t, struct tag_entry *e)
{
	struct tag_entry **pp = &t->buckets[tag_hash(&e->tag, t->nbuckets)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	t->count--;
	tag_entry_free(e);
}

const char *tag_state_name(enum tag_state s)
{
	switch (s) {
	case TAG_ADDED: return "added";
	case TAG_READY: return "ready";
	case TAG_CLAIMED: return "claimed";
	case TAG_RELEASE_PENDING: return "release_pending";
	case TAG_RELEASED: return "released";
	}
	return "unknown";
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

/* One builder for the tag object everywhere (list, show, lookup, events). Unknown values
 * are left out, never null. */
struct json_object *tag_to_json(const struct tag_entry *e)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_str(o, "tag", e->tag_str);
	add_str(o, "state", tag_state_name(e->state));
	add_u64(o, "size", e->size);
	add_u64(o, "region", e->region);
	json_object_object_add(o, "shared", json_object_new_boolean(e->shared));
	add_u64(o, "extents", e->nextents);
	if (e->device[0])
		add_str(o, "device", e->device);
	if (e->path)
		add_str(o, "path", e->path);
	if (e->claimed) {
		struct json_object *own = json_object_new_object();
		add_u64(own, "uid", e->owner.uid);
		if (e->owner.pid > 0)
			add_u64(own, "pid", (uint64_t)e->owner.pid);
		if (e->owner.name[0])
			add_str(own, "name", e->owner.name);
		json_object_object_add(own, "since", json_object_new_int64(e->owner.since));
		if (e->owner.slot >= 0)
			json_object_object_add(own, "slot", json_object_new_int(e->owner.slot));
		json_object_object_add(o, "owner", own);
	}
	if (e->image) {
		json_object_object_add(o, "image", json_object_new_boolean(true));
		add_u64(o, "file_size", e->file_size);
	}
	if (e->attached)
		json_object_object_add(o, "attached", json_object_new_boolean(true));
	if (e->detach_pending)
		json_object_object_add(o, "detach_pending", json_object_new_boolean(true));
	if (e->release_requested)
		json_object_object_add(o, "release_requested", json_object_new_boolean(true));
	return o;
}
