/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Save and restore (snapshot.h), step by step over the VM's QMP connection:
 *   save:    stop → every memory backend must be one of the VM's tags (share=on) →
 *            migrate device state only (x-ignore-shared) into a file QEMU gets as an fd →
 *            the backings into the temporary save file, in parallel, O_DIRECT →
 *            header, fsync, rename over FILE, fsync the directory → (cont)
 *   restore: QEMU must be waiting for an incoming migration (-incoming defer, the same
 *            devices) → the file must be a regular file only root or brokerd can write,
 *            whole, of this VM, its header matching the VM's backings → every region and
 *            the device state read and checked against their checksums → only then the
 *            bytes back into the backings, in parallel (checked again) → migrate-incoming
 *            the device state from the file (an fd at its offset) → cont.
 *            A refusal at any step before the copy has written nothing.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"
#include "snapshot.h"
#include "steps.h"
#include "util.h"

#define QMP_MS 10000
#define MIGRATE_MS 600000

/* The device state's bytes in the file: padded to whole blocks for O_DIRECT (and summed so). */
static uint64_t devstate_span(const struct snap_header *h)
{
	return snap_page_up(h->devstate_length);
}

/* Every RAM of the VM must be one of its tags: otherwise QEMU would have to copy it (and
 * x-ignore-shared would silently leave it out of the save). Keeps only the backings QEMU has. */
int save_check_memory(struct snap_job *j, struct qmp *q)
{
	_cleanup_json_ struct json_object *ret = NULL;
	bool present[SNAP_MAX_ENTRIES] = { 0 };
	unsigned k = 0;
	int r = step_qmp(&j->st, q, "query-memdev", NULL, -1, &ret);

	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(ret); i++) {
		struct json_object *m = json_object_array_get_idx(ret, i), *id, *share;
		bool ours = false;

		json_object_object_get_ex(m, "id", &id);
		json_object_object_get_ex(m, "share", &share);
		for (unsigned b = 0; id && b < j->nb; b++)
			if (!strcmp(json_object_get_string(id), j->b[b].qemu_id)) {
				ours = present[b] = true;
				break;
			}
		if (!ours || !share || !json_object_get_boolean(share))
			return step_fail(&j->st, -EOPNOTSUPP, "unsupported", "VM %s has memory that is not "
				     "one of its tags (%s%s): every RAM and nvdimm backend must be "
				     "tagged capacity, shared, for brokerd to save it",
				     j->vm, id ? json_object_get_string(id) : "a backend without id",
				     share && !json_object_get_boolean(share) ? ", share=off" : "");
	}
	for (unsigned b = 0; b < j->nb; b++)
		if (present[b])
			j->b[k++] = j->b[b];
	j->nb = k;
	if (!k)
		return step_fail(&j->st, -EOPNOTSUPP, "unsupported", "VM %s has none of its tags in QEMU",
			     j->vm);
	return 0;
}

/* Poll query-migrate until it is over; 0 for completed. */
int save_wait_migration(struct snap_job *j, struct qmp *q)
{
	uint64_t deadline = now_usec() + MIGRATE_MS * 1000ull;

	while (now_usec() < deadline) {
		_cleanup_json_ struct json_object *ret = NULL;
		struct json_object *st, *err;
		const char *s;
		int r = step_qmp(&j->st, q, "query-migrate", NULL, -1, &ret);

		if (r < 0)
			return r;
		s = json_object_object_get_ex(ret, "status", &st) ? json_object_get_string(st) : "";
		if (!strcmp(s, "completed"))
			return 0;
		if (!strcmp(s, "failed") || !strcmp(s, "cancelled"))
			return step_fail(&j->st, -EIO, "qemu_error", "QEMU's migration of the device state %s: "
				     "%s", s, json_object_object_get_ex(ret, "error-desc", &err) ?
				     json_object_get_string(err) : "no reason given");
		usleep(2000);
	}
	return step_fail(&j->st, -ETIMEDOUT, "qemu_error", "QEMU's migration did not finish in time");
}

/* The destination side: QEMU loads the device state, then stops "inmigrate" (a failed load
 * makes it exit, which the connection reports). Runs it afterwards if it did not start,
 * unless the VM is to stay paused. */
static int wait_incoming(struct snap_job *j, struct qmp *q)
{
	char status[32];
	bool run;
	int r = step_wait_loaded(&j->st, q, MIGRATE_MS, &run, status, sizeof(status));

	if (r == -ETIMEDOUT)
		return step_fail(&j->st, r, "qemu_error", "QEMU did not load the device state in time");
	if (r < 0 || run || j->stay_paused)
		return r;
	return step_qmp(&j->st, q, "cont", NULL, -1, NULL);
}

static int send_fd(struct snap_job *j, struct qmp *q, int fd)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "fdname", json_object_new_string("tagmem-snap"));
	return step_qmp(&j->st, q, "getfd", args, fd, NULL);
}

/* The device state, through a descriptor QEMU gets with getfd: written to it ("migrate")
 * or read from it ("migrate-incoming"), RAM left out (x-ignore-shared). */
int save_device_state(struct snap_job *j, struct qmp *q, int fd, const char *command)
{
	struct json_object *args;
	int r = step_ignore_shared(&j->st, q);

	if (r == 0)
		r = send_fd(j, q, fd);
	if (r < 0)
		return r;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string("fd:tagmem-snap"));
	return step_qmp(&j->st, q, command, args, -1, NULL);
}

static int running(struct snap_job *j, struct qmp *q, bool *ret, bool *ret_postmigrate)
{
	char status[32];
	int r = step_status(&j->st, q, ret, status, sizeof(status));

	*ret_postmigrate = r == 0 && !strcmp(status, "postmigrate");
	return r;
}

/* Record, durably, that this save is about to stop VM j->vm, and which QEMU process it is. */
static int mark(struct snap_job *j, struct qmp *q)
{
	struct snap_pause p = { .uid = j->uid };
	struct ucred peer;
	socklen_t len = sizeof(peer);
	int r;

	if (j->marks_fd < 0)
		return 0;
	if (getsockopt(qmp_fd(q), SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
		return step_fail(&j->st, -errno, "internal", "cannot tell which process serves %s: %m",
			     j->qmp);
	snprintf(p.vm, sizeof(p.vm), "%s", j->vm);
	snprintf(p.qmp, sizeof(p.qmp), "%s", j->qmp);
	p.qemu_pid = peer.pid;
	r = snap_pause_mark(j->marks_fd, &p);
	if (r < 0)
		return step_fail(&j->st, r, "io_error", "cannot record that VM %s will be paused (%s), so "
			     "it was not: a brokerd restart could not resume it", j->vm, strerror(-r));
	return 0;
}

static void unmark(struct snap_job *j)
{
	if (j->marks_fd >= 0)
		snap_pause_unmark(j->marks_fd, j->vm, j->uid);
}

/* Temporaries of this save file that an earlier brokerd left (killed in the middle); this
 * brokerd's own (".FILE.tmp-PID-…") may belong to a save under way. */
void save_remove_stale(struct snap_job *j)
{
	char prefix[NAME_MAX + 8], mine[NAME_MAX + 32];
	int dfd = openat(j->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	snprintf(prefix, sizeof(prefix), ".%.200s.tmp-", j->base);
	snprintf(mine, sizeof(mine), "%s%d-", prefix, (int)getpid());
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
		    strncmp(de->d_name, mine, strlen(mine)))
			unlinkat(j->dir_fd, de->d_name, 0);
	closedir(d);
}

int save_pause(struct snap_job *j, struct qmp *q, bool *ret_was_running)
{
	bool postmigrate = false;
	int r = running(j, q, ret_was_running, &postmigrate);

	/* a VM this save stops is recorded first: a brokerd killed before it lets it run again
	 * resumes it at its next start */
	if (r == 0 && *ret_was_running)
		r = mark(j, q);
	/* QEMU will not migrate a VM a migration paused: let it run for a moment first (the
	 * save is of that moment) */
	if (r == 0 && postmigrate)
		r = step_qmp(&j->st, q, "cont", NULL, -1, NULL);
	if (r == 0 && (*ret_was_running || postmigrate))
		r = step_qmp(&j->st, q, "stop", NULL, -1, NULL);
	return r;
}

void save_resume(struct snap_job *j, struct qmp *q, bool was_running, bool failed)
{
	if (was_running && (j->resume || failed)) {
		/* a failed save leaves the VM as it found it; the mark goes once it runs. Not
		 * through qmp(): the save's own outcome is the one to report, not cont's */
		uint64_t t = now_usec();

		if (qmp_execute(q, "cont", NULL, QMP_MS, NULL, NULL, 0, NULL, 0) == 0)
			unmark(j);
		j->st.qemu_usec += now_usec() - t;
	} else if (was_running) {
		unmark(j); /* complete, and stopped on purpose */
	}
}

int save_temp_file(struct snap_job *j, char tmp[NAME_MAX + 1])
{
	int fd = -1;

	/* a name of its own, made exclusively: two saves never share a temporary, and nobody
	 * else's file (or FIFO) planted under the name is ever opened */
	for (unsigned tries = 0; tries < 100; tries++) {
		static _Atomic unsigned serial;

		snprintf(tmp, NAME_MAX + 1, ".%.200s.tmp-%d-%u", j->base, (int)getpid(),
			 atomic_fetch_add(&serial, 1));
		fd = openat(j->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC |
			    O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return step_fail(&j->st, -errno, errno == EINVAL ? "unsupported" : "io_error",
				 errno == EINVAL ? "the filesystem of %s cannot do O_DIRECT; save onto a "
				 "disk filesystem" : "cannot create the save file next to %s: %m",
				 j->path);
	return fd;
}

int save_devstate_file(struct snap_job *j)
{
	char dev[NAME_MAX + 1];
	int devfd;

	/* the device state: QEMU writes it into a file it gets as a descriptor, a file without
	 * a name (O_TMPFILE) where the filesystem can, else one made exclusively and unlinked */
	devfd = openat(j->dir_fd, ".", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (devfd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		snprintf(dev, sizeof(dev), ".%.200s.dev-%d-%llx", j->base, (int)getpid(),
			 (unsigned long long)now_usec());
		devfd = openat(j->dir_fd, dev, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			       0600);
		if (devfd >= 0)
			unlinkat(j->dir_fd, dev, 0); /* only the descriptor lives on */
	}
	if (devfd < 0)
		return step_fail(&j->st, -errno, "io_error", "cannot create a temporary file next to %s: %m",
			  j->path);
	return devfd;
}

int save_commit(struct snap_job *j, int fd, const char *tmp, const uint8_t *hdr)
{
	/* the header last, then durable, then the name: FILE is whole or the old one */
	if (pwrite(fd, hdr, SNAP_HEADER_SIZE, 0) != SNAP_HEADER_SIZE || fsync(fd) < 0 ||
	    renameat(j->dir_fd, tmp, j->dir_fd, j->base) < 0 || fsync(j->dir_fd) < 0)
		return step_fail(&j->st, -errno, errno == ENOSPC ? "no_space" : "io_error",
			  "cannot complete %s: %m", j->path);
	return 0;
}

int snap_save(struct qmp *q, struct snap_job *j)
{
	struct snap_header h = { .created = (uint64_t)time(NULL) };
	struct snap_copy c[SNAP_MAX_ENTRIES + 1];
	char tmp[NAME_MAX + 1];
	uint8_t *hdr = NULL;
	int fd = -1, devfd = -1, r;
	bool was_running = false;
	uint64_t t0 = now_usec(), t1, size;
	struct stat st;

	save_remove_stale(j);
	r = save_pause(j, q, &was_running);
	if (r == 0)
		r = save_check_memory(j, q);
	/* a checkpoint's base: what QEMU writes from here on is tracked (it is stopped until
	 * the copy is done, so nothing is written before the copy reads it) */
	if (r == 0 && j->checkpoint)
		r = checkpoint_start(j, q);
	if (r < 0)
		goto out;
	fd = save_temp_file(j, tmp);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	devfd = save_devstate_file(j);
	if (devfd < 0) {
		r = devfd;
		goto out;
	}
	r = save_device_state(j, q, devfd, "migrate");
	if (r == 0)
		r = save_wait_migration(j, q);
	if (r < 0)
		goto out;
	if (fstat(devfd, &st) < 0) {
		r = step_fail(&j->st, -errno, "io_error", "device state: %m");
		goto out;
	}
	/* lay the file out; the device state goes last, padded for O_DIRECT */
	h.nentries = j->nb;
	snprintf(h.vm, sizeof(h.vm), "%s", j->vm);
	for (unsigned i = 0; i < j->nb; i++) {
		h.e[i].tag = j->b[i].tag;
		h.e[i].size = j->b[i].size;
	}
	h.devstate_length = (uint64_t)st.st_size;
	j->devstate_bytes = h.devstate_length;
	size = snap_layout(&h);
	if (ftruncate(fd, (off_t)size) < 0) {
		r = step_fail(&j->st, -errno, errno == ENOSPC || errno == EFBIG ? "no_space" : "io_error",
			  "cannot size the save file to %llu bytes: %m", (unsigned long long)size);
		goto out;
	}
	for (unsigned i = 0; i < j->nb; i++)
		c[i] = (struct snap_copy){ .src = j->b[i].fd, .src_map = j->b[i].map,
					   .src_off = j->b[i].map ? 0 : j->b[i].data_offset,
					   .dst = fd, .dst_off = h.e[i].file_offset,
					   .len = j->b[i].size };
	c[j->nb] = (struct snap_copy){ .src = devfd, .dst = fd, .dst_off = h.devstate_offset,
				       .len = devstate_span(&h) };
	if (ftruncate(devfd, (off_t)c[j->nb].len) < 0) { /* zero padding to a whole block */
		r = step_fail(&j->st, -errno, "io_error", "device state: %m");
		goto out;
	}
	t1 = now_usec();
	r = snap_copy_run(c, j->nb + 1, j->threads, &j->done_bytes, j->st.errmsg, sizeof(j->st.errmsg));
	j->copy_usec = now_usec() - t1;
	if (r < 0) {
		char why[sizeof(j->st.errmsg)];

		snprintf(why, sizeof(why), "%s", j->st.errmsg);
		step_fail(&j->st, r, r == -ENOSPC ? "no_space" : "io_error", "cannot save to %s (%s); %s is "
		      "as it was", j->path, why, j->base);
		goto out;
	}
	for (unsigned i = 0; i < j->nb; i++)
		h.e[i].checksum = c[i].checksum;
	h.devstate_checksum = c[j->nb].checksum;
	if (posix_memalign((void **)&hdr, 4096, SNAP_HEADER_SIZE)) {
		r = step_fail(&j->st, -ENOMEM, "internal", "out of memory");
		goto out;
	}
	snap_header_build(&h, hdr);
	r = save_commit(j, fd, tmp, hdr);
	if (r == 0 && j->checkpoint)
		checkpoint_based(j, snap_header_digest(hdr));
out:
	if (r < 0 && fd >= 0)
		unlinkat(j->dir_fd, tmp, 0); /* the previous save stays as it was */
	if (fd >= 0)
		close(fd);
	if (devfd >= 0)
		close(devfd);
	free(hdr);
	save_resume(j, q, was_running, r < 0);
	j->usec = now_usec() - t0;
	return r;
}

/* Migration states in which QEMU still works on a migration (query-migrate). */
static bool migrating(struct snap_job *j, struct qmp *q)
{
	static const char *const busy[] = { "setup", "active", "cancelling", "pre-switchover",
					    "device", "wait-unplug" };
	_cleanup_json_ struct json_object *ret = NULL;
	struct json_object *st;

	if (step_qmp(&j->st, q, "query-migrate", NULL, -1, &ret) < 0 ||
	    !json_object_object_get_ex(ret, "status", &st))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(busy); i++)
		if (!strcmp(json_object_get_string(st), busy[i]))
			return true;
	return false;
}

/* A killed save's device-state migration writes into a file: it ends by itself in moments,
 * so recovery waits for it and cancels only one that has not ended after this long. (A
 * cancel races QEMU's own cleanup of the descriptor; a later save once failed with EBADF
 * after a recovery, which this is meant to avoid.) */
#define RECOVER_CANCEL_MS 10000

int snap_recover(struct qmp *q, struct snap_job *j)
{
	uint64_t deadline = now_usec() + MIGRATE_MS * 1000ull;
	uint64_t cancel_at = now_usec() + RECOVER_CANCEL_MS * 1000ull;
	bool cancelled = false;
	int r = 0;

	while (r == 0) {
		_cleanup_json_ struct json_object *st = NULL;
		struct json_object *s, *run;
		const char *status;

		r = step_qmp(&j->st, q, "query-status", NULL, -1, &st);
		if (r < 0)
			break;
		status = json_object_object_get_ex(st, "status", &s) ? json_object_get_string(s) : "";
		if (!strcmp(status, "finish-migrate") || migrating(j, q)) {
			if (!cancelled && now_usec() > cancel_at) {
				r = step_qmp(&j->st, q, "migrate_cancel", NULL, -1, NULL);
				cancelled = true;
				continue;
			}
			if (now_usec() > deadline)
				return step_fail(&j->st, -ETIMEDOUT, "qemu_error", "the migration of VM %s did "
					     "not end", j->vm);
			usleep(2000);
			continue;
		}
		if (json_object_object_get_ex(st, "running", &run) && json_object_get_boolean(run))
			break; /* somebody let it run already */
		if (strcmp(status, "paused") && strcmp(status, "postmigrate"))
			break; /* not a pause of ours (shut down, crashed, waiting to start) */
		r = step_qmp(&j->st, q, "cont", NULL, -1, NULL);
		j->resumed = r == 0;
		break;
	}
	if (r == 0)
		unmark(j);
	return r;
}

/* The sums of the first n regions (c[i] for backing i; c[nb] the device state) against what
 * the header says of them (want[i]); the first that differs fails the job with `what`. */
static int check_sums(struct snap_job *j, const struct snap_copy *c, const uint64_t *want,
		      unsigned n, const char *what)
{
	for (unsigned i = 0; i < n; i++) {
		char s[TAGMEM_TAG_STRING_MAX];

		if (c[i].checksum == want[i])
			continue;
		if (i == j->nb)
			return step_fail(&j->st, -EBADMSG, "invalid_argument", "%s: the device state does "
				     "not match its checksum: it %s", j->path, what);
		return step_fail(&j->st, -EBADMSG, "invalid_argument", "%s: the bytes of tag %s do not "
			     "match their checksum: it %s", j->path,
			     tagmem_tag_format(&j->b[i].tag, s), what);
	}
	return 0;
}

/* Read every region and the device state, summing, writing nothing. */
static int verify_regions(struct snap_job *j, struct snap_copy *c, const uint64_t *want)
{
	int r = snap_copy_run(c, j->nb + 1, j->threads, NULL, j->st.errmsg, sizeof(j->st.errmsg));

	if (r < 0)
		return step_fail(&j->st, r, "io_error", "cannot read %s: %s; nothing was written", j->path,
			     strerror(-r));
	return check_sums(j, c, want, j->nb + 1, "is damaged; nothing was written");
}

/* The inode behind fd opened anew with flags (its own file description), refused unless it
 * is still the one checked (want). */
int save_reopen_checked(int fd, int flags, const struct stat *want)
{
	char self[64];
	struct stat st;
	int nfd;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	nfd = open(self, flags | O_CLOEXEC);
	if (nfd < 0)
		return -errno;
	if (fstat(nfd, &st) < 0 || st.st_dev != want->st_dev || st.st_ino != want->st_ino) {
		close(nfd);
		return -ESTALE;
	}
	return nfd;
}

/* A restore writes into a VM's memory: QEMU must be waiting for exactly that. A running VM
 * (started without -incoming) would be corrupted while it runs. */
static int must_be_incoming(struct snap_job *j, struct qmp *q)
{
	_cleanup_json_ struct json_object *st = NULL;
	struct json_object *s;
	int r = step_qmp(&j->st, q, "query-status", NULL, -1, &st);

	if (r < 0)
		return r;
	if (json_object_object_get_ex(st, "status", &s) &&
	    !strcmp(json_object_get_string(s), "inmigrate"))
		return 0;
	return step_fail(&j->st, -EBUSY, "busy", "VM %s is %s, not waiting for an incoming migration: "
		     "start its QEMU with the same arguments and -incoming defer; nothing was "
		     "written", j->vm, s ? json_object_get_string(s) : "in an unknown state");
}

/* The save file: looked at through an O_PATH descriptor first (opening a FIFO would block
 * the monitor for good), which must be a regular file only root or brokerd's user can write
 * (its bytes go into a VM's memory); then that very inode opened for O_DIRECT reads. name
 * is in j->dir_fd (the base, or one of its increments); messages call it shown. */
int save_open_file(struct snap_job *j, const char *name, const char *shown, int *ret_fd,
		   struct stat *ret_st)
{
	_cleanup_close_ int pfd = openat(j->dir_fd, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
	int fd;

	if (pfd < 0)
		return step_fail(&j->st, -errno, errno == ENOENT ? "not_found" : "io_error",
			     "cannot open %s: %m; nothing was written", shown);
	if (fstat(pfd, ret_st) < 0 || !S_ISREG(ret_st->st_mode))
		return step_fail(&j->st, -EINVAL, "invalid_argument", "%s is not a regular file; nothing "
			     "was written", shown);
	if ((ret_st->st_uid != 0 && ret_st->st_uid != geteuid()) ||
	    (ret_st->st_mode & (S_IWGRP | S_IWOTH)))
		return step_fail(&j->st, -EPERM, "permission_denied", "%s is owned or writable by another "
			     "user, and its bytes would become VM %s's memory: restore only files "
			     "root or brokerd's user wrote (chown root, chmod go-w); nothing was "
			     "written", shown, j->vm);
	fd = save_reopen_checked(pfd, O_RDONLY | O_DIRECT, ret_st);
	if (fd < 0)
		return step_fail(&j->st, fd, fd == -EINVAL ? "unsupported" : "io_error", fd == -EINVAL ?
			     "the filesystem of %s cannot do O_DIRECT; nothing was written" :
			     "cannot open %s: %s; nothing was written", shown, strerror(-fd));
	*ret_fd = fd;
	return 0;
}

int snap_restore(struct qmp *q, struct snap_job *j)
{
	struct snap_header h;
	struct snap_copy c[SNAP_MAX_ENTRIES + 1];
	uint8_t *hdr = NULL;
	uint64_t t0 = now_usec(), t1, end;
	bool ok_entry[SNAP_MAX_ENTRIES] = { 0 };
	uint64_t want[SNAP_MAX_ENTRIES + 1];     /* the header's sums, in the order of c[] */
	int fd = -1, devfd = -1, r;
	struct stat st;
	struct chain_link links[SNAP_MAX_INCREMENTS];
	uint64_t devstate_offset;

	for (unsigned k = 0; k < j->nincs; k++)
		links[k].fd = -1;
	r = must_be_incoming(j, q);
	if (r == 0)
		r = save_check_memory(j, q);
	if (r == 0)
		r = save_open_file(j, j->base, j->path, &fd, &st);
	if (r < 0)
		goto out;
	if (posix_memalign((void **)&hdr, 4096, SNAP_HEADER_SIZE) ||
	    pread(fd, hdr, SNAP_HEADER_SIZE, 0) != SNAP_HEADER_SIZE ||
	    snap_header_parse(hdr, SNAP_HEADER_SIZE, &h) < 0) {
		r = step_fail(&j->st, -EBADMSG, "invalid_argument", "%s is not a tagmem save file (or it is "
			  "damaged)", j->path);
		goto out;
	}
	if (strcmp(h.vm, j->vm)) {
		r = step_fail(&j->st, -EINVAL, "invalid_argument", "%s is a save of VM %s, not of VM %s; "
			  "nothing was written", j->path, h.vm, j->vm);
		goto out;
	}
	end = h.devstate_offset + devstate_span(&h);
	if ((uint64_t)st.st_size < end) {
		r = step_fail(&j->st, -EBADMSG, "invalid_argument", "%s is cut short: %llu bytes where its "
			  "header needs %llu; nothing was written", j->path,
			  (unsigned long long)st.st_size, (unsigned long long)end);
		goto out;
	}
	/* every backing of the VM must be in the file, at its size; nothing else may be */
	if (h.nentries != j->nb) {
		r = step_fail(&j->st, -EINVAL, "invalid_argument", "%s holds %u backings, VM %s has %u",
			  j->path, h.nentries, j->vm, j->nb);
		goto out;
	}
	for (unsigned i = 0; i < j->nb; i++) {
		unsigned k;

		for (k = 0; k < h.nentries; k++)
			if (!tagmem_tag_compare(&h.e[k].tag, &j->b[i].tag) && !ok_entry[k])
				break;
		if (k == h.nentries || h.e[k].size != j->b[i].size) {
			char s[TAGMEM_TAG_STRING_MAX];
			r = step_fail(&j->st, -EINVAL, "invalid_argument", "%s has no backing for tag %s of "
				  "%llu bytes", j->path, tagmem_tag_format(&j->b[i].tag, s),
				  (unsigned long long)j->b[i].size);
			goto out;
		}
		ok_entry[k] = true;
		want[i] = h.e[k].checksum;
		c[i] = (struct snap_copy){ .src = fd, .src_off = h.e[k].file_offset, .dst = -1,
					   .dst_off = j->b[i].map ? 0 : j->b[i].data_offset,
					   .len = h.e[k].size };
	}
	c[j->nb] = (struct snap_copy){ .src = fd, .src_off = h.devstate_offset, .dst = -1,
				       .len = devstate_span(&h) };
	want[j->nb] = h.devstate_checksum;
	t1 = now_usec();
	/* first the whole file against its checksums, writing nothing: a flipped byte, a
	 * damaged device state, leave the VM's memory as it was */
	r = verify_regions(j, c, want);
	/* and every increment, whole, before the first byte is written */
	if (r == 0)
		r = chain_check(j, snap_header_digest(hdr), links);
	/* then the copy, summed again: the file must not have changed in between */
	for (unsigned i = 0; r == 0 && i < j->nb; i++) {
		c[i].dst = j->b[i].fd;
		c[i].dst_map = j->b[i].map;
	}
	if (r == 0)
		r = snap_copy_run(c, j->nb, j->threads, &j->done_bytes, j->st.errmsg,
				  sizeof(j->st.errmsg));
	if (r == 0)
		r = check_sums(j, c, want, j->nb, "changed while it was restored; the VM was not "
			       "started");
	if (r == 0)
		r = chain_apply(j, links);
	j->copy_usec = now_usec() - t1;
	if (r < 0) {
		if (!j->st.errcode[0])
			snprintf(j->st.errcode, sizeof(j->st.errcode), "io_error");
		j->st.error = r;
		goto out;
	}
	/* the device state, read by QEMU from a descriptor placed at its offset: the file
	 * checked above, opened anew (its own position, without O_DIRECT), never the name */
	if (j->nincs) { /* the last increment's device state is the VM's */
		const struct chain_link *last = &links[j->nincs - 1];

		devfd = save_reopen_checked(last->fd, O_RDONLY, &last->st);
		devstate_offset = last->h.devstate_offset;
		j->devstate_bytes = last->h.devstate_length;
	} else {
		devfd = save_reopen_checked(fd, O_RDONLY, &st);
		devstate_offset = h.devstate_offset;
		j->devstate_bytes = h.devstate_length;
	}
	if (devfd < 0)
		errno = -devfd;
	if (devfd < 0 || lseek(devfd, (off_t)devstate_offset, SEEK_SET) < 0) {
		r = step_fail(&j->st, -errno, "io_error", "cannot read the device state of %s: %m", j->path);
		goto out;
	}
	r = save_device_state(j, q, devfd, "migrate-incoming");
	if (r == 0)
		r = wait_incoming(j, q);
out:
	chain_close(j, links);
	if (fd >= 0)
		close(fd);
	if (devfd >= 0)
		close(devfd);
	free(hdr);
	j->usec = now_usec() - t0;
	return r;
}
