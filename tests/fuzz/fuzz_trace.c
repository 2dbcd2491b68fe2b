/* libFuzzer target: one line of the cxl:cxl_dynamic_capacity trace event. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct dcd_event ev;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	dcd_trace_parse(line, &ev);
	free(line);
	return 0;
}
