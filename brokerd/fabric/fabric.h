/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The simulated fabric manager of several hosts: the front door of brokerd/fabric, run by
 * tagmem-fmd. It owns a pool (the same kernel-like extent tree the embedded simulator keeps,
 * so allocation works the same), each allocation's bytes (one file per tag: every host that
 * has the tag maps that file, so they see the same bytes), and the hosts that hold a
 * reference to each tag (FM-API DC Add/Remove Reference, List Tags). Everything is durable
 * across kill -9: a change is on disk before it is acknowledged or told to a host.
 *
 *   <dir>/pool/...        the allocation map (sim.h's tree)
 *   <dir>/bytes/<tag>     the allocation's memory
 *   <dir>/refs/<tag>      the hosts holding a reference, one per line
 */
#ifndef BROKERD_FABRIC_H
#define BROKERD_FABRIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tagmem.h"

#define FABRIC_MAX_HOSTS 64     /* references per tag (List Tags' bitmap) */
#define FABRIC_HOST_MAX 64      /* a host id: 1-64 letters, digits, '-', '_' or '.' */
#define FABRIC_MAX_EXTENTS 4096 /* extents of one tag told to a host */

struct fabric;
struct json_object;

struct fabric_tag {
	tagmem_tag tag;
	bool shared;
	unsigned region;        /* 0 private, 1 sharable */
	uint64_t size;
	size_t nhosts;
	char hosts[FABRIC_MAX_HOSTS][FABRIC_HOST_MAX + 1];
};

int fabric_open(const char *dir, uint64_t region_size, struct fabric **ret);
void fabric_close(struct fabric *f);
uint64_t fabric_region_size(const struct fabric *f);
bool fabric_valid_host(const char *host);

/*
 * Allocate size bytes as tag (NULL: a new tag) for hosts[0..n). Shared capacity may have any
 * number of hosts; private capacity exactly one. -EINVAL, -EEXIST (the tag exists), -ENOSPC.
 */
int fabric_add(struct fabric *f, uint64_t size, const tagmem_tag *tag, bool shared,
	       const char *const *hosts, size_t nhosts, const struct fabric_tag **ret);
/* One more host for a shared tag (DC Add Reference). -ENOENT, -EINVAL (private), -EEXIST
 * (it has it already), -ENOSPC (FABRIC_MAX_HOSTS). */
int fabric_add_reference(struct fabric *f, const tagmem_tag *tag, const char *host);
/* A host gives the tag back (host NULL: every host). When no host holds it any more the
 * capacity returns to the pool and *ret_freed is set. -ENOENT (tag, or host has not it). */
int fabric_remove_reference(struct fabric *f, const tagmem_tag *tag, const char *host,
			    bool *ret_freed);

const struct fabric_tag *fabric_find(const struct fabric *f, const tagmem_tag *tag);
bool fabric_tag_has_host(const struct fabric_tag *t, const char *host);
size_t fabric_ntags(const struct fabric *f);
const struct fabric_tag *fabric_tag_at(const struct fabric *f, size_t i);
/* Bytes still free in region 0 or 1. */
uint64_t fabric_free(const struct fabric *f, unsigned region);

/* {tag, shared, region, size, extents: [{offset, length}] in sequence order, hosts: [...]} */
struct json_object *fabric_tag_json(struct fabric *f, const struct fabric_tag *t);

/* service.c: the socket protocol over brokerd's server/ (docs/fabric.md). */
struct fabric_service;
struct server;
struct client;
int fabric_service_new(struct fabric *fab, struct fabric_service **ret);
/* Answer through srv (whose request callback is fabric_service_request). */
void fabric_service_serve(struct fabric_service *fs, struct server *srv);
void fabric_service_free(struct fabric_service *fs);
/* The server's request callback (userdata: the service). */
void fabric_service_request(void *userdata, struct client *c, const char *line, size_t len);

#endif
