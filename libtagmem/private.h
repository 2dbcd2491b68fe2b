/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libtagmem internals: the real context struct and the logging macros. Not installed. */
#ifndef TAGMEM_PRIVATE_H
#define TAGMEM_PRIVATE_H

#include <syslog.h>

#include "tagmem.h"
#include "util.h"

#define TAGMEM_EXPORT __attribute__((visibility("default")))

/* The timeout tagmem_client_set_timeout gave the typed calls (-1: none). */
int client_timeout(const struct tagmem_client *c);

struct tagmem_ctx {
	int refcount;
	tagmem_log_fn log_fn;
	int log_priority;
	void *userdata;
};

void tagmem_log(struct tagmem_ctx *ctx, int priority, const char *file, int line,
		const char *fn, const char *format, ...) _printf_(6, 7);

/* errno is preserved across logging, so "log then return -errno" stays correct. */
#define tm_log_cond(ctx, prio, ...)                                                        \
	do {                                                                               \
		if ((ctx) && tagmem_get_log_priority(ctx) >= (prio))                       \
			tagmem_log(ctx, prio, __FILE__, __LINE__, __func__, __VA_ARGS__);  \
	} while (0)
#define tm_dbg(ctx, ...) tm_log_cond(ctx, LOG_DEBUG, __VA_ARGS__)
#define tm_info(ctx, ...) tm_log_cond(ctx, LOG_INFO, __VA_ARGS__)
#define tm_err(ctx, ...) tm_log_cond(ctx, LOG_ERR, __VA_ARGS__)

#endif
