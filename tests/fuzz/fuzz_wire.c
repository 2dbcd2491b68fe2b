/* libFuzzer target: the wire codec — one request line, as a client could send it. */
#include <stdint.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "tagmem.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *msg = NULL;
	const char *why, *s;
	tagmem_tag tag;
	uint64_t u;
	bool b;

	if (wire_parse((const char *)data, size, 1 << 16, &msg, &why) == 0) {
		/* what every op does with it next: typed getters that never coerce */
		tagmem_json_get_string(msg, "op", &s);
		tagmem_json_get_tag(msg, "tag", &tag);
		tagmem_json_get_u64(msg, "size", &u);
		tagmem_json_get_bool(msg, "shared", &b);
		size_t len;
		free(tagmem_msg_format(msg, &len)); /* and what a reply echoes of it */
	}
	json_object_put(msg);
	return 0;
}
