/* SPDX-License-Identifier: GPL-2.0-or-later */
/* brokerd: command line, service-manager integration, and the main loop. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: brokerd [OPTIONS]\n"
		"Tagged-capacity broker for CXL Dynamic Capacity Devices.\n\n"
		"  -s, --socket PATH           listening socket [%s]\n"
		"  -d, --state-dir DIR         registry directory [%s]\n"
		"  -b, --backend NAME          capacity source: sim (simulated fabric) or host [sim]\n"
		"      --host-root DIR         sysfs root for the host backend [/]\n"
		"      --image-dir DIR         images may be created here (repeatable, up to 8)\n"
		"                              [STATE_DIR/images]\n"
		"      --trace-pipe FILE       read cxl_dynamic_capacity records from FILE (a FIFO or\n"
		"                              a recorded trace) instead of tracefs\n"
		"      --nd-namespaces POLICY  NVDIMM namespaces that count as tagged capacity:\n"
		"                              tagmem (label name \"tagmem\" or \"tagmem-…\"), all, none\n"
		"                              [tagmem]\n"
		"      --sim-root DIR          simulator sandbox [%s/sim]\n"
		"      --sim-region-size SIZE  capacity of each simulated region [64G]\n"
		"      --sim-dcd SERIES        the DCD kernel series the simulator follows where\n"
		"                              they differ: v11, v10, v9 or v8 [v11]\n"
		"      --fabric DIR            take capacity from the fabric manager several hosts\n"
		"                              share (tagmem-fmd --dir DIR) instead of one's own\n"
		"      --host-id ID            this host's id at that fabric manager\n"
		"      --max-clients N         connections served at once [4096]; the last 1/32\n"
		"                              (at least 8) are kept for root\n"
		"      --max-clients-per-uid N connections of one uid other than root [1024]\n"
		"      --max-line BYTES        longest request line [%d]\n"
		"      --max-subscribers N     event subscribers at once [256]\n"
		"      --max-output BYTES      reply bytes queued per client before dropping it [64M]\n"
		"      --max-output-total BYTES  bytes queued for all clients together [256M]\n"
		"      --request-timeout MS    close a client stalled mid-line after MS [10000]\n"
		"      --max-tags N            tags tracked [1048576]\n"
		"      --flush-workers N       threads that flush and evict images [2]\n"
		"      --dirty-budget SIZE     default dirty bytes per image before background\n"
		"                              writeback starts; 0: none [64M]\n"
		"      --resident-budget SIZE  cached bytes of all images together, shared fairly\n"
		"                              between VMs; 0: none [0]\n"
		"      --upkeep-interval MS    how often image budgets are checked [50]\n"
		"      --metrics-file PATH     keep brokerd's metrics in PATH, in the Prometheus text\n"
		"                              format (node_exporter's textfile collector) [none]\n"
		"      --metrics-interval MS   how often that file is written [5000]\n"
		"      --cdi-spec PATH         keep a CDI spec of the tags in PATH (a .json in\n"
		"                              /etc/cdi or /run/cdi), for containers [none]\n"
		"      --pressure TRIGGER      PSI memory trigger that starts eviction, or none\n"
		"                              [\"some 150000 2000000\"]\n"
		"      --guest-dir DIR         guest channel sockets (one per VM), or none\n"
		"                              [the socket's directory/guests]\n"
		"      --guest-rate N          requests per second one guest gets handled [1000]\n"
		"      --guest-reclaim-ms MS   how long an eviction waits for the guest to say\n"
		"                              which ranges it can give back; 0: never ask [200]\n"
		"      --guest-idle S          close the channel of a VM that holds no tags after\n"
		"                              S seconds with nothing connected [600]\n"
		"  -D, --daemon                run in the background; return once serving\n"
		"  -v, --verbose               log debug messages\n"
		"  -h, --help                  show this help\n"
		"      --version               print the version\n\n"
		"Socket-activated when started with LISTEN_FDS; notifies readiness via NOTIFY_SOCKET.\n"
		"See brokerd(8) and docs/protocol.md.\n",
		TAGMEM_DEFAULT_SOCKET, TAGMEM_STATEDIR_DEFAULT, TAGMEM_RUNSTATEDIR_DEFAULT,
		TAGMEM_MAX_LINE_DEFAULT);
}

static int parse_count(const char *opt, const char *arg, uint64_t min, uint64_t max,
		       uint64_t *ret)
{
	uint64_t v;

	if (parse_size(arg, &v) < 0 || v < min || v > max) {
		fprintf(stderr, "brokerd: --%s: '%s' is not a number from %llu to %llu\n", opt, arg,
			(unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* A PSI trigger the kernel takes (Documentation/accounting/psi.rst): "some" or "full", the
 * stall and the window in µs, the window from 500 ms to 10 s, the stall within it. Checked
 * here so that a typo is an error at start, not pressure eviction silently off. */
static bool pressure_trigger_valid(const char *s)
{
	unsigned long long stall, window;
	char kind[8];
	int end = 0;

	if (sscanf(s, "%7s %llu %llu%n", kind, &stall, &window, &end) != 3 || s[end] ||
	    (strcmp(kind, "some") && strcmp(kind, "full")))
		return false;
	return window >= 500000 && window <= 10000000 && stall > 0 && stall <= window;
}

static int daemon_ready_fd = -1; /* --daemon: the parent waits on this for "serving" */

/*
 * --daemon: go to the background, but return to the shell only once brokerd serves, so the
 * next command in a script finds the socket. Must run before any thread starts. The parent
 * exits 0 when the child says it serves, 1 if the child dies first.
 */
static int daemonize(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	/* let go of the caller's stdin and stdout, or `x=$(brokerd --daemon)` waits for the
	 * daemon's end; stderr stays, it is the log */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0)
			return -errno;
		if (null > STDERR_FILENO)
			close(null);
	}
	daemon_ready_fd = p[1];
	return 0;
}

/* Type=notify: tell systemd we serve. Written by hand to avoid a libsystemd dependency. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");

	if (daemon_ready_fd >= 0) {
		if (write(daemon_ready_fd, "r", 1) < 0) {
			/* the parent is gone: nobody waits */
		}
		close(daemon_ready_fd);
		daemon_ready_fd = -1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const char msg[] = "READY=1\nSTATUS=Serving tagged capacity";
	socklen_t salen;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		log_warn("Failed to notify the service manager: %m, ignoring");
	close(fd);
}

enum {
	OPT_HOST_ROOT = 300, OPT_ND_NAMESPACES, OPT_TRACE_PIPE, OPT_IMAGE_DIR,
	OPT_SIM_ROOT = 256, OPT_SIM_REGION_SIZE, OPT_MAX_CLIENTS, OPT_MAX_LINE,
	OPT_MAX_SUBSCRIBERS, OPT_MAX_OUTPUT, OPT_REQUEST_TIMEOUT, OPT_MAX_TAGS, OPT_VERSION,
	OPT_FLUSH_WORKERS = 400, OPT_DIRTY_BUDGET, OPT_RESIDENT_BUDGET, OPT_UPKEEP_INTERVAL,
	OPT_PRESSURE, OPT_MAX_CLIENTS_PER_UID = 500, OPT_MAX_OUTPUT_TOTAL, OPT_GUEST_DIR = 600,
	OPT_GUEST_RATE, OPT_GUEST_RECLAIM_MS, OPT_GUEST_IDLE, OPT_FABRIC = 700, OPT_HOST_ID,
	OPT_METRICS_FILE = 800, OPT_METRICS_INTERVAL, OPT_CDI_SPEC, OPT_SIM_DCD = 900,
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "backend", required_argument, NULL, 'b' },
		{ "sim-root", required_argument, NULL, OPT_SIM_ROOT },
		{ "host-root", required_argument, NULL, OPT_HOST_ROOT },
		{ "nd-namespaces", required_argument, NULL, OPT_ND_NAMESPACES },
		{ "trace-pipe", required_argument, NULL, OPT_TRACE_PIPE },
		{ "image-dir", required_argument, NULL, OPT_IMAGE_DIR },
		{ "sim-region-size", required_argument, NULL, OPT_SIM_REGION_SIZE },
		{ "sim-dcd", required_argument, NULL, OPT_SIM_DCD },
		{ "fabric", required_argument, NULL, OPT_FABRIC },
		{ "host-id", required_argument, NULL, OPT_HOST_ID },
		{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
		{ "max-line", required_argument, NULL, OPT_MAX_LINE },
		{ "max-subscribers", required_argument, NULL, OPT_MAX_SUBSCRIBERS },
		{ "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
		{ "max-output-total", required_argument, NULL, OPT_MAX_OUTPUT_TOTAL },
		{ "max-clients-per-uid", required_argument, NULL, OPT_MAX_CLIENTS_PER_UID },
		{ "request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT },
		{ "max-tags", required_argument, NULL, OPT_MAX_TAGS },
		{ "flush-workers", required_argument, NULL, OPT_FLUSH_WORKERS },
		{ "dirty-budget", required_argument, NULL, OPT_DIRTY_BUDGET },
		{ "resident-budget", required_argument, NULL, OPT_RESIDENT_BUDGET },
		{ "upkeep-interval", required_argument, NULL, OPT_UPKEEP_INTERVAL },
		{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
		{ "metrics-interval", required_argument, NULL, OPT_METRICS_INTERVAL },
		{ "cdi-spec", required_argument, NULL, OPT_CDI_SPEC },
		{ "pressure", required_argument, NULL, OPT_PRESSURE },
		{ "guest-dir", required_argument, NULL, OPT_GUEST_DIR },
		{ "guest-rate", required_argument, NULL, OPT_GUEST_RATE },
		{ "guest-reclaim-ms", required_argument, NULL, OPT_GUEST_RECLAIM_MS },
		{ "guest-idle", required_argument, NULL, OPT_GUEST_IDLE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "daemon", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{}
	};
	struct broker_settings settings;
	static struct daemon d;
	uint64_t v;
	bool daemonize_opt = false;
	int opt, r;

	broker_settings_defaults(&settings);
	while ((opt = getopt_long(argc, argv, "s:d:b:vDh", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': settings.socket_path = optarg; break;
		case 'd': settings.state_dir = optarg; break;
		case 'b':
			if (strcmp(optarg, "sim") && strcmp(optarg, "host")) {
				fprintf(stderr, "brokerd: --backend takes sim (the simulated fabric "
					"manager) or host (the kernel's CXL and NVDIMM devices), not "
					"'%s'\n", optarg);
				return 2;
			}
			settings.backend = optarg;
			break;
		case OPT_SIM_ROOT: settings.sim_root = optarg; break;
		case OPT_HOST_ROOT: settings.host_root = optarg; break;
		case OPT_TRACE_PIPE: settings.trace_pipe = optarg; break;
		case OPT_IMAGE_DIR:
			if (settings.nimage_dirs == ARRAY_SIZE(settings.image_dirs) || optarg[0] != '/') {
				fprintf(stderr, "brokerd: --image-dir takes an absolute path, at most %zu "
					"times\n", ARRAY_SIZE(settings.image_dirs));
				return 2;
			}
			settings.image_dirs[settings.nimage_dirs++] = optarg;
			break;
		case OPT_ND_NAMESPACES:
			if (view_nd_policy_parse(optarg, &settings.nd_policy) < 0) {
				fprintf(stderr, "brokerd: --nd-namespaces takes tagmem, all or none\n");
				return 2;
			}
			break;
		case OPT_SIM_REGION_SIZE:
			if (parse_count("sim-region-size", optarg, 2u << 20, 1ull << 50, &v) < 0)
				return 2;
			if (v % (2u << 20)) {
				fprintf(stderr, "brokerd: --sim-region-size must be a multiple of 2M\n");
				return 2;
			}
			settings.sim_region_size = v;
			break;
		case OPT_SIM_DCD:
			if (dcd_series_parse(optarg, &settings.sim_dcd) < 0) {
				fprintf(stderr, "brokerd: --sim-dcd takes v11, v10, v9 or v8\n");
				return 2;
			}
			break;
		case OPT_MAX_CLIENTS:
			if (parse_count("max-clients", optarg, 1, 1u << 20, &v) < 0)
				return 2;
			settings.max_clients = (unsigned)v;
			break;
		case OPT_MAX_LINE:
			if (parse_count("max-line", optarg, 256, 64u << 20, &v) < 0)
				return 2;
			settings.max_line = v;
			break;
		case OPT_MAX_SUBSCRIBERS:
			if (parse_count("max-subscribers", optarg, 0, 1u << 20, &v) < 0)
				return 2;
			settings.max_subscribers = (unsigned)v;
			break;
		case OPT_MAX_OUTPUT:
			if (parse_count("max-output", optarg, 65536, 1ull << 34, &v) < 0)
				return 2;
			settings.max_output = v;
			break;
		case OPT_MAX_OUTPUT_TOTAL:
			if (parse_count("max-output-total", optarg, 1u << 20, 1ull << 36, &v) < 0)
				return 2;
			settings.max_output_total = v;
			break;
		case OPT_MAX_CLIENTS_PER_UID:
			if (parse_count("max-clients-per-uid", optarg, 1, 1u << 20, &v) < 0)
				return 2;
			settings.max_clients_per_uid = (unsigned)v;
			break;
		case OPT_REQUEST_TIMEOUT:
			if (parse_count("request-timeout", optarg, 10, 3600000, &v) < 0)
				return 2;
			settings.request_timeout_ms = (unsigned)v;
			break;
		case OPT_MAX_TAGS:
			if (parse_count("max-tags", optarg, 1, 1u << 24, &v) < 0)
				return 2;
			settings.max_tags = (unsigned)v;
			break;
		case OPT_FLUSH_WORKERS:
			if (parse_count("flush-workers", optarg, 1, 16, &v) < 0)
				return 2;
			settings.flush_workers = (unsigned)v;
			break;
		case OPT_DIRTY_BUDGET:
			if (parse_count("dirty-budget", optarg, 0, 1ull << 46, &v) < 0)
				return 2;
			settings.dirty_budget = v;
			break;
		case OPT_RESIDENT_BUDGET:
			if (parse_count("resident-budget", optarg, 0, 1ull << 50, &v) < 0)
				return 2;
			settings.resident_budget = v;
			break;
		case OPT_UPKEEP_INTERVAL:
			if (parse_count("upkeep-interval", optarg, 10, 60000, &v) < 0)
				return 2;
			settings.upkeep_interval_ms = (unsigned)v;
			break;
		case OPT_METRICS_FILE:
			if (optarg[0] != '/' || strlen(optarg) >= 4096) {
				fprintf(stderr, "brokerd: --metrics-file takes an absolute path, e.g. "
					"/var/lib/prometheus/node-exporter/tagmem.prom\n");
				return 2;
			}
			settings.metrics_file = optarg;
			break;
		case OPT_CDI_SPEC: {
			size_t n = strlen(optarg);

			/* CDI runtimes read only *.json and *.yaml files of their spec directories */
			if (optarg[0] != '/' || n >= 4096 || n < 6 || strcmp(optarg + n - 5, ".json")) {
				fprintf(stderr, "brokerd: --cdi-spec takes an absolute path ending in "
					".json, e.g. /run/cdi/tagmem.json\n");
				return 2;
			}
			settings.cdi_spec = optarg;
			break;
		}
		case OPT_METRICS_INTERVAL:
			if (parse_count("metrics-interval", optarg, 100, 3600000, &v) < 0)
				return 2;
			settings.metrics_interval_ms = (unsigned)v;
			break;
		case OPT_PRESSURE:
			if (!strcmp(optarg, "none")) {
				settings.pressure = NULL;
			} else if (!pressure_trigger_valid(optarg)) {
				fprintf(stderr, "brokerd: --pressure takes a PSI memory trigger, "
					"\"some|full STALL_US WINDOW_US\" (a window of 500000 to "
					"10000000 µs, a stall within it, like \"some 150000 2000000\"), "
					"or none; not '%s'\n", optarg);
				return 2;
			} else {
				settings.pressure = optarg;
			}
			break;
		case OPT_GUEST_DIR: settings.guest_dir = optarg; break;
		case OPT_GUEST_RATE:
			if (parse_count("guest-rate", optarg, 1, 100000, &v) < 0)
				return 2;
			settings.guest_rate = (unsigned)v;
			break;
		case OPT_GUEST_RECLAIM_MS:
			if (parse_count("guest-reclaim-ms", optarg, 0, 60000, &v) < 0)
				return 2;
			settings.guest_reclaim_ms = (unsigned)v;
			break;
		case OPT_GUEST_IDLE:
			if (parse_count("guest-idle", optarg, 1, 86400, &v) < 0)
				return 2;
			settings.guest_idle_s = (unsigned)v;
			break;
		case OPT_FABRIC: settings.fabric_dir = optarg; break;
		case OPT_HOST_ID:
			if (!name_valid(optarg, 64)) {
				fprintf(stderr, "brokerd: --host-id '%s': give 1-64 letters, digits, "
					"'-', '_' or '.'\n", optarg);
				return 2;
			}
			settings.host_id = optarg;
			break;
		case 'v': log_set_max_priority(7); break;
		case 'D': daemonize_opt = true; break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("brokerd %s\n", TAGMEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "brokerd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!settings.fabric_dir != !settings.host_id || (settings.fabric_dir &&
	    strcmp(settings.backend, "sim"))) {
		fprintf(stderr, "brokerd: --fabric DIR and --host-id ID go together, with the sim "
			"backend: this host's capacity then comes from tagmem-fmd in DIR\n");
		return 2;
	}

	if (daemonize_opt) {
		r = daemonize();
		if (r < 0) {
			fprintf(stderr, "brokerd: cannot go to the background: %s\n", strerror(-r));
			return 1;
		}
	}
	r = daemon_init(&d, &settings);
	if (r >= 0)
		r = daemon_run(&d, notify_ready);
	daemon_fini(&d);
	if (r < 0) {
		log_err("Exiting: %s", strerror(-r));
		return 1;
	}
	return 0;
}
