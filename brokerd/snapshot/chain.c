/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A restore's increments (steps.h). Every one is checked whole before the first byte goes
 * into the VM's memory: its header, that it is the next link (sequence, and its parent's
 * checksum), that it is of the same VM and backings, its range table, and the sums of its
 * pages and device state. A torn or foreign increment is refused by name, and the chain
 * before it is still whole: restoring that chain works.
 * Applying reads the pages again, chunk by chunk, summing them as it goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"
#include "steps.h"
#include "util.h"

static int link_fail(struct snap_job *j, unsigned k, const char *fmt, const char *why)
{
	return step_fail(&j->st, -EBADMSG, "invalid_argument", "increment %u (%s) %s; nothing was "
			 "written. The chain before it is whole: restore the base with the %u "
			 "increment(s) before it", k + 1, j->incs[k], why ? why : fmt, k);
}

/* The link's range table, read, summed and validated: a new array, or NULL (job failed). */
static struct snap_range *read_table(struct snap_job *j, unsigned k, struct chain_link *l)
{
	uint64_t tlen = snap_page_up(l->h.nranges * SNAP_RANGE_BYTES);
	struct snap_range *r = calloc(l->h.nranges ? l->h.nranges : 1, sizeof(*r));
	uint8_t *buf = NULL;

	if (!r || posix_memalign((void **)&buf, 4096, tlen ? tlen : 4096)) {
		step_fail(&j->st, -ENOMEM, "no_memory", "out of memory for increment %u's table", k + 1);
		goto fail;
	}
	if (tlen && pread(l->fd, buf, tlen, (off_t)l->h.ranges_offset) != (ssize_t)tlen) {
		link_fail(j, k, "cannot be read whole", NULL);
		goto fail;
	}
	if (snap_region_sum(buf, l->h.nranges * SNAP_RANGE_BYTES) != l->h.ranges_checksum ||
	    snap_ranges_parse(buf, l->h.nranges, &l->h, r, NULL) < 0) {
		link_fail(j, k, "has a damaged range table", NULL);
		goto fail;
	}
	free(buf);
	return r;
fail:
	free(buf);
	free(r);
	return NULL;
}

/* Header, place in the chain, backings. */
static int check_header(struct snap_job *j, unsigned k, struct chain_link *l, uint64_t parent)
{
	uint8_t *hdr = NULL;
	int r = 0;

	if (posix_memalign((void **)&hdr, 4096, SNAP_HEADER_SIZE))
		return step_fail(&j->st, -ENOMEM, "no_memory", "out of memory");
	if (pread(l->fd, hdr, SNAP_HEADER_SIZE, 0) != SNAP_HEADER_SIZE ||
	    snap_inc_header_parse(hdr, SNAP_HEADER_SIZE, &l->h) < 0) {
		r = link_fail(j, k, "is not a tagmem increment, or its header is damaged (a torn "
			      "write)", NULL);
		goto out;
	}
	if (strcmp(l->h.vm, j->vm))
		r = link_fail(j, k, "is of another VM", NULL);
	else if (l->h.sequence != k + 1 || l->h.parent != parent)
		r = link_fail(j, k, "does not follow the file before it (its chain is another, or a "
			      "link is missing or out of order)", NULL);
	else if ((uint64_t)l->st.st_size < l->h.devstate_offset + snap_page_up(l->h.devstate_length))
		r = link_fail(j, k, "is cut short", NULL);
	else if (l->h.nentries != j->nb)
		r = link_fail(j, k, "is of other backings than the VM's", NULL);
	for (unsigned e = 0; r == 0 && e < l->h.nentries; e++) {
		unsigned b;

		for (b = 0; b < j->nb; b++)
			if (!tagmem_tag_compare(&l->h.tag[e], &j->b[b].tag) &&
			    l->h.size[e] == j->b[b].size)
				break;
		if (b == j->nb)
			r = link_fail(j, k, "is of other backings than the VM's", NULL);
		l->entry_backing[e] = (int)b;
	}
	if (r == 0)
		l->h.parent = snap_header_digest(hdr); /* from here on: this link's own digest */
out:
	free(hdr);
	return r;
}

int chain_check(struct snap_job *j, uint64_t base_digest, struct chain_link *links)
{
	uint64_t parent = base_digest;

	for (unsigned k = 0; k < j->nincs; k++)
		links[k].fd = -1;
	for (unsigned k = 0; k < j->nincs; k++) {
		struct chain_link *l = &links[k];
		struct snap_copy c[2];
		struct snap_range *ranges;
		int r = save_open_file(j, j->incs[k], j->incs[k], &l->fd, &l->st);

		if (r == 0)
			r = check_header(j, k, l, parent);
		if (r < 0)
			return r;
		parent = l->h.parent;
		ranges = read_table(j, k, l);
		if (!ranges)
			return j->st.error;
		free(ranges);
		c[0] = (struct snap_copy){ .src = l->fd, .src_off = l->h.data_offset, .dst = -1,
					   .len = l->h.data_length };
		c[1] = (struct snap_copy){ .src = l->fd, .src_off = l->h.devstate_offset, .dst = -1,
					   .len = snap_page_up(l->h.devstate_length) };
		r = snap_copy_run(c, 2, j->threads, NULL, j->st.errmsg, sizeof(j->st.errmsg));
		if (r < 0)
			return link_fail(j, k, "cannot be read", strerror(-r));
		if (c[0].checksum != l->h.data_checksum || c[1].checksum != l->h.devstate_checksum)
			return link_fail(j, k, "does not match its checksums (damaged, or torn)", NULL);
	}
	return 0;
}

static int zero_range(struct snap_job *j, const struct chain_link *l, const struct snap_range *r)
{
	static const uint8_t zero[1 << 16];
	const struct snap_backing *b = &j->b[l->entry_backing[r->entry]];

	for (uint64_t off = 0; off < r->pages * 4096; off += sizeof(zero)) {
		uint64_t len = r->pages * 4096 - off;
		int e = snap_backing_write(b, zero, len < sizeof(zero) ? len : sizeof(zero),
					   r->offset + off);

		if (e < 0)
			return e;
	}
	return 0;
}

/* One link's pages into the backings: the data region read chunk by chunk (summed as it was
 * checked), each chunk handed out to the ranges it holds, zero ranges written as zeros. */
static int apply_link(struct snap_job *j, unsigned k, struct chain_link *l, uint8_t *buf)
{
	struct snap_range *ranges = read_table(j, k, l);
	uint64_t ri = 0, rdone = 0, sum = 0, idx = 0;
	int e = 0;

	if (!ranges)
		return j->st.error;
	for (uint64_t off = 0; e == 0 && off <= l->h.data_length; off += SNAP_CHUNK, idx++) {
		uint64_t len = l->h.data_length - off < SNAP_CHUNK ? l->h.data_length - off : SNAP_CHUNK;

		if (len && pread(l->fd, buf, len, (off_t)(l->h.data_offset + off)) != (ssize_t)len) {
			e = -EIO;
			break;
		}
		if (len)
			sum += snap_chunk_sum(buf, len, idx);
		for (uint64_t p = 0; e == 0 && ri < l->h.nranges;) {
			const struct snap_range *r = &ranges[ri];
			uint64_t take;

			if (r->flags & SNAP_RANGE_ZERO) {
				e = zero_range(j, l, r);
				ri++;
				continue;
			}
			if (p == len)
				break;
			take = r->pages * 4096 - rdone;
			if (take > len - p)
				take = len - p;
			e = snap_backing_write(&j->b[l->entry_backing[r->entry]], buf + p, take,
					       r->offset + rdone);
			p += take;
			rdone += take;
			if (rdone == r->pages * 4096) {
				ri++;
				rdone = 0;
			}
		}
		if (len < SNAP_CHUNK)
			break;
	}
	free(ranges);
	if (e < 0)
		return step_fail(&j->st, e, "io_error", "cannot apply increment %u (%s): %s; the VM was "
				 "not started", k + 1, j->incs[k], strerror(-e));
	if (sum != l->h.data_checksum)
		return step_fail(&j->st, -EBADMSG, "invalid_argument", "increment %u (%s) changed while it "
				 "was restored; the VM was not started", k + 1, j->incs[k]);
	atomic_fetch_add(&j->done_bytes, l->h.data_length);
	return 0;
}

int chain_apply(struct snap_job *j, struct chain_link *links)
{
	uint8_t *buf = NULL;
	int r = 0;

	if (!j->nincs)
		return 0;
	if (posix_memalign((void **)&buf, 4096, SNAP_CHUNK))
		return step_fail(&j->st, -ENOMEM, "no_memory", "out of memory");
	for (unsigned k = 0; r == 0 && k < j->nincs; k++)
		r = apply_link(j, k, &links[k], buf);
	free(buf);
	return r;
}

void chain_close(struct snap_job *j, struct chain_link *links)
{
	for (unsigned k = 0; k < j->nincs; k++)
		if (links[k].fd >= 0)
			close(links[k].fd);
}
