/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A host's link to the fabric manager several hosts share (tagmem-fmd, docs/fabric.md):
 * it attaches by host id, makes the simulator's tree what the manager says this host has,
 * and keeps it so as the manager adds and releases. Internal to brokerd/backends.
 */
#ifndef BROKERD_FABRIC_LINK_H
#define BROKERD_FABRIC_LINK_H

struct loop;
struct sim;
struct fabric_link;
struct json_object;

/* changed(data): the simulator has queued records (drain them). */
int fabric_link_new(struct loop *loop, struct sim *sim, const char *fabric_dir,
		    const char *host, void (*changed)(void *data), void *data,
		    struct fabric_link **ret);
void fabric_link_free(struct fabric_link *l);

/* One message of the manager's, applied to the simulator (exposed for the fuzzer): 1 it
 * changed something, 0 nothing, -EBADMSG malformed. */
int fabric_link_apply(struct sim *sim, struct json_object *msg);

#endif
