/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slot map (slots.h): parsing the firmware's OEM strings and the guest agent's file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"
#include "util.h"

#define DMI_TYPE_OEM_STRINGS 11
#define DMI_OEM_DIR "sys/firmware/dmi/entries"
#define DMI_ENTRY_MAX 65536 /* a structure's strings; far more than any table holds */
#define SLOT_FILE_MAX (SLOT_MAP_SLOTS * 48)

void slot_map_init(struct slot_map *m)
{
	memset(m, 0, sizeof(*m));
}

int slot_map_add(struct slot_map *m, unsigned slot, const tagmem_tag *tag)
{
	if (slot >= SLOT_MAP_SLOTS || tagmem_tag_is_null(tag))
		return -EINVAL;
	if (m->state[slot] == SLOT_EMPTY) {
		m->tag[slot] = *tag;
		m->state[slot] = SLOT_SET;
	} else if (m->state[slot] == SLOT_SET && tagmem_tag_compare(&m->tag[slot], tag)) {
		m->state[slot] = SLOT_CONFLICT;
	}
	return 0;
}

const tagmem_tag *slot_map_get(const struct slot_map *m, unsigned slot)
{
	if (slot >= SLOT_MAP_SLOTS || m->state[slot] != SLOT_SET)
		return NULL;
	/* a tag is one DIMM: named at two slots (the firmware and the agent disagreeing, say)
	 * it names neither, or udev's link and lookup could pick different devices */
	for (unsigned i = 0; i < SLOT_MAP_SLOTS; i++)
		if (i != slot && m->state[i] == SLOT_SET &&
		    !tagmem_tag_compare(&m->tag[i], &m->tag[slot]))
			return NULL;
	return &m->tag[slot];
}

/* A whole source's names into the map: what it names, and the conflicts it had in itself. */
static void merge(struct slot_map *m, const struct slot_map *add)
{
	for (unsigned i = 0; i < SLOT_MAP_SLOTS; i++) {
		if (add->state[i] == SLOT_SET)
			slot_map_add(m, i, &add->tag[i]);
		else if (add->state[i] == SLOT_CONFLICT)
			m->state[i] = SLOT_CONFLICT;
	}
}

/* "<slot>" then sep then a tag, exactly: decimal slot without sign or leading zero. */
static int parse_entry(const char *p, size_t len, char sep, unsigned *ret_slot, tagmem_tag *ret_tag)
{
	char tag[TAGMEM_TAG_STRING_MAX];
	unsigned slot = 0;
	size_t i = 0;

	while (i < len && p[i] >= '0' && p[i] <= '9' && i < 3)
		slot = slot * 10 + (unsigned)(p[i++] - '0');
	if (i == 0 || (i > 1 && p[0] == '0') || i >= len || p[i] != sep)
		return -EBADMSG;
	i++;
	if (len - i != TAGMEM_TAG_STRING_MAX - 1)
		return -EBADMSG;
	memcpy(tag, p + i, TAGMEM_TAG_STRING_MAX - 1);
	tag[TAGMEM_TAG_STRING_MAX - 1] = '\0';
	if (slot >= SLOT_MAP_SLOTS || tagmem_tag_parse(tag, ret_tag) < 0 ||
	    tagmem_tag_is_null(ret_tag))
		return -EBADMSG;
	*ret_slot = slot;
	return 0;
}

int slot_map_parse_oem(struct slot_map *m, const uint8_t *raw, size_t len)
{
	const size_t plen = strlen(SLOT_OEM_PREFIX);
	struct slot_map add;
	unsigned count, seen = 0;
	size_t off;
	int named = 0;

	/* header: type, length of the formatted area, handle (2); then the string count */
	if (len < 5 || raw[0] != DMI_TYPE_OEM_STRINGS || raw[1] < 5 || raw[1] > len)
		return -EBADMSG;
	count = raw[4];
	slot_map_init(&add);
	for (off = raw[1]; off < len && raw[off]; seen++) {
		const char *s = (const char *)raw + off;
		size_t n = strnlen(s, len - off);
		unsigned slot;
		tagmem_tag tag;

		if (off + n == len)
			return -EBADMSG; /* a string without its NUL */
		if (n > plen && !memcmp(s, SLOT_OEM_PREFIX, plen)) {
			if (parse_entry(s + plen, n - plen, '=', &slot, &tag) < 0)
				return -EBADMSG; /* ours, and wrong: trust none of it */
			slot_map_add(&add, slot, &tag);
			named++;
		}
		off += n + 1;
	}
	if (seen != count)
		return -EBADMSG;
	merge(m, &add);
	return named;
}

int slot_map_parse_lines(struct slot_map *m, const char *text, size_t len)
{
	struct slot_map add;
	size_t off = 0;
	int named = 0;

	slot_map_init(&add);
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
		unsigned slot;
		tagmem_tag tag;

		if (!nl || parse_entry(text + off, n, ' ', &slot, &tag) < 0)
			return -EBADMSG; /* every line whole and well formed, or none counts */
		slot_map_add(&add, slot, &tag);
		named++;
		off += n + 1;
	}
	merge(m, &add);
	return named;
}

int slot_map_read(struct sysfs *s, struct slot_map *ret)
{
	_cleanup_free_ uint8_t *buf = malloc(DMI_ENTRY_MAX + 1);
	char **names = NULL;
	size_t cnt = 0, len;
	int r;

	if (!buf)
		return -ENOMEM;
	slot_map_init(ret);
	r = sysfs_list(s, DMI_OEM_DIR, "11-", &names, &cnt);
	if (r < 0)
		return r;
	for (size_t i = 0; i < cnt; i++) {
		char path[128];

		snprintf(path, sizeof(path), DMI_OEM_DIR "/%s/raw", names[i]);
		if (sysfs_read_raw(s, path, buf, DMI_ENTRY_MAX + 1, &len) == 0)
			slot_map_parse_oem(ret, buf, len); /* a bad table names nothing */
	}
	sysfs_names_free(names, cnt);
	if (sysfs_read_raw(s, SLOT_MAP_FILE, buf, SLOT_FILE_MAX + 1, &len) == 0)
		slot_map_parse_lines(ret, (const char *)buf, len);
	return 0;
}

void slot_oem_string(unsigned slot, const tagmem_tag *tag, char buf[SLOT_OEM_MAX])
{
	char s[TAGMEM_TAG_STRING_MAX];

	snprintf(buf, SLOT_OEM_MAX, SLOT_OEM_PREFIX "%u=%s", slot, tagmem_tag_format(tag, s));
}
