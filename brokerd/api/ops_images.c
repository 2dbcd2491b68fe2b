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

#include "dataplane.h"
#include "log.h"
#include "ops.h"
#include "qemu.h"
#include "view.h"

/* The image whose file is this inode, if any (one file, one image). */
static struct tag *find_image_file(struct api *api, dev_t dev, ino_t ino)
{
	struct tag *e;

	core_for_each(e, api->core)
		if (e->image.io && image_io_dev(e->image.io) == dev &&
		    image_io_ino(e->image.io) == ino)
			return e;
	return NULL;
}

/*
 * Where the tag's data starts in an image file: after the prefix of the devdax layout when the
 * file has a DAX info block for this tag, else at 0. The file says which, so it needs no
 * other record. -EMEDIUMTYPE: an info block that is not this layout's, and why (why: a
 * buffer of IMAGE_WHY_MAX, or NULL).
 */
#define IMAGE_WHY_MAX 128
static int image_data_offset(int fd, const tagmem_tag *tag, uint64_t file_size,
			     uint64_t *ret, char *why)
{
	uint8_t block[DAX_INFO_SIZE];
	char s[TAGMEM_TAG_STRING_MAX], t[TAGMEM_TAG_STRING_MAX], scratch[IMAGE_WHY_MAX];
	tagmem_tag parent;
	uint64_t dataoff;
	ssize_t n;
	int r;

	*ret = 0;
	why = why ? why : scratch;
	n = pread(fd, block, sizeof(block), DAX_INFO_OFFSET);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(block))
		return 0;
	r = dax_info_parse(block, &parent, &dataoff, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		snprintf(why, IMAGE_WHY_MAX, "is damaged (its checksum or version is wrong)");
	else if (tagmem_tag_compare(&parent, tag))
		snprintf(why, IMAGE_WHY_MAX, "is for namespace %s, not for tag %s",
			 tagmem_tag_format(&parent, s), tagmem_tag_format(tag, t));
	else if (dataoff != DAX_PREFIX)
		snprintf(why, IMAGE_WHY_MAX, "puts the data at %llu, not at %u",
			 (unsigned long long)dataoff, DAX_PREFIX);
	else if (file_size < DAX_PREFIX + NVDIMM_REGION_ALIGN + LABEL_TAIL)
		snprintf(why, IMAGE_WHY_MAX, "is in a file too small for the devdax layout");
	else {
		*ret = dataoff;
		return 0;
	}
	return -EMEDIUMTYPE;
}

/* Is the prefix's info block a pfn device's (fsdax)? Only for `show`: the data offset is
 * what brokerd relies on, and a guest may rewrite the block as it likes. */
static bool image_says_fsdax(int fd)
{
	uint8_t block[DAX_INFO_SIZE];
	enum dax_info_kind kind;
	tagmem_tag parent;
	uint64_t dataoff;

	return pread(fd, block, sizeof(block), DAX_INFO_OFFSET) == (ssize_t)sizeof(block) &&
	       dax_info_parse(block, &parent, &dataoff, &kind) == 0 && kind == DAX_INFO_FSDAX;
}

int api_add_image(struct api *api, const tagmem_tag *tag, const char *path, int fd, int dfd,
		  uint64_t file_size, const uint64_t *layout, const uint64_t budgets[2],
		  struct tag **ret)
{
	struct image_io *io;
	struct image_budgets bu = { .dirty = budgets ? budgets[0] : api->settings->dirty_budget,
				    .resident = budgets ? budgets[1] : 0 };
	uint64_t data_off;
	int r;

	if (core_find(api->core, tag))
		return -EEXIST;
	if (layout) {
		/* what brokerd recorded: a guest may have written any bytes since, an info block
		 * at 4 KiB included (ndctl create-namespace -m devdax does) */
		data_off = *layout;
		if ((data_off != 0 && data_off != DAX_PREFIX) ||
		    file_size < data_off + NVDIMM_REGION_ALIGN + LABEL_TAIL)
			return -EMEDIUMTYPE;
	} else {
		r = image_data_offset(fd, tag, file_size, &data_off, NULL);
		if (r < 0)
			return r;
	}
	r = image_io_open(fd, dfd, file_size - LABEL_TAIL, &io);
	if (r < 0)
		return r;
	if (find_image_file(api, image_io_dev(io), image_io_ino(io))) {
		image_io_unref(io);
		return -EBUSY;
	}
	image_io_set_budgets(io, &bu);
	if (image_io_in_memory(io))
		log_warn("Image %s is on tmpfs, which is memory: flush cannot make it durable, "
			 "evict cannot shrink it, its budgets do nothing, and it does not survive a "
			 "reboot", path);
	else if (pc_fs_ext4_without_journal(fd))
		log_warn("Image %s is on ext4 without a journal: each flush is an fdatasync of the "
			 "whole image, and a power cut can still lose the image or the registry "
			 "(e2fsck drops inodes it cannot vouch for). Keep images and the state "
			 "directory on ext4 with a journal or on XFS", path);
	r = core_add_image(api->core, tag, path, file_size, data_off,
			   file_size - LABEL_TAIL - data_off, io, bu.dirty, bu.resident, ret);
	if (r < 0) {
		image_io_unref(io);
		return r;
	}
	(*ret)->image.inode = image_io_ino(io);
	(*ret)->image.fsdax = data_off && image_says_fsdax(fd);
	return r;
}

int api_restore_image(struct api *api, const tagmem_tag *tag, const char *path,
		      uint64_t file_size, const uint64_t *layout, const uint64_t *inode,
		      const uint64_t budgets[2], const struct image_lost *lost)
{
	char base[NAME_MAX + 1], full[PATH_MAX];
	_cleanup_close_ int dfd = -1, fd = -1;
	struct tag *e;
	struct stat st;
	int r;

	r = image_open_parent(api->settings, path, &dfd, base, full);
	if (r == 0)
		r = image_open_file(dfd, base, &fd, &st);
	if (r == 0 && (uint64_t)st.st_size != file_size)
		r = -EMEDIUMTYPE;
	if (r == 0 && inode && (uint64_t)st.st_ino != *inode)
		r = -ESTALE; /* another file under the name: never served as this tag's */
	if (r == 0 && st.st_nlink != 1) /* ours since create or adopt: a later link is noted */
		log_warn("Image %s has %lu hard links: its bytes are reachable by other names",
			 full, (unsigned long)st.st_nlink);
	if (r < 0)
		return r;
	if (!layout)
		log_info("Image %s: its registry record predates recorded layouts; the layout is "
			 "read from the file this once and recorded", full);
	r = api_add_image(api, tag, full, fd, dfd, file_size, layout, budgets, &e);
	if (r == 0 && lost->since) {
		image_io_set_lost(e->image.io, lost->since, lost->error);
		core_set_image_lost(api->core, e, lost);
		log_warn("Image %s of tag %s lost writes before the restart (%s); its flushes fail "
			 "until 'tagmem image clear-error %s'", full, e->tag_str, lost->error,
			 e->tag_str);
	}
	return r;
}

static void image_dirs_text(struct api *api, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < api->settings->nimage_dirs && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", api->settings->image_dirs[i]);
}


/* path, confined to an image directory: its parent directory (opened), base name and
 * canonical full name. Replies the error itself. */
static bool arg_confined(struct request *rq, const char *path, int *ret_dfd,
			 char base[NAME_MAX + 1], char full[PATH_MAX])
{
	char dirs[512];
	int r = image_open_parent(rq->api->settings, path, ret_dfd, base, full);

	if (r == -EACCES || r == -EINVAL) {
		image_dirs_text(rq->api, dirs, sizeof(dirs));
		reply_error(rq, "invalid_argument", "images must be files inside an image "
			    "directory (%s), reached without symbolic links below it; '%.200s' is not",
			    dirs, path);
		return false;
	}
	if (r == -EPERM) {
		reply_error(rq, "permission_denied", "'%.200s' lies below a directory that users "
			    "other than root can write, who could swap the image for a file of their "
			    "own; make every directory below the image directory root's and not "
			    "group- or world-writable", path);
		return false;
	}
	if (r < 0) {
		reply_error(rq, "invalid_argument", "cannot use '%.200s': %s", path, strerror(-r));
		return false;
	}
	return true;
}

/*
 * A new image file in dfd, to be named base: without a name while it is made (O_TMPFILE),
 * so a create cut short (kill -9, a full disk) leaves nothing behind to answer "exists";
 * named at once where the filesystem cannot (*named). -EEXIST when base is taken.
 */
static int create_file(int dfd, const char *base, int *ret_fd, bool *named)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST; /* early: linking checks again, atomically */
	*named = false;
	fd = openat(dfd, ".", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		*named = true;
		fd = openat(dfd, base, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	*ret_fd = fd;
	return 0;
}

/* Give the finished O_TMPFILE file its name; never replaces one (-EEXIST). */
static int link_tmpfile(int fd, int dfd, const char *base)
{
	char self[64];

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, self, dfd, base, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* The devdax or fsdax layout's info block: the guest kernel makes the data a dax device, or
 * a block device a filesystem mounts with -o dax. */
static int write_dax_info(int fd, enum dax_info_kind kind, const tagmem_tag *tag,
			  uint64_t ns_size)
{
	uint8_t block[DAX_INFO_SIZE];
	tagmem_tag dax_uuid;
	int r;

	tagmem_tag_generate(&dax_uuid);
	r = dax_info_build(block, kind, tag, &dax_uuid, ns_size);
	if (r < 0)
		return r;
	if (pwrite(fd, block, sizeof(block), DAX_INFO_OFFSET) != (ssize_t)sizeof(block))
		return -errno;
	return 0;
}

/* create's arguments, checked by the op table's rules: layout, path, size, tag. *prefixed: a
 * DAX layout (devdax or fsdax, *kind), with its 16 MiB header. */
static void create_args(struct request *rq, bool *prefixed, enum dax_info_kind *kind,
			const char **path, uint64_t *size, tagmem_tag *tag, bool *has_tag)
{
	const char *layout = "pmem";

	tagmem_json_get_string(rq->msg, "layout", &layout);
	*prefixed = !strcmp(layout, "devdax") || !strcmp(layout, "fsdax");
	*kind = !strcmp(layout, "fsdax") ? DAX_INFO_FSDAX : DAX_INFO_DEVDAX;
	tagmem_json_get_string(rq->msg, "path", path);
	tagmem_json_get_u64(rq->msg, "size", size);
	*has_tag = tagmem_json_get_tag(rq->msg, "tag", tag) == 0;
}

void op_image_create(struct request *rq)
{
	struct api *api = rq->api;
	char base[NAME_MAX + 1], full[PATH_MAX];
	_cleanup_close_ int dfd = -1, fd = -1;
	const char *path;
	bool has_tag, devdax, named;
	enum dax_info_kind kind;
	tagmem_tag tag;
	uint64_t size, file_size;
	struct tag *e;
	int r;

	create_args(rq, &devdax, &kind, &path, &size, &tag, &has_tag);
	if (!has_tag)
		tagmem_tag_generate(&tag);
	if (core_find(api->core, &tag)) {
		reply_error(rq, "exists", "that tag already names capacity");
		return;
	}
	if (!arg_confined(rq, path, &dfd, base, full))
		return;
	core_for_each(e, api->core)
		if (tag_is_image(e) && !strcmp(e->cap.path, full)) {
			reply_error(rq, "busy", "%s is already the image of tag %s", full, e->tag_str);
			return;
		}
	r = create_file(dfd, base, &fd, &named);
	if (r < 0) {
		reply_error(rq, r == -EEXIST ? "exists" : "io_error", "cannot create %s: %s", full,
			    strerror(-r));
		return;
	}
	file_size = (devdax ? DAX_PREFIX : 0) + size + LABEL_TAIL;
	/* sparse: costs nothing until written; the label (slot 0 until attached) makes the
	 * file self-describing; the file and its name must be durable before the registry
	 * that records them, and the name comes last: a create cut short leaves no file */
	r = ftruncate(fd, (off_t)file_size) < 0 ? -errno : 0;
	if (r == 0 && devdax)
		r = write_dax_info(fd, kind, &tag, file_size - LABEL_TAIL);
	if (r == 0)
		r = label_write_for_tag(fd, file_size, &tag, "tagmem", 0);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && !named) {
		r = link_tmpfile(fd, dfd, base);
		named = r == 0;
	}
	if (r == 0 && fsync(dfd) < 0)
		r = -errno;
	if (r == 0)
		r = api_add_image(api, &tag, full, fd, dfd, file_size,
				  &(uint64_t){ devdax ? DAX_PREFIX : 0 }, NULL, &e);
	if (r < 0) {
		if (named && r != -EEXIST)
			unlinkat(dfd, base, 0);
		reply_error(rq, r == -EEXIST ? "exists" : "io_error", "cannot create %s: %s", full,
			    strerror(-r));
		return;
	}
	reply_result(rq, tag_to_json(e), core_persist(api->core));
}

/* The tag an existing file's label names, if it is one of ours: named "tagmem" or "tagmem-…"
 * (not merely beginning so), with a tag (never the nil uuid). 0 with *found false for a label
 * area never initialised; -EEXIST for anything else living there. */
static int label_tag_of(int fd, uint64_t file_size, tagmem_tag *ret, bool *found)
{
	_cleanup_free_ uint8_t *area = malloc(LABEL_AREA_SIZE);
	struct label_info li[2];
	int n, r;

	if (!area)
		return -ENOMEM;
	r = label_area_read_file(fd, file_size, area);
	if (r < 0)
		return r;
	n = label_area_parse(area, li, ARRAY_SIZE(li));
	if (n < 0 || n > 1 ||
	    (n == 1 && (!view_name_is_tagmem(li[0].name) || tagmem_tag_is_null(&li[0].tag))))
		return -EEXIST;
	*found = n == 1;
	if (n == 1)
		*ret = li[0].tag;
	return 0;
}

/* The file to adopt: opened below an image directory, a regular file of an image's size,
 * nobody's image yet, with no other name. Replies and returns false if not. */
static bool adoptable(struct request *rq, int dfd, const char *base, const char *full,
		      int *ret_fd, struct stat *st)
{
	struct tag *e;
	uint64_t size;
	int r = image_open_file(dfd, base, ret_fd, st);

	if (r < 0) {
		reply_error(rq, r == -ENOENT ? "not_found" : "invalid_argument", "cannot adopt %s: %s",
			    full, r == -ELOOP ? "it is a symbolic link; adopt the file itself, inside "
			    "an image directory" : r == -EMEDIUMTYPE ? "it is not a regular file" :
			    strerror(-r));
		return false;
	}
	size = (uint64_t)st->st_size;
	if (size < NVDIMM_REGION_ALIGN + LABEL_TAIL || (size - LABEL_TAIL) % NVDIMM_REGION_ALIGN) {
		reply_error(rq, "invalid_argument", "%s is %llu bytes; an image is data (a multiple "
			    "of 16 MiB) plus a 2 MiB label tail: resize it with truncate -s first",
			    full, (unsigned long long)size);
		return false;
	}
	e = find_image_file(rq->api, st->st_dev, st->st_ino);
	if (e) {
		reply_error(rq, "busy", "%s is already the image of tag %s", full, e->tag_str);
		return false;
	}
	if (st->st_nlink != 1) {
		/* another name may lie outside the image directory: the bytes are not only ours */
		reply_error(rq, "invalid_argument", "cannot adopt %s: it has another hard link, so "
			    "its bytes are not only the image directory's; copy it instead", full);
		return false;
	}
	return true;
}

void op_image_adopt(struct request *rq)
{
	struct api *api = rq->api;
	char base[NAME_MAX + 1], full[PATH_MAX];
	char s[TAGMEM_TAG_STRING_MAX], why[IMAGE_WHY_MAX];
	_cleanup_close_ int dfd = -1, fd = -1;
	tagmem_tag tag, labelled;
	bool has_tag, has_label = false;
	struct tag *e;
	const char *path;
	struct stat st;
	uint64_t size, data_off;
	int r;

	tagmem_json_get_string(rq->msg, "path", &path); /* the op table's rules checked them */
	has_tag = tagmem_json_get_tag(rq->msg, "tag", &tag) == 0;
	if (!arg_confined(rq, path, &dfd, base, full) || !adoptable(rq, dfd, base, full, &fd, &st))
		return;
	size = (uint64_t)st.st_size;
	r = label_tag_of(fd, size, &labelled, &has_label);
	if (r == -EEXIST) {
		reply_error(rq, "busy", "the label area of %s holds another namespace; refusing to "
			    "overwrite it", full);
		return;
	}
	if (r < 0) {
		reply_error(rq, "io_error", "cannot read the label area of %s: %s", full, strerror(-r));
		return;
	}
	if (has_label && has_tag && tagmem_tag_compare(&tag, &labelled)) {
		reply_error(rq, "invalid_argument", "%s is labelled with tag %s; adopt it under that "
			    "tag or remove the label", full, tagmem_tag_format(&labelled, s));
		return;
	}
	if (has_label)
		tag = labelled;
	else if (!has_tag)
		tagmem_tag_generate(&tag);
	if (core_find(api->core, &tag)) {
		reply_error(rq, "exists", "tag %s already names capacity", tagmem_tag_format(&tag, s));
		return;
	}
	/* a refused adopt changes nothing: check the info block before labelling */
	if (image_data_offset(fd, &tag, size, &data_off, why) == -EMEDIUMTYPE) {
		reply_error(rq, "busy", "%s has a DAX info block at 4 KiB that %s; refusing to "
			    "adopt it", full, why);
		return;
	}
	if (!has_label) {
		r = label_write_for_tag(fd, size, &tag, "tagmem", 0);
		if (r < 0) {
			reply_error(rq, "io_error", "cannot label %s: %s", full, strerror(-r));
			return;
		}
	}
	r = api_add_image(api, &tag, full, fd, dfd, size, NULL, NULL, &e);
	if (r < 0) {
		reply_error(rq, r == -EBUSY ? "busy" : "io_error", "cannot adopt %s: %s", full,
			    strerror(-r));
		return;
	}
	reply_result(rq, tag_to_json(e), core_persist(api->core));
}

/* Stop treating a file as an image; the file itself stays. Refused while it is claimed. */
void op_image_forget(struct request *rq)
{
	struct api *api = rq->api;
	struct tag *e = arg_tag(rq, NULL, true);
	struct json_object *res;

	if (!e)
		return;
	if (!tag_is_image(e)) {
		reply_error(rq, "not_supported", "tag %s is not an image: brokerd forgets only files "
			    "it was given", e->tag_str);
		return;
	}
	if (e->claimed) {
		reply_error(rq, "busy", "tag %s is claimed by uid %u%s%s: release it first (a VM's "
			    "tags are released when it exits)", e->tag_str, e->owner.uid,
			    e->owner.name[0] ? " as " : "", e->owner.name);
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "tag", json_object_new_string(e->tag_str));
	json_object_object_add(res, "path", json_object_new_string(e->cap.path));
	core_gone(api->core, &e->tag); /* tag_released; the registry forgets it */
	reply_result(rq, res, core_last_persist(api->core));
}

/* What the label in an image's tail says (the reader the guest's kernel would agree with). */
struct json_object *image_label_json(const struct tag *e)
{
	_cleanup_free_ uint8_t *area = malloc(LABEL_AREA_SIZE);
	int fd = image_io_fd(e->image.io); /* the file brokerd checked, not the name now */
	struct json_object *o = json_object_new_object();
	struct label_info li[2];
	char s[TAGMEM_TAG_STRING_MAX], cookie[24];
	int n;

	if (fd < 0 || !area || label_area_read_file(fd, e->image.file_size, area) < 0) {
		json_object_object_add(o, "error", json_object_new_string("unreadable"));
		return o;
	}
	n = label_area_parse(area, li, 2);
	if (n < 0) {
		json_object_object_add(o, "error", json_object_new_string("corrupt"));
		return o;
	}
	json_object_object_add(o, "labels", json_object_new_int(n));
	if (n >= 1) {
		json_object_object_add(o, "uuid", json_object_new_string(tagmem_tag_format(&li[0].tag, s)));
		json_object_object_add(o, "name", json_object_new_string(li[0].name));
		snprintf(cookie, sizeof(cookie), "%#llx", (unsigned long long)li[0].isetcookie);
		json_object_object_add(o, "isetcookie", json_object_new_string(cookie));
		for (unsigned slot = 0; slot < NVDIMM_MAX_SLOTS; slot++)
			if (label_isetcookie(slot) == li[0].isetcookie)
				json_object_object_add(o, "nvdimm_slot", json_object_new_int((int)slot));
		json_object_object_add(o, "rawsize", json_object_new_uint64(li[0].rawsize));
	}
	return o;
}
