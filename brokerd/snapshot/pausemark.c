/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pause marks (snapshot.h): a save stops a running VM, and a brokerd killed before it lets
 * the VM run again would leave it paused for good, also after a restart. So the mark is made
 * durable before "stop" and removed once the VM runs again, or once a save that leaves it
 * stopped on purpose is complete. A brokerd that finds marks at start resumes those VMs
 * (snap_recover), if the QEMU behind the recorded socket is still the process that was
 * paused.
 *
 * One file per VM in brokerd's own directory, <uid>-<vm>, a JSON object written under a
 * temporary name, fsynced and renamed into place.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "snapshot.h"
#include "util.h"

#define MARK_MAX 1024 /* a mark is a few hundred bytes; anything larger is not ours */

static int mark_name(const char *vm, uid_t uid, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%u-%s", (unsigned)uid, vm);

	return n < 0 || (size_t)n >= len || !*vm || strchr(vm, '/') ? -EINVAL : 0;
}

int snap_pause_mark(int dirfd, const struct snap_pause *p)
{
	char name[NAME_MAX + 1], tmp[NAME_MAX + 8];
	_cleanup_json_ struct json_object *o = json_object_new_object();
	const char *s;

	if (mark_name(p->vm, p->uid, name, sizeof(name)) < 0 || !o)
		return -EINVAL;
	json_object_object_add(o, "vm", json_object_new_string(p->vm));
	json_object_object_add(o, "uid", json_object_new_int64(p->uid));
	json_object_object_add(o, "qmp", json_object_new_string(p->qmp));
	json_object_object_add(o, "qemu_pid", json_object_new_int64(p->qemu_pid));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	snprintf(tmp, sizeof(tmp), ".%s.new", name);
	return write_file_atomic(dirfd, name, tmp, s, strlen(s));
}

void snap_pause_unmark(int dirfd, const char *vm, uid_t uid)
{
	char name[NAME_MAX + 1];

	if (mark_name(vm, uid, name, sizeof(name)) == 0 && unlinkat(dirfd, name, 0) == 0)
		fsync(dirfd);
}

/* One mark's file, validated: a name it would have, and the JSON that gives that name. */
static int read_mark(int dirfd, const char *name, struct snap_pause *p)
{
	char buf[MARK_MAX + 1], want[NAME_MAX + 1];
	_cleanup_json_ struct json_object *o = NULL;
	const char *vm, *qmp;
	uint64_t uid, pid;
	struct stat st;
	ssize_t n;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	n = read(fd, buf, MARK_MAX + 1);
	close(fd);
	if (n <= 0 || n > MARK_MAX)
		return -EINVAL;
	/* the protocol's strict parser and typed getters: a mark is a message brokerd wrote */
	memset(p, 0, sizeof(*p));
	if (tagmem_msg_parse(buf, (size_t)n, MARK_MAX, &o) < 0 ||
	    !json_object_is_type(o, json_type_object) ||
	    tagmem_json_get_string(o, "vm", &vm) < 0 || tagmem_json_get_string(o, "qmp", &qmp) < 0 ||
	    tagmem_json_get_u64(o, "uid", &uid) < 0 || tagmem_json_get_u64(o, "qemu_pid", &pid) < 0 ||
	    qmp[0] != '/' || uid >= UINT32_MAX || !pid || pid > INT32_MAX ||
	    snprintf(p->vm, sizeof(p->vm), "%s", vm) >= (int)sizeof(p->vm) ||
	    snprintf(p->qmp, sizeof(p->qmp), "%s", qmp) >= (int)sizeof(p->qmp))
		return -EINVAL;
	p->uid = (uid_t)uid;
	p->qemu_pid = (pid_t)pid;
	return mark_name(p->vm, p->uid, want, sizeof(want)) < 0 || strcmp(want, name) ? -EINVAL : 0;
}

int snap_pause_marks(int dirfd, void (*fn)(void *userdata, const struct snap_pause *p),
		     void *userdata)
{
	int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	int bad = 0;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct snap_pause p;

		if (de->d_name[0] == '.') {
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				unlinkat(dirfd, de->d_name, 0); /* a mark never renamed in place */
			continue;
		}
		if (read_mark(dirfd, de->d_name, &p) < 0) {
			bad++;
			unlinkat(dirfd, de->d_name, 0); /* not a mark: it would resume nothing */
			continue;
		}
		fn(userdata, &p);
	}
	closedir(d);
	return bad;
}
