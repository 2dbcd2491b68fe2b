/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * attach's hot plug: the job it hands the VM's monitor (vm.h). On the monitor's thread, the
 * QMP steps in QEMU's terms (and the label, written through the file brokerd checked); on
 * the loop, the answer. The job's context holds what it needs and who waits for it; the
 * monitor sees neither.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guests.h"
#include "log.h"
#include "ops.h"
#include "qemu.h"
#include "qmp.h"
#include "vm.h"

#define QMP_TIMEOUT_MS 10000

struct hotplug {
	struct vm_job job;
	struct api *api;
	struct answer ans;
	tagmem_tag tag;
	char vm[65];
	uid_t uid;
	char mem_path[PATH_MAX];
	uint64_t size, file_size;
	bool labelled, devdax, image;
	int label_fd;               /* labelled: the image file to label (owned) */
	unsigned slot;
	uint64_t qmp_usec;          /* time spent in QMP commands */
};

static int timed_execute(struct qmp *q, struct hotplug *h, const char *cmd,
			 struct json_object *args, struct json_object **ret, char *cls, char *desc)
{
	uint64_t t0 = now_usec();
	int r = qmp_execute(q, cmd, args, QMP_TIMEOUT_MS, ret, cls, 64, desc, 160);

	h->qmp_usec += now_usec() - t0;
	return r;
}

/* nvdimm hot-plug needs -machine nvdimm=on: ask, rather than learn it from a failure */
static int check_nvdimm(struct qmp *q, struct hotplug *h)
{
	_cleanup_json_ struct json_object *args = json_object_new_object(), *ret = NULL;
	char cls[64] = "", desc[160] = "";
	int r;

	json_object_object_add(args, "path", json_object_new_string("/machine"));
	json_object_object_add(args, "property", json_object_new_string("nvdimm"));
	r = timed_execute(q, h, "qom-get", args, &ret, cls, desc);
	if (r == -EREMOTEIO || (r == 0 && !json_object_get_boolean(ret))) {
		vm_job_fail(&h->job, -EOPNOTSUPP, "unsupported", "VM %s has no nvdimm support: start "
			    "QEMU with -machine nvdimm=on and -m SIZE,slots=N,maxmem=MAX", h->vm);
		return -EOPNOTSUPP;
	}
	if (r < 0)
		vm_job_fail(&h->job, r, "qemu_error", "QMP qom-get failed: %s", strerror(-r));
	return r;
}

/* One hot-plug, all in QEMU's terms. On failure nothing is left behind in the VM. */
static int run(struct qmp *q, struct vm_job *job)
{
	struct hotplug *h = job->ctx;
	_cleanup_json_ struct json_object *args = NULL;
	char cls[64] = "", desc[160] = "", oid[QEMU_ID_MAX], did[QEMU_ID_MAX];
	int r = check_nvdimm(q, h);

	if (r < 0)
		return r;
	qemu_ids(&h->tag, false, oid, did);
	if (h->labelled) {
		/* the label makes the tag visible in the guest; its cookie needs the slot */
		r = label_write_for_tag(h->label_fd, h->file_size, &h->tag, "tagmem", h->slot);
		if (r < 0) {
			vm_job_fail(job, r, r == -EEXIST ? "busy" : "io_error", "cannot label %s: %s",
				    h->mem_path, r == -EEXIST ? "it holds another namespace" :
				    strerror(-r));
			return r;
		}
	}
	args = json_object_new_object();
	json_object_object_add(args, "qom-type", json_object_new_string("memory-backend-file"));
	json_object_object_add(args, "id", json_object_new_string(oid));
	json_object_object_add(args, "mem-path", json_object_new_string(h->mem_path));
	json_object_object_add(args, "size", json_object_new_uint64(h->image ? h->file_size :
								     h->size));
	json_object_object_add(args, "share", json_object_new_boolean(true));
	if (h->labelled || h->devdax)
		json_object_object_add(args, "align", json_object_new_uint64(2u << 20));
	r = timed_execute(q, h, "object-add", args, NULL, cls, desc);
	if (r < 0) {
		vm_job_fail(job, r, "qemu_error", "QEMU refused the memory backend (%s): %s",
			    cls[0] ? cls : strerror(-r), desc);
		return r;
	}
	json_object_put(args);
	args = json_object_new_object();
	json_object_object_add(args, "driver", json_object_new_string("nvdimm"));
	json_object_object_add(args, "id", json_object_new_string(did));
	json_object_object_add(args, "memdev", json_object_new_string(oid));
	json_object_object_add(args, "slot", json_object_new_int((int)h->slot));
	if (h->labelled)
		json_object_object_add(args, "label-size", json_object_new_int(LABEL_AREA_SIZE));
	r = timed_execute(q, h, "device_add", args, NULL, cls, desc);
	if (r < 0) {
		_cleanup_json_ struct json_object *del = json_object_new_object();

		json_object_object_add(del, "id", json_object_new_string(oid));
		timed_execute(q, h, "object-del", del, NULL, NULL, NULL); /* leave nothing behind */
		vm_job_fail(job, r, "qemu_error", "QEMU refused the nvdimm (%s): %s",
			    cls[0] ? cls : strerror(-r), desc);
		return r;
	}
	return 0;
}

static void hotplug_free(struct hotplug *h)
{
	if (h->label_fd >= 0)
		close(h->label_fd);
	answer_fini(&h->ans);
	free(h);
}

/* On the loop: confirm the provisional claim (durable before the answer) or undo it. */
static void done(struct vm_job *job)
{
	struct hotplug *h = job->ctx;
	struct api *api = h->api;
	struct tag *e = core_find(api->core, &h->tag);

	if (job->error == 0 && e && e->vm == TAG_VM_ATTACHING) {
		struct json_object *res = json_object_new_object();
		uint64_t gen;

		json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(res, "vm", json_object_new_string(h->vm));
		json_object_object_add(res, "slot", json_object_new_int((int)h->slot));
		json_object_object_add(res, "labelled", json_object_new_boolean(h->labelled));
		json_object_object_add(res, "tag_in_guest", json_object_new_string(
			h->labelled ? "label" : api->guests && guests_find(api->guests, h->uid,
			h->vm) ? "channel" : "none"));
		json_object_object_add(res, "qmp_usec", json_object_new_uint64(h->qmp_usec));
		log_info("Attached tag %s to VM %s at nvdimm slot %u", e->tag_str, h->vm, h->slot);
		core_attach_confirm(api->core, e, &gen);
		answer_result(api, &h->ans, res, gen);
	} else {
		if (e)
			core_attach_abort(api->core, e);
		if (job->error == 0)
			vm_job_fail(job, -EBUSY, "busy", "the tag changed while attaching");
		answer_error(api, &h->ans, 0, job->errcode, "%s", job->errmsg);
		api_guest_update(api, h->uid, h->vm); /* the slot is free again */
	}
	hotplug_free(h);
}

int hotplug_submit(struct request *rq, struct tag *e, const char *vm, const char *qmp,
		   int qmp_fd, unsigned slot)
{
	struct hotplug *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->job = (struct vm_job){ .run = run, .done = done, .ctx = h };
	h->api = rq->api;
	answer_copy(&h->ans, &rq->ans);
	h->tag = e->tag;
	h->uid = rq->who.uid;
	snprintf(h->vm, sizeof(h->vm), "%s", vm);
	snprintf(h->mem_path, sizeof(h->mem_path), "%s", e->cap.path);
	h->size = e->cap.size;
	h->file_size = e->image.file_size;
	h->image = tag_is_image(e);
	h->labelled = tag_is_image(e) && !e->cap.shared;
	h->devdax = !tag_is_image(e);
	h->slot = slot;
	h->label_fd = -1;
	/* the monitor labels the image through the file brokerd checked, never by name */
	if (h->labelled) {
		h->label_fd = fcntl(image_io_fd(e->image.io), F_DUPFD_CLOEXEC, 3);
		if (h->label_fd < 0) {
			r = -errno;
			hotplug_free(h);
			return r;
		}
	}
	r = vm_submit(rq->api->vms, vm, rq->who.uid, qmp, qmp_fd, &h->job);
	if (r < 0)
		hotplug_free(h);
	return r;
}
