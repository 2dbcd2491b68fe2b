/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An increment's header and range table (snapshot.h; docs/save-format.md), little endian.
 * The header, 4 KiB:
 *   0    magic "TAGMEMVI"          8    u32 version (1)      12   u32 header size (4096)
 *   16   u32 entries (≤ 32)        20   u32 flags (0)        24   vm name, 64 bytes, NUL padded
 *   88   u64 device state offset   96   u64 its length       104  u64 its checksum
 *   112  u64 created (unix s)      120  u64 sequence (≥ 1)   128  u64 parent's checksum
 *   136  u64 ranges                144  u64 table offset     152  u64 table checksum
 *   160  u64 data offset           168  u64 data length      176  u64 data checksum
 *   192  32 entries of 32 bytes: tag[16], u64 size, 8 bytes zero
 *   4088 u64 fletcher64 of the 4 KiB with this field zero
 * A range, 24 bytes: u32 entry, u32 flags (1: zero pages, no data), u64 offset, u64 pages.
 * The data is the pages of the ranges without the zero flag, in table order.
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "qemu.h"
#include "snapshot.h"

enum {
	I_MAGIC = 0, I_VERSION = 8, I_SIZE = 12, I_N = 16, I_FLAGS = 20, I_VM = 24,
	I_DEV_OFF = 88, I_DEV_LEN = 96, I_DEV_SUM = 104, I_CREATED = 112, I_SEQ = 120,
	I_PARENT = 128, I_NRANGES = 136, I_RANGES_OFF = 144, I_RANGES_SUM = 152,
	I_DATA_OFF = 160, I_DATA_LEN = 168, I_DATA_SUM = 176, I_ENTRIES = 192,
	IE_SIZE = 32, IE_TAG = 0, IE_LEN = 16,
	I_CHECKSUM = SNAP_HEADER_SIZE - 8,
};

#define fletcher64 label_fletcher64

uint64_t snap_inc_layout(struct snap_inc_header *h)
{
	h->ranges_offset = SNAP_HEADER_SIZE;
	h->data_offset = h->ranges_offset + snap_page_up(h->nranges * SNAP_RANGE_BYTES);
	h->devstate_offset = h->data_offset + snap_page_up(h->data_length);
	return h->devstate_offset + snap_page_up(h->devstate_length);
}

void snap_inc_header_build(const struct snap_inc_header *h, uint8_t *buf)
{
	memset(buf, 0, SNAP_HEADER_SIZE);
	memcpy(buf + I_MAGIC, SNAP_INC_MAGIC, 8);
	put32(buf + I_VERSION, SNAP_INC_VERSION);
	put32(buf + I_SIZE, SNAP_HEADER_SIZE);
	put32(buf + I_N, h->nentries);
	memcpy(buf + I_VM, h->vm, strnlen(h->vm, 63));
	put64(buf + I_DEV_OFF, h->devstate_offset);
	put64(buf + I_DEV_LEN, h->devstate_length);
	put64(buf + I_DEV_SUM, h->devstate_checksum);
	put64(buf + I_CREATED, h->created);
	put64(buf + I_SEQ, h->sequence);
	put64(buf + I_PARENT, h->parent);
	put64(buf + I_NRANGES, h->nranges);
	put64(buf + I_RANGES_OFF, h->ranges_offset);
	put64(buf + I_RANGES_SUM, h->ranges_checksum);
	put64(buf + I_DATA_OFF, h->data_offset);
	put64(buf + I_DATA_LEN, h->data_length);
	put64(buf + I_DATA_SUM, h->data_checksum);
	for (unsigned i = 0; i < h->nentries && i < SNAP_MAX_ENTRIES; i++) {
		uint8_t *e = buf + I_ENTRIES + i * IE_SIZE;

		memcpy(e + IE_TAG, h->tag[i].bytes, 16);
		put64(e + IE_LEN, h->size[i]);
	}
	put64(buf + I_CHECKSUM, fletcher64(buf, SNAP_HEADER_SIZE));
}

int snap_inc_header_parse(const uint8_t *buf, size_t len, struct snap_inc_header *ret)
{
	struct snap_inc_header h = { 0 }, want;

	/* the same first 24 bytes and checksum as a save file's header */
	if (!snap_header_envelope_ok(buf, len, SNAP_INC_MAGIC, SNAP_INC_VERSION))
		return -EBADMSG;
	h.nentries = get32(buf + I_N);
	if (!h.nentries || h.nentries > SNAP_MAX_ENTRIES || memchr(buf + I_VM, 0, 64) == NULL)
		return -EBADMSG;
	memcpy(h.vm, buf + I_VM, 64);
	h.devstate_offset = get64(buf + I_DEV_OFF);
	h.devstate_length = get64(buf + I_DEV_LEN);
	h.devstate_checksum = get64(buf + I_DEV_SUM);
	h.created = get64(buf + I_CREATED);
	h.sequence = get64(buf + I_SEQ);
	h.parent = get64(buf + I_PARENT);
	h.nranges = get64(buf + I_NRANGES);
	h.ranges_offset = get64(buf + I_RANGES_OFF);
	h.ranges_checksum = get64(buf + I_RANGES_SUM);
	h.data_offset = get64(buf + I_DATA_OFF);
	h.data_length = get64(buf + I_DATA_LEN);
	h.data_checksum = get64(buf + I_DATA_SUM);
	for (unsigned i = 0; i < h.nentries; i++) {
		const uint8_t *e = buf + I_ENTRIES + i * IE_SIZE;

		memcpy(h.tag[i].bytes, e + IE_TAG, 16);
		h.size[i] = get64(e + IE_LEN);
		if (tagmem_tag_is_null(&h.tag[i]) || !h.size[i] || h.size[i] % 4096 ||
		    h.size[i] > SNAP_REGION_MAX)
			return -EBADMSG;
	}
	/* the layout is fixed by the counts: anything else is not ours (bounded first, so the
	 * sums cannot wrap) */
	if (!h.sequence || h.nranges > SNAP_INC_RANGES_MAX || h.data_length > SNAP_FILE_MAX ||
	    h.devstate_length > (1ull << 32))
		return -EBADMSG;
	want = h;
	snap_inc_layout(&want);
	if (want.ranges_offset != h.ranges_offset || want.data_offset != h.data_offset ||
	    want.devstate_offset != h.devstate_offset)
		return -EBADMSG;
	*ret = h;
	return 0;
}

void snap_ranges_build(const struct snap_range *r, uint64_t n, uint8_t *buf)
{
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *b = buf + i * SNAP_RANGE_BYTES;

		put32(b, r[i].entry);
		put32(b + 4, r[i].flags);
		put64(b + 8, r[i].offset);
		put64(b + 16, r[i].pages);
	}
}

int snap_ranges_parse(const uint8_t *buf, uint64_t n, const struct snap_inc_header *h,
		      struct snap_range *ret, uint64_t *ret_data)
{
	uint64_t data = 0;

	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *b = buf + i * SNAP_RANGE_BYTES;
		struct snap_range r = { .entry = get32(b), .flags = get32(b + 4),
					.offset = get64(b + 8), .pages = get64(b + 16) };

		if (r.entry >= h->nentries || (r.flags & ~SNAP_RANGE_ZERO) || r.offset % 4096 ||
		    !r.pages || r.offset >= h->size[r.entry] ||
		    r.pages > (h->size[r.entry] - r.offset) / 4096)
			return -EBADMSG;
		/* in order: entry by entry, offsets rising, no overlap */
		if (i && (r.entry < ret[i - 1].entry ||
			  (r.entry == ret[i - 1].entry &&
			   r.offset < ret[i - 1].offset + ret[i - 1].pages * 4096)))
			return -EBADMSG;
		if (!(r.flags & SNAP_RANGE_ZERO))
			data += r.pages * 4096;
		ret[i] = r;
	}
	if (data != h->data_length)
		return -EBADMSG;
	if (ret_data)
		*ret_data = data;
	return 0;
}
