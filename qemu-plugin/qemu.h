/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QEMU adapter: what it takes to hand tagged capacity to a QEMU 7.2 guest as an nvdimm
 * whose namespace label carries the tag, so an unmodified guest finds it by tag.
 *   - NVDIMM namespace labels, v1.1 (the format `ndctl init-labels` writes; Linux
 *     drivers/nvdimm/label.h), in the last 128 KiB of the backend;
 *   - the -object/-device arguments for memory-backend-file + nvdimm.
 * Internal to tagmem (brokerd, the CLI and tests link it); docs/design.md says how they fit.
 */
#ifndef TAGMEM_QEMU_H
#define TAGMEM_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tagmem.h"

#define LABEL_AREA_SIZE (128u << 10)  /* QEMU nvdimm label-size; the kernel's minimum */
#define LABEL_INDEX_SIZE 256u
#define LABEL_SIZE 128u               /* v1.1 */
#define LABEL_NSLOT ((LABEL_AREA_SIZE - 2 * LABEL_INDEX_SIZE) / LABEL_SIZE) /* 1020 */
#define LABEL_NAME_MAX 64
#define NVDIMM_MAX_SLOTS 256          /* QEMU's nvdimm slot range */
#define NVDIMM_BACKEND_ALIGN (2u << 20)
#define NVDIMM_REGION_ALIGN (16u << 20) /* the guest kernel's default region alignment */

/*
 * Labelled capacity layout: data at offset 0 (famfs and friends need tag offset 0 at device
 * offset 0), then a 2 MiB tail whose last 128 KiB is the label area. With align=2M QEMU
 * exposes ALIGN_DOWN(size - 128K, 2M) = the data part exactly.
 */
#define LABEL_TAIL (2u << 20)

/* v1.1 interleave-set cookie of a QEMU nvdimm in slot N, as a Linux guest computes it:
 * (2·S << 32) | S with S = 0x123456 + N. */
uint64_t label_isetcookie(unsigned slot);
/* fletcher64 over len bytes (len a multiple of 4), little-endian 32-bit words. */
uint64_t label_fletcher64(const void *buf, size_t len);

struct label_info {
	tagmem_tag tag;
	char name[LABEL_NAME_MAX + 1];
	uint64_t isetcookie, dpa, rawsize;
	unsigned slot;      /* the label's slot in the area */
};

/*
 * Build a label area holding one namespace label: uuid = tag, name, the cookie for nvdimm
 * slot `dimm_slot`, dpa 0, rawsize. buf is LABEL_AREA_SIZE bytes. -EINVAL for a slot out
 * of range, a null tag, a name too long, or a size not a multiple of 16 MiB.
 */
int label_area_build(uint8_t *buf, const tagmem_tag *tag, const char *name,
		     unsigned dimm_slot, uint64_t rawsize);
/*
 * Parse a label area: the current index (by sequence), then its in-use labels (at most
 * max). Returns the number of labels; 0 for an area that was never initialised (all zero);
 * -EBADMSG when the index blocks are corrupt.
 */
int label_area_parse(const uint8_t *buf, struct label_info *ret, size_t max);

/* Read or write the label area at the tail of a backing file. */
int label_area_read_file(int fd, uint64_t file_size, uint8_t *buf);
int label_area_write_file(int fd, uint64_t file_size, const uint8_t *buf);

/*
 * Write the label for tag into the tail of a labelled-capacity file (refusing cleanly:
 * -EFBIG/-ENOSPC too small, -EINVAL misaligned or slot out of range, -EEXIST the area holds
 * another namespace). The data part is file_size - LABEL_TAIL.
 */
int label_write_for_tag(int fd, uint64_t file_size, const tagmem_tag *tag, const char *name,
			unsigned dimm_slot);

/* ---- the devdax and fsdax image layouts (daxinfo.c) ---- */

/*
 * An image with layout "devdax" or "fsdax": [DAX_PREFIX: an info block at DAX_INFO_OFFSET]
 * [data][LABEL_TAIL]. The label's namespace is prefix + data; the guest kernel finds the
 * info block and makes of the data alone, its offset 0 the tag's offset 0, a /dev/daxX.Y
 * (devdax) or a /dev/pmemX that a filesystem mounts with -o dax (fsdax: the guest keeps no
 * page cache of its files; the host's is the only one). The prefix is a whole 16 MiB so the
 * namespace stays a multiple of the guest's region alignment.
 */
enum dax_info_kind { DAX_INFO_DEVDAX, DAX_INFO_FSDAX };
#define DAX_PREFIX (16u << 20)
#define DAX_INFO_OFFSET 4096u
#define DAX_INFO_SIZE 4096u

/* The info block for a namespace of ns_size bytes (prefix + data) whose uuid is tag;
 * dax_uuid names the dax or pfn device. -EINVAL for null uuids or a size the layout cannot
 * have. */
int dax_info_build(uint8_t *buf, enum dax_info_kind kind, const tagmem_tag *tag,
		   const tagmem_tag *dax_uuid, uint64_t ns_size);
/* The namespace uuid, data offset and kind an info block names (ret_kind may be NULL):
 * -ENOENT (no block), -EBADMSG. */
int dax_info_parse(const uint8_t *buf, tagmem_tag *ret_parent, uint64_t *ret_dataoff,
		   enum dax_info_kind *ret_kind);

/* ---- QEMU arguments ---- */

struct qemu_dev_spec {
	tagmem_tag tag;
	const char *mem_path;
	uint64_t size;        /* the whole backend */
	bool devdax;          /* a /dev/daxN.M (align=2M) rather than a file */
	bool labelled;        /* label-size=128K (the tail holds our label) */
	bool virtio_pmem;     /* virtio-pmem-pci instead of nvdimm: the guest's flushes reach
				 QEMU, which fsyncs the file; no label, no slot */
	unsigned slot;
};

/*
 * The -object and -device values for one spec (without the "-object"/"-device" words).
 * ids derive from the tag: "tm-<first 8 hex>" and "tmnv-<first 8 hex>" ("tmvp-" for
 * virtio-pmem).
 */
/* object and device: at least QEMU_ARG_MAX + the mem-path, and QEMU_ARG_MAX bytes. */
int qemu_args_build(const struct qemu_dev_spec *spec, char *object, size_t olen, char *device,
		    size_t dlen);
#define QEMU_ARG_MAX 192

/*
 * The -smbios value that names a label-less nvdimm's tag to the guest (libtagmem's slot map):
 * "type=11,value=tagmem.nvdimm.<slot>=<uuid>". Labelled and virtio-pmem devices need none;
 * -EINVAL for them.
 */
int qemu_smbios_build(const struct qemu_dev_spec *spec, char *buf, size_t len);

/* The QEMU ids of a tag's memory backend and device (the same for -object/-device and for
 * hot-plug over QMP): "tm-<tag>", "tmnv-<tag>" or "tmvp-<tag>". */
#define QEMU_ID_MAX 48
void qemu_ids(const tagmem_tag *tag, bool virtio_pmem, char object_id[QEMU_ID_MAX],
	      char device_id[QEMU_ID_MAX]);

#endif
