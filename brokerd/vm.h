/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Running VMs the broker hot-plugs into. A QMP socket serves one client at a time, so each
 * VM gets one monitor: a worker thread that owns the QMP connection, runs attach jobs
 * (object-add + device_add) and notices the VM exiting (the socket closing). Results come
 * back to the event loop through an eventfd; nothing here blocks the loop. Internal.
 */
#ifndef BROKERD_VM_H
#define BROKERD_VM_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "brokerd.h"

struct vm_monitor;

struct attach_job {
	/* request */
	tagmem_tag tag;
	char vm[65];
	char mem_path[PATH_MAX];
	uint64_t size, file_size;
	bool labelled, devdax, image;
	unsigned slot;
	uint64_t client_serial;      /* who to answer; 0 once the answer is moot */
	struct json_object *req_id;  /* the request's id, echoed in the reply */
	/* result */
	int error;                   /* 0 or -errno */
	char errcode[32];            /* protocol error code */
	char errmsg[256];
	uint64_t qmp_usec;           /* time spent in QMP commands */
	char object[PATH_MAX + 128], device[128];
	struct attach_job *next;
};

/* Queue a job on the VM's monitor (started on first use). -EBUSY: that VM's monitor talks
 * to another QMP socket. The job is owned by the monitor until it comes back. */
int vm_attach(struct broker *b, const char *vm, uid_t uid, const char *qmp_path,
	      struct attach_job *job);
/* Is there a live monitor for this VM? */
bool vm_monitored(struct broker *b, const char *vm, uid_t uid);
void vm_stop_all(struct broker *b);

/* Implemented by ops_vm.c: the loop's side of a finished job and of a VM that exited. */
void vm_job_done(struct broker *b, struct attach_job *job);
void vm_exited(struct broker *b, const char *vm, uid_t uid);

#endif
