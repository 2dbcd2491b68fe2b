/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fake-DAX images: regular files the broker creates and owns as tagged capacity. Layout:
 * data at offset 0, then a 2 MiB tail whose last 128 KiB holds the NVDIMM label (see
 * qemu-plugin/qemu.h). Paths are confined to the configured image directories: the parent
 * must resolve (symlinks and all) inside one of them, and the file itself is created with
 * O_EXCL|O_NOFOLLOW, so no symlink can point the broker at someone else's file.
 */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "ops.h"
#include "qemu.h"

#define IMAGE_MAX_SIZE (64ull << 40)

/* The real directory of path's parent, if it lies inside an image directory. */
static int confined_parent(struct broker *b, const char *path, char *ret_dir, char *ret_base)
{
	char tmp[PATH_MAX], real[PATH_MAX];
	const char *base;

	if (path[0] != '/' || strlen(path) >= sizeof(tmp))
		return -EINVAL;
	base = strrchr(path, '/') + 1;
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(base) >= NAME_MAX)
		return -EINVAL;
	snprintf(tmp, sizeof(tmp), "%.*s", (int)(base - path), path);
	if (!realpath(tmp, real))
		return -errno;
	for (unsigned i = 0; i < b->settings.nimage_dirs; i++) {
		char dir[PATH_MAX];
		size_t n;

		if (!realpath(b->settings.image_dirs[i], dir))
			continue;
		n = strlen(dir);
		if (!strncmp(real, dir, n) && (real[n] == '\0' || real[n] == '/')) {
			strcpy(ret_dir, real);
			strcpy(ret_base, base);
			return 0;
		}
	}
	return -EACCES;
}

static void image_dirs_text(struct broker *b, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < b->settings.nimage_dirs && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", b->settings.image_dirs[i]);
}

void op_image_create(struct request *rq)
{
	struct broker *b = rq->b;
	char dir[PATH_MAX], base[NAME_MAX + 1], full[PATH_MAX + NAME_MAX + 2], dirs[512];
	_cleanup_close_ int dfd = -1, fd = -1;
	const char *path;
	tagmem_tag tag;
	uint64_t size, file_size;
	struct tag_entry *e;
	int r;

	if (!is_privileged(rq)) {
		reply_error(rq, "permission_denied", "only root or the daemon's user may create images");
		return;
	}
	if (tagmem_json_get_string(rq->msg, "path", &path) < 0) {
		reply_error(rq, "invalid_argument", "\"path\" must be an absolute file name");
		return;
	}
	r = tagmem_json_get_u64(rq->msg, "size", &size);
	if (r < 0 || size < NVDIMM_REGION_ALIGN || size % NVDIMM_REGION_ALIGN ||
	    size > IMAGE_MAX_SIZE) {
		reply_error(rq, "invalid_argument",
			    "\"size\" must be a multiple of 16 MiB, from 16 MiB to 64 TiB (the guest "
			    "aligns namespaces to 16 MiB)");
		return;
	}
	r = tagmem_json_get_tag(rq->msg, "tag", &tag);
	if (r == -EINVAL || (r == 0 && tagmem_tag_is_null(&tag))) {
		reply_error(rq, "invalid_argument", "\"tag\" must be a non-nil UUID string");
		return;
	}
	if (r == -ENOENT)
		tagmem_tag_generate(&tag);
	if (tag_table_find(&b->tags, &tag)) {
		reply_error(rq, "exists", "that tag already names capacity");
		return;
	}
	image_dirs_text(b, dirs, sizeof(dirs));
	r = confined_parent(b, path, dir, base);
	if (r == -EACCES || r == -EINVAL) {
		reply_error(rq, "invalid_argument", "images must be files inside an image "
			    "directory (%s); '%.200s' is not", dirs, path);
		return;
	}
	if (r < 0) {
		reply_error(rq, "invalid_argument", "cannot use '%.200s': %s", path, strerror(-r));
		return;
	}
	snprintf(full, sizeof(full), "%s/%s", dir, base);
	for (e = b->tags.head; e; e = e->next)
		if (e->image && !strcmp(e->path, full)) {
			reply_error(rq, "busy", "%s is already the image of tag %s", full, e->tag_str);
			return;
		}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fd = openat(dfd, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		reply_error(rq, errno == EEXIST ? "exists" : "io_error", "cannot create %s: %s", full,
			    strerror(errno));
		return;
	}
	file_size = size + LABEL_TAIL;
	/* sparse: costs nothing until written; the label (slot 0 until attached) makes the
	 * file self-describing; the file and its name must be durable before the registry
	 * that records them */
	r = ftruncate(fd, (off_t)file_size) < 0 ? -errno : 0;
	if (r == 0)
		r = label_write_for_tag(fd, file_size, &tag, "tagmem", 0);
	if (r == 0 && (fsync(fd) < 0 || fsync(dfd) < 0))
		r = -errno;
	if (r == 0)
		r = broker_add_image(b, &tag, full, file_size);
	if (r < 0) {
		unlinkat(dfd, base, 0);
		reply_error(rq, "io_error", "cannot create %s: %s", full, strerror(-r));
		return;
	}
	e = tag_table_find(&b->tags, &tag);
	reply_result(rq, tag_to_json(e), broker_persist(b));
}
