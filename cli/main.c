/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tagmem: the command-line client. Global options may appear anywhere before "--". */
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
	{ "lookup", cmd_lookup, "print the device path of a tag" },
	{ "list", cmd_list, "list every tag brokerd knows" },
	{ "show", cmd_show, "show one tag in detail" },
	{ "watch", cmd_watch, "stream events until interrupted" },
	{ "claim", cmd_claim, "claim a ready tag for the calling user" },
	{ "release", cmd_release, "release a claimed tag" },
	{ "fm", cmd_fm, "drive a simulated fabric manager (add, release, add-host, list)" },
	{ "cluster", cmd_cluster, "the cluster tag directory on etcd: which hosts have a tag" },
	{ "status", cmd_status, "summarise brokerd's state" },
	{ "image", cmd_image, "create, adopt, budget or invalidate fake-DAX images" },
	{ "qemu-args", cmd_qemu_args, "claim tags for a VM and print its QEMU arguments" },
	{ "libvirt-xml", cmd_libvirt_xml, "claim tags for a libvirt domain and print its XML" },
	{ "libvirt-hook", cmd_libvirt_hook, "libvirt's qemu hook: claim at start, release at end" },
	{ "attach", cmd_attach, "hot-plug a tag into a running VM over QMP" },
	{ "detach", cmd_detach, "mark an attached tag for release when its VM exits" },
	{ "flush", cmd_flush, "make an image's cached writes durable (all or a range)" },
	{ "evict", cmd_evict, "write back and drop an image's cached pages" },
	{ "vm", cmd_vm, "save a VM's tagged memory and device state to a file, or restore it" },
	{ "hint", cmd_hint, "in a VM: mark a range cold (given back first) or hot" },
};

static void usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s [--json] [--socket PATH | --guest] [--timeout MS] <command> [ARGS]\n\n"
		   "Commands:\n", prog);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-12s  %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -j, --json          machine-readable output\n"
		   "  -S, --socket PATH   brokerd socket [$TAGMEM_SOCKET or %s]\n"
		   "  -G, --guest         in a VM: the host's brokerd, through the guest agent\n"
		   "                      (flush of this VM's images) [" TAGMEM_GUEST_SOCKET "]\n"
		   "      --timeout MS    how long to wait for brokerd [10000]\n"
		   "  -h, --help          show this help\n"
		   "  -v, --version       print the version\n"
		   "      help COMMAND    the options of one command\n\n"
		   "Exit status: 0 success, 1 failure or not found, 2 usage, 3 brokerd unreachable.\n"
		   "See tagmem(1).\n", TAGMEM_DEFAULT_SOCKET);
}

/* Pull the global options out of argv wherever they are; returns the new argc or -1. */
static int take_global_options(struct cli *cli, int argc, char **argv)
{
	int out = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			while (i < argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			cli->json = true;
		} else if (!strcmp(a, "-S") || !strcmp(a, "--socket") || !strcmp(a, "--timeout")) {
			if (i + 1 >= argc) {
				cli_err(cli, "%s needs a value", a);
				return -1;
			}
			if (!strcmp(a, "--timeout")) {
				uint64_t v;
				if (parse_size(argv[i + 1], &v) < 0 || v == 0 || v > INT32_MAX) {
					cli_err(cli, "--timeout takes milliseconds");
					return -1;
				}
				cli->timeout_ms = (int)v;
				cli->timeout_given = true;
			} else {
				cli->socket = argv[i + 1];
			}
			i++;
		} else if (!strncmp(a, "--socket=", 9)) {
			cli->socket = a + 9;
		} else if (!strcmp(a, "-G") || !strcmp(a, "--guest")) {
			cli->guest = true;
			cli->socket = getenv("TAGMEM_GUEST_SOCKET") ? getenv("TAGMEM_GUEST_SOCKET") :
				      TAGMEM_GUEST_SOCKET;
		} else {
			argv[out++] = argv[i];
		}
	}
	argv[out] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	struct cli cli = { .timeout_ms = 10000, .prog = "tagmem" };
	int r;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) /* errors below speak JSON too */
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json"))
			cli.json = true;
	argc = take_global_options(&cli, argc, argv);
	if (argc < 0)
		return EXIT_USAGE;
	if (argc < 2) {
		usage(stderr, cli.prog);
		cli_err(&cli, "a command is required (see '%s --help')", cli.prog);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    (!strcmp(argv[1], "help") && argc == 2)) {
		usage(stdout, cli.prog);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "help") && argc > 2 && !strcmp(argv[2], "help")) {
		usage(stdout, cli.prog); /* help on help is the help */
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "help") && argc > 2) {
		/* "tagmem help claim" is "tagmem claim --help" */
		argv[1] = argv[2];
		argv[2] = "--help";
		argc = 3;
	} else if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-v") ||
		   !strcmp(argv[1], "version")) {
		printf("tagmem %s\n", tagmem_get_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		r = tagmem_new(&cli.ctx);
		if (r < 0) {
			cli_fail(&cli, "internal", "cannot initialise libtagmem: %s", strerror(-r));
			return EXIT_FAIL;
		}
		r = commands[i].fn(&cli, argc - 1, argv + 1);
		tagmem_unref(cli.ctx);
		/* A full disk or closed pipe on stdout is a failure, not a silent success. */
		if (fflush(stdout) != 0 || ferror(stdout)) {
			cli_fail(&cli, "io_error", "failed to write output: %s", strerror(errno));
			return EXIT_FAIL;
		}
		return r;
	}
	cli_err(&cli, "unknown command '%s' (see '%s --help')", argv[1], cli.prog);
	return EXIT_USAGE;
}
