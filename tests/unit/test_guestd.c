/* Unit tests: the guest agent's answer to a reclaim fits one line of the channel. With more
 * cold ranges than fit, it offers the largest, by offset; with few, all of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guestd.h"

static size_t json_len(const struct hint_range *r, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(NULL, 0, "{\"offset\":%llu,\"length\":%llu},",
					(unsigned long long)r[i].off, (unsigned long long)r[i].len);
	return len;
}

static void offer_fits_one_line(void **state)
{
	static struct hint_range cold[HINT_RANGES], out[HINT_RANGES];
	uint64_t smallest_taken = UINT64_MAX, largest_left = 0;
	size_t k;

	(void)state;
	for (size_t i = 0; i < HINT_RANGES; i++) /* 1024 ranges, sizes all over, by offset */
		cold[i] = (struct hint_range){ .off = (uint64_t)i << 30,
					       .len = ((i * 7919) % 1000 + 1) << 12 };
	k = hints_offer(cold, HINT_RANGES, 3900, out);
	assert_true(k > 0 && k < HINT_RANGES);
	assert_true(json_len(out, k) <= 3900);
	for (size_t i = 0; i < k; i++) {
		if (i)
			assert_true(out[i - 1].off < out[i].off);
		smallest_taken = out[i].len < smallest_taken ? out[i].len : smallest_taken;
	}
	for (size_t i = 0; i < HINT_RANGES; i++) {
		bool taken = false;

		for (size_t j = 0; j < k; j++)
			taken |= out[j].off == cold[i].off;
		if (!taken && cold[i].len > largest_left)
			largest_left = cold[i].len;
	}
	assert_true(smallest_taken >= largest_left); /* the largest went first */

	/* few ranges: all of them, as they were */
	k = hints_offer(cold, 3, 3900, out);
	assert_int_equal(k, 3);
	assert_memory_equal(out, cold, 3 * sizeof(cold[0]));
	assert_int_equal(hints_offer(NULL, 0, 3900, out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(offer_fits_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
