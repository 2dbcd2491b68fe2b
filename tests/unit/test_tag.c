/* Unit tests: the tag model. Strict parsing is a security property: near-UUIDs must fail. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tagmem.h"

static void parse_format_round_trip(void **state)
{
	const char *in = "6F1C2A9E-0b7d-4c1e-9a51-3d2f8e7b4c10";
	char out[TAGMEM_TAG_STRING_MAX];
	tagmem_tag t;

	assert_int_equal(tagmem_tag_parse(in, &t), 0);
	assert_int_equal(t.bytes[0], 0x6f);
	assert_int_equal(t.bytes[15], 0x10);
	assert_string_equal(tagmem_tag_format(&t, out), "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10");
}

static void parse_rejects_near_misses(void **state)
{
	static const char *bad[] = {
		"", "6f1c2a9e0b7d4c1e9a513d2f8e7b4c10", "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c1",
		"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c100", "6f1c2a9e-0b7d-4c1e-9a51_3d2f8e7b4c10",
		"{6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10}", " 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10",
		"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c1g", "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\n",
		"6f1c2a9e--0b7d-4c1e-9a51-3d2f8e7b4c1",
	};
	tagmem_tag t, before;

	memset(&t, 0xab, sizeof(t));
	before = t;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tagmem_tag_parse(bad[i], &t), -EINVAL);
		assert_memory_equal(&t, &before, sizeof(t)); /* out-param untouched on failure */
	}
	assert_int_equal(tagmem_tag_parse(NULL, &t), -EINVAL);
}

static void compare_null_generate(void **state)
{
	tagmem_tag a, b, zero = { { 0 } };

	assert_true(tagmem_tag_is_null(&zero));
	tagmem_tag_generate(&a);
	tagmem_tag_generate(&b);
	assert_false(tagmem_tag_is_null(&a));
	assert_int_not_equal(tagmem_tag_compare(&a, &b), 0);
	assert_int_equal(tagmem_tag_compare(&a, &a), 0);
	assert_int_equal(a.bytes[6] >> 4, 4); /* version 4 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_format_round_trip),
		cmocka_unit_test(parse_rejects_near_misses),
		cmocka_unit_test(compare_null_generate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
