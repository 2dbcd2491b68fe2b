/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host backend: tagged capacity as the running kernel shows it.
 *   - CXL Dynamic Capacity: extents and dax devices through the shared sysfs/DCD reader
 *     (DCD is not in libcxl/libdaxctl), learned about from the cxl:cxl_dynamic_capacity
 *     trace event (extents have no bus, so udev never reports them) and from udev dax events.
 *   - NVDIMM namespaces with a label uuid: what a guest sees when a host hands it a tagged
 *     device, so brokerd and `tagmem lookup` work inside VMs too. Devdax sizes come from
 *     libdaxctl.
 * Anything missing (no CXL bus, no tracefs, no permission) is one log line, not a failure.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cxl/libcxl.h>
#include <daxctl/libdaxctl.h>
#include <libudev.h>

#include "backend.h"
#include "lines.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "view.h"

#define TRACE_INSTANCE "instances/tagmem"

struct backend_host {
	struct backend be;
	struct sysfs *fs;
	bool real_sysfs;            /* root is "/": libcxl/libdaxctl see the same tree */
	struct udev *udev;
	struct udev_monitor *mon;
	int trace_fd;
	struct lines trace;         /* cxl_dynamic_capacity records from the trace pipe */
	size_t last_skipped;        /* unreadable sysfs entries, logged when the count changes */
	int64_t rescan_timer;       /* a deferred rescan queued on the loop (loop.h id) */
	struct dcd_cache *extents;  /* what the last rescan read: the next reads only changes */
};

#define to_host(be) ((struct backend_host *)(be))

/* libdaxctl's idea of a devdax device's size (it reads /sys itself). */
static uint64_t daxctl_size(const char *devname, void *userdata _unused_)
{
	struct daxctl_ctx *ctx;
	struct daxctl_region *region;
	struct daxctl_dev *dev;
	uint64_t size = 0;

	if (daxctl_new(&ctx) < 0)
		return 0;
	daxctl_region_foreach(ctx, region)
		daxctl_dev_foreach(region, dev)
			if (!strcmp(daxctl_dev_get_devname(dev), devname))
				size = daxctl_dev_get_size(dev);
	daxctl_unref(ctx);
	return size;
}

/* Build the whole view (libtagmem's rules) and hand it to the core, which forgets what the
 * kernel no longer shows. Only extents not seen before are read from sysfs (dcd_cache): with
 * thousands of extents, a rescan after one event stays a directory listing per region. */
static void host_rescan(struct backend_host *bh)
{
	struct view_options opts = {
		.nd_policy = bh->be.settings->nd_policy,
		.dax_size = bh->real_sysfs ? daxctl_size : NULL,
	};
	struct dcd_snapshot snap;
	struct view v;
	int r = dcd_cache_scan(bh->fs, bh->extents, &snap, NULL);

	if (r >= 0) {
		r = view_build_with(bh->fs, &opts, &snap, &v);
		dcd_snapshot_clear(&snap);
	}
	if (r < 0) {
		log_err("Failed to read the devices under %s: %s, ignoring", sysfs_root(bh->fs),
			strerror(-r));
		return;
	}
	if (v.skipped != bh->last_skipped) {
		if (v.skipped)
			log_err("%zu unreadable CXL entries under %s skipped, ignoring", v.skipped,
				sysfs_root(bh->fs));
		bh->last_skipped = v.skipped;
	}
	/* device nodes live under the same root as the tree (a test fixture's too) */
	core_reconcile(bh->be.core, &v, sysfs_root(bh->fs), CORE_VIEW_COMPLETE);
	view_clear(&v);
}

static int64_t deferred_rescan(struct loop *l, void *data)
{
	struct backend_host *bh = data;

	host_rescan(bh);
	return -1;
}

/* Rescan from the loop, not from inside a call the core is making. */
static void rescan_soon(struct backend_host *bh)
{
	if (!loop_timer_pending(bh->be.loop, bh->rescan_timer))
		bh->rescan_timer = loop_add_timer(bh->be.loop, 0, deferred_rescan, bh);
}

/* ---- event sources ---- */

static void on_udev(struct loop *l, int fd, uint32_t events, void *data)
{
	struct backend_host *bh = data;
	struct udev_device *dev;
	unsigned n = 0;

	while ((dev = udev_monitor_receive_device(bh->mon))) {
		udev_device_unref(dev);
		n++;
	}
	if (n)
		host_rescan(bh);
}

static void on_trace(struct loop *l, int fd, uint32_t events, void *data)
{
	struct backend_host *bh = data;
	bool changed = false;

	while (lines_read(&bh->trace, fd) > 0) {
		struct dcd_event ev;
		char *line;
		size_t len;
		int r;

		while ((r = lines_next(&bh->trace, &line, &len)) != 0) {
			if (r < 0) {
				log_warn("Over-long trace line dropped");
				lines_skip(&bh->trace);
				continue;
			}
			r = dcd_trace_parse(line, &ev);
			if (r == 0)
				changed = true;
			else if (r == -EBADMSG)
				log_warn("Malformed cxl_dynamic_capacity record, ignoring: %.200s",
					 line);
		}
	}
	/* A record says what changed; sysfs says what is true now. */
	if (changed)
		host_rescan(bh);
}

static void setup_udev(struct backend_host *bh)
{
	bh->udev = udev_new();
	if (bh->udev)
		bh->mon = udev_monitor_new_from_netlink(bh->udev, "udev");
	if (!bh->mon) {
		log_warn("No udev monitor: devices that appear later are not noticed until restart");
		return;
	}
	udev_monitor_filter_add_match_subsystem_devtype(bh->mon, "dax", NULL);
	udev_monitor_filter_add_match_subsystem_devtype(bh->mon, "nd", NULL);
	udev_monitor_filter_add_match_subsystem_devtype(bh->mon, "cxl", NULL);
	udev_monitor_filter_add_match_subsystem_devtype(bh->mon, "block", "disk");
	if (udev_monitor_enable_receiving(bh->mon) < 0 ||
	    loop_add_fd(bh->be.loop, udev_monitor_get_fd(bh->mon), EPOLLIN, on_udev, bh) < 0) {
		log_warn("Cannot listen to udev events: %m; hot-plugged devices are not noticed");
		bh->mon = udev_monitor_unref(bh->mon);
	}
}

static void setup_trace(struct backend_host *bh)
{
	static const char *mounts[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
	char inst[128], path[256];
	const char *tracefs = NULL;
	int fd;

	for (size_t i = 0; i < ARRAY_SIZE(mounts); i++)
		if (access(mounts[i], F_OK) == 0) {
			snprintf(path, sizeof(path), "%s/instances", mounts[i]);
			if (access(path, F_OK) == 0) {
				tracefs = mounts[i];
				break;
			}
		}
	if (!tracefs) {
		log_info("No tracefs: CXL extent events are learned from udev dax events only");
		return;
	}
	snprintf(inst, sizeof(inst), "%s/" TRACE_INSTANCE, tracefs);
	if (mkdir(inst, 0700) < 0 && errno != EEXIST) {
		log_info("Cannot create trace instance %s: %m; CXL extent events are learned from "
			 "udev dax events only", inst);
		return;
	}
	snprintf(path, sizeof(path), "%s/events/cxl/cxl_dynamic_capacity/enable", inst);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		log_info("This kernel has no cxl:cxl_dynamic_capacity trace event (no DCD support, "
			 "or cxl_core not loaded)");
		return;
	}
	if (write(fd, "1", 1) != 1)
		log_warn("Cannot enable cxl:cxl_dynamic_capacity: %m");
	close(fd);
	snprintf(path, sizeof(path), "%s/trace_pipe", inst);
	bh->trace_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (bh->trace_fd < 0 || loop_add_fd(bh->be.loop, bh->trace_fd, EPOLLIN, on_trace, bh) < 0) {
		log_warn("Cannot read %s: %m", path);
		if (bh->trace_fd >= 0)
			close(bh->trace_fd);
		bh->trace_fd = -1;
		return;
	}
	log_info("Following cxl:cxl_dynamic_capacity in %s", inst);
}

/* Records from a given file (a FIFO in tests, a replay of a recorded trace) instead of
 * tracefs. Opened read-write so that a FIFO never reports end-of-file between writers. */
static void setup_trace_file(struct backend_host *bh, const char *path)
{
	bh->trace_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (bh->trace_fd < 0 || loop_add_fd(bh->be.loop, bh->trace_fd, EPOLLIN, on_trace, bh) < 0) {
		log_err("Cannot read trace records from %s: %m, ignoring", path);
		if (bh->trace_fd >= 0)
			close(bh->trace_fd);
		bh->trace_fd = -1;
		return;
	}
	log_info("Reading cxl_dynamic_capacity records from %s", path);
}

static void report_cxl(struct backend_host *bh)
{
	struct cxl_ctx *ctx;
	struct cxl_bus *bus;
	struct cxl_memdev *md;
	unsigned nbus = 0, nmem = 0;

	if (!bh->real_sysfs)
		return;
	if (cxl_new(&ctx) < 0) {
		log_info("libcxl unavailable: CXL enumeration skipped");
		return;
	}
	cxl_bus_foreach(ctx, bus)
		nbus++;
	cxl_memdev_foreach(ctx, md)
		nmem++;
	cxl_unref(ctx);
	if (!nbus)
		log_info("No CXL bus on this host: serving NVDIMM namespaces only");
	else
		log_info("CXL: %u bus(es), %u memdev(s)", nbus, nmem);
}

/* ---- backend ops ---- */

static int host_scan(struct backend *be)
{
	struct backend_host *bh = to_host(be);

	report_cxl(bh);
	if (bh->be.settings->trace_pipe)
		setup_trace_file(bh, bh->be.settings->trace_pipe);
	if (bh->real_sysfs) {
		setup_udev(bh);
		if (!bh->be.settings->trace_pipe)
			setup_trace(bh);
	} else {
		/* udev and tracefs describe this kernel, not a tree somewhere else */
		log_info("Reading %s: kernel events are not followed for a root other than /",
			 sysfs_root(bh->fs));
	}
	host_rescan(bh);
	return 0;
}

static int host_materialise(struct backend *be, const struct tag *t, struct core_device *ret)
{
	struct backend_host *bh = to_host(be);
	struct dcd_region rg;
	char path[PATH_MAX];
	int r;

	/* Only DCD capacity is made into a device here; a namespace already is one. */
	r = dcd_read_region(bh->fs, t->cap.region, &rg);
	if (r < 0 || !rg.seed[0])
		return r < 0 ? r : -ENODEV;
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/uuid", rg.seed);
	/* The kernel claims the tag's extents and announces the device to udev; that event's
	 * rescan reports it (one rescan for a burst, not one per tag). */
	r = sysfs_write(bh->fs, path, t->tag_str);
	return r < 0 ? r : 0;
}

static int host_destroy(struct backend *be, const struct tag *t)
{
	struct backend_host *bh = to_host(be);
	char path[PATH_MAX];
	int r;

	if (!t->cap.device[0] || strncmp(t->cap.device, "dax", 3))
		return -EOPNOTSUPP; /* namespaces are not ours to take apart */
	snprintf(path, sizeof(path), DCD_DAX_DEVICES "/%s/size", t->cap.device);
	r = sysfs_write(bh->fs, path, "0");
	if (r < 0)
		return r;
	rescan_soon(bh); /* udev may say so too; a fixture tree never will */
	return 0;
}

static const char *host_root(struct backend *be)
{
	return sysfs_root(to_host(be)->fs);
}

static void host_free(struct backend *be)
{
	struct backend_host *bh = to_host(be);

	loop_cancel_timer(be->loop, bh->rescan_timer); /* it would rescan a freed backend */
	if (bh->trace_fd >= 0)
		close(bh->trace_fd);
	udev_monitor_unref(bh->mon);
	udev_unref(bh->udev);
	sysfs_close(bh->fs);
	dcd_cache_free(bh->extents);
	lines_release(&bh->trace);
	free(bh);
}

static const struct backend_ops host_ops = {
	.name = "host",
	.scan = host_scan,
	.materialise = host_materialise,
	.destroy = host_destroy,
	.root = host_root,
	.free = host_free,
};

int backend_host_new(struct core *core, struct loop *loop, const struct broker_settings *set,
		     struct backend **ret)
{
	struct backend_host *bh = calloc(1, sizeof(*bh));
	int r;

	if (!bh)
		return -ENOMEM;
	bh->be = (struct backend){ .ops = &host_ops, .core = core, .loop = loop, .settings = set };
	bh->trace_fd = -1;
	lines_init(&bh->trace, 8191);
	r = dcd_cache_new(&bh->extents);
	if (r >= 0)
		r = sysfs_open(set->host_root, &bh->fs);
	if (r < 0) {
		dcd_cache_free(bh->extents);
		free(bh);
		return r;
	}
	bh->real_sysfs = !strcmp(set->host_root, "/");
	*ret = &bh->be;
	return 0;
}
