/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A file replaced whole, on a thread of its own (textfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "textfile.h"
#include "util.h"

struct textfile {
	int dir_fd;
	char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *next;              /* queued content, or NULL */
	size_t next_len;
	bool stopping;
	_Atomic unsigned failures;
	_Atomic int last_error;
};

static int replace(struct textfile *t, const char *text, size_t len)
{
	int fd = openat(t->dir_fd, t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			0644);
	int r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, text, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(t->dir_fd, t->tmp, t->dir_fd, t->name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(t->dir_fd, t->tmp, 0);
	return r;
}

static void *writer(void *arg)
{
	struct textfile *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		char *text;
		size_t len;
		int r;

		while (!t->next && !t->stopping)
			pthread_cond_wait(&t->cond, &t->lock);
		if (!t->next)
			break;
		text = t->next;
		len = t->next_len;
		t->next = NULL;
		pthread_mutex_unlock(&t->lock);
		r = replace(t, text, len);
		free(text);
		if (r < 0 && atomic_fetch_add(&t->failures, 1) == 0)
			log_warn("Cannot write %s: %s (said once; brokerd keeps trying)", t->name,
				 strerror(-r));
		if (r < 0)
			atomic_store(&t->last_error, -r);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int textfile_start(const char *path, struct textfile **ret)
{
	struct textfile *t = calloc(1, sizeof(*t));
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int r;

	if (!t)
		return -ENOMEM;
	if (!slash || !slash[1] || strlen(slash + 1) > NAME_MAX - 8) {
		free(t);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	snprintf(t->name, sizeof(t->name), "%s", slash + 1);
	/* a dot name: node_exporter reads only *.prom, so it never sees the half-written one */
	snprintf(t->tmp, sizeof(t->tmp), ".%s.tmp", slash + 1);
	t->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->dir_fd < 0) {
		r = -errno;
		free(t);
		return r;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	r = -pthread_create(&t->thread, NULL, writer, t);
	if (r < 0) {
		close(t->dir_fd);
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void textfile_put(struct textfile *t, char *text, size_t len)
{
	pthread_mutex_lock(&t->lock);
	free(t->next); /* superseded before it was written */
	t->next = text;
	t->next_len = len;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

unsigned textfile_failures(struct textfile *t, int *ret_last)
{
	*ret_last = atomic_load(&t->last_error);
	return atomic_load(&t->failures);
}

void textfile_stop(struct textfile *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	free(t->next);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	close(t->dir_fd);
	free(t);
}
