/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A stand-in for QEMU where QEMU cannot run: inside the tests' guest, whose kernel has
 * soft-dirty (the host's has not), brokerd checkpoints this process as it would QEMU. It
 * maps tagged capacity shared, as QEMU's memory backends do, writes pages of it when told,
 * and answers the QMP commands brokerd's save, checkpoint and restore send: query-status,
 * stop, cont, query-memdev, migrate-set-capabilities, getfd, migrate and migrate-incoming
 * to that fd, query-migrate, migrate_cancel. Its "device state" is a small blob that says
 * how many write rounds it has done, so a restore shows which checkpoint it came from.
 *
 *   vm_standin QMP_SOCKET [--incoming] ID=FILE...   (each FILE a file or /dev/daxX.Y)
 *   vm_standin --ask QMP_SOCKET COMMAND              a QMP client (the guest has none): one
 *                                                    command without arguments to any QMP
 *                                                    server (a real QEMU's second monitor),
 *                                                    its reply on standard output
 * Commands on standard input, one a line, answered on standard output:
 *   write SEED PERMILLE   write the pages chosen by SEED (each with odds PERMILLE/1000) with
 *                         content from SEED → "done write SEED PAGES"
 *   zero SEED PERMILLE    the same pages, zeroed → "done zero SEED PAGES"
 *   digest                "digest ID HEX" for each backing, over its whole mapping
 *   state                 "state STATUS ROUNDS"
 * A write is refused ("refused paused") unless the VM runs, as a paused QEMU's vCPUs would.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#define MAX_BACKINGS 8
#define DEVSTATE_BYTES 10000     /* not a multiple of 4 KiB, as QEMU's is not */

struct backing {
	char id[64];
	uint8_t *map;
	uint64_t size;
};

static struct backing backings[MAX_BACKINGS];
static unsigned nbackings;
static char status[32] = "running";
static uint64_t rounds;          /* write rounds done: the "device state" */
static int passed_fd = -1;       /* from getfd */
static char migration[32] = "none";

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static bool chosen(uint64_t seed, unsigned b, uint64_t page, unsigned permille)
{
	return mix(seed * 1000003 + b * 7919 + page * 131) % 1000 < permille;
}

static uint64_t pages_op(uint64_t seed, unsigned permille, bool zero)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < nbackings; b++)
		for (uint64_t pg = 0; pg < backings[b].size / 4096; pg++) {
			uint64_t *p = (uint64_t *)(backings[b].map + pg * 4096);

			if (!chosen(seed, b, pg, permille))
				continue;
			for (unsigned i = 0; i < 512; i++)
				p[i] = zero ? 0 : mix(seed ^ (pg << 20) ^ ((uint64_t)b << 60) ^ i);
			n++;
		}
	return n;
}

static void devstate(char *buf)
{
	int n = snprintf(buf, DEVSTATE_BYTES, "STANDIN rounds=%llu\n", (unsigned long long)rounds);

	for (int i = n; i < DEVSTATE_BYTES; i++)
		buf[i] = (char)('a' + mix(rounds + (uint64_t)i) % 26);
}

static void reply(int c, struct json_object *id, struct json_object *ret, const char *err)
{
	struct json_object *m = json_object_new_object();
	const char *s;

	if (err) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "class", json_object_new_string("GenericError"));
		json_object_object_add(e, "desc", json_object_new_string(err));
		json_object_object_add(m, "error", e);
		json_object_put(ret);
	} else {
		json_object_object_add(m, "return", ret ? ret : json_object_new_object());
	}
	if (id)
		json_object_object_add(m, "id", json_object_get(id));
	s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
	if (write(c, s, strlen(s)) < 0 || write(c, "\r\n", 2) < 0)
		perror("vm_standin: reply");
	json_object_put(m);
}

static const char *migrate_out(void)
{
	char buf[DEVSTATE_BYTES];

	if (passed_fd < 0)
		return "no fd";
	devstate(buf);
	if (write(passed_fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return "cannot write the device state";
	close(passed_fd);
	passed_fd = -1;
	snprintf(migration, sizeof(migration), "completed");
	if (!strcmp(status, "paused"))
		snprintf(status, sizeof(status), "postmigrate");
	return NULL;
}

static const char *migrate_in(void)
{
	char buf[DEVSTATE_BYTES], want[DEVSTATE_BYTES];
	unsigned long long r;

	if (strcmp(status, "inmigrate") || passed_fd < 0)
		return "not waiting for an incoming migration";
	if (read(passed_fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
	    sscanf(buf, "STANDIN rounds=%llu", &r) != 1)
		return "not a stand-in device state";
	rounds = r;
	devstate(want);
	if (memcmp(buf, want, sizeof(buf)))
		return "the device state is damaged";
	close(passed_fd);
	passed_fd = -1;
	snprintf(status, sizeof(status), "paused");
	printf("loaded rounds=%llu\n", r);
	return NULL;
}

static void command(int c, struct json_object *m)
{
	struct json_object *ex, *id = NULL, *ret = NULL;
	const char *cmd, *err = NULL;

	json_object_object_get_ex(m, "id", &id);
	if (!json_object_object_get_ex(m, "execute", &ex)) {
		reply(c, id, NULL, "no execute");
		return;
	}
	cmd = json_object_get_string(ex);
	if (!strcmp(cmd, "qmp_capabilities") || !strcmp(cmd, "migrate-set-capabilities")) {
		/* nothing to set */
	} else if (!strcmp(cmd, "query-status")) {
		ret = json_object_new_object();
		json_object_object_add(ret, "status", json_object_new_string(status));
		json_object_object_add(ret, "running", json_object_new_boolean(!strcmp(status,
											 "running")));
	} else if (!strcmp(cmd, "stop")) {
		if (!strcmp(status, "running"))
			snprintf(status, sizeof(status), "paused");
	} else if (!strcmp(cmd, "cont")) {
		if (!strcmp(status, "inmigrate"))
			err = "waiting for an incoming migration";
		else
			snprintf(status, sizeof(status), "running");
	} else if (!strcmp(cmd, "query-memdev")) {
		ret = json_object_new_array();
		for (unsigned b = 0; b < nbackings; b++) {
			struct json_object *d = json_object_new_object();

			json_object_object_add(d, "id", json_object_new_string(backings[b].id));
			json_object_object_add(d, "size", json_object_new_uint64(backings[b].size));
			json_object_object_add(d, "share", json_object_new_boolean(true));
			json_object_array_add(ret, d);
		}
	} else if (!strcmp(cmd, "getfd")) {
		if (passed_fd < 0)
			err = "no fd came with getfd";
	} else if (!strcmp(cmd, "migrate")) {
		err = migrate_out();
	} else if (!strcmp(cmd, "migrate-incoming")) {
		err = migrate_in();
	} else if (!strcmp(cmd, "query-migrate")) {
		ret = json_object_new_object();
		json_object_object_add(ret, "status", json_object_new_string(migration));
	} else if (!strcmp(cmd, "migrate_cancel")) {
		/* nothing runs in the background */
	} else {
		err = "command not known to the stand-in";
	}
	reply(c, id, ret, err);
	fflush(stdout);
}

/* What came on the QMP connection: lines of JSON, a descriptor with getfd. */
static bool serve(int c, char *buf, size_t *len, size_t cap)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf + *len, .iov_len = cap - *len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			      .msg_controllen = sizeof(ctl.b) };
	ssize_t n = recvmsg(c, &msg, 0);
	char *nl;

	if (n <= 0)
		return false;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
		if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
			if (passed_fd >= 0)
				close(passed_fd);
			memcpy(&passed_fd, CMSG_DATA(h), sizeof(int));
		}
	*len += (size_t)n;
	while ((nl = memchr(buf, '\n', *len))) {
		struct json_object *m;

		*nl = 0;
		m = json_tokener_parse(buf);
		if (m)
			command(c, m);
		json_object_put(m);
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len);
	}
	return *len < cap;
}

static uint64_t digest(const struct backing *b)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint64_t off = 0; off < b->size; off += 8) {
		uint64_t v;

		memcpy(&v, b->map + off, 8);
		h = (h ^ v) * 0x100000001b3ull;
	}
	return h;
}

static void control(const char *line)
{
	unsigned long long seed;
	unsigned permille;
	char verb[16];

	if (sscanf(line, "%15s %llu %u", verb, &seed, &permille) == 3 &&
	    (!strcmp(verb, "write") || !strcmp(verb, "zero"))) {
		if (strcmp(status, "running")) {
			printf("refused %s\n", status);
		} else {
			uint64_t n = pages_op(seed, permille, !strcmp(verb, "zero"));

			rounds++;
			printf("done %s %llu %llu\n", verb, seed, (unsigned long long)n);
		}
	} else if (!strncmp(line, "digest", 6)) {
		for (unsigned b = 0; b < nbackings; b++)
			printf("digest %s %016llx\n", backings[b].id,
			       (unsigned long long)digest(&backings[b]));
	} else if (!strncmp(line, "state", 5)) {
		printf("state %s %llu\n", status, (unsigned long long)rounds);
	} else {
		printf("unknown %s", line);
	}
	fflush(stdout);
}

static int map_backing(const char *arg)
{
	const char *eq = strchr(arg, '=');
	struct backing *b = &backings[nbackings];
	struct stat st;
	int fd;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(b->id) || nbackings == MAX_BACKINGS)
		return -EINVAL;
	snprintf(b->id, sizeof(b->id), "%.*s", (int)(eq - arg), arg);
	fd = open(eq + 1, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	b->size = (uint64_t)st.st_size;
	if (S_ISCHR(st.st_mode)) { /* device DAX: its size is in sysfs */
		char path[128];
		unsigned long long size = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size", major(st.st_rdev),
			 minor(st.st_rdev));
		f = fopen(path, "re");
		if (!f || fscanf(f, "%llu", &size) != 1)
			return -ENODEV;
		fclose(f);
		b->size = size;
	}
	b->map = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	if (b->map == MAP_FAILED)
		return -errno;
	nbackings++;
	return 0;
}

/* --ask: greeting, capabilities, the command; the reply line (events skipped). */
static int ask(const char *path, const char *command)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char buf[1 << 16];
	char cmd[256];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), sent = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("vm_standin: connect");
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		char *nl;

		if (n <= 0)
			return 1;
		len += (size_t)n;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			if (strstr(buf, "\"return\"") || strstr(buf, "\"error\"") || strstr(buf, "\"QMP\"")) {
				if (sent == 2) {
					printf("%s\n", buf);
					return strstr(buf, "\"error\"") ? 1 : 0;
				}
				snprintf(cmd, sizeof(cmd), "{\"execute\": \"%s\"}\n",
					 sent ? command : "qmp_capabilities");
				if (write(fd, cmd, strlen(cmd)) < 0)
					return 1;
				sent++;
			}
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char buf[1 << 16], line[256];
	size_t len = 0, llen = 0;
	int ls, c = -1, a = 2;

	if (argc == 4 && !strcmp(argv[1], "--ask"))
		return ask(argv[2], argv[3]);
	if (argc < 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: vm_standin QMP_SOCKET [--incoming] ID=FILE...\n");
		return 2;
	}
	if (!strcmp(argv[a], "--incoming")) {
		snprintf(status, sizeof(status), "inmigrate");
		a++;
	}
	for (; a < argc; a++)
		if (map_backing(argv[a]) < 0) {
			fprintf(stderr, "vm_standin: cannot map %s: %m\n", argv[a]);
			return 1;
		}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	unlink(sa.sun_path);
	ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 4) < 0) {
		perror("vm_standin: listen");
		return 1;
	}
	printf("ready %s\n", status);
	fflush(stdout);
	for (;;) {
		struct pollfd p[3] = { { .fd = ls, .events = POLLIN }, { .fd = 0, .events = POLLIN },
				       { .fd = c, .events = POLLIN } };

		if (poll(p, 3, -1) < 0)
			continue;
		if (p[0].revents & POLLIN) {
			static const char hello[] = "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, "
						    "\"minor\": 2, \"micro\": 0}}, \"capabilities\": []}}\r\n";
			int n = accept4(ls, NULL, NULL, SOCK_CLOEXEC);

			if (n >= 0 && c >= 0) {
				close(n); /* one client at a time, as QEMU's monitor */
			} else if (n >= 0) {
				c = n;
				len = 0;
				if (write(c, hello, sizeof(hello) - 1) < 0)
					perror("vm_standin: greeting");
			}
		}
		if (c >= 0 && (p[2].revents & (POLLIN | POLLHUP)) && !serve(c, buf, &len, sizeof(buf))) {
			close(c);
			c = -1;
		}
		if (p[1].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(0, line + llen, sizeof(line) - 1 - llen);
			char *nl;

			if (n <= 0)
				return 0; /* the test closed the control: done */
			llen += (size_t)n;
			line[llen] = 0;
			while ((nl = strchr(line, '\n'))) {
				*nl = 0;
				control(line);
				llen -= (size_t)(nl + 1 - line);
				memmove(line, nl + 1, llen + 1);
			}
			if (llen == sizeof(line) - 1)
				llen = 0; /* a line too long: dropped */
		}
	}
}
