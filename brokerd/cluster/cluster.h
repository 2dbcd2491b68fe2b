/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The cluster tag directory: the front door of brokerd/cluster, run by tagmem-clusterd next to
 * each host's brokerd. The directory on etcd is a projection of the host's local truth (what
 * brokerd lists), published under the host's lease; it is rebuilt from local state after any
 * loss of etcd (compare, then put or delete: idempotent), so it never holds a stale key for
 * longer than the lease. brokerd never waits on it. Key schema: docs/cluster.md.
 */
#ifndef BROKERD_CLUSTER_H
#define BROKERD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

struct etcd;
struct json_object;
struct directory;

#define CLUSTER_PREFIX "/tagmem/v1/"

/* What this host publishes, and what it last knows to be in etcd. */
int directory_new(struct etcd *etcd, const char *host, int64_t ttl_s, struct directory **ret);
void directory_free(struct directory *d);

/*
 * Publish brokerd's list (the "tags" array of its list reply, borrowed): what changed since
 * the last publish, or everything (and the removal of whatever else is under this host's
 * prefix) after a new lease. 0, or an etcd error: nothing is lost, the next call retries.
 */
int directory_publish(struct directory *d, struct json_object *tags);
/* Keep the lease: call every ttl/3. -ENOENT the lease expired (the next publish republishes
 * everything under a new one); other errors: etcd unreachable. */
int directory_keepalive(struct directory *d);
/* Withdraw everything now (a clean stop): the lease is revoked. */
void directory_withdraw(struct directory *d);
/* Is the directory up to date with the last list it was given? */
bool directory_current(const struct directory *d);

/* The record of one tag of brokerd's list (a JSON string, *ret to free); -EINVAL if the entry
 * is not one (exposed for the unit test). */
int directory_record(const char *host, struct json_object *entry, char **ret_tag,
		     char **ret);

#endif
