/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The core: the table of tags and their state machine. It is the only writer of tag state.
 * Everything else speaks to it in intents — backends through core_reconcile() and the
 * release/gone verbs, requests through claim/unclaim/attach/detach — and the core reports
 * outward only through the callbacks it was given (events, persistence, the backend's
 * materialise/destroy). It knows nothing of sockets, JSON requests, threads or QEMU, so it
 * links and is tested alone.
 *
 * A tag's state is derived from its facts, never stored:
 *
 *   added ──(device)──▶ ready ◀──unclaim── claimed
 *                         │  ───claim───▶    │
 *                         ▼                  ▼ release requested, or detach
 *                 (released: gone)    release_pending ──unclaim / VM exit──▶ gone
 *
 * Single-threaded: every call runs on the event loop.
 */
#ifndef BROKERD_CORE_H
#define BROKERD_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "list.h"
#include "tagmem.h"

struct json_object;
struct view;
struct image_io;
struct core;

enum tag_state {
	TAG_ADDED,           /* extents present, no device yet */
	TAG_READY,           /* device materialised, nobody holds it */
	TAG_CLAIMED,         /* held by an owner */
	TAG_RELEASE_PENDING, /* wanted back (fabric manager or detach); waits for the owner */
	TAG_RELEASED,        /* gone: only ever seen in the tag_released event */
};
#define TAG_STATE_COUNT 5

struct tag_owner {
	uid_t uid;
	pid_t pid;
	char name[128];  /* what the owner calls it; the VM name for QEMU attachments */
	int64_t since;   /* realtime seconds */
	int slot;        /* nvdimm slot in that VM, -1 when not handed to a VM */
	bool granted;    /* the claim gave the owner the device node (or image file) */
};

/* What the backend says about the capacity (core_reconcile). */
struct tag_capacity {
	unsigned region;
	bool shared;            /* other hosts see the same bytes */
	uint64_t size;          /* sum of the extents; an image's data part */
	unsigned nextents;
	char device[32];        /* "dax0.3", "pmem1", "image"; "" while there is none */
	char *path;             /* device node (or image file) once there is a device */
};

/* The hand-over to a running VM through its monitor. */
enum tag_vm {
	TAG_VM_NONE,
	TAG_VM_ATTACHING,       /* hot-plug in flight: claimed provisionally, never persisted */
	TAG_VM_ATTACHED,        /* hot-plugged through a VM monitor we hold */
	TAG_VM_DETACH_PENDING,  /* asked to detach; released when the VM exits */
	TAG_VM_INCOMING,        /* a VM migrating in from another host: claimed provisionally,
				 * never persisted, until the migration ends here */
};

/* Writes to an image that the kernel reported lost (a writeback error). The kernel says so
 * once per open file; brokerd keeps saying it on every flush, across restarts, until an
 * operator who has dealt with the data clears it. */
struct image_lost {
	int64_t since;          /* realtime seconds of the first error; 0: nothing lost */
	char error[192];        /* what failed then */
};

/* Images: broker-owned files. The core keeps the record; the data plane owns io. */
struct tag_image {
	struct image_io *io;    /* non-NULL for an image */
	uint64_t file_size;     /* [devdax prefix] + data + label tail */
	uint64_t data_offset;   /* where the tag's offset 0 is in the file: 0, or the devdax or
				 * fsdax layout's prefix (the guest's info block lives there) */
	bool fsdax;             /* the prefix's info block makes a pfn device (fsdax), not a
				 * dax device: what the file says, for display */
	uint64_t dirty_budget, resident_budget; /* persisted; 0: none */
	struct image_lost lost; /* persisted */
	uint64_t inode;         /* persisted: the file brokerd made or adopted, checked at start */
	bool evicting;          /* a budget or pressure eviction is in flight (upkeep's) */
};

struct tag {
	tagmem_tag tag;
	char tag_str[TAGMEM_TAG_STRING_MAX];
	struct tag_capacity cap;
	bool claimed;
	struct tag_owner owner; /* valid when claimed */
	enum tag_vm vm;
	bool release_requested; /* the fabric manager asked for it back */
	bool materialise_failed; /* logged once; retried when the backend reports a change */
	bool gone;              /* only while the tag_released event is emitted */
	struct tag_image image;
	uint64_t seen_gen;      /* the core's: the last reconcile whose view named it */
	struct tag *hnext;      /* hash chain */
	struct list_node node;  /* arrival order: oldest first */
};

enum tag_state tag_state(const struct tag *t);
const char *tag_state_name(enum tag_state s);
/* An image's layout: "pmem", "devdax" or "fsdax". */
const char *tag_layout(const struct tag *t);
static inline bool tag_is_image(const struct tag *t) { return t->image.io != NULL; }
/* Is the tag held for VM (uid, name)? One rule for "of this VM" (any slot, RAM too). */
static inline bool tag_of_vm(const struct tag *t, uid_t uid, const char *vm)
{
	return t->claimed && t->owner.uid == uid && !strcmp(t->owner.name, vm);
}
/* The tag object of the protocol (list, show, lookup, events): one builder everywhere. */
struct json_object *tag_to_json(const struct tag *t);
/* An image's lost writes as the protocol shows them: null, or {"since", "error"}. */
struct json_object *image_lost_json(const struct image_lost *lost);

/* ---- what the core calls outward ------------------------------------------------------ */

/* A device the backend made (core_callbacks.materialise). */
struct core_device {
	char name[32];
	char path[4096];
};

struct core_callbacks {
	void *userdata;
	/* A tag event ("tag_added", "tag_ready", "tag_claimed", …) for subscribers. */
	void (*tag_event)(void *userdata, const char *name, const struct tag *t);
	/* Untagged capacity changed by delta; total is the new sum. */
	void (*untagged_event)(void *userdata, int64_t delta, uint64_t total);
	/* Write the durable state (claims, images) now; returns the generation a reply that
	 * acknowledges a change must wait for. */
	uint64_t (*persist)(void *userdata);
	/* Make the tag's device. 1 with *ret filled: ready now; 0: the backend reports it later
	 * through core_reconcile(); -errno. May be NULL (nothing to materialise). */
	int (*materialise)(void *userdata, const struct tag *t, struct core_device *ret);
	/* Take the tag's device down so a release can complete. 1: the capacity is gone now;
	 * 0: the backend reports what happened later; -errno. */
	int (*destroy)(void *userdata, const struct tag *t);
	/* An image's record is dropped: release its io. */
	void (*image_free)(struct image_io *io);
};

/* A claim that outlived a restart (the registry's), matched as capacity reappears. */
struct core_claim {
	tagmem_tag tag;
	struct tag_owner owner;
};

int core_new(const struct core_callbacks *cb, unsigned max_tags, struct core **ret);
void core_free(struct core *c);

struct tag *core_find(struct core *c, const tagmem_tag *tag);
size_t core_count(struct core *c);
struct list_head *core_tags(struct core *c); /* arrival order; iterate with list_for_each */
#define core_for_each(t, c) list_for_each(t, core_tags(c), node)
uint64_t core_untagged_bytes(struct core *c);

/* ---- from backends -------------------------------------------------------------------- */

enum { CORE_VIEW_PARTIAL = 0, CORE_VIEW_COMPLETE = 1 };
/*
 * What the backend sees now. Every tag of the view is added or updated (size, extents, a
 * device that carries it: root is where device nodes live); with CORE_VIEW_COMPLETE, tags
 * the core holds that the view lacks are gone (images are the broker's own and stay). Then
 * tags with capacity and no device are materialised.
 */
void core_reconcile(struct core *c, const struct view *v, const char *root, int complete);
/* The fabric manager wants the tag back: deferred while claimed, else the device goes. */
void core_release_request(struct core *c, const tagmem_tag *tag);
/* The capacity is gone (forced, or the release completed). */
void core_gone(struct core *c, const tagmem_tag *tag);
/* Capacity without a tag appeared (delta > 0) or went. */
void core_untagged(struct core *c, int64_t delta);

/* ---- from requests: each returns 0 or a refusal, and changes nothing when refused ----- */

enum core_refusal {
	CORE_NOT_READY = 1,     /* no device yet */
	CORE_RELEASE_PENDING,   /* being released */
	CORE_BUSY,              /* held by someone else */
	CORE_ATTACHING,         /* a hot-plug is in flight */
	CORE_IN_VM,             /* plugged into a VM that QEMU cannot unplug it from */
	CORE_NOT_CLAIMED,
	CORE_NOT_ATTACHED,
	CORE_NO_MEMORY,
};

/* Claim for owner (name, uid, pid; since and slot are set here). Claiming again with the
 * same uid and name succeeds and re-persists (the first write may have failed).
 * *ret_gen: the registry generation the acknowledgement waits for. */
int core_claim(struct core *c, struct tag *t, const struct tag_owner *owner,
	       uint64_t *ret_gen);
/* Claim for a VM's command line (qemu-args): like core_claim, but a tag this VM already
 * holds is fine, and the slot is (re)pinned. No persist: the caller persists once for all. */
int core_claim_for_vm(struct core *c, struct tag *t, const struct tag_owner *owner, int slot);
/* Would core_claim_for_vm accept? (A request naming several tags checks all first.) */
int core_check_claim_for_vm(struct core *c, const struct tag *t, const struct tag_owner *owner);
/* Give the claim back. *ret_released: the fabric manager was waiting and the capacity went
 * with it (t is freed then). */
int core_unclaim(struct core *c, struct tag *t, bool *ret_released, uint64_t *ret_gen);
/* Hot-plug: begin (a provisional claim, not persisted), confirm when QEMU accepted it
 * (persisted), abort when it did not. */
int core_attach_begin(struct core *c, struct tag *t, const struct tag_owner *owner, int slot);
void core_attach_confirm(struct core *c, struct tag *t, uint64_t *ret_gen);
void core_attach_abort(struct core *c, struct tag *t);
/* Ask for a hot-plugged tag back: QEMU cannot unplug it, so it is released at VM exit. */
int core_detach(struct core *c, struct tag *t);
/* The VM (name, uid) exited: its hot-plugged tags are released. Returns how many. */
unsigned core_vm_exited(struct core *c, const char *vm, uid_t uid);
/* Live migration. In: the destination's claims are provisional (never persisted, dropped
 * when its QEMU exits) until the migration is done here (confirm: persisted) or not
 * (abort). Out: once the VM runs elsewhere, every claim of it here goes (persisted).
 * Each returns how many tags it changed; *ret_gen the generation to wait for. */
int core_claim_incoming(struct core *c, struct tag *t, const struct tag_owner *owner, int slot);
unsigned core_incoming_confirm(struct core *c, const char *vm, uid_t uid, uint64_t *ret_gen);
unsigned core_incoming_abort(struct core *c, const char *vm, uid_t uid);
unsigned core_vm_migrated_out(struct core *c, const char *vm, uid_t uid, uint64_t *ret_gen);
/* Persist now (e.g. after several core_claim_for_vm). */
uint64_t core_persist(struct core *c);
/* The newest generation persisted (a reply after a backend call that may have changed
 * durable state waits for it). */
uint64_t core_last_persist(struct core *c);

/* ---- images and restarts -------------------------------------------------------------- */

/* A broker-owned image file as tagged capacity (ready at once). io is taken over. */
int core_add_image(struct core *c, const tagmem_tag *tag, const char *path, uint64_t file_size,
		   uint64_t data_offset, uint64_t data_size, struct image_io *io,
		   uint64_t dirty_budget, uint64_t resident_budget, struct tag **ret);
/* Budgets of an image changed (persisted). */
uint64_t core_set_image_budgets(struct core *c, struct tag *t, uint64_t dirty,
				uint64_t resident);

/* The image lost writes (lost->since != 0), or an operator cleared that (lost NULL).
 * Persisted; returns the generation to wait for. */
uint64_t core_set_image_lost(struct core *c, struct tag *t, const struct image_lost *lost);

/* Claims from the registry (ownership taken), matched as tags are reconciled or added... */
void core_restore_claims(struct core *c, struct core_claim *claims, size_t n);
/* ...until the start-up scan is over: claims whose capacity did not come back are dropped
 * (logged, persisted). */
void core_restore_done(struct core *c);
/* Take a restored claim back out before it is matched or dropped: its tag is an image that
 * cannot be opened yet, and the caller keeps the claim for when it can. 0, or -ENOENT. */
int core_restore_withhold(struct core *c, const tagmem_tag *tag, struct core_claim *ret);

/* Counts per state and the sum of tagged bytes (status). */
void core_stats(struct core *c, unsigned counts[TAG_STATE_COUNT], uint64_t *ret_tagged);

#endif
