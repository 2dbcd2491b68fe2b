/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tags that come from NVDIMM namespaces, and the tag of any dax or pmem device.
 *
 * A namespace label carries a uuid; a guest handed tagged capacity as an nvdimm with a label
 * whose uuid is the tag sees it as /sys/bus/nd/devices/namespaceX.Y/uuid. The namespace is
 * exposed as a block device (raw: namespace/block/pmemN; fsdax: via a pfn device) or as a
 * devdax character device (via an nd dax device). Internal to tagmem; not installed.
 */
#ifndef TAGMEM_ND_H
#define TAGMEM_ND_H

#include "sysfs.h"

#define ND_DEVICES "sys/bus/nd/devices"
#define ND_NAME_MAX 64

enum nd_kind { ND_KIND_NONE, ND_KIND_PMEM, ND_KIND_DAX };

struct nd_namespace {
	char name[32];               /* namespaceX.Y */
	bool tagged;
	tagmem_tag tag;
	char alt_name[ND_NAME_MAX];  /* the label's name ("" if none) */
	char mode[16];               /* raw, fsdax, devdax, sector */
	uint64_t size;
	enum nd_kind kind;
	char device[32];             /* pmemN or daxX.Y once enabled, else "" */
	int dimm_slot;               /* label-less: the QEMU nvdimm slot of its one DIMM, or -1 */
	bool from_slot;              /* tag: named by the slot map, not by a label (view.c) */
};

/* Read one namespace; -ENOENT if absent. An io (label-less) namespace is untagged; its
 * dimm_slot says where the slot map (slots.h) may name its tag. */
int nd_read_namespace(struct sysfs *s, const char *name, struct nd_namespace *ret);
/* All namespaces. Free with free(). */
int nd_scan(struct sysfs *s, struct nd_namespace **ret, size_t *ret_count);

#endif
