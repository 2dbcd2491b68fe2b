/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Progress on long work, on a terminal only (never with --json or into a pipe): the elapsed
 * seconds while tagmem waits for brokerd, or better where there is better: an image's page
 * cache while it is flushed or evicted, a VM save's bytes from brokerd's progress events.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t long_seconds;
static bool watching(void);

/* Once a second while brokerd works: the elapsed time on the terminal (async-signal-safe). */
static void progress_tick(int sig)
{
	char line[64] = "\r  working… ";
	size_t n = strlen(line);
	int s = ++long_seconds, saved = errno;
	char digits[16];
	int d = 0;

	(void)sig;
	if (watching())
		return; /* the image watcher has better to show */
	do {
		digits[d++] = (char)('0' + s % 10);
		s /= 10;
	} while (s && d < (int)sizeof(digits));
	while (d)
		line[n++] = digits[--d];
	line[n++] = 's';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* a progress line is not worth failing for */
	}
	errno = saved;
}

/*
 * Progress of a flush or an eviction, read from the page cache itself: brokerd's own figures
 * come from the same image's queue, behind the work being watched. A thread looks up the
 * image's file once, then shows its dirty (flush) or resident (evict) bytes twice a second
 * with cachestat(2); where it cannot (no cachestat, no permission), the elapsed time stays.
 */
struct watch_image {
	pthread_t thread;
	_Atomic bool stop, started;
	char socket[PATH_MAX];
	char tag[TAGMEM_TAG_STRING_MAX];
	bool evict;
	char vm[65];              /* watching a save or restore of this VM instead */
};
static struct watch_image watcher;

static bool watching(void)
{
	return atomic_load(&watcher.started);
}

struct cs_range { uint64_t off, len; };
struct cs_stat { uint64_t cache, dirty, writeback, evicted, recently_evicted; };

/* A save or restore: brokerd's vm_snapshot_progress events for this VM, as they come. */
static void watch_snapshot(struct watch_image *w, struct tagmem_client *c)
{
	struct json_object *req = tagmem_request_new("subscribe"), *reply = NULL;
	int r = tagmem_client_call_result(c, req, 2000, &reply);

	json_object_put(req);
	json_object_put(reply);
	while (r == 0 && !atomic_load(&w->stop)) {
		struct json_object *ev = NULL;
		const char *name, *vm, *op;
		uint64_t done, total;
		char a[32], b[32], line[160];
		int n;

		if (tagmem_client_next_event(c, 100, &ev) < 0)
			continue;
		if (tagmem_json_get_string(ev, "event", &name) == 0 &&
		    !strcmp(name, "vm_snapshot_progress") &&
		    tagmem_json_get_string(ev, "vm", &vm) == 0 && !strcmp(vm, w->vm) &&
		    tagmem_json_get_string(ev, "op", &op) == 0 &&
		    tagmem_json_get_u64(ev, "done_bytes", &done) == 0 &&
		    tagmem_json_get_u64(ev, "total_bytes", &total) == 0 && total) {
			n = snprintf(line, sizeof(line), "\r  %s VM %s: %s of %s (%llu%%)\033[K",
				     strcmp(op, "save") ? "restoring" : "saving", vm,
				     format_size(MIN(done, total), a, sizeof(a)),
				     format_size(total, b, sizeof(b)),
				     (unsigned long long)(MIN(done, total) * 100 / total));
			if (!atomic_load(&w->stop) && write(STDERR_FILENO, line, (size_t)n) > 0)
				atomic_store(&w->started, true);
		}
		json_object_put(ev);
	}
}

static void *watch_main(void *arg)
{
	struct watch_image *w = arg;
	struct tagmem_ctx *ctx = NULL;
	struct tagmem_client *c = NULL;
	struct json_object *req = NULL, *reply = NULL;
	const char *path = NULL;
	int fd = -1;

	if (tagmem_new(&ctx) < 0 || tagmem_client_connect(ctx, w->socket[0] ? w->socket : NULL, &c) < 0)
		goto out;
	if (w->vm[0]) {
		watch_snapshot(w, c);
		goto out;
	}
	req = tagmem_request_new("lookup");
	json_object_object_add(req, "tag", json_object_new_string(w->tag));
	if (tagmem_client_call_result(c, req, 2000, &reply) < 0 ||
	    tagmem_json_get_string(tagmem_reply_result(reply), "path", &path) < 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		goto out;
	for (unsigned tick = 0; !atomic_load(&w->stop); tick++) {
		struct cs_range r = { 0, 0 };
		struct cs_stat st;
		char a[32], b[32], line[160];
		int n;

		usleep(100000);
		if (tick % 5 != 4)
			continue;
		if (syscall(451, fd, &r, &st, 0) < 0)
			break;
		n = w->evict ? snprintf(line, sizeof(line), "\r  evicting: %s resident\033[K",
					format_size(st.cache * 4096, a, sizeof(a))) :
			       snprintf(line, sizeof(line), "\r  flushing: %s dirty, %s in writeback\033[K",
					format_size(st.dirty * 4096, a, sizeof(a)),
					format_size(st.writeback * 4096, b, sizeof(b)));
		if (!atomic_load(&w->stop) && write(STDERR_FILENO, line, (size_t)n) < 0)
			break;
		atomic_store(&w->started, true);
	}
out:
	if (fd >= 0)
		close(fd);
	json_object_put(req);
	json_object_put(reply);
	tagmem_client_unref(c);
	tagmem_unref(ctx);
	return NULL;
}

void cli_watch_snapshot(struct cli *cli, const char *vm)
{
	if (cli->json || !isatty(STDERR_FILENO) || watcher.thread)
		return;
	snprintf(watcher.socket, sizeof(watcher.socket), "%s", cli->socket ? cli->socket : "");
	snprintf(watcher.vm, sizeof(watcher.vm), "%s", vm);
	if (pthread_create(&watcher.thread, NULL, watch_main, &watcher))
		watcher.thread = 0;
}

void cli_watch_image(struct cli *cli, const char *tag, bool evict)
{
	if (cli->json || !isatty(STDERR_FILENO) || watcher.thread)
		return;
	snprintf(watcher.socket, sizeof(watcher.socket), "%s", cli->socket ? cli->socket : "");
	snprintf(watcher.tag, sizeof(watcher.tag), "%s", tag);
	watcher.evict = evict;
	if (pthread_create(&watcher.thread, NULL, watch_main, &watcher))
		watcher.thread = 0;
}

void cli_progress_stop(void)
{
	struct itimerval off = { 0 };

	if (watcher.thread) {
		atomic_store(&watcher.stop, true);
		pthread_join(watcher.thread, NULL);
		watcher.thread = 0;
		if (atomic_load(&watcher.started))
			long_seconds = 1; /* so the line is cleared below */
	}
	setitimer(ITIMER_REAL, &off, NULL);
	if (long_seconds && write(STDERR_FILENO, "\r\033[K", 4) < 0) {
		/* the line stays; harmless */
	}
	long_seconds = 0;
}

void cli_long_operation(struct cli *cli)
{
	if (!cli->timeout_given)
		cli->timeout_ms = 3600 * 1000;
	/* people at a terminal see that it works; scripts and --json get nothing extra */
	if (!cli->json && isatty(STDERR_FILENO)) {
		struct sigaction sa = { .sa_handler = progress_tick, .sa_flags = SA_RESTART };
		struct itimerval every = { { 1, 0 }, { 1, 0 } };

		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &every, NULL);
		atexit(cli_progress_stop);
	}
}

