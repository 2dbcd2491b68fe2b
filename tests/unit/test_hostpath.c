/* Unit tests: the host path's parsers on fixture trees and recorded text — DCD partitions of
 * every generation, trace records of both generations (and broken ones), and the device→tag
 * walk the udev helper does for NVDIMM namespaces and CXL dax devices. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dcd.h"
#include "fixture.h"
#include "nd.h"
#include "view.h"

#define TAG "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"

static void link_at(const char *root, const char *target, const char *path)
{
	char full[PATH_MAX];

	snprintf(full, sizeof(full), "%s/%s", root, path);
	if (symlink(target, full) < 0)
		abort();
}

/* A dax region as the kernel lays it out: a child of its CXL region, linked from the bus. */
static void make_region(const char *root, unsigned id, const char *mode, const char *tagattr)
{
	char path[256], target[128];

	snprintf(path, sizeof(path), "sys/devices/platform/region%u/mode", id);
	fixture_put(root, path, mode);
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/dax_region/seed", id, id);
	fixture_put(root, path, "dax0.1\n");
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.0/offset", id, id, id);
	fixture_put(root, path, "0x0\n");
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.0/length", id, id, id);
	fixture_put(root, path, "0x10000000\n");
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/extent%u.0/%s", id, id, id, tagattr);
	fixture_put(root, path, TAG "\n");
	fixture_put(root, "sys/bus/cxl/devices/.keep", "");
	snprintf(target, sizeof(target), "../../../devices/platform/region%u/dax_region%u", id, id);
	snprintf(path, sizeof(path), "sys/bus/cxl/devices/dax_region%u", id);
	link_at(root, target, path);
}

static void partitions_of_every_generation(void **state)
{
	static const struct { const char *mode, *attr; bool dynamic; } gens[] = {
		{ "dc0\n", "tag", true },            /* v1–v8 */
		{ "dc7\n", "tag", true },
		{ "dynamic_ram_a\n", "uuid", true }, /* v9/v10 */
		{ "dynamic_ram_1\n", "uuid", true }, /* v11 */
		{ "ram\n", "uuid", false },
		{ "pmem\n", "uuid", false },
	};
	char *root = fixture_dir();
	struct dcd_snapshot snap;
	struct sysfs *s;

	for (unsigned i = 0; i < sizeof(gens) / sizeof(gens[0]); i++)
		make_region(root, i, gens[i].mode, gens[i].attr);
	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(dcd_scan(s, &snap), 0);
	assert_int_equal(snap.nregions, 6);
	assert_int_equal(snap.nextents, 6);
	for (unsigned i = 0; i < snap.nregions; i++) {
		unsigned id = snap.regions[i].id;
		char want[24];
		snprintf(want, sizeof(want), "%.*s", (int)strcspn(gens[id].mode, "\n"), gens[id].mode);
		assert_string_equal(snap.regions[i].partition, want);
		assert_int_equal(dcd_partition_is_dynamic(snap.regions[i].partition), gens[id].dynamic);
	}
	for (unsigned i = 0; i < snap.nextents; i++)
		assert_true(snap.extents[i].tagged); /* "tag" and "uuid" read alike */
	dcd_snapshot_clear(&snap);
	assert_false(dcd_partition_is_dynamic("dc"));
	assert_false(dcd_partition_is_dynamic("dc1x"));
	assert_false(dcd_partition_is_dynamic("dynamic_ram_b"));
	assert_false(dcd_partition_is_dynamic(""));
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

/* Recorded trace_pipe lines: the v9+ shape and the earlier region_id shape. */
static const char *v9_add =
	"  kworker/u8:3-120     [001] .....  1043.101: cxl_dynamic_capacity: memdev=mem0 "
	"host=0000:0d:00.0 serial=0 log=Informational : time=1043101 "
	"uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 flags='' handle=0 related_handle=0 "
	"maint_op_class=0 : event_type='Add capacity' host_id='0' updated_region_index='255' "
	"starting_dpa=10000000 length=20000000 tag=" TAG " shared_extent_sequence=0";
static const char *v3_release =
	"  irq/27-cxl-7 [000] ..... 88.5: cxl_dynamic_capacity: memdev=mem1 host=0000:0e:00.0 "
	"serial=3 log=Informational : time=88 uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 "
	"flags='' handle=1 related_handle=0 maint_op_class=0 : event_type='Release capacity' "
	"host_id='0' region_id='0' starting_dpa=0 length=200000 "
	"tag=00000000-0000-0000-0000-000000000000 shared_extent_sequence=7";

static void trace_records(void **state)
{
	struct dcd_event ev;
	tagmem_tag want;

	assert_int_equal(dcd_trace_parse(v9_add, &ev), 0);
	assert_int_equal(ev.type, DCD_EVENT_ADD);
	assert_true(ev.dpa_start == 0x10000000);
	assert_true(ev.length == 0x20000000);
	assert_true(ev.tagged);
	assert_int_equal(tagmem_tag_parse(TAG, &want), 0);
	assert_int_equal(tagmem_tag_compare(&ev.tag, &want), 0); /* not the header's uuid */

	assert_int_equal(dcd_trace_parse(v3_release, &ev), 0);
	assert_int_equal(ev.type, DCD_EVENT_RELEASE);
	assert_false(ev.tagged);
	assert_int_equal(ev.sh_extent_seq, 7);
}

static void trace_garbage(void **state)
{
	struct dcd_event ev;
	char buf[1024];

	assert_int_equal(dcd_trace_parse("  bash-1 [000] 1.0: sched_switch: prev=a", &ev), -ENOMSG);
	/* truncated anywhere before the end of the tag: refused (the sequence number after it
	 * is optional, so cuts inside it may parse) */
	size_t tag_end = (size_t)(strstr(v9_add, " shared_extent_sequence") - v9_add);
	for (size_t n = 0; n < tag_end; n++) {
		int r;
		snprintf(buf, sizeof(buf), "%.*s", (int)n, v9_add);
		r = dcd_trace_parse(buf, &ev);
		assert_true(r == -ENOMSG || r == -EBADMSG);
	}
	assert_int_equal(dcd_trace_parse("cxl_dynamic_capacity: event_type='Bogus' starting_dpa=0 "
					 "length=1 tag=" TAG, &ev), -EBADMSG);
	assert_int_equal(dcd_trace_parse("cxl_dynamic_capacity: event_type='Add capacity' "
					 "starting_dpa=zz length=1 tag=" TAG, &ev), -EBADMSG);
	assert_int_equal(dcd_trace_parse("cxl_dynamic_capacity: event_type='Add capacity' "
					 "starting_dpa=0 length=1 tag=not-a-uuid", &ev), -EBADMSG);
	assert_int_equal(dcd_trace_parse("cxl_dynamic_capacity: event_type='Add capacity' "
					 "starting_dpa=0 length=1 tag=" TAG " shared_extent_sequence=99999",
					 &ev), -EBADMSG);
	assert_int_equal(dcd_trace_parse("cxl_dynamic_capacity: event_type='Add capacity", &ev),
			 -EBADMSG);
}

#define NS "sys/devices/ndbus0/region0/namespace0.0"

static void device_tags(void **state)
{
	char *root = fixture_dir();
	struct view_tag t;
	struct sysfs *s;
	tagmem_tag want;

	/* raw namespace with a label uuid, its block device as a child */
	fixture_put(root, NS "/uuid", TAG "\n");
	fixture_put(root, NS "/alt_name", "tagmem-raw\n");
	fixture_put(root, NS "/size", "33554432\n");
	fixture_put(root, NS "/mode", "raw\n");
	fixture_put(root, NS "/holder", "\n");
	fixture_put(root, NS "/block/pmem0/size", "65536\n");
	fixture_put(root, "sys/bus/nd/devices/.keep", "");
	link_at(root, "../../../devices/ndbus0/region0/namespace0.0", "sys/bus/nd/devices/namespace0.0");
	/* devdax: dax0.0 under the nd dax device that names its namespace */
	fixture_put(root, "sys/devices/ndbus0/region1/namespace1.0/uuid", "11111111-2222-4333-8444-555555555555\n");
	fixture_put(root, "sys/devices/ndbus0/region1/namespace1.0/size", "33554432\n");
	fixture_put(root, "sys/devices/ndbus0/region1/namespace1.0/alt_name", "tagmem-dax\n");
	fixture_put(root, "sys/devices/ndbus0/region1/namespace1.0/holder", "dax1.0\n");
	fixture_put(root, "sys/devices/ndbus0/region1/dax1.0/namespace", "namespace1.0\n");
	fixture_put(root, "sys/devices/ndbus0/region1/dax1.0/dax1.0/size", "31457280\n");
	link_at(root, "../../../devices/ndbus0/region1/namespace1.0", "sys/bus/nd/devices/namespace1.0");
	link_at(root, "../../../devices/ndbus0/region1/dax1.0", "sys/bus/nd/devices/dax1.0");
	/* label-less (io) namespace: no uuid attribute */
	fixture_put(root, "sys/devices/ndbus0/region2/namespace2.0/size", "67108864\n");
	fixture_put(root, "sys/devices/ndbus0/region2/namespace2.0/block/pmem2/size", "131072\n");
	/* a CXL DCD dax device carrying the tag it claimed */
	fixture_put(root, "sys/devices/cxl/dax_region4/dax4.1/size", "268435456\n");
	fixture_put(root, "sys/bus/dax/devices/.keep", "");
	fixture_put(root, "sys/devices/cxl/dax_region4/dax4.1/uuid", TAG "\n");
	link_at(root, "../../../devices/cxl/dax_region4/dax4.1", "sys/bus/dax/devices/dax4.1");
	/* ...holding exactly the extents of its tag (the same tag as the raw namespace: the DCD
	 * capacity wins, the namespace is only a second name for it) */
	make_region(root, 4, "dynamic_ram_a\n", "uuid");

	assert_int_equal(sysfs_open(root, &s), 0);
	assert_int_equal(tagmem_tag_parse(TAG, &want), 0);
	/* the namespace's uuid is a DCD tag's: the DCD device carries it, not pmem0 */
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t),
			 -ENODATA);
	fixture_put(root, NS "/uuid", "22222222-2222-4333-8444-555555555555\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t), 0);
	assert_int_equal(t.kind, ND_KIND_PMEM);
	assert_int_equal(t.source, VIEW_SOURCE_NVDIMM);
	assert_string_equal(t.ns, "namespace0.0");

	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region1/dax1.0/dax1.0", &t), 0);
	assert_int_equal(t.kind, ND_KIND_DAX);
	assert_string_equal(t.ns, "namespace1.0");

	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region2/namespace2.0/block/pmem2", &t),
			 -ENODATA);
	assert_int_equal(view_device_tag(s, NULL, "/devices/cxl/dax_region4/dax4.1", &t), 0);
	assert_int_equal(t.source, VIEW_SOURCE_CXL);
	assert_int_equal(tagmem_tag_compare(&t.tag, &want), 0);
	assert_int_equal(view_device_tag(s, NULL, "/devices/nonexistent/pmem9", &t), -ENOENT);
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0", &t), -ENODATA);

	/* a garbage uuid is no identity */
	fixture_put(root, NS "/uuid", "not-a-uuid\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t),
			 -ENODATA);
	/* a link leading out of the tree is refused */
	link_at(root, "/etc", "sys/devices/escape");
	assert_int_equal(view_device_tag(s, NULL, "/devices/escape/pmem0", &t) < 0, 1);

	/* the namespace scan sees the tagged namespaces and their devices */
	fixture_put(root, NS "/uuid", "22222222-2222-4333-8444-555555555555\n");
	struct nd_namespace *ns;
	size_t n;
	assert_int_equal(nd_scan(s, &ns, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ns[0].device, "pmem0");
	assert_string_equal(ns[0].alt_name, "tagmem-raw");
	assert_string_equal(ns[1].device, "dax1.0");
	free(ns);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

/*
 * brokerd, daemonless lookup and the udev helper answer "which device carries this tag"
 * with one rule (libtagmem's view). Before, lookup and the helper named a DCD device whose
 * size did not match its tag's extents and a namespace the policy excludes; brokerd did not.
 */
static void one_rule_for_every_reader(void **state)
{
	static const char *other = "22222222-2222-4333-8444-555555555555";
	struct view_options all = { .nd_policy = VIEW_ND_ALL };
	char *root = fixture_dir(), want[PATH_MAX], *path = NULL;
	tagmem_tag dcd, ns;
	struct view_tag t;
	struct view v;
	struct sysfs *s;

	assert_int_equal(tagmem_tag_parse(TAG, &dcd), 0);
	assert_int_equal(tagmem_tag_parse(other, &ns), 0);
	/* a DCD tag of 256 MiB and a device that claimed it with 128 MiB (half-way, or lying) */
	make_region(root, 0, "dynamic_ram_a\n", "uuid");
	fixture_put(root, "sys/devices/cxl/dax_region0/dax0.1/size", "134217728\n");
	fixture_put(root, "sys/devices/cxl/dax_region0/dax0.1/uuid", TAG "\n");
	fixture_put(root, "sys/bus/dax/devices/.keep", "");
	link_at(root, "../../../devices/cxl/dax_region0/dax0.1", "sys/bus/dax/devices/dax0.1");
	/* a labelled namespace its owner named "other": not tagmem's by the default policy */
	fixture_put(root, NS "/uuid", "22222222-2222-4333-8444-555555555555\n");
	fixture_put(root, NS "/alt_name", "other\n");
	fixture_put(root, NS "/size", "33554432\n");
	fixture_put(root, NS "/holder", "\n");
	fixture_put(root, NS "/block/pmem0/size", "65536\n");
	fixture_put(root, "sys/bus/nd/devices/.keep", "");
	link_at(root, "../../../devices/ndbus0/region0/namespace0.0", "sys/bus/nd/devices/namespace0.0");
	assert_int_equal(sysfs_open(root, &s), 0);

	/* brokerd's backends: the tag exists, no device carries it; the namespace is not there */
	assert_int_equal(view_build(s, NULL, &v), 0);
	assert_non_null(view_find(&v, &dcd));
	assert_string_equal(view_find(&v, &dcd)->device, "");
	assert_null(view_find(&v, &ns));
	view_clear(&v);
	/* daemonless lookup and the udev helper say the same */
	assert_int_equal(tagmem_resolve_tag(NULL, root, &dcd, &path), -ENOENT);
	assert_int_equal(tagmem_resolve_tag(NULL, root, &ns, &path), -ENOENT);
	assert_int_equal(view_device_tag(s, NULL, "/devices/cxl/dax_region0/dax0.1", &t), -ENODATA);
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0",
					 &t), -ENODATA);
	/* a policy that admits every namespace admits it for all readers alike */
	assert_int_equal(view_device_tag(s, &all, "/devices/ndbus0/region0/namespace0.0/block/pmem0",
					 &t), 0);
	assert_int_equal(view_build(s, &all, &v), 0);
	assert_string_equal(view_find(&v, &ns)->device, "pmem0");
	view_clear(&v);

	/* the claim completes: every reader names the device */
	fixture_put(root, "sys/devices/cxl/dax_region0/dax0.1/size", "268435456\n");
	assert_int_equal(view_build(s, NULL, &v), 0);
	assert_string_equal(view_find(&v, &dcd)->device, "dax0.1");
	assert_int_equal(view_find(&v, &dcd)->size, 256u << 20);
	view_clear(&v);
	assert_int_equal(tagmem_resolve_tag(NULL, root, &dcd, &path), 0);
	snprintf(want, sizeof(want), "%s/dev/dax0.1", root);
	assert_string_equal(path, want);
	free(path);
	assert_int_equal(view_device_tag(s, NULL, "/devices/cxl/dax_region0/dax0.1", &t), 0);
	assert_int_equal(tagmem_tag_compare(&t.tag, &dcd), 0);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

/* The default policy admits "tagmem" and "tagmem-…", not a name that merely begins so. */
static void namespace_names(void **state)
{
	static const struct { const char *name; bool admitted; } names[] = {
		{ "tagmem", true }, { "tagmem-raw", true }, { "tagmemEVIL", false },
		{ "tagme", false }, { "", false }, { "other", false },
	};
	struct nd_namespace ns = { .tagged = true };

	(void)state;
	tagmem_tag_parse("22222222-2222-4333-8444-555555555555", &ns.tag);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(ns.alt_name, sizeof(ns.alt_name), "%s", names[i].name);
		assert_int_equal(view_namespace_admitted(&ns, VIEW_ND_TAGMEM), names[i].admitted);
		assert_true(view_namespace_admitted(&ns, VIEW_ND_ALL));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(partitions_of_every_generation),
		cmocka_unit_test(trace_records),
		cmocka_unit_test(trace_garbage),
		cmocka_unit_test(device_tags),
		cmocka_unit_test(one_rule_for_every_reader),
		cmocka_unit_test(namespace_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
