/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The broker: the tag state machine between backends (what capacity exists) and clients
 * (who holds it). Backends report through broker_tag_*(); state changes become events.
 *
 *   added ──materialise──▶ ready ◀──release── claimed
 *                            │  ──claim──────▶   │
 *                            ▼                   ▼ fabric manager asks for it back
 *                   (released: gone)     release_pending ──owner releases──▶ gone
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "backend.h"
#include "brokerd.h"
#include "loop.h"
#include "qemu.h"
#include "util.h"
#include "vm.h"

static void attach_boot_claim(struct broker *b, struct tag_entry *e);

void broker_settings_defaults(struct broker_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->socket_path = TAGMEM_DEFAULT_SOCKET;
	s->state_dir = TAGMEM_STATEDIR_DEFAULT;
	s->backend = "sim";
	s->host_root = "/";
	s->nd_policy = ND_POLICY_TAGMEM;
	s->sim_root = TAGMEM_RUNSTATEDIR_DEFAULT "/sim";
	s->sim_region_size = 64ull << 30;
	s->max_clients = 4096;
	s->max_line = TAGMEM_MAX_LINE_DEFAULT;
	s->max_subscribers = 256;
	s->max_output = 64u << 20;
	s->request_timeout_ms = 10000;
	s->max_tags = 1u << 20;
	s->max_name = 127;
	s->flush_workers = 2;
	s->dirty_budget = 64ull << 20;
	s->resident_budget = 0;
	s->upkeep_interval_ms = 50;
	/* a 2 s window: without CAP_SYS_RESOURCE the kernel accepts only multiples of 2 s */
	s->pressure = "some 150000 2000000";
	s->proc_root = "/proc";
}

void broker_emit_event(struct broker *b, struct json_object *event)
{
	_cleanup_free_ char *line = NULL;
	size_t len;

	if (b->nsubscribers) {
		line = tagmem_msg_format(event, &len);
		if (line)
			server_broadcast(b, line, len);
	}
	json_object_put(event);
}

void broker_emit_tag_event(struct broker *b, const char *name, const struct tag_entry *e)
{
	struct json_object *ev;

	if (!b->nsubscribers)
		return; /* nobody listens: do not even build it */
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(name));
	json_object_object_add(ev, "tag", tag_to_json(e));
	broker_emit_event(b, ev);
}

uint64_t broker_persist(struct broker *b)
{
	size_t len;
	char *data = registry_serialize(&b->tags, &len);

	if (!data) {
		log_err("Failed to serialise the registry: out of memory");
		return UINT64_MAX; /* a generation that never completes: callers reply an error */
	}
	b->persist_gen = persister_submit(b->persister, data, len);
	return b->persist_gen;
}

void broker_tag_seen(struct broker *b, const tagmem_tag *tag, unsigned region, bool shared,
		     uint64_t size, unsigned nextents)
{
	struct tag_entry *e = tag_table_find(&b->tags, tag);

	if (!e) {
		if (b->tags.count >= b->settings.max_tags) {
			char s[TAGMEM_TAG_STRING_MAX];
			log_err("Tag limit (%u) reached; tag %s not tracked, ignoring",
				b->settings.max_tags, tagmem_tag_format(tag, s));
			return;
		}
		if (tag_table_add(&b->tags, tag, &e) < 0) {
			log_err("Out of memory tracking a tag, ignoring");
			return;
		}
		e->state = TAG_ADDED;
		e->region = region;
		e->shared = shared;
		e->size = size;
		e->nextents = nextents;
		attach_boot_claim(b, e);
		broker_emit_tag_event(b, "tag_added", e);
		return;
	}
	if (e->size != size || e->nextents != nextents) {
		e->size = size;
		e->nextents = nextents;
		e->materialise_failed = false; /* something changed: worth another try */
		if (e->state != TAG_ADDED)
			log_warn("Tag %s changed size to %llu while it has a device", e->tag_str,
				 (unsigned long long)size);
	}
}

void broker_tag_device(struct broker *b, const tagmem_tag *tag, const char *device,
		       const char *path)
{
	struct tag_entry *e = tag_table_find(&b->tags, tag);
	char *p;

	if (!e)
		return;
	p = strdup(path);
	if (!p)
		return;
	free(e->path);
	e->path = p;
	snprintf(e->device, sizeof(e->device), "%s", device);
	if (e->state == TAG_ADDED) {
		e->state = e->claimed ? TAG_CLAIMED : TAG_READY;
		broker_emit_tag_event(b, "tag_ready", e);
	}
}

void broker_tag_release_requested(struct broker *b, const tagmem_tag *tag)
{
	struct tag_entry *e = tag_table_find(&b->tags, tag);
	int r;

	if (!e || e->release_requested)
		return;
	e->release_requested = true;
	if (e->claimed) {
		/* The owner still uses it: the kernel keeps it until the owner lets go. */
		e->state = TAG_RELEASE_PENDING;
		broker_emit_tag_event(b, "tag_release_pending", e);
		return;
	}
	if (e->state == TAG_READY) {
		/* Nobody holds the device: take it down so the release can complete. */
		r = b->backend->ops->destroy(b->backend, e);
		if (r < 0)
			log_err("Failed to tear down the device of released tag %s: %s", e->tag_str,
				strerror(-r));
	}
}

void broker_tag_gone(struct broker *b, const tagmem_tag *tag)
{
	struct tag_entry *e = tag_table_find(&b->tags, tag);
	bool was_claimed;

	if (!e)
		return;
	was_claimed = e->claimed;
	e->claimed = false;
	e->state = TAG_RELEASED;
	broker_emit_tag_event(b, "tag_released", e);
	tag_table_remove(&b->tags, e);
	if (was_claimed)
		broker_persist(b); /* forced release: the claim is gone with the memory */
}

int broker_add_image(struct broker *b, const tagmem_tag *tag, const char *path,
		     uint64_t file_size, const struct image_budgets *budgets)
{
	struct image_io *io;
	struct tag_entry *e;
	int r;

	if (tag_table_find(&b->tags, tag))
		return -EEXIST;
	r = image_io_open(path, file_size - LABEL_TAIL, &io);
	if (r < 0)
		return r;
	if (broker_find_image_file(b, image_io_dev(io), image_io_ino(io))) {
		image_io_unref(io);
		return -EBUSY;
	}
	r = tag_table_add(&b->tags, tag, &e);
	if (r < 0) {
		image_io_unref(io);
		return r;
	}
	e->io = io;
	e->budgets = budgets ? *budgets
			     : (struct image_budgets){ .dirty = b->settings.dirty_budget };
	image_io_set_budgets(io, &e->budgets);
	e->image = true;
	e->file_size = file_size;
	e->size = file_size - LABEL_TAIL; /* the guest sees the data part */
	e->path = strdup(path);
	if (!e->path) {
		tag_table_remove(&b->tags, e);
		return -ENOMEM;
	}
	snprintf(e->device, sizeof(e->device), "image");
	attach_boot_claim(b, e);
	e->state = e->claimed ? TAG_CLAIMED : TAG_READY;
	broker_emit_tag_event(b, "tag_added", e);
	broker_emit_tag_event(b, "tag_ready", e);
	return 0;
}

struct tag_entry *broker_find_image_file(struct broker *b, dev_t dev, ino_t ino)
{
	for (struct tag_entry *e = b->tags.head; e; e = e->next)
		if (e->io && image_io_dev(e->io) == dev && image_io_ino(e->io) == ino)
			return e;
	return NULL;
}

void broker_untagged(struct broker *b, int64_t delta)
{
	struct json_object *ev;

	if (delta < 0 && (uint64_t)-delta > b->untagged_bytes)
		b->untagged_bytes = 0;
	else
		b->untagged_bytes += (uint64_t)delta;
	if (!b->nsubscribers)
		return;
	ev = json_object_new_object();
	json_object_object_add(ev, "event", json_object_new_string(
		delta >= 0 ? "untagged_added" : "untagged_released"));
	json_object_object_add(ev, "size",
			       json_object_new_uint64((uint64_t)(delta < 0 ? -delta : delta)));
	json_object_object_add(ev, "untagged_bytes", json_object_new_uint64(b->untagged_bytes));
	broker_emit_event(b, ev);
}

void broker_settle(struct broker *b)
{
	struct tag_entry *e, *next;

	for (e = b->tags.head; e; e = next) {
		int r;

		next = e->next;
		if (e->state != TAG_ADDED || e->release_requested || e->materialise_failed)
			continue;
		r = b->backend->ops->materialise(b->backend, e);
		if (r < 0) {
			log_err("Failed to make a device for tag %s: %s; retrying when its capacity "
				"changes", e->tag_str, strerror(-r));
			e->materialise_failed = true;
		}
	}
}

static int cmp_claim(const void *a, const void *b)
{
	return tagmem_tag_compare(&((const struct registry_claim *)a)->tag,
				  &((const struct registry_claim *)b)->tag);
}

/*
 * Claims are loaded before the cold-plug scan, so that a tag is known as claimed from the
 * moment the scan reports it: a release the fabric manager asked for while we were down
 * must not tear down a device somebody still holds.
 */
static void add_boot_images(struct broker *b, const struct registry *reg);

static int load_boot_claims(struct broker *b)
{
	struct registry reg;
	int r = registry_load(b->settings.state_dir, &reg);

	if (r == -EBADMSG) {
		log_err("The registry %s/%s is not valid. Refusing to start rather than forget "
			"claims: repair or move it away, then start again.",
			b->settings.state_dir, REGISTRY_FILE);
		return r;
	}
	if (r < 0) {
		log_err("Failed to read the registry in %s: %s", b->settings.state_dir,
			strerror(-r));
		return r;
	}
	b->boot_claims = TAKE_PTR(reg.claims);
	b->nboot_claims = reg.nclaims;
	/* sorted before anything looks a claim up (images, then the scan, use bsearch) */
	if (b->nboot_claims)
		qsort(b->boot_claims, b->nboot_claims, sizeof(*b->boot_claims), cmp_claim);
	add_boot_images(b, &reg);
	registry_clear(&reg);
	return 0;
}

static void attach_boot_claim(struct broker *b, struct tag_entry *e)
{
	struct registry_claim key = { .tag = e->tag }, *c;

	if (!b->nboot_claims)
		return;
	c = bsearch(&key, b->boot_claims, b->nboot_claims, sizeof(key), cmp_claim);
	if (!c)
		return;
	e->claimed = true;
	e->owner = c->owner;
	c->owner.uid = (uid_t)-1; /* matched */
}

/* Images are the broker's own: they come back from the registry, if their file did. */
static void add_boot_images(struct broker *b, const struct registry *reg)
{
	for (size_t i = 0; i < reg->nimages; i++) {
		const struct registry_image *im = &reg->images[i];
		char s[TAGMEM_TAG_STRING_MAX];
		struct stat st;
		int r;

		if (stat(im->path, &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size != im->file_size) {
			log_warn("Image %s of tag %s is gone or changed size; forgetting it", im->path,
				 tagmem_tag_format(&im->tag, s));
			continue;
		}
		r = broker_add_image(b, &im->tag, im->path, im->file_size,
				     im->has_budgets ? &im->budgets : NULL);
		if (r < 0)
			log_err("Failed to restore image %s: %s", im->path, strerror(-r));
	}
}

/* After the scan: claims whose capacity did not come back are dropped, loudly. */
static void finish_boot_claims(struct broker *b)
{
	size_t dropped = 0;

	for (size_t i = 0; i < b->nboot_claims; i++) {
		char s[TAGMEM_TAG_STRING_MAX];

		if (b->boot_claims[i].owner.uid == (uid_t)-1)
			continue;
		log_warn("Claim on tag %s (uid %u) dropped: its capacity is gone",
			 tagmem_tag_format(&b->boot_claims[i].tag, s), b->boot_claims[i].owner.uid);
		dropped++;
	}
	log_info("Reconciled %zu claim(s) with %zu tag(s) seen; %zu dropped",
		 b->nboot_claims - dropped, b->tags.count, dropped);
	free(b->boot_claims);
	b->boot_claims = NULL;
	b->nboot_claims = 0;
	if (dropped)
		broker_persist(b);
}

/* After a failed write, keep trying until memory and disk agree again. */
static int64_t persist_retry(struct loop *l, void *data)
{
	struct broker *b = data;

	b->persist_retry_armed = false;
	if (b->persist_failed && b->persist_done_gen == b->persist_gen)
		broker_persist(b);
	return -1;
}

static void persister_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct broker *b = data;
	uint64_t gen;
	int err;

	persister_completed(b->persister, &gen, &err);
	if (err < 0 && !b->persist_failed)
		log_err("Failed to write the registry in %s: %s; retrying every second",
			b->settings.state_dir, strerror(-err));
	else if (err == 0 && b->persist_failed)
		log_info("The registry in %s is written again", b->settings.state_dir);
	if (gen == b->persist_gen || err < 0)
		b->persist_failed = err < 0;
	if (b->persist_failed && !b->persist_retry_armed &&
	    loop_add_timer(b->loop, 1000, persist_retry, b) == 0)
		b->persist_retry_armed = true;
	if (gen > b->persist_done_gen) {
		b->persist_done_gen = gen;
		server_persist_done(b, gen, err);
	}
}

static void signal_ready(struct loop *l, int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == sizeof(si))
		log_info("Signal %u received, shutting down", si.ssi_signo);
	loop_stop(l);
}

static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int broker_init(struct broker *b, const struct broker_settings *settings)
{
	struct rlimit rl;
	int r;

	memset(b, 0, sizeof(*b));
	b->settings = *settings;
	b->listen_fd = -1;
	b->psi_fd = -1;
	b->uid = geteuid();
	b->started_usec = now_usec();

	/* 1,000 clients at once need 1,000 descriptors: raise the soft limit as far as we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	r = tagmem_new(&b->ctx);
	if (r < 0)
		return r;
	r = tag_table_init(&b->tags);
	if (r < 0)
		return r;
	r = make_dir(settings->state_dir, 0755);
	if (r < 0) {
		log_err("Failed to create state directory %s: %s", settings->state_dir,
			strerror(-r));
		return r;
	}
	if (!b->settings.nimage_dirs) {
		/* the default image directory lives in the state directory */
		static char dflt[PATH_MAX];
		snprintf(dflt, sizeof(dflt), "%s/images", settings->state_dir);
		b->settings.image_dirs[b->settings.nimage_dirs++] = dflt;
		make_dir(dflt, 0700);
	}
	/* the loop first: backends register their event sources on it */
	r = loop_new(&b->loop);
	if (r < 0)
		return r;
	if (!strcmp(settings->backend, "sim")) {
		r = backend_sim_new(b, &b->backend);
		if (r < 0) {
			log_err("Failed to open the simulated DCD at %s: %s", settings->sim_root,
				strerror(-r));
			return r;
		}
	} else if (!strcmp(settings->backend, "host")) {
		r = backend_host_new(b, &b->backend);
		if (r < 0) {
			log_err("Failed to open the sysfs tree at %s: %s", settings->host_root,
				strerror(-r));
			return r;
		}
	} else {
		log_err("Unknown backend '%s': use sim (the simulated fabric) or host (this "
			"kernel's CXL and NVDIMM devices)", settings->backend);
		return -EINVAL;
	}
	r = persister_start(settings->state_dir, &b->persister);
	if (r < 0)
		return r;
	r = dataplane_start(settings->flush_workers, settings->proc_root, &b->dp);
	if (r < 0)
		return r;
	r = load_boot_claims(b);
	if (r < 0)
		return r;
	r = b->backend->ops->scan(b->backend);
	if (r < 0) {
		log_err("Failed to scan %s: %s", b->backend->ops->root(b->backend), strerror(-r));
		return r;
	}
	finish_boot_claims(b);
	broker_settle(b);
	r = upkeep_start(b);
	if (r < 0)
		return r;
	return loop_add_fd(b->loop, persister_fd(b->persister), EPOLLIN, persister_ready, b);
}

int broker_run(struct broker *b, void (*ready)(void))
{
	sigset_t mask;
	int sfd, r;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return -errno;
	r = loop_add_fd(b->loop, sfd, EPOLLIN, signal_ready, b);
	if (r < 0)
		return r;
	r = server_listen(b);
	if (r < 0)
		return r;
	log_info("Serving %zu tag(s) from the %s backend at %s", b->tags.count,
		 b->backend->ops->name, b->backend->ops->root(b->backend));
	if (ready)
		ready();
	r = loop_run(b->loop);
	loop_del_fd(b->loop, sfd);
	close(sfd);
	return r;
}

void broker_fini(struct broker *b)
{
	vm_stop_all(b);
	upkeep_stop(b);
	dataplane_stop(b->dp);
	b->dp = NULL;
	server_close_all(b);
	/* stopping the persister writes the last queued snapshot */
	persister_stop(b->persister);
	if (b->backend)
		b->backend->ops->free(b->backend);
	tag_table_clear(&b->tags);
	loop_free(b->loop);
	tagmem_unref(b->ctx);
}
