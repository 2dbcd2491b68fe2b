/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What `tagmem COMMAND --help` (and `tagmem help COMMAND`) says after the usage line: what the
 * command does and each of its options. The man page, tagmem(1), says the same at length. */
#include <string.h>

#include "cli.h"

static const struct {
	const char *cmd, *text;
} help[] = {
	{ "lookup", "Print the device path of a ready tag. Without brokerd, read the sysfs tree.\n"
		    "  --no-daemon   do not ask brokerd; read the tree\n"
		    "  --root DIR    the sysfs root to read [$TAGMEM_ROOT, else / and the simulator's]\n" },
	{ "list", "Every tag brokerd knows: state, size, device, owner.\n" },
	{ "show", "Everything about one tag (an image: its page cache, budgets and label).\n" },
	{ "watch", "Stream events until interrupted.\n"
		   "  --count N     stop after N events\n" },
	{ "claim", "Claim a ready tag for the calling user (advisory: see tagmem(1)).\n"
		   "  --name NAME   what the claim is for (at most 127 bytes)\n"
		   "  --grant       also give the device node (an image: its file) to this user,\n"
		   "                until the release\n"
		   "  --cluster-exclusive   first win the tag across every host (this host's\n"
		   "                tagmem-clusterd, an etcd transaction): prints the fencing token,\n"
		   "                larger for every new holder; refused (busy) while another host\n"
		   "                holds it\n" },
	{ "release", "Release a claim (its owner or root).\n"
		     "  --cluster-exclusive   and then the tag's exclusive claim across the cluster\n" },
	{ "fm", "A simulated fabric manager: this host's own (embedded in brokerd), or with\n"
		"--fabric DIR (or TAGMEM_FABRIC) the one several hosts share (tagmem-fmd --dir DIR).\n"
		"  add --size SIZE [--tag UUID] [--shared]   allocate capacity (2M multiples)\n"
		"      [--host ID...]                        to these hosts of the shared fabric\n"
		"                                            (several only with --shared)\n"
		"  release --tag UUID [--host ID]            take it back (waits for claims); from\n"
		"                                            one host of a shared fabric, or all\n"
		"  add-host --tag UUID --host ID             one more host maps a shared tag\n"
		"  list [--host ID]                          the shared fabric's tags and the hosts\n"
		"                                            holding each (as List Tags reports)\n" },
	{ "cluster", "The cluster tag directory on etcd (tagmem-clusterd publishes each host's tags),\n"
		     "read from etcd itself: --etcd URLS, or TAGMEM_ETCD [http://127.0.0.1:2379].\n"
		     "  list           every tag of every host: device, state, owner\n"
		     "  where UUID     the hosts that have the tag (exit 1: none)\n"
		     "  hosts          the hosts publishing\n"
		     "  watch          each change as it happens (Ctrl-C ends it)\n" },
	{ "status", "brokerd's state: tags by state, clients, guests, memory pressure.\n" },
	{ "image", "Fake-DAX images (root or brokerd's user, except budget).\n"
		   "  create PATH --size SIZE [--tag UUID] [--layout pmem|devdax]\n"
		   "                 a sparse image in an image directory; devdax: a 16 MiB header\n"
		   "                 makes it /dev/daxX.Y in the guest, offset 0 the tag's\n"
		   "  adopt PATH [--tag UUID]          an existing file\n"
		   "  budget UUID [--dirty SIZE|none] [--resident SIZE|none]   0 is none too\n"
		   "  invalidate UUID                  drop its cache (before a migrated VM starts)\n"
		   "  clear-error UUID                 after lost writes were dealt with: let its\n"
		   "                                   flushes succeed again\n"
		   "  forget UUID                      stop treating it as an image; the file stays\n" },
	{ "qemu-args", "Claim tags for VM NAME and print its QEMU arguments, one a line.\n"
		       "  --vm NAME            the VM (required)\n"
		       "  --mode MODE          nvdimm (labelled; default) or virtio-pmem (images)\n"
		       "  --ram UUID           this tag is the VM's RAM (give QEMU -m of its size)\n"
		       "  --no-channel         leave out the guest channel (a second call for a VM)\n"
		       "  --shell              one shell-quoted line\n" },
	{ "libvirt-xml", "Claim tags for libvirt domain NAME (as qemu-args does) and print the XML\n"
			 "the domain needs, as one <domain> whose children are merged into the\n"
			 "domain's: nvdimm <memory> devices, SMBIOS oemStrings, the guest channel\n"
			 "and the <metadata> the hook reads.\n"
			 "  --vm NAME       the domain (required)\n"
			 "  --no-channel    leave out the guest channel\n" },
	{ "libvirt-hook", "libvirt's qemu hook (/etc/libvirt/hooks/qemu.d/tagmem), with the domain's\n"
			  "XML on stdin: \"prepare begin\" claims the tags its tagmem metadata names\n"
			  "(a refusal stops the start, with the reason), \"release end\" releases\n"
			  "them. Other operations pass.\n" },
	{ "attach", "Hot-plug a tag into a running QEMU.\n"
		    "  --vm NAME          the VM\n"
		    "  --qmp SOCKET       its QMP socket (yours, or you are root)\n"
		    "  --libvirt DOMAIN   a running libvirt domain instead, through virsh\n"
		    "  --connect URI      virsh's connection (default: virsh's own)\n" },
	{ "detach", "QEMU 7.2 cannot unplug an nvdimm: mark the tag, released when the VM exits.\n" },
	{ "flush", "Make an image's cached writes durable: all, or a range.\n"
		   "  --offset BYTES --length BYTES   the range (of the tag's data)\n"
		   "  --async                         queue it; flush_done follows (tagmem watch)\n" },
	{ "evict", "Write back, then drop an image's cached pages (its VM's guest may choose).\n"
		   "  --to BYTES    what may stay cached [its resident budget, else 0]\n" },
	{ "vm", "Save a VM whose memory is all tags, or restore it; live-migrate it to a host\n"
		"that shares its tags.\n"
		"  save VM FILE [--qmp SOCKET] [--resume] [--threads N]\n"
		"  restore VM FILE [--qmp SOCKET] [--threads N]   into QEMU -incoming defer\n"
		"  migrate-args VM --to HOST [--qmp SOCKET] [--to-socket SOCKET] [--shell]\n"
		"      the destination QEMU's tag arguments (-S -incoming defer at the end)\n"
		"  migrate VM --to HOST --uri URI --to-qmp SOCKET [--qmp SOCKET] [--to-socket SOCKET]\n"
		"      URI: where the destination QEMU listens (tcp:HOST:PORT, unix:/PATH)\n"
		"      HOST's brokerd: --to-socket, or $TAGMEM_HOSTS_DIR/HOST.sock\n" },
	{ "hint", "In a VM, with --guest: mark a range cold (the host takes it first) or hot.\n"
		  "  --offset BYTES --length BYTES --cold|--hot\n" },
};

void cli_help_text(const char *cmd)
{
	for (size_t i = 0; i < ARRAY_SIZE(help); i++)
		if (!strcmp(help[i].cmd, cmd)) {
			fputs(help[i].text, stdout);
			return;
		}
}
