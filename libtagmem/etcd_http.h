/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The etcd client's transport (etcd_http.c): a TCP connection, TLS over it when asked, and the
 * HTTP/1.1 framing of etcd's gateway (a response's head, a body by length or chunked), each
 * step with a deadline. etcd.c speaks the API over it. Internal to libtagmem.
 */
#ifndef TAGMEM_ETCD_HTTP_H
#define TAGMEM_ETCD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define ETCD_MAX_HEADERS 16384

/* A connection (TLS when ssl is set), and the bytes read from it not yet used. */
struct conn {
	int fd;
	SSL *ssl;
	char *buf;
	size_t len, cap;
};


/* Connect to host:port before the deadline, then TLS when tls is set (the server's name or
 * address checked against its certificate; -EKEYREJECTED if it does not verify). */
int conn_open(struct conn *c, const char *host, const char *port, SSL_CTX *tls,
	      uint64_t deadline);
void conn_close(struct conn *c);
int conn_write(struct conn *c, const char *data, size_t len, uint64_t deadline);
/* More bytes into c->buf (NUL-terminated), growing it up to limit; -ECONNRESET at the end. */
int conn_fill(struct conn *c, size_t limit, uint64_t deadline);
void conn_consume(struct conn *c, size_t n);
/* The response head: status, Content-Length (-1: none) or chunked. */
int read_head(struct conn *c, uint64_t deadline, int *status, int64_t *clen, bool *chunked);
/* One chunk's size line at the head of c->buf: 1 got it, 0 not all here yet, -EPROTO. */
int chunk_head(struct conn *c, uint64_t *size);
/* A whole chunked body, or one of clen bytes, into *body (NUL-terminated, to free). */
int read_chunked(struct conn *c, uint64_t deadline, char **body, size_t *blen);
int read_length(struct conn *c, uint64_t deadline, size_t clen, char **body);

#endif
