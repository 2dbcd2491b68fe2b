/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The registry: the front door of brokerd/registry. What the kernel does not remember —
 * claims and their owners, images and their budgets — in one JSON file in the state
 * directory (registry.c), written off the event loop by the persister (persist.c).
 */
#ifndef BROKERD_REGISTRY_H
#define BROKERD_REGISTRY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

struct registry_image {
	tagmem_tag tag;
	char path[PATH_MAX];
	uint64_t file_size;
	uint64_t data_offset;    /* the layout brokerd chose or found at create/adopt, */
	bool has_data_offset;    /* absent in registries written before it was recorded */
	uint64_t inode;          /* the file's, recorded at create/adopt */
	bool has_inode;          /* absent in registries written before it was recorded */
	uint64_t dirty_budget, resident_budget;
	bool has_budgets;        /* absent in registries written before budgets existed */
	struct image_lost lost;  /* since 0: nothing lost (or an older registry) */
	/* only in records brokerd keeps without serving them: the claim on the image, which
	 * the file holds in "claims" like any other */
	bool has_claim;
	struct core_claim claim;
};

struct registry {
	struct core_claim *claims;
	size_t nclaims;
	struct registry_image *images;
	size_t nimages;
};

/* Parse registry text; -EBADMSG on anything malformed (the file is never half-trusted). */
int registry_parse(const char *text, size_t len, struct registry *ret);
int registry_load(const char *state_dir, struct registry *ret);
void registry_clear(struct registry *r);
/* Serialise the durable part of the core's tags (confirmed claims, images), and the records
 * of images that are not served now but must not be forgotten (keep). Caller frees. */
char *registry_serialize(struct core *core, const struct registry_image *keep, size_t nkeep,
			 size_t *ret_len);
/* temp file + fsync + rename + directory fsync. */
int registry_write_atomic(const char *state_dir, const char *data, size_t len);
#define REGISTRY_FILE "registry.json"

/* ---- persister (persist.c): registry writes off the event loop ---------------------- */

struct persister;

int persister_start(const char *state_dir, struct persister **ret);
void persister_stop(struct persister *p);
int persister_fd(struct persister *p);
/* Queue a snapshot (ownership taken); returns its generation. Later snapshots supersede. */
uint64_t persister_submit(struct persister *p, char *data, size_t len);
/* After the fd polls readable: highest finished generation and its result (0 or -errno). */
void persister_completed(struct persister *p, uint64_t *ret_gen, int *ret_error);

#endif
