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
#define SNAP_CHUNK (8ull << 20)         /* the unit of copies, and of region checksums */

/* v rounded up to whole 4 KiB pages: the unit of O_DIRECT and of an increment's parts. */
static inline uint64_t snap_page_up(uint64_t v)
{
	return (v + 4095) & ~4095ull;
}

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
/* The checksum of a region in memory: its SNAP_CHUNK chunks summed as snap_copy_run does. */
uint64_t snap_region_sum(const void *buf, uint64_t len);

/* One backing of the VM: the tag, and where its data is on the host. */
struct snap_backing {
	tagmem_tag tag;
	int fd;                  /* the backing file or device, read-write */
	uint64_t data_offset;    /* where the tag's data starts in it */
	uint64_t size;
	char qemu_id[48];        /* its memory-backend id in QEMU (tm-<tag>) */
	uint8_t *map;            /* [data_offset, +size) mapped shared, for a device DAX backing
				  * (no read or write): copies go through it; NULL otherwise */
};

/* How a job on a VM's monitor went: 0 or -errno, the protocol's error code, a message, and
 * the time QEMU took to answer (steps.c). */
struct snap_status {
	int error;
	char errcode[32];
	char errmsg[256];
	uint64_t qemu_usec;
};

/* Where a VM's checkpoints stand: the last one's header checksum, its place in the chain
 * (0: the base), and what it was of (the QEMU process, the backings); valid is false when
 * there is no chain to go on (none yet, or one broken: the next checkpoint is a base). */
struct snap_chain {
	bool valid;
	pid_t qemu_pid;
	uint64_t digest, sequence;
	unsigned nb;
	tagmem_tag tag[SNAP_MAX_ENTRIES];
	uint64_t size[SNAP_MAX_ENTRIES];
};

/* How a checkpoint went, step by step. */
struct snap_checkpoint_stats {
	bool increment;          /* false: a full save (a base) */
	const char *why_full;    /* why a base was written ("" when asked for one) */
	uint64_t dirty_bytes;    /* pages found dirty (zero pages included) */
	uint64_t zero_bytes;     /* of which zero: in the table, not in the data */
	uint64_t file_bytes;     /* the increment's size */
	uint64_t ranges;
	uint64_t harvest_usec;   /* soft-dirty bits read and cleared (VM paused) */
	uint64_t capture_usec;   /* the dirty pages copied into memory (VM paused) */
	uint64_t devstate_usec;  /* QEMU's device state (VM paused) */
	uint64_t paused_usec;
	uint64_t write_usec;     /* the file written and made durable (VM running) */
};

#define SNAP_MAX_INCREMENTS 64

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
	bool stay_paused;        /* restore: leave the loaded VM paused (QEMU started with -S) */
	bool recover;            /* only resume a VM an earlier brokerd paused (pause marks) */
	uid_t uid;               /* the VM's owner */
	char qmp[108];           /* the VM's QMP socket, for its pause mark */
	int marks_fd;            /* where pause marks live; -1: none are kept */
	bool resumed;            /* recover: the VM was paused and runs again */
	/* checkpoint: the chain the VM's last checkpoint left (in), and where this one leaves
	 * it (out); increments: the files after the base a restore applies, in order */
	bool checkpoint;
	bool full;               /* checkpoint: a new base even when a chain goes on */
	struct snap_chain chain;
	struct snap_checkpoint_stats cp;
	char incs[SNAP_MAX_INCREMENTS][NAME_MAX + 1]; /* names in dir_fd */
	unsigned nincs;
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
/* A VM an earlier brokerd paused for a save and was killed before it let it run: a
 * migration still under way is let finish (cancelled only if it does not), a paused VM
 * continues, its mark goes. */
int snap_recover(struct qmp *q, struct snap_job *j);
/* checkpoint.c: a base (a full save) when j->chain cannot go on or j->full, else an
 * increment of the pages QEMU wrote since j->chain's last; j->chain says where it stands
 * after (invalid when this one failed after the bits were cleared). -EOPNOTSUPP when this
 * kernel has no soft-dirty: nothing written, the VM as it was. */
int snap_checkpoint(struct qmp *q, struct snap_job *j);

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

/*
 * Checkpoints (checkpoint.c): the first is a full save (the format above) taken with the
 * kernel's soft-dirty bits of QEMU cleared while the VM is stopped; each next is an
 * increment of the pages QEMU wrote since the one before, which names its parent by the
 * parent header's checksum. Restore takes a base and its increments in order.
 *
 * An increment (increment.c; docs/save-format.md), every part 4 KiB aligned:
 *   [header, 4 KiB][range table][page data][device state]
 */
#define SNAP_INC_MAGIC "TAGMEMVI"
#define SNAP_INC_VERSION 1
#define SNAP_INC_RANGES_MAX (1u << 22)   /* 64 MiB of table: 16 GiB of scattered pages */
#define SNAP_RANGE_BYTES 24u
#define SNAP_RANGE_ZERO 1u               /* the pages are zero: no data in the file */

struct snap_range {
	uint32_t entry;          /* which backing (index into the header's entries) */
	uint32_t flags;          /* SNAP_RANGE_ZERO */
	uint64_t offset;         /* in the backing, 4 KiB aligned */
	uint64_t pages;          /* 4 KiB pages, at least one */
};

struct snap_inc_header {
	char vm[65];
	unsigned nentries;
	tagmem_tag tag[SNAP_MAX_ENTRIES];
	uint64_t size[SNAP_MAX_ENTRIES];  /* the backings', as in the base */
	uint64_t sequence;       /* 1 for the first increment after the base */
	uint64_t parent;         /* the parent header's checksum (snap_header_digest) */
	uint64_t created;
	uint64_t nranges, ranges_offset, ranges_checksum;
	uint64_t data_offset, data_length, data_checksum;
	uint64_t devstate_offset, devstate_length, devstate_checksum;
};

/* A header's envelope, shared by saves and increments: magic, version, size, flags, and the
 * fletcher64 at its end. */
bool snap_header_envelope_ok(const uint8_t *buf, size_t len, const char *magic,
			     uint32_t version);
/* The checksum stored at the end of a header (base or increment): what children name. */
uint64_t snap_header_digest(const uint8_t *buf);
/* Lay out an increment of nranges ranges and data_length bytes of pages; the file's size. */
uint64_t snap_inc_layout(struct snap_inc_header *h);
void snap_inc_header_build(const struct snap_inc_header *h, uint8_t *buf);
int snap_inc_header_parse(const uint8_t *buf, size_t len, struct snap_inc_header *ret);
/* The range table as bytes (SNAP_RANGE_BYTES per range; len must hold them), and back: every range must
 * name an entry, stay inside its backing, and follow the one before it in order without
 * overlap; the data length they need (non-zero ranges) is returned in *ret_data. */
void snap_ranges_build(const struct snap_range *r, uint64_t n, uint8_t *buf);
int snap_ranges_parse(const uint8_t *buf, uint64_t n, const struct snap_inc_header *h,
		      struct snap_range *ret, uint64_t *ret_data);

/* dirty.c: the soft-dirty bits of a process (QEMU) over the mappings of one backing. */
struct dirty_proc {
	pid_t pid;
	int procfd;              /* /proc/PID, O_PATH */
	int pagemap;
};
/* 0 if this kernel tracks writes with soft-dirty (a test on a page of brokerd's own),
 * -EOPNOTSUPP if it does not (built without CONFIG_MEM_SOFT_DIRTY). */
int dirty_probe(void);
int dirty_open(pid_t pid, struct dirty_proc *p);
void dirty_close(struct dirty_proc *p);
/* Clear every soft-dirty bit of the process: what it writes from now on is tracked. */
int dirty_clear(struct dirty_proc *p);
/* Set the bit of every page of [rstart, rstart + rlen) of the file (dev, ino) the process
 * may have written since the last clear: soft-dirty, or not mapped, or not present (unless
 * absent_clean: device DAX). dirty has a bit per 4 KiB page (page i: bit i % 64 of word
 * i / 64); *ret_mapped: bytes mapped. */
int dirty_harvest(struct dirty_proc *p, dev_t dev, ino_t ino, uint64_t rstart, uint64_t rlen,
		  bool absent_clean, uint64_t *dirty, uint64_t *ret_mapped);

/* copy.c: copy regions between files with parallel threads, chunk by chunk. Writes to a
 * file opened O_DIRECT need aligned lengths: regions are 4 KiB multiples. */
struct snap_copy {
	int src, dst;            /* dst -1: read and sum only */
	uint8_t *src_map, *dst_map; /* set: a mapping of src or dst at offset 0, used instead */
	uint64_t src_off, dst_off, len;
	uint64_t checksum;       /* out: snap_chunk_sum over the region */
};
int snap_copy_run(struct snap_copy *c, size_t n, unsigned threads, _Atomic uint64_t *progress,
		  char *errmsg, size_t errlen);
/* All of buf at off in fd (pwrite until done; EINTR retried). 0 or -errno. */
int snap_pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off);
/* len bytes at off in the backing's data (through its map when it has one). */
int snap_backing_write(const struct snap_backing *b, const void *buf, uint64_t len, uint64_t off);
/* Map a device DAX backing (b->map); nothing for one read and write reach. 0 or -errno. */
int snap_backing_map(struct snap_backing *b);
void snap_backing_unmap(struct snap_backing *b);

#endif
