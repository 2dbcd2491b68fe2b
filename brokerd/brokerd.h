/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * brokerd: the front door of the daemon's folder. The daemon owns tagged capacity: it learns
 * about capacity from a backend (simulated DCD or, later, the real CXL kernel interfaces),
 * keeps a table of tags, persists what the kernel does not know (claims and owners) in the
 * registry, and serves clients over a Unix socket (docs/protocol.md).
 *
 * Threads: everything here runs on the single event-loop thread, except the registry
 * persister (persist.c), which only writes files and reports back through an eventfd.
 */
#ifndef BROKERD_H
#define BROKERD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tagmem.h"
#include "dataplane.h"

struct json_object;
struct loop;
struct backend;
struct persister;
struct client;
struct vm_monitor;

/* ---- logging (log.c): stderr, with journald priority prefixes under systemd ---------- */

void log_msg(int priority, const char *format, ...) __attribute__((format(printf, 2, 3)));
void log_set_max_priority(int priority);
#define log_err(...) log_msg(3, __VA_ARGS__)
#define log_warn(...) log_msg(4, __VA_ARGS__)
#define log_info(...) log_msg(6, __VA_ARGS__)
#define log_debug(...) log_msg(7, __VA_ARGS__)

enum nd_policy {
	ND_POLICY_TAGMEM, /* namespaces whose label name starts with "tagmem" */
	ND_POLICY_ALL,    /* every namespace with a uuid */
	ND_POLICY_NONE,
};

/* Every limit a client can push against is a named setting (brokerd --help lists them). */
struct broker_settings {
	const char *socket_path;      /* listening socket (ignored when socket-activated) */
	const char *state_dir;        /* registry lives here */
	const char *backend;          /* "sim" or "host" */
	const char *host_root;        /* sysfs root of the host backend ("/"; a fixture in tests) */
	enum nd_policy nd_policy;     /* which NVDIMM namespaces are tagged capacity */
	const char *trace_pipe;       /* read DCD trace records from here instead of tracefs */
	const char *image_dirs[8];    /* images may only live directly in these */
	unsigned nimage_dirs;         /* 0: <state_dir>/images */
	const char *sim_root;         /* simulator sandbox: sysfs-like tree + backing files */
	uint64_t sim_region_size;     /* capacity of each simulated DCD region */
	unsigned max_clients;         /* connections served at once; more are told and closed */
	size_t max_line;              /* longest request line, bytes */
	unsigned max_subscribers;     /* clients subscribed to events at once */
	size_t max_output;            /* bytes queued to one slow client before it is dropped */
	unsigned request_timeout_ms;  /* a partial line older than this closes the client */
	unsigned max_tags;            /* tags tracked; capacity beyond it is logged and ignored */
	unsigned max_name;            /* longest claim name */
	unsigned flush_workers;       /* data-plane worker threads (flush, evict, budgets) */
	uint64_t dirty_budget;        /* default per-image dirty budget, bytes; 0: none */
	uint64_t resident_budget;     /* all images together, bytes; 0: no global budget */
	unsigned upkeep_interval_ms;  /* how often budgets are checked */
	const char *pressure;         /* PSI trigger ("some 150000 2000000") or NULL: off */
	const char *proc_root;        /* where /proc is ("/proc"; tests may point elsewhere) */
};

void broker_settings_defaults(struct broker_settings *s);

/* ---- tags (tags.c) ------------------------------------------------------------------- */

enum tag_state {
	TAG_ADDED,           /* extents present, no device yet */
	TAG_READY,           /* device materialised, nobody holds it */
	TAG_CLAIMED,         /* held by an owner */
	TAG_RELEASE_PENDING, /* fabric manager wants it back; waits for the owner */
	TAG_RELEASED,        /* gone: only ever seen in the tag_released event */
};
#define TAG_STATE_COUNT 5

struct tag_owner {
	uid_t uid;
	pid_t pid;
	char name[128];  /* what the owner calls it; the VM name for QEMU attachments */
	int64_t since;   /* realtime seconds */
	int slot;        /* nvdimm slot in that VM, -1 when not attached to a VM */
};

struct tag_entry {
	tagmem_tag tag;
	char tag_str[TAGMEM_TAG_STRING_MAX];
	enum tag_state state;
	unsigned region;
	bool shared;
	unsigned nextents;
	uint64_t size;          /* sum of the tag's extents */
	char device[32];        /* "dax0.3" once ready */
	char *path;             /* device node path once ready */
	bool claimed;
	struct tag_owner owner; /* valid when claimed */
	bool release_requested; /* the fabric manager asked for it back */
	bool materialise_failed; /* logged once; retried when the backend reports a change */
	bool image;             /* a broker-owned image file, not something a backend reports */
	bool attaching;         /* a hot-plug is in flight: claimed provisionally, not persisted */
	bool attached;          /* hot-plugged through a VM monitor we hold */
	bool detach_pending;    /* asked to detach; released when the VM exits */
	uint64_t file_size;     /* images: data + label tail */
	struct image_io *io;    /* images: the open file the data plane works on */
	struct image_budgets budgets; /* images: persisted in the registry */
	bool evicting;          /* images: a budget or pressure eviction is in flight */
	unsigned scan_mark;     /* backend bookkeeping: last rescan that saw this tag */
	struct tag_entry *hnext;             /* hash chain */
	struct tag_entry *prev, *next;       /* table order: oldest first */
};

struct tag_table {
	struct tag_entry **buckets;
	size_t nbuckets, count;
	struct tag_entry *head, *tail;
};

int tag_table_init(struct tag_table *t);
void tag_table_clear(struct tag_table *t);
struct tag_entry *tag_table_find(struct tag_table *t, const tagmem_tag *tag);
int tag_table_add(struct tag_table *t, const tagmem_tag *tag, struct tag_entry **ret);
void tag_table_remove(struct tag_table *t, struct tag_entry *e);
const char *tag_state_name(enum tag_state s);
struct json_object *tag_to_json(const struct tag_entry *e);

/* ---- registry (registry.c): what the kernel does not remember ----------------------- */

struct registry_claim {
	tagmem_tag tag;
	struct tag_owner owner;
};

struct registry_image {
	tagmem_tag tag;
	char path[PATH_MAX];
	uint64_t file_size;
	struct image_budgets budgets;
	bool has_budgets;        /* absent in registries written before budgets existed */
};

struct registry {
	struct registry_claim *claims;
	size_t nclaims;
	struct registry_image *images;
	size_t nimages;
};

/* Parse registry text; -EBADMSG on anything malformed (the file is never half-trusted). */
int registry_parse(const char *text, size_t len, struct registry *ret);
int registry_load(const char *state_dir, struct registry *ret);
void registry_clear(struct registry *r);
/* Serialise the claims held in the table. Caller frees. */
char *registry_serialize(struct tag_table *t, size_t *ret_len);
/* temp file + fsync + rename + directory fsync. */
int registry_write_atomic(const char *state_dir, const char *data, size_t len);
#define REGISTRY_FILE "registry.json"

/* ---- persister (persist.c): registry writes off the event loop ---------------------- */

int persister_start(const char *state_dir, struct persister **ret);
void persister_stop(struct persister *p);
int persister_fd(struct persister *p);
/* Queue a snapshot (ownership taken); returns its generation. Later snapshots supersede. */
uint64_t persister_submit(struct persister *p, char *data, size_t len);
/* After the fd polls readable: highest finished generation and its result (0 or -errno). */
void persister_completed(struct persister *p, uint64_t *ret_gen, int *ret_error);

/* ---- the broker ------------------------------------------------------------------------ */

struct broker {
	struct broker_settings settings;
	struct tagmem_ctx *ctx;
	struct loop *loop;
	struct backend *backend;
	struct persister *persister;
	struct tag_table tags;
	uint64_t untagged_bytes;      /* capacity without a tag: a host may online it as RAM */
	uint64_t persist_gen;         /* newest registry snapshot submitted */
	uint64_t persist_done_gen;    /* newest one known durable */
	bool persist_failed;          /* the last write failed: memory is ahead of the disk */
	bool persist_retry_armed;     /* a retry timer is pending */
	int listen_fd;
	bool listen_fd_inherited;
	struct client *clients;
	unsigned nclients, nsubscribers;
	uint64_t started_usec;
	uint64_t requests, errors;
	uid_t uid;                    /* the daemon's own uid: may drive the simulated FM */
	struct vm_monitor *vms;       /* VMs with a live QMP connection (vm.c) */
	uint64_t next_client_serial;
	struct registry_claim *boot_claims; /* registry claims during the start-up scan */
	size_t nboot_claims;
	struct dataplane *dp;         /* flush/evict workers (dataplane.h) */
	uint64_t next_flush_id;
	int psi_fd;                   /* memory-pressure trigger, -1 when off */
	uint64_t pressure_events;
};

int broker_init(struct broker *b, const struct broker_settings *settings);
void broker_fini(struct broker *b);
/* Serve until SIGINT/SIGTERM; ready() is called once the socket accepts clients. */
int broker_run(struct broker *b, void (*ready)(void));

/* Called by backends (backend.h) when they learn something. */
void broker_tag_seen(struct broker *b, const tagmem_tag *tag, unsigned region, bool shared,
		     uint64_t size, unsigned nextents);
void broker_tag_device(struct broker *b, const tagmem_tag *tag, const char *device,
		       const char *path);
void broker_tag_release_requested(struct broker *b, const tagmem_tag *tag);
void broker_tag_gone(struct broker *b, const tagmem_tag *tag);
void broker_untagged(struct broker *b, int64_t delta_bytes);
/* A broker-owned image file (data + label tail) as tagged capacity; budgets NULL for the
 * defaults. -EEXIST; errors opening the file. */
int broker_add_image(struct broker *b, const tagmem_tag *tag, const char *path,
		     uint64_t file_size, const struct image_budgets *budgets);
/* The image whose file is this inode, if any (one file, one image). */
struct tag_entry *broker_find_image_file(struct broker *b, dev_t dev, ino_t ino);

/* ---- upkeep (upkeep.c): data-plane results, budgets, memory pressure ------------------ */

int upkeep_start(struct broker *b);
void upkeep_stop(struct broker *b);
/* After a backend call: materialise every tag that has extents but no device yet. */
void broker_settle(struct broker *b);

/* Events to subscribers: {"event": name, "tag": {...}}. */
void broker_emit_tag_event(struct broker *b, const char *name, const struct tag_entry *e);
void broker_emit_event(struct broker *b, struct json_object *event);

/* Persist the claims now; returns the generation a reply must wait for. */
uint64_t broker_persist(struct broker *b);

/* ---- server (server.c) ----------------------------------------------------------------- */

int server_listen(struct broker *b);
void server_close_all(struct broker *b);
struct client_info {
	uid_t uid;
	pid_t pid;
	bool subscribed;
	uint64_t serial;        /* unique for the daemon's life: answers find their client */
};
struct client *server_find_client(struct broker *b, uint64_t serial);
const struct client_info *client_info(const struct client *c);
void client_set_subscribed(struct broker *b, struct client *c, bool on);
/* Queue a reply; if wait_gen > 0 it is held until that registry generation is durable. */
void client_reply(struct broker *b, struct client *c, struct json_object *reply,
		  uint64_t wait_gen);
/* A reply that was already serialised (large results streamed without a DOM). */
void client_reply_raw(struct broker *b, struct client *c, char *data, size_t len,
		      uint64_t wait_gen);
void server_persist_done(struct broker *b, uint64_t gen, int error);
void server_broadcast(struct broker *b, const char *line, size_t len);

/* ---- operations (ops.c) ---------------------------------------------------------------- */

void ops_handle(struct broker *b, struct client *c, const char *line, size_t len);

#endif
