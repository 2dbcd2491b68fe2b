/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libtagmem's typed calls against a real brokerd (started here, in a temporary directory),
 * through the shared library's public names only: lookup, show, list, claim, release and
 * events, with brokerd's refusals as errnos and their protocol codes.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tagmem.h"

static char dir[] = "/tmp/tagmem-calls.XXXXXX";
static char sock[256];
static pid_t brokerd;
static struct tagmem_ctx *ctx;
static const char *T = "ca11ca11-1111-4222-8333-444444444444";

static struct tagmem_client *connect_client(void)
{
	struct tagmem_client *c = NULL;

	assert_int_equal(tagmem_client_connect(ctx, sock, &c), 0);
	return c;
}

static int start(void **state)
{
	char state_dir[300], sim[300];
	struct tagmem_client *c = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/b.sock", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	snprintf(sim, sizeof(sim), "%s/sim", dir);
	brokerd = fork();
	if (brokerd == 0) {
		execl(getenv("BROKERD"), "brokerd", "--socket", sock, "--state-dir", state_dir,
		      "--sim-root", sim, "--guest-dir", "none", (char *)NULL);
		_exit(127);
	}
	assert_int_equal(tagmem_new(&ctx), 0);
	for (int i = 0; i < 200 && tagmem_client_connect(ctx, sock, &c) < 0; i++)
		usleep(25000);
	assert_non_null(c);
	tagmem_client_unref(c);
	return 0;
}

static int stop(void **state)
{
	char cmd[300];

	(void)state;
	kill(brokerd, SIGTERM);
	waitpid(brokerd, NULL, 0);
	tagmem_unref(ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Capacity with tag T, through a raw request (the typed calls have no fm_add), and its
 * tag_ready event, through the typed event call. */
static void test_events_and_show(void **state)
{
	struct tagmem_client *sub = connect_client(), *c = connect_client();
	struct json_object *req = tagmem_request_new("fm_add"), *reply = NULL;
	struct tagmem_info *info = NULL;
	tagmem_tag tag;
	char *name = NULL, *path = NULL;
	bool ready = false;

	(void)state;
	assert_int_equal(tagmem_tag_parse(T, &tag), 0);
	assert_int_equal(tagmem_subscribe(sub), 0);
	json_object_object_add(req, "size", json_object_new_int64(2 << 20));
	json_object_object_add(req, "tag", json_object_new_string(T));
	assert_int_equal(tagmem_client_call_result(c, req, 5000, &reply), 0);
	json_object_put(req);
	json_object_put(reply);
	for (int i = 0; i < 20 && !ready; i++) {
		int r = tagmem_next_tag_event(sub, 1000, &name, &info);

		assert_true(r >= 0);
		if (r == 1 && !strcmp(name, "tag_ready")) {
			assert_non_null(info);
			assert_int_equal(tagmem_tag_compare(tagmem_info_get_tag(info), &tag), 0);
			ready = true;
		}
		free(name);
		name = NULL;
		info = tagmem_info_unref(info);
	}
	assert_true(ready);
	/* nothing more is coming: a timeout is 0, not an error */
	assert_int_equal(tagmem_next_tag_event(sub, 0, &name, &info), 0);

	assert_int_equal(tagmem_show(c, &tag, &info), 0);
	assert_string_equal(tagmem_info_get_state(info), "ready");
	assert_int_equal(tagmem_info_get_size(info), 2 << 20);
	assert_false(tagmem_info_is_image(info));
	assert_false(tagmem_info_is_shared(info));
	assert_non_null(tagmem_info_get_device(info));
	assert_null(tagmem_info_get_owner_name(info));
	assert_int_equal(tagmem_info_get_owner_uid(info), -1);
	assert_non_null(strstr(tagmem_info_get_json(info), T));
	assert_int_equal(tagmem_lookup(c, &tag, &path), 0);
	assert_string_equal(path, tagmem_info_get_path(info));
	free(path);
	tagmem_info_unref(info);
	tagmem_client_unref(sub);
	tagmem_client_unref(c);
}

static void test_list(void **state)
{
	struct tagmem_client *c = connect_client();
	struct tagmem_info **infos = NULL;
	char s[TAGMEM_TAG_STRING_MAX];
	size_t n = 0;
	bool found = false;

	(void)state;
	assert_int_equal(tagmem_list(c, &infos, &n), 0);
	for (size_t i = 0; i < n; i++)
		found = found || !strcmp(tagmem_tag_format(tagmem_info_get_tag(infos[i]), s), T);
	assert_true(found);
	tagmem_info_list_free(infos, n);
	tagmem_client_unref(c);
}

static void test_claim_release(void **state)
{
	struct tagmem_client *c = connect_client(), *sub = connect_client();
	struct tagmem_info *info = NULL;
	const char *msg = NULL;
	char *path = NULL, *name = NULL;
	bool gone = true;
	tagmem_tag tag;

	(void)state;
	assert_int_equal(tagmem_tag_parse(T, &tag), 0);
	assert_int_equal(tagmem_subscribe(sub), 0);
	assert_int_equal(tagmem_claim(c, &tag, "typed", false, &info), 0);
	assert_string_equal(tagmem_info_get_state(info), "claimed");
	assert_string_equal(tagmem_info_get_owner_name(info), "typed");
	assert_int_equal(tagmem_lookup(c, &tag, &path), 0);
	assert_string_equal(path, tagmem_info_get_path(info));
	free(path);
	info = tagmem_info_unref(info);
	assert_null(tagmem_client_get_error(c, NULL));
	/* the claim's event says who holds it */
	assert_int_equal(tagmem_next_tag_event(sub, 5000, &name, &info), 1);
	assert_string_equal(name, "tag_claimed");
	assert_string_equal(tagmem_info_get_owner_name(info), "typed");
	assert_int_equal(tagmem_info_get_owner_uid(info), (int64_t)getuid());
	free(name);
	tagmem_info_unref(info);
	/* another name: refused, busy, with brokerd's words */
	assert_int_equal(tagmem_claim(c, &tag, "other", false, NULL), -EBUSY);
	assert_string_equal(tagmem_client_get_error(c, &msg), "busy");
	assert_non_null(strstr(msg, "typed"));
	assert_int_equal(tagmem_release(c, &tag, &gone), 0);
	assert_false(gone);
	assert_int_equal(tagmem_release(c, &tag, NULL), -ENOENT);
	assert_string_equal(tagmem_client_get_error(c, NULL), "not_claimed");
	tagmem_client_unref(sub);
	tagmem_client_unref(c);
}

static void test_refusals(void **state)
{
	struct tagmem_client *c = connect_client();
	struct tagmem_info *info = NULL;
	tagmem_tag unknown;
	char *path = NULL;

	(void)state;
	assert_int_equal(tagmem_tag_parse("ca11ca11-2222-4222-8333-444444444444", &unknown), 0);
	assert_int_equal(tagmem_lookup(c, &unknown, &path), -ENOENT);
	assert_string_equal(tagmem_client_get_error(c, NULL), "not_found");
	assert_int_equal(tagmem_show(c, &unknown, &info), -ENOENT);
	assert_null(info);
	assert_int_equal(tagmem_lookup(NULL, &unknown, &path), -EINVAL);
	assert_int_equal(tagmem_claim(c, NULL, NULL, false, NULL), -EINVAL);
	assert_null(tagmem_client_get_error(NULL, NULL));
	tagmem_client_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_and_show),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_claim_release),
		cmocka_unit_test(test_refusals),
	};

	if (!getenv("BROKERD")) {
		fprintf(stderr, "BROKERD must name brokerd (ctest sets it)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, start, stop);
}
