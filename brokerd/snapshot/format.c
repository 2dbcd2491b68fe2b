/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The save file's header (snapshot.h), 4 KiB, little endian:
 *   0    magic "TAGMEMVM"          8    u32 version (1)      12   u32 header size (4096)
 *   16   u32 entries (≤ 32)        20   u32 flags (0)        24   vm name, 64 bytes, NUL padded
 *   88   u64 device state offset   96   u64 its length       104  u64 its checksum
 *   112  u64 created (unix s)      120  32 entries of 64 bytes:
 *        tag[16], u64 size, u64 file offset, u64 checksum, 24 bytes zero
 *   4088 u64 fletcher64 of the 4 KiB with this field zero
 */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "qemu.h"
#include "snapshot.h"

enum {
	H_MAGIC = 0, H_VERSION = 8, H_SIZE = 12, H_N = 16, H_FLAGS = 20, H_VM = 24,
	H_DEV_OFF = 88, H_DEV_LEN = 96, H_DEV_SUM = 104, H_CREATED = 112, H_ENTRIES = 120,
	E_SIZE = 64, E_TAG = 0, E_LEN = 16, E_OFF = 24, E_SUM = 32,
	H_CHECKSUM = SNAP_HEADER_SIZE - 8,
};

#define fletcher64 label_fletcher64 /* the same sum the NVDIMM labels use */

uint64_t snap_chunk_sum(const void *buf, size_t len, uint64_t index)
{
	uint64_t f = fletcher64(buf, len);
	unsigned r = (unsigned)(index % 64);

	return r ? (f << r) | (f >> (64 - r)) : f;
}

uint64_t snap_region_sum(const void *buf, uint64_t len)
{
	uint64_t sum = 0;

	for (uint64_t off = 0, i = 0; off < len; off += SNAP_CHUNK, i++)
		sum += snap_chunk_sum((const uint8_t *)buf + off,
				      (size_t)(len - off < SNAP_CHUNK ? len - off : SNAP_CHUNK), i);
	return sum;
}

uint64_t snap_header_digest(const uint8_t *buf)
{
	return get64(buf + H_CHECKSUM);
}

static uint64_t align_up(uint64_t v)
{
	return (v + SNAP_ALIGN - 1) & ~(uint64_t)(SNAP_ALIGN - 1);
}

uint64_t snap_layout(struct snap_header *h)
{
	uint64_t off = SNAP_ALIGN; /* the header's 4 KiB, padded */

	for (unsigned i = 0; i < h->nentries; i++) {
		h->e[i].file_offset = off;
		off = align_up(off + h->e[i].size);
	}
	h->devstate_offset = off;
	return align_up(off + h->devstate_length);
}

void snap_header_build(const struct snap_header *h, uint8_t *buf)
{
	memset(buf, 0, SNAP_HEADER_SIZE);
	memcpy(buf + H_MAGIC, SNAP_MAGIC, 8);
	put32(buf + H_VERSION, SNAP_VERSION);
	put32(buf + H_SIZE, SNAP_HEADER_SIZE);
	put32(buf + H_N, h->nentries);
	memcpy(buf + H_VM, h->vm, strnlen(h->vm, 63)); /* NUL padded: the buffer is zero */
	put64(buf + H_DEV_OFF, h->devstate_offset);
	put64(buf + H_DEV_LEN, h->devstate_length);
	put64(buf + H_DEV_SUM, h->devstate_checksum);
	put64(buf + H_CREATED, h->created);
	for (unsigned i = 0; i < h->nentries && i < SNAP_MAX_ENTRIES; i++) {
		uint8_t *e = buf + H_ENTRIES + i * E_SIZE;

		memcpy(e + E_TAG, h->e[i].tag.bytes, 16);
		put64(e + E_LEN, h->e[i].size);
		put64(e + E_OFF, h->e[i].file_offset);
		put64(e + E_SUM, h->e[i].checksum);
	}
	put64(buf + H_CHECKSUM, fletcher64(buf, SNAP_HEADER_SIZE));
}

bool snap_header_envelope_ok(const uint8_t *buf, size_t len, const char *magic,
			     uint32_t version)
{
	uint8_t copy[SNAP_HEADER_SIZE];

	if (len < SNAP_HEADER_SIZE || memcmp(buf + H_MAGIC, magic, 8) ||
	    get32(buf + H_VERSION) != version || get32(buf + H_SIZE) != SNAP_HEADER_SIZE ||
	    get32(buf + H_FLAGS) != 0)
		return false;
	memcpy(copy, buf, SNAP_HEADER_SIZE);
	memset(copy + H_CHECKSUM, 0, 8);
	return get64(buf + H_CHECKSUM) == fletcher64(copy, SNAP_HEADER_SIZE);
}

int snap_header_parse(const uint8_t *buf, size_t len, struct snap_header *ret)
{
	struct snap_header h = { 0 };
	uint64_t end = SNAP_HEADER_SIZE;

	if (!snap_header_envelope_ok(buf, len, SNAP_MAGIC, SNAP_VERSION))
		return -EBADMSG;
	h.nentries = get32(buf + H_N);
	if (h.nentries > SNAP_MAX_ENTRIES || memchr(buf + H_VM, 0, 64) == NULL)
		return -EBADMSG;
	memcpy(h.vm, buf + H_VM, 64);
	h.devstate_offset = get64(buf + H_DEV_OFF);
	h.devstate_length = get64(buf + H_DEV_LEN);
	h.devstate_checksum = get64(buf + H_DEV_SUM);
	h.created = get64(buf + H_CREATED);
	/* every region aligned, in order, not overlapping, and not absurd */
	for (unsigned i = 0; i < h.nentries; i++) {
		const uint8_t *e = buf + H_ENTRIES + i * E_SIZE;

		memcpy(h.e[i].tag.bytes, e + E_TAG, 16);
		h.e[i].size = get64(e + E_LEN);
		h.e[i].file_offset = get64(e + E_OFF);
		h.e[i].checksum = get64(e + E_SUM);
		/* bounded far below 2^64, so no sum below can wrap past the overlap check */
		if (!h.e[i].size || h.e[i].size % 4096 || h.e[i].file_offset % SNAP_ALIGN ||
		    h.e[i].file_offset < end || h.e[i].size > SNAP_REGION_MAX ||
		    h.e[i].file_offset > SNAP_FILE_MAX || tagmem_tag_is_null(&h.e[i].tag))
			return -EBADMSG;
		end = h.e[i].file_offset + h.e[i].size;
	}
	if (h.devstate_offset % SNAP_ALIGN || h.devstate_offset < end ||
	    h.devstate_offset > SNAP_FILE_MAX || h.devstate_length > (1ull << 32))
		return -EBADMSG;
	*ret = h;
	return 0;
}
