/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by every tagmem folder (library, daemon, CLI, tests).
 * Internal: not installed, not part of the public API.
 */
#ifndef TAGMEM_UTIL_H
#define TAGMEM_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                                                        \
	({                                                                                 \
		__typeof__(p) _p = (p);                                                    \
		(p) = NULL;                                                                \
		_p;                                                                        \
	})
#define TAKE_FD(fd)                                                                        \
	({                                                                                 \
		int _fd = (fd);                                                            \
		(fd) = -1;                                                                 \
		_fd;                                                                       \
	})

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno; /* close() in cleanup must not clobber the caller's errno */
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

struct json_object;
void json_object_putp(struct json_object **o);
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Make room for one more element in a growable array (doubling); -ENOMEM. */
int grow_array(void *arrayp, size_t *cap, size_t count, size_t elem_size);

/* Monotonic clock in microseconds. */
uint64_t now_usec(void);

/* Parse "1G", "512M", "2097152", "0x200000" into bytes; -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *ret_bytes);
/* Format bytes for people: "1.00 GiB". */
const char *format_size(uint64_t bytes, char *buf, size_t len);

/* mkdir -p: path and every missing parent (mode for the new ones); -errno. */
int mkdir_parents(const char *path, mode_t mode);

/* write()/read() the whole buffer, retrying on EINTR; -errno. */
int write_all(int fd, const void *buf, size_t len);

/* Replace file name in directory dfd with data, durably and atomically: written to tmp (same
 * directory, 0600), fsynced, renamed over name, the directory fsynced. After a crash name is
 * the old file or the new one, never a mixture; on failure tmp is gone. -errno. */
int write_file_atomic(int dfd, const char *name, const char *tmp, const void *data, size_t len);

/* The one rule for names that become file names and keys (VM names, host ids): 1 to max
 * letters, digits, '-', '_' or '.', and never "." or "..". */
bool name_valid(const char *s, size_t max);

#endif
