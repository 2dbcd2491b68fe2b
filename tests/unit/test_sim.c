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

/* ---- the kernel's rules for Add Capacity records (DCD v11) ---- */

static size_t count_extents(struct ctx *c, unsigned region)
{
	struct dcd_snapshot snap = { 0 };
	size_t n;

	assert_int_equal(dcd_scan_region_extents(c->fs, region, &snap), 0);
	n = snap.nextents;
	dcd_snapshot_clear(&snap);
	return n;
}

static struct sim_dc_record rec(unsigned region, uint64_t off, uint64_t len, const tagmem_tag *t,
				unsigned seq, bool more)
{
	struct sim_dc_record r = { .region = region, .offset = off, .length = len,
				   .tagged = t != NULL, .seq = seq, .more = more };
	if (t)
		r.tag = *t;
	return r;
}

static void drain(struct ctx *c)
{
	struct dcd_event ev;

	while (sim_next_event(c->sim, &ev) > 0)
		;
}

/* Extents reach sysfs only when the More chain closes, and a tag's group is added whole. */
static void chains_surface_when_closed(void **state)
{
	struct ctx *c = *state;
	struct sim_chain_result res;
	struct sim_dc_record r;
	struct dcd_event ev;
	tagmem_tag t;

	tagmem_tag_generate(&t);
	r = rec(0, 0, 2 * MiB, &t, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 1000, &res), 0);
	r = rec(0, 8 * MiB, 4 * MiB, &t, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 1001, &res), 0);
	assert_int_equal(count_extents(c, 0), 0); /* staged, not surfaced */
	assert_int_equal(sim_next_event(c->sim, &ev), 0);
	r = rec(0, 4 * MiB, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 1002, &res), 1);
	assert_int_equal(res.accepted, 1);
	assert_int_equal(res.refused, 0);
	assert_int_equal(count_extents(c, 0), 3);
	/* a private group keeps arrival order: the device's size is their sum */
	struct dcd_daxdev d;
	assert_int_equal(claim(c, 0, &t, &d), 0);
	assert_true(d.size == 8 * MiB);
	drain(c);
}

/* A group with one bad extent is refused whole; another group of the same chain is not. */
static void groups_are_atomic(void **state)
{
	struct ctx *c = *state;
	struct sim_chain_result res;
	struct sim_dc_record r;
	tagmem_tag bad, good;

	tagmem_tag_generate(&bad);
	tagmem_tag_generate(&good);
	r = rec(0, 0, 2 * MiB, &bad, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 0);
	r = rec(0, 16 * MiB, 2 * MiB, &good, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 0);
	r = rec(0, 2 * MiB, 1 * MiB, &bad, 0, false); /* not 2 MiB aligned */
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.accepted, 1);
	assert_int_equal(res.refused, 1);
	assert_int_equal(res.error, -EINVAL);
	assert_int_equal(count_extents(c, 0), 1);
	assert_int_equal(claim(c, 0, &bad, NULL), -ENOENT);
	assert_int_equal(claim(c, 0, &good, NULL), 0);
	/* a group over an extent already there is refused too */
	tagmem_tag_generate(&bad);
	r = rec(0, 16 * MiB, 2 * MiB, &bad, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.error, -ENXIO);
	drain(c);
}

/* A tag already on the host is refused as the kernel refuses it, in any region. */
static void duplicate_tag_refused(void **state)
{
	struct ctx *c = *state;
	struct sim_chain_result res;
	struct sim_dc_record r;
	struct sim_alloc a;
	tagmem_tag t;

	tagmem_tag_generate(&t);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, &t, false, &a), 0);
	r = rec(0, 64 * MiB, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.refused, 1);
	assert_int_equal(res.error, -EEXIST);
	r = rec(1, 0, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.error, -EEXIST);
	assert_int_equal(count_extents(c, 0), 1);
	assert_int_equal(count_extents(c, 1), 0);
	drain(c);
}

/* Sharable capacity needs a tag and a dense sequence from 0 (v11); a gap is refused. */
static void sharable_sequence(void **state)
{
	struct ctx *c = *state;
	struct sim_chain_result res;
	struct sim_dc_record r;
	struct dcd_daxdev d;
	struct dcd_event ev;
	tagmem_tag t;

	tagmem_tag_generate(&t);
	r = rec(1, 0, 2 * MiB, &t, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 0);
	r = rec(1, 2 * MiB, 2 * MiB, &t, 2, false); /* 0, 2: seq 1 missing */
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.refused, 1);
	assert_int_equal(res.error, -EINVAL);
	assert_int_equal(count_extents(c, 1), 0);
	/* untagged on a sharable region */
	r = rec(1, 0, 2 * MiB, NULL, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.error, -EINVAL);
	/* out of order but dense: assembled in sequence order, not arrival order */
	r = rec(1, 32 * MiB, 4 * MiB, &t, 1, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 0);
	r = rec(1, 0, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.accepted, 1);
	assert_int_equal(sim_next_event(c->sim, &ev), 1);
	assert_int_equal(ev.sh_extent_seq, 0);
	assert_true(ev.dpa_start == 0);
	assert_int_equal(sim_next_event(c->sim, &ev), 1);
	assert_int_equal(ev.sh_extent_seq, 1);
	assert_int_equal(claim(c, 1, &t, &d), 0);
	assert_true(d.size == 6 * MiB);
	/* the device maps seq 0 first: tag offset 0 is device offset 0 */
	uint64_t start;
	char path[128];
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/mapping0/start", d.name);
	assert_int_equal(sysfs_read_u64(c->fs, path, &start), 0);
	assert_true(start == 0);
	drain(c);
}

/* The older series numbered from 1: the setting chooses. */
static void sharable_sequence_v10(void **state)
{
	struct ctx *c = *state;
	struct sim_options o = { .region_size = 4 * GiB, .series = DCD_SERIES_V10 };
	struct sim_chain_result res;
	struct sim_dc_record r;
	struct sim_alloc a;
	tagmem_tag t;

	sim_close(c->sim);
	assert_int_equal(sim_open(c->root, &o, &c->sim), 0);
	tagmem_tag_generate(&t);
	r = rec(1, 0, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.error, -EINVAL);
	r = rec(1, 0, 2 * MiB, &t, 1, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.accepted, 1);
	tagmem_tag_generate(&t);
	assert_int_equal(sim_fm_add(c->sim, 2 * GiB + 2 * MiB, &t, true, &a), 0); /* 1, 2, 3 */
	drain(c);
}

/* A chain past 100 records is dropped whole; so is one left open 20 s. */
static void chain_limits(void **state)
{
	struct ctx *c = *state;
	struct sim_chain_result res;
	struct sim_dc_record r;
	tagmem_tag t;

	tagmem_tag_generate(&t);
	for (unsigned i = 0; i < SIM_MAX_PENDING; i++) {
		r = rec(0, i * 2 * MiB, 2 * MiB, &t, 0, true);
		assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 0);
	}
	r = rec(0, SIM_MAX_PENDING * 2 * MiB, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), -ENOSPC);
	assert_int_equal(count_extents(c, 0), 0);
	assert_int_equal(claim(c, 0, &t, NULL), -ENOENT);
	/* the next chain starts afresh */
	r = rec(0, 0, 2 * MiB, &t, 0, false);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 0, &res), 1);
	assert_int_equal(res.accepted, 1);

	/* left open: the watchdog drops it at 20 s, not before */
	tagmem_tag_generate(&t);
	r = rec(0, 64 * MiB, 2 * MiB, &t, 0, true);
	assert_int_equal(sim_dc_add_record(c->sim, &r, 5000, &res), 0);
	assert_int_equal(sim_dc_tick(c->sim, 5000 + SIM_CHAIN_TIMEOUT_MS - 1), 0);
	assert_int_equal(sim_dc_tick(c->sim, 5000 + SIM_CHAIN_TIMEOUT_MS), 1);
	r = rec(0, 66 * MiB, 2 * MiB, &t, 0, false); /* too late: a chain of its own */
	assert_int_equal(sim_dc_add_record(c->sim, &r, 30000, &res), 1);
	assert_int_equal(count_extents(c, 0), 2);
	struct dcd_daxdev d;
	assert_int_equal(claim(c, 0, &t, &d), 0);
	assert_true(d.size == 2 * MiB);
	drain(c);
}

/* Free space so scattered that an allocation would need more than 100 extents: the fabric
 * manager cannot send it as one chain, and says so instead of sending one the kernel drops. */
static void fragmented_allocation_refused(void **state)
{
	struct ctx *c = *state;
	tagmem_tag t[2 * SIM_MAX_PENDING + 2], big;
	struct sim_alloc a;
	uint64_t used = 0;

	for (unsigned i = 0; i < 2 * SIM_MAX_PENDING + 2; i++) {
		tagmem_tag_generate(&t[i]);
		assert_int_equal(sim_fm_add(c->sim, 2 * MiB, &t[i], false, &a), 0);
		used += 2 * MiB;
	}
	assert_int_equal(sim_fm_add(c->sim, 4 * GiB - used, NULL, false, &a), 0); /* the rest */
	for (unsigned i = 0; i < 2 * SIM_MAX_PENDING + 2; i += 2)
		assert_int_equal(sim_fm_release(c->sim, &t[i]), 0); /* 101 holes of 2 MiB */
	tagmem_tag_generate(&big);
	assert_int_equal(sim_fm_add(c->sim, (SIM_MAX_PENDING + 1) * 2 * MiB, &big, false, &a),
			 -E2BIG);
	assert_int_equal(sim_fm_add(c->sim, SIM_MAX_PENDING * 2 * MiB, &big, false, &a), 0);
	assert_int_equal(a.nextents, SIM_MAX_PENDING);
	drain(c);
}

/* "0" claims one untagged extent, the lowest free one; its uuid reads as the null UUID. */
static void zero_claims_one_untagged(void **state)
{
	struct ctx *c = *state;
	struct sim_alloc a;
	struct dcd_region rg;
	struct dcd_daxdev d;
	char path[128], text[64];

	assert_int_equal(sim_fm_add(c->sim, 4 * MiB, NULL, false, &a), 0);
	assert_int_equal(sim_fm_add(c->sim, 2 * MiB, NULL, false, &a), 0);
	drain(c);
	for (int i = 0; i < 3; i++) {
		int r;

		assert_int_equal(dcd_read_region(c->fs, 0, &rg), 0);
		snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
		assert_int_equal(sysfs_write(c->fs, path, "0"), 0);
		r = sim_kernel_seed_written(c->sim, 0);
		if (i == 2) {
			assert_int_equal(r, -ENOENT); /* both taken */
			break;
		}
		assert_int_equal(r, 0);
		assert_int_equal(dcd_read_daxdev(c->fs, rg.seed, &d), 0);
		assert_false(d.tagged);
		assert_true(d.size == (i == 0 ? 4 * MiB : 2 * MiB));
		assert_int_equal(sysfs_read(c->fs, path, text, sizeof(text)), 0);
		assert_string_equal(text, "00000000-0000-0000-0000-000000000000");
	}
	/* the claims survive reopening the sandbox: a third "0" still finds none free */
	struct sim_options o = { .region_size = 4 * GiB };
	sim_close(c->sim);
	assert_int_equal(sim_open(c->root, &o, &c->sim), 0);
	assert_int_equal(dcd_read_region(c->fs, 0, &rg), 0);
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
	assert_int_equal(sysfs_write(c->fs, path, "0"), 0);
	assert_int_equal(sim_kernel_seed_written(c->sim, 0), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fresh_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(add_splits_and_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(release_is_deferred_while_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(full_region_reuses_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(chains_surface_when_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(groups_are_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(duplicate_tag_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(sharable_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(sharable_sequence_v10, setup, teardown),
		cmocka_unit_test_setup_teardown(chain_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(fragmented_allocation_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(zero_claims_one_untagged, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
