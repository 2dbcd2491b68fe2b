/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sysfs.h"
#include "util.h"

struct sysfs {
	int rootfd;
	char root[PATH_MAX];
};

int sysfs_open(const char *root, struct sysfs **ret_sysfs)
{
	struct sysfs *s;
	int fd;

	if (!root || !*root || strlen(root) >= PATH_MAX)
		return -EINVAL;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->rootfd = fd;
	strcpy(s->root, root);
	*ret_sysfs = s;
	return 0;
}

struct sysfs *sysfs_close(struct sysfs *s)
{
	if (s) {
		close(s->rootfd);
		free(s);
	}
	return NULL;
}

const char *sysfs_root(struct sysfs *s)
{
	return s->root;
}

int sysfs_root_fd(struct sysfs *s)
{
	return s->rootfd;
}

/* Paths are relative to the root; a leading "/" is tolerated for readability. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

int sysfs_read_raw(struct sysfs *s, const char *path, void *buf, size_t size, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	size_t len = 0;

	fd = openat(s->rootfd, rel(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, (char *)buf + len, size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == size)
			return -EFBIG; /* bigger than the caller allows: not the file it expects */
	}
	*ret_len = len;
	return 0;
}

int sysfs_read(struct sysfs *s, const char *path, char *buf, size_t size)
{
	char tmp[SYSFS_ATTR_MAX + 1];
	size_t len;
	int r;

	if (size == 0)
		return -EINVAL;
	/* no attribute we read is anywhere near a page */
	r = sysfs_read_raw(s, path, tmp, sizeof(tmp), &len);
	return r < 0 ? r : sysfs_attr_text(tmp, len, buf, size);
}

int sysfs_attr_text(const char *raw, size_t len, char *buf, size_t size)
{
	if (size == 0)
		return -EINVAL;
	while (len > 0 && raw[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < len; i++)
		if (!isprint((unsigned char)raw[i]))
			return -EINVAL;
	if (len >= size)
		return -ENAMETOOLONG;
	memcpy(buf, raw, len);
	buf[len] = '\0';
	return 0;
}

int sysfs_parse_u64(const char *text, uint64_t *ret_val)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)text[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 0);
	if (errno || end == text || *end)
		return -EINVAL;
	*ret_val = v;
	return 0;
}

int sysfs_parse_tag(const char *text, tagmem_tag *ret_tag, bool *ret_tagged)
{
	tagmem_tag tag;
	int r;

	if (text[0] == '\0') {
		*ret_tagged = false;
		return 0;
	}
	r = tagmem_tag_parse(text, &tag);
	if (r < 0)
		return r;
	*ret_tagged = !tagmem_tag_is_null(&tag);
	*ret_tag = tag;
	return 0;
}

int sysfs_read_u64(struct sysfs *s, const char *path, uint64_t *ret_val)
{
	char buf[64];
	int r = sysfs_read(s, path, buf, sizeof(buf));

	return r < 0 ? r : sysfs_parse_u64(buf, ret_val);
}

int sysfs_read_tag(struct sysfs *s, const char *path, tagmem_tag *ret_tag, bool *ret_tagged)
{
	char buf[64];
	int r = sysfs_read(s, path, buf, sizeof(buf));

	return r < 0 ? r : sysfs_parse_tag(buf, ret_tag, ret_tagged);
}

int sysfs_read_tag_optional(struct sysfs *s, const char *path, tagmem_tag *ret_tag,
			    bool *ret_tagged)
{
	int r = sysfs_read_tag(s, path, ret_tag, ret_tagged);

	if (r == -ENOENT) {
		*ret_tagged = false;
		return 0;
	}
	return r;
}

int sysfs_write(struct sysfs *s, const char *path, const char *value)
{
	_cleanup_close_ int fd = -1;

	/* O_TRUNC as a shell redirection does: harmless on real sysfs, needed on the simulator */
	fd = openat(s->rootfd, rel(path), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	return write_all(fd, value, strlen(value));
}

bool sysfs_exists(struct sysfs *s, const char *path)
{
	return faccessat(s->rootfd, rel(path), F_OK, 0) == 0;
}

static int natural_cmp(const void *pa, const void *pb)
{
	return strverscmp(*(char *const *)pa, *(char *const *)pb);
}

void sysfs_names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

int sysfs_list_entries(struct sysfs *s, const char *dir, const char *prefix,
		       struct sysfs_entry **ret_entries, size_t *ret_count)
{
	size_t n = 0, cap = 0, plen = strlen(prefix);
	struct sysfs_entry *e = NULL;
	struct dirent *de;
	DIR *d;
	int fd;

	*ret_entries = NULL;
	*ret_count = 0;
	fd = openat(s->rootfd, rel(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, plen))
			continue;
		if (grow_array(&e, &cap, n, sizeof(*e)) < 0)
			goto oom;
		e[n].name = strdup(de->d_name);
		if (!e[n].name)
			goto oom;
		/* readdir's inode number comes free with the name: kernfs never gives a new
		 * node an old node's number while that number is still cached anywhere */
		e[n++].ino = de->d_ino;
	}
	closedir(d);
	*ret_entries = e;
	*ret_count = n;
	return 0;
oom:
	closedir(d);
	sysfs_entries_free(e, n);
	return -ENOMEM;
}

void sysfs_entries_free(struct sysfs_entry *entries, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(entries[i].name);
	free(entries);
}

int sysfs_list(struct sysfs *s, const char *dir, const char *prefix, char ***ret_names,
	       size_t *ret_count)
{
	struct sysfs_entry *e;
	char **names = NULL;
	size_t n;
	int r = sysfs_list_entries(s, dir, prefix, &e, &n);

	if (r < 0)
		return r;
	if (n) {
		names = malloc(n * sizeof(*names));
		if (!names) {
			sysfs_entries_free(e, n);
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			names[i] = e[i].name; /* the names move; only the array is freed */
		free(e);
		qsort(names, n, sizeof(*names), natural_cmp);
	}
	*ret_names = names;
	*ret_count = n;
	return 0;
}

static int parse_uint(const char *s, const char **ret_end, unsigned *ret)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || v > INT_MAX)
		return -EINVAL;
	*ret = (unsigned)v;
	*ret_end = end;
	return 0;
}

int sysfs_parse_dotted(const char *name, const char *prefix, unsigned *ret_a, unsigned *ret_b)
{
	size_t plen = strlen(prefix);
	const char *p;
	unsigned a, b;

	if (strncmp(name, prefix, plen))
		return -EINVAL;
	if (parse_uint(name + plen, &p, &a) < 0 || *p != '.')
		return -EINVAL;
	if (parse_uint(p + 1, &p, &b) < 0 || *p)
		return -EINVAL;
	*ret_a = a;
	*ret_b = b;
	return 0;
}
