/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tag model. Parsing is strict on purpose: a tag arrives from sockets, sysfs and command
 * lines, and "almost a UUID" must never silently name some other memory. */
#include <string.h>

#include <uuid/uuid.h>

#include "private.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

TAGMEM_EXPORT int tagmem_tag_parse(const char *text, tagmem_tag *ret_tag)
{
	tagmem_tag tag;
	unsigned byte = 0;

	if (!text || !ret_tag)
		return -EINVAL;
	for (unsigned i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (text[i] != '-')
				return -EINVAL;
			continue;
		}
		int hi = hexval(text[i]);
		if (hi < 0)
			return -EINVAL;
		int lo = hexval(text[++i]);
		if (lo < 0)
			return -EINVAL;
		tag.bytes[byte++] = (uint8_t)(hi << 4 | lo);
	}
	if (text[36] != '\0')
		return -EINVAL;
	*ret_tag = tag;
	return 0;
}

TAGMEM_EXPORT const char *tagmem_tag_format(const tagmem_tag *tag,
					    char buf[TAGMEM_TAG_STRING_MAX])
{
	uuid_unparse_lower(tag->bytes, buf);
	return buf;
}

TAGMEM_EXPORT int tagmem_tag_compare(const tagmem_tag *a, const tagmem_tag *b)
{
	return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

TAGMEM_EXPORT bool tagmem_tag_is_null(const tagmem_tag *tag)
{
	static const tagmem_tag null_tag;

	return memcmp(tag, &null_tag, sizeof(null_tag)) == 0;
}

TAGMEM_EXPORT void tagmem_tag_generate(tagmem_tag *ret_tag)
{
	uuid_generate_random(ret_tag->bytes);
}
