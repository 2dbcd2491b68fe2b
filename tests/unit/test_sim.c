/* Unit tests: the simulated DCD's kernel emulation and fabric manager, checked through the
 * same sysfs/DCD reader the broker uses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "fixture.h"
#include "sim.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

struct ctx {
	char *root;
	struct sim *sim;
	struct sysfs *fs;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct sim_options o = { .region_size = 4 * GiB };

	c->root = fixture_dir();
	assert_int_equal(sim_open(c->root, &o, &c->sim), 0);
	assert_int_equal(sysfs_open(c->root, &c->fs), 0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	sim_close(c->sim);
	sysfs_close(c->fs);
	fixture_rm(c->root);
	free(c->root);
	free(c);
	return 0;
}

/* What the broker does to claim a tag: write it to the seed's uuid, let the kernel react. */
static int claim(struct ctx *c, unsigned region, const tagmem_tag *t, struct dcd_daxdev *ret)
{
	struct dcd_region rg;
	char path[128], s[TAGMEM_TAG_STRING_MAX];
	int r;

	assert_int_equal(dcd_read_region(c->fs, region, &rg), 0);
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
	assert_int_equal(sysfs_write(c->fs, path, tagmem_tag_format(t, s)), 0);
	r = sim_kernel_seed_written(c->sim, region);
	if (r == 0 && ret)
		assert_int_equal(dcd_read_daxdev(c->fs, rg.seed, ret), 0);
	return r;
}

static void fresh_tree(void **state)
{
	struct ctx *c = *state;
	struct dcd_snapshot snap;

	assert_int_equal(dcd_scan(c->fs, &snap), 0);
	assert_int_equal(snap.nregions, SIM_REGIONS);
	assert_false(snap.regions[0].sharable);
	assert_true(snap.regions[1].sharable);
	assert_string_equal(snap.regions[0].seed, "dax0.0");
	assert_int_equal(snap.nextents, 0);
	dcd_snapshot_clear(&snap);
}

static void add_splits_and_claims(void **state)
{
	struct ctx *c = *state;
	struct sim_alloc a;
	struct dcd_snapshot snap = { 0 };
	struct dcd_daxdev d;
	struct dcd_event ev;
	tagmem_tag t;
	unsigned nev = 0;

	tagmem_tag_generate(&t);
	assert_int_equal(sim_fm_add(c->sim, 2 * GiB + 2 * MiB, &t, false, &a), 0);
	assert_int_equal(a.nextents, 3);
	while (sim_next_event(c->sim, &ev) > 0) {
		assert_int_equal(ev.type, DCD_EVENT_ADD);
		assert_true(ev.tagged);
		nev++;
	}
	assert_int_equal(nev, 3);
	assert_int_equal(dcd_scan_region_extents(c->fs, 0, &snap), 0);
	assert_int_equal(snap.nextents, 3);
	dcd_snapshot_clear(&snap);

	assert_int_equal(claim(c, 0, &t, &d), 0);
	assert_true(d.size == 2 * GiB + 2 * MiB);
	assert_int_equal(tagmem_tag_compare(&d.tag, &t), 0);
	struct stat st;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/dev/%s", c->root, d.name);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_size == d.size);

	/* the kernel's answers: already claimed, no such tag */
	assert_int_equal(claim(c, 0, &t, NULL), -EBUSY);
	tagmem_tag other;
	tagmem_tag_generate(&other);
	assert_int_equal(claim(c, 0, &other, NULL), -ENOENT);
}

static void release_is_deferred_while_in_use(void **state)
{
	struct ctx *c = *state;
	struct sim_alloc a;
	struct dcd_daxdev d;
	struct dcd_event ev;
	char path[128];
	tagmem_tag t, u;

	tagmem_tag_generate(&t);
	tagmem_tag_generate(&u);
	assert_int_equal(sim_fm_add(c->sim, 4 * MiB, &t, false, &a), 0);
	assert_int_equal(sim_fm_add(c->sim, 4 * MiB, &u, false, &a), 0);
	assert_int_equal(claim(c, 0, &t, &d), 0);

	/* unused: released at once */
	assert_int_equal(sim_fm_release(c->sim, &u), 0);
	/* in use: deferred, extents stay, and it survives reopening the sandbox */
	assert_int_equal(sim_fm_release(c->sim, &t), 1);
	assert_true(sim_release_pending(c->sim, &t));
	while (sim_next_event(c->sim, &ev) > 0)
		;
	struct sim_options o = { .region_size = 1 * GiB }; /* geometry comes from the tree */
	sim_close(c->sim);
	assert_int_equal(sim_open(c->root, &o, &c->sim), 0);
	assert_true(sim_region_size(c->sim) == 4 * GiB);
	assert_true(sim_release_pending(c->sim, &t));

	/* destroying the device completes the release */
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/size", d.name);
	assert_int_equal(sysfs_write(c->fs, path, "0"), 0);
	assert_int_equal(sim_kernel_size_written(c->sim, d.name), 0);
	assert_false(sim_release_pending(c->sim, &t));
	struct dcd_snapshot snap = { 0 };
	assert_int_equal(dcd_scan_region_extents(c->fs, 0, &snap), 0);
	assert_int_equal(snap.nextents, 0);
	dcd_snapshot_clear(&snap);
	assert_int_equal(sim_fm_release(c->sim, &t), -ENOENT);
}

static void allocation_rules(void **state)
{
	struct ctx *c = *state;
	struct sim_alloc a;
	tagmem_tag t;

	tagmem_tag_generate(&t);
	assert_int_equal(sim_fm_add(c->sim, 3 * MiB, &t, false, &a), -EINVAL);
	assert_int_equal(sim_fm_add(c->sim, 0, &t, false, &a), -EINVAL);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, NULL, true, &a), -EINVAL); /* shared, untagged */
	assert_int_equal(sim_fm_add(c->sim, 8 * GiB, &t, false, &a), -ENOSPC);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, &t, true, &a), 0);
	assert_int_equal(a.region, 1);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, &t, false, &a), -EEXIST);
	/* fill the private region exactly, then one byte-page more fails */
	assert_int_equal(sim_fm_add(c->sim, 4 * GiB, NULL, false, &a), 0);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, NULL, false, &a), -ENOSPC);
}

/* Allocation continues after the highest extent; once the region's end is reached, freed
 * holes are reused first-fit, so one allocation can span scattered extents. */
static void full_region_reuses_holes(void **state)
{
	struct ctx *c = *state;
	struct sim_alloc a;
	tagmem_tag t[3], big;

	for (int i = 0; i < 3; i++) {
		tagmem_tag_generate(&t[i]);
		assert_int_equal(sim_fm_add(c->sim, 2 * MiB, &t[i], false, &a), 0);
	}
	assert_int_equal(sim_fm_release(c->sim, &t[0]), 0);
	assert_int_equal(sim_fm_release(c->sim, &t[2]), 0);
	assert_int_equal(sim_fm_add(c->sim, 4 * GiB - 6 * MiB, NULL, false, &a), 0); /* the end */
	tagmem_tag_generate(&big);
	assert_int_equal(sim_fm_add(c->sim, 6 * MiB, &big, false, &a), -ENOSPC);
	assert_int_equal(sim_fm_add(c->sim, 4 * MiB, &big, false, &a), 0);
	assert_int_equal(a.nextents, 2); /* the holes at 0 and at 4 MiB */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fresh_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(add_splits_and_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(release_is_deferred_while_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(full_region_reuses_holes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
