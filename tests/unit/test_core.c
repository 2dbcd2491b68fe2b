/* Unit tests: the core's state machine, linked alone (no server, backends, data plane or
 * VMs). Every transition of tag_state() is driven through the core's verbs and its one
 * reconcile entry, with recording callbacks standing in for events, the registry and the
 * backend's materialise/destroy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core.h"
#include "view.h"

#define T1 "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define T2 "11111111-2222-4333-8444-555555555555"
#define MB (1ull << 20)

/* What the callbacks saw and how they answer. */
struct rec {
	char events[2048];        /* "tag_added:T1 tag_ready:T1 …" with short tag names */
	unsigned persists;
	unsigned materialise_calls, destroy_calls, images_freed;
	int materialise_ret;      /* 1: ready now (with dev_name), 0: later, <0: error */
	int destroy_ret;          /* 1: gone now, 0: later, <0: error */
	char dev_name[32];
};

static struct rec rec;

static const char *short_name(const struct tag *t)
{
	return !strcmp(t->tag_str, T1) ? "T1" : !strcmp(t->tag_str, T2) ? "T2" : "T?";
}

static void on_event(void *ud, const char *name, const struct tag *t)
{
	size_t n = strlen(rec.events);

	snprintf(rec.events + n, sizeof(rec.events) - n, "%s%s:%s", n ? " " : "", name,
		 short_name(t));
}

static uint64_t on_persist(void *ud)
{
	return ++rec.persists;
}

static int on_materialise(void *ud, const struct tag *t, struct core_device *ret)
{
	rec.materialise_calls++;
	if (rec.materialise_ret > 0) {
		snprintf(ret->name, sizeof(ret->name), "%s", rec.dev_name);
		snprintf(ret->path, sizeof(ret->path), "/dev/%s", rec.dev_name);
	}
	return rec.materialise_ret;
}

static int on_destroy(void *ud, const struct tag *t)
{
	rec.destroy_calls++;
	return rec.destroy_ret;
}

static void on_image_free(struct image_io *io)
{
	rec.images_freed++;
}

static struct core *new_core(unsigned max_tags)
{
	static const struct core_callbacks cb = {
		.tag_event = on_event, .persist = on_persist, .materialise = on_materialise,
		.destroy = on_destroy, .image_free = on_image_free,
	};
	struct core *c;

	memset(&rec, 0, sizeof(rec));
	assert_int_equal(core_new(&cb, max_tags, &c), 0);
	return c;
}

static tagmem_tag tag_of(const char *s)
{
	tagmem_tag t;

	assert_int_equal(tagmem_tag_parse(s, &t), 0);
	return t;
}

/* A view of one tag: size bytes, carried by device (NULL: no device yet). */
static void reconcile_one(struct core *c, const char *tag, uint64_t size, const char *device,
			  int complete)
{
	struct view_tag vt = { .tag = tag_of(tag), .size = size, .nextents = 1 };
	struct view v = { .tags = &vt, .n = 1, .cap = 1 };

	if (device)
		snprintf(vt.device, sizeof(vt.device), "%s", device);
	core_reconcile(c, &v, "/", complete);
}

static struct tag *find(struct core *c, const char *tag)
{
	tagmem_tag t = tag_of(tag);

	return core_find(c, &t);
}

static enum tag_state state_of(struct core *c, const char *tag)
{
	struct tag *t = find(c, tag);

	assert_non_null(t);
	return tag_state(t);
}

static void events_are(const char *want)
{
	assert_string_equal(rec.events, want);
	rec.events[0] = '\0';
}

static const struct tag_owner alice = { .uid = 1000, .pid = 42, .name = "app" };
static const struct tag_owner bob = { .uid = 1001, .pid = 43, .name = "app" };

/* added → ready, by a device in the view or by materialising */
static void added_then_ready(void **state)
{
	struct core *c = new_core(100);

	rec.materialise_ret = 0; /* the backend reports the device later */
	reconcile_one(c, T1, 4 * MB, NULL, CORE_VIEW_PARTIAL);
	assert_int_equal(state_of(c, T1), TAG_ADDED);
	assert_int_equal(rec.materialise_calls, 1);
	events_are("tag_added:T1");
	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	assert_int_equal(state_of(c, T1), TAG_READY);
	assert_string_equal(find(c, T1)->cap.path, "/dev/dax0.1");
	events_are("tag_ready:T1");
	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL); /* nothing new: no event */
	events_are("");

	rec.materialise_ret = 1; /* ready at once */
	strcpy(rec.dev_name, "dax0.2");
	reconcile_one(c, T2, 2 * MB, NULL, CORE_VIEW_PARTIAL);
	assert_int_equal(state_of(c, T2), TAG_READY);
	events_are("tag_added:T2 tag_ready:T2");
	assert_int_equal(rec.persists, 0); /* capacity alone is not durable state */
	core_free(c);
}

/* a failed materialise is tried once, and again only when the capacity changes */
static void materialise_failure_is_retried_on_change(void **state)
{
	struct core *c = new_core(100);

	rec.materialise_ret = -EIO;
	reconcile_one(c, T1, 4 * MB, NULL, CORE_VIEW_PARTIAL);
	reconcile_one(c, T1, 4 * MB, NULL, CORE_VIEW_PARTIAL);
	assert_int_equal(rec.materialise_calls, 1);
	assert_true(find(c, T1)->materialise_failed);
	reconcile_one(c, T1, 6 * MB, NULL, CORE_VIEW_PARTIAL);
	assert_int_equal(rec.materialise_calls, 2);
	assert_int_equal(find(c, T1)->cap.size, 6 * MB);
	core_free(c);
}

/* ready → claimed → ready, each persisted; refusals change nothing */
static void claim_and_unclaim(void **state)
{
	struct core *c = new_core(100);
	struct tag *t;
	uint64_t gen = 0;
	bool released = true;

	reconcile_one(c, T1, 4 * MB, NULL, CORE_VIEW_PARTIAL);
	t = find(c, T1);
	assert_int_equal(core_claim(c, t, &alice, &gen), CORE_NOT_READY);
	assert_int_equal(core_unclaim(c, t, &released, &gen), CORE_NOT_CLAIMED);
	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	events_are("tag_added:T1 tag_ready:T1");

	assert_int_equal(core_claim(c, t, &alice, &gen), 0);
	assert_int_equal(gen, 1);
	assert_int_equal(tag_state(t), TAG_CLAIMED);
	assert_int_equal(t->owner.uid, 1000);
	assert_int_equal(t->owner.slot, -1);
	assert_true(t->owner.since > 0);
	events_are("tag_claimed:T1");
	/* the same owner again: acknowledged after another write, no second event */
	assert_int_equal(core_claim(c, t, &alice, &gen), 0);
	assert_int_equal(gen, 2);
	events_are("");
	/* somebody else: refused, nothing written */
	assert_int_equal(core_claim(c, t, &bob, &gen), CORE_BUSY);
	assert_int_equal(rec.persists, 2);
	assert_int_equal(t->owner.uid, 1000);

	assert_int_equal(core_unclaim(c, t, &released, &gen), 0);
	assert_false(released);
	assert_int_equal(gen, 3);
	assert_int_equal(tag_state(t), TAG_READY);
	assert_false(t->claimed);
	events_are("tag_unclaimed:T1");
	assert_int_equal(rec.destroy_calls, 0);
	core_free(c);
}

/* the fabric manager wants it back: an unclaimed device goes at once, a claimed one waits */
static void release_request(void **state)
{
	struct core *c = new_core(100);
	uint64_t gen;
	bool released = false;

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	reconcile_one(c, T2, 4 * MB, "dax0.2", CORE_VIEW_PARTIAL);
	events_are("tag_added:T1 tag_ready:T1 tag_added:T2 tag_ready:T2");

	/* unclaimed, backend reports later: the device is destroyed, the tag stays until gone */
	rec.destroy_ret = 0;
	core_release_request(c, &(tagmem_tag){ 0 }); /* unknown: nothing */
	core_release_request(c, &find(c, T1)->tag);
	assert_int_equal(rec.destroy_calls, 1);
	assert_non_null(find(c, T1));
	assert_int_equal(core_claim(c, find(c, T1), &alice, &gen), CORE_RELEASE_PENDING);
	core_gone(c, &find(c, T1)->tag);
	assert_null(find(c, T1));
	events_are("tag_released:T1");

	/* claimed: deferred (release_pending), then the owner lets go and it completes */
	assert_int_equal(core_claim(c, find(c, T2), &alice, &gen), 0);
	events_are("tag_claimed:T2");
	core_release_request(c, &find(c, T2)->tag);
	core_release_request(c, &find(c, T2)->tag); /* twice: once is enough */
	assert_int_equal(rec.destroy_calls, 1);
	assert_int_equal(state_of(c, T2), TAG_RELEASE_PENDING);
	events_are("tag_release_pending:T2");
	rec.destroy_ret = 1; /* the backend says the capacity went with the device */
	assert_int_equal(core_unclaim(c, find(c, T2), &released, &gen), 0);
	assert_true(released);
	assert_null(find(c, T2));
	events_are("tag_unclaimed:T2 tag_released:T2");
	assert_int_equal(core_count(c), 0);
	core_free(c);
}

/* forced release of claimed capacity: gone, and the claim leaves the registry */
static void gone_while_claimed(void **state)
{
	struct core *c = new_core(100);
	uint64_t gen;

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	assert_int_equal(core_claim(c, find(c, T1), &alice, &gen), 0);
	rec.persists = 0;
	core_gone(c, &find(c, T1)->tag);
	assert_null(find(c, T1));
	assert_int_equal(rec.persists, 1);
	core_free(c);
}

/* a complete view: what it lacks is gone, except images */
static void complete_view_sweeps(void **state)
{
	struct core *c = new_core(100);
	struct tag *img;
	tagmem_tag t2 = tag_of(T2);

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	assert_int_equal(core_add_image(c, &t2, "/images/a.img", 18 * MB, 0, 16 * MB,
					(struct image_io *)0x1, 0, 0, &img), 0);
	assert_int_equal(tag_state(img), TAG_READY);
	assert_true(tag_is_image(img));
	assert_int_equal(core_add_image(c, &t2, "/images/b.img", 18 * MB, 0, 16 * MB,
					(struct image_io *)0x1, 0, 0, NULL), -EEXIST);
	events_are("tag_added:T1 tag_ready:T1 tag_added:T2 tag_ready:T2");
	/* a partial view lacking T1 changes nothing */
	struct view empty = { 0 };
	core_reconcile(c, &empty, "/", CORE_VIEW_PARTIAL);
	assert_non_null(find(c, T1));
	core_reconcile(c, &empty, "/", CORE_VIEW_COMPLETE);
	assert_null(find(c, T1));
	assert_non_null(find(c, T2));
	events_are("tag_released:T1");
	core_free(c);
	assert_int_equal(rec.images_freed, 1);
}

/* hot-plug: begin (provisional), confirm (persisted), abort; detach; VM exit */
static void attach_detach_vm_exit(void **state)
{
	struct core *c = new_core(100);
	struct tag_owner vm1 = { .uid = 0, .name = "vm1" };
	struct tag *t;
	uint64_t gen;
	bool released;

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	t = find(c, T1);
	events_are("tag_added:T1 tag_ready:T1");

	assert_int_equal(core_attach_begin(c, t, &vm1, 3), 0);
	assert_int_equal(tag_state(t), TAG_CLAIMED);
	assert_int_equal(t->vm, TAG_VM_ATTACHING);
	assert_int_equal(t->owner.slot, 3);
	assert_int_equal(rec.persists, 0); /* provisional */
	assert_int_equal(core_claim(c, t, &vm1, &gen), CORE_ATTACHING);
	assert_int_equal(core_attach_begin(c, t, &vm1, 4), CORE_ATTACHING);
	core_attach_abort(c, t);
	assert_int_equal(tag_state(t), TAG_READY);
	assert_int_equal(t->owner.slot, -1);
	events_are("");

	assert_int_equal(core_attach_begin(c, t, &vm1, 3), 0);
	core_attach_confirm(c, t, &gen);
	assert_int_equal(gen, 1);
	assert_int_equal(t->vm, TAG_VM_ATTACHED);
	core_attach_abort(c, t); /* too late to abort: nothing */
	assert_int_equal(t->vm, TAG_VM_ATTACHED);
	events_are("tag_attached:T1");
	/* QEMU cannot unplug it: no plain release while the VM has it */
	assert_int_equal(core_unclaim(c, t, &released, &gen), CORE_IN_VM);
	assert_int_equal(core_attach_begin(c, t, &vm1, 5), CORE_BUSY);

	assert_int_equal(core_detach(c, t), 0);
	assert_int_equal(tag_state(t), TAG_RELEASE_PENDING);
	events_are("tag_detach_pending:T1");
	assert_int_equal(core_vm_exited(c, "vm2", 0), 0); /* another VM */
	assert_int_equal(core_vm_exited(c, "vm1", 1000), 0); /* same name, other user */
	assert_int_equal(core_vm_exited(c, "vm1", 0), 1);
	assert_int_equal(tag_state(t), TAG_READY);
	assert_int_equal(t->vm, TAG_VM_NONE);
	events_are("tag_unclaimed:T1");
	assert_int_equal(core_detach(c, t), CORE_NOT_ATTACHED);
	core_free(c);
}

/* a VM that exits with a tag the fabric manager wanted back completes the release */
static void vm_exit_completes_release(void **state)
{
	struct core *c = new_core(100);
	struct tag_owner vm1 = { .uid = 0, .name = "vm1" };
	uint64_t gen;

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	assert_int_equal(core_attach_begin(c, find(c, T1), &vm1, 0), 0);
	core_attach_confirm(c, find(c, T1), &gen);
	core_release_request(c, &find(c, T1)->tag);
	assert_int_equal(rec.destroy_calls, 0);
	rec.destroy_ret = 1;
	assert_int_equal(core_vm_exited(c, "vm1", 0), 1);
	assert_int_equal(rec.destroy_calls, 1);
	assert_null(find(c, T1));
	core_free(c);
}

/* qemu-args: claims for a VM, keeps the VM's own claims, pins the slot */
static void claim_for_vm(void **state)
{
	struct core *c = new_core(100);
	struct tag_owner vm1 = { .uid = 1000, .name = "vm1" };
	uint64_t gen;

	reconcile_one(c, T1, 4 * MB, "dax0.1", CORE_VIEW_PARTIAL);
	reconcile_one(c, T2, 4 * MB, "dax0.2", CORE_VIEW_PARTIAL);
	assert_int_equal(core_claim(c, find(c, T2), &alice, &gen), 0);
	assert_int_equal(core_check_claim_for_vm(c, find(c, T2), &vm1), CORE_BUSY);
	assert_int_equal(core_check_claim_for_vm(c, find(c, T1), &vm1), 0);
	assert_int_equal(tag_state(find(c, T1)), TAG_READY); /* a check changes nothing */
	rec.events[0] = '\0';
	assert_int_equal(core_claim_for_vm(c, find(c, T1), &vm1, 2), 0);
	assert_int_equal(core_claim_for_vm(c, find(c, T1), &vm1, 2), 0);
	events_are("tag_claimed:T1");
	assert_int_equal(find(c, T1)->owner.slot, 2);
	core_free(c);
}

/* claims from before a restart attach to capacity that comes back; the rest are dropped */
static void restored_claims(void **state)
{
	struct core *c = new_core(100);
	struct core_claim *claims = calloc(2, sizeof(*claims));

	claims[0] = (struct core_claim){ .tag = tag_of(T2), .owner = bob };
	claims[1] = (struct core_claim){ .tag = tag_of(T1), .owner = alice };
	claims[0].owner.slot = claims[1].owner.slot = -1;
	core_restore_claims(c, claims, 2);
	reconcile_one(c, T1, 4 * MB, NULL, CORE_VIEW_PARTIAL);
	assert_true(find(c, T1)->claimed);
	assert_int_equal(state_of(c, T1), TAG_ADDED); /* claimed, but no device yet */
	/* a release while we were down must not tear down a device somebody holds */
	core_release_request(c, &find(c, T1)->tag);
	assert_int_equal(rec.destroy_calls, 0);
	core_restore_done(c);
	assert_int_equal(rec.persists, 1); /* T2's claim dropped: written down */
	reconcile_one(c, T2, 4 * MB, "dax0.2", CORE_VIEW_PARTIAL);
	assert_false(find(c, T2)->claimed);
	core_free(c);
}

/* the table: many tags, removal, arrival order, the limit */
static void table_grows_removes_and_limits(void **state)
{
	struct core *c = new_core(1500);
	static tagmem_tag tags[2000];
	struct view v = { .n = 2000, .cap = 2000 };
	struct tag *t;

	v.tags = calloc(2000, sizeof(*v.tags));
	for (unsigned i = 0; i < 2000; i++) {
		tagmem_tag_generate(&tags[i]);
		v.tags[i].tag = tags[i];
		v.tags[i].size = 2 * MB;
		snprintf(v.tags[i].device, sizeof(v.tags[i].device), "dax0.%u", i);
	}
	core_reconcile(c, &v, "/", CORE_VIEW_PARTIAL);
	assert_int_equal(core_count(c), 1500); /* the limit: the rest are logged and ignored */
	for (unsigned i = 0; i < 1500; i += 2)
		core_gone(c, &tags[i]);
	assert_int_equal(core_count(c), 750);
	for (unsigned i = 0; i < 1500; i++)
		assert_true((core_find(c, &tags[i]) != NULL) == (i % 2 == 1));
	t = list_first(core_tags(c), struct tag, node); /* arrival order */
	assert_int_equal(tagmem_tag_compare(&t->tag, &tags[1]), 0);
	free(v.tags);
	core_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(added_then_ready),
		cmocka_unit_test(materialise_failure_is_retried_on_change),
		cmocka_unit_test(claim_and_unclaim),
		cmocka_unit_test(release_request),
		cmocka_unit_test(gone_while_claimed),
		cmocka_unit_test(complete_view_sweeps),
		cmocka_unit_test(attach_detach_vm_exit),
		cmocka_unit_test(vm_exit_completes_release),
		cmocka_unit_test(claim_for_vm),
		cmocka_unit_test(restored_claims),
		cmocka_unit_test(table_grows_removes_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
