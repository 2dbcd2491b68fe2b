/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP steps of a live migration between hosts that map the same tags (snapshot.h). Each
 * step checks QEMU's state before it acts, so that no step can run a VM twice or stop the
 * only one: the source quits only in "postmigrate" (the device state went), the destination
 * is discarded only while it has not run, and a send asked again after a brokerd restart
 * reports the migration QEMU already did instead of starting another.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"
#include "snapshot.h"
#include "steps.h"
#include "util.h"

#define MIGRATE_WAIT_MS 600000
#define LOAD_WAIT_MS 30000

static bool is(const char *a, const char *b)
{
	return !strcmp(a, b);
}

/* Every memory backend must be one of the VM's tags, shared: anything else exists only on
 * this host, and x-ignore-shared would not send a private one's bytes either way. */
static int check_memory(struct migrate_job *j, struct qmp *q)
{
	_cleanup_json_ struct json_object *ret = NULL, *ram = NULL;
	struct json_object *args;
	int r = step_qmp(&j->st, q, "query-memdev", NULL, -1, &ret);

	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(ret); i++) {
		struct json_object *m = json_object_array_get_idx(ret, i), *id, *share;
		const char *name = json_object_object_get_ex(m, "id", &id) ?
				   json_object_get_string(id) : "(a backend without id)";
		bool ours = false;

		for (unsigned b = 0; b < j->nids; b++)
			ours = ours || is(name, j->ids[b]);
		if (!json_object_object_get_ex(m, "share", &share) || !json_object_get_boolean(share))
			return step_fail(&j->st, -EOPNOTSUPP, "private_memory", "VM %s has private "
					 "memory (backend %s, share=off): its bytes exist only on "
					 "this host; give the VM its RAM from a shared tag "
					 "(qemu-args --ram)", j->vm, name);
		if (!ours)
			return step_fail(&j->st, -EOPNOTSUPP, "private_memory", "VM %s has memory "
					 "that is not one of its tags (backend %s): the other host "
					 "has no name for it", j->vm, name);
	}
	/* which backend is the machine's RAM (the destination must make it RAM too) */
	args = json_object_new_object();
	json_object_object_add(args, "path", json_object_new_string("/machine"));
	json_object_object_add(args, "property", json_object_new_string("memory-backend"));
	if (step_qmp(&j->st, q, "qom-get", args, -1, &ram) == 0 &&
	    json_object_is_type(ram, json_type_string)) {
		const char *path = json_object_get_string(ram), *slash = strrchr(path, '/');

		/* QEMU 7.2 answers with the link's path, "/objects/<id>" */
		snprintf(j->ram_id, sizeof(j->ram_id), "%s", slash ? slash + 1 : path);
	}
	j->st.error = 0;
	return 0;
}

static int listen_incoming(struct migrate_job *j, struct qmp *q)
{
	struct json_object *args;
	char status[32];
	bool run;
	int r = step_status(&j->st, q, &run, status, sizeof(status));

	if (r < 0)
		return r;
	if (!is(status, "inmigrate"))
		return step_fail(&j->st, -EINVAL, "not_incoming", "the QEMU of VM %s here is %s, not "
				 "waiting for a migration: start it with the arguments of "
				 "`tagmem vm migrate-args` (they end in -S -incoming defer)", j->vm,
				 status);
	r = step_ignore_shared(&j->st, q);
	if (r < 0)
		return r;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(j->uri));
	return step_qmp(&j->st, q, "migrate-incoming", args, -1, NULL);
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v) : 0;
}

/* One query-migrate: its status, and the figures of a migration that is over or going. */
static int query(struct migrate_job *j, struct qmp *q, struct json_object **ret_err)
{
	_cleanup_json_ struct json_object *ret = NULL;
	struct json_object *st, *ram;
	int r = step_qmp(&j->st, q, "query-migrate", NULL, -1, &ret);

	if (r < 0)
		return r;
	snprintf(j->status, sizeof(j->status), "%s", json_object_object_get_ex(ret, "status", &st) ?
		 json_object_get_string(st) : "none");
	if (json_object_object_get_ex(ret, "ram", &ram)) {
		j->transferred = get_u64(ram, "transferred");
		atomic_store(&j->sent, j->transferred);
	}
	j->total_ms = get_u64(ret, "total-time");
	j->downtime_ms = get_u64(ret, "downtime");
	j->setup_ms = get_u64(ret, "setup-time");
	if (ret_err && json_object_object_get_ex(ret, "error-desc", &st))
		*ret_err = json_object_get(st);
	return 0;
}

/* The source after a failed migration runs again (QEMU restarts a VM that ran before; one
 * left stopped by the failure is started here). */
static void resume_after_failure(struct migrate_job *j, struct qmp *q)
{
	struct snap_status ignore = { 0 };
	char status[32];
	bool run;

	if (step_status(&ignore, q, &run, status, sizeof(status)) == 0 && !run &&
	    (is(status, "postmigrate") || is(status, "finish-migrate")))
		step_qmp(&ignore, q, "cont", NULL, -1, NULL);
}

static int send_state(struct migrate_job *j, struct qmp *q)
{
	uint64_t deadline = now_usec() + MIGRATE_WAIT_MS * 1000ull;
	struct json_object *args;
	char state[32];
	bool run;
	int r = step_status(&j->st, q, &run, state, sizeof(state));

	if (r == 0)
		r = query(j, q, NULL);
	if (r < 0)
		return r;
	/* asked again (a restarted brokerd): what QEMU did is the answer. A QEMU that came here
	 * by migration also says "completed" (of its incoming one): only "postmigrate" means
	 * this one was sent. */
	if (!(is(j->status, "completed") && is(state, "postmigrate")) &&
	    !is(j->status, "active") && !is(j->status, "setup") && !is(j->status, "device")) {
		r = step_ignore_shared(&j->st, q);
		if (r < 0)
			return r;
		args = json_object_new_object();
		json_object_object_add(args, "uri", json_object_new_string(j->uri));
		r = step_qmp(&j->st, q, "migrate", args, -1, NULL);
		if (r < 0)
			return r;
	}
	while (now_usec() < deadline) {
		_cleanup_json_ struct json_object *err = NULL;

		r = query(j, q, &err);
		if (r < 0)
			return r;
		if (is(j->status, "completed"))
			return 0;
		if (is(j->status, "failed") || is(j->status, "cancelled")) {
			resume_after_failure(j, q);
			return step_fail(&j->st, -EIO, "migration_failed", "QEMU's migration of VM %s "
					 "%s: %s; the VM runs here as before", j->vm, j->status,
					 err ? json_object_get_string(err) : "no reason given");
		}
		usleep(1000);
	}
	return step_fail(&j->st, -ETIMEDOUT, "migration_failed", "the migration of VM %s did not "
			 "finish in %d s", j->vm, MIGRATE_WAIT_MS / 1000);
}

/* The destination once the source says "completed": QEMU may still be loading the last of
 * the device state; then it stands paused (-S) until the claims are its host's. */
static int run_here(struct migrate_job *j, struct qmp *q)
{
	char status[32];
	bool run;
	int r = step_wait_loaded(&j->st, q, LOAD_WAIT_MS, &run, status, sizeof(status));

	if (r == -ETIMEDOUT)
		return step_fail(&j->st, r, "migration_failed", "the QEMU of VM %s here did not "
				 "finish loading the device state", j->vm);
	if (r < 0 || run)
		return r; /* asked again: it runs */
	if (!is(status, "paused") && !is(status, "prelaunch"))
		return step_fail(&j->st, -EIO, "migration_failed", "the QEMU of VM %s here is %s "
				 "after the migration, not paused", j->vm, status);
	return step_qmp(&j->st, q, "cont", NULL, -1, NULL);
}

/* Quit this end's QEMU, which must be in one of the states allowed (never running). */
static int quit_if(struct migrate_job *j, struct qmp *q, bool source)
{
	char status[32];
	bool run;
	int r = step_status(&j->st, q, &run, status, sizeof(status));

	if (r < 0)
		return r;
	if (run || (source && !is(status, "postmigrate")) ||
	    (!source && !is(status, "inmigrate") && !is(status, "paused") &&
	     !is(status, "prelaunch")))
		return step_fail(&j->st, -EBUSY, "vm_running", "the QEMU of VM %s here is %s: it "
				 "is not a copy that may go (%s)", j->vm, status,
				 source ? "the source quits only once its migration completed" :
				 "the destination runs the VM");
	r = step_qmp(&j->st, q, "quit", NULL, -1, NULL);
	/* QEMU may close the connection before it answers */
	if (r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN) {
		j->st.error = 0;
		r = 0;
	}
	return r;
}

static int resume_source(struct migrate_job *j, struct qmp *q)
{
	char status[32];
	bool run;
	int r = query(j, q, NULL);

	/* a migration still going is stopped first: the destination must never run */
	if (r == 0 && (is(j->status, "active") || is(j->status, "setup") ||
		       is(j->status, "device")))
		r = step_qmp(&j->st, q, "migrate_cancel", NULL, -1, NULL);
	if (r == 0)
		r = step_status(&j->st, q, &run, status, sizeof(status));
	if (r < 0 || run)
		return r;
	return step_qmp(&j->st, q, "cont", NULL, -1, NULL);
}

int migrate_step_run(struct qmp *q, struct migrate_job *j)
{
	uint64_t t0 = now_usec();
	int r;

	switch (j->step) {
	case MIGRATE_CHECK: r = check_memory(j, q); break;
	case MIGRATE_LISTEN: r = listen_incoming(j, q); break;
	case MIGRATE_SEND: r = send_state(j, q); break;
	case MIGRATE_RUN: r = run_here(j, q); break;
	case MIGRATE_QUIT: r = quit_if(j, q, true); break;
	case MIGRATE_RESUME: r = resume_source(j, q); break;
	case MIGRATE_DISCARD: r = quit_if(j, q, false); break;
	default: r = step_fail(&j->st, -EINVAL, "internal", "no such migration step");
	}
	j->usec = now_usec() - t0;
	return r;
}
