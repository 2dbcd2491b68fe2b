/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Image files, opened so that the object checked is the object used. An image lives under one
 * of the configured image directories (trusted: the administrator's). Below it, every
 * directory must be root's (or brokerd's) and writable by nobody else: QEMU maps an image by
 * its name, and brokerd finds it by name after a restart, so a user who could write a
 * directory on the way could swap in a file of their own (-EPERM). The path is still walked
 * one component at a time with openat() and O_NOFOLLOW from the image directory's own fd: no
 * name is resolved twice, no symlink below the image directory is followed. A file with a
 * second hard link (a name somewhere else, perhaps outside) is the callers' to refuse: its
 * bytes are not only ours.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops.h"

/* Nobody but root and brokerd can change what a name in this directory means. */
static bool dir_is_ours(int dfd)
{
	struct stat st;

	return fstat(dfd, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
	       !(st.st_mode & (S_IWGRP | S_IWOTH));
}

/* Which image directory path lies under (by the configured name or its real path); sets
 * *ret_rel to the rest and ret_real to that directory's real path. */
static int image_dir_of(const struct broker_settings *s, const char *path, const char **ret_rel,
			char ret_real[PATH_MAX])
{
	for (unsigned i = 0; i < s->nimage_dirs; i++) {
		char real[PATH_MAX];
		const char *names[2] = { s->image_dirs[i], real };

		if (!realpath(s->image_dirs[i], real))
			continue;
		for (unsigned k = 0; k < 2; k++) {
			size_t n = strlen(names[k]);

			while (n > 1 && names[k][n - 1] == '/')
				n--;
			if (!strncmp(path, names[k], n) && path[n] == '/') {
				*ret_rel = path + n + 1;
				strcpy(ret_real, real);
				return 0;
			}
		}
	}
	return -EACCES;
}

int image_open_parent(const struct broker_settings *s, const char *path, int *ret_dfd,
		      char ret_base[NAME_MAX + 1], char ret_full[PATH_MAX])
{
	char real[PATH_MAX], comp[NAME_MAX + 1];
	const char *rel, *p;
	size_t full_len;
	int dfd, r;

	if (path[0] != '/' || strlen(path) >= PATH_MAX)
		return -EINVAL;
	r = image_dir_of(s, path, &rel, real);
	if (r < 0)
		return r;
	dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	full_len = (size_t)snprintf(ret_full, PATH_MAX, "%s", real);
	for (p = rel;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int next;

		if (n == 0 && slash) { /* "a//b" */
			p = slash + 1;
			continue;
		}
		if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			close(dfd);
			return -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (full_len + 1 + n >= PATH_MAX) {
			close(dfd);
			return -ENAMETOOLONG;
		}
		full_len += (size_t)snprintf(ret_full + full_len, PATH_MAX - full_len, "/%s", comp);
		if (!slash)
			break;
		/* a directory below the image directory: never through a symlink */
		next = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = next < 0 ? (errno == ELOOP || errno == ENOTDIR ? -EACCES : -errno) : 0;
		close(dfd);
		if (r < 0)
			return r;
		if (!dir_is_ours(next)) {
			close(next);
			return -EPERM;
		}
		dfd = next;
		p = slash + 1;
	}
	strcpy(ret_base, comp);
	*ret_dfd = dfd;
	return 0;
}

int image_open_file(int dfd, const char *base, int *ret_fd, struct stat *ret_st)
{
	struct stat st;
	int fd = openat(dfd, base, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == ELOOP ? -ELOOP : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EMEDIUMTYPE;
	}
	/* O_NONBLOCK only kept a FIFO from blocking the open; a regular file ignores it */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*ret_fd = fd;
	*ret_st = st;
	return 0;
}

int image_still_at(const struct broker_settings *s, const char *path, int fd)
{
	char base[NAME_MAX + 1], full[PATH_MAX];
	struct stat there, ours;
	int dfd, r = image_open_parent(s, path, &dfd, base, full);

	if (r < 0)
		return r;
	if (fstatat(dfd, base, &there, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	else if (fstat(fd, &ours) < 0)
		r = -errno;
	else if (there.st_dev != ours.st_dev || there.st_ino != ours.st_ino)
		r = -ESTALE;
	close(dfd);
	return r;
}
