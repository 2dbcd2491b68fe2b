/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP steps a save, a restore and a migration share (inside brokerd/snapshot only):
 * each records why it failed in the job's snap_status, so a job reads as a list of steps.
 */
#ifndef BROKERD_SNAPSHOT_STEPS_H
#define BROKERD_SNAPSHOT_STEPS_H

#include <stdbool.h>

struct json_object;
struct qmp;
struct snap_status;

#define STEP_QMP_MS 10000

/* Record why the job failed; returns err. */
int step_fail(struct snap_status *st, int err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* One QMP command (args taken; fd passed with it unless -1); a failure is recorded. */
int step_qmp(struct snap_status *st, struct qmp *q, const char *cmd, struct json_object *args,
	     int fd, struct json_object **ret);
/* Leave shared RAM out of the migration stream (both ends must say so). */
int step_ignore_shared(struct snap_status *st, struct qmp *q);
/* QEMU's run state: running or not, and its status word ("postmigrate", "inmigrate", …). */
int step_status(struct snap_status *st, struct qmp *q, bool *ret_running, char *status,
		size_t len);
/* An incoming QEMU loads the device state: wait (polling query-status) until it no longer
 * says "inmigrate", and tell its state then. -ETIMEDOUT after timeout_ms (the caller says
 * what that means for its job). */
int step_wait_loaded(struct snap_status *st, struct qmp *q, unsigned timeout_ms,
		     bool *ret_running, char *status, size_t len);

#endif
