/* Unit tests: the loop's timers (brokerd/base/loop.c). Each has an id that names it for good;
 * it can be cancelled from anywhere, its own callback and another timer's too; callbacks
 * may add timers while timers run; there is no fixed number of them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loop.h"

struct rec {
	unsigned runs;
	int64_t victim;       /* cancelled by this timer's first run */
	int64_t added;        /* added by this timer's first run */
	unsigned stop_after;  /* stop the loop after this many runs */
};

static int64_t tick(struct loop *l, void *data)
{
	struct rec *r = data;

	r->runs++;
	if (r->runs == 1 && r->victim)
		loop_cancel_timer(l, r->victim);
	if (r->runs >= r->stop_after)
		loop_stop(l);
	return r->runs >= r->stop_after ? -1 : 1;
}

static int64_t once_then_grow(struct loop *l, void *data)
{
	struct rec *r = data;
	static struct rec child = { .stop_after = 3 };

	r->runs++;
	/* enough timers that the table must grow while this one runs */
	for (int i = 0; i < 40; i++)
		assert_true(loop_add_timer(l, 1000000, tick, r) > 0);
	r->added = loop_add_timer(l, 0, tick, &child);
	return -1;
}

static int64_t cancel_self(struct loop *l, void *data)
{
	int64_t *self = data;

	loop_cancel_timer(l, *self);
	return 1; /* ignored: it cancelled itself */
}

static void ids_cancel_and_growth(void **state)
{
	struct loop *l;
	struct rec a = { .stop_after = 3 }, b = { .stop_after = 100 }, g = { 0 };
	int64_t ia, ib, ig, is;

	(void)state;
	assert_int_equal(loop_new(&l), 0);
	ib = loop_add_timer(l, 0, tick, &b);
	a.victim = ib;
	ia = loop_add_timer(l, 0, tick, &a);
	assert_true(ia > 0 && ib > 0 && ia != ib);
	ig = loop_add_timer(l, 0, once_then_grow, &g);
	is = loop_add_timer(l, 0, cancel_self, &is);
	assert_true(loop_timer_pending(l, is));
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(a.runs, 3);        /* ran until it ended itself */
	assert_true(b.runs <= 1);           /* cancelled by a's first run (maybe after its own) */
	assert_false(loop_timer_pending(l, ib));
	assert_false(loop_timer_pending(l, ia)); /* ended: its id names nothing now */
	assert_false(loop_timer_pending(l, is));
	assert_int_equal(g.runs, 1);
	assert_false(loop_timer_pending(l, ig));
	assert_true(g.added > ig);
	assert_false(loop_timer_pending(l, 0));
	loop_cancel_timer(l, ia);           /* an ended timer: nothing happens */
	loop_cancel_timer(NULL, ia);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ids_cancel_and_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
