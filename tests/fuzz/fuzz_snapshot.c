/* libFuzzer target: a save file's header, as a damaged disk or anyone who can write the file
 * may have left it; what parses must lay out without overlap. */
#include <stdint.h>

#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_header h;

	if (snap_header_parse(data, size, &h) == 0) {
		uint8_t again[SNAP_HEADER_SIZE];

		snap_header_build(&h, again); /* what parsed, builds */
	}
	return 0;
}
