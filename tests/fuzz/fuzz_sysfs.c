/* libFuzzer target: the bytes of a sysfs attribute, through every way tagmem reads one
 * (text, number, tag, a dotted device name). */
#include <stdint.h>

#include "sysfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[64];
	uint64_t v;
	tagmem_tag tag;
	bool tagged;
	unsigned a, b;

	if (sysfs_attr_text((const char *)data, size, text, sizeof(text)) < 0)
		return 0;
	sysfs_parse_u64(text, &v);
	sysfs_parse_tag(text, &tag, &tagged);
	sysfs_parse_dotted(text, "extent", &a, &b);
	sysfs_parse_dotted(text, "dax", &a, &b);
	return 0;
}
