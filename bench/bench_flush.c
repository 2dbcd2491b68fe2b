/*
 * Data-plane benchmark driver (bench/flush, bench/evict). A writer thread maps an image
 * MAP_SHARED, as QEMU does, and dirties it page by page at a steady rate (or as fast as it
 * can); flusher threads ask for durability at a steady rate, either the way virtio-pmem
 * does today (QEMU fsyncs the whole file) or through the broker (a range flush of what was
 * written since that flusher's last request). Prints one JSON line.
 *
 *   bench_flush odirect PATH BYTES [DEPTH]                O_DIRECT sequential write, MB/s
 *   bench_flush run fsync|broker|floor PATH SOCK TAG MBPS HZ SECONDS FLUSHERS
 *       floor: the physical reference for latency — the writer writes the same bytes at the
 *       same rate with O_DIRECT (no page cache at all) and each request is an fsync: what
 *       the durability point alone costs at this write and request rate.
 *       MBPS 0: throughput — the writer dirties every page once, flat out, and the flushers
 *       (HZ 0: back to back) run until all of it is durable; durable_mbps = size / time.
 *   The mapping covers the data part only (file size − the 2 MiB label tail).
 *   bench_flush map PATH                                  dirty every page, then wait on stdin
 *   bench_flush fadvise PATH                              time a whole-file DONTNEED
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX_SAMPLES (1u << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* ---- the run ------------------------------------------------------------------------------ */

static struct {
	char *map;
	uint64_t size;
	int fd;
	const char *mode, *sock, *tag;
	double mbps, hz;
	uint64_t end_ns;
	atomic_uint_fast64_t written;   /* bytes the writer has dirtied, ever (position = % size) */
	pthread_mutex_t lock;
	uint64_t *lat_us;
	size_t nlat;
	uint64_t durable;               /* bytes covered by completed flushes */
	atomic_uint_fast64_t durable_all; /* throughput runs: when the whole image was durable */
	int failed;
} R;

static void *writer(void *arg)
{
	uint64_t pos = 0, t = now_ns(), chunk = 64 * PAGE;
	uint64_t period = R.mbps > 0 ? (uint64_t)(chunk / (R.mbps * 1e6) * 1e9) : 0;
	void *buf = NULL;

	if (!R.map && posix_memalign(&buf, PAGE, chunk))
		die("posix_memalign");
	while (now_ns() < R.end_ns && (period || pos < R.size)) {
		if (R.map) {
			for (uint64_t o = 0; o < chunk; o += PAGE)
				memset(R.map + (pos + o) % R.size, (int)((pos + o) / PAGE), 64);
		} else { /* floor: the same bytes, straight to the device */
			memset(buf, (int)(pos / chunk), chunk);
			if (pwrite(R.fd, buf, chunk, (off_t)(pos % R.size)) != (ssize_t)chunk)
				die("pwrite");
		}
		pos += chunk;
		atomic_store(&R.written, pos);
		if (period) {
			t += period;
			sleep_until(t);
		}
	}
	free(buf);
	return NULL;
}

static int connect_broker(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", R.sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	return fd;
}

/* One range flush through the broker; returns 0 or -1 if it answered with an error. */
static int broker_flush(int fd, uint64_t off, uint64_t len)
{
	char req[256], buf[4096];
	size_t got = 0;
	int n = snprintf(req, sizeof(req), "{\"id\":1,\"op\":\"flush\",\"tag\":\"%s\",\"offset\":%llu,"
			 "\"length\":%llu,\"wait\":true}\n", R.tag, (unsigned long long)off,
			 (unsigned long long)len);

	if (write(fd, req, (size_t)n) != n)
		die("write");
	for (;;) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			die("read");
		got += (size_t)r;
		buf[got] = '\0';
		if (memchr(buf, '\n', got))
			break;
	}
	if (strstr(buf, "\"error\"")) {
		fprintf(stderr, "flush: %s", buf);
		return -1;
	}
	return 0;
}

static void *flusher(void *arg)
{
	uint64_t last = atomic_load(&R.written), t = now_ns();
	uint64_t period = R.hz > 0 ? (uint64_t)(1e9 / R.hz) : 0;
	int sfd = !strcmp(R.mode, "broker") ? connect_broker() : -1;

	/* spread the flushers over one period */
	if (period)
		t += period * (uintptr_t)arg / 8;
	while (period ? now_ns() < R.end_ns : atomic_load(&R.durable_all) == 0) {
		uint64_t upto, t0, us;
		int r = 0;

		if (period) {
			t += period;
			sleep_until(t);
		}
		upto = atomic_load(&R.written);
		if (!period && upto == last) { /* back to back, nothing new written: not a flush */
			sched_yield();
			continue;
		}
		t0 = now_ns();
		if (sfd < 0) {
			r = fsync(R.fd); /* virtio-pmem today: QEMU fsyncs the whole backing file */
		} else if (upto > last) {
			uint64_t len = upto - last, off = last % R.size;

			if (len >= R.size)
				r = broker_flush(sfd, 0, R.size);
			else if (off + len <= R.size)
				r = broker_flush(sfd, off, len);
			else
				r = broker_flush(sfd, off, R.size - off) |
				    broker_flush(sfd, 0, len - (R.size - off));
		}
		us = (now_ns() - t0) / 1000;
		pthread_mutex_lock(&R.lock);
		if (r)
			R.failed++;
		else if (R.nlat < MAX_SAMPLES)
			R.lat_us[R.nlat++] = us;
		if (!r && upto > R.durable)
			R.durable = upto;
		if (!period && R.durable >= R.size && !atomic_load(&R.durable_all))
			atomic_store(&R.durable_all, now_ns());
		pthread_mutex_unlock(&R.lock);
		last = upto;
	}
	if (sfd >= 0)
		close(sfd);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int run(int argc, char **argv)
{
	pthread_t w, f[64];
	unsigned nf;
	double secs;
	struct stat st;
	uint64_t t0;

	if (argc != 10)
		return 2;
	R.mode = argv[2];
	R.sock = argv[4];
	R.tag = argv[5];
	R.mbps = atof(argv[6]);
	R.hz = atof(argv[7]);
	secs = atof(argv[8]);
	nf = (unsigned)atoi(argv[9]);
	if (!nf || nf > 64)
		return 2;
	R.fd = open(argv[3], O_RDWR | (strcmp(R.mode, "floor") ? 0 : O_DIRECT));
	if (R.fd < 0 || fstat(R.fd, &st) < 0)
		die(argv[3]);
	if ((uint64_t)st.st_size <= (4u << 20))
		return 2;
	R.size = ((uint64_t)st.st_size - (2u << 20)) & ~((256 * PAGE) - 1); /* not the label tail */
	if (strcmp(R.mode, "floor")) {
		R.map = mmap(NULL, R.size, PROT_READ | PROT_WRITE, MAP_SHARED, R.fd, 0);
		if (R.map == MAP_FAILED)
			die("mmap");
	}
	R.lat_us = calloc(MAX_SAMPLES, sizeof(*R.lat_us));
	pthread_mutex_init(&R.lock, NULL);
	t0 = now_ns();
	R.end_ns = t0 + (uint64_t)(secs * 1e9);
	pthread_create(&w, NULL, writer, NULL);
	for (unsigned i = 0; i < nf; i++)
		pthread_create(&f[i], NULL, flusher, (void *)(uintptr_t)i);
	pthread_join(w, NULL);
	for (unsigned i = 0; i < nf; i++)
		pthread_join(f[i], NULL);
	secs = ((R.mbps > 0 ? now_ns() : atomic_load(&R.durable_all)) - t0) / 1e9;
	qsort(R.lat_us, R.nlat, sizeof(*R.lat_us), cmp_u64);
	printf("{\"mode\":\"%s\",\"flushes\":%zu,\"failed\":%d,\"flush_hz\":%.1f,\"p50_us\":%llu,"
	       "\"p99_us\":%llu,\"max_us\":%llu,\"written_mb\":%.0f,\"durable_mbps\":%.0f,"
	       "\"write_mbps\":%.0f}\n", R.mode, R.nlat, R.failed, R.nlat / secs,
	       (unsigned long long)(R.nlat ? R.lat_us[R.nlat / 2] : 0),
	       (unsigned long long)(R.nlat ? R.lat_us[R.nlat * 99 / 100] : 0),
	       (unsigned long long)(R.nlat ? R.lat_us[R.nlat - 1] : 0),
	       atomic_load(&R.written) / 1e6, MIN(R.durable, atomic_load(&R.written)) / 1e6 / secs,
	       atomic_load(&R.written) / 1e6 / secs);
	return 0;
}

/* ---- references and helpers -------------------------------------------------------------- */

struct od_writer {
	int fd;
	uint64_t first, bytes, step;
};

static void *od_write(void *arg)
{
	const struct od_writer *w = arg;
	const size_t bs = 4u << 20;
	void *buf;

	if (posix_memalign(&buf, 4096, bs))
		die("posix_memalign");
	memset(buf, 0x5a, bs);
	for (uint64_t off = w->first; off < w->bytes; off += w->step)
		if (pwrite(w->fd, buf, bs, (off_t)off) != (ssize_t)bs)
			die("pwrite");
	free(buf);
	return NULL;
}

/* Sequential 4 MiB O_DIRECT writes into a new file, DEPTH of them in flight (threads taking
 * every DEPTH-th block), then fdatasync: what the filesystem and device sustain with no
 * page cache, one stream (depth 1) or with the parallelism writeback also uses. */
static int odirect(const char *path, uint64_t bytes, unsigned depth)
{
	const uint64_t bs = 4u << 20;
	struct od_writer w[16];
	pthread_t t[16];
	uint64_t t0;
	int fd;

	if (!depth || depth > 16) {
		fprintf(stderr, "depth: 1 to 16\n");
		return 2;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	if (fd < 0)
		die(path);
	t0 = now_ns();
	for (unsigned i = 0; i < depth; i++) {
		w[i] = (struct od_writer){ fd, i * bs, bytes, depth * bs };
		if (pthread_create(&t[i], NULL, od_write, &w[i]))
			die("pthread_create");
	}
	for (unsigned i = 0; i < depth; i++)
		pthread_join(t[i], NULL);
	if (fdatasync(fd) < 0)
		die("fdatasync");
	printf("{\"odirect_mbps\":%.0f,\"depth\":%u}\n", bytes / 1e6 / ((now_ns() - t0) / 1e9),
	       depth);
	close(fd);
	unlink(path);
	return 0;
}

static int map_and_wait(const char *path)
{
	struct stat st;
	char c, *p;
	int fd = open(path, O_RDWR);

	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	for (off_t o = 0; o < st.st_size; o += (off_t)PAGE)
		p[o] = (char)(o / (off_t)PAGE + 1);
	printf("mapped\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

static int fadvise_time(const char *path)
{
	uint64_t t0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die(path);
	t0 = now_ns();
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	printf("{\"fadvise_ms\":%.1f}\n", (now_ns() - t0) / 1e6);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return run(argc, argv);
	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "odirect"))
		return odirect(argv[2], strtoull(argv[3], NULL, 0),
			       argc == 5 ? (unsigned)atoi(argv[4]) : 1);
	if (argc == 3 && !strcmp(argv[1], "map"))
		return map_and_wait(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "fadvise"))
		return fadvise_time(argv[2]);
	fprintf(stderr, "usage: see the comment at the top of bench/bench_flush.c\n");
	return 2;
}
