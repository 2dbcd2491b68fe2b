/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-id: udev helper (IMPORT{program}) that names the tag of a dax or pmem device.
 *   tagmem-id [--root DIR] DEVPATH
 * Prints udev properties for a device whose tag the kernel states (CXL DCD extent uuid/tag,
 * NVDIMM namespace label uuid):
 *   TAGMEM_TAG=<uuid>  TAGMEM_KIND=dax|pmem  TAGMEM_SOURCE=cxl|nvdimm  [TAGMEM_NAMESPACE=…]
 * and nothing (exit 0) for a device without a stable tag: no guessing, no symlink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd.h"

int main(int argc, char **argv)
{
	const char *root = "/", *devpath = NULL;
	char tag[TAGMEM_TAG_STRING_MAX];
	struct device_tag t;
	struct sysfs *s;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("Usage: tagmem-id [--root DIR] DEVPATH\n");
			return 0;
		} else if (!devpath)
			devpath = argv[i];
		else {
			fprintf(stderr, "tagmem-id: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!devpath)
		devpath = getenv("DEVPATH"); /* as udev passes it */
	if (!devpath) {
		fprintf(stderr, "Usage: tagmem-id [--root DIR] DEVPATH\n");
		return 2;
	}
	r = sysfs_open(root, &s);
	if (r < 0) {
		fprintf(stderr, "tagmem-id: cannot open %s: %s\n", root, strerror(-r));
		return 1;
	}
	r = device_tag(s, devpath, &t);
	sysfs_close(s);
	if (r < 0)
		return 0; /* no stable identity: export nothing */
	printf("TAGMEM_TAG=%s\n", tagmem_tag_format(&t.tag, tag));
	printf("TAGMEM_KIND=%s\n", t.kind == ND_KIND_DAX ? "dax" : "pmem");
	printf("TAGMEM_SOURCE=%s\n", t.source);
	if (t.ns[0])
		printf("TAGMEM_NAMESPACE=%s\n", t.ns);
	return 0;
}
