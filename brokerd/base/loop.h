/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * brokerd's event loop: file events and timers on one epoll instance, nothing else.
 * Callbacks must not block; slow work goes to a worker thread that reports back via an fd.
 */
#ifndef BROKERD_LOOP_H
#define BROKERD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;

typedef void (*loop_fd_fn)(struct loop *l, int fd, uint32_t events, void *data);
/* Returns the next interval in milliseconds, or a negative value to stop the timer. */
typedef int64_t (*loop_timer_fn)(struct loop *l, void *data);

int loop_new(struct loop **ret_loop);
void loop_free(struct loop *l);
int loop_add_fd(struct loop *l, int fd, uint32_t events, loop_fd_fn fn, void *data);
int loop_mod_fd(struct loop *l, int fd, uint32_t events);
/* Safe to call from any callback, for any fd, including the one being dispatched. */
void loop_del_fd(struct loop *l, int fd);
/* A timer: fn runs after interval_ms, then after whatever it returns (< 0: it ends). Its id
 * (> 0), or -errno. An id names one timer for good: once it has ended, it names nothing. */
int64_t loop_add_timer(struct loop *l, uint64_t interval_ms, loop_timer_fn fn, void *data);
/* End the timer (from anywhere, its own callback too); nothing if it has ended already. */
void loop_cancel_timer(struct loop *l, int64_t id);
/* Will the timer still run? (An id of 0 or below names no timer.) */
bool loop_timer_pending(struct loop *l, int64_t id);
/* Work callbacks leave for later (one per loop): called after every batch of events and
 * timers; while it returns true the loop polls without sleeping. */
typedef bool (*loop_pending_fn)(struct loop *l, void *data);
void loop_set_pending(struct loop *l, loop_pending_fn fn, void *data);
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
