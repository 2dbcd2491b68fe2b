/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Parallel copy of regions between files (snapshot.h): every thread takes the next chunk of
 * any region, reads it, sums it, writes it (a region without a destination is only read and
 * summed: a restore checks the whole file that way before it writes a byte). With the save
 * file opened O_DIRECT on one side, the copy neither fills the host page cache nor waits for
 * it; several chunks in flight keep a deep device queue busy.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"
#include "util.h"

#define CHUNK SNAP_CHUNK

struct copier {
	struct snap_copy *c;
	size_t n;
	uint64_t *first_chunk;       /* index of each region's first chunk */
	uint64_t chunks;
	_Atomic uint64_t next;
	_Atomic uint64_t *sums;      /* per region */
	_Atomic uint64_t *progress;
	_Atomic int error;
	char *errmsg;
	size_t errlen;
	pthread_mutex_t lock;
};

static void fail(struct copier *k, int err, const char *what)
{
	int none = 0;

	if (atomic_compare_exchange_strong(&k->error, &none, err)) {
		pthread_mutex_lock(&k->lock);
		snprintf(k->errmsg, k->errlen, "%s: %s", what, strerror(-err));
		pthread_mutex_unlock(&k->lock);
	}
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* the source ended early */
		done += (size_t)n;
	}
	return 0;
}

int snap_pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* no progress: never loop on it */
		done += (size_t)n;
	}
	return 0;
}

static void *copier_main(void *arg)
{
	struct copier *k = arg;
	void *buf = NULL;

	if (posix_memalign(&buf, 4096, CHUNK)) {
		fail(k, -ENOMEM, "buffer");
		return NULL;
	}
	for (;;) {
		uint64_t i = atomic_fetch_add(&k->next, 1), off, len;
		size_t r = 0;
		int e;

		if (i >= k->chunks || atomic_load(&k->error))
			break;
		while (r + 1 < k->n && k->first_chunk[r + 1] <= i)
			r++;
		off = (i - k->first_chunk[r]) * CHUNK;
		len = MIN(CHUNK, k->c[r].len - off);
		if (k->c[r].src_map) {
			memcpy(buf, k->c[r].src_map + k->c[r].src_off + off, len);
			e = 0;
		} else {
			e = full_pread(k->c[r].src, buf, len, k->c[r].src_off + off);
		}
		if (e < 0) {
			fail(k, e, "reading");
			break;
		}
		atomic_fetch_add(&k->sums[r], snap_chunk_sum(buf, len, i - k->first_chunk[r]));
		if (k->c[r].dst_map)
			memcpy(k->c[r].dst_map + k->c[r].dst_off + off, buf, len);
		e = k->c[r].dst < 0 || k->c[r].dst_map ? 0 :
			snap_pwrite_all(k->c[r].dst, buf, len, k->c[r].dst_off + off);
		if (e < 0) {
			fail(k, e, "writing");
			break;
		}
		if (k->progress)
			atomic_fetch_add(k->progress, len);
	}
	free(buf);
	return NULL;
}

int snap_copy_run(struct snap_copy *c, size_t n, unsigned threads, _Atomic uint64_t *progress,
		  char *errmsg, size_t errlen)
{
	struct copier k = { .c = c, .n = n, .progress = progress, .errmsg = errmsg,
			    .errlen = errlen };
	pthread_t t[16];
	unsigned started = 0;
	int r;

	if (!n)
		return 0;
	threads = MAX(1u, MIN(threads, 16u));
	k.first_chunk = calloc(n, sizeof(*k.first_chunk));
	k.sums = calloc(n, sizeof(*k.sums));
	if (!k.first_chunk || !k.sums) {
		free(k.first_chunk);
		free(k.sums);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		k.first_chunk[i] = k.chunks;
		k.chunks += (c[i].len + CHUNK - 1) / CHUNK;
	}
	pthread_mutex_init(&k.lock, NULL);
	for (; started < threads; started++)
		if (pthread_create(&t[started], NULL, copier_main, &k))
			break;
	if (!started)
		fail(&k, -EAGAIN, "threads");
	for (unsigned i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	for (size_t i = 0; i < n; i++)
		c[i].checksum = atomic_load(&k.sums[i]);
	r = atomic_load(&k.error);
	pthread_mutex_destroy(&k.lock);
	free(k.first_chunk);
	free(k.sums);
	return r;
}

int snap_backing_write(const struct snap_backing *b, const void *buf, uint64_t len, uint64_t off)
{
	if (b->map) {
		memcpy(b->map + off, buf, len);
		return 0;
	}
	return snap_pwrite_all(b->fd, buf, len, b->data_offset + off);
}

int snap_backing_map(struct snap_backing *b)
{
	struct stat st;
	void *m;

	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return 0;
	/* device DAX has neither read nor write: its bytes are reached by mapping only */
	m = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, (off_t)b->data_offset);
	if (m == MAP_FAILED)
		return -errno;
	b->map = m;
	return 0;
}

void snap_backing_unmap(struct snap_backing *b)
{
	if (b->map)
		munmap(b->map, b->size);
	b->map = NULL;
}
