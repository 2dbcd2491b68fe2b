/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP steps a save, a restore and a migration share (inside brokerd/snapshot only):
 * each records why it failed in the job's snap_status, so a job reads as a list of steps.
 */
#ifndef BROKERD_SNAPSHOT_STEPS_H
#define BROKERD_SNAPSHOT_STEPS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "snapshot.h"

struct json_object;
struct qmp;
struct snap_status;
struct snap_job;
struct stat;

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

/* save.c's steps, which a checkpoint takes too. */
/* Stop the VM if it runs (recording the pause first, so a killed brokerd resumes it). */
int save_pause(struct snap_job *j, struct qmp *q, bool *ret_was_running);
/* Let a VM save_pause stopped run again if the job resumes or failed; its mark goes. */
void save_resume(struct snap_job *j, struct qmp *q, bool was_running, bool failed);
/* Every RAM and nvdimm backend must be one of the VM's tags, shared; keeps those QEMU has. */
int save_check_memory(struct snap_job *j, struct qmp *q);
/* The device state through a descriptor: "migrate" into it, or "migrate-incoming" from it. */
int save_device_state(struct snap_job *j, struct qmp *q, int fd, const char *command);
int save_wait_migration(struct snap_job *j, struct qmp *q);
/* Temporaries an earlier brokerd left next to the file. */
void save_remove_stale(struct snap_job *j);
/* A new temporary next to the file (its name in tmp), O_DIRECT; or -errno, the job failed. */
int save_temp_file(struct snap_job *j, char tmp[NAME_MAX + 1]);
/* A nameless file in the same directory for QEMU's device state; or -errno. */
int save_devstate_file(struct snap_job *j);
/* The header at 0, then durable, then the temporary renamed over the file. */
int save_commit(struct snap_job *j, int fd, const char *tmp, const uint8_t *hdr);

/* A save file (name in j->dir_fd; shown in messages) fit to restore from: a regular file
 * only root or brokerd can write, opened O_DIRECT. */
int save_open_file(struct snap_job *j, const char *name, const char *shown, int *ret_fd,
		   struct stat *ret_st);
/* The inode behind fd opened anew with flags, refused (-ESTALE) unless it is still want. */
int save_reopen_checked(int fd, int flags, const struct stat *want);

/* chain.c: a restore's increments, each checked whole (header, chain, table, sums) before
 * anything is written, then applied in order once the base is in. */
struct chain_link {
	int fd;
	struct stat st;
	struct snap_inc_header h;
	int entry_backing[SNAP_MAX_ENTRIES]; /* the job's backing of each of its entries */
};
int chain_check(struct snap_job *j, uint64_t base_digest, struct chain_link *links);
int chain_apply(struct snap_job *j, struct chain_link *links);
void chain_close(struct snap_job *j, struct chain_link *links);

/* checkpoint.c's part in a full save that starts a chain: clear QEMU's soft-dirty bits
 * (the VM is stopped), then, once the base is complete, record it as the chain's start. */
int checkpoint_start(struct snap_job *j, struct qmp *q);
void checkpoint_based(struct snap_job *j, uint64_t digest);

#endif
