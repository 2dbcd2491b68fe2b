/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest-side crash-test helper: replay a dm-log-writes log onto a device, stopping at crash
 * points to run a check there, as if power had been cut at that point.
 *
 *   log_replay LOGDEV REPLAYDEV [--from-mark NAME] [--samples N] [--seed S] -- CMD [ARG…]
 *
 * The format is the kernel's (Documentation/admin-guide/device-mapper/log-writes.rst,
 * drivers/md/dm-log-writes.c): sector 0 of the log holds the super block
 *   { le64 magic = 0x6a736677736872, le64 version = 1, le64 nr_entries, le32 sectorsize }
 * and from sector 1 on (in units of sectorsize) come the entries, each one sector
 *   { le64 sector, le64 nr_sectors, le64 flags, le64 data_len } [mark text, data_len bytes]
 * followed, unless the entry is a discard or a mark, by nr_sectors sectors of the written data.
 * dm-log-writes logs a write only once a flush (or FUA) covered it, so the log is the order in
 * which writes became durable, and a mark sits after every write that was durable when it was
 * made.
 *
 * Crash points: after every mark (from --from-mark on), and after N flush or FUA entries
 * chosen at random between them (--samples, default 0; --seed makes the choice repeatable).
 * At each point the replay device is synced and CMD runs with
 *   LR_ENTRY   the index of the last entry applied
 *   LR_KIND    mark or flush
 *   LR_MARK    the last mark's text before (or at) this point
 * CMD exiting non-zero is a violation; the replay goes on to count them all. The last line is
 *   log_replay: entries E points P violations V
 * and the exit status 0 only when V = 0 and P > 0 (a replay that checked nothing fails).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_MAGIC 0x6a736677736872ull
#define LOG_VERSION 1
#define F_FLUSH (1u << 0)
#define F_FUA (1u << 1)
#define F_DISCARD (1u << 2)
#define F_MARK (1u << 3)

struct entry {
	uint64_t at;      /* byte offset of the entry's header in the log */
	uint64_t sector;  /* in sectorsize units, on the logged device */
	uint64_t nr;      /* sectors written (or discarded) */
	uint64_t flags;
	char mark[64];    /* a mark's text (truncated to what a check needs) */
	bool check;       /* a crash point */
};

static int logfd, devfd;
static uint32_t ssize;
static uint64_t log_size;

static void die(const char *what)
{
	fprintf(stderr, "log_replay: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void bad(const char *what, uint64_t idx)
{
	fprintf(stderr, "log_replay: entry %llu: %s\n", (unsigned long long)idx, what);
	exit(2);
}

static void read_at(void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(logfd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read log");
		if (n == 0) {
			errno = EIO;
			die("log ends early");
		}
		done += (size_t)n;
	}
}

static void write_at(const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(devfd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write replay device");
		done += (size_t)n;
	}
}

static uint64_t dev_size(int fd)
{
	struct stat st;
	uint64_t sz = 0;

	if (fstat(fd, &st) < 0)
		die("stat");
	if (S_ISREG(st.st_mode))
		return (uint64_t)st.st_size;
	if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
		die("BLKGETSIZE64");
	return sz;
}

/* Read every entry header: where it is, what it wrote, the marks' text. */
static struct entry *scan(uint64_t *count)
{
	unsigned char *sec = malloc(ssize);
	struct entry *v;
	uint64_t n, at = ssize;

	if (!sec)
		die("malloc");
	read_at(sec, ssize, 0);
	if (le64toh(*(uint64_t *)sec) != LOG_MAGIC || le64toh(*(uint64_t *)(sec + 8)) != LOG_VERSION)
		bad("the log's super block has the wrong magic or version", 0);
	n = le64toh(*(uint64_t *)(sec + 16));
	if (n == 0 || n > log_size / ssize)
		bad("the super block's entry count is impossible", 0);
	v = calloc(n, sizeof(*v));
	if (!v)
		die("calloc");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t data_len;

		if (at + ssize > log_size)
			bad("runs past the end of the log", i);
		read_at(sec, ssize, at);
		v[i].at = at;
		v[i].sector = le64toh(*(uint64_t *)sec);
		v[i].nr = le64toh(*(uint64_t *)(sec + 8));
		v[i].flags = le64toh(*(uint64_t *)(sec + 16));
		data_len = le64toh(*(uint64_t *)(sec + 24));
		at += ssize;
		if (v[i].flags & F_MARK) {
			if (data_len >= ssize - 32)
				bad("a mark longer than its sector", i);
			memcpy(v[i].mark, sec + 32, data_len < sizeof(v[i].mark) - 1 ?
							    data_len : sizeof(v[i].mark) - 1);
		} else if (data_len) {
			bad("inline data, which this kernel's log never holds", i);
		} else if (!(v[i].flags & F_DISCARD)) {
			if (v[i].nr > (log_size - at) / ssize)
				bad("its data runs past the end of the log", i);
			at += v[i].nr * ssize;
		}
	}
	free(sec);
	*count = n;
	return v;
}

static void choose_points(struct entry *v, uint64_t n, const char *from, unsigned samples)
{
	uint64_t first = 0, flushes = 0;

	if (from) {
		for (first = 0; first < n; first++)
			if ((v[first].flags & F_MARK) && !strcmp(v[first].mark, from))
				break;
		if (first == n) {
			fprintf(stderr, "log_replay: no mark '%s' in the log\n", from);
			exit(2);
		}
	}
	for (uint64_t i = first; i < n; i++) {
		if (v[i].flags & F_MARK)
			v[i].check = true;
		else if (v[i].flags & (F_FLUSH | F_FUA))
			flushes++;
	}
	/* samples: a uniform choice among the flush points, without repeats */
	for (unsigned s = 0; s < samples && flushes; s++) {
		uint64_t pick = (uint64_t)rand() % flushes, k = 0;

		for (uint64_t i = first; i < n; i++) {
			if ((v[i].flags & F_MARK) || !(v[i].flags & (F_FLUSH | F_FUA)))
				continue;
			if (k++ == pick) {
				if (v[i].check)
					break; /* chosen before: one fewer sample */
				v[i].check = true;
				break;
			}
		}
	}
}

static void apply(const struct entry *e, uint64_t idx, unsigned char **buf, size_t *cap)
{
	uint64_t off = e->sector * ssize, len = e->nr * ssize;
	static uint64_t devsz;

	if (!devsz)
		devsz = dev_size(devfd);
	if (!len)
		return;
	if (off > devsz || len > devsz - off)
		bad("writes past the end of the replay device", idx);
	if (e->flags & F_DISCARD) {
		uint64_t range[2] = { off, len };

		/* a discarded range reads back as anything; zeroes are what a check expects least */
		if (ioctl(devfd, BLKDISCARD, range) < 0 && ioctl(devfd, BLKZEROOUT, range) < 0)
			die("discard on the replay device");
		return;
	}
	if (len > *cap) {
		free(*buf);
		*cap = len;
		*buf = malloc(len);
		if (!*buf)
			die("malloc");
	}
	read_at(*buf, len, e->at + ssize);
	write_at(*buf, len, off);
}

static int run_check(char **cmd, uint64_t idx, const char *kind, const char *mark)
{
	char num[24];
	int status;
	pid_t pid;

	if (fsync(devfd) < 0)
		die("fsync replay device");
	snprintf(num, sizeof(num), "%llu", (unsigned long long)idx);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		setenv("LR_ENTRY", num, 1);
		setenv("LR_KIND", kind, 1);
		setenv("LR_MARK", mark, 1);
		close(logfd);
		close(devfd);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char **argv)
{
	const char *from = NULL, *mark = "";
	unsigned samples = 0, seed = 1;
	uint64_t n, points = 0, violations = 0;
	unsigned char *buf = NULL, *sec;
	size_t cap = 0;
	struct entry *v;
	int i;

	for (i = 3; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--from-mark") && i + 1 < argc)
			from = argv[++i];
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			samples = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = (unsigned)strtoul(argv[++i], NULL, 10);
		else
			break;
	}
	if (argc < 3 || i + 1 >= argc || strcmp(argv[i], "--")) {
		fputs("usage: log_replay LOGDEV REPLAYDEV [--from-mark NAME] [--samples N] "
		      "[--seed S] -- CMD [ARG...]\n", stderr);
		return 2;
	}
	logfd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (logfd < 0)
		die(argv[1]);
	devfd = open(argv[2], O_RDWR | O_CLOEXEC);
	if (devfd < 0)
		die(argv[2]);
	log_size = dev_size(logfd);
	/* the sector size is in the super block; read a minimal sector first to learn it */
	sec = malloc(512);
	if (!sec)
		die("malloc");
	read_at(sec, 512, 0);
	ssize = le32toh(*(uint32_t *)(sec + 24));
	free(sec);
	if (ssize < 512 || ssize > 65536 || (ssize & (ssize - 1)))
		bad("the super block's sector size is impossible", 0);
	srand(seed);
	v = scan(&n);
	choose_points(v, n, from, samples);
	for (uint64_t k = 0; k < n; k++) {
		if (v[k].flags & F_MARK)
			mark = v[k].mark;
		else
			apply(&v[k], k, &buf, &cap);
		if (!v[k].check)
			continue;
		points++;
		if (run_check(&argv[i + 1], k, (v[k].flags & F_MARK) ? "mark" : "flush", mark)) {
			violations++;
			printf("log_replay: VIOLATION at entry %llu (%s, after mark '%s')\n",
			       (unsigned long long)k, (v[k].flags & F_MARK) ? "mark" : "flush", mark);
			fflush(stdout);
		}
	}
	printf("log_replay: entries %llu points %llu violations %llu\n", (unsigned long long)n,
	       (unsigned long long)points, (unsigned long long)violations);
	free(buf);
	free(v);
	return violations == 0 && points > 0 ? 0 : 1;
}
