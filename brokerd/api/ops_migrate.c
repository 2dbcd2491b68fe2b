/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Live migration between hosts that map the same tags: the ops of each end (docs/protocol.md
 * "Live migration"). An orchestrator (`tagmem vm migrate`) drives both hosts' brokerds and
 * moves the cluster-wide claims between the source's "sent" and the destination's "finish":
 *
 *   source       vm_migrate_begin   the VM's tags, each one the other host can have (shared
 *                                   capacity or an image), and QEMU's memory all of them
 *   destination  qemu_args incoming claims held provisionally, QEMU started -S -incoming defer
 *   destination  vm_migrate_listen  QEMU listens (x-ignore-shared)
 *   source       vm_migrate_send    QEMU sends the device state; the VM stops here
 *   (orchestrator: the images flushed, the claims moved in one etcd transaction)
 *   destination  vm_migrate_finish  images' cache dropped, the VM runs, the claims persisted
 *   source       vm_migrate_confirm QEMU quits, the VM's claims here go
 *   either       vm_migrate_abort   before the switch: the destination's copy goes, the
 *                                   source runs again
 *
 * The QMP steps run on the VM's monitor thread (snapshot/migrate.c); every op here gathers on
 * the loop what the step needs and answers when it is back. Each op may be asked again after
 * a brokerd restart and does what is left (the registry never holds a provisional claim).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "ops.h"
#include "qemu.h"
#include "qmp.h"
#include "snapshot.h"
#include "vm.h"

struct migrate_run {
	struct migrate_job job;
	struct vm_job vm_job;
	struct api *api;
	struct answer ans;
	uid_t uid;
	struct json_object *tags;   /* begin: the answer's tags */
	int image_fd[SNAP_MAX_ENTRIES]; /* finish: images whose cache is dropped before cont */
	unsigned nimages;
};

static void migrate_done(struct vm_job *job);

static int run_step(struct qmp *q, struct vm_job *job)
{
	struct migrate_run *run = job->ctx;
	struct migrate_job *m = &run->job;
	int r;

	/* the destination's cached pages of the images predate the source's last writes: drop
	 * them before the guest can read them (clean pages only; the source flushed its own) */
	if (m->step == MIGRATE_RUN)
		for (unsigned i = 0; i < run->nimages; i++)
			posix_fadvise(run->image_fd[i], 0, 0, POSIX_FADV_DONTNEED);
	r = migrate_step_run(q, m);
	if (r < 0)
		vm_job_fail(job, r, m->st.errcode[0] ? m->st.errcode : "qemu_error", "%s",
			    m->st.errmsg);
	return r;
}

static void run_free(struct migrate_run *run)
{
	for (unsigned i = 0; i < run->nimages; i++)
		close(run->image_fd[i]);
	json_object_put(run->tags);
	answer_fini(&run->ans);
	free(run);
}

static const char *step_name(enum migrate_step s)
{
	static const char *const names[] = {
		[MIGRATE_CHECK] = "checked", [MIGRATE_LISTEN] = "listening", [MIGRATE_SEND] = "sent",
		[MIGRATE_RUN] = "running", [MIGRATE_QUIT] = "confirmed", [MIGRATE_RESUME] = "resumed",
		[MIGRATE_DISCARD] = "discarded",
	};
	return names[s];
}

/* The VM's owner here: the uid of its claims, incoming ones or the others. -ENOENT: none;
 * -EINVAL: two users have a VM of that name. */
static int find_owner(struct api *api, const char *vm, bool incoming, uid_t *ret_uid)
{
	bool found = false;
	struct tag *e;

	core_for_each(e, api->core) {
		if (!e->claimed || strcmp(e->owner.name, vm) ||
		    (e->vm == TAG_VM_INCOMING) != incoming)
			continue;
		if (found && e->owner.uid != *ret_uid)
			return -EINVAL;
		found = true;
		*ret_uid = e->owner.uid;
	}
	return found ? 0 : -ENOENT;
}

/* find_owner, replying its refusal. */
static bool vm_owner(struct request *rq, const char *vm, bool incoming, uid_t *ret_uid)
{
	int r = find_owner(rq->api, vm, incoming, ret_uid);

	if (r == -EINVAL)
		reply_error(rq, "invalid_argument", "two users have a VM called %s", vm);
	else if (r < 0 && incoming)
		reply_error(rq, "not_prepared", "VM %s is not migrating in here: run `tagmem vm "
			    "migrate-args` (qemu_args with \"incoming\") for it first", vm);
	else if (r < 0)
		reply_error(rq, "not_found", "no tags are claimed for VM %s here", vm);
	return r == 0;
}

/* Queue step on the VM's monitor: the one brokerd has (fd -1), or a new one on fd, a
 * connection to qmp. Answered in migrate_done. Takes run and fd (freed when refused). */
static void submit_on(struct request *rq, struct migrate_run *run, const char *qmp, int fd)
{
	struct migrate_job *m = &run->job;
	int r;

	run->vm_job = (struct vm_job){ .run = run_step, .done = migrate_done, .ctx = run };
	run->api = rq->api;
	answer_copy(&run->ans, &rq->ans);
	r = vm_submit(rq->api->vms, m->vm, run->uid, qmp ? qmp : vm_monitor_path(rq->api->vms,
			m->vm, run->uid), fd, &run->vm_job);
	if (r < 0) {
		reply_error(rq, r == -EBUSY ? "busy" : "internal", "cannot queue the step on VM %s's "
			    "monitor: %s", m->vm, r == -EBUSY ? "it is reached through another QMP "
			    "socket" : strerror(-r));
		if (fd >= 0)
			close(fd);
		run_free(run);
	}
}

/* submit_on the VM's monitor, or on a connection to qmp made now. */
static void submit(struct request *rq, struct migrate_run *run, const char *qmp)
{
	int fd;

	if (!vm_monitor_or_connect(rq, run->job.vm, run->uid, qmp, &fd)) {
		run_free(run);
		return;
	}
	submit_on(rq, run, qmp, fd);
}

static struct migrate_run *new_run(struct request *rq, enum migrate_step step)
{
	struct migrate_run *run = calloc(1, sizeof(*run));
	const char *vm, *uri = "";

	if (!run) {
		reply_error(rq, "internal", "out of memory");
		return NULL;
	}
	/* the op table's rules checked vm and uri */
	tagmem_json_get_string(rq->msg, "vm", &vm);
	tagmem_json_get_string(rq->msg, "uri", &uri);
	/* QEMU would run an exec: URI as a shell command, or open a file: one: a socket only */
	if (uri[0] && strncmp(uri, "tcp:", 4) && strncmp(uri, "unix:/", 6)) {
		reply_error(rq, "invalid_argument", "\"uri\" must be tcp:HOST:PORT or unix:/PATH, "
			    "where the destination's QEMU listens");
		free(run);
		return NULL;
	}
	run->job.step = step;
	snprintf(run->job.vm, sizeof(run->job.vm), "%s", vm);
	snprintf(run->job.uri, sizeof(run->job.uri), "%s", uri);
	return run;
}

/* new_run for a VM that has claims here (the provisional ones of an incoming VM, or the
 * others); NULL after replying. */
static struct migrate_run *run_of_vm(struct request *rq, enum migrate_step step, bool incoming)
{
	struct migrate_run *run = new_run(rq, step);

	if (run && !vm_owner(rq, run->job.vm, incoming, &run->uid)) {
		run_free(run);
		return NULL;
	}
	return run;
}

static const char *arg_qmp(struct request *rq)
{
	const char *qmp = NULL;

	tagmem_json_get_string(rq->msg, "qmp", &qmp);
	return qmp;
}

/* One tag of a VM leaving: what the other host needs to know of it, or a refusal. */
static bool begin_tag(struct request *rq, struct migrate_run *run, struct tag *e)
{
	struct migrate_job *m = &run->job;
	struct json_object *o;

	if (!tag_is_image(e) && !e->cap.shared) {
		reply_error(rq, "not_shared", "tag %s of VM %s is capacity only this host has (a "
			    "private DCD allocation): no other host can map its bytes; give the VM "
			    "shared capacity or an image on storage both hosts see", e->tag_str, m->vm);
		return false;
	}
	if (e->vm != TAG_VM_NONE && e->vm != TAG_VM_ATTACHED) {
		reply_error(rq, "busy", "tag %s of VM %s is being attached or detached: migrate "
			    "once that is over", e->tag_str, m->vm);
		return false;
	}
	if (m->nids == SNAP_MAX_ENTRIES) {
		reply_error(rq, "unsupported", "VM %s has more than %d tags", m->vm, SNAP_MAX_ENTRIES);
		return false;
	}
	qemu_ids(&e->tag, false, m->ids[m->nids++], (char[QEMU_ID_MAX]){ 0 });
	o = json_object_new_object();
	json_object_object_add(o, "tag", json_object_new_string(e->tag_str));
	if (e->owner.slot >= 0)
		json_object_object_add(o, "slot", json_object_new_int(e->owner.slot));
	json_object_object_add(o, "image", json_object_new_boolean(tag_is_image(e)));
	json_object_object_add(o, "size", json_object_new_uint64(e->cap.size));
	json_object_array_add(run->tags, o);
	return true;
}

void op_vm_migrate_begin(struct request *rq)
{
	struct migrate_run *run = run_of_vm(rq, MIGRATE_CHECK, false);
	struct tag *e;

	if (!run)
		return;
	run->tags = json_object_new_array();
	core_for_each(e, rq->api->core)
		if (tag_of_vm(e, run->uid, run->job.vm) && !begin_tag(rq, run, e)) {
			run_free(run);
			return;
		}
	submit(rq, run, arg_qmp(rq));
}

void op_vm_migrate_listen(struct request *rq)
{
	struct migrate_run *run = run_of_vm(rq, MIGRATE_LISTEN, true);

	if (run)
		submit(rq, run, arg_qmp(rq));
}

void op_vm_migrate_send(struct request *rq)
{
	struct migrate_run *run = run_of_vm(rq, MIGRATE_SEND, false);

	if (!run)
		return;
	log_info("Migrating VM %s to %s", run->job.vm, run->job.uri);
	submit(rq, run, arg_qmp(rq));
}

/* The destination runs the VM. Its claims are the provisional ones, or (asked again after
 * the answer was lost) the persisted ones of a VM that already runs here. */
void op_vm_migrate_finish(struct request *rq)
{
	struct migrate_run *run = new_run(rq, MIGRATE_RUN);
	struct tag *e;

	if (!run)
		return;
	if (find_owner(rq->api, run->job.vm, true, &run->uid) < 0 &&
	    find_owner(rq->api, run->job.vm, false, &run->uid) < 0) {
		vm_owner(rq, run->job.vm, true, &run->uid); /* says what is missing */
		run_free(run);
		return;
	}
	core_for_each(e, rq->api->core)
		if (tag_of_vm(e, run->uid, run->job.vm) && tag_is_image(e) &&
		    run->nimages < SNAP_MAX_ENTRIES) {
			int fd = fcntl(image_io_fd(e->image.io), F_DUPFD_CLOEXEC, 3);

			if (fd >= 0)
				run->image_fd[run->nimages++] = fd;
		}
	submit(rq, run, arg_qmp(rq));
}

void op_vm_migrate_confirm(struct request *rq)
{
	struct migrate_run *run = run_of_vm(rq, MIGRATE_QUIT, false);

	if (run)
		submit(rq, run, arg_qmp(rq));
}

static void reply_vm(struct request *rq, const char *vm, const char *key, unsigned n,
		     uint64_t gen)
{
	struct json_object *res = json_object_new_object();

	json_object_object_add(res, "vm", json_object_new_string(vm));
	json_object_object_add(res, key, json_object_new_int((int)n));
	reply_result(rq, res, gen);
}

/* Before the switch: the destination discards its copy (its provisional claims go, and its
 * QEMU, which never ran; a QEMU already gone is fine), the source runs the VM again. */
void op_vm_migrate_abort(struct request *rq)
{
	struct migrate_run *run = new_run(rq, MIGRATE_DISCARD);
	const char *qmp = arg_qmp(rq);
	int fd = -1;

	if (!run)
		return;
	if (find_owner(rq->api, run->job.vm, true, &run->uid) < 0) {
		run->job.step = MIGRATE_RESUME;
		if (!vm_owner(rq, run->job.vm, false, &run->uid)) {
			run_free(run);
			return;
		}
	} else if (!vm_monitor_path(rq->api->vms, run->job.vm, run->uid) &&
		   (!qmp || qmp_socket_connect(qmp, &fd) < 0)) {
		/* the destination's QEMU is gone: only its claims are left to drop */
		unsigned n = core_incoming_abort(rq->api->core, run->job.vm, run->uid);

		log_info("Migration of VM %s abandoned here: its QEMU is gone, %u claim(s) dropped",
			 run->job.vm, n);
		reply_vm(rq, run->job.vm, "released", n, 0);
		run_free(run);
		return;
	}
	if (fd >= 0) /* the connection that showed the QEMU is there is the one used */
		submit_on(rq, run, qmp, fd);
	else
		submit(rq, run, qmp);
}

static void emit_phase(struct api *api, const struct migrate_job *m)
{
	struct json_object *ev = json_object_new_object();

	json_object_object_add(ev, "event", json_object_new_string("vm_migration"));
	json_object_object_add(ev, "vm", json_object_new_string(m->vm));
	json_object_object_add(ev, "phase", json_object_new_string(step_name(m->step)));
	api_emit(api, ev);
}

static struct json_object *send_result(const struct migrate_job *m)
{
	struct json_object *res = json_object_new_object();

	json_object_object_add(res, "vm", json_object_new_string(m->vm));
	json_object_object_add(res, "status", json_object_new_string(m->status));
	json_object_object_add(res, "total_ms", json_object_new_uint64(m->total_ms));
	json_object_object_add(res, "downtime_ms", json_object_new_uint64(m->downtime_ms));
	json_object_object_add(res, "setup_ms", json_object_new_uint64(m->setup_ms));
	json_object_object_add(res, "transferred_bytes", json_object_new_uint64(m->transferred));
	json_object_object_add(res, "usec", json_object_new_uint64(m->usec));
	return res;
}

/* begin's answer: the tags, which one is RAM, and the mode the destination must use. */
static struct json_object *begin_result(struct migrate_run *run)
{
	struct migrate_job *m = &run->job;
	struct json_object *res = json_object_new_object(), *ram = NULL;
	bool vpmem = false;

	for (unsigned i = 0; i < m->nids; i++) {
		struct json_object *t = json_object_array_get_idx(run->tags, i);

		if (m->ram_id[0] && !strcmp(m->ids[i], m->ram_id)) {
			ram = json_object_object_get(t, "tag");
			json_object_object_add(t, "ram", json_object_new_boolean(true));
		} else if (!json_object_object_get_ex(t, "slot", NULL)) {
			vpmem = true; /* an nvdimm always has its slot */
		}
	}
	json_object_object_add(res, "vm", json_object_new_string(m->vm));
	json_object_object_add(res, "uid", json_object_new_int64(run->uid));
	json_object_object_add(res, "mode", json_object_new_string(vpmem ? "virtio-pmem" :
								     "nvdimm"));
	json_object_object_add(res, "ram", ram ? json_object_get(ram) : NULL);
	json_object_object_add(res, "tags", json_object_get(run->tags));
	return res;
}

static void migrate_done(struct vm_job *job)
{
	struct migrate_run *run = job->ctx;
	struct migrate_job *m = &run->job;
	struct api *api = run->api;
	struct json_object *res = NULL;
	uint64_t gen = 0;
	unsigned n;

	if (job->error && !(m->step == MIGRATE_DISCARD && strcmp(job->errcode, "vm_running"))) {
		log_warn("Migration of VM %s: %s", m->vm, job->errmsg);
		answer_error(api, &run->ans, 0, job->errcode, "%s", job->errmsg);
		run_free(run);
		return;
	}
	switch (m->step) {
	case MIGRATE_CHECK:
		res = begin_result(run);
		break;
	case MIGRATE_SEND:
		res = send_result(m);
		log_info("VM %s sent to %s: %llu bytes, QEMU's downtime %llu ms", m->vm, m->uri,
			 (unsigned long long)m->transferred, (unsigned long long)m->downtime_ms);
		break;
	case MIGRATE_RUN:
		n = core_incoming_confirm(api->core, m->vm, run->uid, &gen);
		log_info("VM %s migrated in: it runs here, %u claim(s) persisted", m->vm, n);
		break;
	case MIGRATE_QUIT:
		n = core_vm_migrated_out(api->core, m->vm, run->uid, &gen);
		log_info("VM %s migrated out: its QEMU here quit, %u claim(s) released", m->vm, n);
		break;
	case MIGRATE_DISCARD:
		/* a QEMU that went away meanwhile is as good as one that quit */
		n = core_incoming_abort(api->core, m->vm, run->uid);
		log_info("Migration of VM %s abandoned here: %u claim(s) dropped", m->vm, n);
		break;
	default:
		break;
	}
	if (!res) {
		res = json_object_new_object();
		json_object_object_add(res, "vm", json_object_new_string(m->vm));
	}
	emit_phase(api, m);
	answer_result(api, &run->ans, res, gen);
	run_free(run);
}
