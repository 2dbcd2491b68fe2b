/* Unit tests: NVDIMM v1.1 namespace labels and QEMU arguments. The real kernel's acceptance
 * is the guest test's job; these pin the bytes and the refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "fixture.h"
#include "qemu.h"

#define TAG "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The cookie a guest computes for a QEMU nvdimm in slots 0..3 (slot 0 observed in a guest). */
static void cookies(void **state)
{
	assert_true(label_isetcookie(0) == 0x002468ac00123456ull);
	assert_true(label_isetcookie(1) == 0x002468ae00123457ull);
	assert_true(label_isetcookie(2) == 0x002468b000123458ull);
	assert_true(label_isetcookie(3) == 0x002468b200123459ull);
}

/* Independent fletcher64 of a known buffer: words 1,2,3 → lo = 6, hi = 1 + 3 + 6 = 10. */
static void fletcher(void **state)
{
	const uint8_t buf[12] = { 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0 };

	assert_true(label_fletcher64(buf, sizeof(buf)) == (10ull << 32 | 6));
}

/* The chain as the kernel writes it, word by word: the lane-parallel sum must equal it for
 * every length (whole lane groups, a tail, a trailing partial word) and any bytes, including
 * sums that wrap. */
static uint64_t fletcher_chain(const uint8_t *p, size_t len)
{
	uint32_t lo = 0, hi = 0;

	for (size_t i = 0; i + 4 <= len; i += 4) {
		lo += (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
		      (uint32_t)p[i + 3] << 24;
		hi += lo;
	}
	return (uint64_t)hi << 32 | lo;
}

static void fletcher_matches_the_chain(void **state)
{
	static uint8_t buf[3 * 4096 + 7];
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < sizeof(buf); i++) { /* xorshift: any bytes, reproducibly */
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	for (size_t len = 0; len <= 300; len++)
		assert_true(label_fletcher64(buf + 1, len) == fletcher_chain(buf + 1, len));
	assert_true(label_fletcher64(buf, sizeof(buf)) == fletcher_chain(buf, sizeof(buf)));
	memset(buf, 0xff, sizeof(buf)); /* every word and sum wraps */
	assert_true(label_fletcher64(buf, sizeof(buf)) == fletcher_chain(buf, sizeof(buf)));
}

static void build_pins_bytes(void **state)
{
	static uint8_t area[LABEL_AREA_SIZE];
	const uint8_t *idx0 = area, *idx1 = area + 256, *lbl = area + 512;
	tagmem_tag t;

	assert_int_equal(tagmem_tag_parse(TAG, &t), 0);
	for (unsigned slot = 0; slot < 4; slot++) {
		assert_int_equal(label_area_build(area, &t, "tagmem-x", slot, 48u << 20), 0);
		assert_memory_equal(idx0, "NAMESPACE_INDEX\0", 16);
		assert_int_equal(idx0[20], 3);           /* index 0: seq 3, everything free */
		assert_int_equal(idx1[20], 1);           /* index 1: seq 1 (newer), slot 0 used */
		assert_true(le64_at(idx1 + 24) == 256);  /* myoff */
		assert_true(le64_at(idx1 + 40) == 0);    /* otheroff */
		assert_true(le64_at(idx1 + 48) == 512);  /* labeloff */
		assert_int_equal(idx1[56] | idx1[57] << 8, 1020);
		assert_int_equal(idx1[60], 1);           /* major */
		assert_int_equal(idx1[62], 1);           /* minor */
		assert_int_equal(idx0[72], 0xff);
		assert_int_equal(idx1[72], 0xfe);
		assert_int_equal(idx1[72 + 127], 0x0f);  /* slots 1016..1019 free, 1020.. absent */
		/* checksums verify with the field zeroed */
		uint8_t copy[256];
		memcpy(copy, idx1, 256);
		memset(copy + 64, 0, 8);
		assert_true(label_fletcher64(copy, 256) == le64_at(idx1 + 64));
		/* the label */
		assert_memory_equal(lbl, t.bytes, 16);
		assert_memory_equal(lbl + 16, "tagmem-x\0", 9);
		assert_int_equal(lbl[84], 1);            /* nlabel */
		assert_true(le64_at(lbl + 88) == label_isetcookie(slot));
		assert_true(le64_at(lbl + 104) == 0);    /* dpa */
		assert_true(le64_at(lbl + 112) == 48u << 20);
	}
}

static void parse_round_trip_and_corruption(void **state)
{
	static uint8_t area[LABEL_AREA_SIZE];
	struct label_info li[2];
	tagmem_tag t;

	memset(area, 0, sizeof(area));
	assert_int_equal(label_area_parse(area, li, 2), 0); /* never initialised */
	assert_int_equal(tagmem_tag_parse(TAG, &t), 0);
	assert_int_equal(label_area_build(area, &t, "tagmem-y", 2, 32u << 20), 0);
	assert_int_equal(label_area_parse(area, li, 2), 1);
	assert_int_equal(tagmem_tag_compare(&li[0].tag, &t), 0);
	assert_string_equal(li[0].name, "tagmem-y");
	assert_true(li[0].isetcookie == label_isetcookie(2));
	assert_true(li[0].rawsize == 32u << 20);

	/* corrupt the current index: the older one (all free) takes over */
	area[256 + 100] ^= 0xff;
	assert_int_equal(label_area_parse(area, li, 2), 0);
	/* corrupt both: refused */
	area[100] ^= 0xff;
	assert_int_equal(label_area_parse(area, li, 2), -EBADMSG);
	/* a label that disowns its slot */
	assert_int_equal(label_area_build(area, &t, NULL, 0, 32u << 20), 0);
	area[512 + 120] = 5;
	assert_int_equal(label_area_parse(area, li, 2), -EBADMSG);
}

static void refusals(void **state)
{
	static uint8_t area[LABEL_AREA_SIZE];
	char name[80];
	tagmem_tag t, other, null_tag = { { 0 } };
	char *dir = fixture_dir(), path[PATH_MAX];
	int fd;

	assert_int_equal(tagmem_tag_parse(TAG, &t), 0);
	tagmem_tag_generate(&other);
	assert_int_equal(label_area_build(area, &t, "n", NVDIMM_MAX_SLOTS, 16u << 20), -EINVAL);
	assert_int_equal(label_area_build(area, &null_tag, "n", 0, 16u << 20), -EINVAL);
	assert_int_equal(label_area_build(area, &t, "n", 0, 17u << 20), -EINVAL);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(label_area_build(area, &t, name, 0, 16u << 20), -EINVAL);

	snprintf(path, sizeof(path), "%s/img", dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16u << 20), 0);                  /* no room after the tail */
	assert_int_equal(label_write_for_tag(fd, 16u << 20, &t, "n", 0), -ENOSPC);
	assert_int_equal(ftruncate(fd, (17u << 20) + (2u << 20)), 0);   /* data not 16 MiB-aligned */
	assert_int_equal(label_write_for_tag(fd, (17u << 20) + (2u << 20), &t, "n", 0), -EINVAL);
	uint64_t size = (32u << 20) + LABEL_TAIL;
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(label_write_for_tag(fd, size, &t, "n", 300), -EINVAL);
	assert_int_equal(label_write_for_tag(fd, size, &t, "tagmem", 0), 0);
	assert_int_equal(label_write_for_tag(fd, size, &t, "tagmem", 1), 0);   /* same tag: rewrite */
	assert_int_equal(label_write_for_tag(fd, size, &other, "tagmem", 0), -EEXIST);
	/* one damaged index block: the other is current and names our tag, so rewriting is fine */
	assert_int_equal(pwrite(fd, "garbage", 7, (off_t)(size - LABEL_AREA_SIZE)), 7);
	assert_int_equal(label_write_for_tag(fd, size, &t, "tagmem", 0), 0);
	/* both damaged: not ours to understand, so not ours to overwrite */
	assert_int_equal(pwrite(fd, "garbage", 7, (off_t)(size - LABEL_AREA_SIZE)), 7);
	assert_int_equal(pwrite(fd, "garbage", 7, (off_t)(size - LABEL_AREA_SIZE + 256)), 7);
	assert_int_equal(label_write_for_tag(fd, size, &t, "tagmem", 0), -EEXIST);
	close(fd);
	fixture_rm(dir);
	free(dir);
}

static void args(void **state)
{
	struct qemu_dev_spec spec = { .mem_path = "/var/lib/tagmem/images/a.img",
				      .size = 50u << 20, .labelled = true, .slot = 3 };
	char obj[256], dev[256];

	assert_int_equal(tagmem_tag_parse(TAG, &spec.tag), 0);
	assert_int_equal(qemu_args_build(&spec, obj, sizeof(obj), dev, sizeof(dev)), 0);
	assert_string_equal(obj, "memory-backend-file,id=tm-" TAG ",mem-path=/var/lib/tagmem/"
				 "images/a.img,size=52428800,share=on,align=2M");
	assert_string_equal(dev, "nvdimm,id=tmnv-" TAG ",memdev=tm-" TAG ",slot=3,label-size=128K");
	spec.labelled = false;
	spec.devdax = true;
	spec.mem_path = "/dev/dax0.0";
	assert_int_equal(qemu_args_build(&spec, obj, sizeof(obj), dev, sizeof(dev)), 0);
	assert_string_equal(obj, "memory-backend-file,id=tm-" TAG ",mem-path=/dev/dax0.0,"
				 "size=52428800,share=on,align=2M");
	assert_string_equal(dev, "nvdimm,id=tmnv-" TAG ",memdev=tm-" TAG ",slot=3");
	spec.mem_path = "/tmp/a,b";
	assert_int_equal(qemu_args_build(&spec, obj, sizeof(obj), dev, sizeof(dev)), -EINVAL);
	spec.mem_path = "/tmp/a";
	assert_int_equal(qemu_args_build(&spec, obj, 20, dev, sizeof(dev)), -ENAMETOOLONG);

	/* two tags that share their first 8 hex digits get different ids in one VM (QEMU
	 * refused such a pair with "Duplicate ID 'tm-11111111'") */
	char obj2[256], dev2[256], oid[QEMU_ID_MAX], did[QEMU_ID_MAX], oid2[QEMU_ID_MAX],
	     did2[QEMU_ID_MAX];
	struct qemu_dev_spec other = spec;
	assert_int_equal(tagmem_tag_parse("11111111-2222-4333-8444-000000000001", &spec.tag), 0);
	assert_int_equal(tagmem_tag_parse("11111111-2222-4333-8444-000000000002", &other.tag), 0);
	other.slot = 4;
	assert_int_equal(qemu_args_build(&spec, obj, sizeof(obj), dev, sizeof(dev)), 0);
	assert_int_equal(qemu_args_build(&other, obj2, sizeof(obj2), dev2, sizeof(dev2)), 0);
	qemu_ids(&spec.tag, false, oid, did);
	qemu_ids(&other.tag, false, oid2, did2);
	assert_string_not_equal(oid, oid2);
	assert_string_not_equal(did, did2);
	assert_non_null(strstr(obj, oid));
	assert_null(strstr(obj2, oid));
	/* the longest device line fits the documented size */
	spec.labelled = true;
	spec.slot = 31;
	assert_int_equal(qemu_args_build(&spec, obj, sizeof(obj), dev, QEMU_ARG_MAX), 0);
}

/* The devdax layout's info block, byte for byte where the guest kernel reads it. */
static void dax_info(void **state)
{
	uint8_t b[DAX_INFO_SIZE], copy[DAX_INFO_SIZE];
	tagmem_tag tag, dax, parent;
	uint64_t dataoff, sum;

	(void)state;
	tagmem_tag_parse("6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", &tag);
	tagmem_tag_parse("11111111-2222-4333-8444-555555555555", &dax);
	assert_int_equal(dax_info_build(b, DAX_INFO_DEVDAX, &tag, &dax, DAX_PREFIX + (32u << 20)), 0);
	assert_memory_equal(b, "NVDIMM_DAX_INFO\0", 16);
	assert_memory_equal(b + 16, dax.bytes, 16);
	assert_memory_equal(b + 32, tag.bytes, 16);          /* parent: the namespace = tag */
	assert_int_equal(b[52] | b[53] << 8, 1);              /* version 1.4 */
	assert_int_equal(b[54] | b[55] << 8, 4);
	assert_int_equal(b[56 + 3], 0x01);                    /* dataoff 16 MiB, little endian */
	assert_int_equal(b[64] | b[65] << 8 | b[66] << 16, (32u << 20) / 4096); /* npfns */
	assert_int_equal(b[72], 1);                           /* mode: page map in RAM */
	assert_int_equal(b[84 + 2], 0x20);                    /* align 2 MiB */
	assert_int_equal(b[88 + 1], 0x10);                    /* page size 4096 */
	assert_int_equal(b[92], 64);                          /* struct page */
	memcpy(copy, b, sizeof(copy));
	memset(copy + DAX_INFO_SIZE - 8, 0, 8);
	sum = label_fletcher64(copy, sizeof(copy));
	assert_memory_equal(b + DAX_INFO_SIZE - 8, &sum, 8);  /* x86: little endian */
	enum dax_info_kind kind;
	assert_int_equal(dax_info_parse(b, &parent, &dataoff, &kind), 0);
	assert_memory_equal(parent.bytes, tag.bytes, 16);
	assert_int_equal(dataoff, DAX_PREFIX);
	assert_int_equal(kind, DAX_INFO_DEVDAX);
	/* the fsdax layout: the same block under the pfn signature (a DAX-capable /dev/pmem) */
	assert_int_equal(dax_info_build(b, DAX_INFO_FSDAX, &tag, &dax, DAX_PREFIX + (32u << 20)), 0);
	assert_memory_equal(b, "NVDIMM_PFN_INFO\0", 16);
	assert_int_equal(b[72], 1);                           /* mode: page map in RAM */
	assert_int_equal(dax_info_parse(b, &parent, &dataoff, &kind), 0);
	assert_int_equal(kind, DAX_INFO_FSDAX);
	assert_int_equal(dataoff, DAX_PREFIX);
	assert_int_equal(dax_info_build(b, (enum dax_info_kind)7, &tag, &dax,
					DAX_PREFIX + (32u << 20)), -EINVAL);
	/* refusals and damage */
	assert_int_equal(dax_info_build(b, DAX_INFO_DEVDAX, &tag, &dax, DAX_PREFIX), -EINVAL);
	assert_int_equal(dax_info_build(b, DAX_INFO_DEVDAX, &tag, &dax, DAX_PREFIX + (2u << 20)), -EINVAL);
	memset(&parent, 0, sizeof(parent));
	assert_int_equal(dax_info_build(b, DAX_INFO_DEVDAX, &parent, &dax, DAX_PREFIX + (16u << 20)), -EINVAL);
	assert_int_equal(dax_info_build(b, DAX_INFO_DEVDAX, &tag, &dax, DAX_PREFIX + (16u << 20)), 0);
	b[100] ^= 1;
	assert_int_equal(dax_info_parse(b, &parent, &dataoff, NULL), -EBADMSG);
	memset(b, 0, sizeof(b));
	assert_int_equal(dax_info_parse(b, &parent, &dataoff, NULL), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cookies),
		cmocka_unit_test(fletcher),
		cmocka_unit_test(fletcher_matches_the_chain),
		cmocka_unit_test(build_pins_bytes),
		cmocka_unit_test(parse_round_trip_and_corruption),
		cmocka_unit_test(refusals),
		cmocka_unit_test(args),
		cmocka_unit_test(dax_info),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
