/* Unit tests: the host's image budget divided between VMs (api/shares.c): max-min fair. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ops.h"

#define MiB (1ull << 20)

static void fits_means_no_caps(void **state)
{
	struct vm_share v[2] = { { .resident = 10 * MiB }, { .resident = 20 * MiB } };

	(void)state;
	assert_int_equal(shares_divide(96 * MiB, v, 2), 0);
	assert_true(v[0].cap == UINT64_MAX && v[1].cap == UINT64_MAX);
	assert_true(v[0].guaranteed == 48 * MiB);
	/* no budget: nothing to share */
	assert_int_equal(shares_divide(0, v, 2), 0);
}

/* the documented example: 96 MiB, three VMs; one under its share keeps all it holds, the
 * other two come down to the level it leaves */
static void water_level(void **state)
{
	struct vm_share v[3] = { { .resident = 128 * MiB }, { .resident = 16 * MiB },
				 { .resident = 100 * MiB } };

	(void)state;
	assert_int_equal(shares_divide(96 * MiB, v, 3), 1);
	assert_true(v[1].cap == UINT64_MAX);
	assert_true(v[0].cap == 40 * MiB && v[2].cap == 40 * MiB);
	for (int i = 0; i < 3; i++)
		assert_true(v[i].guaranteed == 32 * MiB);
}

/* everyone over: equal caps, summing to the budget */
static void all_over(void **state)
{
	struct vm_share v[4] = { { .resident = 50 * MiB }, { .resident = 60 * MiB },
				 { .resident = 70 * MiB }, { .resident = 80 * MiB } };
	uint64_t sum = 0;

	(void)state;
	assert_int_equal(shares_divide(100 * MiB, v, 4), 1);
	for (int i = 0; i < 4; i++) {
		assert_true(v[i].cap == 25 * MiB);
		sum += v[i].cap;
	}
	assert_true(sum == 100 * MiB);
}

/* two under, one far over: the one over gets all that is left */
static void one_hog(void **state)
{
	struct vm_share v[3] = { { .resident = 10 * MiB }, { .resident = 1000 * MiB },
				 { .resident = 20 * MiB } };

	(void)state;
	assert_int_equal(shares_divide(90 * MiB, v, 3), 1);
	assert_true(v[0].cap == UINT64_MAX && v[2].cap == UINT64_MAX);
	assert_true(v[1].cap == 60 * MiB);
}

static void find_appends_once(void **state)
{
	struct vm_share *v = NULL;
	size_t n = 0, cap = 0;

	(void)state;
	assert_non_null(shares_find(&v, &n, &cap, "a"));
	assert_non_null(shares_find(&v, &n, &cap, ""));
	assert_ptr_equal(shares_find(&v, &n, &cap, "a"), &v[0]);
	assert_int_equal(n, 2);
	assert_string_equal(v[1].vm, "");
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fits_means_no_caps),
		cmocka_unit_test(water_level),
		cmocka_unit_test(all_over),
		cmocka_unit_test(one_hog),
		cmocka_unit_test(find_appends_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
