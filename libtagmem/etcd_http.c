/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "etcd_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "etcd.h"
#include "util.h"

void conn_close(struct conn *c)
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

static int tcp_connect(struct conn *c, const char *host, const char *port, uint64_t deadline)
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

int conn_open(struct conn *c, const char *host, const char *port, SSL_CTX *tls,
	      uint64_t deadline)
{
	int r = tcp_connect(c, host, port, deadline);

	if (r == 0 && tls) {
		r = tls_start(c, tls, host, deadline);
		if (r < 0)
			conn_close(c);
	}
	return r;
}

int conn_write(struct conn *c, const char *data, size_t len, uint64_t deadline)
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
int conn_fill(struct conn *c, size_t limit, uint64_t deadline)
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

void conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	if (c->buf)
		c->buf[c->len] = '\0';
}

/* The response head: status, and how the body comes (Content-Length, or chunked). */
int read_head(struct conn *c, uint64_t deadline, int *status, int64_t *clen,
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
int chunk_head(struct conn *c, uint64_t *size)
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
int read_chunked(struct conn *c, uint64_t deadline, char **body, size_t *blen)
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

int read_length(struct conn *c, uint64_t deadline, size_t clen, char **body)
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

