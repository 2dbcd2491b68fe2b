/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU arguments for one tagged device: memory-backend-file + nvdimm (docs/design.md) or
 * virtio-pmem-pci. */
#include <stdio.h>
#include <string.h>

#include "qemu.h"
#include "slots.h"
#include "util.h"

void qemu_ids(const tagmem_tag *tag, bool virtio_pmem, char object_id[QEMU_ID_MAX],
	      char device_id[QEMU_ID_MAX])
{
	char s[TAGMEM_TAG_STRING_MAX];

	/* the whole tag: two tags that share a prefix must not share an id in one VM */
	tagmem_tag_format(tag, s);
	snprintf(object_id, QEMU_ID_MAX, "tm-%s", s);
	snprintf(device_id, QEMU_ID_MAX, "%s-%s", virtio_pmem ? "tmvp" : "tmnv", s);
}

int qemu_args_build(const struct qemu_dev_spec *spec, char *object, size_t olen, char *device,
		    size_t dlen)
{
	char oid[QEMU_ID_MAX], did[QEMU_ID_MAX];
	int n;

	if (!spec->mem_path || strchr(spec->mem_path, ',') || spec->slot >= NVDIMM_MAX_SLOTS ||
	    !spec->size)
		return -EINVAL; /* a comma would end QEMU's option value early */
	qemu_ids(&spec->tag, spec->virtio_pmem, oid, did);
	n = snprintf(object, olen, "memory-backend-file,id=%s,mem-path=%s,size=%llu,share=on%s",
		     oid, spec->mem_path, (unsigned long long)spec->size,
		     spec->devdax || spec->labelled ? ",align=2M" : "");
	if (n < 0 || (size_t)n >= olen)
		return -ENAMETOOLONG;
	if (spec->virtio_pmem)
		n = snprintf(device, dlen, "virtio-pmem-pci,id=%s,memdev=%s", did, oid);
	else
		n = snprintf(device, dlen, "nvdimm,id=%s,memdev=%s,slot=%u%s", did, oid,
			     spec->slot, spec->labelled ? ",label-size=128K" : "");
	if (n < 0 || (size_t)n >= dlen)
		return -ENAMETOOLONG;
	return 0;
}

int qemu_smbios_build(const struct qemu_dev_spec *spec, char *buf, size_t len)
{
	char oem[SLOT_OEM_MAX];
	int n;

	if (spec->labelled || spec->virtio_pmem || spec->slot >= NVDIMM_MAX_SLOTS)
		return -EINVAL;
	/* a cold-plugged DIMM keeps its slot for the VM's life, so the firmware table stays true */
	slot_oem_string(spec->slot, &spec->tag, oem);
	n = snprintf(buf, len, "type=11,value=%s", oem);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
