/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Daemon logging. Under systemd (JOURNAL_STREAM set) each line carries a "<N>" priority
 * prefix that journald understands; otherwise a plain "brokerd: " prefix. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "brokerd.h"

static int max_priority = 6; /* info */

void log_set_max_priority(int priority)
{
	max_priority = priority;
}

void log_msg(int priority, const char *format, ...)
{
	static int journal = -1;
	int saved_errno = errno;
	va_list ap;

	if (priority > max_priority)
		return;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	va_start(ap, format);
	flockfile(stderr);
	if (journal)
		fprintf(stderr, "<%d>", priority);
	else
		fputs("brokerd: ", stderr);
	vfprintf(stderr, format, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
	errno = saved_errno;
}
