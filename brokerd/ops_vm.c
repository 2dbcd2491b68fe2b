/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tagged capacity into QEMU guests. qemu_args claims tags for a VM, gives each a pinned
 * nvdimm slot (the label's interleave-set cookie depends on it), writes the tag's label into
 * capacity the broker owns (images), and returns the -object/-device arguments. Shared
 * capacity is never labelled: other hosts use the same bytes, so it goes label-less.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "backend.h"
#include "ops.h"
#include "qemu.h"
#include "vm.h"

#define VM_MAX_TAGS 32

/* Lowest slot not used by another tag of this VM (same uid, same VM name). */
static int free_slot(struct broker *b, uid_t uid, const char *vm, const bool *taken_now)
{
	bool used[NVDIMM_MAX_SLOTS] = { 0 };

	for (struct tag_entry *e = b->tags.head; e; e = e->next)
		if (e->claimed && e->owner.uid == uid && !strcmp(e->owner.name, vm) &&
		    e->owner.slot >= 0)
			used[e->owner.slot] = true;
	for (int s = 0; s < NVDIMM_MAX_SLOTS; s++)
		if (!used[s] && !taken_now[s])
			return s;
	return -ENOSPC;
}

static bool valid_vm_name(const char *vm)
{
	if (!*vm || strlen(vm) > 64)
		return false;
	for (const char *p = vm; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return false;
	return true;
}

/* Can this tag be given to a VM at all? Replies the reason and returns false if not. */
static bool vm_tag_usable(struct request *rq, struct tag_entry *e)
{
	if (!e->path || e->state == TAG_ADDED) {
		reply_error(rq, "not_ready", "tag %s has no device yet", e->tag_str);
		return false;
	}
	if (e->state == TAG_RELEASE_PENDING || e->release_requested) {
		reply_error(rq, "release_pending", "tag %s is being released", e->tag_str);
		return false;
	}
	if (e->attaching) {
		reply_error(rq, "busy", "tag %s is being attached already", e->tag_str);
		return false;
	}
	if (strchr(e->path, ',')) {
		reply_error(rq, "invalid_argument", "QEMU cannot take the path %s (comma)", e->path);
		return false;
	}
	return true;
}

void op_qemu_args(struct request *rq)
{
	struct broker *b = rq->b;
	uid_t uid = client_info(rq->c)->uid;
	struct tag_entry *ents[VM_MAX_TAGS];
	int slots[VM_MAX_TAGS];
	bool taken_now[NVDIMM_MAX_SLOTS] = { 0 };
	struct json_object *tags, *res, *argv, *devs;
	const char *vm, *mode = "nvdimm";
	bool vpmem;
	size_t n;

	if (tagmem_json_get_string(rq->msg, "vm", &vm) < 0 || !valid_vm_name(vm)) {
		reply_error(rq, "invalid_argument", "\"vm\" must be a name of 1-64 letters, digits, "
			    "'-', '_' or '.'");
		return;
	}
	if (tagmem_json_get_string(rq->msg, "mode", &mode) == -EINVAL ||
	    (strcmp(mode, "nvdimm") && strcmp(mode, "virtio-pmem"))) {
		reply_error(rq, "invalid_argument", "\"mode\" must be \"nvdimm\" (labelled, the tag "
			    "visible in the guest) or \"virtio-pmem\" (guest flushes reach the host)");
		return;
	}
	vpmem = !strcmp(mode, "virtio-pmem");
	if (!json_object_object_get_ex(rq->msg, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array) || !(n = json_object_array_length(tags)) ||
	    n > VM_MAX_TAGS) {
		reply_error(rq, "invalid_argument", "\"tags\" must be an array of 1 to %d tags",
			    VM_MAX_TAGS);
		return;
	}
	/* Check everything first: a refused request changes nothing. */
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(tags, i);
		struct tag_entry *e;
		tagmem_tag tag;

		if (!json_object_is_type(v, json_type_string) ||
		    tagmem_tag_parse(json_object_get_string(v), &tag) < 0) {
			reply_error(rq, "invalid_argument", "tags[%zu] is not a UUID string", i);
			return;
		}
		e = tag_table_find(&b->tags, &tag);
		if (!e) {
			reply_error(rq, "not_found", "no capacity carries tag %s",
				    json_object_get_string(v));
			return;
		}
		for (size_t k = 0; k < i; k++)
			if (ents[k] == e) {
				reply_error(rq, "invalid_argument", "tag %s is listed twice", e->tag_str);
				return;
			}
		if (!vm_tag_usable(rq, e))
			return;
		if (e->claimed && (e->owner.uid != uid || strcmp(e->owner.name, vm))) {
			reply_error(rq, "busy", "tag %s is claimed by uid %u%s%s", e->tag_str,
				    e->owner.uid, e->owner.name[0] ? " as " : "", e->owner.name);
			return;
		}
		if (vpmem && (!e->image || e->shared)) {
			reply_error(rq, "invalid_argument", "tag %s is dax capacity: virtio-pmem is for "
				    "images, whose host page cache QEMU can fsync; use nvdimm mode",
				    e->tag_str);
			return;
		}
		ents[i] = e;
		if (vpmem) {
			slots[i] = -1; /* virtio-pmem has no nvdimm slot */
			continue;
		} else if (e->claimed && e->owner.slot >= 0) {
			slots[i] = e->owner.slot; /* already this VM's: same slot, same cookie */
		} else {
			slots[i] = free_slot(b, uid, vm, taken_now);
			if (slots[i] < 0) {
				reply_error(rq, "no_space", "VM %s has no free nvdimm slot", vm);
				return;
			}
		}
		taken_now[slots[i]] = true;
	}
	/* Labels into broker-owned capacity: the one step that can fail after the checks. */
	for (size_t i = 0; i < n; i++) {
		_cleanup_close_ int fd = -1;
		int r;

		if (!ents[i]->image || ents[i]->shared || vpmem)
			continue;
		fd = open(ents[i]->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		r = fd < 0 ? -errno : label_write_for_tag(fd, ents[i]->file_size, &ents[i]->tag,
							  "tagmem", (unsigned)slots[i]);
		if (r < 0) {
			reply_error(rq, r == -EEXIST ? "busy" : "io_error",
				    "cannot write the label of %s into %s: %s", ents[i]->tag_str,
				    ents[i]->path, r == -EEXIST ? "it holds another namespace" :
				    strerror(-r));
			return;
		}
	}
	res = json_object_new_object();
	argv = json_object_new_array();
	devs = json_object_new_array();
	json_object_object_add(res, "vm", json_object_new_string(vm));
	for (size_t i = 0; i < n; i++) {
		struct tag_entry *e = ents[i];
		struct qemu_dev_spec spec = {
			.tag = e->tag, .mem_path = e->path, .slot = vpmem ? 0 : (unsigned)slots[i],
			/* virtio-pmem shows the data part only; the label tail stays the host's */
			.size = e->image && !vpmem ? e->file_size : e->size,
			.labelled = e->image && !e->shared && !vpmem,
			.devdax = !e->image,
			.virtio_pmem = vpmem,
		};
		char object[PATH_MAX + 128], device[128];
		struct json_object *d;

		if (!e->claimed) {
			e->claimed = true;
			e->state = TAG_CLAIMED;
			e->owner.uid = uid;
			e->owner.pid = client_info(rq->c)->pid;
			snprintf(e->owner.name, sizeof(e->owner.name), "%s", vm);
			e->owner.since = (int64_t)time(NULL);
			broker_emit_tag_event(b, "tag_claimed", e);
		}
		e->owner.slot = slots[i];
		qemu_args_build(&spec, object, sizeof(object), device, sizeof(device));
		json_object_array_add(argv, json_object_new_string("-object"));
		json_object_array_add(argv, json_object_new_string(object));
		json_object_array_add(argv, json_object_new_string("-device"));
		json_object_array_add(argv, json_object_new_string(device));
		d = json_object_new_object();
		json_object_object_add(d, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(d, "slot", json_object_new_int(slots[i]));
		json_object_object_add(d, "labelled", json_object_new_boolean(spec.labelled));
		json_object_object_add(d, "object", json_object_new_string(object));
		json_object_object_add(d, "device", json_object_new_string(device));
		json_object_array_add(devs, d);
	}
	json_object_object_add(res, "args", argv);
	json_object_object_add(res, "devices", devs);
	json_object_object_add(res, "mode", json_object_new_string(mode));
	/* what the machine needs: nvdimms need nvdimm=on; both need -m …,slots=,maxmem= */
	json_object_object_add(res, "machine", json_object_new_string(vpmem ? "" : "nvdimm=on"));
	reply_result(rq, res, broker_persist(b));
}

/* ---- hot-plug through QMP ---- */

static bool valid_qmp_path(const char *p)
{
	return p[0] == '/' && strlen(p) < 108;
}

static void unclaim(struct tag_entry *e)
{
	e->claimed = e->attaching = e->attached = e->detach_pending = false;
	memset(&e->owner, 0, sizeof(e->owner));
	e->owner.slot = -1;
	e->state = e->release_requested ? TAG_RELEASE_PENDING : TAG_READY;
}

void op_attach(struct request *rq)
{
	struct broker *b = rq->b;
	const struct client_info *ci = client_info(rq->c);
	bool none[NVDIMM_MAX_SLOTS] = { 0 };
	struct attach_job *job;
	struct tag_entry *e;
	const char *vm, *qmp;
	int slot, r;

	if (tagmem_json_get_string(rq->msg, "vm", &vm) < 0 || !valid_vm_name(vm)) {
		reply_error(rq, "invalid_argument", "\"vm\" must be a name of 1-64 letters, digits, "
			    "'-', '_' or '.'");
		return;
	}
	if (tagmem_json_get_string(rq->msg, "qmp", &qmp) < 0 || !valid_qmp_path(qmp)) {
		reply_error(rq, "invalid_argument", "\"qmp\" must be the absolute path of the VM's "
			    "QMP socket (-qmp unix:PATH,server=on,wait=off)");
		return;
	}
	/* brokerd runs as root and will connect wherever it is told: an unprivileged caller may
	 * only point it at a socket of its own, never at somebody else's service */
	if (ci->uid != 0) {
		struct stat st;
		if (lstat(qmp, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ci->uid) {
			reply_error(rq, "permission_denied", "%s is not a socket owned by uid %u", qmp,
				    ci->uid);
			return;
		}
	}
	e = arg_tag(rq, NULL, true);
	if (!e || !vm_tag_usable(rq, e))
		return;
	if (e->claimed) {
		reply_error(rq, "busy", "tag %s is claimed by uid %u%s%s", e->tag_str, e->owner.uid,
			    e->owner.name[0] ? " as " : "", e->owner.name);
		return;
	}
	slot = free_slot(b, ci->uid, vm, none);
	if (slot < 0) {
		reply_error(rq, "no_space", "VM %s has no free nvdimm slot", vm);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		reply_error(rq, "internal", "out of memory");
		return;
	}
	job->tag = e->tag;
	snprintf(job->vm, sizeof(job->vm), "%s", vm);
	snprintf(job->mem_path, sizeof(job->mem_path), "%s", e->path);
	job->size = e->size;
	job->file_size = e->file_size;
	job->image = e->image;
	job->labelled = e->image && !e->shared;
	job->devdax = !e->image;
	job->slot = (unsigned)slot;
	job->client_serial = ci->serial;
	job->req_id = json_object_get(rq->id);
	/* provisional: held in memory, never persisted, until QEMU confirms */
	e->claimed = e->attaching = true;
	e->state = TAG_CLAIMED;
	e->owner.uid = ci->uid;
	e->owner.pid = ci->pid;
	snprintf(e->owner.name, sizeof(e->owner.name), "%s", vm);
	e->owner.since = (int64_t)time(NULL);
	e->owner.slot = slot;
	r = vm_attach(b, vm, ci->uid, qmp, job);
	if (r < 0) {
		unclaim(e);
		json_object_put(job->req_id);
		free(job);
		reply_error(rq, r == -EBUSY ? "busy" : "internal",
			    r == -EBUSY ? "VM %s is attached through another QMP socket" :
			    "cannot start the monitor of VM %s", vm);
	}
	/* the answer comes from vm_job_done() */
}

void vm_job_done(struct broker *b, struct attach_job *job)
{
	struct tag_entry *e = tag_table_find(&b->tags, &job->tag);
	struct client *c = server_find_client(b, job->client_serial);
	struct request rq = { .b = b, .c = c, .id = job->req_id };

	if (job->error == 0 && e && e->attaching) {
		struct json_object *res = json_object_new_object();
		e->attaching = false;
		e->attached = true;
		json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(res, "vm", json_object_new_string(job->vm));
		json_object_object_add(res, "slot", json_object_new_int((int)job->slot));
		json_object_object_add(res, "labelled", json_object_new_boolean(job->labelled));
		json_object_object_add(res, "qmp_usec", json_object_new_uint64(job->qmp_usec));
		log_info("Attached tag %s to VM %s at nvdimm slot %u", e->tag_str, job->vm, job->slot);
		broker_emit_tag_event(b, "tag_attached", e);
		uint64_t gen = broker_persist(b); /* confirmed by QEMU: now it is the registry's */
		if (c)
			reply_result(&rq, res, gen);
		else
			json_object_put(res);
	} else {
		if (e && e->attaching)
			unclaim(e);
		if (job->error == 0)
			snprintf(job->errmsg, sizeof(job->errmsg), "the tag changed while attaching"),
				snprintf(job->errcode, sizeof(job->errcode), "busy");
		if (c)
			reply_error(&rq, job->errcode, "%s", job->errmsg);
	}
	json_object_put(job->req_id);
	free(job);
}

void vm_exited(struct broker *b, const char *vm, uid_t uid)
{
	unsigned n = 0;

	for (struct tag_entry *e = b->tags.head, *next; e; e = next) {
		bool pending_release;

		next = e->next;
		if (!e->claimed || !e->attached || e->owner.uid != uid || strcmp(e->owner.name, vm))
			continue;
		pending_release = e->release_requested;
		unclaim(e);
		broker_emit_tag_event(b, "tag_unclaimed", e);
		n++;
		if (pending_release && b->backend->ops->destroy(b->backend, e) < 0)
			log_err("Failed to complete the release of a tag of VM %s", vm);
	}
	if (n) {
		log_info("VM %s exited: %u attached tag(s) released", vm, n);
		broker_persist(b);
	}
}

void op_detach(struct request *rq)
{
	const struct client_info *ci = client_info(rq->c);
	struct tag_entry *e = arg_tag(rq, NULL, true);
	struct json_object *res;

	if (!e)
		return;
	if (!e->attached) {
		reply_error(rq, "not_attached", "tag %s was not hot-plugged by brokerd; once its VM has "
			    "stopped, give it back with 'tagmem release'", e->tag_str);
		return;
	}
	if (ci->uid != 0 && ci->uid != e->owner.uid) {
		reply_error(rq, "permission_denied", "tag %s belongs to uid %u", e->tag_str,
			    e->owner.uid);
		return;
	}
	/* QEMU 7.2 cannot unplug an nvdimm: the capacity stays in the VM until it exits. */
	e->detach_pending = true;
	e->state = TAG_RELEASE_PENDING;
	broker_emit_tag_event(rq->b, "tag_detach_pending", e);
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "detached", json_object_new_boolean(false));
	json_object_object_add(res, "pending_until", json_object_new_string("vm_exit"));
	json_object_object_add(res, "vm", json_object_new_string(e->owner.name));
	reply_result(rq, res, 0);
}
