/* Unit tests: the registry format and its atomic replacement. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "registry.h"
#include "view.h"
#include "fixture.h"
#include "util.h"

#define T1 "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define T2 "11111111-2222-4333-8444-555555555555"

static int parse(const char *s, struct core_claim **c, size_t *n)
{
	struct registry reg;
	int r = registry_parse(s, strlen(s), &reg);

	if (r == 0) {
		*c = TAKE_PTR(reg.claims);
		*n = reg.nclaims;
		registry_clear(&reg);
	}
	return r;
}

static void parses_valid(void **state)
{
	struct core_claim *c = NULL;
	size_t n = 0;

	assert_int_equal(parse("{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":1000,"
			       "\"pid\":42,\"name\":\"vm1\",\"since\":1700000000,\"slot\":3},"
			       "{\"tag\":\"" T2 "\",\"uid\":0,\"future_key\":true}]}", &c, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(c[0].owner.uid, 1000);
	assert_int_equal(c[0].owner.pid, 42);
	assert_string_equal(c[0].owner.name, "vm1");
	assert_int_equal(c[0].owner.slot, 3);
	assert_int_equal(c[1].owner.uid, 0);
	assert_int_equal(c[1].owner.slot, -1);
	free(c);

	struct registry reg;
	const char *with_image = "{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1
				 "\",\"path\":\"/img/a\",\"file_size\":52428800}]}";
	assert_int_equal(registry_parse(with_image, strlen(with_image), &reg), 0);
	assert_int_equal(reg.nimages, 1);
	assert_string_equal(reg.images[0].path, "/img/a");
	assert_int_equal(reg.images[0].lost.since, 0); /* older registries: nothing lost */
	registry_clear(&reg);

	const char *lost = "{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1
			   "\",\"path\":\"/img/a\",\"file_size\":52428800,"
			   "\"lost_writes_since\":1796010000,\"lost_writes\":\"writeback failed\"}]}";
	assert_int_equal(registry_parse(lost, strlen(lost), &reg), 0);
	assert_int_equal(reg.images[0].lost.since, 1796010000);
	assert_string_equal(reg.images[0].lost.error, "writeback failed");
	registry_clear(&reg);
}

static void rejects_invalid(void **state)
{
	static const char *bad[] = {
		"", "{", "[]", "{\"claims\":[]}", "{\"version\":2,\"claims\":[]}",
		"{\"version\":1}", "{\"version\":1,\"claims\":{}}",
		"{\"version\":1,\"claims\":[5]}",
		"{\"version\":1,\"claims\":[{\"uid\":0}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"zz\",\"uid\":0}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\"}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":-1}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":0,\"name\":7}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":0,\"since\":\"x\"}]}",
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":0},"
		"{\"tag\":\"" T1 "\",\"uid\":1}]}", /* two owners of one tag */
		"{\"version\":1,\"claims\":[{\"tag\":\"" T1 "\",\"uid\":0,\"slot\":256}]}",
		"{\"version\":1,\"claims\":[],\"images\":5}",
		"{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1 "\",\"path\":\"rel\","
		"\"file_size\":1}]}",
		"{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1 "\",\"path\":\"/a\"}]}",
		/* a loss without its message, a message without a time, a time of 0 */
		"{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1 "\",\"path\":\"/a\","
		"\"file_size\":1,\"lost_writes_since\":5}]}",
		"{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1 "\",\"path\":\"/a\","
		"\"file_size\":1,\"lost_writes_since\":\"x\",\"lost_writes\":\"e\"}]}",
		"{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"" T1 "\",\"path\":\"/a\","
		"\"file_size\":1,\"lost_writes_since\":0,\"lost_writes\":\"e\"}]}",
	};
	struct core_claim *c = (void *)0x1;
	size_t n = 77;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &c, &n), -EBADMSG);
		assert_ptr_equal(c, (void *)0x1);
		assert_int_equal(n, 77);
	}
}

static void round_trip_through_disk(void **state)
{
	char *dir = fixture_dir();
	struct core_callbacks cb = { 0 };
	struct view v = { 0 };
	struct tag_owner owner = { .uid = 1234, .name = "vm \"quoted\"" };
	struct core *core;
	struct core_claim *c;
	uint64_t gen;
	tagmem_tag tag;
	size_t n, len;
	char *text;

	struct registry reg;

	/* no file yet: a first start, not an error */
	assert_int_equal(registry_load(dir, &reg), 0);
	assert_int_equal(reg.nclaims, 0);

	assert_int_equal(core_new(&cb, 100, &core), 0);
	v.n = v.cap = 2;
	v.tags = calloc(2, sizeof(*v.tags));
	assert_int_equal(tagmem_tag_parse(T1, &v.tags[0].tag), 0);
	assert_int_equal(tagmem_tag_parse(T2, &v.tags[1].tag), 0); /* unclaimed: not persisted */
	strcpy(v.tags[0].device, "dax0.1");
	strcpy(v.tags[1].device, "dax0.2");
	v.tags[0].size = v.tags[1].size = 2 << 20;
	core_reconcile(core, &v, "/", CORE_VIEW_COMPLETE);
	view_clear(&v);
	assert_int_equal(tagmem_tag_parse(T1, &tag), 0);
	assert_int_equal(core_claim(core, core_find(core, &tag), &owner, &gen), 0);

	/* an image brokerd could not open: its record goes through unchanged */
	struct registry_image keep = { .file_size = 52428800, .has_budgets = false,
				       .lost = { .since = 1796010000, .error = "writeback failed" } };
	assert_int_equal(tagmem_tag_parse(T2, &keep.tag), 0);
	strcpy(keep.path, "/img/unavailable.img");
	text = registry_serialize(core, &keep, 1, &len);
	assert_non_null(text);
	assert_int_equal(registry_write_atomic(dir, text, len), 0);
	free(text);
	assert_int_equal(registry_load(dir, &reg), 0);
	assert_int_equal(reg.nimages, 1);
	assert_memory_equal(&reg.images[0].tag, &keep.tag, sizeof(keep.tag));
	assert_string_equal(reg.images[0].path, keep.path);
	assert_int_equal(reg.images[0].file_size, keep.file_size);
	assert_false(reg.images[0].has_budgets);
	assert_int_equal(reg.images[0].lost.since, keep.lost.since);
	assert_string_equal(reg.images[0].lost.error, keep.lost.error);
	assert_int_equal(reg.nclaims, 1);
	c = reg.claims;
	n = reg.nclaims;
	assert_int_equal(n, 1);
	assert_int_equal(c[0].owner.uid, 1234);
	assert_string_equal(c[0].owner.name, "vm \"quoted\"");
	registry_clear(&reg);

	/* no temp file is left behind */
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s/" REGISTRY_FILE ".tmp", dir);
	assert_int_equal(access(tmp, F_OK), -1);
	core_free(core);

	/* a corrupt file is reported, not half-read */
	fixture_put(dir, REGISTRY_FILE, "{\"version\":1,\"claims\":[");
	assert_int_equal(registry_load(dir, &reg), -EBADMSG);
	fixture_rm(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_valid),
		cmocka_unit_test(rejects_invalid),
		cmocka_unit_test(round_trip_through_disk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
