/* libFuzzer target: the registry file, as a damaged disk or an editor could leave it. */
#include <stdint.h>

#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct registry reg;

	if (registry_parse((const char *)data, size, &reg) == 0)
		registry_clear(&reg);
	return 0;
}
