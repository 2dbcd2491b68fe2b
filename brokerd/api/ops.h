/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Request plumbing (request.c) shared by the op handlers, and the handlers themselves.
 * Internal to brokerd/api. */
#ifndef BROKERD_OPS_H
#define BROKERD_OPS_H

#include <limits.h>

#include "answer.h"
#include "api.h"
#include "core.h"
#include "dataplane.h"
#include "util.h"

/* Who asks: a host client (its peer credentials) or the guest of a VM (its VM's owner). */
struct caller {
	uid_t uid;
	pid_t pid;               /* 0 for a guest */
	struct guest_vm *guest;  /* the channel a guest's request came on; NULL: a host client */
};

struct request {
	struct api *api;
	struct caller who;
	struct answer ans;       /* who gets the reply, and the id (borrowed from msg) */
	struct json_object *msg;
};

/* Reply with result (consumed; NULL for {}), held until registry generation wait_gen. */
void reply_result(struct request *rq, struct json_object *result, uint64_t wait_gen);
void reply_error(struct request *rq, const char *code, const char *fmt, ...) _printf_(3, 4);
/* A core refusal as the protocol's error, naming the tag. */
void reply_refusal(struct request *rq, int refusal, const struct tag *t);
/* The "tag" argument; replies the error itself and returns NULL. */
struct tag *arg_tag(struct request *rq, tagmem_tag *ret_tag, bool must_exist);
/* root or the daemon's own uid */
bool is_privileged(struct request *rq);

/* args.c: the argument rules an op declares in the op table, checked before it runs. */
enum arg_kind {
	ARG_TAG,       /* a UUID string */
	ARG_NAMED_TAG, /* a UUID string, not the nil UUID */
	ARG_BOOL,
	ARG_U64,       /* from min, to max (0: any), a multiple of align (0: any) */
	ARG_STRING,    /* of at most max bytes (0: any) */
	ARG_ONE_OF,    /* one of the strings one_of (NULL-terminated) */
	ARG_PATH,      /* an absolute file name of at most max bytes (0: shorter than PATH_MAX) */
	ARG_VM,        /* a VM name: valid_vm_name() */
	ARG_ARRAY,
};
struct arg_rule {
	const char *name;
	enum arg_kind kind;
	bool required;
	const char *rule;              /* what a good value is: the error message otherwise */
	uint64_t min, max, align;
	const char *const *one_of;
};
/* Every declared argument present when required and good; replies the error itself. */
bool args_valid(struct request *rq, const struct arg_rule *rules);
#define IMAGE_MAX_SIZE (64ull << 40)

/* The one VM-name rule: 1-64 letters, digits, '-', '_' or '.'. */
bool valid_vm_name(const char *vm);
#define VM_NAME_RULE "\"vm\" must be a name of 1-64 letters, digits, '-', '_' or '.'"

/* The op names a host client (or a guest) may call, for hello. */
void ops_add_names(struct json_object *arr, bool guest);

/* ops_tags.c */
void op_hello(struct request *rq);
void op_status(struct request *rq);
void op_host_budget(struct request *rq);
void op_list(struct request *rq);
void op_show(struct request *rq);
void op_lookup(struct request *rq);
void op_claim(struct request *rq);
void op_release(struct request *rq);
void op_subscribe(struct request *rq);
void op_unsubscribe(struct request *rq);
/* ops_fm.c */
void op_fm_add(struct request *rq);
void op_fm_release(struct request *rq);
/* image_files.c: open below an image directory without following symlinks, through
 * directories only root or brokerd can write (-EPERM otherwise; see there) */
struct stat;
int image_open_parent(const struct broker_settings *s, const char *path, int *ret_dfd,
		      char ret_base[NAME_MAX + 1], char ret_full[PATH_MAX]);
/* Is path (through such directories) still the file fd? 0, -ESTALE, -EPERM or -errno. */
int image_still_at(const struct broker_settings *s, const char *path, int fd);
/* The image file base in dfd: read-write, regular (-ELOOP: a symlink; -EMEDIUMTYPE). */
int image_open_file(int dfd, const char *base, int *ret_fd, struct stat *ret_st);

/* ops_images.c */
void op_image_create(struct request *rq);
void op_image_adopt(struct request *rq);
void op_image_forget(struct request *rq);
/* What the label in an image's tail says. */
struct json_object *image_label_json(const struct tag *t);
/* shares.c: the host's image budget shared between VMs (max-min fair). For each VM (by the
 * owner name of its images' claims; "" for images nobody claimed): what its images hold,
 * the share it is guaranteed (budget / N), and the cap it must come down to now
 * (UINT64_MAX: none). shares_divide returns 1 when some VM must give back, 0 when the
 * images fit the budget, -ENOMEM. shares_find finds or appends a VM's entry. */
struct vm_share {
	char vm[128];
	uint64_t resident, guaranteed, cap;
	unsigned images;
};
int shares_divide(uint64_t budget, struct vm_share *v, size_t n);
struct vm_share *shares_find(struct vm_share **v, size_t *n, size_t *cap, const char *vm);

/* upkeep.c: work on an image's page cache as the api asks it. Its context (d->ctx), which
 * the data plane never looks into: who gets the answer, and what the answer says. */
struct image_work {
	struct api *api;
	struct answer ans;                  /* ANSWER_NOBODY: background work */
	tagmem_tag tag;
	char tag_str[TAGMEM_TAG_STRING_MAX];
	uint64_t data_offset;               /* where the tag's data starts in the file */
	uint64_t flush_id;                  /* DP_FLUSH: the id its asker was given */
	bool wait;                          /* the reply waits for the work (else: an event) */
	char reason[16];                    /* DP_EVICT: "request", "budget", "pressure", "global" */
	bool guest_chose;                   /* DP_EVICT: the guest's ranges went first */
	/* work whose end is not an answer of its own (DP_CALL): finish(d) instead, and
	 * release(arg) when the request is freed, finished or not */
	void (*finish)(struct dp_request *d);
	void (*release)(void *arg);
	void *arg;
};
/* A data-plane request of image e, answered to ans (copied; NULL: nobody) when done. */
struct dp_request *image_work_new(struct api *api, struct tag *e, enum dp_kind kind,
				  const struct answer *ans);
static inline struct image_work *image_work(struct dp_request *d) { return d->ctx; }

/* reclaim.c: guest-chosen eviction */
struct guest_vm;
int reclaim_init(struct api *api);
void reclaim_fini(struct api *api);
/* Submit an eviction of e, after asking e's guest which ranges to give back (if its VM has
 * a connected channel; otherwise at once). d is taken over. */
void reclaim_submit(struct api *api, struct tag *e, struct dp_request *d);
/* A guest's reclaim_ranges: the result to reply (or *ret_error, static text). */
void reclaim_answer(struct api *api, struct guest_vm *g, struct json_object *msg,
		    struct json_object **ret_result, const char **ret_error);
/* Would an eviction of e ask its guest first? */
bool reclaim_asks(struct api *api, const struct tag *e);
/* Evictions whose guest did not answer in time go ahead (upkeep's tick). */
void reclaim_tick(struct api *api);

/* ops_guest.c: what only a guest asks */
void op_slots(struct request *rq);
void op_reclaim_ranges(struct request *rq);
/* The "tag" argument of a guest's request: a tag its VM holds, else the error is replied
 * (the same whether the tag exists or not) and NULL returned. */
struct tag *arg_vm_tag(struct request *rq);

/* ops_snapshot.c */
void op_vm_save(struct request *rq);
void op_vm_restore(struct request *rq);
void op_vm_checkpoint(struct request *rq);
#define INCREMENTS_RULE "\"increments\" must be an array of at most 64 absolute file names, the " \
			"base's increments in order, in the base's directory"

/* ops_data.c */
void op_flush(struct request *rq);
/* A flush range of the image's data: NULL if fine (len filled in when !has_len), else why
 * not (static text). */
const char *flush_range(const struct tag *e, uint64_t off, bool has_len, uint64_t *len);
void op_evict(struct request *rq);
void op_image_invalidate(struct request *rq);
void op_image_budget(struct request *rq);
void op_image_clear_error(struct request *rq);
/* show of an image is answered by a data-plane worker; false if t is not an image */
bool op_show_image(struct request *rq, struct tag *t);
/* ops_vm.c: the rules attach and qemu_args share. The lowest nvdimm slot VM (uid, vm) does
 * not use, nor taken_now marks; -ENOSPC. */
int vm_free_slot(struct api *api, uid_t uid, const char *vm, const bool *taken_now);
/* Can QEMU take the tag's path (by name: still the file brokerd holds, not being labelled
 * for a qemu_args under way)? Replies if not. */
bool vm_path_usable(struct request *rq, struct tag *e);
/* The VM's monitor: the one brokerd has (*ret_fd -1), or a connection to qmp (*ret_fd) for a
 * privileged caller; false after replying. */
bool vm_monitor_or_connect(struct request *rq, const char *vm, uid_t uid, const char *qmp,
			   int *ret_fd);
/* ops_qemu_args.c: is a label of tag t being written for a qemu_args under way? (The VM it
 * is for, or NULL.) */
const char *qemu_args_labelling(struct api *api, const struct tag *t);
/* hotplug.c: attach's job on the VM's monitor, answering rq when done; on failure (-EBUSY:
 * the VM's monitor has another QMP socket) nothing is queued and qmp_fd stays the caller's. */
int hotplug_submit(struct request *rq, struct tag *e, const char *vm, const char *qmp,
		   int qmp_fd, unsigned slot);
/* ops_vm.c */
void op_qemu_args(struct request *rq);
void op_attach(struct request *rq);
void op_detach(struct request *rq);
/* ops_migrate.c: live migration, one op per step of each end (docs/protocol.md) */
void op_vm_migrate_begin(struct request *rq);
void op_vm_migrate_listen(struct request *rq);
void op_vm_migrate_send(struct request *rq);
void op_vm_migrate_finish(struct request *rq);
void op_vm_migrate_confirm(struct request *rq);
void op_vm_migrate_abort(struct request *rq);

#endif
