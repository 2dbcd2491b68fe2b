/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Registry writes off the event loop. The loop hands over a serialised snapshot and a
 * generation number; one thread writes it atomically (with its fsyncs) and reports the
 * newest generation done through an eventfd. Snapshots queued while a write is running are
 * collapsed into the newest one: a single write then acknowledges every change before it
 * (group commit), which is what keeps a burst of claims fast.
 */
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>

#include "registry.h"
#include "util.h"

struct persister {
	char *state_dir;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int efd;
	bool stop;
	/* guarded by lock */
	char *pending;      /* newest snapshot not yet written */
	size_t pending_len;
	uint64_t pending_gen;
	uint64_t done_gen;  /* newest snapshot written (or failed) */
	int done_error;
	uint64_t submitted;
};

static void *persister_main(void *arg)
{
	struct persister *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		char *data;
		size_t len;
		uint64_t gen, one = 1;
		int r;

		while (!p->pending && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (!p->pending)
			break; /* stop, with nothing left to write */
		data = TAKE_PTR(p->pending);
		len = p->pending_len;
		gen = p->pending_gen;
		pthread_mutex_unlock(&p->lock);

		r = registry_write_atomic(p->state_dir, data, len);
		free(data);

		pthread_mutex_lock(&p->lock);
		p->done_gen = gen;
		p->done_error = r;
		if (write(p->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice; the loop reads it each time */
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int persister_start(const char *state_dir, struct persister **ret)
{
	struct persister *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	p->state_dir = strdup(state_dir);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!p->state_dir || p->efd < 0) {
		r = p->state_dir ? -errno : -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	r = -pthread_create(&p->thread, NULL, persister_main, p);
	if (r < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	if (p->efd >= 0)
		close(p->efd);
	free(p->state_dir);
	free(p);
	return r;
}

/* Stops after writing whatever is queued: a clean shutdown loses nothing either. */
void persister_stop(struct persister *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	free(p->pending);
	close(p->efd);
	free(p->state_dir);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

int persister_fd(struct persister *p)
{
	return p->efd;
}

uint64_t persister_submit(struct persister *p, char *data, size_t len)
{
	uint64_t gen;

	pthread_mutex_lock(&p->lock);
	free(p->pending); /* superseded: the newer snapshot contains its changes */
	p->pending = data;
	p->pending_len = len;
	gen = p->pending_gen = ++p->submitted;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return gen;
}

void persister_completed(struct persister *p, uint64_t *ret_gen, int *ret_error)
{
	uint64_t v;

	if (read(p->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: spurious wake-up; report the state as it is */
	}
	pthread_mutex_lock(&p->lock);
	*ret_gen = p->done_gen;
	*ret_error = p->done_error;
	pthread_mutex_unlock(&p->lock);
}
