/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * VM save and restore with QEMU out of the RAM path: the front door of brokerd/snapshot.
 * A VM whose memory is all tagged capacity (file- or device-backed, share=on) keeps its RAM
 * in things brokerd owns, so QEMU saves only device state (migration with x-ignore-shared)
 * and brokerd writes every backing into the save file itself, at fixed offsets, with
 * parallel O_DIRECT writers that leave the host page cache alone. Restore is the reverse:
 * the bytes back into the backings, then QEMU loads the device state and runs.
 *
 * The file (format.c; docs/save-format.md):
 *   [header, 4 KiB][backing 0][backing 1]…[device state], every part 2 MiB aligned.
 * It is written under a temporary name and renamed into place only once complete and
 * durable: an interrupted save (a full disk, kill -9) leaves the previous one intact.
 *
 * Everything here blocks: it runs on a VM monitor's thread (vm.h), never on the loop.
 */
#ifndef BROKERD_SNAPSHOT_H
#define BROKERD_SNAPSHOT_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tagmem.h"

struct qmp;

#define SNAP_MAGIC "TAGMEMVM"
#define SNAP_VERSION 1
#define SNAP_HEADER_SIZE 4096u
#define SNAP_MAX_ENTRIES 32
#define SNAP_ALIGN (2u << 20)
#define SNAP_REGION_MAX (1ull << 46)  /* one backing: 64 TiB */
#define SNAP_FILE_MAX (1ull << 52)    /* where any region may start */

struct snap_entry {
	tagmem_tag tag;
	uint64_t size;           /* bytes of the tag's data */
	uint64_t file_offset;    /* where they are in the save file */
	uint64_t checksum;       /* snap_checksum over them */
};

struct snap_header {
	char vm[65];
	unsigned nentries;
	struct snap_entry e[SNAP_MAX_ENTRIES];
	uint64_t devstate_offset, devstate_length, devstate_checksum;
	uint64_t created;        /* unix seconds */
};

/* format.c: the header as bytes (SNAP_HEADER_SIZE), and back. Parsing validates everything
 * (magic, version, checksum, counts, alignment, no overlap): -EBADMSG otherwise. */
void snap_header_build(const struct snap_header *h, uint8_t *buf);
int snap_header_parse(const uint8_t *buf, size_t len, struct snap_header *ret);
/* Lay out entries and device state in the file (offsets, 2 MiB aligned); the file's size. */
uint64_t snap_layout(struct snap_header *h);
/* The checksum of a region, from the checksums of its chunks in any order: each chunk's
 * fletcher64 rotated by its index, summed. */
uint64_t snap_chunk_sum(const void *buf, size_t len, uint64_t index);

/* One backing of the VM: the tag, and where its data is on the host. */
struct snap_backing {
	tagmem_tag tag;
	int fd;                  /* the backing file or device, read-write */
	uint64_t data_offset;    /* where the tag's data starts in it */
	uint64_t size;
	char qemu_id[48];        /* its memory-backend id in QEMU (tm-<tag>) */
};

/* How a job on a VM's monitor went: 0 or -errno, the protocol's error code, a message, and
 * the time QEMU took to answer (steps.c). */
struct snap_status {
	int error;
	char errcode[32];
	char errmsg[256];
	uint64_t qemu_usec;
};

/* What a save or restore is asked to do, and how it went (shared with the loop: the
 * progress counters are atomics it may read any time). */
struct snap_job {
	char vm[65];
	char path[PATH_MAX];     /* the save file */
	int dir_fd;              /* its directory (the temporary lives there too) */
	char base[NAME_MAX + 1];
	struct snap_backing b[SNAP_MAX_ENTRIES];
	unsigned nb;
	unsigned threads;        /* parallel O_DIRECT copiers */
	bool resume;             /* save: let the VM run again afterwards */
	bool restore;
	bool recover;            /* only resume a VM an earlier brokerd paused (pause marks) */
	uid_t uid;               /* the VM's owner */
	char qmp[108];           /* the VM's QMP socket, for its pause mark */
	int marks_fd;            /* where pause marks live; -1: none are kept */
	bool resumed;            /* recover: the VM was paused and runs again */
	/* progress and result */
	_Atomic uint64_t done_bytes;
	uint64_t total_bytes;    /* set before the job runs */
	uint64_t usec, devstate_bytes, copy_usec;
	struct snap_status st;
};

/* The whole save or restore, on the monitor thread's QMP connection. 0, or -errno with
 * errcode/errmsg set. */
int snap_save(struct qmp *q, struct snap_job *j);
int snap_restore(struct qmp *q, struct snap_job *j);
/* A VM an earlier brokerd paused for a save and was killed before it let it run: any
 * migration still under way is cancelled, a paused VM continues, its mark goes. */
int snap_recover(struct qmp *q, struct snap_job *j);

/*
 * migrate.c: live migration to another host that maps the same tags. Every RAM and nvdimm
 * backend of the VM is one of its tags, shared, so QEMU sends only the device state
 * (x-ignore-shared on both ends) and the other host's QEMU maps the same bytes under the same
 * object ids. The orchestration (which host, the claims) is the caller's: these are the QMP
 * steps of one end, one step per job, each safe to run again after a brokerd restart.
 */
enum migrate_step {
	MIGRATE_CHECK,    /* source: every memory backend is one of ids[], shared; which is RAM */
	MIGRATE_LISTEN,   /* destination: QEMU waits (-incoming defer) → listen on uri */
	MIGRATE_SEND,     /* source: migrate to uri and wait; already done counts as done */
	MIGRATE_RUN,      /* destination: the device state is loaded → cont */
	MIGRATE_QUIT,     /* source: the VM runs elsewhere → this QEMU quits (never a running one) */
	MIGRATE_RESUME,   /* source: the migration is abandoned → the VM runs here again */
	MIGRATE_DISCARD,  /* destination: abandoned → this QEMU quits (never a running one) */
};

struct migrate_job {
	enum migrate_step step;
	char vm[65];
	char uri[256];
	char ids[SNAP_MAX_ENTRIES][48];  /* check: the backend ids of the VM's tags */
	unsigned nids;
	/* results */
	char ram_id[48];                 /* check: the machine's RAM backend ("" if none) */
	char status[32];                 /* QEMU's migration status at the end */
	uint64_t total_ms, downtime_ms, setup_ms; /* QEMU's own figures */
	uint64_t transferred;            /* bytes QEMU sent */
	_Atomic uint64_t sent;           /* progress: bytes sent so far */
	uint64_t usec;
	struct snap_status st;
};
int migrate_step_run(struct qmp *q, struct migrate_job *j);

/* pausemark.c: a save records a VM it pauses, durably, before it stops it, and removes the
 * record once the VM runs again (or stays stopped on purpose): a brokerd killed in between
 * finds the record at start. One file per VM in dirfd. */
struct snap_pause {
	char vm[65];
	uid_t uid;               /* the VM's owner */
	char qmp[108];           /* its QMP socket */
	pid_t qemu_pid;          /* the QEMU that was paused: recovery resumes no other */
};
int snap_pause_mark(int dirfd, const struct snap_pause *p);
void snap_pause_unmark(int dirfd, const char *vm, uid_t uid);
/* Every valid mark to fn (files that are not marks are removed); the number removed. */
int snap_pause_marks(int dirfd, void (*fn)(void *userdata, const struct snap_pause *p),
		     void *userdata);

/* copy.c: copy regions between files with parallel threads, chunk by chunk. Writes to a
 * file opened O_DIRECT need aligned lengths: regions are 4 KiB multiples. */
struct snap_copy {
	int src, dst;            /* dst -1: read and sum only */
	uint64_t src_off, dst_off, len;
	uint64_t checksum;       /* out: snap_chunk_sum over the region */
};
int snap_copy_run(struct snap_copy *c, size_t n, unsigned threads, _Atomic uint64_t *progress,
		  char *errmsg, size_t errlen);

#endif
