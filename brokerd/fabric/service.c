/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fabric manager's socket protocol (docs/fabric.md): the same framing as brokerd's
 * ({"id", "op", ...} lines, {"id", "result"|"error"} replies), served by brokerd's server/.
 * Orchestrators and `tagmem fm --host` add and release capacity; each host's brokerd
 * attaches by host id and is told of every change to what it has, after it is durable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fabric.h"
#include "log.h"
#include "server.h"
#include "wire.h"

#define SERVICE_MAX_ATTACHED 256

struct fabric_service {
	struct fabric *fab;
	struct server *srv;
	uid_t uid;                  /* the manager's own: it and root may drive it */
	struct {
		char host[FABRIC_HOST_MAX + 1];
		uint64_t serial;    /* the attached connection */
	} attached[SERVICE_MAX_ATTACHED];
	size_t nattached;
};

struct call {
	struct fabric_service *fs;
	struct client *c;
	struct json_object *id, *msg;
};

static void reply(struct call *k, struct json_object *result)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(k->id));
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	client_reply(k->fs->srv, k->c, o, 0);
}

static void fail(struct call *k, const char *code, const char *fmt, ...) _printf_(3, 4);
static void fail(struct call *k, const char *code, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "id", json_object_get(k->id));
	json_object_object_add(o, "error", wire_error(code, msg));
	client_reply(k->fs->srv, k->c, o, 0);
}

/* ---- telling hosts ---- */

static struct client *host_client(struct fabric_service *fs, const char *host)
{
	for (size_t i = 0; i < fs->nattached; i++)
		if (!strcmp(fs->attached[i].host, host))
			return server_find_client(fs->srv, fs->attached[i].serial);
	return NULL;
}

/* An event to the host, if it is attached now (if not, it learns at its next attach). */
static void tell(struct fabric_service *fs, const char *host, struct json_object *ev)
{
	struct client *c = host_client(fs, host);

	if (c)
		client_reply(fs->srv, c, json_object_get(ev), 0);
}

static struct json_object *added_event(struct fabric_service *fs, const struct fabric_tag *t)
{
	struct json_object *ev = fabric_tag_json(fs->fab, t);

	json_object_object_add(ev, "event", json_object_new_string("fabric_add"));
	return ev;
}

static struct json_object *released_event(const tagmem_tag *tag)
{
	struct json_object *ev = json_object_new_object();
	char s[TAGMEM_TAG_STRING_MAX];

	json_object_object_add(ev, "event", json_object_new_string("fabric_release"));
	json_object_object_add(ev, "tag", json_object_new_string(tagmem_tag_format(tag, s)));
	return ev;
}

/* ---- arguments ---- */

static bool arg_tag(struct call *k, bool required, tagmem_tag *tag, bool *present)
{
	int r = tagmem_json_get_tag(k->msg, "tag", tag);

	*present = r == 0;
	if ((r == -ENOENT && required) || (r < 0 && r != -ENOENT) ||
	    (r == 0 && tagmem_tag_is_null(tag))) {
		fail(k, "invalid_argument", "\"tag\" must be a non-nil UUID string");
		return false;
	}
	return true;
}

static bool arg_host(struct call *k, bool required, const char **host)
{
	int r = tagmem_json_get_string(k->msg, "host", host);

	if (r == -ENOENT && !required) {
		*host = NULL;
		return true;
	}
	if (r < 0 || !fabric_valid_host(*host)) {
		fail(k, "invalid_argument", "\"host\" must be a host id of 1-%d letters, digits, "
		     "'-', '_' or '.'", FABRIC_HOST_MAX);
		return false;
	}
	return true;
}

/* "hosts": an array of host ids (or "host": one). */
static bool arg_hosts(struct call *k, const char **hosts, size_t *n)
{
	struct json_object *arr, *v;

	*n = 0;
	if (!json_object_object_get_ex(k->msg, "hosts", &arr)) {
		if (!arg_host(k, true, &hosts[0]))
			return false;
		*n = 1;
		return true;
	}
	if (!json_object_is_type(arr, json_type_array) || !json_object_array_length(arr) ||
	    json_object_array_length(arr) > FABRIC_MAX_HOSTS)
		goto bad;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_string) ||
		    !fabric_valid_host(json_object_get_string(v)))
			goto bad;
		hosts[(*n)++] = json_object_get_string(v);
	}
	return true;
bad:
	fail(k, "invalid_argument", "\"hosts\" must be an array of 1-%d host ids",
	     FABRIC_MAX_HOSTS);
	return false;
}

/* ---- ops ---- */

static void op_hello(struct call *k)
{
	struct json_object *res = json_object_new_object();

	json_object_object_add(res, "service", json_object_new_string("tagmem-fmd"));
	json_object_object_add(res, "protocol", json_object_new_int(1));
	json_object_object_add(res, "region_size",
			       json_object_new_uint64(fabric_region_size(k->fs->fab)));
	reply(k, res);
}

static void op_add(struct call *k)
{
	const char *hosts[FABRIC_MAX_HOSTS];
	const struct fabric_tag *t;
	bool shared = false, has_tag;
	tagmem_tag tag;
	uint64_t size;
	size_t n;
	int r;

	if (tagmem_json_get_u64(k->msg, "size", &size) < 0 || !size || size % (2u << 20)) {
		fail(k, "invalid_argument",
		     "\"size\" must be a positive number of bytes, a multiple of 2 MiB");
		return;
	}
	if (tagmem_json_get_bool(k->msg, "shared", &shared) == -EINVAL) {
		fail(k, "invalid_argument", "\"shared\" must be true or false");
		return;
	}
	if (!arg_tag(k, false, &tag, &has_tag) || !arg_hosts(k, hosts, &n))
		return;
	if (!shared && n != 1) {
		fail(k, "invalid_argument", "private capacity goes to one host; give --shared "
		     "for capacity that several hosts map");
		return;
	}
	r = fabric_add(k->fs->fab, size, has_tag ? &tag : NULL, shared, hosts, n, &t);
	if (r == -EEXIST) {
		fail(k, "exists", "that tag already names capacity of this fabric");
		return;
	}
	if (r < 0) {
		fail(k, r == -ENOSPC || r == -E2BIG ? "no_space" :
		     r == -EINVAL ? "invalid_argument" : "io_error",
		     "cannot add the capacity: %s", r == -ENOSPC ?
		     "the pool has not that much free capacity" : r == -E2BIG ?
		     "the free capacity is so scattered that it would take more extents "
		     "than a host's kernel accepts in one "
		     "allocation; ask for less, or release capacity first" : strerror(-r));
		return;
	}
	reply(k, fabric_tag_json(k->fs->fab, t));
	struct json_object *ev = added_event(k->fs, t);
	for (size_t i = 0; i < t->nhosts; i++)
		tell(k->fs, t->hosts[i], ev);
	json_object_put(ev);
}

static void op_add_reference(struct call *k)
{
	const struct fabric_tag *t;
	const char *host;
	tagmem_tag tag;
	bool has_tag;
	int r;

	if (!arg_tag(k, true, &tag, &has_tag) || !arg_host(k, true, &host))
		return;
	r = fabric_add_reference(k->fs->fab, &tag, host);
	if (r < 0) {
		fail(k, r == -ENOENT ? "not_found" : r == -EEXIST ? "exists" :
		     r == -EINVAL ? "invalid_argument" : r == -ENOSPC ? "no_space" : "io_error",
		     "cannot add host %s to the tag: %s", host, r == -ENOENT ? "no such tag" :
		     r == -EEXIST ? "it has it already" : r == -EINVAL ?
		     "private capacity has one host" : strerror(-r));
		return;
	}
	t = fabric_find(k->fs->fab, &tag);
	reply(k, fabric_tag_json(k->fs->fab, t));
	struct json_object *ev = added_event(k->fs, t);
	tell(k->fs, host, ev);
	json_object_put(ev);
}

static void op_release(struct call *k)
{
	const struct fabric_tag *t;
	char before[FABRIC_MAX_HOSTS][FABRIC_HOST_MAX + 1];
	struct json_object *res, *ev;
	const char *host;
	size_t n = 0;
	tagmem_tag tag;
	bool has_tag, freed;
	int r;

	if (!arg_tag(k, true, &tag, &has_tag) || !arg_host(k, false, &host))
		return;
	t = fabric_find(k->fs->fab, &tag);
	for (size_t i = 0; t && i < t->nhosts; i++)
		if (!host || !strcmp(host, t->hosts[i]))
			snprintf(before[n++], sizeof(before[0]), "%s", t->hosts[i]);
	r = fabric_remove_reference(k->fs->fab, &tag, host, &freed);
	if (r < 0) {
		fail(k, r == -ENOENT ? "not_found" : "io_error", "cannot release: %s",
		     r == -ENOENT ? (host ? "that host has not this tag" : "no such tag") :
		     strerror(-r));
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_get(json_object_object_get(k->msg, "tag")));
	json_object_object_add(res, "freed", json_object_new_boolean(freed));
	reply(k, res);
	ev = released_event(&tag);
	for (size_t i = 0; i < n; i++)
		tell(k->fs, before[i], ev);
	json_object_put(ev);
}

/* The tags a host has (host NULL: all), as List Tags reports them. */
static struct json_object *tags_json(struct fabric_service *fs, const char *host)
{
	struct json_object *arr = json_object_new_array();

	for (size_t i = 0; i < fabric_ntags(fs->fab); i++) {
		const struct fabric_tag *t = fabric_tag_at(fs->fab, i);
		if (!host || fabric_tag_has_host(t, host))
			json_object_array_add(arr, fabric_tag_json(fs->fab, t));
	}
	return arr;
}

static void op_list(struct call *k)
{
	struct json_object *res = json_object_new_object(), *free_ = json_object_new_array();
	const char *host;

	if (!arg_host(k, false, &host)) {
		json_object_put(res);
		json_object_put(free_);
		return;
	}
	json_object_object_add(res, "region_size",
			       json_object_new_uint64(fabric_region_size(k->fs->fab)));
	for (unsigned rg = 0; rg < 2; rg++)
		json_object_array_add(free_, json_object_new_uint64(fabric_free(k->fs->fab, rg)));
	json_object_object_add(res, "free", free_);
	json_object_object_add(res, "tags", tags_json(k->fs, host));
	reply(k, res);
}

/* A host's brokerd: from now on it is told of changes to its tags; the reply is all it has. */
static void op_attach(struct call *k)
{
	struct fabric_service *fs = k->fs;
	struct json_object *res;
	const char *host;
	size_t i;

	if (!arg_host(k, true, &host))
		return;
	for (i = 0; i < fs->nattached && strcmp(fs->attached[i].host, host); i++)
		;
	if (i == fs->nattached) {
		if (fs->nattached == SERVICE_MAX_ATTACHED) {
			fail(k, "too_many_hosts", "%d hosts are attached already",
			     SERVICE_MAX_ATTACHED);
			return;
		}
		snprintf(fs->attached[fs->nattached++].host, sizeof(fs->attached[0].host), "%s", host);
	}
	/* a host's newer connection replaces an older one (it restarted) */
	fs->attached[i].serial = client_info(k->c)->serial;
	log_info("Host %s attached", host);
	res = json_object_new_object();
	json_object_object_add(res, "host", json_object_new_string(host));
	json_object_object_add(res, "region_size",
			       json_object_new_uint64(fabric_region_size(fs->fab)));
	json_object_object_add(res, "tags", tags_json(fs, host));
	reply(k, res);
}

static const struct {
	const char *name;
	void (*fn)(struct call *k);
} service_ops[] = {
	{ "hello", op_hello },
	{ "fm_add", op_add },
	{ "fm_add_reference", op_add_reference },
	{ "fm_release", op_release },
	{ "fm_list", op_list },
	{ "attach", op_attach },
};

void fabric_service_request(void *userdata, struct client *c, const char *line, size_t len)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct call k = { .fs = userdata, .c = c };
	const struct client_info *ci = client_info(c);
	const char *op, *why = NULL;

	if (len == 0)
		return;
	if (wire_parse(line, len, len + 1, &msg, &why) < 0 ||
	    !json_object_is_type(msg, json_type_object)) {
		fail(&k, "parse_error", "%s", why ? why : "a request is one JSON object on one line");
		return;
	}
	k.msg = msg;
	json_object_object_get_ex(msg, "id", &k.id);
	if (ci->uid != 0 && ci->uid != k.fs->uid) {
		fail(&k, "permission_denied", "only root or the fabric manager's user may use it");
		return;
	}
	if (tagmem_json_get_string(msg, "op", &op) < 0) {
		fail(&k, "invalid_request", "a request needs an \"op\" string");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(service_ops); i++)
		if (!strcmp(op, service_ops[i].name)) {
			service_ops[i].fn(&k);
			return;
		}
	fail(&k, "unknown_op", "the fabric manager has no op \"%.64s\"", op);
}

void fabric_service_serve(struct fabric_service *fs, struct server *srv)
{
	fs->srv = srv;
}

int fabric_service_new(struct fabric *fab, struct fabric_service **ret)
{
	struct fabric_service *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->fab = fab;
	fs->uid = geteuid();
	*ret = fs;
	return 0;
}

void fabric_service_free(struct fabric_service *fs)
{
	free(fs);
}
