/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libtagmem: tagged capacity for CXL Dynamic Capacity Devices.
 *
 * A tag is the UUID a fabric manager gives an allocation: the only name of that memory that
 * is the same on every host. This library offers
 *   - the tag model (parse, format, compare),
 *   - the brokerd wire protocol codec (newline-delimited JSON, see docs/protocol.md),
 *   - a client for brokerd (request/reply by id, event subscription),
 *   - daemonless resolution of a tag to a device path from the kernel's sysfs tree.
 *
 * Conventions: functions return 0 or a negative errno; ret_* out-parameters come last and are
 * left untouched on failure; *_unref(NULL) is a no-op. Logging goes through the context's log
 * function; the TAGMEM_LOG environment variable (err, info, debug or 3/6/7) sets the level.
 */
#ifndef TAGMEM_H
#define TAGMEM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct json_object;

#define TAGMEM_PROTOCOL_VERSION 1
#define TAGMEM_DEFAULT_SOCKET "/run/tagmem/brokerd.sock"
/* Inside a VM: the guest agent (tagmem-guestd), which relays to the host's brokerd. */
#define TAGMEM_GUEST_SOCKET "/run/tagmem/guest.sock"
#define TAGMEM_MAX_LINE_DEFAULT 65536

/* ---- context ------------------------------------------------------------------------ */

struct tagmem_ctx;

typedef void (*tagmem_log_fn)(struct tagmem_ctx *ctx, int priority, const char *file,
			      int line, const char *fn, const char *format, va_list args);

int tagmem_new(struct tagmem_ctx **ret_ctx);
struct tagmem_ctx *tagmem_ref(struct tagmem_ctx *ctx);
struct tagmem_ctx *tagmem_unref(struct tagmem_ctx *ctx);
void tagmem_set_log_fn(struct tagmem_ctx *ctx, tagmem_log_fn fn);
int tagmem_get_log_priority(struct tagmem_ctx *ctx);
void tagmem_set_log_priority(struct tagmem_ctx *ctx, int priority);
const char *tagmem_get_version(void);

/* ---- tags --------------------------------------------------------------------------- */

/* A tag is a value: 16 bytes in RFC 4122 order. */
typedef struct tagmem_tag {
	uint8_t bytes[16];
} tagmem_tag;

#define TAGMEM_TAG_STRING_MAX 37 /* 36 characters and the NUL */

/* Accepts the canonical 8-4-4-4-12 form, either case; nothing else. -EINVAL otherwise. */
int tagmem_tag_parse(const char *text, tagmem_tag *ret_tag);
/* Lower-case canonical form; returns buf. */
const char *tagmem_tag_format(const tagmem_tag *tag, char buf[TAGMEM_TAG_STRING_MAX]);
int tagmem_tag_compare(const tagmem_tag *a, const tagmem_tag *b);
bool tagmem_tag_is_null(const tagmem_tag *tag);
/* A new random (version 4) tag. */
void tagmem_tag_generate(tagmem_tag *ret_tag);

/* ---- wire protocol codec -------------------------------------------------------------- */

/*
 * Parse one message (without its newline). The result must be a JSON object.
 * -EMSGSIZE: longer than max_len; -EBADMSG: not JSON or trailing garbage; -EPROTO: not an
 * object or contains a NUL byte.
 */
int tagmem_msg_parse(const char *line, size_t len, size_t max_len, struct json_object **ret_msg);
/* Serialise compactly with the trailing newline; caller frees. NULL on ENOMEM. */
char *tagmem_msg_format(struct json_object *msg, size_t *ret_len);

/* New request object {"op": op}; the client adds the "id". */
struct json_object *tagmem_request_new(const char *op);
/*
 * If reply is an error reply, return -EREMOTEIO and point ret_code / ret_message into it
 * (either may be NULL). Returns 0 for a success reply, -EPROTO for a malformed reply.
 */
int tagmem_reply_error(struct json_object *reply, const char **ret_code,
		       const char **ret_message);
/* The "result" member of a success reply, or NULL. Borrowed. */
struct json_object *tagmem_reply_result(struct json_object *reply);

/* Typed field access with validation: -ENOENT missing, -EINVAL wrong type or value. */
int tagmem_json_get_tag(struct json_object *obj, const char *key, tagmem_tag *ret_tag);
int tagmem_json_get_string(struct json_object *obj, const char *key, const char **ret_str);
int tagmem_json_get_u64(struct json_object *obj, const char *key, uint64_t *ret_val);
int tagmem_json_get_bool(struct json_object *obj, const char *key, bool *ret_val);

/* ---- client --------------------------------------------------------------------------- */

struct tagmem_client;

/* path NULL: $TAGMEM_SOCKET, else TAGMEM_DEFAULT_SOCKET. */
int tagmem_client_connect(struct tagmem_ctx *ctx, const char *path,
			  struct tagmem_client **ret_client);
struct tagmem_client *tagmem_client_unref(struct tagmem_client *client);
int tagmem_client_get_fd(struct tagmem_client *client);
static inline void tagmem_client_unrefp(struct tagmem_client **c)
{
	tagmem_client_unref(*c);
}
const char *tagmem_client_get_path(struct tagmem_client *client);
/*
 * Send request (an "id" is assigned; the object is not consumed) and wait up to timeout_ms
 * (-1: forever) for the reply with that id. Events that arrive meanwhile are queued for
 * tagmem_client_next_event(). The reply may be an error reply: see tagmem_reply_error().
 * -ETIMEDOUT, -ECONNRESET (daemon went away), -EPROTO (garbage from the daemon).
 */
int tagmem_client_call(struct tagmem_client *client, struct json_object *request,
		       int timeout_ms, struct json_object **ret_reply);
/* Convenience: call and turn an error reply into -EREMOTEIO with the message logged. */
int tagmem_client_call_result(struct tagmem_client *client, struct json_object *request,
			      int timeout_ms, struct json_object **ret_reply);
/*
 * Make [offset, offset + length) of an image's data durable on the host (length 0: to the
 * end). On a host, connect to brokerd; inside a VM, to TAGMEM_GUEST_SOCKET (the guest agent
 * relays to the host's brokerd, which flushes only its own VM's images). wait: return once it
 * is durable; else once queued, *ret_flush_id naming the flush_done event to come (may be
 * NULL). -EREMOTEIO with the reason logged when brokerd refuses or the flush fails.
 */
int tagmem_flush_range(struct tagmem_client *client, const tagmem_tag *tag, uint64_t offset,
		       uint64_t length, bool wait, uint64_t *ret_flush_id);
/*
 * Inside a VM, connected to TAGMEM_GUEST_SOCKET: mark [offset, offset + length) of a tag's
 * data cold (the host's brokerd takes it first when it must shrink the image: a cache the
 * program can refill) or hot again.
 */
int tagmem_hint_range(struct tagmem_client *client, const tagmem_tag *tag, uint64_t offset,
		      uint64_t length, bool cold);
/* Next event message ({"event": …}); -ETIMEDOUT after timeout_ms (0: poll, -1: forever). */
int tagmem_client_next_event(struct tagmem_client *client, int timeout_ms,
			     struct json_object **ret_event);

/* ---- daemonless resolution ------------------------------------------------------------ */

/*
 * Find the device of a tag by reading the sysfs tree under root ("/" on a host; the
 * simulator's sandbox directory otherwise) the way brokerd does. ret_path receives a
 * malloc'ed device path under root. -ENOENT: no device carries that tag.
 */
/*
 * Typed calls (LIBTAGMEM_1.2): no json-c in their signatures, so a program's ABI does not hang
 * on json-c's. Each returns 0, or a negative errno: brokerd's refusal mapped to one
 * (not_found -ENOENT, busy and release_pending -EBUSY, not_ready -EAGAIN, not_claimed
 * -ENOENT, permission_denied -EPERM, invalid_argument -EINVAL, anything else -EREMOTEIO),
 * whose protocol code and message tagmem_client_get_error() then tells (docs/protocol.md),
 * or the connection's own error (-ECONNRESET, -ETIMEDOUT, …, with no code).
 */
/* How long a typed call waits for brokerd's answer (-1, the default: as long as it takes);
 * past it, -ETIMEDOUT. */
void tagmem_client_set_timeout(struct tagmem_client *client, int timeout_ms);
/* brokerd's code of the last refused call on this client ("busy", …), or NULL;
 * *ret_message its message. Valid until the next call. */
const char *tagmem_client_get_error(struct tagmem_client *client, const char **ret_message);

/* What brokerd says of a tag (refcounted; the strings are the info's). */
struct tagmem_info;
struct tagmem_info *tagmem_info_unref(struct tagmem_info *info);
const tagmem_tag *tagmem_info_get_tag(const struct tagmem_info *info);
/* "added", "ready", "claimed", "release_pending", "released" */
const char *tagmem_info_get_state(const struct tagmem_info *info);
uint64_t tagmem_info_get_size(const struct tagmem_info *info);
bool tagmem_info_is_shared(const struct tagmem_info *info);  /* other hosts map it too */
bool tagmem_info_is_image(const struct tagmem_info *info);   /* an image file */
const char *tagmem_info_get_device(const struct tagmem_info *info); /* NULL: none yet */
const char *tagmem_info_get_path(const struct tagmem_info *info);   /* NULL: none yet */
const char *tagmem_info_get_owner_name(const struct tagmem_info *info); /* NULL: unclaimed */
int64_t tagmem_info_get_owner_uid(const struct tagmem_info *info);  /* -1: unclaimed */
/* The tag object as brokerd sent it (JSON text; docs/protocol.md "The tag object"). */
const char *tagmem_info_get_json(const struct tagmem_info *info);

/* The device node (or image file) of tag; *ret_path to free. */
int tagmem_lookup(struct tagmem_client *client, const tagmem_tag *tag, char **ret_path);
int tagmem_show(struct tagmem_client *client, const tagmem_tag *tag,
		struct tagmem_info **ret_info);
/* Every tag: *ret_infos an array of *ret_n (free with tagmem_info_list_free). */
int tagmem_list(struct tagmem_client *client, struct tagmem_info ***ret_infos, size_t *ret_n);
void tagmem_info_list_free(struct tagmem_info **infos, size_t n);
/* Claim tag as name (NULL: none); grant: the caller gets the device node or file (its uid
 * may then open it). *ret_info (if asked) the tag as it is now claimed (its path:
 * tagmem_info_get_path). Durable when it returns. */
int tagmem_claim(struct tagmem_client *client, const tagmem_tag *tag, const char *name,
		 bool grant, struct tagmem_info **ret_info);
/* Give the claim back; *ret_capacity_released (if asked): the fabric manager was waiting and
 * the capacity went with it. */
int tagmem_release(struct tagmem_client *client, const tagmem_tag *tag,
		   bool *ret_capacity_released);
/* Events from now on, on this client: poll tagmem_client_get_fd() and call
 * tagmem_next_tag_event(), which returns 1 with the next event's name ("tag_ready", …) in
 * *ret_name (to free) and, for a tag event, its tag in *ret_info (else NULL); 0 when
 * timeout_ms (-1: forever, 0: don't wait) passed without one. */
int tagmem_subscribe(struct tagmem_client *client);
int tagmem_next_tag_event(struct tagmem_client *client, int timeout_ms, char **ret_name,
			  struct tagmem_info **ret_info);

int tagmem_resolve_tag(struct tagmem_ctx *ctx, const char *root, const tagmem_tag *tag,
		       char **ret_path);

#ifdef __cplusplus
}
#endif
#endif
