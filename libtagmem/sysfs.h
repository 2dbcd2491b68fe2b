/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small sysfs reader rooted at a configurable directory: "/" on a host, the simulator's
 * sandbox (or a test fixture) otherwise. libcxl/libdaxctl hard-code /sys and know nothing of
 * DCD extents, so DCD attributes are read here. Internal to tagmem (libtagmem, brokerd,
 * tests); not installed.
 *
 * Attributes are hostile input: values are size-bounded, must be printable text, and numbers
 * must parse completely.
 */
#ifndef TAGMEM_SYSFS_H
#define TAGMEM_SYSFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tagmem.h"

#define SYSFS_ATTR_MAX 4096

struct sysfs;

int sysfs_open(const char *root, struct sysfs **ret_sysfs);
struct sysfs *sysfs_close(struct sysfs *s);
const char *sysfs_root(struct sysfs *s);
int sysfs_root_fd(struct sysfs *s);

/* Read an attribute (path relative to the root) without its trailing newline. */
int sysfs_read(struct sysfs *s, const char *path, char *buf, size_t size);
/* The bytes of a file (binary: firmware tables), at most size - 1 of them; -EFBIG if larger. */
int sysfs_read_raw(struct sysfs *s, const char *path, void *buf, size_t size, size_t *ret_len);
/* Decimal or 0x-prefixed hex ("%#llx", as DCD extents print); nothing else. */
int sysfs_read_u64(struct sysfs *s, const char *path, uint64_t *ret_val);
/* A UUID attribute. An empty or all-zero value means "no tag": *ret_tagged = false. */
int sysfs_read_tag(struct sysfs *s, const char *path, tagmem_tag *ret_tag, bool *ret_tagged);
/* The same, for an attribute the kernel leaves out when there is no tag (untagged extents,
 * non-DCD dax devices, label-less namespaces): absent means untagged, not an error. */
int sysfs_read_tag_optional(struct sysfs *s, const char *path, tagmem_tag *ret_tag,
			    bool *ret_tagged);
int sysfs_write(struct sysfs *s, const char *path, const char *value);

/* What the readers above do with an attribute's bytes, on their own (tests, fuzzing):
 * strip trailing newlines and refuse anything unprintable or too long; a number; a tag. */
int sysfs_attr_text(const char *raw, size_t len, char *buf, size_t size);
int sysfs_parse_u64(const char *text, uint64_t *ret_val);
int sysfs_parse_tag(const char *text, tagmem_tag *ret_tag, bool *ret_tagged);
bool sysfs_exists(struct sysfs *s, const char *path);
/*
 * Names of the entries of dir that start with prefix, sorted naturally ("x2" < "x10").
 * Free with sysfs_names_free(). A missing dir is an empty list.
 */
int sysfs_list(struct sysfs *s, const char *dir, const char *prefix, char ***ret_names,
	       size_t *ret_count);
void sysfs_names_free(char **names, size_t count);
/* The same entries unsorted, each with its inode number (readdir's d_ino): a directory made
 * again under the same name is a new inode, so a cache can tell it from the one it read. */
struct sysfs_entry {
	char *name;
	uint64_t ino;
};
int sysfs_list_entries(struct sysfs *s, const char *dir, const char *prefix,
		       struct sysfs_entry **ret_entries, size_t *ret_count);
void sysfs_entries_free(struct sysfs_entry *entries, size_t count);

/* "extent3.12" with prefix "extent" → 3, 12. Strict: -EINVAL on anything else. */
int sysfs_parse_dotted(const char *name, const char *prefix, unsigned *ret_a, unsigned *ret_b);

#endif
