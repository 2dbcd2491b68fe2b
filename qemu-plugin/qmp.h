/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A QMP client that behaves: reads the greeting, negotiates capabilities first, matches
 * replies by id, sets aside events that arrive between replies, reports errors by their
 * class (never by parsing "desc"), and gives up on a deadline. Blocking: call it from a
 * worker thread, never from brokerd's event loop.
 */
#ifndef TAGMEM_QMP_H
#define TAGMEM_QMP_H

#include <stddef.h>

struct json_object;
struct qmp;

#define QMP_MAX_MESSAGE (1u << 20)

/* Connect to a QMP socket and negotiate. -ENOTCONN/-ECONNREFUSED/-ENOENT: nothing there;
 * -EPROTO: not QMP (no greeting, or garbage); -ETIMEDOUT. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **ret);
/* The two halves of qmp_connect, for a caller that must check whom it reached (SO_PEERCRED)
 * before it talks: connect without blocking (-EAGAIN: the listener's backlog is full), then
 * negotiate on that fd (taken over, closed on failure). */
int qmp_socket_connect(const char *path, int *ret_fd);
int qmp_open_fd(int fd, int timeout_ms, struct qmp **ret);
void qmp_close(struct qmp *q);
int qmp_fd(struct qmp *q);

/*
 * Execute a command (args may be NULL; not consumed). On success *ret_return (may be NULL)
 * receives the "return" value. A QMP error returns -EREMOTEIO with its class and desc copied
 * into errclass/errdesc (either may be NULL). -ECONNRESET: QEMU went away.
 */
int qmp_execute(struct qmp *q, const char *command, struct json_object *args, int timeout_ms,
		struct json_object **ret_return, char *errclass, size_t classlen, char *errdesc,
		size_t desclen);

/* The same, with a descriptor passed to QEMU alongside the command (getfd, add-fd). */
int qmp_execute_fd(struct qmp *q, const char *command, struct json_object *args, int fd,
		   int timeout_ms, struct json_object **ret_return, char *errclass,
		   size_t classlen, char *errdesc, size_t desclen);

/* Wait up to timeout_ms for input; 1 if an event arrived (it is read and dropped), 0 on
 * timeout, -ECONNRESET when QEMU closed the socket (the VM exited). */
int qmp_poll_events(struct qmp *q, int timeout_ms);

#endif
