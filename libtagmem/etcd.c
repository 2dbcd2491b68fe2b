/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tagmem.h"
#include "util.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_MAX_HEADERS 16384

/* A connection (TLS when ssl is set), and the bytes read from it not yet used. */
struct conn {
	int fd;
	SSL *ssl;
	char *buf;
	size_t len, cap;
};

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
	char *msg;         /* decoded bytes of the stream not yet split into messages */
	size_t mlen, mcap;
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

static void conn_close(struct conn *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
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

/* ---- the connection ---- */

static int left_ms(uint64_t deadline)
{
	uint64_t now = now_usec();

	return now >= deadline ? 0 : (int)((deadline - now + 999) / 1000);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&pfd, 1, left_ms(deadline));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* What a TLS call that could not finish waits for: -EAGAIN with *events set, or -EPROTO. */
static int tls_wait(struct conn *c, int n, short *events)
{
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ: *events = POLLIN; return -EAGAIN;
	case SSL_ERROR_WANT_WRITE: *events = POLLOUT; return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN: return -ECONNRESET;
	case SSL_ERROR_SYSCALL: return errno ? -errno : -ECONNRESET;
	default: return -EPROTO;
	}
}

/* Send or receive what can be now: bytes, or -EAGAIN with what to poll for. */
static ssize_t io_send(struct conn *c, const char *data, size_t len, short *events)
{
	ssize_t n;

	*events = POLLOUT;
	if (c->ssl) {
		int k = SSL_write(c->ssl, data, (int)MIN(len, (size_t)INT_MAX));
		return k > 0 ? k : tls_wait(c, k, events);
	}
	n = send(c->fd, data, len, MSG_NOSIGNAL);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

static ssize_t io_recv(struct conn *c, char *buf, size_t len, short *events)
{
	ssize_t n;

	*events = POLLIN;
	if (c->ssl) {
		int k = SSL_read(c->ssl, buf, (int)MIN(len, (size_t)INT_MAX));
		return k > 0 ? k : tls_wait(c, k, events);
	}
	n = recv(c->fd, buf, len, 0);
	return n < 0 ? (errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno) : n;
}

/* TLS over the connected socket: the handshake, and the server's name or address checked
 * against its certificate. */
static int tls_start(struct conn *c, SSL_CTX *ctx, const char *host, uint64_t deadline)
{
	X509_VERIFY_PARAM *param;
	unsigned char addr[16];
	short events;
	int r;

	c->ssl = SSL_new(ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return -ENOMEM;
	param = SSL_get0_param(c->ssl);
	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		r = X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		r = X509_VERIFY_PARAM_set1_host(param, host, 0) && SSL_set_tlsext_host_name(c->ssl, host);
	if (r != 1)
		return -EINVAL;
	for (;;) {
		int k = SSL_connect(c->ssl);

		if (k == 1)
			return 0;
		r = tls_wait(c, k, &events);
		if (r != -EAGAIN)
			return SSL_get_verify_result(c->ssl) != X509_V_OK ? -EKEYREJECTED : r;
		r = wait_fd(c->fd, events, deadline);
		if (r < 0)
			return r;
	}
}

static int conn_open(struct conn *c, const char *host, const char *port, uint64_t deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int fd = -1, r, err = 0;
	socklen_t len = sizeof(err);

	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0)
		return -EHOSTUNREACH;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	r = connect(fd, res->ai_addr, res->ai_addrlen) < 0 ? -errno : 0;
	if (r == -EINPROGRESS) {
		r = wait_fd(fd, POLLOUT, deadline);
		if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
			r = -err;
	}
out:
	freeaddrinfo(res);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	c->fd = fd;
	c->len = 0;
	return 0;
}

/* The endpoint's connection: TCP, then TLS when it is https://. */
static int conn_open_endpoint(struct etcd *e, struct conn *c, uint64_t deadline)
{
	int r = conn_open(c, e->host[e->cur], e->port[e->cur], deadline);

	if (r == 0 && e->tls) {
		r = tls_start(c, e->tls, e->host[e->cur], deadline);
		if (r < 0)
			conn_close(c);
	}
	return r;
}

static int conn_write(struct conn *c, const char *data, size_t len, uint64_t deadline)
{
	while (len) {
		short events;
		ssize_t n = io_send(c, data, len, &events);

		if (n == -EAGAIN) {
			int r = wait_fd(c->fd, events, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* More bytes into c->buf, before the deadline; -ECONNRESET at end of stream. */
static int conn_fill(struct conn *c, size_t limit, uint64_t deadline)
{
	ssize_t n;
	int r;

	if (c->cap - c->len < 4096) {
		size_t nc = c->cap ? c->cap * 2 : 16384;
		char *p;

		if (c->len >= limit)
			return -EMSGSIZE;
		p = realloc(c->buf, nc + 1);
		if (!p)
			return -ENOMEM;
		c->buf = p;
		c->cap = nc;
	}
	for (;;) {
		short events;

		n = io_recv(c, c->buf + c->len, c->cap - c->len, &events);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			return 0;
		}
		if (n == 0)
			return -ECONNRESET;
		if (n != -EAGAIN)
			return (int)n;
		r = wait_fd(c->fd, events, deadline);
		if (r < 0)
			return r;
	}
}

static void conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	if (c->buf)
		c->buf[c->len] = '\0';
}

/* The response head: status, and how the body comes (Content-Length, or chunked). */
static int read_head(struct conn *c, uint64_t deadline, int *status, int64_t *clen,
		     bool *chunked)
{
	char *end;
	int r;

	while (!c->buf || !(end = strstr(c->buf, "\r\n\r\n"))) {
		r = conn_fill(c, ETCD_MAX_HEADERS, deadline);
		if (r < 0)
			return r == -EMSGSIZE ? -EPROTO : r;
	}
	*end = '\0';
	if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
		return -EPROTO;
	*clen = -1;
	*chunked = false;
	for (char *line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
		unsigned long long v;

		if (!strncasecmp(line + 2, "Content-Length:", 15) &&
		    sscanf(line + 17, " %llu", &v) == 1 && v <= ETCD_MAX_BODY)
			*clen = (int64_t)v;
		else if (!strncasecmp(line + 2, "Content-Length:", 15))
			return -EMSGSIZE;
		if (!strncasecmp(line + 2, "Transfer-Encoding:", 18) && strstr(line, "chunked"))
			*chunked = true;
	}
	conn_consume(c, (size_t)(end + 4 - c->buf));
	return *clen < 0 && !*chunked ? -EPROTO : 0;
}

/*
 * One chunk's size line at the head of c->buf: its size, and its header removed. 1 got it,
 * 0 not all here yet, -EPROTO malformed.
 */
static int chunk_head(struct conn *c, uint64_t *size)
{
	char *nl = c->buf ? strstr(c->buf, "\r\n") : NULL;
	char *endp;

	if (!nl)
		return c->len > 64 ? -EPROTO : 0;
	errno = 0;
	*size = strtoull(c->buf, &endp, 16);
	if (endp == c->buf || errno || *size > ETCD_MAX_BODY)
		return -EPROTO;
	conn_consume(c, (size_t)(nl + 2 - c->buf));
	return 1;
}

/* A whole chunked body into *body (NUL-terminated). */
static int read_chunked(struct conn *c, uint64_t deadline, char **body, size_t *blen)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	uint64_t size;
	int r;

	for (;;) {
		while ((r = chunk_head(c, &size)) == 0)
			if ((r = conn_fill(c, ETCD_MAX_HEADERS, deadline)) < 0)
				return r;
		if (r < 0)
			return r;
		while (c->len < size + 2)
			if ((r = conn_fill(c, ETCD_MAX_BODY + 16, deadline)) < 0)
				return r;
		if (len + size > ETCD_MAX_BODY)
			return -EMSGSIZE;
		char *p = realloc(out, len + size + 1);
		if (!p)
			return -ENOMEM;
		out = p;
		memcpy(out + len, c->buf, size);
		len += size;
		out[len] = '\0';
		conn_consume(c, size + 2); /* the data and its CRLF */
		if (size == 0)
			break; /* the last chunk (etcd sends no trailers) */
	}
	*body = TAKE_PTR(out);
	*blen = len;
	return 0;
}

static int read_length(struct conn *c, uint64_t deadline, size_t clen, char **body)
{
	int r;

	while (c->len < clen)
		if ((r = conn_fill(c, clen + 1, deadline)) < 0)
			return r;
	*body = malloc(clen + 1);
	if (!*body)
		return -ENOMEM;
	memcpy(*body, c->buf, clen);
	(*body)[clen] = '\0';
	conn_consume(c, clen);
	return 0;
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

/* Move what has arrived of the chunked body into w->msg. */
static int watch_decode(struct etcd_watch *w)
{
	for (;;) {
		size_t n;

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
		if (w->mlen + n > ETCD_MAX_BODY)
			return -EMSGSIZE;
		if (w->mlen + n + 1 > w->mcap) {
			size_t nc = MAX(w->mcap * 2, w->mlen + n + 1);
			char *p = realloc(w->msg, nc);
			if (!p)
				return -ENOMEM;
			w->msg = p;
			w->mcap = nc;
		}
		memcpy(w->msg + w->mlen, w->c.buf, n);
		w->mlen += n;
		w->msg[w->mlen] = '\0';
		conn_consume(&w->c, n);
		w->left -= n;
	}
}

/* One whole message from w->msg: 1, 0 none yet, -EPROTO. */
static int watch_take(struct etcd_watch *w, struct json_object **ret)
{
	char *nl = w->msg ? memchr(w->msg, '\n', w->mlen) : NULL;
	struct json_object *o = NULL, *res;
	size_t len;

	if (!nl)
		return 0;
	len = (size_t)(nl - w->msg);
	if (tagmem_msg_parse(w->msg, len, ETCD_MAX_BODY, &o) < 0) {
		memmove(w->msg, nl + 1, w->mlen - len - 1);
		w->mlen -= len + 1;
		return -EPROTO;
	}
	memmove(w->msg, nl + 1, w->mlen - len - 1);
	w->mlen -= len + 1;
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
	free(w->msg);
	free(w);
}
