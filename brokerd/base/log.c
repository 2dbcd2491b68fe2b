/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Daemon logging through the libtagmem context (log.h). Under systemd (JOURNAL_STREAM set)
 * each line carries a "<N>" priority prefix that journald understands; otherwise a plain
 * "brokerd: " prefix (or the program's own: log_set_name). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "tagmem.h"

static struct tagmem_ctx *log_context;
static const char *log_name = "brokerd"; /* the prefix without a journal */
static int max_priority = LOG_INFO; /* used until log_setup() hands us a context */

static void sink(int priority, const char *fn, const char *format, va_list ap)
{
	static int journal = -1;
	size_t len = strlen(format);

	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	flockfile(stderr);
	if (journal)
		fprintf(stderr, "<%d>", priority);
	else
		fprintf(stderr, "%s: ", log_name);
	if (fn)
		fprintf(stderr, "%s: ", fn);
	vfprintf(stderr, format, ap);
	if (!len || format[len - 1] != '\n') /* library messages end in \n, ours do not */
		fputc('\n', stderr);
	funlockfile(stderr);
}

static void library_sink(struct tagmem_ctx *ctx _unused_, int priority, const char *file _unused_,
			 int line _unused_, const char *fn, const char *format, va_list args)
{
	sink(priority, fn, format, args);
}

void log_setup(struct tagmem_ctx *ctx)
{
	tagmem_unref(log_context);
	log_context = tagmem_ref(ctx);
	if (!ctx)
		return;
	tagmem_set_log_fn(ctx, library_sink);
	/* TAGMEM_LOG, when set, decides; otherwise a daemon logs at info */
	if (!getenv("TAGMEM_LOG"))
		tagmem_set_log_priority(ctx, max_priority);
}

void log_set_name(const char *name)
{
	log_name = name;
}

void log_set_max_priority(int priority)
{
	max_priority = priority;
	if (log_context)
		tagmem_set_log_priority(log_context, priority);
}

void log_msg(int priority, const char *format, ...)
{
	int saved_errno = errno;
	va_list ap;

	if (priority > (log_context ? tagmem_get_log_priority(log_context) : max_priority))
		return;
	va_start(ap, format);
	sink(priority, NULL, format, ap);
	va_end(ap);
	errno = saved_errno;
}
