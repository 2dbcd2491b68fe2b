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
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct etcd;
struct json_object;
struct directory;

#define CLUSTER_PREFIX "/tagmem/v1/"
/* Keys (docs/cluster.md): CLUSTER_PREFIX "hosts/<host>/tags/<tag>" a tag's record on a host,
 * CLUSTER_PREFIX "hostinfo/<host>" the host (so that "where is T" reads one key per host),
 * CLUSTER_PREFIX "claims/<tag>" an exclusive claim. */

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

/* The host's lease, granted now if there is none (claims live under it too). */
int directory_lease(struct directory *d, int64_t *ret);
/* When the lease could last have been renewed (usec, now_usec()'s clock; 0: never). */
uint64_t directory_renewed_at(const struct directory *d);

/* claims.c: cluster-wide exclusive claims, under the host's lease (docs/cluster.md). */
struct claims;
int claims_new(struct etcd *etcd, struct directory *dir, const char *host, struct claims **ret);
void claims_free(struct claims *c);
/* Win the tag for (uid, name), or -EBUSY with *ret_holder the holder's record (or NULL);
 * *ret_token the fencing token: larger for every new holder. */
int claims_acquire(struct claims *c, const char *tag, uid_t uid, const char *name,
		   int64_t *ret_token, struct json_object **ret_holder);
/* -ENOENT not held here, -EPERM held by another uid (root may). */
int claims_release(struct claims *c, const char *tag, uid_t uid);
size_t claims_count(const struct claims *c);
/* [{tag, uid, token}] of the claims held here. */
struct json_object *claims_json(const struct claims *c);
/* A live migration's switch: the claims of tags move to host `to`, under its lease, in one
 * transaction (docs/cluster.md "Live migration"). Each tag must be held here or by nobody,
 * and be in `to`'s part of the directory. -EHOSTUNREACH `to` has no clusterd alive; -ENXIO
 * `to` has no tag *ret_holder (a string); -EBUSY another holds one (*ret_holder its record);
 * -EAGAIN something changed between the reads and the transaction; else etcd's errors.
 * check_only: every check, no transaction. *ret_token: the claims' new fencing token. */
struct hand_over {
	const char *to;
	const char *const *tags;
	size_t n;
	uid_t uid;
	const char *name;       /* the VM */
	bool check_only;
};
int claims_hand_over(struct claims *c, const struct hand_over *h, int64_t *ret_token,
		     struct json_object **ret_holder);
/* The lease is, or may be, gone: forget every claim; returns what was lost. */
struct json_object *claims_lose_all(struct claims *c);

/* Does the host have the tag, by the last list it published? */
bool directory_has(const struct directory *d, const char *tag);

/* socket.c: clusterd's own socket (docs/cluster.md "Exclusive claims"). */
struct local;
struct local_client;
struct pollfd;
typedef void (*local_request_fn)(void *data, struct local_client *c, const char *op,
				 struct json_object *id, struct json_object *msg);
int local_open(const char *path, struct local **ret);
void local_close(struct local *l);
/* The fds to poll (the listener first); how many. */
size_t local_pollfds(struct local *l, struct pollfd *fds, size_t max);
/* Accept and serve what poll found ready: fn for each request. */
void local_ready(struct local *l, const struct pollfd *fds, size_t n, local_request_fn fn,
		 void *data);
void local_reply(struct local_client *c, struct json_object *id, struct json_object *result);
void local_error(struct local_client *c, struct json_object *id, const char *code,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
uid_t local_uid(const struct local_client *c);
void local_subscribe(struct local_client *c);
void local_broadcast(struct local *l, struct json_object *event);

/* The record of one tag of brokerd's list (a JSON string, *ret to free); -EINVAL if the entry
 * is not one (exposed for the unit test). */
int directory_record(const char *host, struct json_object *entry, char **ret_tag,
		     char **ret);

#endif
