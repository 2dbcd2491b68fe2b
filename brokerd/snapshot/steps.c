/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP steps shared by save, restore and migration (steps.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"
#include "snapshot.h"
#include "steps.h"
#include "util.h"

int step_fail(struct snap_status *st, int err, const char *code, const char *fmt, ...)
{
	va_list ap;

	st->error = err;
	snprintf(st->errcode, sizeof(st->errcode), "%s", code);
	va_start(ap, fmt);
	vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

int step_qmp(struct snap_status *st, struct qmp *q, const char *cmd, struct json_object *args,
	     int fd, struct json_object **ret)
{
	char cls[64] = "", desc[160] = "";
	uint64_t t0 = now_usec();
	int r = qmp_execute_fd(q, cmd, args, fd, STEP_QMP_MS, ret, cls, sizeof(cls), desc,
			       sizeof(desc));

	st->qemu_usec += now_usec() - t0;
	if (r < 0)
		step_fail(st, r, "qemu_error", "QMP %s failed: %s", cmd, desc[0] ? desc : strerror(-r));
	json_object_put(args);
	return r;
}

int step_ignore_shared(struct snap_status *st, struct qmp *q)
{
	struct json_object *args = json_object_new_object(), *caps = json_object_new_array(),
			   *c = json_object_new_object();

	json_object_object_add(c, "capability", json_object_new_string("x-ignore-shared"));
	json_object_object_add(c, "state", json_object_new_boolean(true));
	json_object_array_add(caps, c);
	json_object_object_add(args, "capabilities", caps);
	return step_qmp(st, q, "migrate-set-capabilities", args, -1, NULL);
}

int step_wait_loaded(struct snap_status *st, struct qmp *q, unsigned timeout_ms,
		     bool *ret_running, char *status, size_t len)
{
	uint64_t deadline = now_usec() + timeout_ms * 1000ull;

	for (;;) {
		int r = step_status(st, q, ret_running, status, len);

		if (r < 0 || strcmp(status, "inmigrate"))
			return r;
		if (now_usec() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

int step_status(struct snap_status *st, struct qmp *q, bool *ret_running, char *status,
		size_t len)
{
	_cleanup_json_ struct json_object *ret = NULL;
	struct json_object *run, *s;
	int r = step_qmp(st, q, "query-status", NULL, -1, &ret);

	if (r < 0)
		return r;
	*ret_running = json_object_object_get_ex(ret, "running", &run) &&
		       json_object_get_boolean(run);
	snprintf(status, len, "%s", json_object_object_get_ex(ret, "status", &s) ?
		 json_object_get_string(s) : "");
	return 0;
}
