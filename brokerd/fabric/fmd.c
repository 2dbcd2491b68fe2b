/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-fmd: the simulated fabric manager that several hosts share. It owns the pool and
 * serves docs/fabric.md on a Unix socket; each host's brokerd attaches to it by host id
 * (brokerd --fabric SOCKET --host-id ID) and `tagmem fm --host` drives it.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "fabric.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "settings.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tagmem-fmd --dir DIR [--region-size SIZE]\n"
		"The simulated CXL fabric manager shared by several hosts.\n\n"
		"  -d, --dir DIR           the pool, each allocation's bytes and its hosts; the\n"
		"                          socket is DIR/fabric.sock\n"
		"      --region-size SIZE  capacity of each region (private, sharable) [64G];\n"
		"                          an existing pool keeps its own\n"
		"  -v, --verbose           log debug messages\n"
		"  -h, --help              show this help\n"
		"      --version           print the version\n\n"
		"Hosts attach with brokerd --fabric DIR --host-id ID. See tagmem-fmd(8) and "
		"docs/fabric.md.\n");
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)data;
	if (read(fd, &si, sizeof(si)) == sizeof(si))
		log_info("Signal %u received, shutting down", si.ssi_signo);
	loop_stop(l);
}

static int serve(struct broker_settings *s, const char *dir, uint64_t region_size)
{
	struct fabric *fab = NULL;
	struct fabric_service *fs = NULL;
	struct server *srv = NULL;
	struct loop *loop = NULL;
	struct server_callbacks cb = { .request = fabric_service_request };
	sigset_t stop;
	int sfd = -1, r;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = fabric_open(dir, region_size, &fab);
	if (r < 0) {
		log_err("Cannot open the fabric in %s: %s", dir, strerror(-r));
		return r;
	}
	r = fabric_service_new(fab, &fs);
	if (r == 0)
		r = loop_new(&loop);
	cb.userdata = fs;
	if (r == 0)
		r = server_new(loop, s, &cb, &srv);
	if (r == 0) {
		fabric_service_serve(fs, srv);
		sfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
		r = sfd < 0 ? -errno : loop_add_fd(loop, sfd, EPOLLIN, on_signal, NULL);
	}
	if (r == 0)
		r = server_listen(srv);
	if (r == 0) {
		log_info("Fabric of %zu tag(s) in %s, serving %s", fabric_ntags(fab), dir,
			 s->socket_path);
		r = loop_run(loop);
	}
	if (srv)
		server_close_all(srv);
	server_free(srv);
	if (sfd >= 0) {
		loop_del_fd(loop, sfd);
		close(sfd);
	}
	loop_free(loop);
	fabric_service_free(fs);
	fabric_close(fab);
	return r;
}

int main(int argc, char **argv)
{
	enum { OPT_REGION_SIZE = 256, OPT_VERSION };
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "region-size", required_argument, NULL, OPT_REGION_SIZE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	struct broker_settings s;
	const char *dir = NULL;
	char sock[4096];
	uint64_t region_size = 64ull << 30;
	int opt;

	log_set_name("tagmem-fmd");
	broker_settings_defaults(&s);
	s.socket_path = NULL;
	s.max_clients = 1024;
	while ((opt = getopt_long(argc, argv, "d:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case OPT_REGION_SIZE:
			if (parse_size(optarg, &region_size) < 0 || !region_size ||
			    region_size % (2u << 20)) {
				fprintf(stderr, "tagmem-fmd: --region-size '%s': give a multiple of "
					"2M, like 64G\n", optarg);
				return 2;
			}
			break;
		case 'v': log_set_max_priority(7); break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("tagmem-fmd %s\n", TAGMEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!dir || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (snprintf(sock, sizeof(sock), "%s/fabric.sock", dir) >= 108) {
		fprintf(stderr, "tagmem-fmd: --dir '%s' is too long for a socket path in it\n", dir);
		return 2;
	}
	s.socket_path = sock;
	log_setup(NULL);
	return serve(&s, dir, region_size) < 0 ? 1 : 0;
}
