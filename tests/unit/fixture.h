/* Test helpers: a throw-away directory tree to stand in for sysfs. */
#ifndef TEST_FIXTURE_H
#define TEST_FIXTURE_H

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *fixture_dir(void)
{
	char *d = strdup("/tmp/tagmem-unit.XXXXXX");
	return mkdtemp(d);
}

/* Write root/path (creating parent directories) with the given contents. */
static inline void fixture_put(const char *root, const char *path, const char *contents)
{
	char full[PATH_MAX];
	FILE *f;

	snprintf(full, sizeof(full), "%s/%s", root, path);
	for (char *p = full + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(full, 0755);
			*p = '/';
		}
	f = fopen(full, "w");
	if (!f)
		abort();
	fputs(contents, f);
	fclose(f);
}

static inline void fixture_rm(const char *root)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		abort();
}

/* Remove root/path, a file or a whole directory. */
static inline void fixture_rm_path(const char *root, const char *path)
{
	char cmd[2 * PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", root, path);
	if (system(cmd) != 0)
		abort();
}

static inline void fixture_mv(const char *root, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];

	snprintf(a, sizeof(a), "%s/%s", root, from);
	snprintf(b, sizeof(b), "%s/%s", root, to);
	if (rename(a, b) < 0)
		abort();
}

#endif
