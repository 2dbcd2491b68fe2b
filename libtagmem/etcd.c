/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/ssl.h>

#include "etcd_http.h"
#include "lines.h"
#include "tagmem.h"
#include "util.h"

#define ETCD_MAX_ENDPOINTS 16

struct etcd {
	char host[ETCD_MAX_ENDPOINTS][256];
	char port[ETCD_MAX_ENDPOINTS][8];
	char url[ETCD_MAX_ENDPOINTS][300];
	size_t n, cur;
	int timeout_ms;
	SSL_CTX *tls;      /* https:// endpoints: the CA to trust, the client's certificate */
	char user[128], password[256];
	char token[512];   /* etcd's auth token for user, once authenticated */
	char refusal[256]; /* etcd's words when it last refused a call */
	struct conn c;
};

struct etcd_watch {
	struct conn c;
	uint64_t left;     /* bytes of the current chunk not yet read */
	struct lines msgs; /* decoded bytes of the stream, split into messages */
	bool ended;
};

/* ---- endpoints ---- */

/* One endpoint; every endpoint of a list is http:// or every one https:// (tls). */
static int parse_url(struct etcd *e, const char *url, size_t len, bool tls)
{
	const char *scheme = tls ? "https://" : "http://";
	const char *p = url, *end = url + len, *colon;

	if (len <= strlen(scheme) || strncmp(url, scheme, strlen(scheme)))
		return -EINVAL;
	p += strlen(scheme);
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || colon == p || (size_t)(colon - p) >= sizeof(e->host[0]) ||
	    (size_t)(end - colon - 1) >= sizeof(e->port[0]) || end - colon - 1 < 1)
		return -EINVAL;
	for (const char *q = colon + 1; q < end; q++)
		if (*q < '0' || *q > '9')
			return -EINVAL;
	snprintf(e->host[e->n], sizeof(e->host[0]), "%.*s", (int)(colon - p), p);
	snprintf(e->port[e->n], sizeof(e->port[0]), "%.*s", (int)(end - colon - 1), colon + 1);
	snprintf(e->url[e->n], sizeof(e->url[0]), "%.*s", (int)len, url);
	e->n++;
	return 0;
}

/* The client side of TLS: trust ca only, present cert and key (if given), TLS 1.2 or later. */
static int tls_context(const struct etcd_credentials *t, SSL_CTX **ret)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (!t || !t->ca || SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1 ||
	    (t->cert && SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) ||
	    (t->key && SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) ||
	    (t->cert && SSL_CTX_check_private_key(ctx) != 1)) {
		SSL_CTX_free(ctx);
		return -EKEYREJECTED;
	}
	*ret = ctx;
	return 0;
}

int etcd_open_as(const char *endpoints, const struct etcd_credentials *tls, int timeout_ms,
		  struct etcd **ret)
{
	struct etcd *e = calloc(1, sizeof(*e));
	const char *p = endpoints;
	bool https = endpoints && !strncmp(endpoints, "https://", 8);
	int r;

	if (!e)
		return -ENOMEM;
	e->c.fd = -1;
	e->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (e->n == ETCD_MAX_ENDPOINTS || parse_url(e, p, len, https) < 0) {
			free(e);
			return -EINVAL;
		}
		p = comma ? comma + 1 : NULL;
	}
	if (!e->n) {
		free(e);
		return -EINVAL;
	}
	if (https) {
		r = tls_context(tls, &e->tls);
		if (r < 0) {
			free(e);
			return r;
		}
	}
	if (tls && tls->user && (strlen(tls->user) >= sizeof(e->user) || !tls->password ||
				 strlen(tls->password) >= sizeof(e->password))) {
		etcd_close(e);
		return -EINVAL;
	}
	if (tls && tls->user) {
		snprintf(e->user, sizeof(e->user), "%s", tls->user);
		snprintf(e->password, sizeof(e->password), "%s", tls->password);
	}
	*ret = e;
	return 0;
}

int etcd_read_password(const char *path, char **ret)
{
	char buf[256];
	struct stat st;
	ssize_t n;
	int fd;

	if (!path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
		int r = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : -EPERM;
		close(fd);
		return r;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!*buf)
		return -EINVAL;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

int etcd_open(const char *endpoints, int timeout_ms, struct etcd **ret)
{
	return etcd_open_as(endpoints, NULL, timeout_ms, ret);
}

void etcd_close(struct etcd *e)
{
	if (!e)
		return;
	conn_close(&e->c);
	SSL_CTX_free(e->tls);
	free(e);
}

void etcd_set_timeout(struct etcd *e, int timeout_ms)
{
	e->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

const char *etcd_endpoint(const struct etcd *e)
{
	return e->url[e->cur];
}

/* The endpoint's connection: TCP, then TLS when it is https://. */
static int conn_open_endpoint(struct etcd *e, struct conn *c, uint64_t deadline)
{
	return conn_open(c, e->host[e->cur], e->port[e->cur], e->tls, deadline);
}

/* The request in one write: a head and a body sent apart would wait out the peer's delayed
 * acknowledgement (Nagle), some 40 ms a call. */
static int send_request(struct etcd *e, struct conn *c, const char *path, const char *body,
			size_t blen, uint64_t deadline)
{
	_cleanup_free_ char *req = NULL;
	int n = asprintf(&req, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n%s%s%s"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", path,
			 e->host[e->cur], e->port[e->cur], e->token[0] ? "Authorization: " : "",
			 e->token, e->token[0] ? "\r\n" : "", blen, body);

	if (n < 0) {
		req = NULL;
		return -ENOMEM;
	}
	return conn_write(c, req, (size_t)n, deadline);
}

/* One exchange on the current endpoint's connection (opened if need be). */
static int exchange(struct etcd *e, const char *path, const char *body, size_t blen,
		    uint64_t deadline, int *status, char **reply)
{
	size_t rlen = 0;
	int64_t clen;
	bool chunked;
	int r;

	if (e->c.fd < 0) {
		r = conn_open_endpoint(e, &e->c, deadline);
		if (r < 0)
			return r;
	}
	r = send_request(e, &e->c, path, body, blen, deadline);
	if (r == 0)
		r = read_head(&e->c, deadline, status, &clen, &chunked);
	if (r == 0)
		r = chunked ? read_chunked(&e->c, deadline, reply, &rlen) :
			      read_length(&e->c, deadline, (size_t)clen, reply);
	if (r < 0)
		conn_close(&e->c); /* whatever state it is in, it is not a fresh reply's */
	return r;
}

static int call_once(struct etcd *e, const char *path, struct json_object *req,
		     struct json_object **ret);

/* A token for the user (a token of etcd's simple kind lives minutes: again when refused). */
static int authenticate(struct etcd *e)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
	const char *token;
	int r;

	json_object_object_add(req, "name", json_object_new_string(e->user));
	json_object_object_add(req, "password", json_object_new_string(e->password));
	e->token[0] = '\0';
	r = call_once(e, "/v3/auth/authenticate", req, &rep);
	if (r == -EREMOTEIO)
		snprintf(e->refusal, sizeof(e->refusal), "%s",
			 json_object_get_string(json_object_object_get(rep, "error")));
	if (r < 0)
		return r == -EREMOTEIO ? -EACCES : r;
	if (tagmem_json_get_string(rep, "token", &token) < 0 || !*token ||
	    strlen(token) >= sizeof(e->token) || strpbrk(token, "\r\n"))
		return -EPROTO;
	snprintf(e->token, sizeof(e->token), "%s", token);
	return 0;
}

static bool token_refused(struct json_object *rep)
{
	const char *msg;

	return tagmem_json_get_string(rep, "error", &msg) == 0 &&
	       (strstr(msg, "invalid auth token") || strstr(msg, "user name is empty"));
}

int etcd_call(struct etcd *e, const char *path, struct json_object *req,
	      struct json_object **ret)
{
	int r;

	if (e->user[0] && !e->token[0] && (r = authenticate(e)) < 0) {
		*ret = NULL;
		return r;
	}
	r = call_once(e, path, req, ret);
	if (r == -EREMOTEIO && e->user[0] && token_refused(*ret)) {
		json_object_put(*ret);
		*ret = NULL;
		r = authenticate(e);
		if (r == 0)
			r = call_once(e, path, req, ret);
	}
	if (r == -EREMOTEIO && *ret) {
		const char *why = "?";
		if (tagmem_json_get_string(*ret, "message", &why) < 0)
			tagmem_json_get_string(*ret, "error", &why);
		snprintf(e->refusal, sizeof(e->refusal), "%s", why);
	}
	return r;
}

const char *etcd_last_error(const struct etcd *e)
{
	return e->refusal;
}

static int call_once(struct etcd *e, const char *path, struct json_object *req,
		     struct json_object **ret)
{
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t blen = strlen(body);
	int r = -ECONNREFUSED;

	*ret = NULL;
	/* each endpoint once, from the one that answered last */
	for (size_t tries = 0; tries < e->n; tries++) {
		uint64_t deadline = now_usec() + (uint64_t)e->timeout_ms * 1000u;
		_cleanup_free_ char *reply = NULL;
		struct json_object *o = NULL;
		int status = 0;

		r = exchange(e, path, body, blen, deadline, &status, &reply);
		if (r == -ECONNRESET && e->c.fd < 0) /* a kept-alive connection had closed: once more */
			r = exchange(e, path, body, blen, deadline, &status, &reply);
		if (r == 0 && tagmem_msg_parse(reply, strlen(reply), ETCD_MAX_BODY, &o) < 0) {
			if (status == 200 || !*reply) {
				r = -EPROTO;
			} else {
				/* a refusal in words (the gateway's, say): keep them for the caller */
				o = json_object_new_object();
				json_object_object_add(o, "error", json_object_new_string_len(
					reply, (int)strcspn(reply, "\r\n") > 300 ? 300 :
					(int)strcspn(reply, "\r\n")));
			}
		}
		if (r == 0) {
			*ret = o;
			return status == 200 && !json_object_object_get_ex(o, "error", NULL) ?
			       0 : -EREMOTEIO;
		}
		conn_close(&e->c);
		e->cur = (e->cur + 1) % e->n;
	}
	return r;
}

/* ---- values ---- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct json_object *etcd_b64(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *p = out;
	struct json_object *s;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < len ? in[i + 2] : 0);
		*p++ = b64chars[v >> 18 & 63];
		*p++ = b64chars[v >> 12 & 63];
		*p++ = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
		*p++ = i + 2 < len ? b64chars[v & 63] : '=';
	}
	*p = '\0';
	s = json_object_new_string(out);
	free(out);
	return s;
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;

	return p ? (int)(p - b64chars) : -1;
}

int etcd_unb64(struct json_object *s, char **ret, size_t *ret_len)
{
	const char *in;
	size_t len, n = 0;
	char *out;

	if (!json_object_is_type(s, json_type_string))
		return -EBADMSG;
	in = json_object_get_string(s);
	len = strlen(in);
	if (len % 4)
		return -EBADMSG;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int a = b64val(in[i]), b = b64val(in[i + 1]), c = b64val(in[i + 2]),
		    d = b64val(in[i + 3]);
		bool pad_c = last && in[i + 2] == '=' && in[i + 3] == '=';
		bool pad_d = last && in[i + 3] == '=';

		if (a < 0 || b < 0 || (c < 0 && !pad_c) || (d < 0 && !pad_d)) {
			free(out);
			return -EBADMSG;
		}
		out[n++] = (char)(a << 2 | b >> 4);
		if (!pad_c)
			out[n++] = (char)((b & 15) << 4 | c >> 2);
		if (!pad_d)
			out[n++] = (char)((c & 3) << 6 | d);
	}
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	return 0;
}

int etcd_get_i64(struct json_object *o, const char *key, int64_t *ret)
{
	struct json_object *v;
	char *end;

	*ret = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		*ret = json_object_get_int64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EBADMSG;
	errno = 0;
	*ret = strtoll(json_object_get_string(v), &end, 10);
	return errno || *end || end == json_object_get_string(v) ? -EBADMSG : 0;
}

/* ---- requests ---- */

/* The end of a prefix's range: the prefix with its last byte + 1 ("a/" → "a0"). */
static void prefix_end(const char *prefix, char *end, size_t size)
{
	size_t len = strlen(prefix);

	snprintf(end, size, "%s", prefix);
	if (len && len < size)
		end[len - 1]++;
}

struct json_object *etcd_range_prefix_req(const char *prefix, bool keys_only)
{
	struct json_object *req = json_object_new_object();
	char end[1024];

	prefix_end(prefix, end, sizeof(end));
	json_object_object_add(req, "key", etcd_b64(prefix, strlen(prefix)));
	json_object_object_add(req, "range_end", etcd_b64(end, strlen(end)));
	if (keys_only)
		json_object_object_add(req, "keys_only", json_object_new_boolean(true));
	return req;
}

struct json_object *etcd_op_put(const char *key, const char *value, int64_t lease)
{
	struct json_object *put = json_object_new_object(), *op = json_object_new_object();
	char id[32];

	json_object_object_add(put, "key", etcd_b64(key, strlen(key)));
	json_object_object_add(put, "value", etcd_b64(value, strlen(value)));
	if (lease) {
		snprintf(id, sizeof(id), "%" PRId64, lease);
		json_object_object_add(put, "lease", json_object_new_string(id));
	}
	json_object_object_add(op, "request_put", put);
	return op;
}

struct json_object *etcd_op_delete(const char *key)
{
	struct json_object *del = json_object_new_object(), *op = json_object_new_object();

	json_object_object_add(del, "key", etcd_b64(key, strlen(key)));
	json_object_object_add(op, "request_delete_range", del);
	return op;
}

/* {key, value} of one kv of a range reply, decoded; -EBADMSG. */
static int decode_kv(struct json_object *kv, struct json_object **ret)
{
	_cleanup_free_ char *key = NULL, *value = NULL;
	struct json_object *k, *v, *o;
	size_t klen, vlen;

	if (!json_object_object_get_ex(kv, "key", &k) || etcd_unb64(k, &key, &klen) < 0 ||
	    memchr(key, '\0', klen))
		return -EBADMSG;
	if (json_object_object_get_ex(kv, "value", &v)) {
		if (etcd_unb64(v, &value, &vlen) < 0 || memchr(value, '\0', vlen))
			return -EBADMSG;
	}
	o = json_object_new_object();
	json_object_object_add(o, "key", json_object_new_string(key));
	json_object_object_add(o, "value", json_object_new_string(value ? value : ""));
	*ret = o;
	return 0;
}

/* Append the decoded kvs of a range response to out; -EPROTO. */
static int add_kvs(struct json_object *range_rep, struct json_object *out)
{
	struct json_object *kvs;

	if (!json_object_object_get_ex(range_rep, "kvs", &kvs))
		return 0;
	if (!json_object_is_type(kvs, json_type_array))
		return -EPROTO;
	for (size_t i = 0; i < json_object_array_length(kvs); i++) {
		struct json_object *kv;

		if (decode_kv(json_object_array_get_idx(kvs, i), &kv) < 0)
			return -EPROTO;
		json_object_array_add(out, kv);
	}
	return 0;
}

int etcd_get_prefix(struct etcd *e, const char *prefix, struct json_object **ret_kvs,
		    int64_t *ret_rev)
{
	_cleanup_json_ struct json_object *req = etcd_range_prefix_req(prefix, false), *rep = NULL;
	struct json_object *out, *hdr;
	int r = etcd_call(e, "/v3/kv/range", req, &rep);

	if (r < 0)
		return r;
	if (!json_object_object_get_ex(rep, "header", &hdr) ||
	    etcd_get_i64(hdr, "revision", ret_rev) < 0)
		return -EPROTO;
	out = json_object_new_array();
	if (add_kvs(rep, out) < 0) {
		json_object_put(out);
		return -EPROTO;
	}
	*ret_kvs = out;
	return 0;
}

int etcd_get_keys(struct etcd *e, const char *const *keys, size_t n,
		  struct json_object **ret_kvs)
{
	struct json_object *out = json_object_new_array();
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i += 100) { /* etcd takes 128 ops a txn */
		_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
		struct json_object *ops = json_object_new_array(), *resps;

		for (size_t j = i; j < n && j < i + 100; j++) {
			struct json_object *range = json_object_new_object(), *op = json_object_new_object();
			json_object_object_add(range, "key", etcd_b64(keys[j], strlen(keys[j])));
			json_object_object_add(op, "request_range", range);
			json_object_array_add(ops, op);
		}
		json_object_object_add(req, "success", ops);
		r = etcd_call(e, "/v3/kv/txn", req, &rep);
		if (r < 0)
			break;
		if (!json_object_object_get_ex(rep, "responses", &resps) ||
		    !json_object_is_type(resps, json_type_array)) {
			r = -EPROTO;
			break;
		}
		for (size_t j = 0; j < json_object_array_length(resps) && r >= 0; j++) {
			struct json_object *rr;
			if (json_object_object_get_ex(json_object_array_get_idx(resps, j),
						      "response_range", &rr))
				r = add_kvs(rr, out);
		}
	}
	if (r < 0) {
		json_object_put(out);
		return r;
	}
	*ret_kvs = out;
	return 0;
}

int etcd_txn(struct etcd *e, struct json_object *ops)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;

	json_object_object_add(req, "success", ops);
	return etcd_call(e, "/v3/kv/txn", req, &rep);
}

static struct json_object *lease_req(int64_t id)
{
	struct json_object *req = json_object_new_object();
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, id);
	json_object_object_add(req, "ID", json_object_new_string(s));
	return req;
}

int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *ret_id)
{
	_cleanup_json_ struct json_object *req = json_object_new_object(), *rep = NULL;
	int r;

	json_object_object_add(req, "TTL", json_object_new_int64(ttl));
	r = etcd_call(e, "/v3/lease/grant", req, &rep);
	if (r < 0)
		return r;
	return etcd_get_i64(rep, "ID", ret_id) < 0 || !*ret_id ? -EPROTO : 0;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id)
{
	_cleanup_json_ struct json_object *req = lease_req(id), *rep = NULL;
	struct json_object *res;
	int64_t ttl;
	int r = etcd_call(e, "/v3/lease/keepalive", req, &rep);

	if (r < 0)
		return r;
	/* a stream of one: {"result": {"ID", "TTL"}}; no TTL: the lease is gone */
	if (!json_object_object_get_ex(rep, "result", &res) || etcd_get_i64(res, "TTL", &ttl) < 0)
		return -EPROTO;
	return ttl > 0 ? 0 : -ENOENT;
}

int etcd_lease_revoke(struct etcd *e, int64_t id)
{
	_cleanup_json_ struct json_object *req = lease_req(id), *rep = NULL;

	return etcd_call(e, "/v3/lease/revoke", req, &rep);
}

/* ---- watch: a chunked stream of {"result": …} messages, one a line ---- */

int etcd_watch_open(struct etcd *e, const char *prefix, int64_t from_rev,
		    struct etcd_watch **ret)
{
	_cleanup_json_ struct json_object *req = json_object_new_object();
	struct json_object *create = etcd_range_prefix_req(prefix, false);
	struct etcd_watch *w = calloc(1, sizeof(*w));
	uint64_t deadline = now_usec() + (uint64_t)e->timeout_ms * 1000u;
	const char *body;
	int64_t clen;
	bool chunked;
	int status, r = -ECONNREFUSED;

	if (!w) {
		json_object_put(create);
		return -ENOMEM;
	}
	lines_init(&w->msgs, ETCD_MAX_BODY);
	if (e->user[0] && !e->token[0] && (r = authenticate(e)) < 0) {
		json_object_put(create);
		free(w);
		return r;
	}
	if (from_rev)
		json_object_object_add(create, "start_revision", json_object_new_int64(from_rev));
	json_object_object_add(req, "create_request", create);
	body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	for (size_t tries = 0; tries < e->n; tries++, e->cur = (e->cur + 1) % e->n) {
		w->c.fd = -1;
		r = conn_open_endpoint(e, &w->c, deadline);
		if (r == 0)
			r = send_request(e, &w->c, "/v3/watch", body, strlen(body), deadline);
		if (r == 0)
			r = read_head(&w->c, deadline, &status, &clen, &chunked);
		if (r == 0 && (status != 200 || !chunked))
			r = -EPROTO;
		if (r == 0)
			break;
		conn_close(&w->c);
	}
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	return 0;
}

int etcd_watch_fd(const struct etcd_watch *w)
{
	return w->c.fd;
}

/* Move what has arrived of the chunked body into the message framer. */
static int watch_decode(struct etcd_watch *w)
{
	for (;;) {
		size_t n, room;
		char *at;

		if (!w->left) {
			uint64_t size;
			int r;

			/* the CRLF ending the previous chunk's data came with it */
			if (w->c.len >= 2 && w->c.buf[0] == '\r' && w->c.buf[1] == '\n')
				conn_consume(&w->c, 2);
			r = chunk_head(&w->c, &size);
			if (r <= 0)
				return r;
			if (size == 0) {
				w->ended = true;
				return 0;
			}
			w->left = size;
		}
		n = MIN(w->left, w->c.len);
		if (!n)
			return 0;
		at = lines_room(&w->msgs, &room);
		if (!at)
			return -errno; /* -EMSGSIZE: a message over the limit fills it */
		n = MIN(n, room);
		memcpy(at, w->c.buf, n);
		lines_fill(&w->msgs, n);
		conn_consume(&w->c, n);
		w->left -= n;
	}
}

/* One whole message: 1, 0 none yet, -EPROTO (or -EMSGSIZE). */
static int watch_take(struct etcd_watch *w, struct json_object **ret)
{
	struct json_object *o = NULL, *res;
	char *line;
	size_t len;
	int r = lines_next(&w->msgs, &line, &len);

	if (r <= 0)
		return r;
	if (tagmem_msg_parse(line, len, ETCD_MAX_BODY, &o) < 0)
		return -EPROTO;
	if (!json_object_object_get_ex(o, "result", &res) ||
	    !json_object_is_type(res, json_type_object)) {
		json_object_put(o);
		return -EPROTO; /* {"error": …}: the watch ended */
	}
	*ret = json_object_get(res);
	json_object_put(o);
	return 1;
}

int etcd_watch_next(struct etcd_watch *w, int timeout_ms, struct json_object **ret)
{
	uint64_t deadline = now_usec() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000u;
	int r;

	for (;;) {
		r = watch_decode(w);
		if (r < 0)
			return r;
		r = watch_take(w, ret);
		if (r != 0)
			return r;
		if (w->ended)
			return -ECONNRESET;
		r = conn_fill(&w->c, ETCD_MAX_BODY + 16, deadline);
		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return r;
	}
}

void etcd_watch_close(struct etcd_watch *w)
{
	if (!w)
		return;
	conn_close(&w->c);
	lines_release(&w->msgs);
	free(w);
}
