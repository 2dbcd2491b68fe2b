/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fabric_link.h"
#include "lines.h"
#include "log.h"
#include "loop.h"
#include "sim.h"
#include "util.h"

#define LINK_MAX_EXTENTS 4096
#define LINK_MAX_MESSAGE (64u << 20) /* an attach reply lists every tag the host has */
#define LINK_RETRY_MS 1000

struct fabric_link {
	struct loop *loop;
	struct sim *sim;
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[65];
	void (*changed)(void *data);
	void *data;
	int fd;
	struct lines in;
	int64_t retry_timer;
	bool said_down;          /* "unreachable" logged once per outage */
};

/* ---- what the manager says, checked before the simulator sees it ---- */

static int parse_extents(struct json_object *arr, struct dcd_extent *ext, size_t *n)
{
	size_t len;

	if (!json_object_is_type(arr, json_type_array))
		return -EBADMSG;
	len = json_object_array_length(arr);
	if (len == 0 || len > LINK_MAX_EXTENTS)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(e, json_type_object) ||
		    tagmem_json_get_u64(e, "offset", &ext[i].offset) < 0 ||
		    tagmem_json_get_u64(e, "length", &ext[i].length) < 0)
			return -EBADMSG;
	}
	*n = len;
	return 0;
}

static bool same_extents(struct sim *sim, const tagmem_tag *tag, unsigned region,
			 const struct dcd_extent *ext, size_t n)
{
	_cleanup_free_ struct dcd_extent *have = calloc(n, sizeof(*have));

	if (!have || sim_tag_extents(sim, tag, have, n) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (have[i].region != region || have[i].offset != ext[i].offset ||
		    have[i].length != ext[i].length)
			return false;
	return true;
}

/* {tag, region, shared, extents}: placed in the simulator as the manager placed it. */
static int apply_add(struct sim *sim, struct json_object *o)
{
	_cleanup_free_ struct dcd_extent *ext = calloc(LINK_MAX_EXTENTS, sizeof(*ext));
	struct json_object *arr;
	tagmem_tag tag;
	uint64_t region;
	bool shared;
	size_t n;
	int r;

	if (!ext)
		return -ENOMEM;
	if (tagmem_json_get_tag(o, "tag", &tag) < 0 || tagmem_tag_is_null(&tag) ||
	    tagmem_json_get_u64(o, "region", &region) < 0 || region > 1 ||
	    tagmem_json_get_bool(o, "shared", &shared) < 0 || shared != (region == 1) ||
	    !json_object_object_get_ex(o, "extents", &arr) || parse_extents(arr, ext, &n) < 0)
		return -EBADMSG;
	r = sim_place(sim, (unsigned)region, &tag, ext, n);
	if (r == -EEXIST && same_extents(sim, &tag, (unsigned)region, ext, n))
		return 0; /* it has it: told twice (a reconnect) */
	if (r == -EEXIST) {
		/* released and made again while this host was away: the old capacity goes first */
		r = sim_fm_release(sim, &tag);
		if (r == 0)
			r = sim_place(sim, (unsigned)region, &tag, ext, n);
		else if (r > 0)
			log_warn("Tag %s was made anew at the fabric manager while this host held the "
				 "old one: the new capacity comes when the old is released",
				 json_object_get_string(json_object_object_get(o, "tag")));
		if (r >= 0)
			return 1;
	}
	if (r < 0) {
		log_err("The fabric manager placed tag %s where this host cannot: %s",
			json_object_get_string(json_object_object_get(o, "tag")), strerror(-r));
		return r == -ENOMEM ? r : -EBADMSG;
	}
	return 1;
}

static int apply_release(struct sim *sim, struct json_object *o)
{
	tagmem_tag tag;
	int r;

	if (tagmem_json_get_tag(o, "tag", &tag) < 0)
		return -EBADMSG;
	r = sim_fm_release(sim, &tag);
	return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/* The host has what the attach reply lists, and nothing else. */
static int apply_attach(struct sim *sim, struct json_object *res)
{
	_cleanup_free_ tagmem_tag *have = NULL;
	struct json_object *tags;
	size_t nhave = 0, ntags;
	int r, changed = 0;

	if (!json_object_object_get_ex(res, "tags", &tags) ||
	    !json_object_is_type(tags, json_type_array))
		return -EBADMSG;
	ntags = json_object_array_length(tags);
	r = sim_list_tags(sim, &have, &nhave);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nhave; i++) {
		bool listed = false;

		for (size_t j = 0; j < ntags && !listed; j++) {
			tagmem_tag t;
			listed = tagmem_json_get_tag(json_object_array_get_idx(tags, j), "tag", &t) == 0 &&
				 !tagmem_tag_compare(&t, &have[i]);
		}
		if (!listed && sim_fm_release(sim, &have[i]) >= 0)
			changed = 1; /* released while the link was down */
	}
	for (size_t j = 0; j < ntags; j++) {
		r = apply_add(sim, json_object_array_get_idx(tags, j));
		if (r == -ENOMEM)
			return r;
		changed |= r > 0;
	}
	return changed;
}

int fabric_link_apply(struct sim *sim, struct json_object *msg)
{
	struct json_object *res;
	const char *ev;

	if (tagmem_json_get_string(msg, "event", &ev) == 0) {
		if (!strcmp(ev, "fabric_add"))
			return apply_add(sim, msg);
		if (!strcmp(ev, "fabric_release"))
			return apply_release(sim, msg);
		return 0; /* events this brokerd does not know: newer managers may add some */
	}
	if (json_object_object_get_ex(msg, "result", &res) && json_object_is_type(res, json_type_object))
		return apply_attach(sim, res);
	return -EBADMSG;
}

/* ---- the connection ---- */

static void link_down(struct fabric_link *l, const char *why);

static void on_message(struct fabric_link *l, const char *line, size_t len)
{
	_cleanup_json_ struct json_object *msg = NULL;
	struct json_object *err;
	int r;

	if (tagmem_msg_parse(line, len, LINK_MAX_MESSAGE, &msg) < 0) {
		log_warn("Malformed message from the fabric manager, ignoring: %.200s", line);
		return;
	}
	if (json_object_object_get_ex(msg, "error", &err)) {
		log_err("The fabric manager refused host %s: %s", l->host,
			json_object_get_string(json_object_object_get(err, "message")));
		return;
	}
	r = fabric_link_apply(l->sim, msg);
	if (r == -EBADMSG)
		log_warn("Malformed message from the fabric manager, ignoring: %.200s", line);
	else if (r < 0)
		log_err("Cannot apply what the fabric manager said: %s", strerror(-r));
	if (r > 0)
		l->changed(l->data);
}

static void on_readable(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct fabric_link *l = data;
	ssize_t n = lines_read(&l->in, fd);
	char *line;
	size_t len;
	int r;

	(void)loop;
	(void)events;
	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		link_down(l, n == 0 ? "it closed the connection" : strerror((int)-n));
		return;
	}
	while ((r = lines_next(&l->in, &line, &len)) != 0) {
		if (r < 0) {
			link_down(l, "a message longer than any it sends");
			return;
		}
		on_message(l, line, len);
	}
}

static int link_connect(struct fabric_link *l)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[160];
	int fd, len;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", l->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	len = snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"attach\",\"host\":\"%s\"}\n", l->host);
	/* a Unix-socket connect does not block; a short first write would mean a broken peer */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, req, (size_t)len) != len || loop_add_fd(l->loop, fd, EPOLLIN, on_readable, l) < 0) {
		int r = errno ? -errno : -EIO;
		close(fd);
		return r;
	}
	l->fd = fd;
	lines_init(&l->in, LINK_MAX_MESSAGE);
	return 0;
}

static int64_t retry(struct loop *loop, void *data)
{
	struct fabric_link *l = data;
	int r = link_connect(l);

	(void)loop;
	if (r == 0) {
		log_info("Attached to the fabric manager at %s as host %s", l->socket, l->host);
		l->said_down = false;
		return -1; /* attached: the timer ends */
	}
	if (!l->said_down)
		log_warn("The fabric manager at %s is unreachable (%s); retrying every second",
			 l->socket, strerror(-r));
	l->said_down = true;
	return LINK_RETRY_MS;
}

static void link_down(struct fabric_link *l, const char *why)
{
	log_warn("Lost the fabric manager (%s): this host keeps what it has and reattaches", why);
	loop_del_fd(l->loop, l->fd);
	close(l->fd);
	l->fd = -1;
	lines_release(&l->in);
	l->said_down = true;
	l->retry_timer = loop_add_timer(l->loop, LINK_RETRY_MS, retry, l);
}

int fabric_link_new(struct loop *loop, struct sim *sim, const char *fabric_dir,
		    const char *host, void (*changed)(void *data), void *data,
		    struct fabric_link **ret)
{
	struct fabric_link *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	*l = (struct fabric_link){ .loop = loop, .sim = sim, .changed = changed, .data = data,
				   .fd = -1, .retry_timer = -1 };
	snprintf(l->host, sizeof(l->host), "%s", host);
	if (snprintf(l->socket, sizeof(l->socket), "%s/fabric.sock", fabric_dir) >=
	    (int)sizeof(l->socket)) {
		free(l);
		return -ENAMETOOLONG;
	}
	if (retry(loop, l) >= 0)
		l->retry_timer = loop_add_timer(loop, LINK_RETRY_MS, retry, l);
	*ret = l;
	return 0;
}

void fabric_link_free(struct fabric_link *l)
{
	if (!l)
		return;
	loop_cancel_timer(l->loop, l->retry_timer);
	if (l->fd >= 0) {
		loop_del_fd(l->loop, l->fd);
		close(l->fd);
	}
	lines_release(&l->in);
	free(l);
}
