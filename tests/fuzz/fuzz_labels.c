/* libFuzzer target: an NVDIMM label area, as a guest (or anyone with the image) may have
 * written it. The input is the start of the area (index blocks and the first labels); the
 * rest of the 128 KiB is zero. The same bytes as a devdax image's DAX info block. */
#include <stdint.h>
#include <string.h>

#include "qemu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t area[LABEL_AREA_SIZE];
	struct label_info li[4];

	if (size > sizeof(area))
		size = sizeof(area);
	memset(area, 0, sizeof(area));
	memcpy(area, data, size);
	label_area_parse(area, li, 4);
	{
		tagmem_tag parent;
		uint64_t dataoff;

		dax_info_parse(area, &parent, &dataoff, NULL); /* the first 4 KiB */
	}
	return 0;
}
