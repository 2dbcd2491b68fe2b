/* Writes the seed corpus of every fuzz target into DIR/<target>/ (tests/fuzz/run calls it):
 * inputs that reach deep into each parser, made by tagmem's own writers where there is one. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "qemu.h"
#include "slots.h"
#include "snapshot.h"

static int put(const char *dir, const char *target, const char *name, const void *data,
	       size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len) {
		perror(path);
		return -1;
	}
	return fclose(f);
}

#define PUTS(t, n, s) put(dir, t, n, s, strlen(s))

int main(int argc, char **argv)
{
	static uint8_t area[LABEL_AREA_SIZE];
	const char *dir = argc > 1 ? argv[1] : ".";
	tagmem_tag tag;
	int r = 0;

	mkdir(dir, 0755);
	r |= PUTS("wire", "hello", "{\"id\":1,\"op\":\"hello\"}");
	r |= PUTS("wire", "claim", "{\"id\":\"a\",\"op\":\"claim\",\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"name\":\"vm1\"}");
	r |= PUTS("wire", "fm_add", "{\"id\":18446744073709551615,\"op\":\"fm_add\",\"size\":2097152,\"shared\":true,\"x\":[1.5e3,-0,null,\"\\u00e9\\ud83d\\ude00\"]}");
	r |= PUTS("registry", "full", "{\"version\":1,\"claims\":[{\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"uid\":1000,\"pid\":42,\"name\":\"vm1\",\"since\":1790000000,\"slot\":0}],\"images\":[{\"tag\":\"11111111-2222-4333-8444-555555555555\",\"path\":\"/var/lib/tagmem/images/a.img\",\"file_size\":52428800,\"dirty_budget\":67108864,\"resident_budget\":0}]}");
	r |= PUTS("registry", "lost", "{\"version\":1,\"claims\":[],\"images\":[{\"tag\":\"11111111-2222-4333-8444-555555555555\",\"path\":\"/i/a.img\",\"file_size\":52428800,\"lost_writes_since\":1796010000,\"lost_writes\":\"writeback failed: No space left on device\"}]}");
	r |= PUTS("registry", "empty", "{\"version\":1,\"claims\":[]}");
	r |= PUTS("trace", "v9", "  kworker/u8:3-120     [001] .....  1043.101: cxl_dynamic_capacity: memdev=mem0 host=0000:0d:00.0 serial=0 log=Informational : time=1043101 uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 flags='' handle=0 related_handle=0 maint_op_class=0 : event_type='Add capacity' host_id='0' updated_region_index='255' starting_dpa=10000000 length=20000000 tag=6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10 shared_extent_sequence=0");
	r |= PUTS("trace", "v11", "     kworker/u8:3-120     [001] d..1. 1043.101234: cxl_dynamic_capacity: memdev=mem0 host=0000:0d:00.0 serial=0 log=Informational : time=1043101234 uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 flags='' handle=1 related_handle=0 maint_op_class=0 maint_op_sub_class=0 ld_id=0 head_id=0 : event_type='Release capacity' host_id='0' updated_region_index='255' starting_dpa=80000000 length=4000000 tag=11111111-1111-1111-1111-111111111111 shared_extent_sequence=1");
	r |= PUTS("trace", "v3", "  irq/27-cxl-7 [000] ..... 88.5: cxl_dynamic_capacity: memdev=mem1 host=0000:0e:00.0 serial=3 log=Informational : time=88 uuid=ca95afa7-f183-4018-8c2f-95268e101a2a len=128 flags='' handle=1 related_handle=0 maint_op_class=0 : event_type='Release capacity' host_id='0' region_id='0' starting_dpa=0 length=200000 tag=00000000-0000-0000-0000-000000000000 shared_extent_sequence=7");
	r |= PUTS("fabric", "attach", "{\"id\":1,\"result\":{\"host\":\"h1\",\"region_size\":1073741824,\"tags\":[{\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"shared\":true,\"region\":1,\"size\":4194304,\"extents\":[{\"offset\":0,\"length\":2097152},{\"offset\":6291456,\"length\":2097152}],\"hosts\":[\"h1\",\"h2\"]}]}}\n{\"event\":\"fabric_add\",\"tag\":\"11111111-2222-4333-8444-555555555555\",\"shared\":false,\"region\":0,\"size\":2097152,\"extents\":[{\"offset\":2097152,\"length\":2097152}]}\n{\"event\":\"fabric_release\",\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\"}\n");
	r |= PUTS("sysfs", "hex", "0x10000000\n");
	r |= PUTS("sysfs", "dec", "268435456\n");
	r |= PUTS("sysfs", "tag", "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\n");
	r |= PUTS("sysfs", "dotted", "extent3.12\n");
	r |= PUTS("qmp", "session", "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n{\"return\": {}}\r\n{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n{\"return\": true, \"id\": 2}\r\n");
	r |= PUTS("qmp", "error", "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n{\"return\": {}, \"id\": 1}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"invalid slot\"}, \"id\": 2}\n");
	tagmem_tag_parse("6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10", &tag);
	{
		/* an OEM-strings structure as QEMU builds it from two -smbios type=11 values */
		char oem[SLOT_OEM_MAX];
		uint8_t smbios[256] = { 11, 5, 0x00, 0x0e, 2 };
		size_t len = 5;

		slot_oem_string(0, &tag, oem);
		memcpy(smbios + len, oem, strlen(oem) + 1);
		len += strlen(oem) + 1;
		memcpy(smbios + len, "other-vendor=1", 15);
		len += 15;
		smbios[len++] = 0;
		r |= put(dir, "slots", "smbios", smbios, len);
	}
	r |= PUTS("slots", "lines", "0 6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\n255 11111111-2222-4333-8444-555555555555\n");
	{
		/* a save file's header as brokerd writes it */
		static uint8_t hdr[SNAP_HEADER_SIZE];
		struct snap_header h = { .vm = "vm1", .nentries = 1, .devstate_length = 4096 };

		h.e[0].tag = tag;
		h.e[0].size = 64u << 20;
		snap_layout(&h);
		snap_header_build(&h, hdr);
		r |= put(dir, "snapshot", "header", hdr, sizeof(hdr));
	}
	{
		/* a save of two backings and an empty device state; one of the most a header holds */
		static uint8_t hdr[SNAP_HEADER_SIZE];
		struct snap_header h = { .vm = "a-vm.name_64", .nentries = 2 };

		h.e[0].tag = tag;
		h.e[0].size = 4096;
		tagmem_tag_parse("11111111-2222-4333-8444-555555555555", &h.e[1].tag);
		h.e[1].size = 1ull << 40;
		snap_layout(&h);
		snap_header_build(&h, hdr);
		r |= put(dir, "snapshot", "two-backings", hdr, sizeof(hdr));
		memset(&h, 0, sizeof(h));
		h.nentries = SNAP_MAX_ENTRIES;
		snprintf(h.vm, sizeof(h.vm), "%s", "vm-with-32");
		for (unsigned i = 0; i < SNAP_MAX_ENTRIES; i++) {
			h.e[i].tag = tag;
			h.e[i].tag.bytes[15] = (uint8_t)i;
			h.e[i].size = (i + 1) * 4096ull;
		}
		h.devstate_length = 1;
		snap_layout(&h);
		snap_header_build(&h, hdr);
		r |= put(dir, "snapshot", "full", hdr, sizeof(hdr));
	}
	/* the guest agent: what the host sends, and marks between them */
	r |= PUTS("guestd", "slots", "{\"event\":\"slots\",\"protocol\":1,\"vm\":\"v1\",\"slots\":[{\"slot\":0,\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\"}]}\n");
	{
		static const char reclaim[] = "{\"event\":\"reclaim\",\"request\":7,\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"bytes\":1048576}\n";
		uint8_t prog[4096];
		size_t len = 0;

		for (unsigned i = 0; i < 150; i++) { /* more ranges than one answer line holds */
			uint64_t off = (uint64_t)i << 21, l = 4096ull * (i + 1);

			prog[len++] = 'M';
			prog[len++] = 0;  /* tag 0 */
			prog[len++] = 1;  /* cold */
			for (int b = 0; b < 8; b++)
				prog[len++] = (uint8_t)(off >> (8 * b));
			for (int b = 0; b < 8; b++)
				prog[len++] = (uint8_t)(l >> (8 * b));
			if (len + 19 + sizeof(reclaim) > sizeof(prog))
				break;
		}
		memcpy(prog + len, reclaim, sizeof(reclaim) - 1);
		len += sizeof(reclaim) - 1;
		r |= put(dir, "guestd", "marks-then-reclaim", prog, len);
	}
	if (label_area_build(area, &tag, "tagmem", 1, 16u << 20) == 0)
		r |= put(dir, "labels", "one-label", area, 1024); /* the rest is zero */
	else
		r = -1;
	return r ? 1 : 0;
}
