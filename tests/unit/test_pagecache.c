/* Unit tests: the page-cache mechanisms against the real kernel and a real filesystem (the
 * build tree's: ext4 on these machines). Another process's mapping is a real fork. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dataplane.h"
#include "fixture.h"

#define MiB (1ull << 20)
#define FILE_SIZE (64 * MiB)

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 8];
	int fd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	/* TMPDIR when tests/run made one (a journaled ext4), else the build tree; never /tmp,
	 * which may be tmpfs, where there is no writeback to observe */
	snprintf(f->dir, sizeof(f->dir), "%s/pagecache.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : ".");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/img", f->dir);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (f->fd < 0 || ftruncate(f->fd, FILE_SIZE) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	close(f->fd);
	fixture_rm(f->dir);
	free(f);
	return 0;
}

static void fill(char *p, uint64_t len, char v)
{
	for (uint64_t i = 0; i < len; i += 4096)
		memset(p + i, v + (char)(i / 4096), 4096);
}

static bool ordered_fs(struct fx *f)
{
	if (pc_fs_commits_in_order(f->fd))
		return true;
	print_message("build tree is not ext4 with a journal or xfs: range durability not checked here\n");
	return false;
}

/* A range flush writes its range and nothing else: pages outside stay dirty. */
static void range_flush_leaves_the_rest_dirty(void **state)
{
	struct fx *f = *state;
	struct pc_counts in, out;
	int bfd, dfd;
	char *p;

	if (!ordered_fs(f))
		skip();
	p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	assert_true(p != MAP_FAILED);
	fill(p, FILE_SIZE, 'a');
	assert_int_equal(pc_write_range(f->fd, 8 * MiB, 8 * MiB), 0);
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	bfd = pc_barrier_open(dfd);
	assert_true(bfd >= 0);
	close(dfd);
	assert_int_equal(pc_barrier(bfd), 0);
	assert_int_equal(pc_cachestat(f->fd, 8 * MiB, 8 * MiB, &in), 0);
	assert_int_equal(in.dirty + in.writeback, 0);
	assert_int_equal(in.cached, 8 * MiB);
	assert_int_equal(pc_cachestat(f->fd, 16 * MiB, 48 * MiB, &out), 0);
	/* the kernel's own flusher may have started on some of it; most must still wait */
	assert_true(out.dirty + out.writeback > 40 * MiB);
	assert_int_equal(pc_cachestat(f->fd, 0, 8 * MiB, &out), 0);
	assert_true(out.dirty + out.writeback > 4 * MiB);
	close(bfd);
	munmap(p, FILE_SIZE);
}

/* Eviction reaches pages another process maps, and loses none of its writes. */
static void evict_reaches_another_process(void **state)
{
	struct fx *f = *state;
	struct evict_result ev;
	struct stat st;
	int ready[2], go[2];
	char c, *buf;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
		if (p == MAP_FAILED)
			_exit(1);
		fill(p, FILE_SIZE, 'k');
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(fstat(f->fd, &st), 0);

	assert_int_equal(evict_image(f->fd, st.st_dev, st.st_ino, "/proc", 16 * MiB, NULL, 0,
				     &ev), 0);
	assert_false(ev.writeback_failed);
	assert_int_equal(ev.before.cached, FILE_SIZE);
	assert_true(ev.after.cached <= 16 * MiB);
	assert_true(ev.after.cached > 0); /* it stops at the budget, not at zero */

	/* every byte the child wrote is still the file's content */
	buf = malloc(FILE_SIZE);
	assert_int_equal(pread(f->fd, buf, FILE_SIZE, 0), FILE_SIZE);
	for (uint64_t i = 0; i < FILE_SIZE; i += 4096)
		assert_int_equal(buf[i], (char)('k' + (char)(i / 4096)));
	free(buf);
	assert_int_equal(write(go[1], "g", 1), 1);
	waitpid(pid, NULL, 0);
	close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
}

/* Ranges the guest named go first; what it did not name stays while they suffice. */
static void evict_prefers_named_ranges(void **state)
{
	struct fx *f = *state;
	const struct dp_range prefer[] = { { 48 * MiB, 16 * MiB }, { 8 * MiB, 8 * MiB } };
	struct evict_result ev;
	struct pc_counts c;
	struct stat st;
	char *p;

	p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
	assert_true(p != MAP_FAILED);
	fill(p, FILE_SIZE, 'h'); /* dirty */
	munmap(p, FILE_SIZE);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(evict_image(f->fd, st.st_dev, st.st_ino, "/proc", 40 * MiB, prefer, 2,
				     &ev), 0);
	assert_true(ev.after.cached <= 40 * MiB && ev.after.cached >= 36 * MiB);
	assert_int_equal(pc_cachestat(f->fd, 48 * MiB, 16 * MiB, &c), 0);
	assert_int_equal(c.cached, 0);                 /* the first range named: gone */
	assert_int_equal(pc_cachestat(f->fd, 0, 8 * MiB, &c), 0);
	assert_int_equal(c.cached, 8 * MiB);           /* not named, and not needed: kept */
	assert_int_equal(pc_cachestat(f->fd, 16 * MiB, 32 * MiB, &c), 0);
	assert_int_equal(c.cached, 32 * MiB);
	p = malloc(FILE_SIZE);                         /* nothing written was lost */
	assert_int_equal(pread(f->fd, p, FILE_SIZE, 0), FILE_SIZE);
	for (uint64_t i = 0; i < FILE_SIZE; i += 4096)
		assert_int_equal(p[i], (char)('h' + (char)(i / 4096)));
	free(p);
}

/* The eviction stops at its target even where the cached pages are not spread evenly: a
 * range whose first quarter is all that is cached must not lose the whole quarter when only
 * half of it is over the target. */
static void evict_stops_at_target_on_uneven_ranges(void **state)
{
	struct fx *f = *state;
	const struct dp_range prefer[] = { { 0, 32 * MiB } };
	struct evict_result ev;
	struct pc_counts c;
	struct stat st;
	char *p;

	p = malloc(FILE_SIZE);
	fill(p, FILE_SIZE, 'u');
	assert_int_equal(pwrite(f->fd, p, FILE_SIZE, 0), FILE_SIZE);
	free(p);
	assert_int_equal(fsync(f->fd), 0);
	/* cached: [0, 8M) and [32M, 48M) only (clean and unmapped: the rest can be dropped) */
	assert_int_equal(posix_fadvise(f->fd, 8 * MiB, 24 * MiB, POSIX_FADV_DONTNEED), 0);
	assert_int_equal(posix_fadvise(f->fd, 48 * MiB, 16 * MiB, POSIX_FADV_DONTNEED), 0);
	assert_int_equal(pc_cachestat(f->fd, 0, 0, &c), 0);
	assert_int_equal(c.cached, 24 * MiB);
	assert_int_equal(fstat(f->fd, &st), 0);
	/* 4 MiB over the target, all of it to come from [0, 32M), whose cached pages are its
	 * first 8 MiB: a guess by the range's average density takes [0, 16M), all 8 MiB */
	assert_int_equal(evict_image(f->fd, st.st_dev, st.st_ino, "/proc", 20 * MiB, prefer, 1,
				     &ev), 0);
	assert_int_equal(pc_cachestat(f->fd, 0, 0, &c), 0);
	assert_true(c.cached >= 20 * MiB - 4096 && c.cached <= 20 * MiB);
	assert_int_equal(pc_cachestat(f->fd, 32 * MiB, 16 * MiB, &c), 0);
	assert_int_equal(c.cached, 16 * MiB);          /* not named, not needed: kept */
}

/* The mapping finder sees the child's mapping, with its file offset. */
static void finds_mappings(void **state)
{
	struct fx *f = *state;
	struct pc_mapping *maps = NULL;
	size_t n = 0;
	struct stat st;
	int ready[2], go[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	if (pid == 0) {
		if (mmap(NULL, 4 * MiB, PROT_READ, MAP_SHARED, f->fd, 8 * MiB) == MAP_FAILED)
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(pc_find_mappings("/proc", st.st_dev, st.st_ino, &maps, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(maps[0].pid, pid);
	assert_int_equal(maps[0].file_off, 8 * MiB);
	assert_int_equal(maps[0].end - maps[0].start, 4 * MiB);
	free(maps);
	assert_int_equal(write(go[1], "g", 1), 1);
	waitpid(pid, NULL, 0);
	close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
}

/* /proc/PID/maps lines: real shapes, and what must not match. */
static void maps_lines(void **state)
{
	dev_t dev = makedev(0xfe, 0x01);
	struct pc_mapping m;

	assert_true(pc_parse_maps_line("7f0000000000-7f0000400000 rw-s 00800000 fe:01 1234    "
				       "/var/lib/tagmem/images/a b.img\n", dev, 1234, &m));
	assert_true(m.start == 0x7f0000000000ull && m.end == 0x7f0000400000ull);
	assert_true(m.file_off == 0x800000);
	/* another inode, another device, anonymous memory, garbage, inverted ranges */
	assert_false(pc_parse_maps_line("7f00-7f10 rw-s 0 fe:01 1235 /x\n", dev, 1234, &m));
	assert_false(pc_parse_maps_line("7f00-7f10 rw-s 0 fe:02 1234 /x\n", dev, 1234, &m));
	assert_false(pc_parse_maps_line("7f00-7f10 rw-p 0 00:00 0\n", dev, 0, &m) &&
		     makedev(0, 0) != dev);
	assert_false(pc_parse_maps_line("garbage\n", dev, 1234, &m));
	assert_false(pc_parse_maps_line("", dev, 1234, &m));
	assert_false(pc_parse_maps_line("7f10-7f00 rw-s 0 fe:01 1234 /x\n", dev, 1234, &m));
	assert_false(pc_parse_maps_line("7f00-7f10 rw-s 0 fe:01\n", dev, 1234, &m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(range_flush_leaves_the_rest_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(evict_reaches_another_process, setup, teardown),
		cmocka_unit_test_setup_teardown(evict_prefers_named_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(evict_stops_at_target_on_uneven_ranges, setup,
						teardown),
		cmocka_unit_test_setup_teardown(finds_mappings, setup, teardown),
		cmocka_unit_test(maps_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
