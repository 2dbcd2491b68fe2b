/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster-wide exclusive claims: one holder of a tag across every host, where the fabric
 * enforces nothing (famfs's single master, say). etcd is their truth: a transaction creates
 * /tagmem/v1/claims/<tag> only if it does not exist, under the host's lease, and the fencing
 * token is the revision that created it (etcd's revisions only grow, so a new holder always
 * has a larger token). The key goes with the lease: a host that cannot renew it loses its
 * claims, and says so to their holders before the lease can have expired in etcd.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cluster.h"
#include "etcd.h"
#include "log.h"
#include "tagmem.h"
#include "util.h"

#define CLAIMS_MAX 4096

struct held {
	char tag[TAGMEM_TAG_STRING_MAX];
	uid_t uid;
	int64_t token;
};

struct claims {
	struct etcd *etcd;
	struct directory *dir;    /* the host's lease */
	char host[65];
	struct held *held;
	size_t n, cap;
};

int claims_new(struct etcd *etcd, struct directory *dir, const char *host, struct claims **ret)
{
	struct claims *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->etcd = etcd;
	c->dir = dir;
	snprintf(c->host, sizeof(c->host), "%s", host);
	*ret = c;
	return 0;
}

void claims_free(struct claims *c)
{
	if (!c)
		return;
	free(c->held);
	free(c);
}

static void claim_key(const char *tag, char *buf, size_t len)
{
	snprintf(buf, len, CLUSTER_PREFIX "claims/%s", tag);
}

static struct json_object *compare(const char *key, const char *target, const char *field,
				   int64_t value)
{
	struct json_object *c = json_object_new_object();
	char v[32];

	snprintf(v, sizeof(v), "%" PRId64, value);
	json_object_object_add(c, "key", etcd_b64(key, strlen(key)));
	json_object_object_add(c, "target", json_object_new_string(target));
	json_object_object_add(c, "result", json_object_new_string("EQUAL"));
	json_object_object_add(c, field, json_object_new_string(v));
	return c;
}

/* The holder's record from a failed txn's range response, decoded; NULL if not there. */
static struct json_object *holder_of(struct json_object *rep)
{
	struct json_object *resps, *rr, *kvs, *v;
	char *value = NULL;
	size_t len;
	struct json_object *o = NULL;

	if (!json_object_object_get_ex(rep, "responses", &resps) ||
	    !json_object_is_type(resps, json_type_array) || !json_object_array_length(resps) ||
	    !json_object_object_get_ex(json_object_array_get_idx(resps, 0), "response_range", &rr) ||
	    !json_object_object_get_ex(rr, "kvs", &kvs) ||
	    !json_object_is_type(kvs, json_type_array) || !json_object_array_length(kvs) ||
	    !json_object_object_get_ex(json_object_array_get_idx(kvs, 0), "value", &v) ||
	    etcd_unb64(v, &value, &len) < 0)
		return NULL;
	if (tagmem_msg_parse(value, len, 65536, &o) < 0)
		o = NULL;
	free(value);
	return o;
}

/* Create key with value under lease if it does not exist; else read who has it. */
static struct json_object *acquire_request(const char *key, const char *value, int64_t lease)
{
	struct json_object *req = json_object_new_object(), *list = json_object_new_array();
	struct json_object *range = json_object_new_object(), *op = json_object_new_object();

	json_object_array_add(list, compare(key, "CREATE", "create_revision", 0));
	json_object_object_add(req, "compare", list);
	list = json_object_new_array();
	json_object_array_add(list, etcd_op_put(key, value, lease));
	json_object_object_add(req, "success", list);
	json_object_object_add(range, "key", etcd_b64(key, strlen(key)));
	json_object_object_add(op, "request_range", range);
	list = json_object_new_array();
	json_object_array_add(list, op);
	json_object_object_add(req, "failure", list);
	return req;
}

static struct held *find_held(struct claims *c, const char *tag)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->held[i].tag, tag))
			return &c->held[i];
	return NULL;
}

int claims_acquire(struct claims *c, const char *tag, uid_t uid, const char *name,
		   int64_t *ret_token, struct json_object **ret_holder)
{
	_cleanup_json_ struct json_object *rec = json_object_new_object(), *req = NULL;
	_cleanup_json_ struct json_object *rep = NULL;
	struct json_object *v;
	char key[160];
	int64_t lease;
	int r;

	*ret_holder = NULL;
	if (c->n == CLAIMS_MAX)
		return -ENOSPC;
	if (grow_array(&c->held, &c->cap, c->n, sizeof(*c->held)) < 0)
		return -ENOMEM;
	r = directory_lease(c->dir, &lease);
	if (r < 0)
		return r;
	claim_key(tag, key, sizeof(key));
	json_object_object_add(rec, "tag", json_object_new_string(tag));
	json_object_object_add(rec, "host", json_object_new_string(c->host));
	json_object_object_add(rec, "uid", json_object_new_int64(uid));
	json_object_object_add(rec, "name", json_object_new_string(name));
	req = acquire_request(key, json_object_to_json_string_ext(
		rec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), lease);
	r = etcd_call(c->etcd, "/v3/kv/txn", req, &rep);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rep, "succeeded", &v) || !json_object_get_boolean(v)) {
		*ret_holder = holder_of(rep);
		return -EBUSY;
	}
	if (!json_object_object_get_ex(rep, "header", &v) ||
	    etcd_get_i64(v, "revision", ret_token) < 0 || *ret_token <= 0)
		return -EPROTO;
	c->held[c->n++] = (struct held){ .uid = uid, .token = *ret_token };
	snprintf(c->held[c->n - 1].tag, sizeof(c->held[0].tag), "%s", tag);
	return 0;
}

static int read_key(struct etcd *e, const char *key, struct json_object **ret_rec,
		    int64_t *ret_lease);
static bool held_by(struct json_object *rec, const char *host, const char *name);

/* A claim this host got from another (a VM that migrated in): this host's in etcd, not in
 * c->held. Taken into c->held so that it is released like the others; -ENOENT if not ours. */
static struct held *adopt(struct claims *c, const char *tag)
{
	_cleanup_json_ struct json_object *rec = NULL;
	struct json_object *name, *uid;
	int64_t lease[2] = { 0 }, mine;
	char key[160];

	claim_key(tag, key, sizeof(key));
	if (read_key(c->etcd, key, &rec, lease) < 0 || directory_lease(c->dir, &mine) < 0 ||
	    lease[0] != mine || !json_object_object_get_ex(rec, "name", &name) ||
	    !held_by(rec, c->host, json_object_get_string(name)) ||
	    !json_object_object_get_ex(rec, "uid", &uid) || c->n == CLAIMS_MAX ||
	    grow_array(&c->held, &c->cap, c->n, sizeof(*c->held)) < 0)
		return NULL;
	c->held[c->n] = (struct held){ .uid = (uid_t)json_object_get_int64(uid),
				       .token = lease[1] };
	snprintf(c->held[c->n].tag, sizeof(c->held[0].tag), "%s", tag);
	return &c->held[c->n++];
}

int claims_release(struct claims *c, const char *tag, uid_t uid)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
	struct json_object *list;
	struct held *h = find_held(c, tag);
	char key[160];
	int r;

	if (!h)
		h = adopt(c, tag);
	if (!h)
		return -ENOENT;
	if (uid != 0 && uid != h->uid)
		return -EPERM;
	/* delete it only if it is still ours: the revision that made it is our token */
	claim_key(tag, key, sizeof(key));
	list = json_object_new_array();
	json_object_array_add(list, compare(key, "MOD", "mod_revision", h->token));
	json_object_object_add(req, "compare", list);
	list = json_object_new_array();
	json_object_array_add(list, etcd_op_delete(key));
	json_object_object_add(req, "success", list);
	r = etcd_call(c->etcd, "/v3/kv/txn", req, &rep);
	if (r < 0)
		return r;
	*h = c->held[--c->n];
	return 0;
}

size_t claims_count(const struct claims *c)
{
	return c->n;
}

struct json_object *claims_json(const struct claims *c)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < c->n; i++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "tag", json_object_new_string(c->held[i].tag));
		json_object_object_add(o, "uid", json_object_new_int64(c->held[i].uid));
		json_object_object_add(o, "token", json_object_new_int64(c->held[i].token));
		json_object_array_add(arr, o);
	}
	return arr;
}

struct json_object *claims_lose_all(struct claims *c)
{
	struct json_object *lost = claims_json(c);

	c->n = 0;
	return lost;
}

/* The one kv of key (its record decoded into *ret_rec if asked, its lease, its mod_revision
 * in *ret_lease[1]), or -ENOENT. */
static int read_key(struct etcd *e, const char *key, struct json_object **ret_rec,
		    int64_t *ret_lease)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
	struct json_object *kvs, *kv, *v;
	char *value = NULL;
	size_t len;
	int r;

	json_object_object_add(req, "key", etcd_b64(key, strlen(key)));
	r = etcd_call(e, "/v3/kv/range", req, &rep);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rep, "kvs", &kvs) || !json_object_array_length(kvs))
		return -ENOENT;
	kv = json_object_array_get_idx(kvs, 0);
	if (ret_lease && (etcd_get_i64(kv, "lease", &ret_lease[0]) < 0 ||
			  etcd_get_i64(kv, "mod_revision", &ret_lease[1]) < 0))
		return -EPROTO;
	if (!ret_rec)
		return 0;
	*ret_rec = NULL;
	if (!json_object_object_get_ex(kv, "value", &v) || etcd_unb64(v, &value, &len) < 0)
		return -EPROTO;
	r = tagmem_msg_parse(value, len, 65536, ret_rec) < 0 ? -EPROTO : 0;
	free(value);
	return r;
}

/* Is rec (a claim's record) host's, for VM name? */
static bool held_by(struct json_object *rec, const char *host, const char *name)
{
	struct json_object *h, *n;

	return json_object_object_get_ex(rec, "host", &h) &&
	       !strcmp(json_object_get_string(h), host) &&
	       json_object_object_get_ex(rec, "name", &n) && !strcmp(json_object_get_string(n), name);
}

int claims_hand_over(struct claims *c, const struct hand_over *h, int64_t *ret_token,
		     struct json_object **ret_holder)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
	_cleanup_json_ struct json_object *rec = json_object_new_object();
	struct json_object *cmp = json_object_new_array(), *ops = json_object_new_array(), *v;
	char key[200];
	const char *value;
	int64_t lease[2], rev[2];
	int r;

	*ret_holder = NULL;
	json_object_object_add(req, "compare", cmp);
	json_object_object_add(req, "success", ops);
	/* the destination is alive: its clusterd keeps its hostinfo under its lease, which the
	 * claims will live under too (they go if that host goes) */
	snprintf(key, sizeof(key), CLUSTER_PREFIX "hostinfo/%s", h->to);
	r = read_key(c->etcd, key, NULL, lease);
	if (r < 0)
		return r == -ENOENT ? -EHOSTUNREACH : r;
	json_object_array_add(cmp, compare(key, "LEASE", "lease", lease[0]));
	json_object_object_add(rec, "host", json_object_new_string(h->to));
	json_object_object_add(rec, "uid", json_object_new_int64(h->uid));
	json_object_object_add(rec, "name", json_object_new_string(h->name));
	for (size_t i = 0; i < h->n; i++) {
		struct held *mine = find_held(c, h->tags[i]);

		snprintf(key, sizeof(key), CLUSTER_PREFIX "hosts/%s/tags/%s", h->to, h->tags[i]);
		r = read_key(c->etcd, key, NULL, NULL);
		if (r < 0) {
			*ret_holder = json_object_new_string(h->tags[i]);
			return r == -ENOENT ? -ENXIO : r;
		}
		claim_key(h->tags[i], key, sizeof(key));
		if (mine && mine->uid != h->uid) {
			*ret_holder = json_object_new_object();
			json_object_object_add(*ret_holder, "tag", json_object_new_string(h->tags[i]));
			json_object_object_add(*ret_holder, "host", json_object_new_string(c->host));
			json_object_object_add(*ret_holder, "name", json_object_new_string("another user"));
			return -EBUSY; /* another user's exclusive claim here is not the VM's to move */
		}
		if (mine) { /* ours: still ours when the transaction runs */
			json_object_array_add(cmp, compare(key, "MOD", "mod_revision", mine->token));
		} else {  /* nobody's, or this VM's here (it migrated in): still so */
			r = read_key(c->etcd, key, ret_holder, rev);
			if (r == 0 && !held_by(*ret_holder, c->host, h->name))
				return -EBUSY;
			if (r < 0 && r != -ENOENT)
				return r;
			json_object_array_add(cmp, r == 0 ?
					      compare(key, "MOD", "mod_revision", rev[1]) :
					      compare(key, "CREATE", "create_revision", 0));
			json_object_put(*ret_holder);
			*ret_holder = NULL;
		}
		json_object_object_add(rec, "tag", json_object_new_string(h->tags[i]));
		value = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
		json_object_array_add(ops, etcd_op_put(key, value, lease[0]));
	}
	if (h->check_only)
		return 0;
	r = etcd_call(c->etcd, "/v3/kv/txn", req, &rep);
	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rep, "succeeded", &v) || !json_object_get_boolean(v))
		return -EAGAIN; /* the destination's lease or a claim changed meanwhile */
	if (!json_object_object_get_ex(rep, "header", &v) ||
	    etcd_get_i64(v, "revision", ret_token) < 0)
		return -EPROTO;
	for (size_t i = 0; i < h->n; i++) {
		struct held *mine = find_held(c, h->tags[i]);

		if (mine)
			*mine = c->held[--c->n];
	}
	return 0;
}
