/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Checkpoints (snapshot.h): a base, then increments of the pages QEMU wrote since the one
 * before, found by the kernel's soft-dirty bits of the QEMU process (dirty.c).
 *
 *   base:      a full save (save.c) that clears QEMU's bits while the VM is stopped.
 *   increment: stop → the backings' dirty pages from QEMU's page tables → those pages copied
 *              into memory → the bits cleared → the device state → cont; then, with the VM
 *              running, the file: header, range table, pages, device state, under a temporary
 *              name, durable, renamed into place.
 *
 * The VM is paused only for the harvest, the capture and the device state. The chain goes on
 * only while nothing can have been missed: the same QEMU process, the same backings, and
 * every earlier link written. Once the bits are cleared, an increment that then fails to be
 * written breaks the chain (those writes are known nowhere else), and the next checkpoint is
 * a base. Nobody else may clear QEMU's bits (CRIU does): the chain would miss those pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "snapshot.h"
#include "steps.h"
#include "util.h"

static int qemu_pid(struct snap_job *j, struct qmp *q, pid_t *ret)
{
	struct ucred peer;
	socklen_t len = sizeof(peer);

	if (getsockopt(qmp_fd(q), SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		return step_fail(&j->st, -errno, "internal", "cannot tell which process serves VM %s: "
				 "%m", j->vm);
	*ret = peer.pid;
	return 0;
}

static int no_soft_dirty(struct snap_job *j)
{
	return step_fail(&j->st, -EOPNOTSUPP, "unsupported", "this host's kernel does not track the "
			 "pages a process writes (it is built without CONFIG_MEM_SOFT_DIRTY), so a "
			 "checkpoint could miss pages and brokerd writes none; nothing was written and "
			 "VM %s runs on. `tagmem vm save` writes a full save", j->vm);
}

int checkpoint_start(struct snap_job *j, struct qmp *q)
{
	struct dirty_proc p;
	pid_t pid;
	int r = qemu_pid(j, q, &pid);

	j->chain.valid = false;
	if (r < 0)
		return r;
	r = dirty_open(pid, &p);
	if (r == 0)
		r = dirty_clear(&p);
	dirty_close(&p);
	if (r < 0)
		return step_fail(&j->st, r, "internal", "cannot clear the soft-dirty bits of VM %s's "
				 "QEMU (pid %d): %s", j->vm, (int)pid, strerror(-r));
	j->chain.qemu_pid = pid;
	return 0;
}

void checkpoint_based(struct snap_job *j, uint64_t digest)
{
	j->chain.valid = true;
	j->chain.digest = digest;
	j->chain.sequence = 0;
	j->chain.nb = j->nb;
	for (unsigned i = 0; i < j->nb; i++) {
		j->chain.tag[i] = j->b[i].tag;
		j->chain.size[i] = j->b[i].size;
	}
}

/* Why the chain cannot go on with this VM as it is now (NULL: it can); the backings are
 * compared once QEMU said which it has (save_check_memory). */
static const char *chain_broken(const struct snap_job *j, pid_t pid, bool backings)
{
	if (!j->chain.valid)
		return "no checkpoint of this VM since brokerd started, or the last one failed";
	if (j->chain.qemu_pid != pid)
		return "the VM runs in another QEMU process than at the last checkpoint";
	if (!backings)
		return NULL;
	if (j->chain.nb != j->nb)
		return "the VM's backings changed since the last checkpoint";
	for (unsigned i = 0; i < j->nb; i++)
		if (tagmem_tag_compare(&j->chain.tag[i], &j->b[i].tag) ||
		    j->chain.size[i] != j->b[i].size)
			return "the VM's backings changed since the last checkpoint";
	return NULL;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[4096];

	return !memcmp(p, zero, 4096);
}

/* What an increment holds while it is made. */
struct increment {
	struct snap_inc_header h;
	struct snap_range *ranges;
	uint64_t nranges, cap;
	uint8_t *data;           /* the dirty non-zero pages, in table order (4 KiB aligned) */
	uint8_t *devstate;       /* padded to 4 KiB */
	uint8_t *table;
};

static void increment_free(struct increment *inc)
{
	free(inc->ranges);
	free(inc->data);
	free(inc->devstate);
	free(inc->table);
}

static int add_range(struct increment *inc, unsigned entry, uint32_t flags, uint64_t offset,
		     uint64_t pages)
{
	struct snap_range *last = inc->nranges ? &inc->ranges[inc->nranges - 1] : NULL;

	if (last && last->entry == entry && last->flags == flags &&
	    last->offset + last->pages * 4096 == offset) {
		last->pages += pages;
		return 0;
	}
	if (inc->nranges == SNAP_INC_RANGES_MAX)
		return -E2BIG;
	if (inc->nranges == inc->cap) {
		uint64_t cap = inc->cap ? inc->cap * 2 : 256;
		struct snap_range *n = realloc(inc->ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		inc->ranges = n;
		inc->cap = cap;
	}
	inc->ranges[inc->nranges++] = (struct snap_range){ .entry = entry, .flags = flags,
							   .offset = offset, .pages = pages };
	return 0;
}

/* The dirty pages of every backing into inc: harvested, then copied (the VM is stopped). */
static int harvest(struct snap_job *j, struct dirty_proc *p, struct increment *inc)
{
	uint64_t *bits[SNAP_MAX_ENTRIES] = { 0 };
	uint64_t t0 = now_usec(), data = 0;
	int r = 0;

	for (unsigned i = 0; r == 0 && i < j->nb; i++) {
		struct stat st;
		uint64_t words = (j->b[i].size / 4096 + 63) / 64;

		bits[i] = calloc(words ? words : 1, sizeof(*bits[i]));
		if (!bits[i] || fstat(j->b[i].fd, &st) < 0) {
			r = bits[i] ? -errno : -ENOMEM;
			break;
		}
		/* device DAX is never reclaimed nor punched: an absent page was not written. (maps
		 * names a device node by the filesystem it is on, as fstat's st_dev) */
		r = dirty_harvest(p, st.st_dev, st.st_ino, j->b[i].data_offset, j->b[i].size,
				  S_ISCHR(st.st_mode), bits[i], NULL);
		for (uint64_t w = 0; r == 0 && w < words; w++)
			j->cp.dirty_bytes += 4096ull * (uint64_t)__builtin_popcountll(bits[i][w]);
	}
	j->cp.harvest_usec = now_usec() - t0;
	if (r < 0) {
		step_fail(&j->st, r, "internal", "cannot read which pages VM %s wrote: %s", j->vm,
			  strerror(-r));
		goto out;
	}
	t0 = now_usec();
	/* the pages: a zero page goes in the table only; the rest into one buffer */
	if (j->cp.dirty_bytes && posix_memalign((void **)&inc->data, 4096, j->cp.dirty_bytes)) {
		r = step_fail(&j->st, -ENOMEM, "no_memory", "the %llu bytes VM %s wrote since its last "
			      "checkpoint do not fit in brokerd's memory: take a full one (--full)",
			      (unsigned long long)j->cp.dirty_bytes, j->vm);
		goto out;
	}
	for (unsigned i = 0; r == 0 && i < j->nb; i++) {
		uint64_t words = (j->b[i].size / 4096 + 63) / 64;
		const uint8_t *map = j->b[i].map;

		/* a file is read (a hole reads as zeros without being filled in, and a file that
		 * shrank is an error, not a SIGBUS); device DAX has no read: through its mapping */
		/* a word of the bitmap at a time: most are zero at a low dirty rate */
		for (uint64_t w = 0, left = 0, pg = 0; r == 0 && (left || w < words);) {
			uint8_t *dst = inc->data + data;
			bool zero;

			if (!left) {
				left = bits[i][w++];
				continue;
			}
			pg = (w - 1) * 64 + (uint64_t)__builtin_ctzll(left);
			left &= left - 1;
			/* copied first, then looked at where it is now (in cache): one read of the
			 * VM's page; a zero page's copy is overwritten by the next */
			if (map) {
				memcpy(dst, map + pg * 4096, 4096);
			} else if (pread(j->b[i].fd, dst, 4096, (off_t)(j->b[i].data_offset + pg * 4096)) !=
				   4096) {
				r = step_fail(&j->st, -EIO, "io_error", "cannot read page %llu of a backing "
					      "of VM %s (did it shrink?)", (unsigned long long)pg, j->vm);
				break;
			}
			zero = page_is_zero(dst);
			if (zero)
				j->cp.zero_bytes += 4096;
			else
				data += 4096;
			r = add_range(inc, i, zero ? SNAP_RANGE_ZERO : 0, pg * 4096, 1);
			if (r < 0)
				step_fail(&j->st, r, r == -E2BIG ? "unsupported" : "no_memory", "VM %s wrote "
					  "pages in too many places for one increment: take a full "
					  "checkpoint (--full)", j->vm);
		}
	}
	inc->h.data_length = data;
	j->cp.capture_usec = now_usec() - t0;
out:
	for (unsigned i = 0; i < j->nb; i++)
		free(bits[i]);
	return r;
}

/* The device state QEMU wrote into devfd, into memory, padded to whole pages. */
static int read_devstate(struct snap_job *j, int devfd, struct increment *inc)
{
	struct stat st;
	uint64_t len;

	if (fstat(devfd, &st) < 0)
		return step_fail(&j->st, -errno, "io_error", "device state: %m");
	len = snap_page_up((uint64_t)st.st_size);
	if (posix_memalign((void **)&inc->devstate, 4096, len ? len : 4096))
		return step_fail(&j->st, -ENOMEM, "no_memory", "out of memory");
	memset(inc->devstate, 0, len);
	if (pread(devfd, inc->devstate, (size_t)st.st_size, 0) != st.st_size)
		return step_fail(&j->st, -EIO, "io_error", "cannot read QEMU's device state back");
	inc->h.devstate_length = (uint64_t)st.st_size;
	inc->h.devstate_checksum = snap_region_sum(inc->devstate, len);
	j->devstate_bytes = inc->h.devstate_length;
	return 0;
}

/* The increment into the temporary: table, pages, device state, then the header. */
static int write_increment(struct snap_job *j, int fd, const char *tmp, struct increment *inc)
{
	struct snap_inc_header *h = &inc->h;
	uint64_t size, tlen;
	uint8_t *hdr = NULL;
	int r;

	h->nranges = inc->nranges;
	size = snap_inc_layout(h);
	tlen = snap_page_up(h->nranges * SNAP_RANGE_BYTES);
	if (posix_memalign((void **)&inc->table, 4096, tlen ? tlen : 4096) ||
	    posix_memalign((void **)&hdr, 4096, SNAP_HEADER_SIZE))
		return step_fail(&j->st, -ENOMEM, "no_memory", "out of memory");
	memset(inc->table, 0, tlen);
	snap_ranges_build(inc->ranges, inc->nranges, inc->table);
	h->ranges_checksum = snap_region_sum(inc->table, h->nranges * SNAP_RANGE_BYTES);
	h->data_checksum = snap_region_sum(inc->data, h->data_length);
	snap_inc_header_build(h, hdr);
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (r == 0)
		r = snap_pwrite_all(fd, inc->table, tlen, h->ranges_offset);
	if (r == 0)
		r = snap_pwrite_all(fd, inc->data, h->data_length, h->data_offset);
	if (r == 0)
		r = snap_pwrite_all(fd, inc->devstate, snap_page_up(h->devstate_length), h->devstate_offset);
	if (r < 0) {
		free(hdr);
		return step_fail(&j->st, r, r == -ENOSPC ? "no_space" : "io_error", "cannot write %s: "
				 "%s", j->path, strerror(-r));
	}
	r = save_commit(j, fd, tmp, hdr);
	if (r == 0)
		j->chain.digest = snap_header_digest(hdr);
	j->cp.file_bytes = size;
	free(hdr);
	return r;
}

static int increment(struct qmp *q, struct snap_job *j, pid_t pid)
{
	struct increment inc = { .h = { .created = (uint64_t)time(NULL) } };
	struct dirty_proc p = { .procfd = -1, .pagemap = -1 };
	char tmp[NAME_MAX + 1];
	bool was_running = false, cleared = false;
	const char *broken;
	int fd = -1, devfd = -1, r;
	uint64_t t0 = now_usec(), tp = 0;

	save_remove_stale(j);
	r = save_pause(j, q, &was_running);
	tp = now_usec();
	if (r == 0)
		r = save_check_memory(j, q);
	if (r == 0 && (broken = chain_broken(j, pid, true))) {
		/* the backings QEMU has are not those of the base: the next one is a base */
		j->chain.valid = false;
		r = step_fail(&j->st, -ESTALE, "invalid_argument", "VM %s: %s; nothing was written, and "
			      "its next checkpoint is a full one", j->vm, broken);
	}
	if (r == 0 && (r = dirty_open(pid, &p)) < 0)
		step_fail(&j->st, r, "internal", "cannot read VM %s's QEMU (pid %d): %s", j->vm,
			  (int)pid, strerror(-r));
	if (r == 0)
		r = harvest(j, &p, &inc);
	if (r == 0) {
		uint64_t t = now_usec();

		r = dirty_clear(&p);
		j->cp.harvest_usec += now_usec() - t;
		if (r < 0)
			step_fail(&j->st, r, "internal", "cannot clear VM %s's soft-dirty bits: %s", j->vm,
				  strerror(-r));
		/* from here on, a failure loses what the bits said: the chain ends */
		cleared = r == 0;
		if (cleared)
			j->chain.valid = false;
	}
	if (r == 0 && (fd = save_temp_file(j, tmp)) < 0)
		r = fd;
	if (r == 0 && (devfd = save_devstate_file(j)) < 0)
		r = devfd;
	if (r == 0) {
		uint64_t t = now_usec();

		r = save_device_state(j, q, devfd, "migrate");
		if (r == 0)
			r = save_wait_migration(j, q);
		if (r == 0)
			r = read_devstate(j, devfd, &inc);
		j->cp.devstate_usec = now_usec() - t;
	}
	/* the VM runs again before the file is written: everything it needs is in memory */
	j->resume = true;
	save_resume(j, q, was_running, r < 0);
	j->cp.paused_usec = now_usec() - tp;
	if (r == 0) {
		uint64_t t = now_usec();

		snprintf(inc.h.vm, sizeof(inc.h.vm), "%s", j->vm);
		inc.h.nentries = j->nb;
		for (unsigned i = 0; i < j->nb; i++) {
			inc.h.tag[i] = j->b[i].tag;
			inc.h.size[i] = j->b[i].size;
		}
		inc.h.sequence = j->chain.sequence + 1;
		inc.h.parent = j->chain.digest;
		r = write_increment(j, fd, tmp, &inc);
		j->cp.write_usec = now_usec() - t;
	}
	if (r == 0) {
		j->chain.valid = true;
		j->chain.sequence++;
		j->cp.increment = true;
		j->cp.ranges = inc.nranges;
		j->total_bytes = j->cp.file_bytes;
	} else if (cleared) {
		char why[sizeof(j->st.errmsg)];

		snprintf(why, sizeof(why), "%s", j->st.errmsg);
		snprintf(j->st.errmsg, sizeof(j->st.errmsg), "%.150s; VM %.64s's next checkpoint is a "
			 "full one", why, j->vm);
	}
	if (r < 0 && fd >= 0)
		unlinkat(j->dir_fd, tmp, 0);
	if (fd >= 0)
		close(fd);
	if (devfd >= 0)
		close(devfd);
	dirty_close(&p);
	increment_free(&inc);
	j->usec = now_usec() - t0;
	return r;
}

int snap_checkpoint(struct qmp *q, struct snap_job *j)
{
	pid_t pid;
	const char *why;
	int r = qemu_pid(j, q, &pid);

	if (r < 0)
		return r;
	/* refused before anything happens to the VM */
	if (dirty_probe() < 0)
		return no_soft_dirty(j);
	why = j->full ? "" : chain_broken(j, pid, false);
	if (!why)
		return increment(q, j, pid);
	j->cp.why_full = why;
	j->resume = true;
	return snap_save(q, j);
}
