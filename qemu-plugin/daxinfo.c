/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The info block of the "devdax" and "fsdax" image layouts: what lets an unmodified Linux
 * guest turn the image's namespace into a /dev/daxX.Y (devdax), or a /dev/pmemX a filesystem
 * can mount with -o dax (fsdax), whose offset 0 is the tag's offset 0.
 *
 * Linux looks for it 4 KiB into a namespace (drivers/nvdimm/pfn.h, struct nd_pfn_sb, 4 KiB):
 *   signature "NVDIMM_DAX_INFO\0" (a dax device) or "NVDIMM_PFN_INFO\0" (a pfn device: a
 *   DAX-capable block device), uuid (the dax or pfn device's), parent_uuid (the namespace's:
 *   the tag), flags, version 1.4, dataoff, npfns, mode, start_pad, end_trunc, align,
 *   page_size, page_struct_size, zero padding, and a fletcher64 of the block with the
 *   checksum field zeroed, in its last 8 bytes.
 * mode RAM keeps the guest's page map in guest RAM, so nothing but this block lives in the
 * prefix; dataoff is the whole prefix (DAX_PREFIX), so the data after it is the tag's.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "qemu.h"

enum {
	SB_SIG = 0, SB_UUID = 16, SB_PARENT = 32, SB_FLAGS = 48, SB_MAJOR = 52, SB_MINOR = 54,
	SB_DATAOFF = 56, SB_NPFNS = 64, SB_MODE = 72, SB_START_PAD = 76, SB_END_TRUNC = 80,
	SB_ALIGN = 84, SB_PAGE_SIZE = 88, SB_PAGE_STRUCT = 92, SB_CHECKSUM = DAX_INFO_SIZE - 8,
};
static const char dax_sig[16] = "NVDIMM_DAX_INFO";
static const char pfn_sig[16] = "NVDIMM_PFN_INFO";
#define PFN_MODE_RAM 1
#define GUEST_PAGE 4096u
#define STRUCT_PAGE 64u

int dax_info_build(uint8_t *buf, enum dax_info_kind kind, const tagmem_tag *tag,
		   const tagmem_tag *dax_uuid, uint64_t ns_size)
{
	if (tagmem_tag_is_null(tag) || tagmem_tag_is_null(dax_uuid) || ns_size <= DAX_PREFIX ||
	    ns_size % NVDIMM_REGION_ALIGN || (kind != DAX_INFO_DEVDAX && kind != DAX_INFO_FSDAX))
		return -EINVAL;
	memset(buf, 0, DAX_INFO_SIZE);
	memcpy(buf + SB_SIG, kind == DAX_INFO_FSDAX ? pfn_sig : dax_sig, sizeof(dax_sig));
	memcpy(buf + SB_UUID, dax_uuid->bytes, 16);
	memcpy(buf + SB_PARENT, tag->bytes, 16);
	put16(buf + SB_MAJOR, 1);
	put16(buf + SB_MINOR, 4);
	put64(buf + SB_DATAOFF, DAX_PREFIX);
	put64(buf + SB_NPFNS, (ns_size - DAX_PREFIX) / GUEST_PAGE);
	put32(buf + SB_MODE, PFN_MODE_RAM);
	put32(buf + SB_ALIGN, NVDIMM_BACKEND_ALIGN);
	put32(buf + SB_PAGE_SIZE, GUEST_PAGE);
	put16(buf + SB_PAGE_STRUCT, STRUCT_PAGE);
	put64(buf + SB_CHECKSUM, label_fletcher64(buf, DAX_INFO_SIZE));
	return 0;
}

int dax_info_parse(const uint8_t *buf, tagmem_tag *ret_parent, uint64_t *ret_dataoff,
		   enum dax_info_kind *ret_kind)
{
	uint8_t copy[DAX_INFO_SIZE];
	enum dax_info_kind kind;

	if (!memcmp(buf + SB_SIG, dax_sig, sizeof(dax_sig)))
		kind = DAX_INFO_DEVDAX;
	else if (!memcmp(buf + SB_SIG, pfn_sig, sizeof(pfn_sig)))
		kind = DAX_INFO_FSDAX;
	else
		return -ENOENT;
	memcpy(copy, buf, DAX_INFO_SIZE);
	memset(copy + SB_CHECKSUM, 0, 8);
	if (get64(buf + SB_CHECKSUM) != label_fletcher64(copy, DAX_INFO_SIZE) ||
	    get16(buf + SB_MAJOR) != 1 || get32(buf + SB_MODE) != PFN_MODE_RAM)
		return -EBADMSG;
	memcpy(ret_parent->bytes, buf + SB_PARENT, 16);
	*ret_dataoff = get64(buf + SB_DATAOFF);
	if (ret_kind)
		*ret_kind = kind;
	return 0;
}
