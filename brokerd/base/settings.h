/* SPDX-License-Identifier: GPL-2.0-or-later */
/* brokerd's settings: every path it uses and every limit a client can push against is a
 * named setting (brokerd --help lists them). Plain data, read by every subsystem. */
#ifndef BROKERD_SETTINGS_H
#define BROKERD_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "view.h"

struct broker_settings {
	const char *socket_path;      /* listening socket (ignored when socket-activated) */
	const char *state_dir;        /* registry lives here */
	const char *backend;          /* "sim" or "host" */
	const char *host_root;        /* sysfs root of the host backend ("/"; a fixture in tests) */
	enum view_nd_policy nd_policy; /* which NVDIMM namespaces are tagged capacity */
	const char *trace_pipe;       /* read DCD trace records from here instead of tracefs */
	const char *image_dirs[8];    /* images may only live directly in these */
	unsigned nimage_dirs;         /* 0: <state_dir>/images */
	const char *sim_root;         /* simulator sandbox: sysfs-like tree + backing files */
	uint64_t sim_region_size;     /* capacity of each simulated DCD region */
	enum dcd_series sim_dcd;      /* the DCD kernel series the simulator follows */
	const char *fabric_dir;       /* a fabric manager several hosts share (tagmem-fmd), or NULL */
	const char *host_id;          /* this host's id at that fabric manager */
	unsigned max_clients;         /* connections served at once; more are told and closed */
	unsigned max_clients_per_uid; /* connections of one uid (root and brokerd's own: no limit) */
	size_t max_line;              /* longest request line, bytes */
	unsigned max_subscribers;     /* clients subscribed to events at once */
	size_t max_output;            /* bytes queued to one slow client before it is dropped */
	size_t max_output_total;      /* bytes queued to all clients together (see server/) */
	unsigned request_timeout_ms;  /* a partial line older than this closes the client */
	unsigned max_tags;            /* tags tracked; capacity beyond it is logged and ignored */
	unsigned max_name;            /* longest claim name */
	unsigned flush_workers;       /* data-plane worker threads (flush, evict, budgets) */
	uint64_t dirty_budget;        /* default per-image dirty budget, bytes; 0: none */
	uint64_t resident_budget;     /* all images together, bytes; 0: no global budget */
	unsigned upkeep_interval_ms;  /* how often budgets are checked */
	const char *pressure;         /* PSI trigger ("some 150000 2000000") or NULL: off */
	const char *proc_root;        /* where /proc is ("/proc"; tests may point elsewhere) */
	const char *guest_dir;        /* guest channel sockets; NULL: next to the socket; "none" */
	unsigned guest_rate;          /* requests per second one guest gets handled */
	unsigned guest_reclaim_ms;    /* how long an eviction waits for the guest's choice; 0: off */
	unsigned guest_idle_s;        /* an unconnected channel of a VM with no tags ends after */
	const char *metrics_file;     /* Prometheus text for node_exporter, or NULL: none */
	unsigned metrics_interval_ms; /* how often it is written */
	const char *cdi_spec;         /* the CDI spec of the tags for containers, or NULL: none */
};

void broker_settings_defaults(struct broker_settings *s);

#endif
