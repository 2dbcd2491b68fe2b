/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest channels: the front door of brokerd/guests. The host end of the channel between
 * brokerd and the guest agent (tagmem-guestd) inside a VM: QEMU connects a virtio-serial port
 * (name org.tagmem.guest.0) to a Unix socket brokerd listens on, one socket per VM, owned by
 * the VM's uid. Framing, bounds and rate only: each request line goes to the callback with
 * the VM's identity, which is the socket it came in on, never anything the guest says. It
 * knows nothing of tags.
 *
 * Everything from a guest is hostile: lines are bounded (a longer one closes the
 * connection; QEMU reconnects), requests are rate-limited per VM by not reading past the
 * budget (the guest's own writes block, nobody else's), and a guest that does not read what
 * it is sent is disconnected once max_output is queued for it.
 *
 * Every channel has an end: one that nobody is connected to and whose VM holds nothing (the
 * in_use callback says) is closed after idle_ms, and at once, oldest first, when its uid or
 * brokerd has as many channels as allowed and another VM needs one. A VM that gets tags again
 * gets its channel again at the same path; QEMU reconnects by itself.
 */
#ifndef BROKERD_GUESTS_H
#define BROKERD_GUESTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;
struct loop;
struct guests;
struct guest_vm;

#define GUEST_PORT_NAME "org.tagmem.guest.0"
#define GUEST_PROTOCOL 1

struct guest_limits {
	size_t max_line;        /* longest request line from a guest */
	size_t max_output;      /* bytes queued to one guest before it is disconnected */
	unsigned rate;          /* requests per second a guest gets handled, sustained */
	unsigned burst;         /* ... and at once */
	unsigned max_vms;       /* channel sockets at once (each is an fd) */
	unsigned max_vms_per_uid;
	unsigned idle_ms;       /* an unconnected channel of a VM that holds nothing ends */
};

struct guest_callbacks {
	void *userdata;
	/* A guest connected (send it what it should know). */
	void (*connected)(void *userdata, struct guest_vm *g);
	/* One request line (without its newline); answer with guest_send(). */
	void (*request)(void *userdata, struct guest_vm *g, const char *line, size_t len);
	/* Does VM (uid, name) still need its channel while nobody is connected (holds tags)? */
	bool (*in_use)(void *userdata, uid_t uid, const char *name);
};

/* dir: where the channel sockets live (created 0755 if missing). */
int guests_new(struct loop *loop, const char *dir, const struct guest_limits *limits,
	       const struct guest_callbacks *cb, struct guests **ret);
void guests_free(struct guests *gs);

/* The channel of VM (uid, name): listening from now on, its socket owned by uid, mode 0600.
 * At a limit, idle channels of VMs that hold nothing make room first; then -EUSERS when uid
 * has as many channels as allowed, -ENFILE when brokerd has. */
int guests_open(struct guests *gs, uid_t uid, const char *name, struct guest_vm **ret);
/* Stop listening for VM (uid, name) and drop its connection; nothing if there is none. */
void guests_close(struct guests *gs, uid_t uid, const char *name);
struct guest_vm *guests_find(struct guests *gs, uid_t uid, const char *name);
/* The socket path a VM's channel has (or would have): dir/<uid>-<name>.sock. */
int guests_path(const struct guests *gs, uid_t uid, const char *name, char *buf, size_t len);

uid_t guest_uid(const struct guest_vm *g);
const char *guest_name(const struct guest_vm *g);
const char *guest_path(const struct guest_vm *g);
bool guest_connected(const struct guest_vm *g);
/* Channels listening, and how many of them have their guest connected. */
unsigned guests_count(const struct guests *gs, unsigned *ret_connected);
/* One message line to the guest (consumed); dropped when it is not connected. */
void guest_send(struct guests *gs, struct guest_vm *g, struct json_object *msg);

#endif
