/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Closed-loop load: N connections, each sends one request line, waits for the reply line,
 * records the round trip, and repeats for a fixed time. Prints requests/s and p50/p99 as
 * JSON. Used against brokerd and against the echo floor with the same request bytes.
 *   loadgen SOCKET CLIENTS SECONDS REQUEST-LINE
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *sock_path, *request;
static double seconds;
static volatile int go, stop;

struct worker {
	pthread_t th;
	uint32_t *lat; /* nanoseconds / 100 would overflow less; µs resolution is plenty */
	size_t n, cap;
	int failed;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
	struct worker *w = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t reqlen = strlen(request);
	char buf[65536];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		w->failed = 1;
		return NULL;
	}
	while (!go)
		;
	while (!stop) {
		uint64_t t0 = now_ns();
		if (write(fd, request, reqlen) != (ssize_t)reqlen) {
			w->failed = 1;
			break;
		}
		/* One reply is one line, of any size (a list of 10,000 tags is megabytes): read
		 * until a chunk ends the line. */
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0) {
				w->failed = 1;
				goto out;
			}
			if (buf[r - 1] == '\n')
				break;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 65536;
			w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
		}
		w->lat[w->n++] = (uint32_t)((now_ns() - t0) / 1000);
	}
out:
	close(fd);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int clients;
	struct worker *w;
	size_t total = 0, k = 0;
	uint32_t *all;
	uint64_t t0, t1;
	static char line[70000];

	if (argc != 5) {
		fprintf(stderr, "usage: loadgen SOCKET CLIENTS SECONDS REQUEST-LINE\n");
		return 2;
	}
	sock_path = argv[1];
	clients = atoi(argv[2]);
	seconds = atof(argv[3]);
	snprintf(line, sizeof(line), "%s\n", argv[4]);
	request = line;
	w = calloc((size_t)clients, sizeof(*w));
	for (int i = 0; i < clients; i++)
		pthread_create(&w[i].th, NULL, run, &w[i]);
	usleep(100000);
	t0 = now_ns();
	go = 1;
	usleep((useconds_t)(seconds * 1e6));
	stop = 1;
	for (int i = 0; i < clients; i++) {
		pthread_join(w[i].th, NULL);
		if (w[i].failed && !w[i].n) {
			fprintf(stderr, "loadgen: a client failed to connect or was cut off\n");
			return 1;
		}
		total += w[i].n;
	}
	t1 = now_ns();
	all = malloc((total ? total : 1) * sizeof(*all));
	for (int i = 0; i < clients; i++) {
		memcpy(all + k, w[i].lat, w[i].n * sizeof(*all));
		k += w[i].n;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	printf("{\"clients\":%d,\"requests\":%zu,\"rps\":%.0f,\"p50_us\":%u,\"p99_us\":%u}\n", clients,
	       total, total / ((t1 - t0) / 1e9), total ? all[total / 2] : 0,
	       total ? all[(size_t)(total * 0.99)] : 0);
	return 0;
}
