/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The request API: the front door of brokerd/api. A request line becomes an op
 * (docs/protocol.md is the contract), the op validates its arguments and asks the core (or
 * the data plane, or a VM monitor) to act; answers and events go out through the server.
 *
 *   request ──▶ op (api) ──▶ core verb ──▶ backend adapter
 *                  └──────▶ data plane / VM monitor ──(loop)──▶ answer
 */
#ifndef BROKERD_API_H
#define BROKERD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "settings.h"
#include "tagmem.h"

struct vm_job;
struct backend;
struct client;
struct core;
struct dataplane;
struct guest_vm;
struct guests;
struct json_object;
struct label_batch;
struct textfile;
struct loop;
struct server;
struct snap_job;
struct tag;
struct vms;

/*
 * Where answers and events go (answer.c writes through it, nothing else in api/ talks to
 * peers): brokerd's server and guest channels (transport.c), a recorder in the unit tests.
 * Messages are consumed; one for a peer that has gone is dropped.
 */
struct api_transport {
	void *data;
	/* To host client `serial`, held until registry generation gen is durable (0: now). */
	void (*client)(void *data, uint64_t serial, struct json_object *msg, uint64_t gen);
	void (*client_raw)(void *data, uint64_t serial, char *line, size_t len, uint64_t gen);
	bool (*client_subscribed)(void *data, uint64_t serial);
	void (*subscribe)(void *data, uint64_t serial, bool on);
	/* To the guest of VM (uid, vm), if its channel is connected. */
	void (*guest)(void *data, uid_t uid, const char *vm, struct json_object *msg);
	/* Events: how many listen, and a line to all of them. */
	unsigned (*subscribers)(void *data);
	void (*broadcast)(void *data, const char *line, size_t len);
	/* For status: host clients connected, bytes queued for them. */
	void (*counts)(void *data, unsigned *clients, size_t *queued);
};

/* Counters of what happened, for the metrics file (metrics.c); the rest of what it says is
 * read from the state when it is written. */
#define METRICS_FLUSH_BUCKETS 8        /* 1 ms … 10 s, then +Inf */
#define METRICS_CODES 48
struct api_metrics {
	uint64_t flushes, flush_errors, flush_le[METRICS_FLUSH_BUCKETS + 1];
	uint64_t flush_usec_sum;
	uint64_t evictions[4][2];          /* [request, budget, pressure, global][host, guest] */
	struct { char code[32]; uint64_t n; } refused[METRICS_CODES]; /* by error code */
	unsigned nrefused;
};

/* What requests reach; filled in by the daemon. */
struct api {
	const struct broker_settings *settings;
	struct loop *loop;
	struct core *core;
	struct server *server;
	struct backend *backend;
	struct dataplane *dp;
	struct vms *vms;
	struct guests *guests;        /* guest channels; NULL when off */
	uid_t uid;                    /* the daemon's own uid: may drive the simulated FM */
	uint64_t started_usec;
	uint64_t requests, errors, guest_requests;
	uint64_t next_flush_id;
	int psi_fd;                   /* memory-pressure trigger, -1 when off (upkeep.c) */
	int64_t upkeep_timer;         /* the budgets' tick (loop.h id) */
	struct label_batch *labelling; /* qemu_args waiting for their labels (ops_qemu_args.c) */
	struct reclaim *reclaims;     /* evictions waiting for their guest's answer (reclaim.c) */
	struct snap_job *snaps[8];    /* saves and restores running (progress events) */
	struct vm_chain *chains;      /* where each VM's checkpoints stand (ops_snapshot.c) */
	size_t nchains;
	unsigned ticks;
	uint64_t next_reclaim_id, reclaims_asked, reclaims_answered, reclaims_expired;
	uint64_t pressure_events;
	uint64_t host_budget;         /* cached bytes of all images; 0: none (--resident-budget,
	                               * changed at run time by host_budget) */
	struct vm_share *shares;      /* the image budget by VM, as the last tick saw it */
	size_t nshares, capshares;
	size_t images_unavailable;     /* registry images that could not be opened (daemon's) */
	int pause_marks_fd;           /* VMs a save paused (snapshot.h), -1: none kept */
	struct api_transport transport;
	struct textfile *metrics_file; /* --metrics-file, or NULL (metrics.c) */
	uint64_t metrics_written_usec;
	struct api_metrics metrics;
	struct textfile *cdi_file;     /* --cdi-spec, or NULL (cdi.c) */
	bool cdi_stale;                /* a tag changed since the spec was built */
	char *cdi_last;                /* the spec's last text (written or queued) */
};

/* cdi.c: a tag changed (its spec entry may have); on the upkeep tick, rebuild the CDI spec
 * if so and write it if it differs. */
void api_cdi_changed(struct api *api);
void api_cdi_tick(struct api *api);

/* metrics.c: count an error answered to a host client; on the upkeep tick, write the metrics
 * file when --metrics-interval has passed; a data-plane request finished (flush latency,
 * evictions by reason and chooser). */
void api_metrics_refused(struct api *api, const char *code);
void api_metrics_tick(struct api *api);
struct dp_request;
void api_metrics_work_done(struct api *api, const struct dp_request *d);

/* The transport of brokerd: api->server and api->guests (transport.c). */
void api_transport_default(struct api *api);

struct image_lost;

/* An image file as tagged capacity: fd is the file (checked by the caller), dfd its
 * directory, path its canonical name. layout: where the data starts (0, or the devdax
 * prefix), as brokerd decided it; NULL reads it from the file (adopt, and registries older
 * than the record), which a guest may since have written. budgets: {dirty, resident}, or
 * NULL for the defaults. -EEXIST (tag), -EBUSY (file already an image). */
int api_add_image(struct api *api, const tagmem_tag *tag, const char *path, int fd, int dfd,
		  uint64_t file_size, const uint64_t *layout, const uint64_t budgets[2],
		  struct tag **ret);
/* An image from the registry, at restart: opened below its image directory as create and
 * adopt do, with the writes it had lost (lost->since 0: none). -EMEDIUMTYPE when it is no
 * longer the file recorded. */
int api_restore_image(struct api *api, const tagmem_tag *tag, const char *path,
		      uint64_t file_size, const uint64_t *layout, const uint64_t *inode,
		      const uint64_t budgets[2], const struct image_lost *lost);

/* The server's request callback (userdata: the api). */
void api_request(void *api, struct client *c, const char *line, size_t len);
/* The same for host client `serial` of peer credentials (uid, pid): what api_request does
 * once it knows who asks (the unit tests call it without a server). */
void api_host_request(struct api *api, uid_t uid, pid_t pid, uint64_t serial, const char *line,
		      size_t len);

/* Events to subscribers (events.c): the core's callbacks (userdata: the api), and any event
 * object (consumed). */
void api_tag_event(void *api, const char *name, const struct tag *t);
void api_untagged_event(void *api, int64_t delta, uint64_t total);
void api_emit(struct api *api, struct json_object *event);

/* Saves and restores (ops_snapshot.c): progress events. */
void api_snapshot_progress(struct api *api);

/* The VM monitors' callback (ops_vm.c; userdata: the api). */
void api_vm_exited(void *api, const char *vm, uid_t uid);

/* The guest channels' callbacks (ops_guest.c; userdata: the api). */
void api_guest_connected(void *api, struct guest_vm *g);
void api_guest_request(void *api, struct guest_vm *g, const char *line, size_t len);
bool api_guest_in_use(void *api, uid_t uid, const char *vm);
/* At start: VMs a save paused when brokerd was killed run again (ops_snapshot.c). */
void api_pause_marks_restore(struct api *api);
/* Tell VM (uid, vm)'s guest its slot map again (after its tags changed). */
void api_guest_update(struct api *api, uid_t uid, const char *vm);
/* At start: claims that gave their owner the device node give it again (ops_tags.c). */
void api_grants_restore(struct api *api);
/* At start: listen again for every VM that holds tags (its QEMU reconnects). */
void api_guests_restore(struct api *api);

/* Data-plane answers, budgets and memory pressure on the loop (upkeep.c). */
int upkeep_start(struct api *api);
void upkeep_stop(struct api *api);

#endif
