/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The data plane of fake-DAX images: the host page cache is the guest's memory, so the
 * broker makes it durable on request (flush), keeps it bounded (dirty and resident budgets)
 * and gives it back under pressure (eviction). Internal to brokerd; front door of
 * pagecache.c (kernel mechanisms, no broker state), image_io.c (an image's I/O state: its
 * files, budgets, holds, counters, lost writes), dataplane.c (the worker pool, the per-image
 * request queues and the work) and evict.c (how an image is shrunk).
 *
 * Threads: every page-cache syscall runs on the pool's workers, never on the event loop.
 * Requests go in from the loop, results come back through an eventfd (dataplane_fd()).
 */
#ifndef BROKERD_DATAPLANE_H
#define BROKERD_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mailbox.h"

/* ---- page-cache mechanisms (pagecache.c) ---------------------------------------------- */

struct pc_counts { /* bytes */
	uint64_t cached, dirty, writeback, evicted;
};

/* cachestat(2) over [off, off+len); len 0 means to the end of the file. */
int pc_cachestat(int fd, uint64_t off, uint64_t len, struct pc_counts *ret);
/* Write the dirty pages of a range and wait for them (sync_file_range, all three flags):
 * the bytes reached the device, which may still cache them. Reports writeback errors. */
int pc_write_range(int fd, uint64_t off, uint64_t len);
/* Start writeback of a range without waiting (background budget keeping). */
int pc_start_writeback(int fd, uint64_t off, uint64_t len);
/* Drop clean, unmapped cached pages of a range (POSIX_FADV_DONTNEED). */
int pc_drop(int fd, uint64_t off, uint64_t len);

/*
 * The durability point after range writes without fdatasync of the whole file (which would
 * write every other dirty page too). On filesystems whose journal commits in order (ext4
 * with a journal, XFS), forcing a commit through a small barrier file commits every metadata
 * change made before it, including the block allocations of the ranges just written, and
 * flushes the device cache. Other filesystems (journal-less ext4 too) get fdatasync of the
 * image.
 */
bool pc_fs_commits_in_order(int fd);
/* Is fd's file on a filesystem whose pages are the file itself (tmpfs, ramfs)? Nothing there
 * is written back: no flush makes it durable, no eviction can drop it. */
bool pc_fs_in_memory(int fd);
/* ext2/3/4 without a journal: after a power cut e2fsck repairs it, and may drop files whose
 * every write was made durable (tests/guest/test-crash-consistency.sh, CRASH_FS=ext4-nojournal) */
bool pc_fs_ext4_without_journal(int fd);
int pc_barrier_open(int dirfd);
int pc_barrier(int barrier_fd);

/* A process's mapping of a file, from /proc/PID/maps. */
struct pc_mapping {
	pid_t pid;
	uint64_t start, end;  /* virtual addresses */
	uint64_t file_off;    /* file offset mapped at start */
};
/* Every mapping of the file (dev, ino) by any process under proc_root ("/proc"). */
int pc_find_mappings(const char *proc_root, dev_t dev, ino_t ino, struct pc_mapping **ret,
		     size_t *ret_count);
/* Parse one /proc/PID/maps line; false if it is not a file mapping of (dev, ino). */
bool pc_parse_maps_line(const char *line, dev_t dev, ino_t ino, struct pc_mapping *ret);
/* process_madvise(MADV_PAGEOUT) on the part of the mapping that shows file bytes
 * [off, off+len). Clean pages only: write back first. */
int pc_pageout(const struct pc_mapping *m, uint64_t off, uint64_t len);

/* ---- images' I/O state and the worker pool (dataplane.c) ------------------------------- */

struct image_io;
struct dataplane;

enum dp_kind {
	DP_FLUSH,      /* make [off, off+len) durable; coalesced per image */
	DP_EVICT,      /* write back, then drop cached pages down to target bytes */
	DP_INVALIDATE, /* drop every cached page; refuse if any is dirty or mapped */
	DP_STAT,       /* read the counters */
	DP_MAINTAIN,   /* keep the budgets (background) */
	DP_CALL,       /* call(fd, call_arg) on the image's file, in turn with its other work:
			  a caller's blocking write that belongs to the image (its label) */
};

/* A byte range of an image file. */
struct dp_range {
	uint64_t off, len;
};
#define DP_PREFER_MAX 1024 /* ranges one eviction takes from a guest */

struct dp_request {
	/* request, set by the loop */
	enum dp_kind kind;
	uint64_t off, len;           /* byte range of the image file (DP_FLUSH) */
	uint64_t target;             /* DP_EVICT: resident bytes to shrink to */
	double fraction;             /* DP_EVICT: if > 0, shrink to this share of what is
					resident when the worker starts (the loop's counts may be
					old); target then only caps it */
	struct dp_range *prefer;     /* DP_EVICT: ranges to evict first (owned), file offsets */
	size_t nprefer;
	bool keep_resident;          /* DP_MAINTAIN: leave the resident budget to the loop, which
					asks the image's guest first (api/reclaim.c) */
	int (*call)(int fd, void *arg); /* DP_CALL: 0 or -errno (the request's error) */
	void *call_arg;
	struct image_io *io;         /* referenced */
	/* whose it is (opaque here): done(rq) runs on the loop once it is finished
	 * (dataplane_complete) and owns it from then on; drop(ctx), if set, when the request is
	 * freed (dp_request_free), finished or not */
	void (*done)(struct dp_request *rq);
	void (*drop)(void *ctx);
	void *ctx;
	/* result, set by the worker */
	int error;                   /* 0 or -errno */
	char errmsg[512];
	uint64_t batch;              /* the writeback that served this flush */
	unsigned batch_size;         /* how many flushes it served */
	bool whole_file;             /* the durability point was fdatasync of the image */
	uint64_t written;            /* bytes that were dirty in the flushed ranges before */
	uint64_t usec;               /* queue + work time */
	uint64_t queued_usec;
	struct pc_counts before, after;
	struct dp_request *next;     /* in the image's queue, then in the list handed back */
	struct mailbox_node finished; /* in the pool's mailbox to the loop */
};

struct image_budgets {
	uint64_t dirty;    /* background writeback keeps dirty bytes at most this; 0: off */
	uint64_t resident; /* cached bytes kept at most this; 0: no limit */
};

/* An image's file for I/O: file_fd is the image the caller opened and checked, dir_fd the
 * directory that holds it (for the durability barrier); neither is taken over. Regular and at
 * least data_size long, or -EMEDIUMTYPE. */
int image_io_open(int file_fd, int dir_fd, uint64_t data_size, struct image_io **ret);
/* The image's file (read-write), for positional reads and writes of its label. */
int image_io_fd(const struct image_io *io);
/* On tmpfs (pc_fs_in_memory): flush, evict and invalidate are refused with what that means,
 * the budgets do nothing. */
bool image_io_in_memory(const struct image_io *io);
struct image_io *image_io_ref(struct image_io *io);
void image_io_unref(struct image_io *io);
dev_t image_io_dev(const struct image_io *io);
ino_t image_io_ino(const struct image_io *io);
/* Has the file been unlinked underneath us? */
bool image_io_deleted(const struct image_io *io);
void image_io_set_budgets(struct image_io *io, const struct image_budgets *bu);
/* Hold off the budgets' background writeback and eviction of the image (nested holds
 * count), while something rewrites it whole (a VM restore); flushes are unaffected. A
 * writeback pass that is under way stops before its next step. */
void image_io_hold_writeback(struct image_io *io, bool hold);
/* Background writeback steps the budgets have started on the image since it was opened:
 * taken when a hold begins and again before it ends, the difference is what brokerd wrote
 * back while the hold was in force (0 unless the hold is broken). */
uint64_t image_io_writeback_steps(struct image_io *io);
struct image_budgets image_io_budgets(struct image_io *io);
/* Newest counters a worker read (by DP_MAINTAIN or any other request). */
struct pc_counts image_io_last_counts(struct image_io *io);
/* Writebacks started for flushes of this image (each may serve many requests). */
uint64_t image_io_batches(struct image_io *io);
/* Batches that met an error (writeback, eviction, budgets), with the last one's message
 * ("" if none): the kernel reports each writeback error once, the image keeps a record. */
uint64_t image_io_errors(struct image_io *io, char *last, size_t len);
/* Writes the image lost: the realtime second of the first writeback error since the last
 * clear (0: none) and what failed. From then on every flush of the image fails, since the
 * kernel reports each error only once. Set by the workers; restored and cleared by the loop
 * (since 0). */
int64_t image_io_lost(struct image_io *io, char *error, size_t len);
void image_io_set_lost(struct image_io *io, int64_t since, const char *error);

int dataplane_start(unsigned workers, const char *proc_root, struct dataplane **ret);
void dataplane_stop(struct dataplane *dp);
int dataplane_fd(struct dataplane *dp);
/* Queue a request (ownership taken). Flushes of one image that arrive before its writeback
 * starts are served by that one writeback. */
void dataplane_submit(struct dataplane *dp, struct dp_request *rq);
/* On the loop, when dataplane_fd() is readable: each finished request, oldest first, goes
 * to its done() (or is freed when it has none). */
void dataplane_complete(struct dataplane *dp);
struct dp_request *dp_request_new(enum dp_kind kind, struct image_io *io);
void dp_request_free(struct dp_request *rq);
/* Is a DP_MAINTAIN of this image queued or running? (one at a time is plenty) */
bool dataplane_maintaining(struct image_io *io);

/* ---- eviction (evict.c), run by workers ------------------------------------------------- */

/* What one eviction did. On failure, what failed; writeback_failed: it was writing dirty
 * pages back, so the kernel has dropped those writes (the image lost them). */
struct evict_result {
	struct pc_counts before, after;
	bool writeback_failed;
	char errmsg[256];
};

/* Write back, then drop clean pages (unmapped ones with fadvise, mapped ones with
 * process_madvise on each mapping) until at most target bytes stay cached: the preferred
 * ranges first (file offsets, in order), then from the start of the file. */
int evict_image(int fd, dev_t dev, ino_t ino, const char *proc_root, uint64_t target,
		const struct dp_range *prefer, size_t nprefer, struct evict_result *ret);

#endif
