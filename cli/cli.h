/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tagmem command: shared state and helpers for the subcommands (one file each). */
#ifndef TAGMEM_CLI_H
#define TAGMEM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

#include "tagmem.h"
#include "util.h"

/* Exit codes every subcommand uses. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,        /* the request failed, or (lookup) the tag was not found */
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3, /* brokerd could not be reached (and nothing else answered) */
};

struct cli {
	struct tagmem_ctx *ctx;
	const char *socket;  /* NULL: $TAGMEM_SOCKET or the default */
	bool json;
	int timeout_ms;
	bool timeout_given;  /* --timeout was given: long operations keep to it too */
	bool guest;          /* --guest: the socket is the guest agent's */
	const char *peer;    /* who answers on socket, when not brokerd (for messages) */
	const char *peer_hint; /* and what to do when it does not */
	bool error_said;     /* with --json, the one error object is out */
	const char *prog;
};

struct cli_command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary;
};

int cmd_lookup(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_watch(struct cli *cli, int argc, char **argv);
int cmd_claim(struct cli *cli, int argc, char **argv);
int cmd_release(struct cli *cli, int argc, char **argv);
int cmd_fm(struct cli *cli, int argc, char **argv);
int cmd_cluster(struct cli *cli, int argc, char **argv);
/* op "cluster_claim" or "cluster_release" of tag, through this host's tagmem-clusterd. 0, or
 * -(exit status) with the error said. */
int cluster_exclusive(struct cli *cli, const char *op, const char *tagstr, const char *name,
		      int64_t *ret_token);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_image(struct cli *cli, int argc, char **argv);
int cmd_qemu_args(struct cli *cli, int argc, char **argv);
int cmd_attach(struct cli *cli, int argc, char **argv);
/* cmd_libvirt.c: tagmem libvirt-xml, tagmem libvirt-hook (libvirt's qemu hook) */
int cmd_libvirt_xml(struct cli *cli, int argc, char **argv);
int cmd_libvirt_hook(struct cli *cli, int argc, char **argv);
/* tagmem attach --libvirt DOMAIN UUID [--connect URI] (cmd_attach.c hands over) */
int libvirt_attach(struct cli *cli, const char *domain, const char *uri, const char *tagarg);
int cmd_detach(struct cli *cli, int argc, char **argv);
int cmd_flush(struct cli *cli, int argc, char **argv);
/* help.c: the description and options of a command, after its usage line. */
void cli_help_text(const char *cmd);
int cmd_hint(struct cli *cli, int argc, char **argv);
int cmd_vm(struct cli *cli, int argc, char **argv);
/* cmd_migrate.c: tagmem vm migrate-args, tagmem vm migrate */
int vm_migrate_args(struct cli *cli, int argc, char **argv);
int vm_migrate(struct cli *cli, int argc, char **argv);
int cmd_evict(struct cli *cli, int argc, char **argv);

/* Data-plane work (flush, evict) takes as long as the disk needs: wait up to an hour
 * unless the user said otherwise. */
void cli_long_operation(struct cli *cli);
/* progress.c: while a flush or evict of tag runs, its page cache on the terminal; while a VM
 * is saved or restored, brokerd's progress events; cli_progress_stop ends either. */
void cli_watch_image(struct cli *cli, const char *tag, bool evict);
void cli_watch_snapshot(struct cli *cli, const char *vm);
void cli_progress_stop(void);
/* "1.00 GiB" for a byte count in a result (0 when absent). */
const char *cli_size_of(struct json_object *o, const char *key, char *buf, size_t len);

/* Connect, or say why not (and how to fix it) and return EXIT_UNREACHABLE via *ret_exit. */
int cli_connect(struct cli *cli, struct tagmem_client **ret_client, bool quiet);
/*
 * One request/response. On success *ret_result is the result (owned by *ret_reply).
 * Errors are printed ("tagmem: <message>") and mapped to an exit code, returned negative:
 * -EXIT_FAIL, -EXIT_UNREACHABLE.
 */
int cli_call(struct cli *cli, struct json_object *request, struct json_object **ret_reply,
	     struct json_object **ret_result);
/* A typed call's (tagmem_show, tagmem_release, …) failure r on client, said as cli_call says
 * brokerd's refusals; returns the negative exit status. */
int cli_typed_fail(struct cli *cli, struct tagmem_client *client, int r);
/*
 * The common shape of a tag command: validate the UUID argument, send {"op": op, "tag": …}
 * plus args (may be NULL; consumed), and return like cli_call (-EXIT_USAGE for a bad tag).
 * ret_tag receives the canonical tag string.
 */
int cli_call_tag(struct cli *cli, const char *op, const char *tagarg, struct json_object *args,
		 char ret_tag[TAGMEM_TAG_STRING_MAX], struct json_object **ret_reply,
		 struct json_object **ret_result);
/* Print a JSON value the way --json promises: pretty, no slash escapes, newline. */
void cli_print_json(struct json_object *o);
/* Parse a tag argument or print why it is not one. */
int cli_parse_tag(struct cli *cli, const char *arg, tagmem_tag *ret_tag);
/* The n tag arguments as a JSON array of canonical strings; NULL (said) if one is not a tag. */
struct json_object *cli_tags_array(struct cli *cli, int n, char **args);
/* An error, said once: the message on stderr and, with --json, {"error": {code, message}} on
 * stdout; the first error of a run is the one object --json prints. cli_err is the code
 * "invalid_argument" (a usage error, exit 2). */
void cli_fail(struct cli *cli, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define cli_err(cli, ...) cli_fail(cli, "invalid_argument", __VA_ARGS__)
/* Human line for a tag object: used by list, show and watch. */
void cli_print_tag_row(struct json_object *tag);
void cli_print_tag_header(void);
/* Commands with sub-commands ("fm add", "image create"): dispatch on argv[1]. */
int cli_dispatch(struct cli *cli, const char *cmd, const char *synopsis,
		 const struct cli_command *subs, size_t nsubs, int argc, char **argv);
/* A standard "[OPTIONS]" help for a subcommand, or an unknown-option complaint. */
int cli_usage(struct cli *cli, const char *cmd, const char *synopsis, bool error);

#endif
