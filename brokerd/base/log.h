/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * brokerd's one logging path. The daemon logs through a libtagmem context, so the library's
 * own messages and the daemon's share one sink (stderr, with journald priority prefixes under
 * systemd) and one level: TAGMEM_LOG (err, info, debug or 3/6/7) or brokerd -v.
 */
#ifndef BROKERD_LOG_H
#define BROKERD_LOG_H

#include "util.h"

struct tagmem_ctx;

/* Make ctx the daemon's log context (referenced) and point its output at our sink. NULL:
 * log to stderr at info (unit tests, before the daemon starts). */
void log_setup(struct tagmem_ctx *ctx);
void log_set_max_priority(int priority);
/* Another program built on brokerd's parts (tagmem-fmd) logs under its own name. */
void log_set_name(const char *name);
void log_msg(int priority, const char *format, ...) _printf_(2, 3);

#define log_err(...) log_msg(3, __VA_ARGS__)
#define log_warn(...) log_msg(4, __VA_ARGS__)
#define log_info(...) log_msg(6, __VA_ARGS__)
#define log_debug(...) log_msg(7, __VA_ARGS__)

#endif
