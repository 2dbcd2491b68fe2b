/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small etcd v3 client over etcd's JSON gateway (POST /v3/kv/range, /v3/kv/txn,
 * /v3/lease/grant, /v3/lease/keepalive, /v3/watch; keys and values base64, 64-bit numbers as
 * strings). Blocking, with a deadline on every call, one keep-alive connection, and the next
 * endpoint of the list when one fails: it runs in tagmem-clusterd and the CLI, never on
 * brokerd's event loop. Everything etcd answers is checked before it is used.
 *
 * Internal: not installed, not part of the public API.
 */
#ifndef TAGMEM_ETCD_H
#define TAGMEM_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct etcd;
struct etcd_watch;

#define ETCD_MAX_BODY (64u << 20) /* a reply larger than this is refused (-EMSGSIZE) */

/* endpoints: "http://127.0.0.1:2379,http://127.0.0.1:22379". -EINVAL for a malformed list. */
int etcd_open(const char *endpoints, int timeout_ms, struct etcd **ret);
/*
 * Who the client is. https:// endpoints: trust only ca; present cert and key (etcd's
 * --client-cert-auth: no certificate, no connection). user and password: the etcd user whose
 * role says what it may read and write (etcd's gateway ignores a certificate's CN for that,
 * and refuses a request whose certificate has one once auth is on: give the client a
 * certificate without a CN). -EKEYREJECTED when the files cannot be loaded.
 */
struct etcd_credentials {
	const char *ca, *cert, *key;
	const char *user, *password;
};
int etcd_open_as(const char *endpoints, const struct etcd_credentials *tls, int timeout_ms,
		  struct etcd **ret);
/* The password in a file (its first line; a password is never an argument, where ps shows
 * it). -EPERM if others may read the file (mode 0600, like ssh's keys), -ENOENT, -EINVAL. */
int etcd_read_password(const char *path, char **ret);
void etcd_close(struct etcd *e);
/* Each call's deadline from now on (ms, > 0). */
void etcd_set_timeout(struct etcd *e, int timeout_ms);
/* The endpoint answering now (for messages). */
const char *etcd_endpoint(const struct etcd *e);

/*
 * POST path with req (borrowed); *ret the reply object. -ECONNREFUSED, -ETIMEDOUT (every
 * endpoint tried), -EPROTO (not HTTP, or not JSON), -EREMOTEIO (etcd refused: *ret has its
 * {"error", "code", "message"}), -EMSGSIZE.
 */
int etcd_call(struct etcd *e, const char *path, struct json_object *req,
	      struct json_object **ret);

/* What etcd said when it last refused a call (-EREMOTEIO), or "". */
const char *etcd_last_error(const struct etcd *e);

/* base64 of bytes as a JSON string; bytes of a base64 JSON string (NUL-terminated, *ret to
 * free; -EBADMSG). */
struct json_object *etcd_b64(const void *data, size_t len);
int etcd_unb64(struct json_object *s, char **ret, size_t *ret_len);
/* One of etcd's 64-bit numbers (a decimal string, or an integer); absent is 0. -EBADMSG. */
int etcd_get_i64(struct json_object *o, const char *key, int64_t *ret);

/* Requests for a txn's "success" list. */
struct json_object *etcd_op_put(const char *key, const char *value, int64_t lease);
struct json_object *etcd_op_delete(const char *key);
/* The range request of every key under prefix (keys_only: without values). */
struct json_object *etcd_range_prefix_req(const char *prefix, bool keys_only);

/* Every key under prefix: *ret_kvs an array of {key, value} strings (decoded), *ret_rev
 * the revision it was read at. */
int etcd_get_prefix(struct etcd *e, const char *prefix, struct json_object **ret_kvs,
		    int64_t *ret_rev);
/* The keys that exist of keys[0..n), read at one revision each batch: *ret_kvs an array of
 * {key, value} strings (decoded). */
int etcd_get_keys(struct etcd *e, const char *const *keys, size_t n,
		  struct json_object **ret_kvs);
/* Run ops (an array, consumed) in one transaction, unconditionally. */
int etcd_txn(struct etcd *e, struct json_object *ops);
int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *ret_id);
/* -ENOENT: the lease is gone (expired, or revoked). */
int etcd_lease_keepalive(struct etcd *e, int64_t id);
int etcd_lease_revoke(struct etcd *e, int64_t id);

/* A watch of every key under prefix from revision from_rev (0: from now), on a connection of
 * its own. next: 1 with *ret a result {"events": [...], ...}, 0 the timeout passed, <0 it
 * ended. */
int etcd_watch_open(struct etcd *e, const char *prefix, int64_t from_rev,
		    struct etcd_watch **ret);
int etcd_watch_next(struct etcd_watch *w, int timeout_ms, struct json_object **ret);
int etcd_watch_fd(const struct etcd_watch *w);
void etcd_watch_close(struct etcd_watch *w);

#endif
