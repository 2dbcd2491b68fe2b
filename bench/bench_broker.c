/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Broker benchmarks that need more than a request loop:
 *   bench_broker events SOCKET N      fm_add → subscriber sees tag_ready, N times (p50/p99)
 *   bench_broker fill SOCKET N        add N tagged 2 MiB allocations (pipelined)
 *   bench_broker spawn N CMD [ARG…]   run a command N times, median wall time
 * Each prints one JSON line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bench_broker: connect");
		exit(1);
	}
	return fd;
}

struct reader {
	int fd;
	char buf[1 << 20];
	size_t len;
};

/* Next line (NUL-terminated, valid until the next call). */
static char *read_line(struct reader *r)
{
	static char line[1 << 20];
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = (size_t)(nl - r->buf);
			memcpy(line, r->buf, n);
			line[n] = '\0';
			memmove(r->buf, nl + 1, r->len - n - 1);
			r->len -= n + 1;
			return line;
		}
		ssize_t got = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (got <= 0) {
			fprintf(stderr, "bench_broker: connection closed\n");
			exit(1);
		}
		r->len += (size_t)got;
	}
}

static void send_line(int fd, const char *s)
{
	size_t len = strlen(s);
	if (write(fd, s, len) != (ssize_t)len) {
		perror("bench_broker: write");
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void new_tag(char out[37])
{
	uuid_t u;
	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

static int events(const char *path, int n)
{
	static struct reader sub, drv;
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	char req[256], tag[37];

	sub.fd = connect_to(path);
	drv.fd = connect_to(path);
	send_line(sub.fd, "{\"id\":1,\"op\":\"subscribe\"}\n");
	read_line(&sub);
	for (int i = 0; i < n; i++) {
		new_tag(tag);
		snprintf(req, sizeof(req),
			 "{\"id\":%d,\"op\":\"fm_add\",\"size\":2097152,\"tag\":\"%s\"}\n", i, tag);
		uint64_t t0 = now_ns();
		send_line(drv.fd, req);
		for (;;) {
			char *l = read_line(&sub);
			if (strstr(l, "\"event\":\"tag_ready\"") && strstr(l, tag))
				break;
		}
		lat[i] = now_ns() - t0;
		read_line(&drv);
		snprintf(req, sizeof(req), "{\"id\":%d,\"op\":\"fm_release\",\"tag\":\"%s\"}\n", i, tag);
		send_line(drv.fd, req);
		read_line(&drv);
	}
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("{\"events\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f}\n", n, lat[n / 2] / 1e3,
	       lat[(size_t)(n * 0.99)] / 1e3);
	return 0;
}

static int fill(const char *path, int n)
{
	static struct reader drv;
	char req[256], tag[37];
	int inflight = 0, errors = 0;
	uint64_t t0 = now_ns();

	drv.fd = connect_to(path);
	for (int i = 0; i < n; i++) {
		new_tag(tag);
		snprintf(req, sizeof(req),
			 "{\"id\":%d,\"op\":\"fm_add\",\"size\":2097152,\"tag\":\"%s\"}\n", i, tag);
		send_line(drv.fd, req);
		if (++inflight == 64) { /* keep the pipe full, but bounded */
			errors += strstr(read_line(&drv), "\"error\"") != NULL;
			inflight--;
		}
	}
	while (inflight--)
		errors += strstr(read_line(&drv), "\"error\"") != NULL;
	printf("{\"added\":%d,\"errors\":%d,\"seconds\":%.2f}\n", n, errors, (now_ns() - t0) / 1e9);
	return errors ? 1 : 0;
}

static int spawn(int n, char **argv)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t));

	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		int status;
		if (pid == 0) {
			int null = open("/dev/null", 1);
			dup2(null, 1);
			dup2(null, 2);
			execvp(argv[0], argv);
			_exit(127);
		}
		waitpid(pid, &status, 0);
		t[i] = now_ns() - t0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "bench_broker: %s failed\n", argv[0]);
			return 1;
		}
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_u64);
	printf("{\"runs\":%d,\"p50_us\":%.0f,\"p99_us\":%.0f}\n", n, t[n / 2] / 1e3,
	       t[(size_t)(n * 0.99)] / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "events"))
		return events(argv[2], atoi(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "fill"))
		return fill(argv[2], atoi(argv[3]));
	if (argc >= 4 && !strcmp(argv[1], "spawn"))
		return spawn(atoi(argv[2]), argv + 3);
	fprintf(stderr, "usage: bench_broker events|fill SOCKET N | spawn N CMD [ARGS]\n");
	return 2;
}
