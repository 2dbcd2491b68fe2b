/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cluster.h"
#include "etcd.h"
#include "log.h"
#include "tagmem.h"
#include "util.h"

#define TXN_MAX_OPS 100 /* etcd refuses more than 128 by default */

struct record {
	char tag[TAGMEM_TAG_STRING_MAX];
	char *value;
};

struct directory {
	struct etcd *etcd;
	char host[65];
	int64_t ttl, lease;
	uint64_t renewed_at;  /* when the last grant or keep-alive that succeeded was sent */
	struct record *pub;   /* what this host has in etcd, as far as it knows */
	size_t npub, cappub;
	bool full;            /* the next publish compares with etcd itself */
	bool current;
};

static void records_clear(struct record *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].value);
}

int directory_new(struct etcd *etcd, const char *host, int64_t ttl_s, struct directory **ret)
{
	struct directory *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->etcd = etcd;
	d->ttl = ttl_s;
	d->full = true;
	snprintf(d->host, sizeof(d->host), "%s", host);
	*ret = d;
	return 0;
}

void directory_free(struct directory *d)
{
	if (!d)
		return;
	records_clear(d->pub, d->npub);
	free(d->pub);
	free(d);
}

bool directory_has(const struct directory *d, const char *tag)
{
	for (size_t i = 0; i < d->npub; i++)
		if (!strcmp(d->pub[i].tag, tag))
			return true;
	return false;
}

bool directory_current(const struct directory *d)
{
	return d->current;
}

/* ---- records ---- */

static void add_str(struct json_object *o, const char *key, struct json_object *from)
{
	struct json_object *v;

	if (json_object_object_get_ex(from, key, &v) && json_object_is_type(v, json_type_string))
		json_object_object_add(o, key, json_object_get(v));
}

int directory_record(const char *host, struct json_object *entry, char **ret_tag, char **ret)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *owner, *v;
	const char *tag;
	tagmem_tag t;
	uint64_t u;
	bool b;

	if (tagmem_json_get_string(entry, "tag", &tag) < 0 || tagmem_tag_parse(tag, &t) < 0)
		return -EINVAL;
	json_object_object_add(o, "tag", json_object_new_string(tag));
	json_object_object_add(o, "host", json_object_new_string(host));
	add_str(o, "state", entry);
	if (tagmem_json_get_u64(entry, "size", &u) == 0)
		json_object_object_add(o, "size", json_object_new_uint64(u));
	if (tagmem_json_get_bool(entry, "shared", &b) == 0)
		json_object_object_add(o, "shared", json_object_new_boolean(b));
	add_str(o, "device", entry);
	add_str(o, "path", entry);
	if (json_object_object_get_ex(entry, "owner", &owner) &&
	    json_object_is_type(owner, json_type_object)) {
		/* who, not which process: a pid means nothing on another host */
		struct json_object *who = json_object_new_object();

		if (json_object_object_get_ex(owner, "uid", &v))
			json_object_object_add(who, "uid", json_object_get(v));
		add_str(who, "name", owner);
		json_object_object_add(o, "owner", who);
	}
	*ret = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	*ret_tag = strdup(tag);
	if (!*ret || !*ret_tag) {
		free(*ret);
		free(*ret_tag);
		return -ENOMEM;
	}
	return 0;
}

/* brokerd's list as records, sorted by tag. */
static int desired_records(struct directory *d, struct json_object *tags, struct record **ret,
			   size_t *ret_n)
{
	size_t n = tags && json_object_is_type(tags, json_type_array) ?
		   json_object_array_length(tags) : 0, k = 0;
	struct record *r = calloc(n + 1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *tag, *value;

		if (directory_record(d->host, json_object_array_get_idx(tags, i), &tag, &value) < 0)
			continue; /* not a tag: nothing to publish */
		snprintf(r[k].tag, sizeof(r[k].tag), "%s", tag);
		r[k++].value = value;
		free(tag);
	}
	*ret = r;
	*ret_n = k;
	return 0;
}

static const struct record *find(const struct record *r, size_t n, const char *tag)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].tag, tag))
			return &r[i];
	return NULL;
}

/* ---- etcd ---- */

static void host_key(const struct directory *d, const char *tag, char *buf, size_t len)
{
	snprintf(buf, len, CLUSTER_PREFIX "hosts/%s/tags/%s", d->host, tag);
}

/* The op for one tag's record (value NULL: gone). Every key a host writes is under its own
 * prefix, so that etcd's RBAC can let each host write its own part and no other. */
static void add_ops(struct directory *d, struct json_object *ops, const char *tag,
		    const char *value)
{
	char key[256];

	host_key(d, tag, key, sizeof(key));
	json_object_array_add(ops, value ? etcd_op_put(key, value, d->lease) : etcd_op_delete(key));
}

/* Run ops (consumed) in transactions of at most TXN_MAX_OPS. */
static int run_ops(struct directory *d, struct json_object *ops)
{
	size_t n = json_object_array_length(ops);
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i += TXN_MAX_OPS) {
		struct json_object *batch = json_object_new_array();

		for (size_t j = i; j < n && j < i + TXN_MAX_OPS; j++)
			json_object_array_add(batch, json_object_get(json_object_array_get_idx(ops, j)));
		r = etcd_txn(d->etcd, batch);
	}
	json_object_put(ops);
	return r;
}

/* The tags this host has under its prefix in etcd now (a new lease: compare, don't trust). */
static int tags_in_etcd(struct directory *d, struct record **ret, size_t *ret_n)
{
	_cleanup_json_ struct json_object *kvs = NULL;
	char prefix[160];
	int64_t rev;
	size_t n, k = 0;
	struct record *r;
	int ret_code;

	snprintf(prefix, sizeof(prefix), CLUSTER_PREFIX "hosts/%s/tags/", d->host);
	ret_code = etcd_get_prefix(d->etcd, prefix, &kvs, &rev);
	if (ret_code < 0)
		return ret_code;
	n = json_object_array_length(kvs);
	r = calloc(n + 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *key = json_object_get_string(
			json_object_object_get(json_object_array_get_idx(kvs, i), "key"));
		const char *value = json_object_get_string(
			json_object_object_get(json_object_array_get_idx(kvs, i), "value"));

		if (strlen(key) - strlen(prefix) >= sizeof(r[k].tag))
			continue;
		snprintf(r[k].tag, sizeof(r[k].tag), "%s", key + strlen(prefix));
		r[k++].value = strdup(value);
	}
	*ret = r;
	*ret_n = k;
	return 0;
}

static int host_info_op(struct directory *d, struct json_object *ops, size_t ntags)
{
	char key[160], value[192];

	snprintf(key, sizeof(key), CLUSTER_PREFIX "hostinfo/%s", d->host);
	snprintf(value, sizeof(value), "{\"host\":\"%s\",\"tags\":%zu}", d->host, ntags);
	json_object_array_add(ops, etcd_op_put(key, value, d->lease));
	return 0;
}

int directory_publish(struct directory *d, struct json_object *tags)
{
	struct record *want = NULL, *have = NULL;
	size_t nwant = 0, nhave = 0;
	struct json_object *ops;
	int r;

	d->current = false;
	if (!d->lease) {
		int64_t lease;
		r = directory_lease(d, &lease);
		if (r < 0)
			return r;
	}
	bool compared = d->full; /* have is then a list of its own, to free */

	r = desired_records(d, tags, &want, &nwant);
	if (r < 0)
		return r;
	if (compared)
		r = tags_in_etcd(d, &have, &nhave);
	if (r < 0)
		goto out;
	if (!compared) {
		have = d->pub; /* what the last publish left there */
		nhave = d->npub;
	}
	ops = json_object_new_array();
	for (size_t i = 0; i < nwant; i++) {
		const struct record *h = find(have, nhave, want[i].tag);
		/* after a new lease every key is put again: the old lease's are gone or going */
		if (d->full || !h || strcmp(h->value, want[i].value))
			add_ops(d, ops, want[i].tag, want[i].value);
	}
	for (size_t i = 0; i < nhave; i++)
		if (!find(want, nwant, have[i].tag))
			add_ops(d, ops, have[i].tag, NULL);
	if (d->full || nwant != d->npub)
		host_info_op(d, ops, nwant);
	r = json_object_array_length(ops) ? run_ops(d, ops) : (json_object_put(ops), 0);
	if (r == 0) {
		records_clear(d->pub, d->npub);
		free(d->pub);
		d->pub = TAKE_PTR(want);
		d->npub = nwant;
		nwant = 0;
		d->full = false;
		d->current = true;
	} else {
		d->full = true; /* some of it may have landed: compare again next time */
	}
out:
	if (compared) {
		records_clear(have, nhave);
		free(have);
	}
	records_clear(want, nwant);
	free(want);
	return r;
}

int directory_lease(struct directory *d, int64_t *ret)
{
	uint64_t sent = now_usec();
	int r = 0;

	if (!d->lease) {
		r = etcd_lease_grant(d->etcd, d->ttl, &d->lease);
		if (r == 0) {
			d->renewed_at = sent;
			d->full = true;
		}
	}
	*ret = d->lease;
	return r;
}

uint64_t directory_renewed_at(const struct directory *d)
{
	return d->lease ? d->renewed_at : 0;
}

int directory_keepalive(struct directory *d)
{
	uint64_t sent = now_usec();
	int r;

	if (!d->lease)
		return 0;
	r = etcd_lease_keepalive(d->etcd, d->lease);
	if (r == 0)
		d->renewed_at = sent;
	if (r == -ENOENT) {
		log_warn("The lease of host %s in etcd expired: publishing everything again", d->host);
		d->lease = 0;
		d->full = true;
		d->current = false;
	}
	return r;
}

void directory_withdraw(struct directory *d)
{
	if (d->lease && etcd_lease_revoke(d->etcd, d->lease) == 0)
		log_info("Withdrew host %s from the cluster directory", d->host);
	d->lease = 0;
	d->full = true;
}
