/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The worker pool behind flush, evict, invalidate and the budgets (see dataplane.h).
 *
 * Each image has a queue of pending requests. An image is on the pool's run queue at most
 * once and is served by one worker at a time; the worker takes *everything* pending at the
 * moment it starts, so every flush that arrived before a writeback began is served by that
 * writeback (coalescing), and requests arriving during it form the next batch. Different
 * images are served in parallel.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dataplane.h"
#include "image_io.h"
#include "list.h"
#include "util.h"

#define MAX_WORKERS 16

struct dataplane {
	pthread_t threads[MAX_WORKERS];
	unsigned nthreads;
	char proc_root[64];
	struct mailbox done;         /* finished requests, to the loop */
	pthread_mutex_t lock;        /* guards the run queue and stop */
	pthread_cond_t cond;
	struct image_io *runq, *runq_tail;
	bool stop;
};

/* The kernel reports a writeback error once; the image keeps the record, one per batch. A
 * deleted file, an invalidate refused while pages are in use, or a request that cannot apply
 * on tmpfs is no error of the image. */
static void note_errors(struct image_io *io, const struct dp_request *list)
{
	for (const struct dp_request *rq = list; rq; rq = rq->next) {
		if (rq->error >= 0 || rq->error == -ENOENT || rq->error == -EBUSY ||
		    rq->error == -EAGAIN || rq->error == -EOPNOTSUPP)
			continue;
		pthread_mutex_lock(&io->lock);
		io->errors++;
		snprintf(io->last_error, sizeof(io->last_error), "%s", rq->errmsg);
		pthread_mutex_unlock(&io->lock);
		return;
	}
}

bool dataplane_maintaining(struct image_io *io)
{
	bool m;

	pthread_mutex_lock(&io->lock);
	m = io->maintaining;
	pthread_mutex_unlock(&io->lock);
	return m;
}

struct dp_request *dp_request_new(enum dp_kind kind, struct image_io *io)
{
	struct dp_request *rq = calloc(1, sizeof(*rq));

	if (!rq)
		return NULL;
	rq->kind = kind;
	rq->io = image_io_ref(io);
	rq->queued_usec = now_usec();
	return rq;
}

void dp_request_free(struct dp_request *rq)
{
	if (!rq)
		return;
	if (rq->drop)
		rq->drop(rq->ctx);
	free(rq->prefer);
	image_io_unref(rq->io);
	free(rq);
}

static void fail(struct dp_request *rq, int error, const char *what)
{
	rq->error = error;
	snprintf(rq->errmsg, sizeof(rq->errmsg), "%s: %s", what, strerror(-error));
}

/* A flush after writes were lost fails, saying when and what to do. */
static void lost_message(struct dp_request *rq, int64_t since, const char *what)
{
	struct tm tm;
	char when[32] = "?";

	if (gmtime_r(&(time_t){ (time_t)since }, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(rq->errmsg, sizeof(rq->errmsg), "writes to this image were lost at %s (%s), "
		 "so no flush can vouch for its data. Check the storage, restore or rewrite the "
		 "data, then clear the image's error ('tagmem image clear-error' of its tag)", when,
		 what);
}

/* ---- the work ---------------------------------------------------------------------------- */

static int cmp_range(const void *a, const void *b)
{
	const struct dp_request *x = *(struct dp_request *const *)a;
	const struct dp_request *y = *(struct dp_request *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* One writeback for every flush in the batch: the union of their ranges, then one
 * durability point. Everyone in the batch gets the same outcome. */
static void run_flushes(struct image_io *io, struct dp_request **fl, unsigned n)
{
	uint64_t batch, written = 0;
	bool whole = false, ranges_durable = io->barrier_fd >= 0;
	int64_t lost = 0;
	char msg[192];
	int r = 0;

	pthread_mutex_lock(&io->lock);
	batch = ++io->batches;
	pthread_mutex_unlock(&io->lock);

	for (unsigned i = 0; i < n; i++)
		if (fl[i]->off == 0 && fl[i]->len >= io->data_size)
			whole = true;
	if (image_io_deleted(io)) {
		r = -ENOENT;
	} else if (whole) {
		/* written stays 0: counting the dirty pages of a whole image costs ~10 ns per
		 * cached page, more than a small flush itself */
		if (fdatasync(io->fd) < 0)
			r = -errno;
	} else {
		qsort(fl, n, sizeof(*fl), cmp_range);
		for (unsigned i = 0; i < n && r == 0;) {
			uint64_t lo = fl[i]->off, hi = fl[i]->off + fl[i]->len;
			struct pc_counts c;

			/* merge overlapping and touching ranges into one write */
			for (i++; i < n && fl[i]->off <= hi; i++)
				hi = MAX(hi, fl[i]->off + fl[i]->len);
			if (pc_cachestat(io->fd, lo, hi - lo, &c) == 0)
				written += c.dirty + c.writeback;
			if (ranges_durable)
				r = pc_write_range(io->fd, lo, hi - lo);
		}
		/* where no barrier can make written ranges durable, the image is made durable
		 * whole; what the ranges held is still what the callers asked about */
		if (r == 0)
			r = ranges_durable ? pc_barrier(io->barrier_fd) :
			     fdatasync(io->fd) < 0 ? -errno : 0;
		whole = !ranges_durable;
	}
	if (r != -ENOENT) {
		/* A writeback before this one failed: whether this one went well or failed
		 * anew, nothing since then can be vouched for, and the kernel will not say so
		 * again. The first loss is what the operator has to act on. */
		pthread_mutex_lock(&io->lock);
		if (io->lost_since) {
			r = r < 0 ? r : -EIO;
			lost = io->lost_since;
			snprintf(msg, sizeof(msg), "%s", io->lost_error);
		}
		pthread_mutex_unlock(&io->lock);
	}
	if (r < 0 && r != -ENOENT && !lost) {
		snprintf(msg, sizeof(msg), "writeback failed: %s", strerror(-r));
		lose_writes(io, msg);
	}
	for (unsigned i = 0; i < n; i++) {
		struct dp_request *rq = fl[i];

		rq->batch = batch;
		rq->batch_size = n;
		rq->whole_file = whole;
		rq->written = written;
		if (r == -ENOENT)
			snprintf(rq->errmsg, sizeof(rq->errmsg),
				 "the image file was deleted: nothing left to make durable");
		else if (lost)
			lost_message(rq, lost, msg);
		else if (r < 0)
			fail(rq, r, "writeback failed; the flushed data may not be on disk");
		rq->error = r;
	}
}

static void set_last(struct image_io *io, const struct pc_counts *c)
{
	pthread_mutex_lock(&io->lock);
	io->last = *c;
	pthread_mutex_unlock(&io->lock);
}

static void run_invalidate(struct dataplane *dp, struct image_io *io, struct dp_request *rq)
{
	struct pc_mapping *maps = NULL;
	size_t nmaps = 0;
	int r;

	r = pc_cachestat(io->fd, 0, 0, &rq->before);
	if (r < 0)
		return fail(rq, r, "cachestat");
	if (rq->before.dirty || rq->before.writeback) {
		rq->error = -EBUSY;
		snprintf(rq->errmsg, sizeof(rq->errmsg), "%llu bytes are dirty or under writeback: "
			 "flush the image first", (unsigned long long)(rq->before.dirty +
								  rq->before.writeback));
		return;
	}
	r = pc_find_mappings(dp->proc_root, io->dev, io->ino, &maps, &nmaps);
	if (r == 0 && nmaps) {
		rq->error = -EBUSY;
		snprintf(rq->errmsg, sizeof(rq->errmsg), "process %d maps the image: a running VM "
			 "would keep reading its own cache; stop it first", maps[0].pid);
		free(maps);
		return;
	}
	free(maps);
	r = pc_drop(io->fd, 0, 0);
	if (r == 0)
		r = pc_cachestat(io->fd, 0, 0, &rq->after);
	if (r < 0)
		return fail(rq, r, "dropping the cache");
	set_last(io, &rq->after);
	if (rq->after.cached) {
		rq->error = -EAGAIN;
		snprintf(rq->errmsg, sizeof(rq->errmsg), "%llu bytes stayed cached (written or "
			 "read meanwhile); try again", (unsigned long long)rq->after.cached);
	}
}


/*
 * Budgets, each upkeep tick. Whether the image was written since the last tick is cheap to
 * know: a write through a mapping or write() moves the file's mtime. Only then, and once
 * every MAINTAIN_SAMPLE_TICKS ticks regardless, are the pages counted (cachestat); counting
 * costs in proportion to the cached folios — well under a millisecond for a resident 4 GiB
 * image on a filesystem with large folios, up to ~10 ns a page without them — so where it
 * is dear it is done no more often than keeps it under 1/COUNT_DUTY of the worker's time,
 * and a written image whose pages were not counted has its writeback started anyway: dirty
 * data then stays within about one tick of writes, at the cost of writing more often.
 *
 * Writeback starts once half the dirty budget is dirty, so that one more tick of writes
 * still fits in it; below that, pages a guest rewrites are written once, not every tick.
 */
#define MAINTAIN_SAMPLE_TICKS 10
#define COUNT_DUTY 50
#define WRITEBACK_STEP (64ull << 20)
#define WRITEBACK_STEPS_MAX 64

static int count_pages(struct image_io *io, struct pc_counts *ret)
{
	uint64_t t0 = now_usec();
	int r = pc_cachestat(io->fd, 0, 0, ret);

	io->count_usec = now_usec() - t0;
	io->counted_at_usec = t0;
	return r;
}

static bool counting_is_cheap(const struct image_io *io)
{
	return now_usec() - io->counted_at_usec >= COUNT_DUTY * io->count_usec;
}

/* Has a request (a flush, most likely) queued for this image while background work ran?
 * Background work then stops early: the request is served next, the rest waits a tick. */
static bool requests_waiting(struct image_io *io)
{
	bool waiting;

	pthread_mutex_lock(&io->lock);
	waiting = io->pending != NULL;
	pthread_mutex_unlock(&io->lock);
	return waiting;
}

/* Start writeback of the whole image, a step at a time: sync_file_range(WRITE) blocks once
 * the device's queue is full, and a flush of this image that arrives meanwhile should wait
 * for one step, not for all of it. What is left is started by a later tick, from where this
 * one stopped. Steps are 64 MiB, or larger for images so big that a pass would otherwise
 * take more than WRITEBACK_STEPS_MAX calls (each costs a few µs even over clean pages). */
static void start_writeback(struct image_io *io)
{
	uint64_t step = MAX(WRITEBACK_STEP, io->data_size / WRITEBACK_STEPS_MAX);

	for (uint64_t done = 0; done < io->data_size; done += step) {
		if (io->wb_cursor >= io->data_size)
			io->wb_cursor = 0;
		if (!writeback_step_begins(io)) /* a restore began rewriting it meanwhile */
			break;
		pc_start_writeback(io->fd, io->wb_cursor, MIN(step, io->data_size - io->wb_cursor));
		io->wb_cursor += step;
		if (requests_waiting(io))
			break;
	}
	io->wb_started = true;
}

static void run_maintain(struct dataplane *dp, struct image_io *io, struct dp_request *rq)
{
	struct image_budgets bu = image_io_budgets(io);
	bool written = false, periodic;
	struct stat st;
	int r;

	if (fstat(io->fd, &st) == 0) {
		written = st.st_mtim.tv_sec != io->seen_mtime.tv_sec ||
			  st.st_mtim.tv_nsec != io->seen_mtime.tv_nsec;
		io->seen_mtime = st.st_mtim;
	}
	/* what background writeback wrote since the last tick is on the device, maybe only
	 * in its volatile cache: a barrier now makes it durable, so the barrier of the next
	 * flush has only a tick's worth to wait for instead of everything since its last. */
	if (io->wb_started && io->barrier_fd >= 0 && !requests_waiting(io)) {
		pc_barrier(io->barrier_fd);
		io->wb_started = false;
	}
	periodic = io->ticks++ % MAINTAIN_SAMPLE_TICKS == 0;
	if (writeback_held(io) || io->in_memory) /* being rewritten whole, or memory itself */
		bu = (struct image_budgets){ 0 };
	if (!periodic && !(written && (bu.dirty || bu.resident)))
		return;
	if (!periodic && !counting_is_cheap(io)) {
		if (written && bu.dirty)
			start_writeback(io);
		return;
	}
	r = count_pages(io, &rq->before);
	if (r < 0)
		return fail(rq, r, "cachestat");
	rq->after = rq->before;
	if (bu.dirty && rq->before.dirty > bu.dirty / 2)
		start_writeback(io);
	if (bu.resident && rq->before.cached > bu.resident && !rq->keep_resident) {
		struct evict_result ev;

		r = evict_image(io->evict_fd, io->dev, io->ino, dp->proc_root, bu.resident, NULL, 0,
				&ev);
		rq->after = ev.after;
		if (r < 0) {
			rq->error = r;
			snprintf(rq->errmsg, sizeof(rq->errmsg), "%s", ev.errmsg);
		}
		if (ev.writeback_failed)
			lose_writes(io, ev.errmsg);
	}
	set_last(io, &rq->after);
}

/* An image on tmpfs: its pages are the file, with no disk behind them. What that means for
 * each request, said plainly and at once (true: answered, nothing else to do). */
static bool refuse_in_memory(struct dp_request *rq)
{
	const char *why;

	switch (rq->kind) {
	case DP_FLUSH:
		why = "the image is on tmpfs, which is memory: no flush makes it durable, and it "
		      "does not survive a reboot (keep images that must on a disk filesystem, "
		      "ext4 or XFS)";
		break;
	case DP_EVICT:
		why = "the image is on tmpfs, which is memory: its pages are the data itself and "
		      "cannot be written back and dropped; nothing was evicted";
		break;
	case DP_INVALIDATE:
		why = "the image is on tmpfs, which is memory: its cached pages are the only copy, "
		      "there is no disk copy to read afresh, so there is nothing to invalidate";
		break;
	default:
		return false;
	}
	rq->error = -EOPNOTSUPP;
	snprintf(rq->errmsg, sizeof(rq->errmsg), "%s", why);
	if (pc_cachestat(rq->io->fd, 0, 0, &rq->before) == 0)
		rq->after = rq->before;
	return true;
}

static void run_batch(struct dataplane *dp, struct image_io *io, struct dp_request *list)
{
	struct dp_request *fl[64], *rq, *prefer = NULL;
	unsigned nfl = 0;
	uint64_t target = UINT64_MAX;
	bool any_evict = false;
	struct evict_result ev = { 0 };
	int er = 0;

	for (rq = list; rq; rq = rq->next)
		if (rq->kind == DP_FLUSH && !io->in_memory) {
			if (nfl == ARRAY_SIZE(fl)) { /* an absurd batch: serve it in parts */
				run_flushes(io, fl, nfl);
				nfl = 0;
			}
			fl[nfl++] = rq;
		}
	if (nfl)
		run_flushes(io, fl, nfl);

	/* evictions coalesce too: the smallest target serves every one */
	for (rq = list; rq; rq = rq->next)
		if (rq->kind == DP_EVICT && rq->fraction > 0) {
			struct pc_counts now;
			if (pc_cachestat(io->fd, 0, 0, &now) == 0)
				rq->target = MIN(rq->target, (uint64_t)((double)now.cached *
									rq->fraction));
		}
	for (rq = list; rq; rq = rq->next)
		if (rq->kind == DP_EVICT && !io->in_memory) {
			any_evict = true;
			target = MIN(target, rq->target);
			if (rq->nprefer && !prefer)
				prefer = rq; /* the guest's choice (the newest the batch has) */
		}
	if (any_evict) {
		er = evict_image(io->evict_fd, io->dev, io->ino, dp->proc_root, target,
				 prefer ? prefer->prefer : NULL, prefer ? prefer->nprefer : 0, &ev);
		set_last(io, &ev.after);
		if (ev.writeback_failed)
			lose_writes(io, ev.errmsg);
	}

	for (rq = list; rq; rq = rq->next) {
		if (io->in_memory && refuse_in_memory(rq))
			continue;
		switch (rq->kind) {
		case DP_EVICT:
			rq->before = ev.before;
			rq->after = ev.after;
			rq->error = er;
			snprintf(rq->errmsg, sizeof(rq->errmsg), "%s", ev.errmsg);
			break;
		case DP_INVALIDATE:
			run_invalidate(dp, io, rq);
			break;
		case DP_STAT: {
			int r = pc_cachestat(io->fd, 0, 0, &rq->before);
			if (r < 0)
				fail(rq, r, "cachestat");
			else
				set_last(io, &rq->before);
			rq->after = rq->before;
			break;
		}
		case DP_MAINTAIN:
			run_maintain(dp, io, rq);
			break;
		case DP_CALL:
			rq->error = rq->call(io->fd, rq->call_arg);
			if (rq->error < 0)
				fail(rq, rq->error, "the image's file");
			break;
		case DP_FLUSH:
			break;
		}
	}
}

static void runq_push(struct dataplane *dp, struct image_io *io)
{
	io->runq_next = NULL;
	if (dp->runq_tail)
		dp->runq_tail->runq_next = io;
	else
		dp->runq = io;
	dp->runq_tail = io;
	pthread_cond_signal(&dp->cond);
}

static void *worker(void *arg)
{
	struct dataplane *dp = arg;

	for (;;) {
		struct image_io *io;
		struct dp_request *list, *last;
		bool again, had_maintain = false;

		pthread_mutex_lock(&dp->lock);
		while (!dp->runq && !dp->stop)
			pthread_cond_wait(&dp->cond, &dp->lock);
		if (dp->stop) {
			pthread_mutex_unlock(&dp->lock);
			return NULL;
		}
		io = dp->runq;
		dp->runq = io->runq_next;
		if (!dp->runq)
			dp->runq_tail = NULL;
		pthread_mutex_unlock(&dp->lock);

		/* everything pending now is this batch */
		pthread_mutex_lock(&io->lock);
		list = io->pending;
		io->pending = io->pending_tail = NULL;
		io->queued = false;
		io->running = true;
		pthread_mutex_unlock(&io->lock);

		run_batch(dp, io, list);
		note_errors(io, list);

		for (last = list; last; last = last->next) {
			last->usec = now_usec() - last->queued_usec;
			had_maintain |= last->kind == DP_MAINTAIN;
		}
		pthread_mutex_lock(&io->lock);
		io->running = false;
		if (had_maintain)
			io->maintaining = false;
		again = io->pending != NULL;
		io->queued = again;
		pthread_mutex_unlock(&io->lock);

		for (struct dp_request *rq = list, *next; rq; rq = next) {
			next = rq->next;
			mailbox_append(&dp->done, &rq->finished);
		}
		if (again) {
			pthread_mutex_lock(&dp->lock);
			runq_push(dp, image_io_ref(io));
			pthread_mutex_unlock(&dp->lock);
		}
		mailbox_wake(&dp->done);
		image_io_unref(io); /* the run queue's reference */
	}
}

/* ---- the pool ---------------------------------------------------------------------------- */

int dataplane_start(unsigned workers, const char *proc_root, struct dataplane **ret)
{
	struct dataplane *dp = calloc(1, sizeof(*dp));
	int r;

	if (!dp)
		return -ENOMEM;
	if (!workers || workers > MAX_WORKERS) {
		free(dp);
		return -EINVAL;
	}
	snprintf(dp->proc_root, sizeof(dp->proc_root), "%s", proc_root);
	r = mailbox_init(&dp->done);
	if (r < 0) {
		free(dp);
		return r;
	}
	pthread_mutex_init(&dp->lock, NULL);
	pthread_cond_init(&dp->cond, NULL);
	for (unsigned i = 0; i < workers; i++) {
		r = -pthread_create(&dp->threads[i], NULL, worker, dp);
		if (r < 0) {
			dataplane_stop(dp);
			return r;
		}
		dp->nthreads++;
	}
	*ret = dp;
	return 0;
}

static struct dp_request *take_done(struct dataplane *dp);

void dataplane_stop(struct dataplane *dp)
{
	struct dp_request *rq;

	if (!dp)
		return;
	pthread_mutex_lock(&dp->lock);
	dp->stop = true;
	pthread_cond_broadcast(&dp->cond);
	pthread_mutex_unlock(&dp->lock);
	for (unsigned i = 0; i < dp->nthreads; i++)
		pthread_join(dp->threads[i], NULL);
	/* work never started: its images are still queued with their requests */
	while (dp->runq) {
		struct image_io *io = dp->runq;

		dp->runq = io->runq_next;
		while ((rq = io->pending)) {
			io->pending = rq->next;
			dp_request_free(rq);
		}
		image_io_unref(io);
	}
	for (rq = take_done(dp); rq; ) {
		struct dp_request *next = rq->next;
		dp_request_free(rq);
		rq = next;
	}
	mailbox_fini(&dp->done);
	pthread_cond_destroy(&dp->cond);
	pthread_mutex_destroy(&dp->lock);
	free(dp);
}

int dataplane_fd(struct dataplane *dp)
{
	return mailbox_fd(&dp->done);
}

void dataplane_submit(struct dataplane *dp, struct dp_request *rq)
{
	struct image_io *io = rq->io;
	bool enqueue;

	rq->next = NULL;
	pthread_mutex_lock(&io->lock);
	if (io->pending_tail)
		io->pending_tail->next = rq;
	else
		io->pending = rq;
	io->pending_tail = rq;
	if (rq->kind == DP_MAINTAIN)
		io->maintaining = true;
	/* a running image is requeued by its worker when it finishes */
	enqueue = !io->queued && !io->running;
	if (enqueue)
		io->queued = true;
	pthread_mutex_unlock(&io->lock);
	if (enqueue) {
		pthread_mutex_lock(&dp->lock);
		runq_push(dp, image_io_ref(io));
		pthread_mutex_unlock(&dp->lock);
	}
}

static struct dp_request *take_done(struct dataplane *dp)
{
	struct dp_request *head = NULL, **tail = &head;

	for (struct mailbox_node *n = mailbox_take(&dp->done); n; n = n->next) {
		struct dp_request *rq = container_of(n, struct dp_request, finished);
		*tail = rq;
		tail = &rq->next;
	}
	*tail = NULL;
	return head;
}

void dataplane_complete(struct dataplane *dp)
{
	struct dp_request *rq = take_done(dp), *next;

	for (; rq; rq = next) {
		next = rq->next;
		if (rq->done)
			rq->done(rq);
		else
			dp_request_free(rq);
	}
}
