/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU arguments for one tagged device: memory-backend-file + nvdimm (docs/design.md) or
 * virtio-pmem-pci. */
#include <stdio.h>
#include <string.h>

#include "qemu.h"
#include "util.h"

int qemu_args_build(const struct qemu_dev_spec *spec, char *object, size_t olen, char *device,
		    size_t dlen)
{
	char tag[TAGMEM_TAG_STRING_MAX];
	int n;

	if (!spec->mem_path || strchr(spec->mem_path, ',') || spec->slot >= NVDIMM_MAX_SLOTS ||
	    !spec->size)
		return -EINVAL; /* a comma would end QEMU's option value early */
	tagmem_tag_format(&spec->tag, tag);
	tag[8] = '\0';
	n = snprintf(object, olen, "memory-backend-file,id=tm-%s,mem-path=%s,size=%llu,share=on%s",
		     tag, spec->mem_path, (unsigned long long)spec->size,
		     spec->devdax || spec->labelled ? ",align=2M" : "");
	if (n < 0 || (size_t)n >= olen)
		return -ENAMETOOLONG;
	if (spec->virtio_pmem)
		n = snprintf(device, dlen, "virtio-pmem-pci,id=tmvp-%s,memdev=tm-%s", tag, tag);
	else
		n = snprintf(device, dlen, "nvdimm,id=tmnv-%s,memdev=tm-%s,slot=%u%s", tag, tag,
			     spec->slot, spec->labelled ? ",label-size=128K" : "");
	if (n < 0 || (size_t)n >= dlen)
		return -ENAMETOOLONG;
	return 0;
}
