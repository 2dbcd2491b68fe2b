/* Unit tests: the one newline framer every line protocol reads through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lines.h"

/* Put s into the framer as one read would. */
static void feed(struct lines *l, const char *s)
{
	size_t room, n = strlen(s);
	char *at = lines_room(l, &room);

	assert_non_null(at);
	assert_true(room >= n);
	memcpy(at, s, n);
	lines_fill(l, n);
}

static void expect_line(struct lines *l, const char *want)
{
	char *line;
	size_t len;

	assert_int_equal(lines_next(l, &line, &len), 1);
	assert_int_equal(len, strlen(want));
	assert_string_equal(line, want);
}

static void expect_none(struct lines *l)
{
	char *line;
	size_t len;

	assert_int_equal(lines_next(l, &line, &len), 0);
}

static void splits_lines_across_reads(void **state)
{
	struct lines l;

	lines_init(&l, 64);
	expect_none(&l); /* nothing held, nothing allocated */
	feed(&l, "one\ntw");
	assert_true(lines_ready(&l));
	expect_line(&l, "one");
	assert_false(lines_ready(&l));
	assert_int_equal(lines_held(&l), 2); /* a line has begun */
	expect_none(&l);
	feed(&l, "o\n\nthree\n");
	expect_line(&l, "two");
	expect_line(&l, ""); /* an empty line is a line: the reader decides what it means */
	expect_line(&l, "three");
	expect_none(&l);
	assert_int_equal(lines_held(&l), 0);
	lines_release(&l);
}

static void reports_long_lines(void **state)
{
	struct lines l;
	char *line;
	size_t len;
	char big[40];

	lines_init(&l, 8);
	feed(&l, "12345678\n"); /* exactly the limit: fine */
	expect_line(&l, "12345678");
	feed(&l, "123456789\nok\n"); /* a whole line over the limit */
	assert_int_equal(lines_next(&l, &line, &len), -EMSGSIZE);
	assert_int_equal(lines_next(&l, &line, &len), -EMSGSIZE); /* it stays until dropped */
	lines_skip(&l);
	expect_line(&l, "ok");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	feed(&l, big); /* an unfinished line already over the limit */
	assert_int_equal(lines_next(&l, &line, &len), -EMSGSIZE);
	lines_skip(&l); /* its end has not come: drop it when it does */
	feed(&l, "still the long one\nnext\n");
	assert_true(lines_ready(&l));
	expect_line(&l, "next");
	lines_release(&l);
}

static void full_buffer_says_so(void **state)
{
	struct lines l;
	size_t room;
	char *at;

	lines_init(&l, 16);
	for (;;) { /* fill it with one endless line */
		at = lines_room(&l, &room);
		if (!at)
			break;
		memset(at, 'y', room);
		lines_fill(&l, room);
	}
	assert_int_equal(errno, EMSGSIZE);
	assert_true(lines_held(&l) > 16);
	lines_reset(&l);
	assert_int_equal(lines_held(&l), 0);
	feed(&l, "fresh\n");
	expect_line(&l, "fresh");
	lines_release(&l);
}

static void reads_from_a_socket(void **state)
{
	struct lines l;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	lines_init(&l, 1024);
	assert_int_equal(write(sv[0], "a\nb", 3), 3);
	assert_int_equal(lines_read(&l, sv[1]), 3);
	expect_line(&l, "a");
	assert_int_equal(write(sv[0], "c\n", 2), 2);
	close(sv[0]);
	assert_int_equal(lines_read(&l, sv[1]), 2);
	expect_line(&l, "bc");
	assert_int_equal(lines_read(&l, sv[1]), 0); /* end of file */
	close(sv[1]);
	lines_release(&l);
}

static void many_lines_in_one_read(void **state)
{
	struct lines l;
	char buf[64];
	unsigned n = 0;
	char *line;
	size_t len;

	lines_init(&l, 32);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(buf, sizeof(buf), "line %u\n", i);
		feed(&l, buf);
	}
	while (lines_next(&l, &line, &len) == 1) {
		snprintf(buf, sizeof(buf), "line %u", n++);
		assert_string_equal(line, buf);
	}
	assert_int_equal(n, 1000);
	lines_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(splits_lines_across_reads),
		cmocka_unit_test(reports_long_lines),
		cmocka_unit_test(full_buffer_says_so),
		cmocka_unit_test(reads_from_a_socket),
		cmocka_unit_test(many_lines_in_one_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
