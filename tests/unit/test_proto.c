/* Unit tests: the wire codec, which sees every byte a client sends. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "tagmem.h"
#include "wire.h"

static int parse(const char *s, struct json_object **o)
{
	return tagmem_msg_parse(s, strlen(s), 1024, o);
}

static void accepts_objects(void **state)
{
	struct json_object *o = NULL;

	assert_int_equal(parse("{\"id\":1,\"op\":\"hello\"}  \r", &o), 0);
	assert_non_null(o);
	json_object_put(o);
}

static void rejects_garbage(void **state)
{
	struct json_object *o = (void *)0x1;

	assert_int_equal(parse("{", &o), -EBADMSG);
	assert_int_equal(parse("", &o), -EBADMSG);
	assert_int_equal(parse("{} {}", &o), -EBADMSG);
	assert_int_equal(parse("{}x", &o), -EBADMSG);
	assert_int_equal(parse("[1]", &o), -EPROTO);
	assert_int_equal(parse("5", &o), -EPROTO);
	assert_int_equal(tagmem_msg_parse("{\"a\":\"\0\"}", 9, 1024, &o), -EPROTO);
	assert_ptr_equal(o, (void *)0x1); /* untouched */
}

static void enforces_size(void **state)
{
	struct json_object *o = NULL;
	char *big = malloc(2000);

	memset(big, ' ', 1999);
	big[0] = '{';
	big[1998] = '}';
	big[1999] = '\0';
	assert_int_equal(tagmem_msg_parse(big, 1999, 1024, &o), -EMSGSIZE);
	assert_int_equal(tagmem_msg_parse(big, 1999, 4096, &o), 0);
	json_object_put(o);
	free(big);
}

static void format_adds_newline(void **state)
{
	struct json_object *o = tagmem_request_new("list");
	size_t len;
	char *s;

	json_object_object_add(o, "path", json_object_new_string("/dev/dax0.0"));
	s = tagmem_msg_format(o, &len);
	assert_string_equal(s, "{\"op\":\"list\",\"path\":\"/dev/dax0.0\"}\n");
	assert_int_equal(len, strlen(s));
	free(s);
	json_object_put(o);
}

static void reply_error_classifies(void **state)
{
	struct json_object *o;
	const char *code, *msg;

	assert_int_equal(parse("{\"id\":1,\"result\":{}}", &o), 0);
	assert_int_equal(tagmem_reply_error(o, &code, &msg), 0);
	assert_non_null(tagmem_reply_result(o));
	json_object_put(o);
	assert_int_equal(parse("{\"id\":1,\"error\":{\"code\":\"busy\",\"message\":\"m\"}}", &o), 0);
	assert_int_equal(tagmem_reply_error(o, &code, &msg), -EREMOTEIO);
	assert_string_equal(code, "busy");
	assert_string_equal(msg, "m");
	json_object_put(o);
	assert_int_equal(parse("{\"id\":1,\"error\":5}", &o), 0);
	assert_int_equal(tagmem_reply_error(o, &code, &msg), -EPROTO);
	json_object_put(o);
	assert_int_equal(parse("{\"id\":1}", &o), 0);
	assert_int_equal(tagmem_reply_error(o, NULL, NULL), -EPROTO);
	json_object_put(o);
}

static void typed_getters_do_not_coerce(void **state)
{
	struct json_object *o;
	uint64_t v = 99;
	bool b;
	const char *s;
	tagmem_tag t;

	assert_int_equal(parse("{\"n\":\"5\",\"neg\":-1,\"big\":18446744073709551615,\"b\":1,"
			       "\"t\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"s\":5}", &o), 0);
	assert_int_equal(tagmem_json_get_u64(o, "n", &v), -EINVAL);
	assert_int_equal(tagmem_json_get_u64(o, "neg", &v), -EINVAL);
	assert_int_equal(v, 99);
	assert_int_equal(tagmem_json_get_u64(o, "big", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(tagmem_json_get_u64(o, "missing", &v), -ENOENT);
	assert_int_equal(tagmem_json_get_bool(o, "b", &b), -EINVAL);
	assert_int_equal(tagmem_json_get_string(o, "s", &s), -EINVAL);
	assert_int_equal(tagmem_json_get_tag(o, "t", &t), 0);
	assert_int_equal(tagmem_json_get_tag(o, "n", &t), -EINVAL);
	json_object_put(o);
}

/* the UTF-8 helpers that keep replies valid when they quote what a client sent */
static void utf8_helpers(void **state)
{
	char cut[] = "ab\xc3\xa9\xe2\x82"; /* "abé" then a euro sign cut short */
	char bad[] = "a\xff" "b\xc0\xaf" "c";      /* a stray byte and an overlong '/' */
	struct wire_report rep;

	assert_int_equal(utf8_prefix("\xc3\xa9\xc3\xa9", 3), 2);
	assert_int_equal(utf8_prefix("\xc3\xa9\xc3\xa9", 4), 4);
	assert_int_equal(utf8_prefix("abc", 2), 2);
	utf8_sanitize(cut);
	assert_string_equal(cut, "ab\xc3\xa9");
	utf8_sanitize(bad);
	assert_string_equal(bad, "a?b??c");
	assert_int_equal(wire_check("{\"id\":1}", 8, &rep), 0);
	assert_false(rep.wide_id);
	assert_int_equal(wire_check("{\"id\":18446744073709551616}", 27, &rep), 0);
	assert_true(rep.wide_id);
	assert_int_equal(wire_check("{\"x\":{\"id\":-9223372036854775809}}", 33, &rep), 0);
	assert_false(rep.wide_id); /* only the top-level id is the request's */
	assert_true(rep.wide_other);
	assert_int_equal(wire_check("{\"id\":08}", 9, &rep), -EBADMSG);
	assert_int_equal(wire_check("{\"a\":\"\\u0000\"}", 14, &rep), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_objects),
		cmocka_unit_test(utf8_helpers),
		cmocka_unit_test(rejects_garbage),
		cmocka_unit_test(enforces_size),
		cmocka_unit_test(format_adds_newline),
		cmocka_unit_test(reply_error_classifies),
		cmocka_unit_test(typed_getters_do_not_coerce),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
