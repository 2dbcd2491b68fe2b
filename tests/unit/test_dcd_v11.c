/* Unit tests: the host path held against the DCD v11 kernel series' own sysfs layout and
 * trace format (dcd_v11.h says which source each fixture follows): extents tagged and
 * untagged, claimed devices and their mappings, trace records of every event type, and the
 * rescan that reads only what changed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dcd.h"
#include "dcd_v11.h"
#include "view.h"

#define TAG_A "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define TAG_B "11111111-2222-4333-8444-555555555555"
#define MiB (1ull << 20)

/* Region 0 (private): tag A in two extents, one untagged extent; region 1 (sharable): tag B.
 * dax0.1 claimed A (two mappings), dax0.2 claimed the untagged extent ("0"), dax0.0 is the
 * seed, dax1.1 claimed B. */
static char *v11_host(void)
{
	static const uint64_t a[] = { 0, 256 * MiB, 512 * MiB, 128 * MiB };
	static const uint64_t u[] = { 256 * MiB, 64 * MiB };
	static const uint64_t b[] = { 0, 32 * MiB };
	char *root = fixture_dir();

	v11_region(root, 0, false);
	v11_region(root, 1, true);
	v11_extent(root, 0, 0, 0, 256 * MiB, TAG_A);
	v11_extent(root, 0, 1, 256 * MiB, 64 * MiB, NULL);
	v11_extent(root, 0, 2, 512 * MiB, 128 * MiB, TAG_A);
	v11_extent(root, 1, 0, 0, 32 * MiB, TAG_B);
	v11_daxdev(root, 0, 0, NULL, NULL, 0);
	v11_daxdev(root, 0, 1, TAG_A, a, 2);
	v11_daxdev(root, 0, 2, NULL, u, 1);
	v11_daxdev(root, 1, 1, TAG_B, b, 1);
	return root;
}

static void extents_as_v11_prints_them(void **state)
{
	char *root = v11_host();
	struct dcd_snapshot snap;
	struct dcd_region rg;
	struct dcd_extent e;
	struct sysfs *s;

	(void)state;
	assert_int_equal(sysfs_open(root, &s), 0);
	/* "%#llx" offsets and lengths; the uuid of an untagged extent is hidden, not null */
	assert_int_equal(dcd_read_extent(s, 0, 2, &e), 0);
	assert_true(e.tagged);
	assert_int_equal(e.offset, 512 * MiB);
	assert_int_equal(e.length, 128 * MiB);
	assert_int_equal(dcd_read_extent(s, 0, 1, &e), 0);
	assert_false(e.tagged);
	/* the region's mode names the v11 partition, and it is dynamic capacity */
	assert_int_equal(dcd_read_region(s, 0, &rg), 0);
	assert_string_equal(rg.partition, "dynamic_ram_1");
	assert_true(dcd_partition_is_dynamic(rg.partition));
	assert_string_equal(rg.seed, "dax0.0");
	assert_int_equal(dcd_scan(s, &snap), 0);
	assert_int_equal(snap.nextents, 4);
	assert_int_equal(snap.ndevs, 4);
	assert_int_equal(snap.skipped, 0);
	dcd_snapshot_clear(&snap);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

/* The udev helper's question, answered from the device's own attributes: a device that
 * claimed a tag carries it; one that claimed an untagged extent ("0", uuid reads null) and
 * the seed carry nothing. */
static void devices_answer_for_themselves(void **state)
{
	char *root = v11_host(), path[PATH_MAX];
	tagmem_tag a, b;
	struct view_tag t;
	struct view v;
	struct sysfs *s;

	(void)state;
	assert_int_equal(tagmem_tag_parse(TAG_A, &a), 0);
	assert_int_equal(tagmem_tag_parse(TAG_B, &b), 0);
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.1", &t),
			 0);
	assert_int_equal(tagmem_tag_compare(&t.tag, &a), 0);
	assert_int_equal(t.size, 384 * MiB);
	assert_int_equal(t.nextents, 2);
	assert_false(t.shared);
	assert_string_equal(t.device, "dax0.1");
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region1/dax_region1/dax1.1", &t),
			 0);
	assert_int_equal(tagmem_tag_compare(&t.tag, &b), 0);
	assert_true(t.shared);
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.2", &t),
			 -ENODATA);
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.0", &t),
			 -ENODATA);
	/* the whole view agrees with each device's own answer */
	assert_int_equal(view_build(s, NULL, &v), 0);
	assert_int_equal(v.n, 2);
	assert_string_equal(view_find(&v, &a)->device, "dax0.1");
	assert_int_equal(view_find(&v, &a)->size, 384 * MiB);
	assert_string_equal(view_find(&v, &b)->device, "dax1.1");
	view_clear(&v);

	/* the answer costs the device's own attributes: an unreadable extent elsewhere in the
	 * region does not matter to it */
	fixture_put(root, "sys/devices/platform/region0/dax_region0/extent0.1/offset", "zz\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.1", &t),
			 0);
	/* mappings that do not add up to the device's size: caught half-way, or lying */
	fixture_put(root, "sys/devices/platform/region0/dax_region0/dax0.1/size", "268435456\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.1", &t),
			 -ENODATA);
	/* a mapping that ends before it starts is not the kernel's */
	fixture_put(root, "sys/devices/platform/region0/dax_region0/dax0.1/size", "402653184\n");
	fixture_put(root, "sys/devices/platform/region0/dax_region0/dax0.1/mapping1/end", "0x0\n");
	assert_true(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.1", &t) < 0);
	/* without mappings (older kernels, older fixtures) the region's extents decide */
	snprintf(path, sizeof(path), "rm -rf %s/sys/devices/platform/region0/dax_region0/dax0.1/mapping*",
		 root);
	assert_int_equal(system(path), 0);
	assert_int_equal(view_device_tag(s, NULL, "/devices/platform/region0/dax_region0/dax0.1", &t),
			 0);
	assert_int_equal(t.nextents, 2);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

/* Every event type, printed by v11's own format string, parses; the header's uuid (the
 * record type) is never taken for the extent's tag. */
static void trace_records_of_v11(void **state)
{
	char line[1024];
	struct dcd_event ev;
	tagmem_tag a;

	(void)state;
	assert_int_equal(tagmem_tag_parse(TAG_A, &a), 0);
	for (unsigned type = 0; type < 4; type++) {
		v11_trace_line(line, sizeof(line), type, 2, 0x40000000, 0x10000000, TAG_A, 3);
		assert_int_equal(dcd_trace_parse(line, &ev), 0);
		assert_int_equal(ev.type, type);
		assert_int_equal(ev.dpa_start, 0x40000000);
		assert_int_equal(ev.length, 0x10000000);
		assert_true(ev.tagged);
		assert_int_equal(tagmem_tag_compare(&ev.tag, &a), 0);
		assert_int_equal(ev.sh_extent_seq, 3);
	}
	/* an untagged extent prints the null UUID */
	v11_trace_line(line, sizeof(line), 0, 0, 0, 0x200000,
		       "00000000-0000-0000-0000-000000000000", 0);
	assert_int_equal(dcd_trace_parse(line, &ev), 0);
	assert_false(ev.tagged);
	/* cut anywhere inside the record's own fields: refused, never half-read */
	v11_trace_line(line, sizeof(line), 0, 0, 0x40000000, 0x10000000, TAG_A, 0);
	line[strstr(line, "tag=") - line + 12] = '\0';
	assert_int_equal(dcd_trace_parse(line, &ev), -EBADMSG);
}

/* brokerd's rescan reads what it has not read before, and only that. */
static void rescan_reads_only_changes(void **state)
{
	char *root = v11_host();
	struct dcd_cache_stats st;
	struct dcd_snapshot snap;
	struct dcd_cache *c;
	struct sysfs *s;

	(void)state;
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(dcd_cache_new(&c), 0);
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(snap.nextents, 4);
	assert_int_equal(st.read, 4);
	assert_int_equal(st.kept, 0);
	dcd_snapshot_clear(&snap);

	/* one extent added: one read */
	v11_extent(root, 1, 1, 32 * MiB, 32 * MiB, TAG_B);
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(snap.nextents, 5);
	assert_int_equal(st.read, 1);
	assert_int_equal(st.kept, 4);
	dcd_snapshot_clear(&snap);

	/* one removed: none read, and it is gone */
	fixture_rm_path(root, "sys/devices/platform/region0/dax_region0/extent0.1");
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(snap.nextents, 4);
	assert_int_equal(st.read, 0);
	dcd_snapshot_clear(&snap);

	/* the same name made again is another extent (the kernel reuses ids), read again even
	 * when no rescan saw it gone: made beside the old one, so the inode differs */
	v11_extent(root, 0, 9, 768 * MiB, 2 * MiB, TAG_A);
	fixture_rm_path(root, "sys/devices/platform/region0/dax_region0/extent0.2");
	fixture_mv(root, "sys/devices/platform/region0/dax_region0/extent0.9",
		   "sys/devices/platform/region0/dax_region0/extent0.2");
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(st.read, 1);
	assert_int_equal(snap.nextents, 4);
	for (size_t i = 0; i < snap.nextents; i++)
		if (snap.extents[i].region == 0 && snap.extents[i].id == 2)
			assert_int_equal(snap.extents[i].length, 2 * MiB);
	dcd_snapshot_clear(&snap);

	/* an extent caught half-made is skipped, not remembered, and read once it is whole */
	fixture_put(root, "sys/devices/platform/region0/dax_region0/extent0.7/offset", "0x0\n");
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(snap.skipped, 1);
	dcd_snapshot_clear(&snap);
	v11_extent(root, 0, 7, 1024 * MiB, 2 * MiB, NULL);
	assert_int_equal(dcd_cache_scan(s, c, &snap, &st), 0);
	assert_int_equal(snap.skipped, 0);
	assert_int_equal(st.read, 1);
	dcd_snapshot_clear(&snap);

	dcd_cache_free(c);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(extents_as_v11_prints_them),
		cmocka_unit_test(devices_answer_for_themselves),
		cmocka_unit_test(trace_records_of_v11),
		cmocka_unit_test(rescan_reads_only_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
