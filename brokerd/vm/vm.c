/* SPDX-License-Identifier: GPL-2.0-or-later */
/* VM monitors (vm.h): one QMP connection and one worker thread per VM, jobs in order. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "list.h"
#include "loop.h"
#include "mailbox.h"
#include "qmp.h"
#include "util.h"
#include "vm.h"

#define QMP_TIMEOUT_MS 10000

struct vms {
	struct loop *loop;
	struct vm_callbacks cb;
	struct list_head monitors;
};

struct vm_monitor {
	struct vms *vms;
	char vm[65];
	uid_t uid;
	char qmp_path[108];          /* what the caller named (for messages and matching) */
	int qmp_fd;                  /* connected by the loop, until the worker takes it */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake[2];                 /* tells the worker to look at its queue */
	struct mailbox done;         /* finished jobs, to the loop */
	bool stop;
	struct vm_job *todo;     /* guarded by lock */
	bool exited;                 /* the VM went away: guarded by lock */
	struct list_node node;       /* in vms->monitors */
};

void vm_job_fail(struct vm_job *j, int error, const char *code, const char *fmt, ...)
{
	va_list ap;

	j->error = error;
	snprintf(j->errcode, sizeof(j->errcode), "%s", code);
	va_start(ap, fmt);
	vsnprintf(j->errmsg, sizeof(j->errmsg), fmt, ap);
	va_end(ap);
}

/* A finished job to the loop; NULL only wakes it (to see that the VM exited). */
static void post(struct vm_monitor *m, struct vm_job *j)
{
	if (j)
		mailbox_append(&m->done, &j->finished);
	mailbox_wake(&m->done);
}

/* Hand every finished job to its completion, oldest first. */
static void deliver_done(struct vm_monitor *m)
{
	struct mailbox_node *n = mailbox_take(&m->done), *next;

	for (; n; n = next) {
		struct vm_job *j = container_of(n, struct vm_job, finished);

		next = n->next;
		j->done(j);
	}
}

static void *monitor_main(void *arg)
{
	struct vm_monitor *m = arg;
	struct qmp *q = NULL;

	for (;;) {
		struct vm_job *j;
		struct pollfd pfd[2] = { { .fd = m->wake[0], .events = POLLIN },
					 { .fd = q ? qmp_fd(q) : -1, .events = POLLIN } };

		pthread_mutex_lock(&m->lock);
		j = m->todo;
		if (j)
			m->todo = j->next;
		bool stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		if (j) {
			int r = 0;
			if (!q) {
				/* the socket the loop connected to and checked: never the name again */
				r = qmp_open_fd(m->qmp_fd, QMP_TIMEOUT_MS, &q);
				m->qmp_fd = -1;
				if (r == -EPROTO)
					vm_job_fail(j, r, "invalid_argument", "%s does not speak QMP "
						 "(is it a QEMU -qmp socket?)", m->qmp_path);
				else if (r < 0)
					vm_job_fail(j, r, "unreachable", "cannot reach QEMU at %s: %s",
						 m->qmp_path, strerror(-r));
			}
			if (r == 0 && j->run(q, j) < 0 && !j->error)
				vm_job_fail(j, -EIO, "internal", "the job failed");
			post(m, j);
			if (r < 0) {
				/* never connected: this monitor has nothing to watch */
				pthread_mutex_lock(&m->lock);
				m->exited = true;
				pthread_mutex_unlock(&m->lock);
				post(m, NULL);
				break;
			}
			continue;
		}
		if (poll(pfd, q ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			char buf[64];
			if (read(m->wake[0], buf, sizeof(buf)) < 0) {
				/* nothing: we look at the queue anyway */
			}
		}
		if (q && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (qmp_poll_events(q, 0) < 0) {
				/* QEMU closed the monitor: the VM is gone */
				pthread_mutex_lock(&m->lock);
				m->exited = true;
				pthread_mutex_unlock(&m->lock);
				post(m, NULL);
				break;
			}
		}
	}
	qmp_close(q);
	return NULL;
}

static void monitor_free(struct vms *vms, struct vm_monitor *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_mutex_unlock(&m->lock);
	if (write(m->wake[1], "x", 1) < 0) {
		/* the worker may already be gone */
	}
	pthread_join(m->thread, NULL);
	loop_del_fd(vms->loop, mailbox_fd(&m->done));
	deliver_done(m); /* finished before the worker stopped: answer them */
	while (m->todo) {
		struct vm_job *j = m->todo;
		m->todo = j->next;
		vm_job_fail(j, -ECANCELED, "unreachable", "the monitor of VM %s went away before this "
			 "job ran (the VM exited, or brokerd is stopping); retry", m->vm);
		j->done(j);
	}
	list_del(&m->node);
	if (m->qmp_fd >= 0)
		close(m->qmp_fd); /* stopped before the worker took it */
	mailbox_fini(&m->done);
	close(m->wake[0]);
	close(m->wake[1]);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The loop's side: finished jobs first, then (maybe) the news that the VM exited. */
static void monitor_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct vm_monitor *m = data;
	struct vms *vms = m->vms;
	bool exited;

	/* the worker posts a job before it marks the VM exited: jobs first, then the flag (a
	 * job posted after this look is answered by monitor_free) */
	deliver_done(m);
	pthread_mutex_lock(&m->lock);
	exited = m->exited;
	pthread_mutex_unlock(&m->lock);
	if (exited) {
		char vm[65];
		uid_t uid = m->uid;
		snprintf(vm, sizeof(vm), "%s", m->vm);
		monitor_free(vms, m);
		vms->cb.exited(vms->cb.userdata, vm, uid);
	}
}

static struct vm_monitor *find(struct vms *vms, const char *vm, uid_t uid)
{
	struct vm_monitor *m;

	list_for_each(m, &vms->monitors, node)
		if (m->uid == uid && !strcmp(m->vm, vm))
			return m;
	return NULL;
}

const char *vm_monitor_path(struct vms *vms, const char *vm, uid_t uid)
{
	struct vm_monitor *m = find(vms, vm, uid);

	return m ? m->qmp_path : NULL;
}

int vm_submit(struct vms *vms, const char *vm, uid_t uid, const char *qmp_path, int qmp_fd,
	      struct vm_job *job)
{
	struct vm_monitor *m = find(vms, vm, uid);
	int r;

	if (m && (strcmp(m->qmp_path, qmp_path) || qmp_fd >= 0))
		return -EBUSY;
	if (!m && qmp_fd < 0)
		return -EINVAL;
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		m->qmp_fd = qmp_fd;
		m->vms = vms;
		m->uid = uid;
		snprintf(m->vm, sizeof(m->vm), "%s", vm);
		snprintf(m->qmp_path, sizeof(m->qmp_path), "%s", qmp_path);
		pthread_mutex_init(&m->lock, NULL);
		r = mailbox_init(&m->done);
		if (r < 0) {
			free(m);
			return r;
		}
		if (pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
			r = -errno;
			mailbox_fini(&m->done);
			free(m);
			return r;
		}
		r = loop_add_fd(vms->loop, mailbox_fd(&m->done), EPOLLIN, monitor_ready, m);
		if (r == 0)
			r = -pthread_create(&m->thread, NULL, monitor_main, m);
		if (r < 0) {
			loop_del_fd(vms->loop, mailbox_fd(&m->done));
			mailbox_fini(&m->done);
			close(m->wake[0]);
			close(m->wake[1]);
			free(m);
			return r;
		}
		list_add_head(&vms->monitors, &m->node);
	}
	pthread_mutex_lock(&m->lock);
	job->next = NULL;
	struct vm_job **pp = &m->todo;
	while (*pp)
		pp = &(*pp)->next;
	*pp = job;
	pthread_mutex_unlock(&m->lock);
	if (write(m->wake[1], "x", 1) < 0) {
		/* a full pipe already says "look" */
	}
	return 0;
}

int vms_new(struct loop *loop, const struct vm_callbacks *cb, struct vms **ret)
{
	struct vms *vms = calloc(1, sizeof(*vms));

	if (!vms)
		return -ENOMEM;
	vms->loop = loop;
	vms->cb = *cb;
	list_init(&vms->monitors);
	*ret = vms;
	return 0;
}

void vms_free(struct vms *vms)
{
	struct vm_monitor *m, *tmp;

	if (!vms)
		return;
	list_for_each_safe(m, tmp, &vms->monitors, node)
		monitor_free(vms, m);
	free(vms);
}
