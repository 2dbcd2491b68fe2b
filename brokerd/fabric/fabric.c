/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "fabric.h"
#include "log.h"
#include "sim.h"
#include "util.h"

struct fabric {
	struct sim *pool;
	int dirfd, bytes_fd, refs_fd;
	struct fabric_tag *tags;
	size_t n, cap;
};

bool fabric_valid_host(const char *host)
{
	return name_valid(host, FABRIC_HOST_MAX);
}

uint64_t fabric_region_size(const struct fabric *f)
{
	return sim_region_size(f->pool);
}

size_t fabric_ntags(const struct fabric *f)
{
	return f->n;
}

const struct fabric_tag *fabric_tag_at(const struct fabric *f, size_t i)
{
	return i < f->n ? &f->tags[i] : NULL;
}

const struct fabric_tag *fabric_find(const struct fabric *f, const tagmem_tag *tag)
{
	for (size_t i = 0; i < f->n; i++)
		if (!tagmem_tag_compare(&f->tags[i].tag, tag))
			return &f->tags[i];
	return NULL;
}

bool fabric_tag_has_host(const struct fabric_tag *t, const char *host)
{
	for (size_t i = 0; i < t->nhosts; i++)
		if (!strcmp(t->hosts[i], host))
			return true;
	return false;
}

uint64_t fabric_free(const struct fabric *f, unsigned region)
{
	return sim_region_size(f->pool) - sim_region_used(f->pool, region);
}

/* ---- the files ---- */

/* The hosts file of a tag, durably replaced (or removed when no host is left). */
static int write_refs(struct fabric *f, const struct fabric_tag *t)
{
	char name[TAGMEM_TAG_STRING_MAX], tmp[TAGMEM_TAG_STRING_MAX + 8];
	char buf[FABRIC_MAX_HOSTS * (FABRIC_HOST_MAX + 1) + 1];
	size_t len = 0;

	tagmem_tag_format(&t->tag, name);
	if (!t->nhosts) {
		if (unlinkat(f->refs_fd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		return fsync(f->refs_fd) < 0 ? -errno : 0;
	}
	for (size_t i = 0; i < t->nhosts; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\n", t->hosts[i]);
	snprintf(tmp, sizeof(tmp), ".%s.new", name);
	return write_file_atomic(f->refs_fd, name, tmp, buf, len);
}

/* Read a tag's hosts file into t; -EBADMSG if a line is no host id. */
static int read_refs(struct fabric *f, const char *name, struct fabric_tag *t)
{
	_cleanup_close_ int fd = openat(f->refs_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char buf[FABRIC_MAX_HOSTS * (FABRIC_HOST_MAX + 1) + 1], *save = NULL;
	ssize_t len;

	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	t->nhosts = 0;
	for (char *h = strtok_r(buf, "\n", &save); h; h = strtok_r(NULL, "\n", &save)) {
		if (!fabric_valid_host(h) || t->nhosts == FABRIC_MAX_HOSTS ||
		    fabric_tag_has_host(t, h))
			return -EBADMSG;
		snprintf(t->hosts[t->nhosts++], sizeof(t->hosts[0]), "%s", h);
	}
	return t->nhosts ? 0 : -EBADMSG;
}

/* The allocation's memory: a sparse file of its size, durable with its name. */
static int create_bytes(struct fabric *f, const tagmem_tag *tag, uint64_t size)
{
	char name[TAGMEM_TAG_STRING_MAX];
	_cleanup_close_ int fd = -1;

	tagmem_tag_format(tag, name);
	fd = openat(f->bytes_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0 || fsync(f->bytes_fd) < 0) {
		int r = -errno;
		unlinkat(f->bytes_fd, name, 0);
		return r;
	}
	return 0;
}

static void remove_bytes(struct fabric *f, const tagmem_tag *tag)
{
	char name[TAGMEM_TAG_STRING_MAX];

	if (unlinkat(f->bytes_fd, tagmem_tag_format(tag, name), 0) < 0 && errno != ENOENT)
		log_warn("Cannot remove the bytes of %s: %m", name);
}

/* Give a tag's capacity back to the pool: its extents, then its memory. */
static int free_capacity(struct fabric *f, const tagmem_tag *tag)
{
	struct dcd_event ev;
	int r = sim_fm_release(f->pool, tag);

	while (sim_next_event(f->pool, &ev) > 0)
		; /* the pool has no host to tell: its records are not wanted */
	if (r < 0 && r != -ENOENT)
		return r;
	remove_bytes(f, tag);
	return 0;
}

/* ---- loading: the pool's tags, with their hosts; what a crash left half done goes ---- */

/* The tag's extents in sequence order (*ret to free); -E2BIG beyond FABRIC_MAX_EXTENTS. */
static int tag_extents(struct fabric *f, const tagmem_tag *tag, struct dcd_extent **ret,
		       size_t *ret_n)
{
	struct dcd_extent *ext = calloc(FABRIC_MAX_EXTENTS, sizeof(*ext));
	size_t n;

	if (!ext)
		return -ENOMEM;
	n = sim_tag_extents(f->pool, tag, ext, FABRIC_MAX_EXTENTS);
	if (n == 0 || n > FABRIC_MAX_EXTENTS) {
		free(ext);
		return n ? -E2BIG : -ENOENT;
	}
	*ret = ext;
	*ret_n = n;
	return 0;
}

static int describe(struct fabric *f, const tagmem_tag *tag, struct fabric_tag *t)
{
	_cleanup_free_ struct dcd_extent *ext = NULL;
	size_t n;
	int r = tag_extents(f, tag, &ext, &n);

	if (r < 0)
		return r;
	memset(t, 0, sizeof(*t));
	t->tag = *tag;
	t->region = ext[0].region;
	t->shared = ext[0].region == 1;
	for (size_t i = 0; i < n; i++)
		t->size += ext[i].length;
	return 0;
}

static int load_tag(struct fabric *f, const tagmem_tag *tag)
{
	char name[TAGMEM_TAG_STRING_MAX];
	struct fabric_tag t;
	int r = describe(f, tag, &t);

	if (r == 0)
		r = read_refs(f, tagmem_tag_format(tag, name), &t);
	if (r < 0) {
		/* allocated, but never acknowledged to anyone (or unreadable): undo */
		log_warn("Tag %s of the pool has no hosts on record (%s): freeing it", name,
			 strerror(-r));
		return free_capacity(f, tag);
	}
	if (grow_array(&f->tags, &f->cap, f->n, sizeof(*f->tags)) < 0)
		return -ENOMEM;
	f->tags[f->n++] = t;
	return 0;
}

/* Files under bytes/ and refs/ that name no tag of the pool: a crash mid-add or mid-free. */
static void remove_strays(struct fabric *f, int dirfd)
{
	_cleanup_close_ int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d)
		return;
	fd = -1; /* the DIR owns it */
	while ((de = readdir(d))) {
		tagmem_tag tag;

		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd, de->d_name, 0); /* an atomic write cut short */
		else if (tagmem_tag_parse(de->d_name, &tag) == 0 && !fabric_find(f, &tag))
			unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

static int load(struct fabric *f)
{
	_cleanup_free_ tagmem_tag *tags = NULL;
	size_t n = 0;
	int r = sim_list_tags(f->pool, &tags, &n);

	for (size_t i = 0; i < n && r >= 0; i++)
		r = load_tag(f, &tags[i]);
	if (r < 0)
		return r;
	remove_strays(f, f->bytes_fd);
	remove_strays(f, f->refs_fd);
	return 0;
}

static int open_subdir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int fabric_open(const char *dir, uint64_t region_size, struct fabric **ret)
{
	struct sim_options opts = { .region_size = region_size };
	struct fabric *f = calloc(1, sizeof(*f));
	char pool[PATH_MAX];
	int r;

	if (!f)
		return -ENOMEM;
	f->dirfd = f->bytes_fd = f->refs_fd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->bytes_fd = f->dirfd < 0 ? -1 : open_subdir(f->dirfd, "bytes");
	f->refs_fd = f->bytes_fd < 0 ? -1 : open_subdir(f->dirfd, "refs");
	if (f->refs_fd < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(pool, sizeof(pool), "%s/pool", dir);
	r = sim_open(pool, &opts, &f->pool);
	if (r == 0)
		r = load(f);
	if (r < 0)
		goto fail;
	*ret = f;
	return 0;
fail:
	fabric_close(f);
	return r;
}

void fabric_close(struct fabric *f)
{
	if (!f)
		return;
	sim_close(f->pool);
	if (f->refs_fd >= 0)
		close(f->refs_fd);
	if (f->bytes_fd >= 0)
		close(f->bytes_fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f->tags);
	free(f);
}

/* ---- the manager's verbs ---- */

static int check_hosts(const char *const *hosts, size_t n, bool shared)
{
	if (n == 0 || n > FABRIC_MAX_HOSTS || (!shared && n != 1))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!fabric_valid_host(hosts[i]))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(hosts[i], hosts[j]))
				return -EINVAL;
	}
	return 0;
}

int fabric_add(struct fabric *f, uint64_t size, const tagmem_tag *tag, bool shared,
	       const char *const *hosts, size_t nhosts, const struct fabric_tag **ret)
{
	struct fabric_tag t = { .shared = shared, .region = shared, .size = size };
	struct sim_alloc a;
	int r = check_hosts(hosts, nhosts, shared);

	if (r < 0)
		return r;
	if (tag)
		t.tag = *tag;
	else
		tagmem_tag_generate(&t.tag);
	if (fabric_find(f, &t.tag))
		return -EEXIST;
	if (grow_array(&f->tags, &f->cap, f->n, sizeof(*f->tags)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < nhosts; i++)
		snprintf(t.hosts[t.nhosts++], sizeof(t.hosts[0]), "%s", hosts[i]);
	/* extents, then memory, then hosts: the hosts file is what makes it acknowledged (a
	 * crash before it is undone at the next start) */
	r = sim_fm_add(f->pool, size, &t.tag, shared, &a);
	if (r < 0)
		return r;
	r = a.nextents > FABRIC_MAX_EXTENTS ? -E2BIG : create_bytes(f, &t.tag, size);
	if (r == 0)
		r = write_refs(f, &t);
	if (r < 0) {
		free_capacity(f, &t.tag);
		return r;
	}
	f->tags[f->n++] = t;
	*ret = &f->tags[f->n - 1];
	return 0;
}

static struct fabric_tag *find_mut(struct fabric *f, const tagmem_tag *tag)
{
	return (struct fabric_tag *)fabric_find(f, tag);
}

int fabric_add_reference(struct fabric *f, const tagmem_tag *tag, const char *host)
{
	struct fabric_tag *t = find_mut(f, tag);
	struct fabric_tag next;
	int r;

	if (!t)
		return -ENOENT;
	if (!t->shared || !fabric_valid_host(host))
		return -EINVAL;
	if (fabric_tag_has_host(t, host))
		return -EEXIST;
	if (t->nhosts == FABRIC_MAX_HOSTS)
		return -ENOSPC;
	next = *t;
	snprintf(next.hosts[next.nhosts++], sizeof(next.hosts[0]), "%s", host);
	r = write_refs(f, &next);
	if (r == 0)
		*t = next;
	return r;
}

int fabric_remove_reference(struct fabric *f, const tagmem_tag *tag, const char *host,
			    bool *ret_freed)
{
	struct fabric_tag *t = find_mut(f, tag);
	struct fabric_tag next;
	int r;

	*ret_freed = false;
	if (!t || (host && !fabric_tag_has_host(t, host)))
		return -ENOENT;
	next = *t;
	next.nhosts = 0;
	for (size_t i = 0; host && i < t->nhosts; i++)
		if (strcmp(t->hosts[i], host))
			snprintf(next.hosts[next.nhosts++], sizeof(next.hosts[0]), "%s", t->hosts[i]);
	r = write_refs(f, &next);
	if (r < 0)
		return r;
	if (next.nhosts) {
		*t = next;
		return 0;
	}
	*t = f->tags[--f->n];
	*ret_freed = true;
	return free_capacity(f, tag);
}

struct json_object *fabric_tag_json(struct fabric *f, const struct fabric_tag *t)
{
	_cleanup_free_ struct dcd_extent *ext = NULL;
	size_t n = 0;
	struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
	struct json_object *hosts = json_object_new_array();
	char s[TAGMEM_TAG_STRING_MAX];

	json_object_object_add(o, "tag", json_object_new_string(tagmem_tag_format(&t->tag, s)));
	json_object_object_add(o, "shared", json_object_new_boolean(t->shared));
	json_object_object_add(o, "region", json_object_new_int((int)t->region));
	json_object_object_add(o, "size", json_object_new_uint64(t->size));
	if (tag_extents(f, &t->tag, &ext, &n) < 0)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "offset", json_object_new_uint64(ext[i].offset));
		json_object_object_add(e, "length", json_object_new_uint64(ext[i].length));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "extents", arr);
	for (size_t i = 0; i < t->nhosts; i++)
		json_object_array_add(hosts, json_object_new_string(t->hosts[i]));
	json_object_object_add(o, "hosts", hosts);
	return o;
}
