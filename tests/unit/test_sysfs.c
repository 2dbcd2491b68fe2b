/* Unit tests: the rooted sysfs reader and the DCD tree on fixture trees of both kernel
 * generations, and garbage in attributes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dcd.h"
#include "fixture.h"

#define TAG "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define EXT "sys/bus/cxl/devices/dax_region0/extent0.0/"

static void numbers(void **state)
{
	char *root = fixture_dir();
	struct sysfs *s;
	uint64_t v = 7;

	fixture_put(root, "hex", "0x200000\n");
	fixture_put(root, "dec", "4096\n");
	fixture_put(root, "neg", "-1\n");
	fixture_put(root, "junk", "12abc\n");
	fixture_put(root, "empty", "");
	fixture_put(root, "ctrl", "1\x01\n");
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(sysfs_read_u64(s, "hex", &v), 0);
	assert_true(v == 0x200000);
	assert_int_equal(sysfs_read_u64(s, "/dec", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(sysfs_read_u64(s, "neg", &v), -EINVAL);
	assert_int_equal(sysfs_read_u64(s, "junk", &v), -EINVAL);
	assert_int_equal(sysfs_read_u64(s, "empty", &v), -EINVAL);
	assert_int_equal(sysfs_read_u64(s, "ctrl", &v), -EINVAL);
	assert_int_equal(sysfs_read_u64(s, "missing", &v), -ENOENT);
	assert_true(v == 4096);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

static void dotted_names(void **state)
{
	unsigned a, b;

	assert_int_equal(sysfs_parse_dotted("extent3.12", "extent", &a, &b), 0);
	assert_int_equal(a, 3);
	assert_int_equal(b, 12);
	assert_int_equal(sysfs_parse_dotted("extent3.", "extent", &a, &b), -EINVAL);
	assert_int_equal(sysfs_parse_dotted("extent.3", "extent", &a, &b), -EINVAL);
	assert_int_equal(sysfs_parse_dotted("extent3.1x", "extent", &a, &b), -EINVAL);
	assert_int_equal(sysfs_parse_dotted("dax3.1", "extent", &a, &b), -EINVAL);
	assert_int_equal(sysfs_parse_dotted("extent-3.1", "extent", &a, &b), -EINVAL);
}

/* v9+ names the extent attribute "uuid", v3–v8 "tag"; untagged extents have neither. */
static void extent_generations(void **state)
{
	char *root = fixture_dir();
	struct dcd_extent e;
	struct sysfs *s;

	fixture_put(root, EXT "offset", "0x0\n");
	fixture_put(root, EXT "length", "0x40000000\n");
	fixture_put(root, EXT "uuid", TAG "\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.1/offset", "0x40000000\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.1/length", "0x200000\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.1/tag", TAG "\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.2/offset", "0x80000000\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.2/length", "0x200000\n");
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(dcd_read_extent(s, 0, 0, &e), 0);
	assert_true(e.tagged);
	assert_true(e.length == 0x40000000);
	assert_int_equal(dcd_read_extent(s, 0, 1, &e), 0);
	assert_true(e.tagged);
	assert_int_equal(dcd_read_extent(s, 0, 2, &e), 0);
	assert_false(e.tagged);
	assert_int_equal(dcd_read_extent(s, 0, 3, &e), -ENOENT);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

static void extent_garbage(void **state)
{
	static const char *cases[][3] = {
		{ "0x100000\n", "0x200000\n", TAG "\n" },   /* misaligned offset */
		{ "0x0\n", "0x0\n", TAG "\n" },             /* empty */
		{ "0x0\n", "0x300000\n", TAG "\n" },        /* misaligned length */
		{ "0x0\n", "lots\n", TAG "\n" },
		{ "0x0\n", "0x200000\n", "not-a-uuid\n" },
		{ "0xffffffffffe00000\n", "0x400000\n", TAG "\n" }, /* wraps around */
	};
	struct dcd_extent e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *root = fixture_dir();
		struct sysfs *s;

		fixture_put(root, EXT "offset", cases[i][0]);
		fixture_put(root, EXT "length", cases[i][1]);
		fixture_put(root, EXT "uuid", cases[i][2]);
		assert_int_equal(sysfs_open(root, &s), 0);
		assert_int_equal(dcd_read_extent(s, 0, 0, &e), -EINVAL);
		sysfs_close(s);
		fixture_rm(root);
		free(root);
	}
}

/* A whole tree: unreadable entries are skipped and counted, the rest is read. */
static void scan_skips_bad_entries(void **state)
{
	char *root = fixture_dir();
	struct dcd_snapshot snap;
	struct sysfs *s;

	fixture_put(root, "sys/bus/cxl/devices/dax_region0/dax_region/seed", "dax0.1\n");
	fixture_put(root, EXT "offset", "0x0\n");
	fixture_put(root, EXT "length", "0x200000\n");
	fixture_put(root, EXT "uuid", TAG "\n");
	fixture_put(root, "sys/bus/cxl/devices/dax_region0/extent0.1/offset", "0x0\n"); /* no length */
	fixture_put(root, "sys/bus/cxl/devices/dax_regionX/dax_region/seed", "dax0.1\n");
	fixture_put(root, "sys/bus/dax/devices/dax0.0/size", "2097152\n");
	fixture_put(root, "sys/bus/dax/devices/dax0.0/uuid", TAG "\n");
	fixture_put(root, "sys/bus/dax/devices/dax0.1/size", "0\n");
	fixture_put(root, "sys/bus/dax/devices/dax0.1/uuid", "\n");
	fixture_put(root, "sys/bus/dax/devices/daxjunk/size", "0\n");
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(dcd_scan(s, &snap), 0);
	assert_int_equal(snap.nregions, 1);
	assert_string_equal(snap.regions[0].seed, "dax0.1");
	assert_int_equal(snap.nextents, 1);
	assert_int_equal(snap.ndevs, 2);
	assert_true(snap.devs[0].tagged);
	assert_false(snap.devs[1].tagged);
	assert_int_equal(snap.skipped, 3);
	dcd_snapshot_clear(&snap);

	/* daemonless resolution reads the same tree */
	tagmem_tag t;
	char *path = NULL;
	assert_int_equal(tagmem_tag_parse(TAG, &t), 0);
	assert_int_equal(tagmem_resolve_tag(NULL, root, &t, &path), 0);
	assert_non_null(strstr(path, "/dev/dax0.0"));
	free(path);
	t.bytes[0] ^= 1;
	assert_int_equal(tagmem_resolve_tag(NULL, root, &t, &path), -ENOENT);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numbers),
		cmocka_unit_test(dotted_names),
		cmocka_unit_test(extent_generations),
		cmocka_unit_test(extent_garbage),
		cmocka_unit_test(scan_skips_bad_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
