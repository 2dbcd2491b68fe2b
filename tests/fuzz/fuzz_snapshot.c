/* libFuzzer target: a save file's header, as a damaged disk or anyone who can write the file
 * may have left it. What parses must be what a restore can trust, checked here on its own
 * rather than by asking the parser again: every region 2 MiB aligned, within the bounds,
 * after the header, disjoint from every other and from the device state (no offset that
 * wraps), the VM name terminated; and what it builds parses back to the same header. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "snapshot.h"

static void region_ok(uint64_t off, uint64_t len)
{
	if (off % SNAP_ALIGN || off < SNAP_HEADER_SIZE || off > SNAP_FILE_MAX ||
	    len > SNAP_REGION_MAX || off + len < off)
		abort();
}

static int disjoint(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a + alen <= b || b + blen <= a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_header h, back;
	uint8_t again[SNAP_HEADER_SIZE];

	if (snap_header_parse(data, size, &h) != 0)
		return 0;
	if (h.nentries > SNAP_MAX_ENTRIES || !memchr(h.vm, '\0', sizeof(h.vm)))
		abort();
	region_ok(h.devstate_offset, h.devstate_length);
	for (unsigned i = 0; i < h.nentries; i++) {
		region_ok(h.e[i].file_offset, h.e[i].size);
		if (!disjoint(h.e[i].file_offset, h.e[i].size, h.devstate_offset, h.devstate_length))
			abort();
		for (unsigned k = 0; k < i; k++)
			if (!disjoint(h.e[i].file_offset, h.e[i].size, h.e[k].file_offset,
				      h.e[k].size))
				abort();
	}
	memset(again, 0, sizeof(again));
	snap_header_build(&h, again);
	if (snap_header_parse(again, sizeof(again), &back) != 0 || back.nentries != h.nentries ||
	    strcmp(back.vm, h.vm) || back.devstate_offset != h.devstate_offset ||
	    back.devstate_length != h.devstate_length ||
	    back.devstate_checksum != h.devstate_checksum)
		abort();
	for (unsigned i = 0; i < h.nentries; i++)
		if (memcmp(&back.e[i], &h.e[i], sizeof(h.e[i])))
			abort();
	return 0;
}
