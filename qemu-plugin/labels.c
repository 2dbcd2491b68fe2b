/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * NVDIMM namespace labels, format v1.1, as the Linux nvdimm driver reads them:
 *   [0, 256)    index block 0      [256, 512)  index block 1
 *   [512, …)    LABEL_NSLOT labels of 128 bytes
 * An index block: "NAMESPACE_INDEX\0", flags[3], labelsize (0: 128-byte labels), seq (1,2,3
 * cycling; 0 invalid), myoff, mysize, otheroff, labeloff, nslot, major 1, minor 1, a
 * fletcher64 checksum (computed with the field zeroed), and a free bitmap (bit set = free).
 * The newer index by sequence is current. We write what the kernel itself leaves after
 * `init-labels` plus one label update: index 0 seq 3 all free, index 1 seq 1 with slot 0 used.
 */
#include <endian.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "qemu.h"
#include "util.h"

static const char index_sig[16] = "NAMESPACE_INDEX";

enum {
	IDX_SIG = 0, IDX_FLAGS = 16, IDX_LABELSIZE = 19, IDX_SEQ = 20, IDX_MYOFF = 24,
	IDX_MYSIZE = 32, IDX_OTHEROFF = 40, IDX_LABELOFF = 48, IDX_NSLOT = 56, IDX_MAJOR = 60,
	IDX_MINOR = 62, IDX_CHECKSUM = 64, IDX_FREE = 72,
};
enum {
	LBL_UUID = 0, LBL_NAME = 16, LBL_FLAGS = 80, LBL_NLABEL = 84, LBL_POSITION = 86,
	LBL_COOKIE = 88, LBL_LBASIZE = 96, LBL_DPA = 104, LBL_RAWSIZE = 112, LBL_SLOT = 120,
};

uint64_t label_isetcookie(unsigned slot)
{
	uint64_t s = 0x123456u + slot;

	return (2 * s) << 32 | s;
}

/*
 * Fletcher64 over little-endian 32-bit words, as the kernel's nd_fletcher64: for each word w,
 * lo += w; hi += lo (mod 2^32). The obvious loop is one long dependency chain; save files
 * are summed at disk speed, so the words go in FLETCHER_LANES independent lanes: lane j holds
 * S_j, the sum of its words, and T_j, the sum of its running sums, so that a word in group k
 * of K counts K - k times. A word's weight in hi is its distance from the end, which per lane
 * is LANES * T_j - j * S_j. Every step is mod 2^32, so the result is exactly the chain's.
 */
#define FLETCHER_LANES 16

uint64_t label_fletcher64(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t words = len / 4, groups = words / FLETCHER_LANES;
	uint32_t s[FLETCHER_LANES] = { 0 }, t[FLETCHER_LANES] = { 0 }, lo = 0, hi = 0;

	for (size_t k = 0; k < groups; k++, p += 4 * FLETCHER_LANES)
		for (unsigned j = 0; j < FLETCHER_LANES; j++) {
			s[j] += get32(p + 4 * j);
			t[j] += s[j];
		}
	for (unsigned j = 0; j < FLETCHER_LANES; j++) {
		lo += s[j];
		hi += FLETCHER_LANES * t[j] - j * s[j];
	}
	for (size_t i = groups * FLETCHER_LANES; i < words; i++, p += 4) {
		lo += get32(p);
		hi += lo;
	}
	return (uint64_t)hi << 32 | lo;
}

/* The free bitmap: bit n of little-endian 64-bit words, set = free. */
static bool slot_free(const uint8_t *idx, unsigned n)
{
	return idx[IDX_FREE + n / 8] & (1u << (n % 8));
}

static void write_index(uint8_t *idx, unsigned which, uint32_t seq, bool slot0_used)
{
	memset(idx, 0, LABEL_INDEX_SIZE);
	memcpy(idx + IDX_SIG, index_sig, sizeof(index_sig));
	idx[IDX_LABELSIZE] = 0;
	put32(idx + IDX_SEQ, seq);
	put64(idx + IDX_MYOFF, which * LABEL_INDEX_SIZE);
	put64(idx + IDX_MYSIZE, LABEL_INDEX_SIZE);
	put64(idx + IDX_OTHEROFF, (1 - which) * LABEL_INDEX_SIZE);
	put64(idx + IDX_LABELOFF, 2 * LABEL_INDEX_SIZE);
	put32(idx + IDX_NSLOT, LABEL_NSLOT);
	put16(idx + IDX_MAJOR, 1);
	put16(idx + IDX_MINOR, 1);
	for (unsigned n = 0; n < LABEL_NSLOT; n++)
		idx[IDX_FREE + n / 8] |= (uint8_t)(1u << (n % 8));
	if (slot0_used)
		idx[IDX_FREE] &= (uint8_t)~1u;
	put64(idx + IDX_CHECKSUM, label_fletcher64(idx, LABEL_INDEX_SIZE));
}

int label_area_build(uint8_t *buf, const tagmem_tag *tag, const char *name,
		     unsigned dimm_slot, uint64_t rawsize)
{
	uint8_t *lbl = buf + 2 * LABEL_INDEX_SIZE;

	if (!tag || tagmem_tag_is_null(tag) || dimm_slot >= NVDIMM_MAX_SLOTS || !rawsize ||
	    rawsize % NVDIMM_REGION_ALIGN || (name && strlen(name) > LABEL_NAME_MAX))
		return -EINVAL;
	memset(buf, 0, LABEL_AREA_SIZE);
	write_index(buf, 0, 3, false);
	memcpy(lbl + LBL_UUID, tag->bytes, 16);
	if (name)
		memcpy(lbl + LBL_NAME, name, strlen(name)); /* NUL-padded, not terminated at 64 */
	put32(lbl + LBL_FLAGS, 0);
	put16(lbl + LBL_NLABEL, 1);
	put16(lbl + LBL_POSITION, 0);
	put64(lbl + LBL_COOKIE, label_isetcookie(dimm_slot));
	put64(lbl + LBL_LBASIZE, 0);
	put64(lbl + LBL_DPA, 0);
	put64(lbl + LBL_RAWSIZE, rawsize);
	put32(lbl + LBL_SLOT, 0);
	write_index(buf + LABEL_INDEX_SIZE, 1, 1, true);
	return 0;
}

static bool index_valid(const uint8_t *idx, unsigned which)
{
	uint8_t copy[LABEL_INDEX_SIZE];
	uint32_t seq = get32(idx + IDX_SEQ);

	if (memcmp(idx + IDX_SIG, index_sig, sizeof(index_sig)) || idx[IDX_FLAGS] ||
	    idx[IDX_FLAGS + 1] || idx[IDX_FLAGS + 2] || idx[IDX_LABELSIZE] != 0)
		return false;
	if (seq < 1 || seq > 3 || get64(idx + IDX_MYOFF) != which * LABEL_INDEX_SIZE ||
	    get64(idx + IDX_MYSIZE) != LABEL_INDEX_SIZE ||
	    get64(idx + IDX_OTHEROFF) != (1 - which) * LABEL_INDEX_SIZE ||
	    get64(idx + IDX_LABELOFF) != 2 * LABEL_INDEX_SIZE || get32(idx + IDX_NSLOT) != LABEL_NSLOT ||
	    get16(idx + IDX_MAJOR) != 1 || get16(idx + IDX_MINOR) != 1)
		return false;
	memcpy(copy, idx, sizeof(copy));
	memset(copy + IDX_CHECKSUM, 0, 8);
	return label_fletcher64(copy, sizeof(copy)) == get64(idx + IDX_CHECKSUM);
}

/* a is newer than b in the 1→2→3→1 cycle */
static bool seq_newer(uint32_t a, uint32_t b)
{
	return a == b % 3 + 1;
}

int label_area_parse(const uint8_t *buf, struct label_info *ret, size_t max)
{
	bool v0 = index_valid(buf, 0), v1 = index_valid(buf + LABEL_INDEX_SIZE, 1);
	const uint8_t *cur;
	size_t n = 0;

	if (!v0 && !v1) {
		for (size_t i = 0; i < 2 * LABEL_INDEX_SIZE; i++)
			if (buf[i])
				return -EBADMSG;
		return 0; /* never initialised */
	}
	if (v0 && v1)
		cur = seq_newer(get32(buf + LABEL_INDEX_SIZE + IDX_SEQ), get32(buf + IDX_SEQ))
			      ? buf + LABEL_INDEX_SIZE : buf;
	else
		cur = v0 ? buf : buf + LABEL_INDEX_SIZE;

	for (unsigned s = 0; s < LABEL_NSLOT; s++) {
		const uint8_t *lbl = buf + 2 * LABEL_INDEX_SIZE + s * LABEL_SIZE;
		struct label_info li = { 0 };

		if (slot_free(cur, s))
			continue;
		if (get32(lbl + LBL_SLOT) != s)
			return -EBADMSG; /* an in-use slot whose label disowns it */
		memcpy(li.tag.bytes, lbl + LBL_UUID, 16);
		memcpy(li.name, lbl + LBL_NAME, LABEL_NAME_MAX);
		li.name[LABEL_NAME_MAX] = '\0';
		li.isetcookie = get64(lbl + LBL_COOKIE);
		li.dpa = get64(lbl + LBL_DPA);
		li.rawsize = get64(lbl + LBL_RAWSIZE);
		li.slot = s;
		if (n < max)
			ret[n] = li;
		n++;
	}
	return (int)MIN(n, (size_t)INT32_MAX);
}

int label_area_read_file(int fd, uint64_t file_size, uint8_t *buf)
{
	ssize_t r;

	if (file_size < LABEL_AREA_SIZE)
		return -EFBIG;
	r = pread(fd, buf, LABEL_AREA_SIZE, (off_t)(file_size - LABEL_AREA_SIZE));
	if (r < 0)
		return -errno;
	return r == LABEL_AREA_SIZE ? 0 : -EIO;
}

int label_area_write_file(int fd, uint64_t file_size, const uint8_t *buf)
{
	ssize_t r;

	if (file_size < LABEL_AREA_SIZE)
		return -EFBIG;
	r = pwrite(fd, buf, LABEL_AREA_SIZE, (off_t)(file_size - LABEL_AREA_SIZE));
	if (r < 0)
		return -errno;
	if (r != LABEL_AREA_SIZE)
		return -EIO;
	/* the label is what makes the capacity findable: it must survive a crash too */
	return fdatasync(fd) < 0 ? -errno : 0;
}

int label_write_for_tag(int fd, uint64_t file_size, const tagmem_tag *tag, const char *name,
			unsigned dimm_slot)
{
	_cleanup_free_ uint8_t *area = NULL;
	struct label_info existing[4];
	uint64_t data;
	int n, r;

	if (file_size < LABEL_TAIL + NVDIMM_REGION_ALIGN)
		return -ENOSPC; /* room for at least one 16 MiB namespace */
	data = file_size - LABEL_TAIL;
	if (file_size % NVDIMM_BACKEND_ALIGN || data % NVDIMM_REGION_ALIGN)
		return -EINVAL;
	if (dimm_slot >= NVDIMM_MAX_SLOTS)
		return -EINVAL;
	area = malloc(LABEL_AREA_SIZE);
	if (!area)
		return -ENOMEM;
	r = label_area_read_file(fd, file_size, area);
	if (r < 0)
		return r;
	n = label_area_parse(area, existing, ARRAY_SIZE(existing));
	if (n < 0)
		return -EEXIST; /* something we do not understand lives there: leave it alone */
	for (int i = 0; i < MIN(n, (int)ARRAY_SIZE(existing)); i++)
		if (tagmem_tag_compare(&existing[i].tag, tag))
			return -EEXIST; /* somebody else's namespace */
	r = label_area_build(area, tag, name, dimm_slot, data);
	if (r < 0)
		return r;
	return label_area_write_file(fd, file_size, area);
}
