/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-guestd: the guest agent. It runs inside a VM, on the guest end of brokerd's guest
 * channel (the virtio-serial port org.tagmem.guest.0), and keeps the slot map of label-less
 * capacity hot-plugged into this VM in /run/tagmem/guest-slots, the file tagmem-id and
 * `tagmem lookup` read (libtagmem's slot map). When a slot's tag changes it asks udev to look
 * at that slot's device again, so /dev/disk/by-tag/<uuid> follows hot-plug.
 *   tagmem-guestd [--port PATH] [--root DIR] [--once]
 * The host is trusted no more than it must be: every message is bounded and validated, and a
 * malformed one changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "guestd.h"
#include "lines.h"
#include "nd.h"
#include "slots.h"
#include "util.h"

#define DEFAULT_PORT "/dev/virtio-ports/org.tagmem.guest.0"
#define DEFAULT_SOCKET TAGMEM_GUEST_SOCKET
#define MAX_MESSAGE (64u << 10)
#define RETRY_MS 200

struct agent {
	const char *root;
	struct sysfs *sys;
	struct slot_map map;  /* what the file says now */
	struct relay *relay;  /* guest programs' requests; NULL with --socket none */
	struct hints *hints;  /* what they said they can lose */
	int port;
	bool once;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int write_map(struct agent *a, const struct slot_map *m)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	_cleanup_free_ char *text = malloc(SLOT_MAP_SLOTS * 48);
	size_t len = 0;
	int fd, r;

	if (!text)
		return -ENOMEM;
	for (unsigned s = 0; s < SLOT_MAP_SLOTS; s++) {
		char t[TAGMEM_TAG_STRING_MAX];
		const tagmem_tag *tag = slot_map_get(m, s);

		if (tag)
			len += (size_t)sprintf(text + len, "%u %s\n", s, tagmem_tag_format(tag, t));
	}
	if (snprintf(path, sizeof(path) - 4, "%s/" SLOT_MAP_FILE, a->root) >= (int)sizeof(path) - 4)
		return -ENAMETOOLONG;
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	r = mkdir_parents(dir, 0755);
	if (r < 0)
		return r;
	/* whole or not at all: readers (udev workers) never see half a file */
	snprintf(tmp, sizeof(tmp), "%.*s.new", (int)(sizeof(tmp) - 5), path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, text, len);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Ask udev to look again at the devices of the slots whose tag changed. */
static void retrigger(struct agent *a, const struct slot_map *old, const struct slot_map *now)
{
	struct nd_namespace *ns = NULL;
	size_t n = 0;

	if (nd_scan(a->sys, &ns, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		const tagmem_tag *x, *y;
		char path[128];

		if (ns[i].dimm_slot < 0 || !ns[i].device[0])
			continue;
		x = slot_map_get(old, (unsigned)ns[i].dimm_slot);
		y = slot_map_get(now, (unsigned)ns[i].dimm_slot);
		if ((!x && !y) || (x && y && !tagmem_tag_compare(x, y)))
			continue;
		snprintf(path, sizeof(path), ns[i].kind == ND_KIND_DAX ? "sys/bus/dax/devices/%s/uevent" :
			 "sys/class/block/%s/uevent", ns[i].device);
		if (sysfs_write(a->sys, path, "change") < 0)
			fprintf(stderr, "tagmem-guestd: cannot ask udev about %s\n", ns[i].device);
	}
	free(ns);
}

/* brokerd must shrink an image of this VM: tell it what guest programs marked cold, as much
 * of it as one line of the channel holds (the largest ranges first). */
static void answer_reclaim(struct agent *a, struct json_object *ev)
{
	size_t n, all;
	char *line = guestd_reclaim_answer(a->hints, ev, &n, &all);
	const char *tag = "";

	if (!line)
		return;
	tagmem_json_get_string(ev, "tag", &tag); /* a tag: the answer was made for it */
	if (write_all(a->port, line, strlen(line)) < 0 || write_all(a->port, "\n", 1) < 0)
		fprintf(stderr, "tagmem-guestd: cannot answer a reclaim: %m\n");
	else
		printf("tagmem-guestd: reclaim of %s: offered %zu cold range(s)%s\n", tag, n,
		       n < all ? " (the largest; the rest did not fit one line)" : "");
	fflush(stdout);
	free(line);
}

/* One message from the host; true when it was a slot map, now applied. */
static bool handle(struct agent *a, const char *line, size_t len)
{
	struct json_object *msg = NULL;
	const char *ev;
	struct slot_map now;
	unsigned count = 0;
	bool applied = false;

	if (tagmem_msg_parse(line, len, MAX_MESSAGE, &msg) < 0 ||
	    !json_object_is_type(msg, json_type_object)) {
		fprintf(stderr, "tagmem-guestd: ignored a malformed message from the host\n");
		goto out;
	}
	if (a->relay && relay_from_host(a->relay, msg))
		goto out; /* a guest program's answer */
	if (tagmem_json_get_string(msg, "event", &ev) == 0 && !strcmp(ev, "reclaim")) {
		answer_reclaim(a, msg);
		goto out;
	}
	if (tagmem_json_get_string(msg, "event", &ev) < 0 || strcmp(ev, "slots"))
		goto out; /* replies and events this agent has no use for */
	if (guestd_parse_slots(msg, &now) < 0) {
		fprintf(stderr, "tagmem-guestd: ignored a malformed slot map from the host\n");
		goto out;
	}
	if (write_map(a, &now) < 0) {
		fprintf(stderr, "tagmem-guestd: cannot write %s/%s: %m\n", a->root, SLOT_MAP_FILE);
		goto out;
	}
	retrigger(a, &a->map, &now);
	a->map = now;
	for (unsigned s = 0; s < SLOT_MAP_SLOTS; s++)
		count += slot_map_get(&now, s) != NULL;
	printf("tagmem-guestd: slot map: %u tag(s)\n", count);
	fflush(stdout);
	applied = true;
out:
	json_object_put(msg);
	return applied;
}

/* The channel is silent or hung up: note the host gone and leave it alone a while. */
static void host_gone(struct agent *a, bool *up, uint64_t *retry_at, struct lines *in)
{
	lines_reset(in); /* part of a line from a connection that is gone */
	if (*up && a->relay)
		relay_host_down(a->relay);
	*up = false;
	*retry_at = now_ms() + RETRY_MS;
}

/*
 * The loop: the channel and the local socket. While brokerd is not connected on the host the
 * channel reads 0 and polls POLLHUP at once; it is then left out of poll for RETRY_MS, and
 * requests in flight are answered "unreachable". brokerd speaks first when it connects (the
 * slot map), so the first bytes mean it is back. Lines from the host longer than MAX_MESSAGE
 * are skipped whole.
 */
static int serve(struct agent *a, int port)
{
	static const char hello[] = "{\"id\":0,\"op\":\"hello\",\"protocol\":1}\n";
	_cleanup_(lines_release) struct lines in;
	bool up = false;
	uint64_t retry_at = 0;

	lines_init(&in, MAX_MESSAGE);
	for (;;) {
		struct pollfd fds[1 + RELAY_MAX_FDS];
		bool watch_port = now_ms() >= retry_at;
		size_t n = 0, first = 0;
		ssize_t got;
		char *line;
		size_t l;
		int r;

		if (watch_port)
			fds[n++] = (struct pollfd){ .fd = port, .events = POLLIN };
		first = n;
		if (a->relay)
			relay_poll_fds(a->relay, fds, &n);
		if (poll(fds, n, watch_port ? -1 : RETRY_MS) < 0 && errno != EINTR)
			return -errno;
		if (a->relay)
			relay_ready(a->relay, fds + first, n - first, up ? port : -1);
		if (!watch_port || !fds[0].revents)
			continue;
		if (!(fds[0].revents & POLLIN)) {
			host_gone(a, &up, &retry_at, &in);
			continue;
		}
		got = lines_read(&in, port);
		if (got == -EINTR || got == -EAGAIN)
			continue;
		if (got < 0)
			return (int)got;
		if (got == 0) {
			host_gone(a, &up, &retry_at, &in);
			continue;
		}
		if (!up) {
			up = true;
			if (write_all(port, hello, sizeof(hello) - 1) < 0)
				host_gone(a, &up, &retry_at, &in);
		}
		while ((r = lines_next(&in, &line, &l)) != 0) {
			if (r < 0) {
				lines_skip(&in); /* too long: drop it up to its newline */
				continue;
			}
			/* empty lines separate: brokerd sends one when it connects */
			if (l && handle(a, line, l) && a->once)
				return 0;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "root", required_argument, NULL, 'r' },
		{ "once", no_argument, NULL, '1' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	static const char usage[] = "Usage: tagmem-guestd [--port PATH] [--root DIR] "
		"[--socket PATH|none] [--once]\n"
		"       tagmem-guestd --version | --help\n"
		"  --port PATH    the guest channel [" DEFAULT_PORT "]\n"
		"  --root DIR     where /run and /sys are [/]\n"
		"  --socket PATH  where guest programs reach brokerd (tagmem --guest) ["
		DEFAULT_SOCKET "]\n"
		"  --once         exit after the first slot map (tests)\n";
	struct agent a = { .root = "/" };
	const char *port = DEFAULT_PORT, *sock = DEFAULT_SOCKET;
	int opt, fd, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': port = optarg; break;
		case 'r': a.root = optarg; break;
		case '1': a.once = true; break;
		case 's': sock = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': printf("tagmem-guestd %s\n", TAGMEM_VERSION); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	r = sysfs_open(a.root, &a.sys);
	if (r < 0) {
		fprintf(stderr, "tagmem-guestd: cannot open %s: %s\n", a.root, strerror(-r));
		return 1;
	}
	slot_map_init(&a.map);
	/* start from what the file says, so a restart retriggers only what changes */
	{
		char path[PATH_MAX], text[SLOT_MAP_SLOTS * 48];
		ssize_t n;
		int f;

		snprintf(path, sizeof(path), "%s/" SLOT_MAP_FILE, a.root);
		f = open(path, O_RDONLY | O_CLOEXEC);
		if (f >= 0) {
			n = read(f, text, sizeof(text));
			if (n > 0)
				slot_map_parse_lines(&a.map, text, (size_t)n);
			close(f);
		}
	}
	fd = open(port, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "tagmem-guestd: cannot open the guest channel %s: %m (is the VM "
			"started with the arguments of `tagmem qemu-args`?)\n", port);
		sysfs_close(a.sys);
		return 1;
	}
	if (strcmp(sock, "none")) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", sock);
		if (strrchr(dir, '/'))
			*strrchr(dir, '/') = '\0';
		r = mkdir_parents(dir, 0755);
		a.hints = hints_new();
		if (r == 0)
			r = a.hints ? relay_new(sock, a.hints, &a.relay) : -ENOMEM;
		if (r < 0) {
			fprintf(stderr, "tagmem-guestd: cannot listen on %s: %s\n", sock, strerror(-r));
			close(fd);
			sysfs_close(a.sys);
			return 1;
		}
	}
	a.port = fd;
	r = serve(&a, fd);
	relay_free(a.relay);
	hints_free(a.hints);
	close(fd);
	sysfs_close(a.sys);
	if (r < 0) {
		fprintf(stderr, "tagmem-guestd: the guest channel failed: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
