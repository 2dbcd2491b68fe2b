/* libFuzzer target: the guest agent's side (udev/guestd-host.c, guestd-hints.c). The input is
 * a program of two kinds of steps:
 *   'M' and 18 bytes   a guest program marks a range of one of four tags cold or hot
 *                      (tag index, cold flag, offset and length, little-endian u64s)
 *   anything else      one line from the host, up to its newline, read as the agent reads
 *                      it: a slot-map event is parsed, a reclaim event answered
 * After every mark the tag's cold list must be sorted, disjoint and counted right; every
 * answer must be one JSON line that fits brokerd's channel and offers only cold ranges. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "guestd.h"
#include "slots.h"
#include "util.h"
#include "wire.h"

static const char *const tags[4] = {
	"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", "11111111-2222-4333-8444-555555555555",
	"22222222-2222-4333-8444-555555555555", "33333333-2222-4333-8444-555555555555",
};

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void check_cold(struct hints *h, const tagmem_tag *tag)
{
	const struct hint_range *r = NULL;
	size_t n = hints_cold(h, tag, &r);
	uint64_t sum = 0;

	if (n > HINT_RANGES)
		abort();
	for (size_t i = 0; i < n; i++) {
		if (!r[i].len || r[i].off + r[i].len < r[i].off)
			abort(); /* empty or wrapping */
		if (i && r[i - 1].off + r[i - 1].len >= r[i].off)
			abort(); /* overlapping or touching: should have merged */
		sum += r[i].len;
	}
	if (sum != hints_cold_bytes(h, tag))
		abort();
}

static bool is_cold(struct hints *h, const tagmem_tag *tag, uint64_t off, uint64_t len)
{
	const struct hint_range *r = NULL;
	size_t n = hints_cold(h, tag, &r);

	for (size_t i = 0; i < n; i++)
		if (r[i].off == off && r[i].len == len)
			return true;
	return false;
}

static void host_line(struct hints *h, const char *line, size_t len)
{
	struct json_object *msg = NULL, *ans, *ranges;
	struct slot_map map;
	const char *ev;

	if (tagmem_msg_parse(line, len, 64u << 10, &msg) < 0)
		return;
	if (json_object_is_type(msg, json_type_object) &&
	    tagmem_json_get_string(msg, "event", &ev) == 0) {
		if (!strcmp(ev, "slots")) {
			guestd_parse_slots(msg, &map);
		} else if (!strcmp(ev, "reclaim")) {
			size_t n, all;
			char *text = guestd_reclaim_answer(h, msg, &n, &all);
			tagmem_tag tag;

			if (text) {
				if (strlen(text) > GUESTD_CHANNEL_LINE || n > all)
					abort(); /* brokerd would drop the channel */
				ans = json_tokener_parse(text);
				if (!ans || !json_object_object_get_ex(ans, "ranges", &ranges) ||
				    json_object_array_length(ranges) != n ||
				    tagmem_json_get_tag(msg, "tag", &tag) < 0)
					abort();
				for (size_t i = 0; i < n; i++) {
					struct json_object *o = json_object_array_get_idx(ranges, i);
					uint64_t off, l;

					if (tagmem_json_get_u64(o, "offset", &off) < 0 ||
					    tagmem_json_get_u64(o, "length", &l) < 0 ||
					    !is_cold(h, &tag, off, l))
						abort(); /* offered what nobody marked cold */
				}
				json_object_put(ans);
				free(text);
			}
		}
	}
	json_object_put(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hints *h = hints_new();
	size_t i = 0;

	if (!h)
		return 0;
	while (i < size) {
		if (data[i] == 'M' && size - i >= 19) {
			tagmem_tag tag;

			tagmem_tag_parse(tags[data[i + 1] & 3], &tag);
			hints_mark(h, &tag, le64(data + i + 3), le64(data + i + 11), data[i + 2] & 1);
			check_cold(h, &tag);
			i += 19;
		} else {
			const uint8_t *nl = memchr(data + i, '\n', size - i);
			size_t len = nl ? (size_t)(nl - (data + i)) : size - i;

			host_line(h, (const char *)data + i, len);
			i += len + 1;
		}
	}
	hints_free(h);
	return 0;
}
