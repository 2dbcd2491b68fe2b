/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The brokerd wire protocol codec: one JSON object per line (docs/protocol.md).
 * Everything here treats its input as hostile: sizes are bounded before parsing, NUL bytes,
 * trailing garbage and what strict JSON does not allow (wire.c) are refused, and typed
 * getters never coerce ("5" is not 5).
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "private.h"
#include "wire.h"

int wire_parse(const char *line, size_t len, size_t max_len, struct json_object **ret_msg,
	       const char **ret_why)
{
	_cleanup_json_ struct json_object *obj = NULL;
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	size_t consumed = 0;
	struct wire_report rep;

	if (ret_why)
		*ret_why = NULL;
	if (!line || !ret_msg)
		return -EINVAL;
	if (len > max_len || len > INT32_MAX)
		return -EMSGSIZE;
	/* json-c stops at a NUL; a line with one inside is not one message. */
	if (memchr(line, '\0', len))
		return -EPROTO;
	/* what json-c would accept but the protocol must not (wire.c) */
	if (wire_check(line, len, &rep) < 0) {
		if (ret_why)
			*ret_why = rep.why;
		return -EBADMSG;
	}
	if (rep.wide_id) {
		if (ret_why)
			*ret_why = "the id is an integer beyond 64 bits (the reply could not echo it)";
		return -ERANGE;
	}

	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	obj = json_tokener_parse_ex(tok, line, (int)len);
	jerr = json_tokener_get_error(tok);
	/* A bare number may "continue"; the line has ended, so say so with a NUL byte. */
	if (!obj && jerr == json_tokener_continue) {
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		if (obj)
			consumed = len;
	}
	if (jerr == json_tokener_success && consumed == 0)
		consumed = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success)
		return -EBADMSG;
	/* Only white space may follow the object ("{} {}" is two messages, not one). */
	for (size_t i = consumed; i < len; i++)
		if (!strchr(" \t\r", line[i]))
			return -EBADMSG;
	if (!json_object_is_type(obj, json_type_object))
		return -EPROTO;
	*ret_msg = TAKE_PTR(obj);
	if (rep.wide_other) {
		if (ret_why)
			*ret_why = "an integer beyond 64 bits";
		return -ERANGE;
	}
	return 0;
}

TAGMEM_EXPORT int tagmem_msg_parse(const char *line, size_t len, size_t max_len,
				   struct json_object **ret_msg)
{
	struct json_object *msg = NULL;
	int r = wire_parse(line, len, max_len, &msg, NULL);

	if (r == -ERANGE) { /* strict: a value json-c would have changed is no message */
		json_object_put(msg);
		return -EBADMSG;
	}
	if (r == 0)
		*ret_msg = msg;
	return r;
}

TAGMEM_EXPORT char *tagmem_msg_format(struct json_object *msg, size_t *ret_len)
{
	size_t len;
	const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	char *out;

	if (!s)
		return NULL;
	out = malloc(len + 2);
	if (!out)
		return NULL;
	memcpy(out, s, len);
	out[len] = '\n';
	out[len + 1] = '\0';
	if (ret_len)
		*ret_len = len + 1;
	return out;
}

TAGMEM_EXPORT struct json_object *tagmem_request_new(const char *op)
{
	struct json_object *req = json_object_new_object();

	if (req && json_object_object_add(req, "op", json_object_new_string(op)) < 0) {
		json_object_put(req);
		return NULL;
	}
	return req;
}

TAGMEM_EXPORT int tagmem_reply_error(struct json_object *reply, const char **ret_code,
				     const char **ret_message)
{
	struct json_object *err, *code, *msg;

	if (!reply || !json_object_is_type(reply, json_type_object))
		return -EPROTO;
	if (!json_object_object_get_ex(reply, "error", &err)) {
		if (!json_object_object_get_ex(reply, "result", NULL))
			return -EPROTO;
		return 0;
	}
	if (!json_object_is_type(err, json_type_object) ||
	    !json_object_object_get_ex(err, "code", &code) ||
	    !json_object_is_type(code, json_type_string) ||
	    !json_object_object_get_ex(err, "message", &msg) ||
	    !json_object_is_type(msg, json_type_string))
		return -EPROTO;
	if (ret_code)
		*ret_code = json_object_get_string(code);
	if (ret_message)
		*ret_message = json_object_get_string(msg);
	return -EREMOTEIO;
}

TAGMEM_EXPORT struct json_object *tagmem_reply_result(struct json_object *reply)
{
	struct json_object *result;

	if (!reply || !json_object_object_get_ex(reply, "result", &result))
		return NULL;
	return result;
}

static int get_typed(struct json_object *obj, const char *key, enum json_type type,
		     struct json_object **ret)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) || !v)
		return -ENOENT;
	if (!json_object_is_type(v, type))
		return -EINVAL;
	*ret = v;
	return 0;
}

TAGMEM_EXPORT int tagmem_json_get_string(struct json_object *obj, const char *key,
					 const char **ret_str)
{
	struct json_object *v;
	int r = get_typed(obj, key, json_type_string, &v);

	if (r < 0)
		return r;
	*ret_str = json_object_get_string(v);
	return 0;
}

TAGMEM_EXPORT int tagmem_json_get_tag(struct json_object *obj, const char *key,
				      tagmem_tag *ret_tag)
{
	const char *s;
	int r = tagmem_json_get_string(obj, key, &s);

	if (r < 0)
		return r;
	return tagmem_tag_parse(s, ret_tag);
}

TAGMEM_EXPORT int tagmem_json_get_u64(struct json_object *obj, const char *key,
				      uint64_t *ret_val)
{
	struct json_object *v;
	int r = get_typed(obj, key, json_type_int, &v);

	if (r < 0)
		return r;
	/* json-c keeps negative numbers as int64; refuse them rather than wrap around. */
	if (json_object_get_int64(v) < 0)
		return -EINVAL;
	errno = 0;
	*ret_val = json_object_get_uint64(v);
	return errno ? -EINVAL : 0;
}

TAGMEM_EXPORT int tagmem_json_get_bool(struct json_object *obj, const char *key, bool *ret_val)
{
	struct json_object *v;
	int r = get_typed(obj, key, json_type_boolean, &v);

	if (r < 0)
		return r;
	*ret_val = json_object_get_boolean(v);
	return 0;
}

struct json_object *wire_error(const char *code, const char *message)
{
	struct json_object *err = json_object_new_object();
	char msg[512];

	/* what a peer sent may be quoted, cut to a length: never cut a character in two */
	snprintf(msg, sizeof(msg), "%s", message ? message : "");
	utf8_sanitize(msg);
	json_object_object_add(err, "code", json_object_new_string(code));
	json_object_object_add(err, "message", json_object_new_string(msg));
	return err;
}
