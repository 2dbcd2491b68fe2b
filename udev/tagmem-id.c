/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tagmem-id: udev helper (IMPORT{program}) that names the tag of a dax or pmem device.
 *   tagmem-id [--root DIR] [--nd-namespaces POLICY] DEVPATH
 * Prints udev properties for a device that carries a tag by the same rules brokerd and
 * `tagmem lookup` use (libtagmem's view: a CXL DCD device holding exactly its tag's extents,
 * an NVDIMM namespace label uuid the namespace policy admits, or the tag the hypervisor names
 * for a label-less NVDIMM's slot):
 *   TAGMEM_TAG=<uuid>  TAGMEM_KIND=dax|pmem  TAGMEM_SOURCE=cxl|nvdimm  [TAGMEM_NAMESPACE=…]
 *   [TAGMEM_NAMED_BY=label|slot]  (nvdimm: its label, or the hypervisor's slot map)
 * and nothing (exit 0) for a device without a stable tag: no guessing, no symlink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view.h"

static const char usage[] = "Usage: tagmem-id [--root DIR] [--nd-namespaces tagmem|all|none] "
			    "DEVPATH\n";

int main(int argc, char **argv)
{
	struct view_options opts = { .nd_policy = VIEW_ND_DEFAULT };
	const char *root = "/", *devpath = NULL;
	char tag[TAGMEM_TAG_STRING_MAX];
	struct view_tag t;
	struct sysfs *s;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc)
			root = argv[++i];
		else if (!strcmp(argv[i], "--nd-namespaces") && i + 1 < argc) {
			if (view_nd_policy_parse(argv[++i], &opts.nd_policy) < 0) {
				fprintf(stderr, "tagmem-id: --nd-namespaces takes tagmem, all or none\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
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
		fputs(usage, stderr);
		return 2;
	}
	r = sysfs_open(root, &s);
	if (r < 0) {
		fprintf(stderr, "tagmem-id: cannot open %s: %s\n", root, strerror(-r));
		return 1;
	}
	r = view_device_tag(s, &opts, devpath, &t);
	sysfs_close(s);
	if (r < 0)
		return 0; /* no stable identity: export nothing */
	printf("TAGMEM_TAG=%s\n", tagmem_tag_format(&t.tag, tag));
	printf("TAGMEM_KIND=%s\n", t.kind == ND_KIND_DAX ? "dax" : "pmem");
	printf("TAGMEM_SOURCE=%s\n", t.source == VIEW_SOURCE_CXL ? "cxl" : "nvdimm");
	if (t.ns[0])
		printf("TAGMEM_NAMESPACE=%s\n", t.ns);
	if (t.source == VIEW_SOURCE_NVDIMM)
		printf("TAGMEM_NAMED_BY=%s\n", t.from_slot ? "slot" : "label");
	return 0;
}
