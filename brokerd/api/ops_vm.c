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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "guests.h"
#include "log.h"
#include "ops.h"
#include "qemu.h"
#include "qmp.h"
#include "vm.h"

#define VM_MAX_TAGS 32

/* Lowest slot not used by another tag of this VM (same uid, same VM name). */
static int free_slot(struct api *api, uid_t uid, const char *vm, const bool *taken_now)
{
	bool used[NVDIMM_MAX_SLOTS] = { 0 };

	struct tag *e;

	core_for_each(e, api->core)
		if (tag_of_vm(e, uid, vm) && e->owner.slot >= 0)
			used[e->owner.slot] = true;
	for (int s = 0; s < NVDIMM_MAX_SLOTS; s++)
		if (!used[s] && !taken_now[s])
			return s;
	return -ENOSPC;
}

/* Can QEMU take this tag's path? (Whether the tag may be handed over is the core's call.)
 * Replies the reason and returns false if not. */
static bool vm_path_usable(struct request *rq, struct tag *e)
{
	int r;

	if (e->cap.path && strchr(e->cap.path, ',')) {
		reply_error(rq, "invalid_argument", "QEMU cannot take the path %s (comma)",
			    e->cap.path);
		return false;
	}
	/* QEMU maps an image by its name: that name must still be the file brokerd holds,
	 * through directories nobody else can write */
	r = tag_is_image(e) ? image_still_at(rq->api->settings, e->cap.path,
					      image_io_fd(e->image.io)) : 0;
	if (r == -EPERM) {
		reply_error(rq, "permission_denied", "image %s lies below a directory that users "
			    "other than root can write now; make it root's and not group- or "
			    "world-writable", e->cap.path);
		return false;
	} else if (r < 0) {
		reply_error(rq, "busy", "%s is no longer the image file of tag %s (%s): QEMU would "
			    "map another file; put the image back or forget it", e->cap.path,
			    e->tag_str, r == -ESTALE ? "another file has its name" : strerror(-r));
		return false;
	}
	return true;
}

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
static bool arg_ram(struct request *rq, const struct tag_owner *owner, struct tag **ents,
		    size_t n, struct tag **ret)
{
	tagmem_tag tag;
	struct tag *e;
	int r = tagmem_json_get_tag(rq->msg, "ram", &tag);

	*ret = NULL;
	if (r == -ENOENT)
		return true;
	if (r < 0) {
		reply_error(rq, "invalid_argument", "\"ram\" must be a UUID string");
		return false;
	}
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
		reply_error(rq, "invalid_argument", "image %s has the devdax layout: its header "
			    "would be RAM; use a pmem-layout image", e->tag_str);
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

void op_qemu_args(struct request *rq)
{
	struct api *api = rq->api;
	uid_t uid = rq->who.uid;
	struct tag *ents[VM_MAX_TAGS];
	int slots[VM_MAX_TAGS];
	bool taken_now[NVDIMM_MAX_SLOTS] = { 0 };
	struct json_object *tags, *res, *argv, *devs;
	struct tag_owner owner = { .uid = uid, .pid = rq->who.pid };
	const char *vm, *mode = "nvdimm";
	struct tag *ram = NULL;
	bool vpmem, channel = true;
	size_t n;
	int r;

	if (tagmem_json_get_string(rq->msg, "vm", &vm) < 0 || !valid_vm_name(vm)) {
		reply_error(rq, "invalid_argument", VM_NAME_RULE);
		return;
	}
	if (tagmem_json_get_string(rq->msg, "mode", &mode) == -EINVAL ||
	    (strcmp(mode, "nvdimm") && strcmp(mode, "virtio-pmem"))) {
		reply_error(rq, "invalid_argument", "\"mode\" must be \"nvdimm\" (labelled, the tag "
			    "visible in the guest) or \"virtio-pmem\" (guest flushes reach the host)");
		return;
	}
	vpmem = !strcmp(mode, "virtio-pmem");
	if (tagmem_json_get_bool(rq->msg, "channel", &channel) == -EINVAL) {
		reply_error(rq, "invalid_argument", "\"channel\" must be true or false");
		return;
	}
	channel = channel && api->guests;
	snprintf(owner.name, sizeof(owner.name), "%s", vm);
	/* no tags is fine with a channel: a VM that starts empty and gets tags hot-plugged */
	if (!json_object_object_get_ex(rq->msg, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array) || (n = json_object_array_length(tags)) >
	    VM_MAX_TAGS || (n == 0 && !channel && !json_object_object_get_ex(rq->msg, "ram", NULL))) {
		reply_error(rq, "invalid_argument", "\"tags\" must be an array of %d to %d tags",
			    channel ? 0 : 1, VM_MAX_TAGS);
		return;
	}
	/* Check everything first: a refused request changes nothing. */
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(tags, i);
		struct tag *e;
		tagmem_tag tag;

		if (!json_object_is_type(v, json_type_string) ||
		    tagmem_tag_parse(json_object_get_string(v), &tag) < 0) {
			reply_error(rq, "invalid_argument", "tags[%zu] is not a UUID string", i);
			return;
		}
		e = core_find(api->core, &tag);
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
		r = core_check_claim_for_vm(api->core, e, &owner);
		if (r) {
			reply_refusal(rq, r, e);
			return;
		}
		if (!vm_path_usable(rq, e))
			return;
		if (vpmem && tag_is_image(e) && e->image.data_offset) {
			reply_error(rq, "invalid_argument", "image %s has the devdax layout: virtio-pmem "
				    "would show the guest its header; use nvdimm mode", e->tag_str);
			return;
		}
		if (vpmem && (!tag_is_image(e) || e->cap.shared)) {
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
			slots[i] = free_slot(api, uid, vm, taken_now);
			if (slots[i] < 0) {
				reply_error(rq, "no_space", "VM %s has no free nvdimm slot", vm);
				return;
			}
		}
		taken_now[slots[i]] = true;
	}
	if (!arg_ram(rq, &owner, ents, n, &ram))
		return;
	res = json_object_new_object();
	argv = json_object_new_array();
	if (channel && !channel_args(rq, uid, vm, argv, res)) {
		json_object_put(argv);
		json_object_put(res);
		return;
	}
	/* Labels into broker-owned capacity: the one step that can fail after the checks. */
	for (size_t i = 0; i < n; i++) {
		if (!tag_is_image(ents[i]) || ents[i]->cap.shared || vpmem)
			continue;
		/* the image file brokerd opened and checked, not whatever the name is now */
		r = label_write_for_tag(image_io_fd(ents[i]->image.io), ents[i]->image.file_size,
					&ents[i]->tag, "tagmem", (unsigned)slots[i]);
		if (r < 0) {
			reply_error(rq, r == -EEXIST ? "busy" : "io_error",
				    "cannot write the label of %s into %s: %s", ents[i]->tag_str,
				    ents[i]->cap.path, r == -EEXIST ? "it holds another namespace" :
				    strerror(-r));
			json_object_put(argv);
			json_object_put(res);
			return;
		}
	}
	devs = json_object_new_array();
	json_object_object_add(res, "vm", json_object_new_string(vm));
	for (size_t i = 0; i < n; i++) {
		struct tag *e = ents[i];
		struct qemu_dev_spec spec = {
			.tag = e->tag, .mem_path = e->cap.path, .slot = vpmem ? 0 : (unsigned)slots[i],
			/* virtio-pmem shows the data part only; the label tail stays the host's */
			.size = tag_is_image(e) && !vpmem ? e->image.file_size : e->cap.size,
			.labelled = tag_is_image(e) && !e->cap.shared && !vpmem,
			.devdax = !tag_is_image(e),
			.virtio_pmem = vpmem,
		};
		char object[PATH_MAX + QEMU_ARG_MAX], device[QEMU_ARG_MAX], smbios[QEMU_ARG_MAX];
		struct json_object *d;

		/* checked above: the core agrees, so this cannot be refused now */
		core_claim_for_vm(api->core, e, &owner, slots[i]);
		qemu_args_build(&spec, object, sizeof(object), device, sizeof(device));
		json_object_array_add(argv, json_object_new_string("-object"));
		json_object_array_add(argv, json_object_new_string(object));
		json_object_array_add(argv, json_object_new_string("-device"));
		json_object_array_add(argv, json_object_new_string(device));
		if (qemu_smbios_build(&spec, smbios, sizeof(smbios)) == 0) {
			/* no label in bytes brokerd must not write: the firmware names the tag */
			json_object_array_add(argv, json_object_new_string("-smbios"));
			json_object_array_add(argv, json_object_new_string(smbios));
		}
		d = json_object_new_object();
		json_object_object_add(d, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(d, "slot", json_object_new_int(slots[i]));
		json_object_object_add(d, "labelled", json_object_new_boolean(spec.labelled));
		json_object_object_add(d, "tag_in_guest", json_object_new_string(
			vpmem ? "none" : spec.labelled ? "label" : "firmware"));
		json_object_object_add(d, "object", json_object_new_string(object));
		json_object_object_add(d, "device", json_object_new_string(device));
		json_object_array_add(devs, d);
	}
	if (ram) {
		/* the VM's RAM itself: tagged capacity, so a save can leave QEMU out of it */
		char object[PATH_MAX + QEMU_ARG_MAX], did[QEMU_ID_MAX], oid[QEMU_ID_MAX];

		core_claim_for_vm(api->core, ram, &owner, -1);
		qemu_ids(&ram->tag, false, oid, did);
		snprintf(object, sizeof(object), "memory-backend-file,id=%s,mem-path=%s,size=%llu,"
			 "share=on%s", oid, ram->cap.path, (unsigned long long)ram->cap.size,
			 tag_is_image(ram) ? "" : ",align=2M");
		json_object_array_add(argv, json_object_new_string("-object"));
		json_object_array_add(argv, json_object_new_string(object));
		snprintf(object, sizeof(object), "memory-backend=%s", oid);
		json_object_array_add(argv, json_object_new_string("-machine"));
		json_object_array_add(argv, json_object_new_string(object));
		json_object_object_add(res, "ram_bytes", json_object_new_uint64(ram->cap.size));
	}
	json_object_object_add(res, "args", argv);
	json_object_object_add(res, "devices", devs);
	json_object_object_add(res, "mode", json_object_new_string(mode));
	/* what the machine needs: nvdimms need nvdimm=on; both need -m …,slots=,maxmem= */
	json_object_object_add(res, "machine", json_object_new_string(vpmem ? "" : "nvdimm=on"));
	api_guest_update(api, uid, vm); /* a running guest (more tags for it) learns at once */
	reply_result(rq, res, core_persist(api->core));
}

/* ---- hot-plug through QMP ---- */

static bool valid_qmp_path(const char *p)
{
	return p[0] == '/' && strlen(p) < 108;
}

/*
 * The VM's QMP socket, connected now (a Unix-socket connect does not block). brokerd runs as
 * root and would drive whatever answers, so an unprivileged caller may only reach a socket
 * of its own: the socket is opened O_PATH, its owner checked on that fd, and the connect goes
 * through that same fd (/proc/self/fd/N), never through the name again; the listener's
 * SO_PEERCRED must agree. The monitor then works on the connected fd. *ret_fd is the fd, or -1
 * when the VM's monitor is connected already; false after replying the refusal.
 */
static bool connect_qmp(struct request *rq, const char *vm, const char *qmp, int *ret_fd)
{
	const struct caller *ci = &rq->who;
	const char *have = vm_monitor_path(rq->api->vms, vm, ci->uid);
	_cleanup_close_ int pfd = -1;
	char via[64];
	struct ucred peer;
	socklen_t len = sizeof(peer);
	struct stat st;
	int fd, r;

	if (have) {
		if (strcmp(have, qmp)) {
			reply_error(rq, "busy", "VM %s is attached through another QMP socket (%s)", vm,
				    have);
			return false;
		}
		*ret_fd = -1;
		return true;
	}
	if (ci->uid != 0) {
		pfd = open(qmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (pfd < 0 || fstat(pfd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != ci->uid) {
			reply_error(rq, "permission_denied", "%s is not a socket owned by uid %u", qmp,
				    ci->uid);
			return false;
		}
		snprintf(via, sizeof(via), "/proc/self/fd/%d", pfd);
	}
	r = qmp_socket_connect(pfd >= 0 ? via : qmp, &fd);
	if (r < 0) {
		reply_error(rq, r == -EAGAIN ? "busy" : "unreachable", "cannot reach QEMU at %s: %s",
			    qmp, r == -EAGAIN ? "its monitor is not accepting; retry" : strerror(-r));
		return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
		r = -errno;
		close(fd);
		reply_error(rq, "internal", "cannot tell who serves %s: %s", qmp, strerror(-r));
		return false;
	}
	if (ci->uid != 0 && peer.uid != ci->uid) {
		close(fd);
		reply_error(rq, "permission_denied", "%s is served by uid %u, not by uid %u: point "
			    "brokerd only at the QMP socket of a QEMU you run", qmp, peer.uid, ci->uid);
		return false;
	}
	*ret_fd = fd;
	return true;
}

void op_attach(struct request *rq)
{
	struct api *api = rq->api;
	const struct caller *ci = &rq->who;
	bool none[NVDIMM_MAX_SLOTS] = { 0 };
	struct vm_job *job;
	struct tag *e;
	struct tag_owner owner = { .uid = ci->uid, .pid = ci->pid };
	struct guest_vm *channel;
	const char *vm, *qmp;
	int slot, r, qmp_fd;

	if (tagmem_json_get_string(rq->msg, "vm", &vm) < 0 || !valid_vm_name(vm)) {
		reply_error(rq, "invalid_argument", VM_NAME_RULE);
		return;
	}
	if (tagmem_json_get_string(rq->msg, "qmp", &qmp) < 0 || !valid_qmp_path(qmp)) {
		reply_error(rq, "invalid_argument", "\"qmp\" must be the absolute path of the VM's "
			    "QMP socket (-qmp unix:PATH,server=on,wait=off)");
		return;
	}
	if (!connect_qmp(rq, vm, qmp, &qmp_fd))
		return; /* answered */
	e = arg_tag(rq, NULL, true);
	if (!e || !vm_path_usable(rq, e))
		goto out;
	slot = free_slot(api, ci->uid, vm, none);
	if (slot < 0) {
		reply_error(rq, "no_space", "VM %s has no free nvdimm slot", vm);
		goto out;
	}
	snprintf(owner.name, sizeof(owner.name), "%s", vm);
	r = core_attach_begin(api->core, e, &owner, slot);
	if (r) {
		reply_refusal(rq, r, e);
		goto out;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		core_attach_abort(api->core, e);
		reply_error(rq, "internal", "out of memory");
		goto out;
	}
	job->tag = e->tag;
	job->uid = ci->uid;
	snprintf(job->vm, sizeof(job->vm), "%s", vm);
	snprintf(job->mem_path, sizeof(job->mem_path), "%s", e->cap.path);
	job->size = e->cap.size;
	job->file_size = e->image.file_size;
	job->image = tag_is_image(e);
	job->labelled = tag_is_image(e) && !e->cap.shared;
	job->devdax = !tag_is_image(e);
	job->slot = (unsigned)slot;
	job->label_fd = -1;
	if (job->labelled) {
		/* the monitor labels the image through the file brokerd checked, never by name */
		job->label_fd = fcntl(image_io_fd(e->image.io), F_DUPFD_CLOEXEC, 3);
		if (job->label_fd < 0) {
			core_attach_abort(api->core, e);
			free(job);
			reply_error(rq, "internal", "cannot share the image file: %s", strerror(errno));
			goto out;
		}
	}
	job->client_serial = rq->ans.client;
	job->req_id = json_object_get(rq->ans.id);
	r = vm_submit(api->vms, vm, ci->uid, qmp, qmp_fd, job);
	if (r < 0) {
		core_attach_abort(api->core, e);
		json_object_put(job->req_id);
		if (job->label_fd >= 0)
			close(job->label_fd);
		free(job);
		reply_error(rq, r == -EBUSY ? "busy" : "internal",
			    r == -EBUSY ? "VM %s is attached through another QMP socket" :
			    "cannot start the monitor of VM %s", vm);
		goto out;
	}
	/* a channel that ended while its VM held nothing listens again (QEMU reconnects) */
	if (api->guests && !guests_find(api->guests, ci->uid, vm) &&
	    guests_open(api->guests, ci->uid, vm, &channel) < 0)
		log_warn("VM %s (uid %u) gets no guest channel", vm, (unsigned)ci->uid);
	/* the guest learns the slot's tag before the device arrives (label-less capacity) */
	api_guest_update(api, ci->uid, vm);
	return; /* the answer comes from api_vm_job_done(); the monitor owns qmp_fd */
out:
	if (qmp_fd >= 0)
		close(qmp_fd);
}

void api_vm_job_done(void *userdata, struct vm_job *job)
{
	struct api *api = userdata;

	if (job->run) {
		api_snapshot_done(api, job);
		return;
	}
	struct tag *e = core_find(api->core, &job->tag);
	struct answer ans = { .peer = job->client_serial ? ANSWER_CLIENT : ANSWER_NOBODY,
			      .client = job->client_serial, .id = job->req_id };

	if (job->error == 0 && e && e->vm == TAG_VM_ATTACHING) {
		struct json_object *res = json_object_new_object();
		uint64_t gen;

		json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
		json_object_object_add(res, "vm", json_object_new_string(job->vm));
		json_object_object_add(res, "slot", json_object_new_int((int)job->slot));
		json_object_object_add(res, "labelled", json_object_new_boolean(job->labelled));
		json_object_object_add(res, "tag_in_guest", json_object_new_string(
			job->labelled ? "label" : api->guests && guests_find(api->guests, job->uid,
			job->vm) ? "channel" : "none"));
		json_object_object_add(res, "qmp_usec", json_object_new_uint64(job->qmp_usec));
		log_info("Attached tag %s to VM %s at nvdimm slot %u", e->tag_str, job->vm, job->slot);
		core_attach_confirm(api->core, e, &gen);
		answer_result(api, &ans, res, gen);
	} else {
		if (e)
			core_attach_abort(api->core, e);
		if (job->error == 0)
			snprintf(job->errmsg, sizeof(job->errmsg), "the tag changed while attaching"),
				snprintf(job->errcode, sizeof(job->errcode), "busy");
		answer_error(api, &ans, 0, job->errcode, "%s", job->errmsg);
		api_guest_update(api, job->uid, job->vm); /* the slot is free again */
	}
	if (job->label_fd >= 0)
		close(job->label_fd);
	json_object_put(job->req_id);
	free(job);
}

void api_vm_exited(void *userdata, const char *vm, uid_t uid)
{
	struct api *api = userdata;
	unsigned n = core_vm_exited(api->core, vm, uid);

	api_guest_update(api, uid, vm);
	if (n)
		log_info("VM %s exited: %u attached tag(s) released", vm, n);
}

void op_detach(struct request *rq)
{
	const struct caller *ci = &rq->who;
	struct tag *e = arg_tag(rq, NULL, true);
	struct json_object *res;
	int r;

	if (!e)
		return;
	if (e->claimed && ci->uid != 0 && ci->uid != e->owner.uid &&
	    (e->vm == TAG_VM_ATTACHED || e->vm == TAG_VM_DETACH_PENDING)) {
		reply_error(rq, "permission_denied", "tag %s belongs to uid %u", e->tag_str,
			    e->owner.uid);
		return;
	}
	/* QEMU 7.2 cannot unplug an nvdimm: the capacity stays in the VM until it exits. */
	r = core_detach(rq->api->core, e);
	if (r) {
		reply_refusal(rq, r, e);
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "detached", json_object_new_boolean(false));
	json_object_object_add(res, "pending_until", json_object_new_string("vm_exit"));
	json_object_object_add(res, "vm", json_object_new_string(e->owner.name));
	reply_result(rq, res, 0);
}
