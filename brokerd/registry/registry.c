/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The persistent registry: what the kernel does not remember (claims and their owners).
 *
 *   {"version":1,
 *    "claims":[{"tag":"…","uid":1000,"pid":42,"name":"vm1","since":1790000000,"slot":0}],
 *    "images":[{"tag":"…","path":"/var/lib/tagmem/images/a.img","file_size":52428800,
 *               "data_offset":0,      (the layout, recorded: never read again from the file)
 *               "inode":1234,         (the file brokerd made or adopted: another is not it)
 *               "dirty_budget":0,"resident_budget":0,
 *               "lost_writes_since":1790000000,"lost_writes":"…"}]}   (the last two: optional)
 *
 * It is replaced atomically (temp file, fsync, rename, directory fsync), so after a crash the
 * file is either the old or the new snapshot, never a mixture. A file that does not parse is
 * refused as a whole: silently dropping claims would hand somebody's memory to somebody else.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "registry.h"
#include "util.h"

#define REGISTRY_VERSION 1
#define REGISTRY_MAX_SIZE (64u << 20)

static int parse_claim(struct json_object *o, struct core_claim *c)
{
	const char *name;
	uint64_t v;
	int64_t since;
	struct json_object *js;

	memset(c, 0, sizeof(*c));
	c->owner.slot = -1;
	if (!json_object_is_type(o, json_type_object))
		return -EBADMSG;
	if (tagmem_json_get_tag(o, "tag", &c->tag) < 0)
		return -EBADMSG;
	if (tagmem_json_get_u64(o, "uid", &v) < 0 || v > UINT32_MAX - 1)
		return -EBADMSG;
	c->owner.uid = (uid_t)v;
	if (tagmem_json_get_u64(o, "pid", &v) == 0 && v <= INT32_MAX)
		c->owner.pid = (pid_t)v;
	switch (tagmem_json_get_string(o, "name", &name)) {
	case 0:
		if (strlen(name) >= sizeof(c->owner.name))
			return -EBADMSG;
		strcpy(c->owner.name, name);
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	if (json_object_object_get_ex(o, "since", &js)) {
		if (!json_object_is_type(js, json_type_int))
			return -EBADMSG;
		since = json_object_get_int64(js);
		c->owner.since = since;
	}
	switch (tagmem_json_get_bool(o, "granted", &c->owner.granted)) {
	case 0:
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	switch (tagmem_json_get_u64(o, "slot", &v)) {
	case 0:
		if (v >= 256)
			return -EBADMSG;
		c->owner.slot = (int)v;
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	return 0;
}

static int parse_image(struct json_object *o, struct registry_image *img)
{
	const char *path;
	uint64_t since;

	memset(img, 0, sizeof(*img));
	if (!json_object_is_type(o, json_type_object) ||
	    tagmem_json_get_tag(o, "tag", &img->tag) < 0 ||
	    tagmem_json_get_string(o, "path", &path) < 0 || path[0] != '/' ||
	    strlen(path) >= sizeof(img->path) ||
	    tagmem_json_get_u64(o, "file_size", &img->file_size) < 0 || !img->file_size)
		return -EBADMSG;
	strcpy(img->path, path);
	/* the layout came later too: a registry without it is read from the file once more */
	switch (tagmem_json_get_u64(o, "data_offset", &img->data_offset)) {
	case 0:
		if (img->data_offset >= img->file_size)
			return -EBADMSG;
		img->has_data_offset = true;
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	/* and the inode later: a registry without it trusts the name once, and records it */
	switch (tagmem_json_get_u64(o, "inode", &img->inode)) {
	case 0:
		img->has_inode = true;
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	/* lost writes came later still: both or neither */
	switch (tagmem_json_get_u64(o, "lost_writes_since", &since)) {
	case 0:
		if (!since || since > INT64_MAX ||
		    tagmem_json_get_string(o, "lost_writes", &path) < 0 ||
		    strlen(path) >= sizeof(img->lost.error))
			return -EBADMSG;
		strcpy(img->lost.error, path);
		img->lost.since = (int64_t)since;
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	/* budgets came later: both or neither */
	switch (tagmem_json_get_u64(o, "dirty_budget", &img->dirty_budget)) {
	case 0:
		if (tagmem_json_get_u64(o, "resident_budget", &img->resident_budget) < 0)
			return -EBADMSG;
		img->has_budgets = true;
		break;
	case -ENOENT:
		break;
	default:
		return -EBADMSG;
	}
	return 0;
}

void registry_clear(struct registry *r)
{
	free(r->claims);
	free(r->images);
	memset(r, 0, sizeof(*r));
}

int registry_parse(const char *text, size_t len, struct registry *ret)
{
	_cleanup_json_ struct json_object *root = NULL;
	struct registry reg = { 0 };
	struct json_object *arr;
	uint64_t version;
	size_t n;

	if (tagmem_msg_parse(text, len, REGISTRY_MAX_SIZE, &root) < 0)
		return -EBADMSG;
	if (tagmem_json_get_u64(root, "version", &version) < 0 || version != REGISTRY_VERSION)
		return -EBADMSG;
	if (!json_object_object_get_ex(root, "claims", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return -EBADMSG;
	n = json_object_array_length(arr);
	reg.claims = calloc(n ? n : 1, sizeof(*reg.claims));
	if (!reg.claims)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (parse_claim(json_object_array_get_idx(arr, i), &reg.claims[i]) < 0)
			goto bad;
		for (size_t k = 0; k < i; k++)
			if (!tagmem_tag_compare(&reg.claims[k].tag, &reg.claims[i].tag))
				goto bad; /* one tag, one owner */
	}
	reg.nclaims = n;
	/* images came later: a registry without them is a registry without images */
	if (json_object_object_get_ex(root, "images", &arr)) {
		if (!json_object_is_type(arr, json_type_array))
			goto bad;
		n = json_object_array_length(arr);
		reg.images = calloc(n ? n : 1, sizeof(*reg.images));
		if (!reg.images)
			goto bad;
		for (size_t i = 0; i < n; i++) {
			if (parse_image(json_object_array_get_idx(arr, i), &reg.images[i]) < 0)
				goto bad;
			for (size_t k = 0; k < i; k++)
				if (!tagmem_tag_compare(&reg.images[k].tag, &reg.images[i].tag) ||
				    !strcmp(reg.images[k].path, reg.images[i].path))
					goto bad;
		}
		reg.nimages = n;
	}
	*ret = reg;
	return 0;
bad:
	registry_clear(&reg);
	return -EBADMSG;
}

int registry_load(const char *state_dir, struct registry *ret)
{
	_cleanup_close_ int dfd = -1, fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, REGISTRY_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		memset(ret, 0, sizeof(*ret)); /* first start */
		return 0;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size > REGISTRY_MAX_SIZE)
		return -EBADMSG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	/* strip the trailing newline the writer adds */
	while (len && (buf[len - 1] == '\n'))
		len--;
	return registry_parse(buf, len, ret);
}

static struct json_object *claim_json(const char *tag, const struct tag_owner *owner)
{
	struct json_object *c = json_object_new_object();

	json_object_object_add(c, "tag", json_object_new_string(tag));
	json_object_object_add(c, "uid", json_object_new_uint64(owner->uid));
	if (owner->pid > 0)
		json_object_object_add(c, "pid", json_object_new_int(owner->pid));
	if (owner->name[0])
		json_object_object_add(c, "name", json_object_new_string(owner->name));
	json_object_object_add(c, "since", json_object_new_int64(owner->since));
	if (owner->slot >= 0)
		json_object_object_add(c, "slot", json_object_new_int(owner->slot));
	if (owner->granted)
		json_object_object_add(c, "granted", json_object_new_boolean(true));
	return c;
}

static struct json_object *image_json(const char *tag, const char *path, uint64_t file_size,
				      const uint64_t *data_offset, const uint64_t *inode,
				      uint64_t dirty_budget, uint64_t resident_budget,
				      const struct image_lost *lost)
{
	struct json_object *im = json_object_new_object();

	json_object_object_add(im, "tag", json_object_new_string(tag));
	json_object_object_add(im, "path", json_object_new_string(path));
	json_object_object_add(im, "file_size", json_object_new_uint64(file_size));
	if (data_offset)
		json_object_object_add(im, "data_offset", json_object_new_uint64(*data_offset));
	if (inode)
		json_object_object_add(im, "inode", json_object_new_uint64(*inode));
	json_object_object_add(im, "dirty_budget", json_object_new_uint64(dirty_budget));
	json_object_object_add(im, "resident_budget", json_object_new_uint64(resident_budget));
	if (lost->since) {
		json_object_object_add(im, "lost_writes_since", json_object_new_int64(lost->since));
		json_object_object_add(im, "lost_writes", json_object_new_string(lost->error));
	}
	return im;
}

char *registry_serialize(struct core *core, const struct registry_image *keep, size_t nkeep,
			 size_t *ret_len)
{
	_cleanup_json_ struct json_object *root = json_object_new_object();
	struct json_object *arr = json_object_new_array();

	if (!root || !arr) {
		json_object_put(arr);
		return NULL;
	}
	json_object_object_add(root, "version", json_object_new_int(REGISTRY_VERSION));
	json_object_object_add(root, "claims", arr);
	struct tag *e;

	core_for_each(e, core)
		/* provisional until QEMU confirms, or until a VM migrating in runs here */
		if (e->claimed && e->vm != TAG_VM_ATTACHING && e->vm != TAG_VM_INCOMING)
			json_object_array_add(arr, claim_json(e->tag_str, &e->owner));
	for (size_t i = 0; i < nkeep; i++) {
		char s[TAGMEM_TAG_STRING_MAX];

		if (keep[i].has_claim)
			json_object_array_add(arr, claim_json(tagmem_tag_format(&keep[i].tag, s),
							      &keep[i].claim.owner));
	}
	struct json_object *imgs = json_object_new_array();
	json_object_object_add(root, "images", imgs);
	core_for_each(e, core)
		if (tag_is_image(e))
			json_object_array_add(imgs, image_json(e->tag_str, e->cap.path,
							       e->image.file_size,
							       &e->image.data_offset,
							       &e->image.inode,
							       e->image.dirty_budget,
							       e->image.resident_budget,
							       &e->image.lost));
	for (size_t i = 0; i < nkeep; i++) {
		char s[TAGMEM_TAG_STRING_MAX];

		/* as read: a record without budgets stays without, so the defaults apply */
		struct json_object *im = image_json(tagmem_tag_format(&keep[i].tag, s),
						    keep[i].path, keep[i].file_size,
						    keep[i].has_data_offset ? &keep[i].data_offset :
						    NULL, keep[i].has_inode ? &keep[i].inode : NULL,
						    keep[i].dirty_budget, keep[i].resident_budget,
						    &keep[i].lost);
		if (!keep[i].has_budgets) {
			json_object_object_del(im, "dirty_budget");
			json_object_object_del(im, "resident_budget");
		}
		json_object_array_add(imgs, im);
	}
	return tagmem_msg_format(root, ret_len);
}

int registry_write_atomic(const char *state_dir, const char *data, size_t len)
{
	_cleanup_close_ int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -errno;
	return write_file_atomic(dfd, REGISTRY_FILE, REGISTRY_FILE ".tmp", data, len);
}
