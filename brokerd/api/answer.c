/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Answers and events of both protocols (answer.h): every shape is built here, once. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "answer.h"
#include "api.h"
#include "wire.h"

void answer_copy(struct answer *dst, const struct answer *src)
{
	*dst = *src;
	json_object_get(dst->id);
}

void answer_fini(struct answer *a)
{
	json_object_put(a->id);
	a->id = NULL;
}

/* The message (consumed) to the answer's peer. */
static void send_to(struct api *api, const struct answer *a, struct json_object *msg,
		    uint64_t gen)
{
	const struct api_transport *t = &api->transport;

	switch (a->peer) {
	case ANSWER_CLIENT:
		t->client(t->data, a->client, msg, gen);
		return;
	case ANSWER_GUEST:
		t->guest(t->data, a->guest_uid, a->guest_vm, msg);
		return;
	case ANSWER_NOBODY:
		break;
	}
	json_object_put(msg);
}

static struct json_object *envelope(const struct answer *a)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_get(a->id));
	return o;
}

void answer_result(struct api *api, const struct answer *a, struct json_object *result,
		   uint64_t gen)
{
	struct json_object *o;

	if (a->peer == ANSWER_NOBODY) {
		json_object_put(result);
		return;
	}
	o = envelope(a);
	json_object_object_add(o, "result", result ? result : json_object_new_object());
	send_to(api, a, o, gen);
}

void answer_error(struct api *api, const struct answer *a, uint64_t gen, const char *code,
		  const char *fmt, ...)
{
	struct json_object *o;
	char msg[512];
	va_list ap;

	if (a->peer == ANSWER_NOBODY)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->peer == ANSWER_CLIENT) {
		api->errors++;
		api_metrics_refused(api, code);
	}
	o = envelope(a);
	json_object_object_add(o, "error", wire_error(code, msg));
	send_to(api, a, o, gen);
}

void api_emit(struct api *api, struct json_object *event)
{
	const struct api_transport *t = &api->transport;
	_cleanup_free_ char *line = NULL;
	size_t len;

	if (t->subscribers(t->data)) {
		line = tagmem_msg_format(event, &len);
		if (line)
			t->broadcast(t->data, line, len);
	}
	json_object_put(event);
}

void answer_flush_done(struct api *api, const struct answer *a, struct json_object *body,
		       const char *code, const char *message, const char *vm, uint64_t gen)
{
	const struct api_transport *t = &api->transport;

	json_object_object_add(body, "event", json_object_new_string("flush_done"));
	if (code)
		json_object_object_add(body, "error", wire_error(code, message));
	/* the asker, unless it hears every event anyway as a subscriber */
	if (a->peer == ANSWER_GUEST ||
	    (a->peer == ANSWER_CLIENT && !t->client_subscribed(t->data, a->client)))
		send_to(api, a, json_object_get(body), code ? gen : 0);
	/* the host's subscribers see every flush, and which VM asked */
	if (vm)
		json_object_object_add(body, "vm", json_object_new_string(vm));
	api_emit(api, body);
}

void answer_tell_guest(struct api *api, uid_t uid, const char *vm, struct json_object *msg)
{
	api->transport.guest(api->transport.data, uid, vm, msg);
}
