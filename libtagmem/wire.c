/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Strict JSON text, checked before json-c sees it (wire.h). json-c is lenient where the
 * protocol must not be: it parses "08", "1." and "08E", clamps integers beyond 64 bits
 * without a word, keeps a string only up to an escaped NUL, and passes invalid UTF-8 through.
 * Each of those would make brokerd act on something other than what the client sent, or echo
 * bytes that are not JSON. This is a single pass over the line with RFC 8259's grammar for
 * tokens (json-c still checks the structure).
 */
#include <errno.h>
#include <string.h>

#include "wire.h"

/* Length of the UTF-8 sequence at s (at most n bytes), 0 if it is not valid UTF-8:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, min = 0x800, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int hex4(const char *p, unsigned *ret)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*ret = v;
	return 0;
}

/* A string from its opening quote; returns the index after the closing one, or 0. */
static size_t check_string(const char *s, size_t len, size_t i, const char **why)
{
	for (i++; i < len;) {
		unsigned char c = (unsigned char)s[i];
		unsigned u, lo;

		if (c == '"')
			return i + 1;
		if (c < 0x20) {
			*why = "a control character inside a string (escape it)";
			return 0;
		}
		if (c == '\\') {
			if (i + 1 >= len)
				break;
			switch (s[i + 1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				i += 2;
				continue;
			case 'u':
				if (i + 6 > len || hex4(s + i + 2, &u) < 0) {
					*why = "a \\u escape without four hex digits";
					return 0;
				}
				if (u == 0) {
					*why = "a string holds a NUL character (\\u0000)";
					return 0;
				}
				i += 6;
				if (u >= 0xdc00 && u <= 0xdfff) {
					*why = "a lone UTF-16 surrogate in a \\u escape";
					return 0;
				}
				if (u >= 0xd800 && u <= 0xdbff) {
					if (i + 6 > len || s[i] != '\\' || s[i + 1] != 'u' ||
					    hex4(s + i + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
						*why = "a lone UTF-16 surrogate in a \\u escape";
						return 0;
					}
					i += 6;
				}
				continue;
			default:
				*why = "an unknown escape in a string";
				return 0;
			}
		}
		u = (unsigned)utf8_sequence((const unsigned char *)s + i, len - i);
		if (!u) {
			*why = "invalid UTF-8";
			return 0;
		}
		i += u;
	}
	*why = "an unterminated string";
	return 0;
}

/* Is the decimal integer d (n digits, no leading zero) at most the limit's digits? */
static bool digits_within(const char *d, size_t n, const char *limit)
{
	size_t ln = strlen(limit);

	return n < ln || (n == ln && memcmp(d, limit, n) <= 0);
}

/* A number; returns the index after it, or 0. *ret_wide: an integer beyond 64 bits. */
static size_t check_number(const char *s, size_t len, size_t i, const char **why, bool *ret_wide)
{
	size_t int_start;
	bool neg = false, integer = true;

	if (s[i] == '-') {
		neg = true;
		i++;
	}
	int_start = i;
	if (i < len && s[i] == '0') {
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			goto bad; /* "08" */
	} else if (i < len && s[i] >= '1' && s[i] <= '9') {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		goto bad;
	}
	size_t int_end = i;
	if (i < len && s[i] == '.') {
		integer = false;
		i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			goto bad; /* "1." */
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		integer = false;
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			goto bad; /* "08E", "1e" */
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	/* json-c clamps wider integers without a word: the caller must know */
	*ret_wide = integer && !digits_within(s + int_start, int_end - int_start,
					      neg ? "9223372036854775808" : "18446744073709551615");
	return i;
bad:
	*why = "a number JSON does not allow (a leading zero, or no digit after '.', 'e' or '-')";
	return 0;
}

int wire_check(const char *s, size_t len, struct wire_report *rep)
{
	const char *why = NULL;
	int depth = 0;
	bool key_is_id = false, expect_key = false, id_value = false;
	size_t i = 0;

	memset(rep, 0, sizeof(*rep));
	while (i < len) {
		char c = s[i];
		size_t next = 0;
		bool wide = false;

		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			next = i + 1;
			break;
		case '{': case '[':
			depth++;
			expect_key = c == '{' && depth == 1;
			id_value = false;
			next = i + 1;
			break;
		case '}': case ']':
			depth--;
			id_value = false;
			next = i + 1;
			break;
		case ',':
			expect_key = depth == 1;
			id_value = false;
			next = i + 1;
			break;
		case ':':
			id_value = depth == 1 && key_is_id; /* the top-level "id"'s value follows */
			key_is_id = false;
			next = i + 1;
			break;
		case '"':
			next = check_string(s, len, i, &why);
			if (next && expect_key) {
				key_is_id = next - i == 4 && !memcmp(s + i, "\"id\"", 4);
				expect_key = false;
			}
			break;
		case 't':
			next = len - i >= 4 && !memcmp(s + i, "true", 4) ? i + 4 : 0;
			break;
		case 'f':
			next = len - i >= 5 && !memcmp(s + i, "false", 5) ? i + 5 : 0;
			break;
		case 'n':
			next = len - i >= 4 && !memcmp(s + i, "null", 4) ? i + 4 : 0;
			break;
		default:
			if (c == '-' || (c >= '0' && c <= '9')) {
				next = check_number(s, len, i, &why, &wide);
				if (wide && id_value)
					rep->wide_id = true;
				else if (wide)
					rep->wide_other = true;
			} else if ((unsigned char)c >= 0x80 &&
				   !utf8_sequence((const unsigned char *)s + i, len - i)) {
				why = "invalid UTF-8";
			}
			break;
		}
		if (!next) {
			rep->why = why ? why : "not JSON (only objects, arrays, strings, numbers, "
					       "true, false and null)";
			return -EBADMSG;
		}
		i = next;
	}
	return 0;
}

size_t utf8_prefix(const char *s, size_t max)
{
	size_t i = 0;

	while (s[i] && i < max) {
		size_t n = utf8_sequence((const unsigned char *)s + i, strnlen(s + i, 4));

		if (!n || i + n > max)
			break;
		i += n;
	}
	return i;
}

void utf8_sanitize(char *s)
{
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence((const unsigned char *)s + i, len - i);

		if (n) {
			i += n;
			continue;
		}
		/* a sequence cut at the end goes; anything else invalid becomes '?' */
		if ((unsigned char)s[i] >= 0xc2 && (unsigned char)s[i] <= 0xf4 && len - i < 4) {
			bool cut = true;
			for (size_t k = i + 1; k < len; k++)
				cut &= ((unsigned char)s[k] & 0xc0) == 0x80;
			if (cut) {
				s[i] = '\0';
				return;
			}
		}
		s[i++] = '?';
	}
}
