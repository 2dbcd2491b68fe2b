/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Running VMs the broker drives over QMP. A QMP socket serves one client at a time, so each
 * VM gets one monitor: a worker thread that owns the QMP connection, runs the jobs callers
 * bring (a hot plug, a save: blocking work on the thread with the connection) and notices
 * the VM exiting (the socket closing). Finished jobs come back to the event loop through an
 * eventfd, to their own completion; nothing here blocks the loop, and nothing here knows
 * what a job does or who waits for it. The front door of brokerd/vm.
 */
#ifndef BROKERD_VM_H
#define BROKERD_VM_H

#include <stdint.h>
#include <sys/types.h>

#include "mailbox.h"

struct loop;
struct qmp;
struct vms;

struct vm_job {
	/* the work: run(q, job) on the monitor's thread, where blocking is fine (QMP, copies);
	 * returns 0, or fails the job with vm_job_fail */
	int (*run)(struct qmp *q, struct vm_job *job);
	/* whose it is (opaque here): done(job) runs on the loop once the job is finished, or
	 * failed without running (the monitor went away), and owns it from then on */
	void (*done)(struct vm_job *job);
	void *ctx;
	/* result */
	int error;                   /* 0 or -errno */
	char errcode[32];            /* protocol error code */
	char errmsg[256];
	struct vm_job *next;         /* in the monitor's queue */
	struct mailbox_node finished; /* in its mailbox back to the loop */
};

struct vm_callbacks {
	void *userdata;
	/* On the loop: the VM's QMP socket closed, or could never be reached. */
	void (*exited)(void *userdata, const char *vm, uid_t uid);
};

/* Record why a job failed: errno, the protocol's error code, a message. */
void vm_job_fail(struct vm_job *j, int error, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

int vms_new(struct loop *loop, const struct vm_callbacks *cb, struct vms **ret);
/* Stops every monitor; jobs still queued come back failed first. */
void vms_free(struct vms *vms);
/* The QMP path a live monitor of this VM was given, or NULL when there is none. */
const char *vm_monitor_path(struct vms *vms, const char *vm, uid_t uid);
/* Queue a job on the VM's monitor. With no monitor yet, qmp_fd is a socket the caller
 * connected to (and checked the peer of); the new monitor takes it over and never connects
 * by name. With a monitor, qmp_fd is -1 and qmp_path must be the monitor's (-EBUSY). On
 * success the job (and qmp_fd) belong to the monitor until the job comes back; on failure
 * both stay the caller's. */
int vm_submit(struct vms *vms, const char *vm, uid_t uid, const char *qmp_path, int qmp_fd,
	      struct vm_job *job);

#endif
