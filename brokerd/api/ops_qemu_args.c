/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu_args: tagged capacity into a QEMU about to start. It claims tags for a VM, gives each
 * a pinned nvdimm slot (the label's interleave-set cookie depends on it), writes the tag's
 * label into capacity the broker owns (images), and returns the -object/-device arguments.
 * Shared capacity is never labelled: other hosts use the same bytes, so it goes label-less.
 *
 * In three steps: the plan (what the request asks, checked against everything, nothing
 * changed: which tag, which slot, which mechanism), the effects (the guest channel, the
 * labels: the only steps that can fail once the plan stands), and the answer (the claims
 * and QEMU's arguments).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "guests.h"
#include "ops.h"
#include "qemu.h"

#define VM_MAX_TAGS 32

/* What a qemu_args request will do, decided before anything changes. */
struct vm_plan {
	const char *vm;
	const char *mode;              /* "nvdimm" or "virtio-pmem" */
	bool vpmem, channel;
	bool incoming;                 /* a VM migrating in: provisional claims, -incoming defer */
	struct json_object *want_slots; /* incoming: the slots the VM has on its source host */
	struct tag_owner owner;
	size_t n;
	struct tag *ents[VM_MAX_TAGS];
	int slots[VM_MAX_TAGS];        /* -1: virtio-pmem (no nvdimm slot) */
	struct tag *ram;               /* the VM's RAM, or NULL */
};

/*
 * The VM's guest channel: brokerd listens for it from now on, and QEMU gets a virtio-serial
 * port connected to that socket (QEMU is the client and reconnects, so either may start
 * first). Adds the arguments to argv and the socket to res; false after replying an error.
 */
static bool channel_args(struct request *rq, uid_t uid, const char *vm, struct json_object *argv,
			 struct json_object *res)
{
	struct guest_vm *g;
	char arg[PATH_MAX + 64];
	int r = guests_open(rq->api->guests, uid, vm, &g);

	if (r == -EUSERS) {
		reply_error(rq, "too_many_vms", "uid %u has as many guest channels as brokerd allows, "
			    "each of a VM that holds tags or runs; release the tags of VMs that have "
			    "stopped",
			    (unsigned)uid);
		return false;
	} else if (r == -ENFILE) {
		reply_error(rq, "too_many_vms", "brokerd has as many guest channels as it allows, "
			    "each of a VM that holds tags or runs; release the tags of VMs that have stopped, or "
			    "pass \"channel\": false");
		return false;
	} else if (r < 0) {
		reply_error(rq, "internal", "cannot open the guest channel of VM %s: %s", vm,
			    strerror(-r));
		return false;
	}
	if (strchr(guest_path(g), ',')) {
		reply_error(rq, "invalid_argument", "QEMU cannot take the guest channel path %s "
			    "(comma); start brokerd with another --guest-dir", guest_path(g));
		return false;
	}
	snprintf(arg, sizeof(arg), "socket,id=tmgc,path=%s,reconnect=1", guest_path(g));
	json_object_array_add(argv, json_object_new_string("-chardev"));
	json_object_array_add(argv, json_object_new_string(arg));
	json_object_array_add(argv, json_object_new_string("-device"));
	json_object_array_add(argv, json_object_new_string("virtio-serial-pci,id=tmgs"));
	json_object_array_add(argv, json_object_new_string("-device"));
	json_object_array_add(argv, json_object_new_string(
		"virtserialport,bus=tmgs.0,chardev=tmgc,name=" GUEST_PORT_NAME));
	json_object_object_add(res, "channel", json_object_new_string(guest_path(g)));
	return true;
}

/*
 * The optional "ram": a tag to be the VM's RAM (memory-backend-file + -machine memory-backend).
 * An image without a header, or DCD capacity; not one of the VM's nvdimms. Replies the refusal
 * and returns false; *ret NULL when there is none.
 */
static bool arg_ram(struct request *rq, const struct tag_owner *owner, struct tag *const *ents,
		    size_t n, struct tag **ret)
{
	tagmem_tag tag;
	struct tag *e;
	int r = tagmem_json_get_tag(rq->msg, "ram", &tag);

	*ret = NULL;
	if (r < 0)
		return true; /* none: the op table's rules refused a malformed one */
	e = core_find(rq->api->core, &tag);
	if (!e) {
		reply_error(rq, "not_found", "no capacity carries tag %s (for the VM's RAM)",
			    json_object_get_string(json_object_object_get(rq->msg, "ram")));
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (ents[i] == e) {
			reply_error(rq, "invalid_argument", "tag %s cannot be both RAM and an nvdimm",
				    e->tag_str);
			return false;
		}
	if (tag_is_image(e) && e->image.data_offset) {
		reply_error(rq, "invalid_argument", "image %s has the %s layout: its header "
			    "would be RAM; use a pmem-layout image", e->tag_str, tag_layout(e));
		return false;
	}
	r = core_check_claim_for_vm(rq->api->core, e, owner);
	if (r) {
		reply_refusal(rq, r, e);
		return false;
	}
	if (!vm_path_usable(rq, e))
		return false;
	*ret = e;
	return true;
}


/* The request's shape: vm, mode, channel and the tags array. */
static bool plan_args(struct request *rq, struct vm_plan *p, struct json_object **ret_tags)
{
	struct json_object *tags;

	p->mode = "nvdimm";
	p->channel = true;
	/* the op table's rules checked vm, mode and channel */
	tagmem_json_get_string(rq->msg, "vm", &p->vm);
	tagmem_json_get_string(rq->msg, "mode", &p->mode);
	p->vpmem = !strcmp(p->mode, "virtio-pmem");
	tagmem_json_get_bool(rq->msg, "channel", &p->channel);
	tagmem_json_get_bool(rq->msg, "incoming", &p->incoming);
	json_object_object_get_ex(rq->msg, "slots", &p->want_slots);
	p->channel = p->channel && rq->api->guests;
	p->owner = (struct tag_owner){ .uid = rq->who.uid, .pid = rq->who.pid };
	snprintf(p->owner.name, sizeof(p->owner.name), "%s", p->vm);
	/* no tags is fine with a channel: a VM that starts empty and gets tags hot-plugged */
	if (!json_object_object_get_ex(rq->msg, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array) ||
	    (p->n = json_object_array_length(tags)) > VM_MAX_TAGS ||
	    (p->n == 0 && !p->channel && !json_object_object_get_ex(rq->msg, "ram", NULL))) {
		reply_error(rq, "invalid_argument", "\"tags\" must be an array of %d to %d tags",
			    p->channel ? 0 : 1, VM_MAX_TAGS);
		return false;
	}
	*ret_tags = tags;
	return true;
}

/* Can the mechanism take this tag? */
static bool plan_mechanism(struct request *rq, const struct vm_plan *p, const struct tag *e)
{
	if (p->vpmem && tag_is_image(e) && e->image.data_offset) {
		reply_error(rq, "invalid_argument", "image %s has the %s layout: virtio-pmem "
			    "would show the guest its header; use nvdimm mode", e->tag_str,
			    tag_layout(e));
		return false;
	}
	if (p->vpmem && (!tag_is_image(e) || e->cap.shared)) {
		reply_error(rq, "invalid_argument", "tag %s is dax capacity: virtio-pmem is for "
			    "images, whose host page cache QEMU can fsync; use nvdimm mode",
			    e->tag_str);
		return false;
	}
	return true;
}

/* tags[i]: the tag, and its slot (its own if the VM has it already, else the lowest free). */
static bool plan_tag(struct request *rq, struct vm_plan *p, size_t i, struct json_object *v,
		     bool *taken_now)
{
	struct tag *e;
	tagmem_tag tag;
	int r;

	if (!json_object_is_type(v, json_type_string) ||
	    tagmem_tag_parse(json_object_get_string(v), &tag) < 0) {
		reply_error(rq, "invalid_argument", "tags[%zu] is not a UUID string", i);
		return false;
	}
	e = core_find(rq->api->core, &tag);
	if (!e) {
		reply_error(rq, "not_found", "no capacity carries tag %s", json_object_get_string(v));
		return false;
	}
	for (size_t k = 0; k < i; k++)
		if (p->ents[k] == e) {
			reply_error(rq, "invalid_argument", "tag %s is listed twice", e->tag_str);
			return false;
		}
	r = core_check_claim_for_vm(rq->api->core, e, &p->owner);
	if (r == 0 && p->incoming && e->claimed && e->vm != TAG_VM_INCOMING)
		r = CORE_BUSY; /* the VM cannot come here while it holds the tag here already */
	if (r) {
		reply_refusal(rq, r, e);
		return false;
	}
	if (!vm_path_usable(rq, e) || !plan_mechanism(rq, p, e))
		return false;
	p->ents[i] = e;
	if (p->vpmem) {
		p->slots[i] = -1;
		return true;
	}
	if (p->want_slots) { /* the source's slots: the same device, the same cookie */
		struct json_object *s = json_object_array_get_idx(p->want_slots, i);
		int64_t slot = s && json_object_is_type(s, json_type_int) ?
			       json_object_get_int64(s) : -1;

		if (slot < 0 || slot >= NVDIMM_MAX_SLOTS || taken_now[slot]) {
			reply_error(rq, "invalid_argument", "slots[%zu] must be a free nvdimm slot "
				    "(0-%d), one per tag", i, NVDIMM_MAX_SLOTS - 1);
			return false;
		}
		p->slots[i] = (int)slot;
		taken_now[slot] = true;
		return true;
	}
	p->slots[i] = e->claimed && e->owner.slot >= 0 ? e->owner.slot : /* same slot, same cookie */
		      vm_free_slot(rq->api, p->owner.uid, p->vm, taken_now);
	if (p->slots[i] < 0) {
		reply_error(rq, "no_space", "VM %s has no free nvdimm slot", p->vm);
		return false;
	}
	taken_now[p->slots[i]] = true;
	return true;
}

/* The plan: everything checked, nothing changed (a refused request changes nothing). */
static bool plan(struct request *rq, struct vm_plan *p)
{
	bool taken_now[NVDIMM_MAX_SLOTS] = { 0 };
	struct json_object *tags;

	if (!plan_args(rq, p, &tags))
		return false;
	if (p->want_slots && (!p->incoming || !json_object_is_type(p->want_slots, json_type_array) ||
			      json_object_array_length(p->want_slots) != p->n)) {
		reply_error(rq, "invalid_argument", "\"slots\" goes with \"incoming\": an array "
			    "of one slot per tag, the slots the VM has on its source host");
		return false;
	}
	for (size_t i = 0; i < p->n; i++)
		if (!plan_tag(rq, p, i, json_object_array_get_idx(tags, i), taken_now))
			return false;
	if (!arg_ram(rq, &p->owner, p->ents, p->n, &p->ram))
		return false;
	if (p->incoming && p->ram && p->ram->claimed && p->ram->vm != TAG_VM_INCOMING) {
		reply_refusal(rq, CORE_BUSY, p->ram);
		return false;
	}
	return true;
}

static void add_args(struct json_object *argv, const char *opt, const char *value)
{
	json_object_array_add(argv, json_object_new_string(opt));
	json_object_array_add(argv, json_object_new_string(value));
}

/* tags[i], claimed for the VM: its QEMU arguments, and what the answer says of it. */
static struct json_object *claim_device(struct api *api, const struct vm_plan *p, size_t i,
					struct json_object *argv)
{
	struct tag *e = p->ents[i];
	struct qemu_dev_spec spec = {
		.tag = e->tag, .mem_path = e->cap.path, .slot = p->vpmem ? 0 : (unsigned)p->slots[i],
		/* virtio-pmem shows the data part only; the label tail stays the host's */
		.size = tag_is_image(e) && !p->vpmem ? e->image.file_size : e->cap.size,
		.labelled = tag_is_image(e) && !e->cap.shared && !p->vpmem,
		.devdax = !tag_is_image(e),
		.virtio_pmem = p->vpmem,
	};
	char object[PATH_MAX + QEMU_ARG_MAX], device[QEMU_ARG_MAX], smbios[QEMU_ARG_MAX];
	struct json_object *d = json_object_new_object();

	/* planned: the core agrees, so this cannot be refused now */
	if (p->incoming)
		core_claim_incoming(api->core, e, &p->owner, p->slots[i]);
	else
		core_claim_for_vm(api->core, e, &p->owner, p->slots[i]);
	qemu_args_build(&spec, object, sizeof(object), device, sizeof(device));
	add_args(argv, "-object", object);
	add_args(argv, "-device", device);
	/* no label in bytes brokerd must not write: the firmware names the tag */
	if (qemu_smbios_build(&spec, smbios, sizeof(smbios)) == 0)
		add_args(argv, "-smbios", smbios);
	json_object_object_add(d, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(d, "slot", json_object_new_int(p->slots[i]));
	json_object_object_add(d, "labelled", json_object_new_boolean(spec.labelled));
	json_object_object_add(d, "tag_in_guest", json_object_new_string(
		p->vpmem ? "none" : spec.labelled ? "label" : "firmware"));
	json_object_object_add(d, "object", json_object_new_string(object));
	json_object_object_add(d, "device", json_object_new_string(device));
	return d;
}

/* The VM's RAM itself, claimed: tagged capacity, so a save can leave QEMU out of it. */
static void claim_ram(struct api *api, const struct vm_plan *p, struct json_object *argv,
		      struct json_object *res)
{
	char object[PATH_MAX + QEMU_ARG_MAX], did[QEMU_ID_MAX], oid[QEMU_ID_MAX];
	struct tag *ram = p->ram;

	if (p->incoming)
		core_claim_incoming(api->core, ram, &p->owner, -1);
	else
		core_claim_for_vm(api->core, ram, &p->owner, -1);
	qemu_ids(&ram->tag, false, oid, did);
	snprintf(object, sizeof(object), "memory-backend-file,id=%s,mem-path=%s,size=%llu,"
		 "share=on%s", oid, ram->cap.path, (unsigned long long)ram->cap.size,
		 tag_is_image(ram) ? "" : ",align=2M");
	add_args(argv, "-object", object);
	snprintf(object, sizeof(object), "memory-backend=%s", oid);
	add_args(argv, "-machine", object);
	json_object_object_add(res, "ram_bytes", json_object_new_uint64(ram->cap.size));
}

/* The plan carried out: the guest channel, the claims, QEMU's arguments as the answer. */
static void answer_plan(struct request *rq, const struct vm_plan *p)
{
	struct api *api = rq->api;
	struct json_object *res = json_object_new_object(), *argv = json_object_new_array();
	struct json_object *devs;

	if (p->channel && !channel_args(rq, p->owner.uid, p->vm, argv, res)) {
		json_object_put(argv);
		json_object_put(res);
		return;
	}
	devs = json_object_new_array();
	json_object_object_add(res, "vm", json_object_new_string(p->vm));
	for (size_t i = 0; i < p->n; i++)
		json_object_array_add(devs, claim_device(api, p, i, argv));
	if (p->ram)
		claim_ram(api, p, argv, res);
	if (p->incoming) { /* stands paused once loaded: it runs when the claims are this host's */
		json_object_array_add(argv, json_object_new_string("-S"));
		add_args(argv, "-incoming", "defer");
	}
	json_object_object_add(res, "args", argv);
	json_object_object_add(res, "devices", devs);
	json_object_object_add(res, "mode", json_object_new_string(p->mode));
	/* what the machine needs: nvdimms need nvdimm=on; both need -m …,slots=,maxmem= */
	json_object_object_add(res, "machine", json_object_new_string(p->vpmem ? "" : "nvdimm=on"));
	api_guest_update(api, p->owner.uid, p->vm); /* a running guest (more tags for it) learns */
	/* incoming claims are never persisted: nothing to wait for */
	reply_result(rq, res, p->incoming ? 0 : core_persist(api->core));
}

/* ---- labels, written on the data plane -------------------------------------------------
 * A label ends in fdatasync: not the loop's to wait for. The images brokerd owns get theirs
 * on a data-plane worker, in turn with the image's other work; while they are written no
 * other qemu_args or attach may plan those tags (vm_path_usable asks), and once the last is
 * done the plan is made again from the request and must come out the same (a tag may have
 * gone, or its VM have got it by other means) before anything is claimed. */

struct label_write {
	struct label_batch *batch;
	tagmem_tag tag;
	char tag_str[TAGMEM_TAG_STRING_MAX];
	uint64_t file_size;
	unsigned slot;
	int error;
};

struct label_batch {
	struct label_batch *next;     /* api->labelling */
	struct api *api;
	struct caller who;
	struct answer ans;
	struct json_object *msg;      /* the request, to plan again */
	char vm[65];
	unsigned pending, refs;       /* labels not yet written; data-plane requests alive */
	size_t n;
	struct label_write w[VM_MAX_TAGS];
};

static bool writes_label(const struct vm_plan *p, const struct tag *e)
{
	/* a VM migrating in brings its labels: the image holds what its source host wrote */
	return tag_is_image(e) && !e->cap.shared && !p->vpmem && !p->incoming;
}

static size_t count_labels(const struct vm_plan *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		n += writes_label(p, p->ents[i]);
	return n;
}

const char *qemu_args_labelling(struct api *api, const struct tag *t)
{
	for (struct label_batch *b = api->labelling; b; b = b->next)
		for (size_t i = 0; i < b->n; i++)
			if (!tagmem_tag_compare(&b->w[i].tag, &t->tag))
				return b->vm;
	return NULL;
}

static void batch_unlink(struct label_batch *b)
{
	struct label_batch **pp = &b->api->labelling;

	while (*pp && *pp != b)
		pp = &(*pp)->next;
	if (*pp)
		*pp = b->next;
}

static void batch_unref(void *arg)
{
	struct label_batch *b = arg;

	if (--b->refs)
		return;
	batch_unlink(b);
	answer_fini(&b->ans);
	json_object_put(b->msg);
	free(b);
}

/* On a worker: the label, through the image file brokerd opened and checked. */
static int write_label(int fd, void *arg)
{
	struct label_write *lw = arg;

	return label_write_for_tag(fd, lw->file_size, &lw->tag, "tagmem", lw->slot);
}

/* Every label is written: plan again, and if nothing changed, carry the plan out. */
static void batch_finish(struct label_batch *b)
{
	struct request rq = { .api = b->api, .who = b->who, .ans = b->ans, .msg = b->msg };
	struct vm_plan p = { 0 };

	batch_unlink(b); /* its tags may be planned again: by this request first */
	for (size_t i = 0; i < b->n; i++)
		if (b->w[i].error < 0) {
			reply_error(&rq, b->w[i].error == -EEXIST ? "busy" : "io_error",
				    "cannot write the label of %s into its image: %s", b->w[i].tag_str,
				    b->w[i].error == -EEXIST ? "it holds another namespace" :
				    strerror(-b->w[i].error));
			return;
		}
	if (!plan(&rq, &p))
		return; /* answered: what changed meanwhile */
	for (size_t i = 0, k = 0; i < p.n; i++) {
		if (!writes_label(&p, p.ents[i]))
			continue;
		if (k >= b->n || tagmem_tag_compare(&p.ents[i]->tag, &b->w[k].tag) ||
		    (unsigned)p.slots[i] != b->w[k].slot) {
			reply_error(&rq, "busy", "the tags of VM %s changed while their labels were "
				    "written; ask again", p.vm);
			return;
		}
		k++;
	}
	answer_plan(&rq, &p);
}

static void label_done(struct dp_request *d)
{
	struct label_write *lw = d->call_arg;

	lw->error = d->error;
	if (--lw->batch->pending == 0)
		batch_finish(lw->batch);
}

/* Submit the plan's labels; the answer comes from batch_finish(). */
static void submit_labels(struct request *rq, const struct vm_plan *p)
{
	struct label_batch *b = calloc(1, sizeof(*b));
	struct dp_request *d[VM_MAX_TAGS];
	size_t n = 0;

	if (!b) {
		reply_error(rq, "internal", "out of memory");
		return;
	}
	b->api = rq->api;
	b->who = rq->who;
	answer_copy(&b->ans, &rq->ans);
	b->msg = json_object_get(rq->msg);
	snprintf(b->vm, sizeof(b->vm), "%s", p->vm);
	for (size_t i = 0; i < p->n; i++) {
		struct tag *e = p->ents[i];
		struct label_write *lw = &b->w[b->n];

		if (!writes_label(p, e))
			continue;
		*lw = (struct label_write){ .batch = b, .tag = e->tag, .slot = (unsigned)p->slots[i],
					    .file_size = e->image.file_size };
		snprintf(lw->tag_str, sizeof(lw->tag_str), "%s", e->tag_str);
		d[n] = image_work_new(rq->api, e, DP_CALL, NULL);
		if (!d[n])
			break;
		d[n]->call = write_label;
		d[n]->call_arg = lw;
		image_work(d[n])->finish = label_done;
		image_work(d[n])->release = batch_unref;
		image_work(d[n])->arg = b;
		b->n++;
		n++;
	}
	b->refs = 1 + (unsigned)n; /* this function's own, until every request is queued */
	if (n != count_labels(p)) { /* out of memory part of the way */
		for (size_t k = 0; k < n; k++)
			dp_request_free(d[k]);
		reply_error(rq, "internal", "out of memory");
		batch_unref(b);
		return;
	}
	b->pending = (unsigned)n;
	b->next = rq->api->labelling;
	rq->api->labelling = b;
	for (size_t k = 0; k < n; k++)
		dataplane_submit(rq->api->dp, d[k]);
	batch_unref(b);
}

void op_qemu_args(struct request *rq)
{
	struct vm_plan p = { 0 };

	if (!plan(rq, &p))
		return;
	if (count_labels(&p))
		submit_labels(rq, &p); /* answered once they are written */
	else
		answer_plan(rq, &p);
}
