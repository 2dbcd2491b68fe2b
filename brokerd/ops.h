/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Request plumbing shared by the op handlers (ops.c, images.c, ops_vm.c). Internal. */
#ifndef BROKERD_OPS_H
#define BROKERD_OPS_H

#include "brokerd.h"
#include "util.h"

struct request {
	struct broker *b;
	struct client *c;
	struct json_object *msg;
	struct json_object *id; /* borrowed from msg; NULL when absent */
};

/* Reply with result (consumed; NULL for {}), held until registry generation wait_gen. */
void reply_result(struct request *rq, struct json_object *result, uint64_t wait_gen);
void reply_error(struct request *rq, const char *code, const char *fmt, ...) _printf_(3, 4);
/* The "tag" argument; replies the error itself and returns NULL. */
struct tag_entry *arg_tag(struct request *rq, tagmem_tag *ret_tag, bool must_exist);
/* root or the daemon's own uid */
bool is_privileged(struct request *rq);

void op_image_create(struct request *rq);
void op_qemu_args(struct request *rq);
void op_attach(struct request *rq);
void op_detach(struct request *rq);
void op_image_adopt(struct request *rq);
void op_flush(struct request *rq);
void op_evict(struct request *rq);
void op_image_invalidate(struct request *rq);
void op_image_budget(struct request *rq);
/* show of an image is answered by a data-plane worker; false if e is not an image */
bool op_show_image(struct request *rq, struct tag_entry *e);
/* What the label in an image's tail says. */
struct json_object *image_label_json(const struct tag_entry *e);

#endif
