/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shrinking an image's share of the page cache. The guest may have said which ranges it can
 * lose (cold first); the rest goes from the start of the image. Reclaim through
 * fadvise or madvise never writes a dirty file page, so each chunk is written back first;
 * then clean unmapped pages go with POSIX_FADV_DONTNEED, and pages a VM maps go with
 * process_madvise(MADV_PAGEOUT) on that VM's mapping of the chunk. A page dirtied again in
 * between simply stays: nothing written by a guest is ever dropped.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "dataplane.h"
#include "util.h"

#define EVICT_CHUNK (32ull << 20)

static int emsg(struct evict_result *res, int r, const char *what)
{
	snprintf(res->errmsg, sizeof(res->errmsg), "%s: %s", what, strerror(-r));
	return r;
}

/* One eviction's state: what it needs for every range it visits. */
struct evictor {
	int fd;
	dev_t dev;
	ino_t ino;
	const char *proc_root;
	uint64_t target, cached;
	struct pc_mapping *maps;
	size_t nmaps;
	bool looked;
	struct evict_result *res;
};

/* Write back, then drop [off, off + len) (no more than brings the image to its target).
 * 0, or -errno with errmsg set. */
static int evict_range(struct evictor *x, uint64_t off, uint64_t len)
{
	struct pc_counts c, after;
	uint64_t excess = x->cached - x->target;
	int r;

	r = pc_cachestat(x->fd, off, len, &c);
	if (r < 0 || !c.cached)
		return r;
	/* stop at the budget, not below it: take only as much of the range as holds the excess.
	 * A first guess at the range's density of cached pages can land on a denser stretch
	 * (a guest's hot pages are not spread evenly), so narrow it until it holds no more. */
	for (int tries = 0; c.cached > excess && len > 4096 && tries < 8; tries++) {
		len = MIN(len - 4096, (uint64_t)((double)excess * (double)len / (double)c.cached));
		len = MAX((len + 4095) & ~4095ull, 4096ull);
		r = pc_cachestat(x->fd, off, len, &c);
		if (r < 0 || !c.cached)
			return r;
	}
	if (c.dirty || c.writeback) {
		r = pc_write_range(x->fd, off, len);
		if (r < 0) {
			x->res->writeback_failed = true;
			return emsg(x->res, r, "writeback before eviction failed");
		}
	}
	pc_drop(x->fd, off, len);
	r = pc_cachestat(x->fd, off, len, &after);
	if (r < 0)
		return r;
	if (after.cached > after.dirty) { /* still cached and clean: somebody maps them */
		if (!x->looked) {
			r = pc_find_mappings(x->proc_root, x->dev, x->ino, &x->maps, &x->nmaps);
			if (r < 0)
				return emsg(x->res, r, "reading /proc for mappings");
			x->looked = true;
		}
		for (size_t i = 0; i < x->nmaps; i++) {
			r = pc_pageout(&x->maps[i], off, len);
			if (r < 0) {
				snprintf(x->res->errmsg, sizeof(x->res->errmsg),
					 "process_madvise on pid %d: %s (needs "
					 "CAP_SYS_NICE and ptrace access)", x->maps[i].pid,
					 strerror(-r));
				return r;
			}
		}
		r = pc_cachestat(x->fd, off, len, &after);
		if (r < 0)
			return r;
	}
	x->cached -= MIN(x->cached, c.cached - MIN(c.cached, after.cached));
	return 0;
}

/* [off, off + len) a chunk at a time, until the target is reached. */
static int evict_span(struct evictor *x, uint64_t off, uint64_t len)
{
	for (uint64_t end = off + len, n; off < end && x->cached > x->target; off += n) {
		int r;

		n = MIN(EVICT_CHUNK, end - off); /* uncached stretches go a chunk at a time */
		r = evict_range(x, off, n);
		if (r < 0)
			return r;
	}
	return 0;
}

int evict_image(int fd, dev_t dev, ino_t ino, const char *proc_root, uint64_t target,
		const struct dp_range *prefer, size_t nprefer, struct evict_result *ret)
{
	struct evictor x = { .fd = fd, .dev = dev, .ino = ino, .proc_root = proc_root,
			     .target = target, .res = ret };
	struct stat st;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = pc_cachestat(fd, 0, 0, &ret->before);
	if (r < 0)
		return emsg(ret, r, "cachestat");
	ret->after = ret->before;
	x.cached = ret->before.cached;
	if (x.cached <= target)
		return 0;
	if (fstat(fd, &st) < 0)
		return emsg(ret, -errno, "fstat");
	/* what the guest said it can lose first, in its order; a second sweep takes pages the
	 * first found busy (under writeback, just referenced) before anything it did not offer */
	for (int sweep = 0; sweep < 2 && nprefer && r == 0 && x.cached > target; sweep++)
		for (size_t i = 0; i < nprefer && r == 0 && x.cached > target; i++)
			if (prefer[i].off < (uint64_t)st.st_size)
				r = evict_span(&x, prefer[i].off,
					       MIN(prefer[i].len, (uint64_t)st.st_size - prefer[i].off));
	/* then from the start of the image: the kernel tells us nothing about which pages
	 * the guest uses least, and a fixed order makes repeated evictions predictable */
	if (r == 0)
		r = evict_span(&x, 0, (uint64_t)st.st_size);
	free(x.maps);
	if (r < 0 && !ret->errmsg[0])
		emsg(ret, r, "cachestat");
	if (pc_cachestat(fd, 0, 0, &ret->after) < 0)
		ret->after = ret->before;
	return r < 0 ? r : 0;
}
