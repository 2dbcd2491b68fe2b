/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The strict side of the wire codec (wire.c): what the protocol refuses that json-c would
 * accept, and UTF-8 helpers for text that goes back to a client. Internal; not installed.
 */
#ifndef TAGMEM_WIRE_H
#define TAGMEM_WIRE_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

struct wire_report {
	const char *why;   /* what is wrong (static text) */
	bool wide_id;      /* the top-level "id" is an integer beyond int64/uint64 */
	bool wide_other;   /* some other integer is */
};

/* 0 if the text's tokens are strict JSON: valid UTF-8, no \u0000 or lone surrogate in a
 * string, no control character unescaped, numbers by RFC 8259's grammar; integers beyond
 * 64 bits (which json-c would clamp) are reported. Otherwise -EBADMSG, rep->why says what. */
int wire_check(const char *s, size_t len, struct wire_report *rep);
/*
 * tagmem_msg_parse with the reason for a refusal (*ret_why, static text, may be NULL). An
 * integer beyond 64 bits is -ERANGE: with *ret_msg set when only another value was wide
 * (the caller can still answer the request's id), without it when the id itself was.
 */
int wire_parse(const char *line, size_t len, size_t max_len, struct json_object **ret_msg,
	       const char **ret_why);

/* The protocol's error object, {"code", "message"}: the one place it is built (both
 * protocols, every layer). The message is cut to 511 bytes, never inside a character. */
struct json_object *wire_error(const char *code, const char *message);

/* Length of the UTF-8 sequence at s (n bytes available), 0 if invalid. */
size_t utf8_sequence(const unsigned char *s, size_t n);
/* The longest prefix of s, at most max bytes, that does not cut a character. */
size_t utf8_prefix(const char *s, size_t max);
/* Make s valid UTF-8 in place: invalid bytes become '?', a sequence cut at the end goes. */
void utf8_sanitize(char *s);

#endif
