/* libFuzzer target: the slot map's two sources, as a hypervisor's firmware table or a guest
 * agent's file could hold them (an SMBIOS type 11 structure; "<slot> <uuid>" lines). */
#include <stdint.h>

#include "slots.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct slot_map m;

	slot_map_init(&m);
	slot_map_parse_oem(&m, data, size);
	slot_map_parse_lines(&m, (const char *)data, size);
	for (unsigned i = 0; i < SLOT_MAP_SLOTS; i++)
		slot_map_get(&m, i);
	return 0;
}
