/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shrinking an image's share of the page cache without the guest's help. Reclaim through
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

static int emsg(char *errmsg, size_t errlen, int r, const char *what)
{
	snprintf(errmsg, errlen, "%s: %s", what, strerror(-r));
	return r;
}

int evict_image(int fd, dev_t dev, ino_t ino, const char *proc_root, uint64_t target,
		struct pc_counts *ret_before, struct pc_counts *ret_after, char *errmsg,
		size_t errlen)
{
	struct pc_mapping *maps = NULL;
	size_t nmaps = 0;
	bool looked = false;
	uint64_t cached, size;
	struct stat st;
	int r;

	errmsg[0] = '\0';
	r = pc_cachestat(fd, 0, 0, ret_before);
	if (r < 0)
		return emsg(errmsg, errlen, r, "cachestat");
	*ret_after = *ret_before;
	cached = ret_before->cached;
	if (cached <= target)
		return 0;
	if (fstat(fd, &st) < 0)
		return emsg(errmsg, errlen, -errno, "fstat");
	size = (uint64_t)st.st_size;

	/* from the start of the image: the kernel tells us nothing about which pages the
	 * guest uses least, and a fixed order makes repeated evictions predictable */
	for (uint64_t off = 0, len; off < size && cached > target; off += len) {
		struct pc_counts c, after;
		uint64_t excess = cached - target;

		/* uncached stretches are skipped a whole chunk at a time */
		len = MIN(EVICT_CHUNK, size - off);
		r = pc_cachestat(fd, off, len, &c);
		if (r < 0)
			break;
		if (!c.cached)
			continue;
		if (c.cached > excess) {
			/* stop at the budget, not below it: take only as much of the chunk as
			 * holds about the excess, at its density of cached pages */
			len = MIN(len, (uint64_t)((double)excess * (double)len / (double)c.cached));
			len = MAX((len + 4095) & ~4095ull, 4096ull);
			r = pc_cachestat(fd, off, len, &c);
			if (r < 0)
				break;
			if (!c.cached)
				continue;
		}
		if (c.dirty || c.writeback) {
			r = pc_write_range(fd, off, len);
			if (r < 0) {
				emsg(errmsg, errlen, r, "writeback before eviction failed; dirty "
				     "pages were kept");
				break;
			}
		}
		pc_drop(fd, off, len);
		r = pc_cachestat(fd, off, len, &after);
		if (r < 0)
			break;
		if (after.cached > after.dirty) { /* still cached and clean: somebody maps them */
			if (!looked) {
				r = pc_find_mappings(proc_root, dev, ino, &maps, &nmaps);
				if (r < 0) {
					emsg(errmsg, errlen, r, "reading /proc for mappings");
					break;
				}
				looked = true;
			}
			for (size_t i = 0; i < nmaps; i++) {
				r = pc_pageout(&maps[i], off, len);
				if (r < 0) {
					snprintf(errmsg, errlen, "process_madvise on pid %d: %s (needs "
						 "CAP_SYS_NICE and ptrace access)", maps[i].pid,
						 strerror(-r));
					break;
				}
			}
			if (r < 0)
				break;
			r = pc_cachestat(fd, off, len, &after);
			if (r < 0)
				break;
		}
		cached -= MIN(cached, c.cached - MIN(c.cached, after.cached));
	}
	free(maps);
	if (r < 0 && !errmsg[0])
		emsg(errmsg, errlen, r, "cachestat");
	if (pc_cachestat(fd, 0, 0, ret_after) < 0)
		*ret_after = *ret_before;
	return r < 0 ? r : 0;
}
