/* SPDX-License-Identifier: GPL-2.0-or-later */
/* An image's I/O state (dataplane.h): its files, its budgets and holds, what the workers
 * counted and what it lost. Every field the workers write is read under its lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_io.h"
#include "util.h"

int image_io_open(int file_fd, int dir_fd, uint64_t data_size, struct image_io **ret)
{
	_cleanup_close_ int fd = -1, efd = -1;
	char self[64];
	struct image_io *io;
	struct stat st, est;

	/* Two open files of the image: the kernel reports a writeback error once to each open
	 * file that waits for writeback. An eviction that runs into one reports it to its own
	 * caller; with its own file it does not take it away from the next flush. Both are the
	 * inode the caller opened and checked: a duplicate and a reopen of that very file. */
	fd = fcntl(file_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", file_fd);
	efd = open(self, O_RDWR | O_CLOEXEC);
	if (efd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || fstat(efd, &est) < 0)
		return -errno;
	if (st.st_dev != est.st_dev || st.st_ino != est.st_ino)
		return -ESTALE;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < data_size)
		return -EMEDIUMTYPE;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	atomic_init(&io->refs, 1);
	pthread_mutex_init(&io->lock, NULL);
	io->dev = st.st_dev;
	io->ino = st.st_ino;
	io->data_size = data_size;
	io->barrier_fd = -1;
	io->in_memory = pc_fs_in_memory(fd);
	if (pc_fs_commits_in_order(fd)) {
		int r = pc_barrier_open(dir_fd);
		io->barrier_fd = r >= 0 ? r : -1;
	}
	io->fd = TAKE_FD(fd);
	io->evict_fd = TAKE_FD(efd);
	*ret = io;
	return 0;
}

bool image_io_in_memory(const struct image_io *io)
{
	return io->in_memory;
}

int image_io_fd(const struct image_io *io)
{
	return io->fd;
}

struct image_io *image_io_ref(struct image_io *io)
{
	atomic_fetch_add(&io->refs, 1);
	return io;
}

void image_io_unref(struct image_io *io)
{
	if (!io || atomic_fetch_sub(&io->refs, 1) != 1)
		return;
	close(io->fd);
	close(io->evict_fd);
	if (io->barrier_fd >= 0)
		close(io->barrier_fd);
	pthread_mutex_destroy(&io->lock);
	free(io);
}

dev_t image_io_dev(const struct image_io *io)
{
	return io->dev;
}

ino_t image_io_ino(const struct image_io *io)
{
	return io->ino;
}

bool image_io_deleted(const struct image_io *io)
{
	struct stat st;

	return fstat(io->fd, &st) < 0 || st.st_nlink == 0;
}

void image_io_set_budgets(struct image_io *io, const struct image_budgets *bu)
{
	pthread_mutex_lock(&io->lock);
	io->budgets = *bu;
	pthread_mutex_unlock(&io->lock);
}

struct image_budgets image_io_budgets(struct image_io *io)
{
	struct image_budgets bu;

	pthread_mutex_lock(&io->lock);
	bu = io->budgets;
	pthread_mutex_unlock(&io->lock);
	return bu;
}

struct pc_counts image_io_last_counts(struct image_io *io)
{
	struct pc_counts c;

	pthread_mutex_lock(&io->lock);
	c = io->last;
	pthread_mutex_unlock(&io->lock);
	return c;
}

/* One of the image's counters, read under its lock (workers write them). */
static uint64_t counter(struct image_io *io, const uint64_t *field)
{
	uint64_t n;

	pthread_mutex_lock(&io->lock);
	n = *field;
	pthread_mutex_unlock(&io->lock);
	return n;
}

uint64_t image_io_batches(struct image_io *io)
{
	return counter(io, &io->batches);
}

uint64_t image_io_errors(struct image_io *io, char *last, size_t len)
{
	uint64_t n;

	pthread_mutex_lock(&io->lock);
	n = io->errors;
	snprintf(last, len, "%s", io->last_error);
	pthread_mutex_unlock(&io->lock);
	return n;
}

void image_io_hold_writeback(struct image_io *io, bool hold)
{
	pthread_mutex_lock(&io->lock);
	if (hold)
		io->holds++;
	else if (io->holds)
		io->holds--;
	pthread_mutex_unlock(&io->lock);
}

uint64_t image_io_writeback_steps(struct image_io *io)
{
	return counter(io, &io->wb_steps);
}

/* A step of background writeback may start: not held, and counted in the same section, so
 * a hold taken at any moment sees every step that starts after it (none should). */
bool writeback_step_begins(struct image_io *io)
{
	bool go;

	pthread_mutex_lock(&io->lock);
	go = io->holds == 0;
	if (go)
		io->wb_steps++;
	pthread_mutex_unlock(&io->lock);
	return go;
}

bool writeback_held(struct image_io *io)
{
	bool held;

	pthread_mutex_lock(&io->lock);
	held = io->holds > 0;
	pthread_mutex_unlock(&io->lock);
	return held;
}

void image_io_set_lost(struct image_io *io, int64_t since, const char *error)
{
	pthread_mutex_lock(&io->lock);
	io->lost_since = since;
	snprintf(io->lost_error, sizeof(io->lost_error), "%s", since ? error : "");
	pthread_mutex_unlock(&io->lock);
}

int64_t image_io_lost(struct image_io *io, char *error, size_t len)
{
	int64_t since;

	pthread_mutex_lock(&io->lock);
	since = io->lost_since;
	snprintf(error, len, "%s", io->lost_error);
	pthread_mutex_unlock(&io->lock);
	return since;
}

/* A writeback of the image failed: the kernel has given up on those pages (it marks them
 * clean and reports the error once per open file), so the writes are gone. The first
 * failure is the one to remember. */
void lose_writes(struct image_io *io, const char *what)
{
	pthread_mutex_lock(&io->lock);
	if (!io->lost_since) {
		io->lost_since = (int64_t)time(NULL);
		snprintf(io->lost_error, sizeof(io->lost_error), "%.191s", what);
	}
	pthread_mutex_unlock(&io->lock);
}

