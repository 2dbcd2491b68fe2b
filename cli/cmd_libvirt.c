/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tagged capacity for libvirt domains (docs/operations.md, "libvirt").
 *
 * tagmem libvirt-xml UUID… --vm NAME [--no-channel]: claims the tags for domain NAME, as
 * qemu-args does, and prints what the domain needs, as one <domain> document whose children
 * are to be merged into the domain's: the <memory model='nvdimm'> devices (the tag's device
 * or image, its label area where brokerd labels it, its dimm slot), <sysinfo> oemStrings for
 * label-less tags with <os><smbios mode='sysinfo'/>, the guest channel, and tagmem's
 * <metadata>, which the hook reads.
 *
 * tagmem libvirt-hook DOMAIN OPERATION SUBOPERATION [EXTRA] < DOMAIN_XML: libvirt's qemu
 * hook (installed as /etc/libvirt/hooks/qemu.d/tagmem). "prepare begin" claims the tags the
 * domain's metadata names, for the domain, before QEMU starts; a claim that fails refuses the
 * start, with brokerd's reason. "release end" releases them once QEMU is gone. Everything
 * else is let through. The XML comes from libvirtd, but it holds what any user allowed to
 * define domains wrote: it is read bounded, and only tagmem's own element of it is believed.
 *
 * tagmem attach --libvirt DOMAIN UUID [--connect URI]: hot plug into a running domain. libvirt
 * holds QEMU's monitor, so the tag is claimed for the domain as for a start (its next slot,
 * its label, its guest told), then plugged with virsh attach-device --live, and added to the
 * domain's live tagmem metadata so that the hook releases it when the domain stops. A plug
 * that fails gives the claim back.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define LIBVIRT_NS "https://tagmem.io/libvirt/1"
#define HOOK_XML_MAX (4u << 20) /* a domain's XML is kilobytes; more is not a domain */
#define HOOK_TAGS_MAX 64

/* XML text or attribute value: the five characters that cannot stand for themselves. */
static void fput_escaped(const char *s, FILE *f)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '\'': fputs("&apos;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* The value of key in QEMU's "a=b,c=d" option string (",," is a literal comma), into buf;
 * false when it is not there or does not fit. */
static bool qemu_opt(const char *opts, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = opts;

	while (*p) {
		bool match = !strncmp(p, key, klen) && p[klen] == '=', fits = true;
		size_t n = 0;

		if (match)
			p += klen + 1;
		for (; *p; p++) {
			if (*p == ',') {
				if (p[1] != ',')
					break;
				p++; /* ",," is one comma */
			}
			if (!match)
				continue;
			if (n + 1 < len)
				buf[n++] = *p;
			else
				fits = false;
		}
		if (match) {
			buf[n] = '\0';
			return fits;
		}
		if (*p == ',')
			p++;
	}
	return false;
}

/* "128K", "2M" or a byte count, as QEMU's size options take them, in KiB. */
static bool size_kib(const char *s, unsigned long long *ret)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return false;
	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M')
		v <<= 20;
	else if (*end == 'G')
		v <<= 30;
	else if (*end)
		return false;
	if (v % 1024)
		return false;
	*ret = v / 1024;
	return true;
}

static bool print_memory(struct json_object *dev, FILE *f)
{
	const char *object = NULL, *device = NULL;
	char path[4096], size[32], label[32];
	unsigned long long size_k, label_k = 0;
	uint64_t slot;

	if (tagmem_json_get_string(dev, "object", &object) < 0 ||
	    tagmem_json_get_string(dev, "device", &device) < 0 ||
	    tagmem_json_get_u64(dev, "slot", &slot) < 0 ||
	    !qemu_opt(object, "mem-path", path, sizeof(path)) ||
	    !qemu_opt(object, "size", size, sizeof(size)) || !size_kib(size, &size_k))
		return false;
	if (qemu_opt(device, "label-size", label, sizeof(label)) && !size_kib(label, &label_k))
		return false;
	fputs("    <memory model='nvdimm' access='shared'>\n      <source><path>", f);
	fput_escaped(path, f);
	fprintf(f, "</path><alignsize unit='KiB'>2048</alignsize></source>\n"
		"      <target><size unit='KiB'>%llu</size><node>0</node>", size_k);
	if (label_k)
		fprintf(f, "<label><size unit='KiB'>%llu</size></label>", label_k);
	fprintf(f, "</target>\n      <address type='dimm' slot='%llu'/>\n    </memory>\n",
		(unsigned long long)slot);
	return true;
}

static int print_domain_xml(struct cli *cli, struct json_object *result)
{
	struct json_object *devs, *args;
	const char *channel = NULL;
	size_t n;

	if (!json_object_object_get_ex(result, "devices", &devs) ||
	    !json_object_is_type(devs, json_type_array) ||
	    !json_object_object_get_ex(result, "args", &args) ||
	    !json_object_is_type(args, json_type_array))
		goto malformed;
	tagmem_json_get_string(result, "channel", &channel);
	n = json_object_array_length(devs);
	fputs("<!-- tagmem libvirt-xml: merge each child of this element into the domain's own\n"
	      "     (memory devices need <maxMemory slots='N'>, a NUMA cell and <features><acpi/>;\n"
	      "     docs/operations.md, \"libvirt\"). The hook claims the tags at every start. -->\n"
	      "<domain>\n  <metadata>\n    <tagmem:vm xmlns:tagmem='" LIBVIRT_NS "' channel='", stdout);
	fputs(channel ? "yes" : "no", stdout);
	fputs("'>\n", stdout);
	for (size_t i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		const char *tag = NULL;
		uint64_t slot;

		if (tagmem_json_get_string(d, "tag", &tag) < 0 ||
		    tagmem_json_get_u64(d, "slot", &slot) < 0)
			goto malformed;
		printf("      <tagmem:tag slot='%llu'>", (unsigned long long)slot);
		fput_escaped(tag, stdout);
		fputs("</tagmem:tag>\n", stdout);
	}
	fputs("    </tagmem:vm>\n  </metadata>\n", stdout);
	/* label-less tags: the hypervisor names them through SMBIOS type 11 (as -smbios does) */
	bool firmware = false;
	for (size_t i = 0; i + 1 < json_object_array_length(args); i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(args, i));
		const char *v = json_object_get_string(json_object_array_get_idx(args, i + 1));
		char value[256];

		if (!a || !v || strcmp(a, "-smbios") || !qemu_opt(v, "value", value, sizeof(value)))
			continue;
		if (!firmware)
			fputs("  <os><smbios mode='sysinfo'/></os>\n"
			      "  <sysinfo type='smbios'>\n    <oemStrings>\n", stdout);
		firmware = true;
		fputs("      <entry>", stdout);
		fput_escaped(value, stdout);
		fputs("</entry>\n", stdout);
	}
	if (firmware)
		fputs("    </oemStrings>\n  </sysinfo>\n", stdout);
	fputs("  <devices>\n", stdout);
	for (size_t i = 0; i < n; i++)
		if (!print_memory(json_object_array_get_idx(devs, i), stdout))
			goto malformed;
	if (channel) {
		fputs("    <channel type='unix'>\n      <source mode='connect' path='", stdout);
		fput_escaped(channel, stdout);
		fputs("'><reconnect enabled='yes' timeout='1'/></source>\n"
		      "      <target type='virtio' name='org.tagmem.guest.0'/>\n    </channel>\n",
		      stdout);
	}
	fputs("  </devices>\n</domain>\n", stdout);
	return EXIT_OK;
malformed:
	cli_fail(cli, "internal", "brokerd sent a qemu_args answer this tagmem cannot read");
	return EXIT_FAIL;
}

/* {"op":"qemu_args","vm":vm,"tags":tags,"channel":channel}: the claims and their devices */
static int claim_for_domain(struct cli *cli, const char *vm, struct json_object *tags,
			    bool channel, struct json_object **ret_reply,
			    struct json_object **ret_result)
{
	_cleanup_json_ struct json_object *req = tagmem_request_new("qemu_args");

	json_object_object_add(req, "vm", json_object_new_string(vm));
	json_object_object_add(req, "tags", tags);
	json_object_object_add(req, "channel", json_object_new_boolean(channel));
	return cli_call(cli, req, ret_reply, ret_result);
}

int cmd_libvirt_xml(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vm", required_argument, NULL, 'v' },
		{ "no-channel", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	static const char synopsis[] = "UUID... --vm NAME [--no-channel]";
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *result, *tags;
	const char *vm = NULL;
	bool channel = true;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "v:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'v': vm = optarg; break;
		case 'n': channel = false; break;
		case 'h': return cli_usage(cli, "libvirt-xml", synopsis, false);
		default: return cli_usage(cli, "libvirt-xml", synopsis, true);
		}
	}
	if (optind == argc || !vm) {
		cli_err(cli, "libvirt-xml needs the tags and --vm NAME, the domain's name, which "
			"the tags are claimed for");
		return EXIT_USAGE;
	}
	tags = cli_tags_array(cli, argc - optind, argv + optind);
	if (!tags)
		return EXIT_USAGE;
	r = claim_for_domain(cli, vm, tags, channel, &reply, &result);
	if (r < 0)
		return -r;
	return print_domain_xml(cli, result);
}

/* ---- the hook ------------------------------------------------------------------------ */

struct hook_tags {
	char tag[HOOK_TAGS_MAX][TAGMEM_TAG_STRING_MAX];
	long slot[HOOK_TAGS_MAX];
	size_t n;
	bool channel;
};

/* stdin, whole, up to HOOK_XML_MAX bytes; NULL (said) when larger or unreadable */
static char *read_xml(struct cli *cli)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap + 1);

	while (buf) {
		ssize_t n = read(STDIN_FILENO, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_fail(cli, "invalid_argument", "cannot read the domain XML: %s",
				 strerror(errno));
			break;
		}
		if (n == 0) {
			buf[len] = '\0';
			return buf;
		}
		len += (size_t)n;
		if (len == cap) {
			char *more;

			if (cap >= HOOK_XML_MAX) {
				cli_fail(cli, "invalid_argument", "the domain XML is over %u bytes",
					 HOOK_XML_MAX);
				break;
			}
			cap *= 2;
			more = realloc(buf, cap + 1);
			if (!more)
				break;
			buf = more;
		}
	}
	free(buf);
	return NULL;
}

#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."

/* The element <P:vm> whose prefix P an xmlns:P="NS" (or 'NS') binds to tagmem's namespace,
 * wherever libvirt put the declaration (on the element, on <metadata>; after a metadata
 * update, both, with two prefixes). NULL when there is none; prefix receives P. */
static const char *find_vm(const char *xml, char *prefix, size_t len)
{
	for (const char *ns = strstr(xml, LIBVIRT_NS); ns; ns = strstr(ns + 1, LIBVIRT_NS)) {
		char q = ns > xml + 8 ? ns[-1] : 0, vm_open[48];
		const char *p = ns - 2, *name, *open;

		if ((q != '"' && q != '\'') || ns[strlen(LIBVIRT_NS)] != q || *p != '=')
			continue;
		while (p > xml && strchr(NAME_CHARS, p[-1]))
			p--;
		name = p;
		if (p - xml < 6 || strncmp(p - 6, "xmlns:", 6) || (size_t)(ns - 2 - name) >= len ||
		    ns - 2 == name)
			continue;
		memcpy(prefix, name, (size_t)(ns - 2 - name));
		prefix[ns - 2 - name] = '\0';
		snprintf(vm_open, sizeof(vm_open), "<%s:vm", prefix);
		for (open = strstr(xml, vm_open); open; open = strstr(open + 1, vm_open))
			if (strchr(" \t\r\n>", open[strlen(vm_open)]))
				return open;
	}
	return NULL;
}

/*
 * tagmem's element of the domain's <metadata>: <P:vm channel='yes'> with
 * <P:tag slot='N'>UUID</P:tag> children, P bound to tagmem's namespace wherever libvirt
 * declares it. 0 and n = 0 when there is none (not a tagmem domain); -EINVAL for one that
 * does not read as written.
 */
static int parse_metadata(const char *xml, struct hook_tags *ret)
{
	char prefix[32], close_tag[48], tag_open[48];
	const char *open, *end, *p;

	memset(ret, 0, sizeof(*ret));
	open = find_vm(xml, prefix, sizeof(prefix));
	if (!open) {
		/* declared but not on a <P:vm>, or as the default namespace: ours, but not as
		 * libvirt-xml writes it; the address only in some text (a description): not a
		 * tagmem domain */
		return strstr(xml, "=\"" LIBVIRT_NS "\"") || strstr(xml, "='" LIBVIRT_NS "'") ?
		       -EINVAL : 0;
	}
	snprintf(close_tag, sizeof(close_tag), "</%s:vm>", prefix);
	snprintf(tag_open, sizeof(tag_open), "<%s:tag", prefix);
	end = strstr(open, close_tag);
	p = strchr(open, '>');
	if (!end || !p || p > end)
		return -EINVAL;
	{
		/* channel='yes' or "yes" among the element's own attributes */
		char attrs[512];
		size_t alen = (size_t)(p - open);

		if (alen >= sizeof(attrs))
			return -EINVAL;
		memcpy(attrs, open, alen);
		attrs[alen] = '\0';
		ret->channel = strstr(attrs, "channel='yes'") || strstr(attrs, "channel=\"yes\"");
	}
	for (p = strstr(p, tag_open); p && p < end; p = strstr(p, tag_open)) {
		const char *gt = strchr(p, '>'), *text, *slot;
		char *stop;
		size_t tlen;
		tagmem_tag t;

		if (!gt || gt > end || ret->n == HOOK_TAGS_MAX)
			return -EINVAL;
		slot = strstr(p, "slot=");
		if (!slot || slot > gt || (slot[5] != '\'' && slot[5] != '"'))
			return -EINVAL;
		ret->slot[ret->n] = strtol(slot + 6, &stop, 10);
		if (stop == slot + 6 || *stop != slot[5] || ret->slot[ret->n] < 0 ||
		    ret->slot[ret->n] > 255)
			return -EINVAL;
		text = gt + 1;
		tlen = strcspn(text, "<");
		while (tlen && strchr(" \t\r\n", *text))
			text++, tlen--;
		while (tlen && strchr(" \t\r\n", text[tlen - 1]))
			tlen--;
		if (tlen != TAGMEM_TAG_STRING_MAX - 1)
			return -EINVAL;
		memcpy(ret->tag[ret->n], text, tlen);
		ret->tag[ret->n][tlen] = '\0';
		if (tagmem_tag_parse(ret->tag[ret->n], &t) < 0)
			return -EINVAL;
		tagmem_tag_format(&t, ret->tag[ret->n]);
		ret->n++;
		p = gt;
	}
	return ret->n ? 0 : -EINVAL;
}

static int hook_prepare(struct cli *cli, const char *domain, const struct hook_tags *h)
{
	_cleanup_json_ struct json_object *reply = NULL;
	struct json_object *result, *devs, *tags = json_object_new_array();
	int r;

	for (size_t i = 0; i < h->n; i++)
		json_object_array_add(tags, json_object_new_string(h->tag[i]));
	r = claim_for_domain(cli, domain, tags, h->channel, &reply, &result);
	if (r < 0)
		return -r;
	/* the domain's nvdimm slots were written from an earlier answer: they must still hold,
	 * or an image's label would name another slot than the one QEMU gives it */
	if (!json_object_object_get_ex(result, "devices", &devs) ||
	    json_object_array_length(devs) != h->n) {
		cli_fail(cli, "internal", "brokerd sent a qemu_args answer this tagmem cannot read");
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < h->n; i++) {
		uint64_t slot = 0;

		if (tagmem_json_get_u64(json_object_array_get_idx(devs, i), "slot", &slot) < 0 ||
		    slot != (uint64_t)h->slot[i]) {
			cli_fail(cli, "conflict", "tag %s has nvdimm slot %llu for domain %s now, but "
				 "the domain says %ld: run tagmem libvirt-xml again and update the "
				 "domain", h->tag[i], (unsigned long long)slot, domain, h->slot[i]);
			return EXIT_FAIL;
		}
	}
	return EXIT_OK;
}

static int hook_release(struct cli *cli, const char *domain, const struct hook_tags *h)
{
	int rc = EXIT_OK;

	for (size_t i = 0; i < h->n; i++) {
		_cleanup_json_ struct json_object *reply = NULL, *rreply = NULL;
		struct json_object *result, *owner, *rresult;
		const char *name = NULL;
		char s[TAGMEM_TAG_STRING_MAX];
		int r;

		/* only this domain's claim: another may hold the tag since (its start refused ours) */
		r = cli_call_tag(cli, "show", h->tag[i], NULL, s, &reply, &result);
		if (r < 0) {
			rc = -r;
			continue;
		}
		if (!json_object_object_get_ex(result, "owner", &owner) ||
		    tagmem_json_get_string(owner, "name", &name) < 0 || strcmp(name, domain))
			continue;
		r = cli_call_tag(cli, "release", h->tag[i], NULL, s, &rreply, &rresult);
		if (r < 0)
			rc = -r;
	}
	return rc;
}

int cmd_libvirt_hook(struct cli *cli, int argc, char **argv)
{
	const char *domain, *op, *sub;
	_cleanup_free_ char *xml = NULL;
	struct hook_tags h;

	if (argc < 4 || argc > 5 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cli_usage(cli, "libvirt-hook", "DOMAIN OPERATION SUBOPERATION [EXTRA] "
				 "< DOMAIN_XML", argc >= 2 && strcmp(argv[1], "--help") &&
				 strcmp(argv[1], "-h"));
	domain = argv[1];
	op = argv[2];
	sub = argv[3];
	/* libvirt writes the XML whatever the operation: it is read (or drained), so libvirt
	 * never meets a closed pipe; an operation not ours always passes, whatever its XML */
	if (!(!strcmp(op, "prepare") && !strcmp(sub, "begin")) &&
	    !(!strcmp(op, "release") && !strcmp(sub, "end"))) {
		char sink[65536];

		for (;;) {
			ssize_t n = read(STDIN_FILENO, sink, sizeof(sink));

			if (n > 0 || (n < 0 && errno == EINTR))
				continue;
			break;
		}
		return EXIT_OK;
	}
	xml = read_xml(cli);
	if (!xml)
		return !strcmp(op, "prepare") ? EXIT_FAIL : EXIT_OK;
	if (parse_metadata(xml, &h) < 0) {
		cli_fail(cli, "invalid_argument", "domain %s: its tagmem metadata (" LIBVIRT_NS
			 ") does not read as tagmem libvirt-xml writes it", domain);
		return !strcmp(op, "prepare") ? EXIT_FAIL : EXIT_OK;
	}
	if (h.n == 0)
		return EXIT_OK; /* not a domain with tags */
	if (!strcmp(op, "prepare"))
		return hook_prepare(cli, domain, &h);
	hook_release(cli, domain, &h);
	return EXIT_OK; /* the domain is gone whatever we say: a failed release is logged */
}

/* ---- hot plug: tagmem attach --libvirt DOMAIN UUID ------------------------------------ */

/* virsh [-c URI] ARGS…, its output (stdout) into out if given (up to len), its stderr the
 * user's. The exit status, or -errno. */
static int run_virsh(const char *uri, const char *const *args, const char *input, char *out,
		     size_t len)
{
	const char *argv[16];
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 }, status, n = 0;
	size_t got = 0;
	pid_t pid;

	argv[n++] = "virsh";
	if (uri) {
		argv[n++] = "-c";
		argv[n++] = uri;
	}
	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if ((input && pipe2(in, O_CLOEXEC) < 0) || (out && pipe2(outp, O_CLOEXEC) < 0))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (input)
			dup2(in[0], STDIN_FILENO);
		if (out)
			dup2(outp[1], STDOUT_FILENO);
		else
			dup2(STDERR_FILENO, STDOUT_FILENO); /* virsh's chatter is not our output */
		execvp("virsh", (char *const *)argv);
		fprintf(stderr, "tagmem: cannot run virsh: %s\n", strerror(errno));
		_exit(127);
	}
	if (input) {
		close(in[0]);
		write_all(in[1], input, strlen(input));
		close(in[1]);
	}
	if (out) {
		close(outp[1]);
		for (;;) {
			ssize_t r = read(outp[0], out + got, len - 1 - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			if (got == len - 1)
				break;
		}
		out[got] = '\0';
		close(outp[0]);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The domain's tagmem metadata, with one more tag, set on the running domain: the hook then
 * releases the hot-plugged tag with the others when the domain stops. */
static int add_to_metadata(struct cli *cli, const char *uri, const char *domain,
			   const char *tag, uint64_t slot)
{
	/* the live XML, where the namespace is declared (virsh metadata prints the element
	 * without it) */
	const char *get[] = { "dumpxml", domain, NULL };
	_cleanup_free_ char *cur = malloc(HOOK_XML_MAX);
	char xml[65536];
	struct hook_tags h;
	size_t off;
	int r;

	memset(&h, 0, sizeof(h));
	if (!cur)
		return -ENOMEM;
	r = run_virsh(uri, get, NULL, cur, HOOK_XML_MAX);
	if (r != 0) {
		cli_fail(cli, "io_error", "virsh dumpxml %s failed: tag %s stays claimed for the "
			 "domain; release it by hand when the domain stops", domain, tag);
		return -EIO;
	}
	if (parse_metadata(cur, &h) < 0) {
		cli_fail(cli, "invalid_argument", "domain %s: its tagmem metadata does not read as "
			 "tagmem libvirt-xml writes it", domain);
		return -EINVAL;
	}
	if (h.n == HOOK_TAGS_MAX)
		return -E2BIG;
	off = (size_t)snprintf(xml, sizeof(xml), "<vm channel='%s'>", h.channel ? "yes" : "no");
	for (size_t i = 0; i < h.n; i++)
		off += (size_t)snprintf(xml + off, sizeof(xml) - off, "<tag slot='%ld'>%s</tag>",
					h.slot[i], h.tag[i]);
	snprintf(xml + off, sizeof(xml) - off, "<tag slot='%llu'>%s</tag></vm>",
		 (unsigned long long)slot, tag);
	{
		const char *set[] = { "metadata", domain, LIBVIRT_NS, "--key", "tagmem", "--set",
				      xml, "--live", NULL };

		r = run_virsh(uri, set, NULL, NULL, 0);
	}
	if (r != 0) {
		cli_fail(cli, "io_error", "virsh metadata could not record tag %s in domain %s: "
			 "release it by hand when the domain stops", tag, domain);
		return -EIO;
	}
	return 0;
}

int libvirt_attach(struct cli *cli, const char *domain, const char *uri, const char *tagarg)
{
	_cleanup_json_ struct json_object *reply = NULL, *rreply = NULL;
	struct json_object *result, *devs, *dev, *tags, *rresult;
	_cleanup_free_ char *xml = NULL;
	char tagstr[TAGMEM_TAG_STRING_MAX];
	size_t xml_len = 0;
	uint64_t slot = 0;
	FILE *f;
	int r;

	tags = cli_tags_array(cli, 1, (char **)&tagarg);
	if (!tags)
		return EXIT_USAGE;
	snprintf(tagstr, sizeof(tagstr), "%s", json_object_get_string(json_object_array_get_idx(tags, 0)));
	/* claimed for the domain at its next slot, the label written, its guest told */
	r = claim_for_domain(cli, domain, tags, false, &reply, &result);
	if (r < 0)
		return -r;
	if (!json_object_object_get_ex(result, "devices", &devs) ||
	    json_object_array_length(devs) != 1 ||
	    tagmem_json_get_u64(dev = json_object_array_get_idx(devs, 0), "slot", &slot) < 0 ||
	    !(f = open_memstream(&xml, &xml_len)))
		goto malformed;
	if (!print_memory(dev, f)) {
		fclose(f);
		goto malformed;
	}
	fclose(f);
	{
		const char *attach[] = { "attach-device", domain, "/dev/stdin", "--live", NULL };

		r = run_virsh(uri, attach, xml, NULL, 0);
	}
	if (r != 0) {
		cli_fail(cli, "io_error", "virsh attach-device could not plug tag %s into domain %s "
			 "(its message is above); the claim is given back", tagstr, domain);
		goto give_back;
	}
	if (add_to_metadata(cli, uri, domain, tagstr, slot) < 0)
		return EXIT_FAIL; /* plugged in: the claim must stay with the domain */
	if (cli->json) {
		cli_print_json(dev);
		return EXIT_OK;
	}
	printf("Attached tag %s to domain %s at nvdimm slot %llu\n", tagstr, domain,
	       (unsigned long long)slot);
	return EXIT_OK;
malformed:
	cli_fail(cli, "internal", "brokerd sent a qemu_args answer this tagmem cannot read");
give_back:
	cli_call_tag(cli, "release", tagstr, NULL, tagstr, &rreply, &rresult);
	return EXIT_FAIL;
}
