/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tagged capacity into running QEMU guests: attach (hot plug through the VM's QMP socket,
 * hotplug.c runs it), detach, and what brokerd learns when a VM exits; the slot and path
 * rules qemu_args (ops_qemu_args.c) shares.
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

/* Lowest slot not used by another tag of this VM (same uid, same VM name). */
int vm_free_slot(struct api *api, uid_t uid, const char *vm, const bool *taken_now)
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
bool vm_path_usable(struct request *rq, struct tag *e)
{
	const char *for_vm = qemu_args_labelling(rq->api, e);
	int r;

	if (for_vm) {
		reply_error(rq, "busy", "the label of tag %s is being written for VM %s; ask again "
			    "in a moment", e->tag_str, for_vm);
		return false;
	}
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

/* ---- hot-plug through QMP ---- */

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

bool vm_monitor_or_connect(struct request *rq, const char *vm, uid_t uid, const char *qmp,
			   int *ret_fd)
{
	int r;

	*ret_fd = -1;
	if (vm_monitor_path(rq->api->vms, vm, uid))
		return true;
	if (!qmp) {
		reply_error(rq, "invalid_argument", "brokerd has no monitor of VM %s yet: give "
			    "\"qmp\", its QMP socket", vm);
		return false;
	}
	r = qmp_socket_connect(qmp, ret_fd);
	if (r < 0)
		reply_error(rq, "unreachable", "cannot reach QEMU at %s: %s", qmp, strerror(-r));
	return r == 0;
}

void op_attach(struct request *rq)
{
	struct api *api = rq->api;
	const struct caller *ci = &rq->who;
	bool none[NVDIMM_MAX_SLOTS] = { 0 };
	struct tag *e;
	struct tag_owner owner = { .uid = ci->uid, .pid = ci->pid };
	struct guest_vm *channel;
	const char *vm, *qmp;
	int slot, r, qmp_fd;

	tagmem_json_get_string(rq->msg, "vm", &vm); /* the op table's rules checked them */
	tagmem_json_get_string(rq->msg, "qmp", &qmp);
	if (!connect_qmp(rq, vm, qmp, &qmp_fd))
		return; /* answered */
	e = arg_tag(rq, NULL, true);
	if (!e || !vm_path_usable(rq, e))
		goto out;
	slot = vm_free_slot(api, ci->uid, vm, none);
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
	r = hotplug_submit(rq, e, vm, qmp, qmp_fd, (unsigned)slot);
	if (r < 0) {
		core_attach_abort(api->core, e);
		if (r == -EBUSY)
			reply_error(rq, "busy", "VM %s is attached through another QMP socket", vm);
		else
			reply_error(rq, "internal", "cannot start the attach of VM %s: %s", vm,
				    strerror(-r));
		goto out;
	}
	/* a channel that ended while its VM held nothing listens again (QEMU reconnects) */
	if (api->guests && !guests_find(api->guests, ci->uid, vm) &&
	    guests_open(api->guests, ci->uid, vm, &channel) < 0)
		log_warn("VM %s (uid %u) gets no guest channel", vm, (unsigned)ci->uid);
	/* the guest learns the slot's tag before the device arrives (label-less capacity) */
	api_guest_update(api, ci->uid, vm);
	return; /* the hot plug answers (hotplug.c); the monitor owns qmp_fd */
out:
	if (qmp_fd >= 0)
		close(qmp_fd);
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
