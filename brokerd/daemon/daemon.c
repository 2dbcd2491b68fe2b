/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Daemon wiring (daemon.h). The order of start-up matters and is written down here:
 *   loop → core → backend → persister → data plane → VM monitors → server object →
 *   registry (claims before the scan, images) → cold-plug scan → drop unmatched claims →
 *   upkeep → listen.
 * Claims are restored before the scan so that a tag is known as claimed from the moment the
 * scan reports it: a release the fabric manager asked for while we were down must not tear
 * down a device somebody still holds.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "backend.h"
#include "core.h"
#include "daemon.h"
#include "dataplane.h"
#include "guests.h"
#include "log.h"
#include "loop.h"
#include "registry.h"
#include "server.h"
#include "textfile.h"
#include "vm.h"

void broker_settings_defaults(struct broker_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->socket_path = TAGMEM_DEFAULT_SOCKET;
	s->state_dir = TAGMEM_STATEDIR_DEFAULT;
	s->backend = "sim";
	s->host_root = "/";
	s->nd_policy = VIEW_ND_DEFAULT;
	s->sim_root = TAGMEM_RUNSTATEDIR_DEFAULT "/sim";
	s->sim_region_size = 64ull << 30;
	/* the older tag attribute, as before --sim-dcd (kept for existing scripts) */
	if (getenv("TAGMEM_SIM_LEGACY_TAG"))
		s->sim_dcd = DCD_SERIES_V8;
	s->max_clients = 4096;
	s->max_clients_per_uid = 1024;
	s->max_line = TAGMEM_MAX_LINE_DEFAULT;
	s->max_subscribers = 256;
	s->max_output = 64u << 20;
	s->max_output_total = 256u << 20;
	s->request_timeout_ms = 10000;
	s->max_tags = 1u << 20;
	s->max_name = 127;
	s->flush_workers = 2;
	s->dirty_budget = 64ull << 20;
	s->resident_budget = 0;
	s->upkeep_interval_ms = 50;
	s->metrics_interval_ms = 5000;
	/* a 2 s window: without CAP_SYS_RESOURCE the kernel accepts only multiples of 2 s */
	s->pressure = "some 150000 2000000";
	s->proc_root = "/proc";
	s->guest_rate = 1000;
	s->guest_reclaim_ms = 200;
	s->guest_idle_s = 600;
}

/* Guest channels live next to brokerd's socket unless told otherwise ("none": off). */
static int start_guests(struct daemon *d, const struct guest_callbacks *cb)
{
	const struct broker_settings *s = &d->settings;
	struct guest_limits lim = {
		.max_line = 4096, .max_output = 256u << 10, .rate = s->guest_rate,
		.burst = s->guest_rate * 2, .max_vms = 1024, .max_vms_per_uid = 64,
		.idle_ms = s->guest_idle_s * 1000u,
	};
	char dir[PATH_MAX];
	const char *slash;
	int r;

	if (s->guest_dir && !strcmp(s->guest_dir, "none"))
		return 0;
	if (s->guest_dir) {
		snprintf(dir, sizeof(dir), "%s", s->guest_dir);
	} else {
		slash = strrchr(s->socket_path, '/');
		snprintf(dir, sizeof(dir), "%.*s/guests", slash ? (int)(slash - s->socket_path) : 1,
			 slash ? s->socket_path : ".");
	}
	r = guests_new(d->api.loop, dir, &lim, cb, &d->api.guests);
	if (r < 0)
		log_err("Failed to open the guest channel directory %s: %s (--guest-dir none "
			"turns guest channels off)", dir, strerror(-r));
	return r;
}

/* ---- the core's callbacks ---- */

static uint64_t persist(void *userdata)
{
	struct daemon *d = userdata;
	size_t len;
	char *data;

	if (d->restoring) { /* nobody is connected yet: no reply waits for this */
		d->persist_deferred = true;
		return d->persist_gen;
	}
	data = registry_serialize(d->api.core, d->unavailable, d->nunavailable, &len);
	if (!data) {
		log_err("Failed to serialise the registry: out of memory");
		return UINT64_MAX; /* a generation that never completes: callers reply an error */
	}
	d->persist_gen = persister_submit(d->persister, data, len);
	return d->persist_gen;
}

/* The core's callbacks all get the daemon: events go to the api, devices to the backend. */
static void tag_event(void *userdata, const char *name, const struct tag *t)
{
	struct daemon *d = userdata;

	api_tag_event(&d->api, name, t);
}

static void untagged_event(void *userdata, int64_t delta, uint64_t total)
{
	struct daemon *d = userdata;

	api_untagged_event(&d->api, delta, total);
}

static int materialise(void *userdata, const struct tag *t, struct core_device *ret)
{
	struct backend *be = ((struct daemon *)userdata)->api.backend;

	return be->ops->materialise(be, t, ret);
}

static int destroy(void *userdata, const struct tag *t)
{
	struct backend *be = ((struct daemon *)userdata)->api.backend;

	return be->ops->destroy(be, t);
}

static void image_free(struct image_io *io)
{
	image_io_unref(io);
}

/* ---- registry writes ---- */

/* After a failed write, keep trying until memory and disk agree again. */
static int64_t persist_retry(struct loop *l, void *data)
{
	struct daemon *d = data;

	if (d->persist_failed && d->persist_done_gen == d->persist_gen)
		persist(d);
	return -1;
}

static void persister_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct daemon *d = data;
	uint64_t gen;
	int err;

	persister_completed(d->persister, &gen, &err);
	if (err < 0 && !d->persist_failed)
		log_err("Failed to write the registry in %s: %s; retrying every second",
			d->settings.state_dir, strerror(-err));
	else if (err == 0 && d->persist_failed)
		log_info("The registry in %s is written again", d->settings.state_dir);
	if (gen == d->persist_gen || err < 0)
		d->persist_failed = err < 0;
	if (d->persist_failed && !loop_timer_pending(d->api.loop, d->persist_retry))
		d->persist_retry = loop_add_timer(d->api.loop, 1000, persist_retry, d);
	if (gen > d->persist_done_gen) {
		d->persist_done_gen = gen;
		server_persist_done(d->api.server, gen, err);
	}
}

/* ---- restoring state ---- */

#define RETRY_UNAVAILABLE_MS 5000

/* One image of the registry. 0: served; -1: forgotten (deleted, or no longer the file that
 * was recorded); 1: unavailable for now (first: say so, and how to fix it). */
static int restore_image(struct daemon *d, const struct registry_image *im, bool first)
{
	uint64_t budgets[2] = { im->dirty_budget, im->resident_budget };
	char s[TAGMEM_TAG_STRING_MAX];
	int r;

	tagmem_tag_format(&im->tag, s);
	r = api_restore_image(&d->api, &im->tag, im->path, im->file_size,
			      im->has_data_offset ? &im->data_offset : NULL,
			      im->has_inode ? &im->inode : NULL,
			      im->has_budgets ? budgets : NULL, &im->lost);
	if (r == 0) {
		if (!first)
			log_info("Image %s of tag %s is available again", im->path, s);
		return 0;
	}
	if (r == -ENOENT || r == -EMEDIUMTYPE) {
		log_warn("Image %s of tag %s is gone or changed size; forgetting it", im->path, s);
		return -1;
	}
	if (r == -EEXIST || r == -EBUSY) {
		log_warn("Image %s of tag %s: its tag or file became another image meanwhile; "
			 "forgetting the old record", im->path, s);
		return -1;
	}
	if (first && r == -ESTALE)
		log_err("Image %s of tag %s is not the file brokerd created or adopted (another "
			"inode has its name); brokerd does not serve it and keeps its record, trying "
			"again every %d s. Put the image back; if it was replaced on purpose, move the "
			"file away (brokerd then forgets the record, its claim too) and adopt it "
			"again ('tagmem image adopt').", im->path, s, RETRY_UNAVAILABLE_MS / 1000);
	else if (first && r == -EPERM)
		log_err("Image %s of tag %s lies below a directory that users other than root can "
			"write: the file there may not be the image any more. brokerd keeps its "
			"record and tries again every %d s; make every directory below the image "
			"directory root's and not group- or world-writable.", im->path, s,
			RETRY_UNAVAILABLE_MS / 1000);
	else if (first)
		log_err("Image %s of tag %s cannot be opened: %s. brokerd keeps its record and tries "
			"again every %d s; fix the file or its filesystem (or delete the file to "
			"forget it).", im->path, s, strerror(-r), RETRY_UNAVAILABLE_MS / 1000);
	return 1;
}

/* Try an unavailable image again; its claim, if it had one, comes back with it. */
static int retry_image(struct daemon *d, struct registry_image *im)
{
	struct core_claim *claim = NULL;
	int r;

	if (im->has_claim) {
		claim = malloc(sizeof(*claim));
		if (!claim)
			return 1;
		*claim = im->claim;
		core_restore_claims(d->api.core, claim, 1); /* taken over */
	}
	r = restore_image(d, im, false);
	if (r > 0 && im->has_claim)
		core_restore_withhold(d->api.core, &im->tag, &im->claim);
	if (im->has_claim)
		core_restore_done(d->api.core); /* forgotten: so is its claim */
	return r;
}

static int64_t retry_unavailable(struct loop *l, void *data)
{
	struct daemon *d = data;
	size_t kept = 0, before = d->nunavailable;

	for (size_t i = 0; i < d->nunavailable; i++)
		if (retry_image(d, &d->unavailable[i]) > 0)
			d->unavailable[kept++] = d->unavailable[i];
	d->nunavailable = kept;
	d->api.images_unavailable = kept;
	if (kept != before)
		persist(d);
	return kept ? RETRY_UNAVAILABLE_MS : -1;
}

static int restore_registry(struct daemon *d)
{
	struct registry reg;
	int r = registry_load(d->settings.state_dir, &reg);

	if (r == -EBADMSG) {
		log_err("The registry %s/%s is not valid. Refusing to start rather than forget "
			"claims: repair or move it away, then start again.",
			d->settings.state_dir, REGISTRY_FILE);
		return r;
	}
	if (r < 0) {
		log_err("Failed to read the registry in %s: %s", d->settings.state_dir,
			strerror(-r));
		return r;
	}
	d->unavailable = calloc(reg.nimages ? reg.nimages : 1, sizeof(*d->unavailable));
	if (!d->unavailable) {
		registry_clear(&reg);
		return -ENOMEM;
	}
	core_restore_claims(d->api.core, reg.claims, reg.nclaims);
	reg.claims = NULL;
	/* Images are the broker's own: they come back from the registry, if their file did.
	 * Nothing is persisted until the scan has matched the other claims (daemon_init). */
	d->restoring = true;
	for (size_t i = 0; i < reg.nimages; i++) {
		r = restore_image(d, &reg.images[i], true);
		if (r > 0) {
			struct registry_image *im = &d->unavailable[d->nunavailable++];

			*im = reg.images[i];
			/* its claim waits with it instead of being dropped after the scan */
			im->has_claim = core_restore_withhold(d->api.core, &im->tag,
							      &im->claim) == 0;
		} else if (r < 0)
			d->persist_deferred = true; /* the registry forgets it too */
	}
	d->api.images_unavailable = d->nunavailable;
	if (d->nunavailable && loop_add_timer(d->api.loop, RETRY_UNAVAILABLE_MS,
					      retry_unavailable, d) < 0)
		log_warn("Cannot retry unavailable images; they are tried again at the next start");
	registry_clear(&reg);
	return 0;
}

/* ---- start, run, stop ---- */

static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * One brokerd per directory it owns: two on one state directory (or one simulator tree)
 * would each believe their view and corrupt the other's. The lock is held for the daemon's
 * life (the kernel drops it on any exit, kill -9 included); the file names the holder.
 */
static int lock_dir(const char *dir, const char *what, int *ret_fd)
{
	char path[4096], holder[32] = "";
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/.brokerd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		log_err("Failed to open %s: %m", path);
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;
		n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		log_err("Another brokerd%s%s%s uses %s %s: stop it first, or give this one its own "
			"(--state-dir, --sim-root)", holder[0] ? " (pid " : "", holder,
			holder[0] ? ")" : "", what, dir);
		close(fd);
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	n = snprintf(holder, sizeof(holder), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, holder, (size_t)n, 0) != n) {
		/* the lock holds without the pid: only the message is poorer */
	}
	*ret_fd = fd;
	return 0;
}

static int open_backend(struct daemon *d)
{
	const struct broker_settings *s = &d->settings;
	struct api *a = &d->api;
	int r;

	if (!strcmp(s->backend, "sim")) {
		r = backend_sim_new(a->core, a->loop, s, &a->backend);
		if (r < 0)
			log_err("Failed to open the simulated DCD at %s: %s", s->sim_root,
				strerror(-r));
	} else if (!strcmp(s->backend, "host")) {
		r = backend_host_new(a->core, a->loop, s, &a->backend);
		if (r < 0)
			log_err("Failed to open the sysfs tree at %s: %s", s->host_root, strerror(-r));
	} else {
		log_err("Unknown backend '%s': use sim (the simulated fabric) or host (this "
			"kernel's CXL and NVDIMM devices)", s->backend);
		r = -EINVAL;
	}
	return r;
}

static sigset_t stop_signals;

/* A file kept current off the loop (--metrics-file, --cdi-spec), when its path is given. */
static int start_textfile(const char *path, const char *what, struct textfile **ret)
{
	int r;

	if (!path)
		return 0;
	r = textfile_start(path, ret);
	if (r < 0)
		log_err("Cannot write %s to %s: %s (its directory must exist)", what, path,
			strerror(-r));
	return r;
}

int daemon_init(struct daemon *d, const struct broker_settings *settings)
{
	const struct core_callbacks core_cb = {
		.userdata = d,
		.tag_event = tag_event,
		.untagged_event = untagged_event,
		.persist = persist,
		.materialise = materialise,
		.destroy = destroy,
		.image_free = image_free,
	};
	const struct vm_callbacks vm_cb = {
		.userdata = &d->api, .exited = api_vm_exited,
	};
	const struct server_callbacks server_cb = { .userdata = &d->api, .request = api_request };
	const struct guest_callbacks guest_cb = {
		.userdata = &d->api, .connected = api_guest_connected, .request = api_guest_request,
		.in_use = api_guest_in_use,
	};
	struct api *a = &d->api;
	struct rlimit rl;
	char path[PATH_MAX];
	int r;

	/* SIGINT and SIGTERM are read from a signalfd on the loop (daemon_run). They must be
	 * blocked before the first thread starts: a thread inherits its creator's mask, and a
	 * signal for the process goes to any thread that does not block it, whose default
	 * action would end brokerd without its shutdown (the socket left behind). */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	memset(d, 0, sizeof(*d));
	d->state_lock = d->sim_lock = -1;
	d->settings = *settings;
	a->settings = &d->settings;
	a->psi_fd = -1;
	a->pause_marks_fd = -1;
	a->uid = geteuid();
	a->started_usec = now_usec();

	/* 1,000 clients at once need 1,000 descriptors: raise the soft limit as far as we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	r = tagmem_new(&d->ctx);
	if (r < 0)
		return r;
	log_setup(d->ctx);
	r = mkdir_parents(settings->state_dir, 0755);
	if (r < 0) {
		log_err("Failed to create state directory %s: %s", settings->state_dir,
			strerror(-r));
		return r;
	}
	r = lock_dir(settings->state_dir, "the state directory", &d->state_lock);
	if (r < 0)
		return r;
	if (!strcmp(settings->backend, "sim")) {
		/* /run/tagmem may not exist outside the service (RuntimeDirectory makes it there) */
		r = mkdir_parents(settings->sim_root, 0755);
		if (r < 0) {
			log_err("Failed to create the simulator's directory %s: %s",
				settings->sim_root, strerror(-r));
			return r;
		}
		r = lock_dir(settings->sim_root, "the simulated DCD", &d->sim_lock);
		if (r < 0)
			return r;
	}
	if (!d->settings.nimage_dirs) {
		/* the default image directory lives in the state directory */
		snprintf(d->default_image_dir, sizeof(d->default_image_dir), "%s/images",
			 settings->state_dir);
		d->settings.image_dirs[d->settings.nimage_dirs++] = d->default_image_dir;
		make_dir(d->default_image_dir, 0700);
	}
	/* VMs a save pauses are recorded here until they run again (snapshot.h) */
	snprintf(path, sizeof(path), "%s/paused", settings->state_dir);
	r = make_dir(path, 0700);
	a->pause_marks_fd = r < 0 ? r : open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (a->pause_marks_fd < 0) {
		r = r < 0 ? r : -errno;
		log_err("Failed to open %s: %s", path, strerror(-r));
		return r;
	}
	/* the loop first: backends register their event sources on it */
	r = loop_new(&a->loop);
	if (r < 0)
		return r;
	r = core_new(&core_cb, settings->max_tags, &a->core);
	if (r < 0)
		return r;
	r = open_backend(d);
	if (r < 0)
		return r;
	r = persister_start(settings->state_dir, &d->persister);
	if (r < 0)
		return r;
	r = start_textfile(settings->metrics_file, "metrics", &a->metrics_file);
	if (r < 0)
		return r;
	r = start_textfile(settings->cdi_spec, "the CDI spec", &a->cdi_file);
	if (r < 0)
		return r;
	a->cdi_stale = true; /* even with no tag: containers' runtimes see an empty spec */
	r = dataplane_start(settings->flush_workers, settings->proc_root, &a->dp);
	if (r < 0)
		return r;
	r = vms_new(a->loop, &vm_cb, &a->vms);
	if (r < 0)
		return r;
	r = server_new(a->loop, &d->settings, &server_cb, &a->server);
	if (r < 0)
		return r;
	r = start_guests(d, &guest_cb);
	if (r < 0)
		return r;
	api_transport_default(a); /* answers and events go to the server and guest channels */
	r = restore_registry(d);
	if (r < 0)
		return r;
	r = a->backend->ops->scan(a->backend);
	if (r < 0) {
		log_err("Failed to scan %s: %s", a->backend->ops->root(a->backend), strerror(-r));
		return r;
	}
	core_restore_done(a->core);
	/* every claim of the registry is matched (or dropped) now: a snapshot holds them all */
	d->restoring = false;
	if (d->persist_deferred)
		persist(d);
	api_guests_restore(a); /* VMs that hold tags: their QEMU reconnects to the same socket */
	api_grants_restore(a);
	api_pause_marks_restore(a); /* VMs a killed brokerd's save left paused run again */
	r = upkeep_start(a);
	if (r < 0)
		return r;
	return loop_add_fd(a->loop, persister_fd(d->persister), EPOLLIN, persister_ready, d);
}

static void signal_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == sizeof(si))
		log_info("Signal %u received, shutting down", si.ssi_signo);
	loop_stop(l);
}

int daemon_run(struct daemon *d, void (*ready)(void))
{
	struct api *a = &d->api;
	int sfd, r;

	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK); /* blocked in daemon_init */
	if (sfd < 0)
		return -errno;
	r = loop_add_fd(a->loop, sfd, EPOLLIN, signal_ready, d);
	if (r < 0)
		return r;
	r = server_listen(a->server);
	if (r < 0)
		return r;
	log_info("Serving %zu tag(s) from the %s backend at %s", core_count(a->core),
		 a->backend->ops->name, a->backend->ops->root(a->backend));
	if (ready)
		ready();
	r = loop_run(a->loop);
	loop_del_fd(a->loop, sfd);
	close(sfd);
	return r;
}

void daemon_fini(struct daemon *d)
{
	struct api *a = &d->api;

	vms_free(a->vms);
	a->vms = NULL;
	free(a->chains); /* after the monitors: a job's end records its VM's chain */
	a->chains = NULL;
	a->nchains = 0;
	guests_free(a->guests);
	a->guests = NULL;
	upkeep_stop(a);
	dataplane_stop(a->dp);
	a->dp = NULL;
	server_free(a->server);
	a->server = NULL;
	/* stopping the persister writes the last queued snapshot */
	persister_stop(d->persister);
	textfile_stop(a->metrics_file);
	a->metrics_file = NULL;
	textfile_stop(a->cdi_file);
	a->cdi_file = NULL;
	free(a->cdi_last);
	a->cdi_last = NULL;
	if (a->backend)
		a->backend->ops->free(a->backend);
	a->backend = NULL;
	core_free(a->core);
	a->core = NULL;
	free(d->unavailable);
	d->unavailable = NULL;
	loop_free(a->loop);
	log_setup(NULL);
	tagmem_unref(d->ctx);
	if (d->sim_lock >= 0)
		close(d->sim_lock);
	if (a->pause_marks_fd >= 0)
		close(a->pause_marks_fd);
	if (d->state_lock >= 0)
		close(d->state_lock);
}
