/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm_save, vm_restore and vm_checkpoint: the VM's tags, gathered here on the loop, then the
 * whole job on the VM's monitor thread (snapshot.h does the work, vm.h runs it). Progress
 * goes out as vm_snapshot_progress events from the upkeep tick while a job runs. Where each
 * VM's checkpoints stand is kept here, in memory: after a restart of brokerd, a VM's next
 * checkpoint is a base.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dataplane.h"
#include "list.h"
#include "log.h"
#include "ops.h"
#include "qemu.h"
#include "qmp.h"
#include "snapshot.h"
#include "vm.h"

#define SNAP_THREADS_DEFAULT 4

enum snapshot_kind { SNAPSHOT_SAVE, SNAPSHOT_RESTORE, SNAPSHOT_CHECKPOINT };

struct vm_chain {
	char vm[65];
	uid_t uid;
	struct snap_chain chain;
};

/* A job, and the images whose background writeback it holds off: a restore rewrites them
 * whole, and writing them back meanwhile would make it share the disk with its own reads
 * (the writeback resumes, on the budgets, once the VM has its memory). */
struct snapshot_run {
	struct snap_job job;
	struct vm_job vm_job;       /* what the VM's monitor runs */
	struct api *api;
	struct answer ans;          /* ANSWER_NOBODY: a recovery at start */
	struct image_io *held[SNAP_MAX_ENTRIES];
	uint64_t steps_at_hold[SNAP_MAX_ENTRIES]; /* image_io_writeback_steps when held */
	unsigned nheld;
};

static void snapshot_done(struct vm_job *job);

static int run_snapshot(struct qmp *q, struct vm_job *job)
{
	struct snap_job *s = &((struct snapshot_run *)job->ctx)->job;
	int r = s->recover ? snap_recover(q, s) : s->restore ? snap_restore(q, s) :
		s->checkpoint ? snap_checkpoint(q, s) : snap_save(q, s);

	if (r < 0)
		vm_job_fail(job, r, s->st.errcode[0] ? s->st.errcode : "io_error", "%s", s->st.errmsg);
	return r;
}

/* Background writeback steps brokerd started on the held images while this job held them:
 * the restore's promise is that there were none. */
static uint64_t steps_while_held(struct snap_job *s)
{
	struct snapshot_run *run = container_of(s, struct snapshot_run, job);
	uint64_t n = 0;

	for (unsigned i = 0; i < run->nheld; i++)
		n += image_io_writeback_steps(run->held[i]) - run->steps_at_hold[i];
	return n;
}

static void snap_job_free(struct snap_job *s)
{
	struct snapshot_run *run = s ? container_of(s, struct snapshot_run, job) : NULL;

	if (!s)
		return;
	for (unsigned i = 0; i < s->nb; i++) {
		snap_backing_unmap(&s->b[i]);
		if (s->b[i].fd >= 0)
			close(s->b[i].fd);
	}
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	for (unsigned i = 0; i < run->nheld; i++) {
		image_io_hold_writeback(run->held[i], false);
		image_io_unref(run->held[i]);
	}
	answer_fini(&run->ans);
	free(run);
}

/* The VM's tags as backings: an image whole (labels and headers are QEMU's backend too), a
 * DCD tag's file. Replies and returns false when one cannot be read here. */
static bool gather(struct request *rq, const char *vm, uid_t *ret_uid, struct snap_job *s)
{
	struct api *api = rq->api;
	uid_t caller = rq->who.uid;
	bool found = false;
	struct tag *e;

	core_for_each(e, api->core) {
		struct snap_backing *b;
		struct stat st;
		int mapped;

		if (!e->claimed || strcmp(e->owner.name, vm) ||
		    (e->owner.uid != caller && !is_privileged(rq)))
			continue;
		if (found && e->owner.uid != *ret_uid) {
			reply_error(rq, "invalid_argument", "two users have a VM called %s", vm);
			return false;
		}
		found = true;
		*ret_uid = e->owner.uid;
		if (s->nb == SNAP_MAX_ENTRIES) {
			reply_error(rq, "unsupported", "VM %s has more than %d tags", vm,
				    SNAP_MAX_ENTRIES);
			return false;
		}
		b = &s->b[s->nb];
		b->tag = e->tag;
		qemu_ids(&e->tag, false, b->qemu_id, (char[QEMU_ID_MAX]){ 0 });
		if (tag_is_image(e)) {
			b->fd = fcntl(image_io_fd(e->image.io), F_DUPFD_CLOEXEC, 3);
			b->size = e->image.file_size;
			if (s->restore) {
				struct snapshot_run *run = container_of(s, struct snapshot_run, job);

				run->held[run->nheld] = image_io_ref(e->image.io);
				image_io_hold_writeback(e->image.io, true);
				run->steps_at_hold[run->nheld++] =
					image_io_writeback_steps(e->image.io);
			}
		} else {
			b->fd = open(e->cap.path, O_RDWR | O_CLOEXEC);
			b->size = e->cap.size;
		}
		s->nb++;
		s->total_bytes += b->size;
		if (b->fd < 0 || fstat(b->fd, &st) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
			reply_error(rq, "unsupported", "tag %s of VM %s is %s: brokerd saves files and "
				    "device DAX", e->tag_str, vm, b->fd < 0 ? "not readable here" :
				    "neither a regular file nor a device");
			return false;
		}
		/* device DAX: copied through a mapping (it has no read or write) */
		if ((mapped = snap_backing_map(b)) < 0) {
			reply_error(rq, "io_error", "cannot map tag %s of VM %s (%s): %s", e->tag_str, vm,
				    e->cap.path, strerror(-mapped));
			return false;
		}
	}
	if (!found)
		reply_error(rq, "not_found", "no tags are claimed for VM %s%s", vm,
			    is_privileged(rq) ? "" : " by you");
	return found;
}

/* The request's arguments into a new job (its file's directory opened); NULL after replying. */
/* A restore's increments: names in the base's directory, kept in s->incs. */
static bool increments_args(struct request *rq, struct snap_job *s, const char *dir)
{
	struct json_object *arr;

	if (!json_object_object_get_ex(rq->msg, "increments", &arr))
		return true;
	if (json_object_array_length(arr) > SNAP_MAX_INCREMENTS)
		goto bad;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *p = json_object_is_type(v, json_type_string) ? json_object_get_string(v) :
				NULL;
		const char *slash = p ? strrchr(p, '/') : NULL;

		if (!slash || p[0] != '/' || !slash[1] || strlen(slash + 1) > NAME_MAX ||
		    (size_t)(slash == p ? 1 : slash - p) != strlen(dir) || strncmp(p, dir, strlen(dir)))
			goto bad;
		snprintf(s->incs[s->nincs++], sizeof(s->incs[0]), "%s", slash + 1);
	}
	return true;
bad:
	reply_error(rq, "invalid_argument", INCREMENTS_RULE);
	return false;
}

static struct snapshot_run *snapshot_args(struct request *rq, enum snapshot_kind kind,
					  const char **ret_qmp)
{
	bool restore = kind == SNAPSHOT_RESTORE, full = false, paused = false;
	const char *vm, *path, *slash;
	uint64_t threads = SNAP_THREADS_DEFAULT;
	bool resume = false;
	struct snapshot_run *run;
	struct snap_job *s;
	char dir[PATH_MAX];

	*ret_qmp = NULL;
	/* the op table's rules checked vm, path, qmp, threads and resume */
	tagmem_json_get_string(rq->msg, "vm", &vm);
	tagmem_json_get_string(rq->msg, "path", &path);
	tagmem_json_get_string(rq->msg, "qmp", ret_qmp);
	tagmem_json_get_u64(rq->msg, "threads", &threads);
	tagmem_json_get_bool(rq->msg, "resume", &resume);
	tagmem_json_get_bool(rq->msg, "full", &full);
	tagmem_json_get_bool(rq->msg, "paused", &paused);
	slash = strrchr(path, '/');
	if (!slash[1]) {
		reply_error(rq, "invalid_argument", "\"path\" must name a file, not a directory");
		return NULL;
	}
	run = calloc(1, sizeof(*run));
	if (!run) {
		reply_error(rq, "internal", "out of memory");
		return NULL;
	}
	s = &run->job;
	s->marks_fd = rq->api->pause_marks_fd;
	snprintf(s->vm, sizeof(s->vm), "%s", vm);
	snprintf(s->path, sizeof(s->path), "%s", path);
	snprintf(s->base, sizeof(s->base), "%s", slash + 1);
	s->threads = (unsigned)threads;
	s->resume = resume;
	s->restore = restore;
	s->checkpoint = kind == SNAPSHOT_CHECKPOINT;
	s->full = full;
	s->stay_paused = paused;
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (!increments_args(rq, s, dir)) {
		s->dir_fd = -1;
		snap_job_free(s);
		return NULL;
	}
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* fsync needs more than O_PATH */
	if (s->dir_fd < 0) {
		reply_error(rq, "invalid_argument", "cannot open the directory %s: %s", dir,
			    strerror(errno));
		snap_job_free(s);
		return NULL;
	}
	return run;
}

static struct vm_chain *chain_of(struct api *api, const char *vm, uid_t uid, bool create)
{
	struct vm_chain *n;

	for (size_t i = 0; i < api->nchains; i++)
		if (api->chains[i].uid == uid && !strcmp(api->chains[i].vm, vm))
			return &api->chains[i];
	if (!create)
		return NULL;
	n = realloc(api->chains, (api->nchains + 1) * sizeof(*n));
	if (!n)
		return NULL; /* the VM's next checkpoint is a base */
	api->chains = n;
	n = &api->chains[api->nchains++];
	*n = (struct vm_chain){ .uid = uid };
	snprintf(n->vm, sizeof(n->vm), "%s", vm);
	return n;
}

/* Two jobs on one file: the one acknowledged last need not be what it holds. Two checkpoints
 * of one VM: the second must follow the first. */
static bool file_free(struct request *rq, const struct snap_job *s)
{
	struct api *api = rq->api;

	for (unsigned i = 0; i < ARRAY_SIZE(api->snaps); i++)
		if (api->snaps[i] && s->checkpoint && api->snaps[i]->checkpoint &&
		    !strcmp(api->snaps[i]->vm, s->vm)) {
			reply_error(rq, "busy", "a checkpoint of VM %s is under way: wait for it", s->vm);
			return false;
		}
	for (unsigned i = 0; i < ARRAY_SIZE(api->snaps); i++)
		if (api->snaps[i] && !strcmp(api->snaps[i]->path, s->path)) {
			reply_error(rq, "busy", "a %s of VM %s with %s is under way: wait for it",
				    api->snaps[i]->restore ? "restore" : api->snaps[i]->checkpoint ?
				    "checkpoint" : "save", api->snaps[i]->vm,
				    s->path);
			return false;
		}
	return true;
}

static void op_snapshot(struct request *rq, enum snapshot_kind kind)
{
	bool restore = kind == SNAPSHOT_RESTORE;
	struct api *api = rq->api;
	struct snapshot_run *run;
	struct snap_job *s;
	const char *qmp;
	int qmp_fd = -1, r;

	/* privileged only (the op table): brokerd writes, or reads into VM memory, the file it is
	 * given */
	run = snapshot_args(rq, kind, &qmp);
	if (!run)
		return;
	s = &run->job;
	if (!file_free(rq, s) || !gather(rq, s->vm, &s->uid, s) ||
	    !vm_monitor_or_connect(rq, s->vm, s->uid, qmp, &qmp_fd))
		goto fail;
	snprintf(s->qmp, sizeof(s->qmp), "%s", qmp ? qmp : vm_monitor_path(api->vms, s->vm,
									     s->uid));
	if (s->checkpoint) {
		struct vm_chain *c = chain_of(api, s->vm, s->uid, false);

		if (c)
			s->chain = c->chain;
	}
	run->vm_job = (struct vm_job){ .run = run_snapshot, .done = snapshot_done, .ctx = run };
	run->api = api;
	answer_copy(&run->ans, &rq->ans);
	r = vm_submit(api->vms, s->vm, s->uid, s->qmp, qmp_fd, &run->vm_job);
	if (r < 0) {
		reply_error(rq, r == -EBUSY ? "busy" : "internal", "cannot queue the job on VM %s's "
			    "monitor: %s", s->vm, strerror(-r));
		goto fail;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(api->snaps); i++)
		if (!api->snaps[i]) {
			api->snaps[i] = s;
			break;
		}
	log_info("%s VM %s %s %s (%u backing(s))", restore ? "Restoring" : s->checkpoint ?
		 "Checkpointing" : "Saving", s->vm, restore ? "from" : "to", s->path, s->nb);
	return; /* answered by snapshot_done() */
fail:
	if (qmp_fd >= 0)
		close(qmp_fd);
	snap_job_free(s);
}

void op_vm_save(struct request *rq)
{
	op_snapshot(rq, SNAPSHOT_SAVE);
}

void op_vm_restore(struct request *rq)
{
	op_snapshot(rq, SNAPSHOT_RESTORE);
}

void op_vm_checkpoint(struct request *rq)
{
	op_snapshot(rq, SNAPSHOT_CHECKPOINT);
}

static void checkpoint_result(struct json_object *res, const struct snap_job *s)
{
	const struct snap_checkpoint_stats *cp = &s->cp;

	json_object_object_add(res, "kind", json_object_new_string(cp->increment ? "increment" :
								    "base"));
	json_object_object_add(res, "sequence", json_object_new_uint64(s->chain.sequence));
	if (!cp->increment) {
		json_object_object_add(res, "why_base", json_object_new_string(
			cp->why_full && cp->why_full[0] ? cp->why_full : "asked for (full)"));
		return;
	}
	json_object_object_add(res, "dirty_bytes", json_object_new_uint64(cp->dirty_bytes));
	json_object_object_add(res, "zero_bytes", json_object_new_uint64(cp->zero_bytes));
	json_object_object_add(res, "file_bytes", json_object_new_uint64(cp->file_bytes));
	json_object_object_add(res, "ranges", json_object_new_uint64(cp->ranges));
	json_object_object_add(res, "harvest_usec", json_object_new_uint64(cp->harvest_usec));
	json_object_object_add(res, "capture_usec", json_object_new_uint64(cp->capture_usec));
	json_object_object_add(res, "device_state_usec", json_object_new_uint64(cp->devstate_usec));
	json_object_object_add(res, "paused_usec", json_object_new_uint64(cp->paused_usec));
	json_object_object_add(res, "write_usec", json_object_new_uint64(cp->write_usec));
}

static void snapshot_done(struct vm_job *job)
{
	struct snapshot_run *run = job->ctx;
	struct snap_job *s = &run->job;
	struct api *api = run->api;
	const struct answer *ans = &run->ans;

	for (unsigned i = 0; i < ARRAY_SIZE(api->snaps); i++)
		if (api->snaps[i] == s)
			api->snaps[i] = NULL;
	if (s->checkpoint) { /* a failure may have ended the chain: kept either way */
		struct vm_chain *c = chain_of(api, s->vm, s->uid, true);

		if (c)
			c->chain = s->chain;
	}
	if (s->recover) {
		if (job->error)
			log_warn("VM %s (uid %u), paused by a save when brokerd stopped: %s", s->vm,
				 (unsigned)s->uid, job->errmsg);
		else
			log_info("VM %s (uid %u), paused by a save when brokerd stopped: %s", s->vm,
				 (unsigned)s->uid, s->resumed ? "running again" : "left as it is "
				 "(not paused)");
	} else if (job->error) {
		log_warn("%s of VM %s failed: %s", s->restore ? "Restore" : s->checkpoint ?
			 "Checkpoint" : "Save", s->vm, job->errmsg);
		answer_error(api, ans, 0, job->errcode, "%s", job->errmsg);
	} else if (ans->peer != ANSWER_NOBODY) {
		struct json_object *res = json_object_new_object();
		double secs = (double)s->usec / 1e6;

		json_object_object_add(res, "vm", json_object_new_string(s->vm));
		json_object_object_add(res, "path", json_object_new_string(s->path));
		json_object_object_add(res, "backings", json_object_new_int((int)s->nb));
		json_object_object_add(res, "bytes", json_object_new_uint64(s->total_bytes));
		json_object_object_add(res, "device_state_bytes",
				       json_object_new_uint64(s->devstate_bytes));
		json_object_object_add(res, "usec", json_object_new_uint64(s->usec));
		json_object_object_add(res, "copy_usec", json_object_new_uint64(s->copy_usec));
		json_object_object_add(res, "qemu_usec", json_object_new_uint64(s->st.qemu_usec));
		json_object_object_add(res, "gb_per_s", json_object_new_double(
			secs > 0 ? (double)s->total_bytes / 1e9 / secs : 0));
		if (s->checkpoint)
			checkpoint_result(res, s);
		if (s->restore) /* read while the hold is still in force: snap_job_free ends it */
			json_object_object_add(res, "budget_writeback_steps",
					       json_object_new_uint64(steps_while_held(s)));
		log_info("%s VM %s: %llu bytes in %.2f s", s->restore ? "Restored" : s->checkpoint ?
			 "Checkpointed" : "Saved", s->vm, (unsigned long long)s->total_bytes, secs);
		answer_result(api, ans, res, 0);
	}
	snap_job_free(s);
}

/* A mark left by a save that a killed brokerd never finished: resume that VM, on its
 * monitor (QMP blocks), if the QEMU behind the socket is the process the save paused. */
static void recover_paused(void *userdata, const struct snap_pause *p)
{
	struct api *api = userdata;
	struct snapshot_run *run = NULL;
	struct ucred peer;
	socklen_t len = sizeof(peer);
	int fd = -1, r;

	r = qmp_socket_connect(p->qmp, &fd);
	if (r == 0 && (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
		       peer.pid != p->qemu_pid))
		r = -ESRCH;
	if (r < 0) {
		log_info("VM %s (uid %u) was paused by a save when brokerd stopped; its QEMU (pid "
			 "%d) is gone from %s: nothing to resume", p->vm, (unsigned)p->uid,
			 (int)p->qemu_pid, p->qmp);
		snap_pause_unmark(api->pause_marks_fd, p->vm, p->uid);
		goto fail;
	}
	run = calloc(1, sizeof(*run));
	if (!run)
		goto fail; /* the mark stays for the next start */
	run->job.dir_fd = -1;
	run->job.recover = true;
	run->job.marks_fd = api->pause_marks_fd;
	run->job.uid = p->uid;
	snprintf(run->job.vm, sizeof(run->job.vm), "%s", p->vm);
	snprintf(run->job.qmp, sizeof(run->job.qmp), "%s", p->qmp);
	run->vm_job = (struct vm_job){ .run = run_snapshot, .done = snapshot_done, .ctx = run };
	run->api = api;
	if (vm_submit(api->vms, p->vm, p->uid, p->qmp, fd, &run->vm_job) < 0)
		goto fail;
	log_info("VM %s (uid %u) was paused by a save when brokerd stopped: resuming it", p->vm,
		 (unsigned)p->uid);
	return;
fail:
	if (fd >= 0)
		close(fd);
	free(run);
}

void api_pause_marks_restore(struct api *api)
{
	if (api->pause_marks_fd >= 0)
		snap_pause_marks(api->pause_marks_fd, recover_paused, api);
}

void api_snapshot_progress(struct api *api)
{
	for (unsigned i = 0; i < ARRAY_SIZE(api->snaps); i++) {
		struct snap_job *s = api->snaps[i];
		struct json_object *ev;

		if (!s || !s->total_bytes)
			continue;
		ev = json_object_new_object();
		json_object_object_add(ev, "event", json_object_new_string("vm_snapshot_progress"));
		json_object_object_add(ev, "vm", json_object_new_string(s->vm));
		json_object_object_add(ev, "op", json_object_new_string(s->restore ? "restore" :
									     "save"));
		json_object_object_add(ev, "done_bytes", json_object_new_uint64(
			atomic_load(&s->done_bytes)));
		json_object_object_add(ev, "total_bytes", json_object_new_uint64(s->total_bytes));
		api_emit(api, ev);
	}
}
