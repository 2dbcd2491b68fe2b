/* Unit tests: the slot map (which tag the hypervisor put in which nvdimm slot) from an SMBIOS
 * OEM-strings structure and from the guest agent's file, hostile forms of both, and the view
 * rule that names a label-less namespace by its DIMM's slot. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "fixture.h"
#include "qemu.h"
#include "slots.h"
#include "view.h"

#define T0 "d0d0d0d0-1111-4222-8333-444444444444"
#define T1 "5a5a5a5a-1111-4222-8333-444444444444"

/* An OEM-strings structure: header (type 11, length 5, handle, count) and the strings. */
static size_t oem(uint8_t *buf, unsigned count, const char *const *strings, size_t n)
{
	size_t len = 5;

	buf[0] = 11, buf[1] = 5, buf[2] = 0, buf[3] = 0x0e, buf[4] = (uint8_t)count;
	for (size_t i = 0; i < n; i++) {
		memcpy(buf + len, strings[i], strlen(strings[i]) + 1);
		len += strlen(strings[i]) + 1;
	}
	buf[len++] = 0;
	return len;
}

static void tag_is(const tagmem_tag *t, const char *want)
{
	char s[TAGMEM_TAG_STRING_MAX];

	assert_non_null(t);
	assert_string_equal(tagmem_tag_format(t, s), want);
}

static void firmware_strings(void **state)
{
	const char *const good[] = { "vendor=thing", "tagmem.nvdimm.0=" T0, "tagmem.nvdimm.17=" T1 };
	uint8_t buf[512];
	struct slot_map m;
	size_t len;

	(void)state;
	slot_map_init(&m);
	len = oem(buf, 3, good, 3);
	assert_int_equal(slot_map_parse_oem(&m, buf, len), 2);
	tag_is(slot_map_get(&m, 0), T0);
	tag_is(slot_map_get(&m, 17), T1);
	assert_null(slot_map_get(&m, 1));
	assert_null(slot_map_get(&m, 256));

	/* what qemu-args emits is what the guest parses */
	{
		struct qemu_dev_spec spec = { .mem_path = "/dev/dax0.1", .size = 1 << 21, .slot = 9 };
		char arg[QEMU_ARG_MAX];
		const char *s;

		tagmem_tag_parse(T1, &spec.tag);
		assert_int_equal(qemu_smbios_build(&spec, arg, sizeof(arg)), 0);
		assert_string_equal(arg, "type=11,value=tagmem.nvdimm.9=" T1);
		s = arg + strlen("type=11,value=");
		len = oem(buf, 1, &s, 1);
		slot_map_init(&m); /* T1 is at slot 17 above: one tag at two slots names neither */
		assert_int_equal(slot_map_parse_oem(&m, buf, len), 1);
		tag_is(slot_map_get(&m, 9), T1);
		spec.labelled = true; /* a label names it already */
		assert_int_equal(qemu_smbios_build(&spec, arg, sizeof(arg)), -EINVAL);
	}
}

static void hostile_firmware(void **state)
{
	const char *const bad_slot[] = { "tagmem.nvdimm.256=" T0 };
	const char *const lead_zero[] = { "tagmem.nvdimm.01=" T0 };
	const char *const short_tag[] = { "tagmem.nvdimm.1=d0d0d0d0" };
	const char *const null_tag[] = { "tagmem.nvdimm.1=00000000-0000-0000-0000-000000000000" };
	const char *const mixed[] = { "tagmem.nvdimm.2=" T0, "tagmem.nvdimm.3=" T0 "x" };
	const char *const twice[] = { "tagmem.nvdimm.4=" T0, "tagmem.nvdimm.4=" T1 };
	uint8_t buf[512];
	struct slot_map m;
	size_t len;

	(void)state;
	slot_map_init(&m);
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 1, bad_slot, 1)), -EBADMSG);
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 1, lead_zero, 1)), -EBADMSG);
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 1, short_tag, 1)), -EBADMSG);
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 1, null_tag, 1)), -EBADMSG);
	/* one bad string of ours spoils the structure: the good one is not taken either */
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 2, mixed, 2)), -EBADMSG);
	assert_null(slot_map_get(&m, 2));
	/* a count that disagrees with the strings, a missing NUL, a wrong type, too short */
	len = oem(buf, 2, bad_slot + 0, 0);
	assert_int_equal(slot_map_parse_oem(&m, buf, len), -EBADMSG);
	len = oem(buf, 1, twice, 1);
	assert_int_equal(slot_map_parse_oem(&m, buf, len - 2), -EBADMSG);
	buf[0] = 1;
	assert_int_equal(slot_map_parse_oem(&m, buf, len), -EBADMSG);
	assert_int_equal(slot_map_parse_oem(&m, buf, 3), -EBADMSG);
	buf[0] = 11, buf[1] = 200;
	assert_int_equal(slot_map_parse_oem(&m, buf, len), -EBADMSG);
	/* the same slot with two tags names nothing, and stays so */
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 2, twice, 2)), 2);
	assert_null(slot_map_get(&m, 4));
	assert_int_equal(slot_map_parse_oem(&m, buf, oem(buf, 1, twice, 1)), 1);
	assert_null(slot_map_get(&m, 4));
	for (unsigned i = 0; i < SLOT_MAP_SLOTS; i++)
		assert_null(slot_map_get(&m, i));
}

static void agent_file_lines(void **state)
{
	static const char good[] = "0 " T0 "\n12 " T1 "\n";
	static const char *const bad[] = {
		"0 " T0,                /* no newline: a torn write */
		"0  " T0 "\n",          /* two spaces */
		"-1 " T0 "\n",
		"0 " T0 "\n\n",         /* an empty line */
		"1000 " T0 "\n",
		"0x1 " T0 "\n",
	};
	struct slot_map m;

	(void)state;
	slot_map_init(&m);
	assert_int_equal(slot_map_parse_lines(&m, good, strlen(good)), 2);
	tag_is(slot_map_get(&m, 12), T1);
	/* the firmware named T1 at slot 12, the agent names it at slot 3: it names neither,
	 * as a slot named with two tags names nothing */
	{
		static const char moved[] = "3 " T1 "\n";

		assert_int_equal(slot_map_parse_lines(&m, moved, strlen(moved)), 1);
		assert_null(slot_map_get(&m, 12));
		assert_null(slot_map_get(&m, 3));
		tag_is(slot_map_get(&m, 0), T0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct slot_map e;

		slot_map_init(&e);
		assert_int_equal(slot_map_parse_lines(&e, bad[i], strlen(bad[i])), -EBADMSG);
		for (unsigned s = 0; s < SLOT_MAP_SLOTS; s++)
			assert_null(slot_map_get(&e, s));
	}
}

/* A guest's sysfs: a label-less nvdimm in slot `slot` as region R, raw namespace, pmemR. */
static void guest_dimm(const char *root, unsigned region, unsigned slot)
{
	char path[192], target[128], val[64];

	snprintf(path, sizeof(path), "sys/devices/ndbus0/region%u/namespace%u.0/size", region, region);
	fixture_put(root, path, "67108864\n");
	snprintf(path, sizeof(path), "sys/devices/ndbus0/region%u/namespace%u.0/block/pmem%u/size",
		 region, region, region);
	fixture_put(root, path, "131072\n");
	snprintf(path, sizeof(path), "sys/devices/ndbus0/region%u/mappings", region);
	fixture_put(root, path, "1\n");
	snprintf(path, sizeof(path), "sys/devices/ndbus0/region%u/mapping0", region);
	snprintf(val, sizeof(val), "nmem%u,0,67108864,0\n", region);
	fixture_put(root, path, val);
	snprintf(path, sizeof(path), "sys/devices/ndbus0/nmem%u/nfit/handle", region);
	snprintf(val, sizeof(val), "%#x\n", slot + 1); /* QEMU: handle = slot + 1 */
	fixture_put(root, path, val);
	fixture_put(root, "sys/bus/nd/devices/.keep", "");
	snprintf(target, sizeof(target), "../../../devices/ndbus0/region%u/namespace%u.0", region, region);
	snprintf(path, sizeof(path), "%s/sys/bus/nd/devices/namespace%u.0", root, region);
	assert_int_equal(symlink(target, path), 0);
	snprintf(target, sizeof(target), "../../../devices/ndbus0/region%u", region);
	snprintf(path, sizeof(path), "%s/sys/bus/nd/devices/region%u", root, region);
	assert_int_equal(symlink(target, path), 0);
	snprintf(target, sizeof(target), "../../../devices/ndbus0/nmem%u", region);
	snprintf(path, sizeof(path), "%s/sys/bus/nd/devices/nmem%u", root, region);
	assert_int_equal(symlink(target, path), 0);
}

static void put_bytes(const char *root, const char *path, const void *data, size_t len)
{
	char full[PATH_MAX];
	FILE *f;

	fixture_put(root, path, "");
	snprintf(full, sizeof(full), "%s/%s", root, path);
	f = fopen(full, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void view_names_labelless_dimms(void **state)
{
	const char *const strings[] = { "tagmem.nvdimm.3=" T0 };
	const struct view_options none = { .nd_policy = VIEW_ND_NONE };
	char *root = fixture_dir();
	struct view_tag t;
	struct sysfs *s;
	uint8_t buf[256];

	(void)state;
	guest_dimm(root, 0, 3);
	guest_dimm(root, 1, 5);
	assert_int_equal(sysfs_open(root, &s), 0);
	/* no table: a label-less namespace names nothing */
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t),
			 -ENODATA);
	/* the firmware names slot 3: region0's DIMM */
	put_bytes(root, "sys/firmware/dmi/entries/11-0/raw", buf, oem(buf, 1, strings, 1));
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t), 0);
	tag_is(&t.tag, T0);
	assert_true(t.from_slot);
	assert_int_equal(t.source, VIEW_SOURCE_NVDIMM);
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region1/namespace1.0/block/pmem1", &t),
			 -ENODATA);
	assert_int_equal(view_device_tag(s, &none, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t),
			 -ENODATA);
	/* the agent's file names slot 5 (hot plug) */
	fixture_put(root, SLOT_MAP_FILE, "5 " T1 "\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region1/namespace1.0/block/pmem1", &t), 0);
	tag_is(&t.tag, T1);
	/* ... and if it disagrees with the firmware about slot 3, slot 3 names nothing */
	fixture_put(root, SLOT_MAP_FILE, "5 " T1 "\n3 " T1 "\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region0/namespace0.0/block/pmem0", &t),
			 -ENODATA);
	/* an interleaved region (two mappings) has no single slot */
	fixture_put(root, SLOT_MAP_FILE, "5 " T1 "\n");
	fixture_put(root, "sys/devices/ndbus0/region1/mappings", "2\n");
	assert_int_equal(view_device_tag(s, NULL, "/devices/ndbus0/region1/namespace1.0/block/pmem1", &t),
			 -ENODATA);
	sysfs_close(s);
	fixture_rm(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(firmware_strings),
		cmocka_unit_test(hostile_firmware),
		cmocka_unit_test(agent_file_lines),
		cmocka_unit_test(view_names_labelless_dimms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
