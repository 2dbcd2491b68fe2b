/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The slot map: which tag the hypervisor put in which NVDIMM slot. It is how a guest learns
 * the tag of label-less capacity, the kind brokerd must not write a label into (a DCD tag,
 * shared or private: its bytes are the tag's, all of them). Two sources, both read under the
 * sysfs root:
 *   - firmware, for cold plug: SMBIOS type 11 OEM strings "tagmem.nvdimm.<slot>=<uuid>"
 *     (QEMU's `-smbios type=11,value=…`, which `tagmem qemu-args` emits), shown by Linux
 *     in sys/firmware/dmi/entries/11-N/raw;
 *   - the guest channel, for hot plug: run/tagmem/guest-slots, lines "<slot> <uuid>", which
 *     the guest agent writes from what brokerd tells it.
 * QEMU gives the nvdimm in slot N the NFIT device handle N + 1; nd.c reads it back. A slot
 * named with two different tags names nothing, nor does a tag named at two slots: no
 * guessing. Internal; not installed.
 */
#ifndef TAGMEM_SLOTS_H
#define TAGMEM_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sysfs.h"

#define SLOT_MAP_SLOTS 256 /* QEMU's nvdimm slot range */
#define SLOT_MAP_FILE "run/tagmem/guest-slots"
#define SLOT_OEM_PREFIX "tagmem.nvdimm."

struct slot_map {
	tagmem_tag tag[SLOT_MAP_SLOTS];
	uint8_t state[SLOT_MAP_SLOTS]; /* SLOT_EMPTY, SLOT_SET, SLOT_CONFLICT */
};
enum { SLOT_EMPTY, SLOT_SET, SLOT_CONFLICT };

void slot_map_init(struct slot_map *m);
/* Name slot's tag; the same slot with another tag becomes a conflict. -EINVAL out of range. */
int slot_map_add(struct slot_map *m, unsigned slot, const tagmem_tag *tag);
/* The tag of a slot, or NULL (empty, out of range, named twice differently, or its tag also
 * named at another slot). */
const tagmem_tag *slot_map_get(const struct slot_map *m, unsigned slot);

/* One SMBIOS type 11 structure as the kernel shows it (header, formatted area, strings).
 * Strings that are not ours are skipped; a malformed structure is -EBADMSG and adds nothing.
 * Returns the number of slots named. */
int slot_map_parse_oem(struct slot_map *m, const uint8_t *raw, size_t len);
/* "<slot> <uuid>" lines; a bad line is -EBADMSG and the whole text adds nothing. */
int slot_map_parse_lines(struct slot_map *m, const char *text, size_t len);
/* Both sources under the root; a missing source is empty, a malformed one is skipped. */
int slot_map_read(struct sysfs *s, struct slot_map *ret);

/* The text of one OEM string for QEMU: "tagmem.nvdimm.3=<uuid>". */
#define SLOT_OEM_MAX (sizeof(SLOT_OEM_PREFIX) + 4 + TAGMEM_TAG_STRING_MAX)
void slot_oem_string(unsigned slot, const tagmem_tag *tag, char buf[SLOT_OEM_MAX]);

#endif
