/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host's image budget (--resident-budget) shared between VMs. A VM is the owner name of
 * its images' claims; the images nobody claimed count as one VM more. Each is guaranteed an
 * equal share, budget / N, and what one leaves unused the others may take (max-min fairness,
 * as a scheduler shares a link): when the images together hold more than the budget, a
 * level L is found with sum(min(resident_v, L)) = budget, and only VMs above L give back,
 * each down to L. So a VM that holds less than its guaranteed share never loses a page to
 * another's growth, and no VM's growth can take more than what the others leave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static int by_resident(const void *a, const void *b)
{
	const struct vm_share *x = *(struct vm_share *const *)a, *y = *(struct vm_share *const *)b;

	return x->resident < y->resident ? -1 : x->resident > y->resident;
}

int shares_divide(uint64_t budget, struct vm_share *v, size_t n)
{
	struct vm_share **order;
	uint64_t left = budget, total = 0;
	size_t k = n;

	for (size_t i = 0; i < n; i++) {
		v[i].guaranteed = n ? budget / n : 0;
		v[i].cap = UINT64_MAX;
		total += v[i].resident;
	}
	if (!budget || total <= budget)
		return 0;
	order = malloc(n * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &v[i];
	qsort(order, n, sizeof(*order), by_resident);
	for (size_t i = 0; i < n; i++, k--) {
		uint64_t level = left / k;

		if (order[i]->resident <= level) {
			left -= order[i]->resident; /* under the level: untouched */
			continue;
		}
		for (size_t j = i; j < n; j++) /* sorted: every one from here is above it */
			order[j]->cap = level;
		break;
	}
	free(order);
	return 1;
}

struct vm_share *shares_find(struct vm_share **v, size_t *n, size_t *cap, const char *vm)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i].vm, vm))
			return &(*v)[i];
	if (grow_array(v, cap, *n, sizeof(**v)) < 0)
		return NULL;
	memset(&(*v)[*n], 0, sizeof(**v));
	snprintf((*v)[*n].vm, sizeof((*v)[*n].vm), "%s", vm);
	return &(*v)[(*n)++];
}
