/* libFuzzer target: what a fabric manager (or whatever answers on its socket) tells a host,
 * line by line, applied to a fresh simulated host tree: no crash, and whatever is accepted
 * leaves the tree consistent (no two tags' extents overlap). */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fabric_link.h"
#include "sim.h"
#include "tagmem.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		abort();
}

/* Every extent of every tag lies apart from every other (sim_place's promise). */
static void check_apart(struct sim *sim)
{
	tagmem_tag *tags = NULL;
	size_t n = 0;
	struct dcd_extent all[256];
	size_t nall = 0;

	if (sim_list_tags(sim, &tags, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct dcd_extent ext[64];
		size_t k = sim_tag_extents(sim, &tags[i], ext, 64);

		for (size_t j = 0; j < k && j < 64 && nall < 256; j++)
			all[nall++] = ext[j];
	}
	for (size_t i = 0; i < nall; i++)
		for (size_t j = i + 1; j < nall; j++)
			if (all[i].region == all[j].region &&
			    all[i].offset < all[j].offset + all[j].length &&
			    all[j].offset < all[i].offset + all[i].length)
				abort();
	free(tags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/dev/shm/fuzz-fabric.XXXXXX", root[64];
	struct sim_options opts = { .region_size = 1ull << 30 };
	struct sim *sim;
	struct dcd_event ev;
	size_t off = 0;

	if (size > 16384 || !mkdtemp(dir))
		return 0;
	snprintf(root, sizeof(root), "%s/sim", dir);
	if (sim_open(root, &opts, &sim) < 0) {
		rm_rf(dir);
		return 0;
	}
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		struct json_object *msg = NULL;

		if (tagmem_msg_parse((const char *)data + off, len, 1 << 20, &msg) == 0) {
			fabric_link_apply(sim, msg);
			json_object_put(msg);
		}
		while (sim_next_event(sim, &ev) > 0)
			;
		off += len + 1;
	}
	check_apart(sim);
	sim_close(sim);
	rm_rf(dir);
	return 0;
}
