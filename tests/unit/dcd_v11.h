/*
 * Fixtures that follow the DCD v11 kernel series ("DCD: Add support for Dynamic Capacity
 * Devices", June 2026; tree anisa-su993/anisa-linux-kernel, branch dcd-v11-06-23-26), built
 * from that source's own attribute names and format strings. Each writer names the source
 * file and the function or macro it follows, so a later series can be checked line by line.
 */
#ifndef TEST_DCD_V11_H
#define TEST_DCD_V11_H

#include <inttypes.h>

#include "fixture.h"

/* drivers/cxl/core/trace.h, CXL_EVT_TP_printk(): the common CXL event header, then
 * TRACE_EVENT(cxl_dynamic_capacity)'s own format. %pUb and %pU print a lowercase UUID. */
#define V11_TRACE_FMT                                                                      \
	"%s [%03u] d..1. %u.%06u: cxl_dynamic_capacity: "                                   \
	"memdev=%s host=%s serial=%lld log=%s : time=%llu uuid=%s "                        \
	"len=%d flags='%s' handle=%x related_handle=%x "                                   \
	"maint_op_class=%u maint_op_sub_class=%u "                                         \
	"ld_id=%x head_id=%x : "                                                           \
	"event_type='%s' host_id='%d' updated_region_index='%d' "                          \
	"starting_dpa=%llx length=%llx tag=%s "                                            \
	"shared_extent_sequence=%d"

/* trace.h, CXL_EVENT_DC_EVENT_UUID as the header prints it, and show_dc_evt_type()'s names
 * (CXL_DC_ADD_CAPACITY 0x00 … CXL_DC_REG_CONF_UPDATED 0x03). */
#define V11_DC_EVENT_UUID "ca95afa7-f183-4018-8c2f-95268e101a2a"
static const char *const v11_dc_event_names[] = {
	"Add capacity", "Release capacity", "Forced capacity release",
	"Region Configuration Updated",
};

/* One trace_pipe line of cxl_dynamic_capacity. TP_fast_assign() reports the updated region
 * index only for Region Configuration Updated and U8_MAX (255) for every other type. */
static inline void v11_trace_line(char *buf, size_t len, unsigned type, unsigned region_index,
				  uint64_t dpa, uint64_t length, const char *tag, unsigned seq)
{
	snprintf(buf, len, V11_TRACE_FMT, "     kworker/u8:3-120", 1u, 1043u, 101234u, "mem0",
		 "0000:0d:00.0", 0LL, "Informational", 1043101234ULL, V11_DC_EVENT_UUID, 128, "",
		 0u, 0u, 0u, 0u, 0u, 0u, v11_dc_event_names[type], 0,
		 type == 3 ? (int)region_index : 255, (unsigned long long)dpa,
		 (unsigned long long)length, tag, (int)seq);
}

/* A DC dax region of a v11 host. Documentation/ABI/testing/sysfs-bus-cxl: regionZ/mode is
 * its decoders' mode, "dynamic_ram_1" for the first Dynamic RAM partition. The dax region is
 * a child of its CXL region, linked from the cxl bus; sysfs-bus-dax: dax_region/seed names
 * the zero-sized seed device. "sharable" is tagmem's own reading of a sharable partition:
 * the v11 ABI files do not document one, so it is written here as tagmem expects it. */
static inline void v11_region(const char *root, unsigned id, bool sharable)
{
	char path[256], target[128], value[32];

	snprintf(path, sizeof(path), "sys/devices/platform/region%u/mode", id);
	fixture_put(root, path, "dynamic_ram_1\n");
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/dax_region/seed",
		 id, id);
	snprintf(value, sizeof(value), "dax%u.0\n", id);
	fixture_put(root, path, value);
	snprintf(path, sizeof(path), "sys/devices/platform/region%u/dax_region%u/sharable", id, id);
	fixture_put(root, path, sharable ? "1\n" : "0\n");
	fixture_put(root, "sys/bus/cxl/devices/.keep", "");
	snprintf(target, sizeof(target), "../../../devices/platform/region%u/dax_region%u", id, id);
	snprintf(path, sizeof(path), "%s/sys/bus/cxl/devices/dax_region%u", root, id);
	if (symlink(target, path) < 0)
		abort();
}

/* drivers/cxl/core/extent.c: online_tag_group() names each extent "extent%d.%d" (region id,
 * device id) under the dax region; offset_show() and length_show() print "%#llx\n";
 * uuid_show() prints "%pUb\n", and dc_extent_visible() hides uuid for the null UUID. */
static inline void v11_extent(const char *root, unsigned region, unsigned id, uint64_t offset,
			      uint64_t length, const char *tag)
{
	char dir[160], path[224], value[64];

	snprintf(dir, sizeof(dir), "sys/devices/platform/region%u/dax_region%u/extent%u.%u",
		 region, region, region, id);
	snprintf(path, sizeof(path), "%s/offset", dir);
	snprintf(value, sizeof(value), "%#" PRIx64 "\n", offset);
	fixture_put(root, path, value);
	snprintf(path, sizeof(path), "%s/length", dir);
	snprintf(value, sizeof(value), "%#" PRIx64 "\n", length);
	fixture_put(root, path, value);
	if (tag) {
		snprintf(path, sizeof(path), "%s/uuid", dir);
		snprintf(value, sizeof(value), "%s\n", tag);
		fixture_put(root, path, value);
	}
}

/* drivers/dax/bus.c: a DC dax device; size_show() prints "%llu\n"; the v11 uuid_show()
 * prints the claimed tag, or the null UUID for a device that claimed an untagged extent
 * ("0") or none yet; dev_dax_visible() shows uuid on DC devices only. Each range is a
 * mapping device, devm_register_dax_mapping() names it "mapping%d", and its start/end
 * (inclusive)/page_offset print "%#llx\n". ranges[] are (offset, length) pairs. */
static inline void v11_daxdev(const char *root, unsigned region, unsigned id, const char *tag,
			      const uint64_t *ranges, size_t nranges)
{
	char dir[160], path[256], value[64], target[160];
	uint64_t size = 0, pgoff = 0;

	snprintf(dir, sizeof(dir), "sys/devices/platform/region%u/dax_region%u/dax%u.%u", region,
		 region, region, id);
	for (size_t i = 0; i < nranges; i++) {
		snprintf(path, sizeof(path), "%s/mapping%zu/start", dir, i);
		snprintf(value, sizeof(value), "%#" PRIx64 "\n", ranges[2 * i]);
		fixture_put(root, path, value);
		snprintf(path, sizeof(path), "%s/mapping%zu/end", dir, i);
		snprintf(value, sizeof(value), "%#" PRIx64 "\n", ranges[2 * i] + ranges[2 * i + 1] - 1);
		fixture_put(root, path, value);
		snprintf(path, sizeof(path), "%s/mapping%zu/page_offset", dir, i);
		snprintf(value, sizeof(value), "%#" PRIx64 "\n", pgoff);
		fixture_put(root, path, value);
		pgoff += ranges[2 * i + 1] / 4096;
		size += ranges[2 * i + 1];
	}
	snprintf(path, sizeof(path), "%s/size", dir);
	snprintf(value, sizeof(value), "%" PRIu64 "\n", size);
	fixture_put(root, path, value);
	snprintf(path, sizeof(path), "%s/uuid", dir);
	snprintf(value, sizeof(value), "%s\n", tag ? tag : "00000000-0000-0000-0000-000000000000");
	fixture_put(root, path, value);
	fixture_put(root, "sys/bus/dax/devices/.keep", "");
	snprintf(target, sizeof(target), "../../../devices/platform/region%u/dax_region%u/dax%u.%u",
		 region, region, region, id);
	snprintf(path, sizeof(path), "%s/sys/bus/dax/devices/dax%u.%u", root, region, id);
	if (symlink(target, path) < 0)
		abort();
}

#endif
