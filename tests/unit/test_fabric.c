/* Unit tests: the shared fabric manager's table (brokerd/fabric) and what a host does with
 * what the manager tells it (backends/fabric_link.c), on real files in a temp directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fabric.h"
#include "fabric_link.h"
#include "sim.h"
#include "tagmem.h"

static char top[64];

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/test-fabric.XXXXXX");
	return mkdtemp(top) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	return system(cmd);
}

static tagmem_tag tag_of(const char *s)
{
	tagmem_tag t;

	assert_int_equal(tagmem_tag_parse(s, &t), 0);
	return t;
}

static bool exists(const char *sub, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/fab/%s/%s", top, sub, name);
	return access(path, F_OK) == 0;
}

#define S "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define P "11111111-2222-4333-8444-555555555555"

static void references_survive_a_restart(void **state)
{
	const char *h12[] = { "h1", "h2" }, *h1[] = { "h1" };
	tagmem_tag s = tag_of(S), p = tag_of(P);
	const struct fabric_tag *t;
	struct fabric *f;
	char dir[128];
	bool freed;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fab", top);
	assert_int_equal(fabric_open(dir, 1ull << 30, &f), 0);
	assert_int_equal(fabric_add(f, 4 << 20, &s, true, h12, 2, &t), 0);
	assert_int_equal(t->nhosts, 2);
	assert_true(exists("bytes", S) && exists("refs", S));
	/* private capacity is one host's; the same tag twice is refused */
	assert_int_equal(fabric_add(f, 2 << 20, &p, false, h12, 2, &t), -EINVAL);
	assert_int_equal(fabric_add(f, 2 << 20, &s, true, h1, 1, &t), -EEXIST);
	assert_int_equal(fabric_add(f, 2ull << 30, &p, false, h1, 1, &t), -ENOSPC);
	assert_int_equal(fabric_add(f, 2 << 20, &p, false, h1, 1, &t), 0);
	assert_int_equal(fabric_add_reference(f, &p, "h2"), -EINVAL); /* private */
	assert_int_equal(fabric_add_reference(f, &s, "h3"), 0);
	assert_int_equal(fabric_add_reference(f, &s, "h3"), -EEXIST);
	assert_int_equal(fabric_remove_reference(f, &s, "h1", &freed), 0);
	assert_false(freed);
	assert_int_equal(fabric_remove_reference(f, &s, "h1", &freed), -ENOENT);
	fabric_close(f);

	/* what was acknowledged is there after a restart, and nothing else */
	assert_int_equal(fabric_open(dir, 1ull << 30, &f), 0);
	assert_int_equal(fabric_ntags(f), 2);
	t = fabric_find(f, &s);
	assert_non_null(t);
	assert_true(t->shared && t->size == 4 << 20 && t->nhosts == 2);
	assert_string_equal(t->hosts[0], "h2");
	assert_string_equal(t->hosts[1], "h3");
	assert_int_equal(fabric_remove_reference(f, &s, NULL, &freed), 0);
	assert_true(freed);
	assert_false(exists("bytes", S) || exists("refs", S));
	assert_null(fabric_find(f, &s));
	fabric_close(f);
}

static void a_torn_add_is_undone(void **state)
{
	const char *h1[] = { "h1" };
	tagmem_tag s = tag_of(S);
	const struct fabric_tag *t;
	struct fabric *f;
	char dir[128], refs[192];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fab", top);
	assert_int_equal(fabric_open(dir, 1ull << 30, &f), 0);
	assert_int_equal(fabric_add(f, 2 << 20, &s, true, h1, 1, &t), 0);
	fabric_close(f);
	/* a crash between the extents and the hosts file: no host was ever told */
	snprintf(refs, sizeof(refs), "%s/refs/%s", dir, S);
	assert_int_equal(unlink(refs), 0);
	assert_int_equal(fabric_open(dir, 1ull << 30, &f), 0);
	assert_int_equal(fabric_ntags(f), 0);
	assert_false(exists("bytes", S));
	assert_int_equal(fabric_free(f, 1), 1ull << 30);
	fabric_close(f);
}

static int apply(struct sim *sim, const char *text)
{
	struct json_object *msg = json_tokener_parse(text);
	int r;

	assert_non_null(msg);
	r = fabric_link_apply(sim, msg);
	json_object_put(msg);
	return r;
}

static void a_host_checks_what_it_is_told(void **state)
{
	struct sim_options opts = { .region_size = 64 << 20 };
	struct dcd_extent ext[4];
	struct sim *sim;
	char root[128];

	(void)state;
	snprintf(root, sizeof(root), "%s/host", top);
	assert_int_equal(sim_open(root, &opts, &sim), 0);
	assert_int_equal(apply(sim, "{\"event\":\"fabric_add\",\"tag\":\"" S "\",\"shared\":true,"
			       "\"region\":1,\"extents\":[{\"offset\":0,\"length\":2097152},"
			       "{\"offset\":8388608,\"length\":2097152}]}"), 1);
	assert_int_equal(sim_tag_extents(sim, &(tagmem_tag){ 0 }, ext, 4), 0);
	tagmem_tag s = tag_of(S);
	assert_int_equal(sim_tag_extents(sim, &s, ext, 4), 2);
	assert_int_equal(ext[1].offset, 8388608); /* in sequence order */
	/* told twice (a reconnect): nothing new */
	assert_int_equal(apply(sim, "{\"event\":\"fabric_add\",\"tag\":\"" S "\",\"shared\":true,"
			       "\"region\":1,\"extents\":[{\"offset\":0,\"length\":2097152},"
			       "{\"offset\":8388608,\"length\":2097152}]}"), 0);
	/* made anew elsewhere while this host was away: the old goes, the new comes */
	assert_int_equal(apply(sim, "{\"event\":\"fabric_add\",\"tag\":\"" S "\",\"shared\":true,"
			       "\"region\":1,\"extents\":[{\"offset\":4194304,\"length\":2097152}]}"), 1);
	assert_int_equal(sim_tag_extents(sim, &s, ext, 4), 1);
	assert_int_equal(ext[0].offset, 4194304);
	/* hostile or wrong: over another tag's extent, outside the region, unaligned, shared in
	 * the private region, no extents, the nil tag */
	static const char *const bad[] = {
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":true,\"region\":1,"
		"\"extents\":[{\"offset\":2097152,\"length\":4194304}]}",
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":false,\"region\":0,"
		"\"extents\":[{\"offset\":67108864,\"length\":2097152}]}",
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":false,\"region\":0,"
		"\"extents\":[{\"offset\":4096,\"length\":2097152}]}",
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":true,\"region\":0,"
		"\"extents\":[{\"offset\":0,\"length\":2097152}]}",
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":false,\"region\":0,"
		"\"extents\":[]}",
		"{\"event\":\"fabric_add\",\"tag\":\"00000000-0000-0000-0000-000000000000\","
		"\"shared\":false,\"region\":0,\"extents\":[{\"offset\":0,\"length\":2097152}]}",
		"{\"event\":\"fabric_add\",\"tag\":\"" P "\",\"shared\":false,\"region\":0,"
		"\"extents\":[{\"offset\":18446744073709551615,\"length\":2097152}]}",
		"{\"result\":{\"tags\":7}}",
		"{\"hello\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(apply(sim, bad[i]), -EBADMSG);
	tagmem_tag p = tag_of(P);
	assert_int_equal(sim_tag_extents(sim, &p, ext, 4), 0); /* none of it landed */
	/* an attach that no longer lists S: the host lets it go */
	assert_int_equal(apply(sim, "{\"id\":1,\"result\":{\"tags\":[]}}"), 1);
	assert_int_equal(sim_tag_extents(sim, &s, ext, 4), 0);
	sim_close(sim);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(references_survive_a_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(a_torn_add_is_undone, setup, teardown),
		cmocka_unit_test_setup_teardown(a_host_checks_what_it_is_told, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
