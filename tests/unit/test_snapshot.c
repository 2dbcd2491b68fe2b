/* Unit tests: the save file's header (brokerd/snapshot/format.c) — layout, round trip, and
 * every kind of damage a reader must refuse — the order-free chunk checksum, pause marks
 * (pausemark.c): written, read back, and everything else in their directory refused; a
 * checkpoint increment's header and range table (increment.c), and which pages the harvest
 * (dirty.c) counts as written on whatever kernel this runs on. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot.h"

#define MB (1ull << 20)

static void header(struct snap_header *h)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->vm, "vm1");
	h->nentries = 2;
	tagmem_tag_parse("6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", &h->e[0].tag);
	tagmem_tag_parse("11111111-2222-4333-8444-555555555555", &h->e[1].tag);
	h->e[0].size = 512 * MB;
	h->e[1].size = 34 * MB + 4096;
	h->e[0].checksum = 0x1234;
	h->devstate_length = 318270;
	h->created = 1790000000;
}

static void round_trip(void **state)
{
	uint8_t buf[SNAP_HEADER_SIZE];
	struct snap_header h, back;

	(void)state;
	header(&h);
	assert_int_equal(snap_layout(&h), 2 * MB + 512 * MB + 36 * MB + 2 * MB);
	assert_int_equal(h.e[0].file_offset, 2 * MB);            /* after the padded header */
	assert_int_equal(h.e[1].file_offset, 514 * MB);
	assert_int_equal(h.devstate_offset, 550 * MB);           /* 2 MiB aligned */
	snap_header_build(&h, buf);
	assert_memory_equal(buf, "TAGMEMVM", 8);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &back), 0);
	assert_string_equal(back.vm, "vm1");
	assert_int_equal(back.nentries, 2);
	assert_int_equal(back.e[1].size, 34 * MB + 4096);
	assert_int_equal(back.e[0].checksum, 0x1234);
	assert_int_equal(back.devstate_length, 318270);
	assert_memory_equal(back.e[1].tag.bytes, h.e[1].tag.bytes, 16);
}

/* Damage one thing at a time; the checksum is made right again where it would hide it. */
static void refuses_damage(void **state)
{
	struct snap_header h, out;
	uint8_t buf[SNAP_HEADER_SIZE];

	(void)state;
	header(&h);
	snap_layout(&h);
	snap_header_build(&h, buf);
	buf[200] ^= 1;                                            /* a flipped bit */
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	assert_int_equal(snap_header_parse(buf, 100, &out), -EBADMSG); /* short */

	h.e[1].file_offset = h.e[0].file_offset + MB;             /* overlapping */
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	snap_layout(&h);
	h.e[0].file_offset += 4096;                               /* not 2 MiB aligned */
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	snap_layout(&h);
	h.devstate_offset = h.e[1].file_offset;                   /* state over a backing */
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	snap_layout(&h);
	h.nentries = SNAP_MAX_ENTRIES + 1;                        /* too many */
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	header(&h);
	h.e[1].size = 4095;                                       /* not whole blocks */
	snap_layout(&h);
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	header(&h);
	memset(&h.e[0].tag, 0, 16);                               /* no tag */
	snap_layout(&h);
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	/* offsets that wrap past 2^64: the second region "ends" before the first begins, the
	 * device state past it; none may defeat the overlap check */
	header(&h);
	snap_layout(&h);
	h.e[1].file_offset = 0ull - 2 * MB;                       /* + size wraps to ~32 MiB */
	h.devstate_offset = 36 * MB;
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	header(&h);
	snap_layout(&h);
	h.devstate_offset = 0ull - 2 * MB;                        /* the device state at the end */
	snap_header_build(&h, buf);
	assert_int_equal(snap_header_parse(buf, sizeof(buf), &out), -EBADMSG);
}

/* Chunk sums add up the same in any order, and notice a changed or moved chunk. */
static void chunk_sums(void **state)
{
	static uint8_t a[8192], b[8192];
	uint64_t s1, s2;

	(void)state;
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 7), b[i] = (uint8_t)(i * 13);
	s1 = snap_chunk_sum(a, sizeof(a), 0) + snap_chunk_sum(b, sizeof(b), 1);
	s2 = snap_chunk_sum(b, sizeof(b), 1) + snap_chunk_sum(a, sizeof(a), 0);
	assert_int_equal(s1, s2);
	assert_true(s1 != snap_chunk_sum(b, sizeof(b), 0) + snap_chunk_sum(a, sizeof(a), 1));
	a[100] ^= 1;
	assert_true(s1 != snap_chunk_sum(a, sizeof(a), 0) + snap_chunk_sum(b, sizeof(b), 1));
}

struct seen {
	unsigned n;
	struct snap_pause p;
};

static void collect(void *userdata, const struct snap_pause *p)
{
	struct seen *s = userdata;

	s->n++;
	s->p = *p;
}

static void put(int dfd, const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void pause_marks(void **state)
{
	char dir[] = "/tmp/tagmem-marks.XXXXXX", big[2048];
	struct snap_pause p = { .vm = "vm-1", .uid = 1000, .qmp = "/run/vm-1.qmp", .qemu_pid = 4242 };
	struct seen seen = { 0 };
	int dfd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(snap_pause_mark(dfd, &p), 0);
	/* what else may lie there is not a mark: refused and removed, never resumed */
	put(dfd, "1000-other", "{not json");
	put(dfd, "1000-renamed", "{\"vm\":\"vm-1\",\"uid\":1000,\"qmp\":\"/q\",\"qemu_pid\":1}");
	put(dfd, "5-neg", "{\"vm\":\"neg\",\"uid\":5,\"qmp\":\"/q\",\"qemu_pid\":-1}");
	put(dfd, "5-rel", "{\"vm\":\"rel\",\"uid\":5,\"qmp\":\"q\",\"qemu_pid\":7}");
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put(dfd, "5-big", big);
	assert_int_equal(mkfifoat(dfd, "5-fifo", 0600), 0);
	put(dfd, ".1000-vm-2.new", "half a mark");
	assert_int_equal(snap_pause_marks(dfd, collect, &seen), 6);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.p.vm, "vm-1");
	assert_int_equal(seen.p.uid, 1000);
	assert_string_equal(seen.p.qmp, "/run/vm-1.qmp");
	assert_int_equal(seen.p.qemu_pid, 4242);
	/* the mark's name is the VM's own: nothing may escape the directory */
	strcpy(p.vm, "../x");
	assert_int_equal(snap_pause_mark(dfd, &p), -EINVAL);
	snap_pause_unmark(dfd, "vm-1", 1000);
	seen.n = 0;
	assert_int_equal(snap_pause_marks(dfd, collect, &seen), 0);
	assert_int_equal(seen.n, 0);
	close(dfd);
	assert_int_equal(rmdir(dir), 0); /* everything else was removed */
}

static void inc_header(struct snap_inc_header *h)
{
	memset(h, 0, sizeof(*h));
	strcpy(h->vm, "vm1");
	h->nentries = 2;
	tagmem_tag_parse("6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", &h->tag[0]);
	tagmem_tag_parse("11111111-2222-4333-8444-555555555555", &h->tag[1]);
	h->size[0] = 64 * MB;
	h->size[1] = 16 * MB;
	h->sequence = 3;
	h->parent = 0xfeedfacecafe;
	h->nranges = 200;            /* 4800 bytes of table: two pages */
	h->data_length = 5 * 4096;
	h->devstate_length = 10000;
}

static void increment_round_trip(void **state)
{
	uint8_t buf[SNAP_HEADER_SIZE];
	struct snap_inc_header h, back;

	(void)state;
	inc_header(&h);
	assert_int_equal(snap_inc_layout(&h), 4096 + 8192 + 5 * 4096 + 12288);
	assert_int_equal(h.data_offset, 4096 + 8192);
	assert_int_equal(h.devstate_offset, 4096 + 8192 + 5 * 4096);
	snap_inc_header_build(&h, buf);
	assert_memory_equal(buf, "TAGMEMVI", 8);
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &back), 0);
	assert_int_equal(back.sequence, 3);
	assert_int_equal(back.parent, 0xfeedfacecafe);
	assert_int_equal(back.size[1], 16 * MB);
	assert_memory_equal(back.tag[1].bytes, h.tag[1].bytes, 16);
	{
		uint64_t stored;

		memcpy(&stored, buf + SNAP_HEADER_SIZE - 8, 8);       /* what a child names */
		assert_int_equal(snap_header_digest(buf), le64toh(stored));
	}
	/* a base header is not an increment, nor the other way round */
	{
		struct snap_header base, bh;

		header(&base);
		snap_layout(&base);
		snap_header_build(&base, buf);
		assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &back), -EBADMSG);
		snap_inc_header_build(&h, buf);
		assert_int_equal(snap_header_parse(buf, sizeof(buf), &bh), -EBADMSG);
	}
}

static void increment_refuses_damage(void **state)
{
	struct snap_inc_header h, out;
	uint8_t buf[SNAP_HEADER_SIZE];

	(void)state;
	inc_header(&h);
	snap_inc_layout(&h);
	snap_inc_header_build(&h, buf);
	buf[200] ^= 1;                                            /* a flipped bit */
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	inc_header(&h);
	snap_inc_layout(&h);
	h.data_offset += 4096;                                    /* a layout the counts do not give */
	snap_inc_header_build(&h, buf);
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	inc_header(&h);
	h.sequence = 0;                                           /* the base's place */
	snap_inc_layout(&h);
	snap_inc_header_build(&h, buf);
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	inc_header(&h);
	h.size[1] = 4095;                                         /* not whole pages */
	snap_inc_layout(&h);
	snap_inc_header_build(&h, buf);
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &out), -EBADMSG);
	inc_header(&h);
	h.nranges = SNAP_INC_RANGES_MAX + 1ull;                   /* absurd counts */
	snap_inc_layout(&h);
	snap_inc_header_build(&h, buf);
	assert_int_equal(snap_inc_header_parse(buf, sizeof(buf), &out), -EBADMSG);
}

static int ranges_check(const struct snap_range *r, uint64_t n, uint64_t data)
{
	struct snap_inc_header h;
	struct snap_range back[8];
	uint8_t buf[8 * SNAP_RANGE_BYTES];

	inc_header(&h);
	h.data_length = data;
	snap_ranges_build(r, n, buf);
	return snap_ranges_parse(buf, n, &h, back, NULL);
}

static void ranges(void **state)
{
	const struct snap_range good[] = {
		{ .entry = 0, .offset = 0, .pages = 2 },
		{ .entry = 0, .offset = 8192, .pages = 1, .flags = SNAP_RANGE_ZERO },
		{ .entry = 1, .offset = 16 * MB - 4096, .pages = 1 },
	};
	struct snap_range bad[3];

	(void)state;
	assert_int_equal(ranges_check(good, 3, 3 * 4096), 0);
	assert_int_equal(ranges_check(good, 3, 4 * 4096), -EBADMSG);    /* data length differs */
	memcpy(bad, good, sizeof(good));
	bad[2].entry = 2;                                             /* no such entry */
	assert_int_equal(ranges_check(bad, 3, 3 * 4096), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[2].pages = 2;                                             /* past the backing */
	assert_int_equal(ranges_check(bad, 3, 4 * 4096), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[1].offset = 4096;                                         /* overlaps the one before */
	assert_int_equal(ranges_check(bad, 3, 3 * 4096), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[0].entry = 1;                                             /* out of order */
	bad[0].offset = 0;
	assert_int_equal(ranges_check(bad, 3, 3 * 4096), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[1].flags = 2;                                             /* an unknown flag */
	assert_int_equal(ranges_check(bad, 3, 3 * 4096), -EBADMSG);
	memcpy(bad, good, sizeof(good));
	bad[0].pages = 0;
	assert_int_equal(ranges_check(bad, 3, 1 * 4096), -EBADMSG);
}

/* The sum of a region in memory is the one a copy of it computes. */
static void region_sum_matches_copy(void **state)
{
	char path[] = "/tmp/tagmem-sum-XXXXXX";
	uint64_t len = SNAP_CHUNK * 2 + 12288;
	uint8_t *buf = malloc(len);
	int fd = mkstemp(path);
	struct snap_copy c = { .src = fd, .dst = -1, .len = len };
	char err[128];

	(void)state;
	assert_non_null(buf);
	assert_true(fd >= 0);
	for (uint64_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + (i >> 13));
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(snap_copy_run(&c, 1, 3, NULL, err, sizeof(err)), 0);
	assert_int_equal(c.checksum, snap_region_sum(buf, len));
	unlink(path);
	close(fd);
	free(buf);
}

/* Which pages the harvest counts as written, on this kernel: pages not mapped, and mapped
 * but not present (unless absent_clean), always; present pages only when soft-dirty says. */
static void harvest(void **state)
{
	char path[] = "/tmp/tagmem-dirty-XXXXXX";
	int fd = mkstemp(path);
	bool tracks = dirty_probe() == 0;
	struct dirty_proc p;
	struct stat st;
	uint64_t bits[1] = { 0 };
	uint8_t *m;
	uint64_t mapped = 0;
	volatile uint8_t sink;

	(void)state;
	/* the guest test says its kernel has soft-dirty: there, not tracking is a failure */
	if (getenv("TAGMEM_EXPECT_SOFT_DIRTY"))
		assert_true(tracks);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 16 * 4096), 0);
	assert_int_equal(fstat(fd, &st), 0);
	m = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); /* pages 0-7 only */
	assert_true(m != MAP_FAILED);
	assert_int_equal(dirty_open(getpid(), &p), 0);
	for (int i = 0; i < 4; i++)
		m[i * 4096] = 1;             /* in the page cache, written once */
	assert_int_equal(dirty_clear(&p), 0);
	for (int i = 0; i < 4; i++)
		sink = m[i * 4096];          /* present again (clear may write-protect), not written */
	m[4096] = 2;                         /* page 1 written after the clear */
	(void)sink;
	assert_int_equal(dirty_harvest(&p, st.st_dev, st.st_ino, 0, 16 * 4096, false, bits, &mapped),
			 0);
	assert_int_equal(mapped, 8 * 4096);
	/* 4-7 mapped but never touched (not present), 8-15 not mapped: dirty; 0, 2, 3 clean */
	assert_int_equal(bits[0], tracks ? 0xfff2 : 0xfff0);
	memset(bits, 0, sizeof(bits));
	assert_int_equal(dirty_harvest(&p, st.st_dev, st.st_ino, 0, 16 * 4096, true, bits, NULL), 0);
	assert_int_equal(bits[0], tracks ? 0xff02 : 0xff00); /* device DAX: absent pages are clean */
	dirty_close(&p);
	munmap(m, 8 * 4096);
	unlink(path);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(refuses_damage),
		cmocka_unit_test(chunk_sums),
		cmocka_unit_test(pause_marks),
		cmocka_unit_test(increment_round_trip),
		cmocka_unit_test(increment_refuses_damage),
		cmocka_unit_test(ranges),
		cmocka_unit_test(region_sum_matches_copy),
		cmocka_unit_test(harvest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
