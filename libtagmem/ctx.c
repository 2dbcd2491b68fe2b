/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library context: reference counting and context-owned logging. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

static void log_stderr(struct tagmem_ctx *ctx _unused_, int priority _unused_,
		       const char *file _unused_, int line _unused_, const char *fn,
		       const char *format, va_list args)
{
	fprintf(stderr, "libtagmem: %s: ", fn);
	vfprintf(stderr, format, args);
}

/* TAGMEM_LOG accepts a number or a name, like ndctl's NDCTL_LOG. */
static int log_priority_from_string(const char *s)
{
	char *end;
	long prio;

	prio = strtol(s, &end, 10);
	if (end != s && *end == '\0' && prio >= 0 && prio <= LOG_DEBUG)
		return (int)prio;
	if (!strncmp(s, "err", 3))
		return LOG_ERR;
	if (!strncmp(s, "info", 4))
		return LOG_INFO;
	if (!strncmp(s, "debug", 5))
		return LOG_DEBUG;
	return LOG_ERR;
}

TAGMEM_EXPORT int tagmem_new(struct tagmem_ctx **ret_ctx)
{
	struct tagmem_ctx *ctx;
	const char *env;

	if (!ret_ctx)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->refcount = 1;
	ctx->log_fn = log_stderr;
	ctx->log_priority = LOG_ERR;
	env = secure_getenv("TAGMEM_LOG");
	if (env)
		ctx->log_priority = log_priority_from_string(env);
	*ret_ctx = ctx;
	return 0;
}

TAGMEM_EXPORT struct tagmem_ctx *tagmem_ref(struct tagmem_ctx *ctx)
{
	if (ctx)
		ctx->refcount++;
	return ctx;
}

TAGMEM_EXPORT struct tagmem_ctx *tagmem_unref(struct tagmem_ctx *ctx)
{
	if (!ctx)
		return NULL;
	if (--ctx->refcount > 0)
		return NULL;
	free(ctx);
	return NULL;
}

TAGMEM_EXPORT void tagmem_set_log_fn(struct tagmem_ctx *ctx, tagmem_log_fn fn)
{
	if (ctx)
		ctx->log_fn = fn ? fn : log_stderr;
}

TAGMEM_EXPORT int tagmem_get_log_priority(struct tagmem_ctx *ctx)
{
	return ctx ? ctx->log_priority : LOG_ERR;
}

TAGMEM_EXPORT void tagmem_set_log_priority(struct tagmem_ctx *ctx, int priority)
{
	if (ctx)
		ctx->log_priority = priority;
}

TAGMEM_EXPORT const char *tagmem_get_version(void)
{
	return TAGMEM_VERSION;
}

void tagmem_log(struct tagmem_ctx *ctx, int priority, const char *file, int line,
		const char *fn, const char *format, ...)
{
	int saved_errno = errno;
	va_list args;

	va_start(args, format);
	ctx->log_fn(ctx, priority, file, line, fn, format, args);
	va_end(args);
	errno = saved_errno;
}
