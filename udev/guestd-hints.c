/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What guest programs said they can lose (guestd.h): per tag, the ranges marked cold, kept
 * sorted and merged; marking a range hot takes it out again. When brokerd must shrink an
 * image it asks, and the agent answers with these ranges, so a cache a program can refill
 * goes before memory it would miss.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestd.h"

#define HINT_TAGS 64

struct tag_hints {
	tagmem_tag tag;
	bool used;
	struct hint_range r[HINT_RANGES];  /* sorted by offset, not overlapping */
	size_t n;
};

struct hints {
	struct tag_hints t[HINT_TAGS];
};

struct hints *hints_new(void)
{
	return calloc(1, sizeof(struct hints));
}

void hints_free(struct hints *h)
{
	free(h);
}

static struct tag_hints *find(struct hints *h, const tagmem_tag *tag, bool create)
{
	struct tag_hints *freeslot = NULL;

	for (unsigned i = 0; i < HINT_TAGS; i++) {
		if (h->t[i].used && !tagmem_tag_compare(&h->t[i].tag, tag))
			return &h->t[i];
		if (!h->t[i].used && !freeslot)
			freeslot = &h->t[i];
	}
	if (!create || !freeslot)
		return NULL;
	memset(freeslot, 0, sizeof(*freeslot));
	freeslot->used = true;
	freeslot->tag = *tag;
	return freeslot;
}

/* Take [off, end) out of the cold set (splitting a range that contains it). */
static int cut(struct tag_hints *t, uint64_t off, uint64_t end)
{
	for (size_t i = 0; i < t->n; i++) {
		struct hint_range *x = &t->r[i];
		uint64_t xe = x->off + x->len;

		if (xe <= off || x->off >= end)
			continue;
		if (x->off < off && xe > end) { /* a hole in the middle: two ranges */
			if (t->n == HINT_RANGES)
				return -ENOSPC;
			memmove(&t->r[i + 2], &t->r[i + 1], (t->n - i - 1) * sizeof(*x));
			t->r[i + 1] = (struct hint_range){ end, xe - end };
			x->len = off - x->off;
			t->n++;
			return 0;
		}
		if (x->off < off) {
			x->len = off - x->off;
		} else if (xe > end) {
			x->len = xe - end;
			x->off = end;
		} else { /* wholly inside: gone */
			memmove(x, x + 1, (t->n - i - 1) * sizeof(*x));
			t->n--;
			i--;
		}
	}
	return 0;
}

int hints_mark(struct hints *h, const tagmem_tag *tag, uint64_t off, uint64_t len, bool cold)
{
	struct tag_hints *t = find(h, tag, cold);
	uint64_t end = off + len;
	size_t at = 0;
	int r;

	if (!len || end < off)
		return -EINVAL;
	if (!t)
		return cold ? -ENOSPC : 0;
	r = cut(t, off, end);
	if (r < 0 || !cold)
		return r;
	/* insert in order, then merge with neighbours that touch it */
	while (at < t->n && t->r[at].off < off)
		at++;
	if (t->n == HINT_RANGES)
		return -ENOSPC;
	memmove(&t->r[at + 1], &t->r[at], (t->n - at) * sizeof(t->r[0]));
	t->r[at] = (struct hint_range){ off, len };
	t->n++;
	if (at + 1 < t->n && t->r[at].off + t->r[at].len == t->r[at + 1].off) {
		t->r[at].len += t->r[at + 1].len;
		memmove(&t->r[at + 1], &t->r[at + 2], (t->n - at - 2) * sizeof(t->r[0]));
		t->n--;
	}
	if (at > 0 && t->r[at - 1].off + t->r[at - 1].len == t->r[at].off) {
		t->r[at - 1].len += t->r[at].len;
		memmove(&t->r[at], &t->r[at + 1], (t->n - at - 1) * sizeof(t->r[0]));
		t->n--;
	}
	return 0;
}

size_t hints_cold(struct hints *h, const tagmem_tag *tag, const struct hint_range **ret)
{
	struct tag_hints *t = find(h, tag, false);

	*ret = t ? t->r : NULL;
	return t ? t->n : 0;
}

uint64_t hints_cold_bytes(struct hints *h, const tagmem_tag *tag)
{
	const struct hint_range *r;
	size_t n = hints_cold(h, tag, &r);
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += r[i].len;
	return sum;
}

/* {"offset":N,"length":N}, and the comma before the next */
static size_t range_text_len(const struct hint_range *r)
{
	return (size_t)snprintf(NULL, 0, "{\"offset\":%llu,\"length\":%llu},",
				(unsigned long long)r->off, (unsigned long long)r->len);
}

static int by_length_desc(const void *a, const void *b)
{
	const struct hint_range *x = a, *y = b;

	return x->len < y->len ? 1 : x->len > y->len ? -1 : x->off < y->off ? -1 : x->off > y->off;
}

static int by_offset(const void *a, const void *b)
{
	const struct hint_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

size_t hints_offer(const struct hint_range *r, size_t n, size_t budget, struct hint_range *ret)
{
	size_t k = 0, used = 0;

	if (!n)
		return 0;
	/* brokerd's channel takes a line of 4 KiB: past about a hundred ranges an answer of all
	 * of them would not fit and the channel would be dropped; the largest give back the most */
	memcpy(ret, r, n * sizeof(*r));
	qsort(ret, n, sizeof(*ret), by_length_desc);
	for (; k < n; k++) {
		size_t t = range_text_len(&ret[k]);

		if (used + t > budget)
			break;
		used += t;
	}
	qsort(ret, k, sizeof(*ret), by_offset);
	return k;
}
