/* Unit tests: the etcd client (libtagmem/etcd.c) against a fake etcd on loopback, which
 * answers each request with bytes the test chose: good replies, chunked ones, garbage. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "cluster.h"
#include "etcd.h"
#include "tagmem.h"
#include "util.h"

static int listener;
static const char *answer; /* what the fake etcd says to the next request */

/* Accept one connection at a time; answer each request (headers and body read) with answer. */
static void *fake_etcd(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(listener, NULL, NULL);
		char buf[8192];
		ssize_t n;

		if (c < 0)
			return NULL;
		while ((n = recv(c, buf, sizeof(buf) - 1, 0)) > 0) {
			buf[n] = '\0';
			if (!strstr(buf, "\r\n\r\n"))
				continue;
			if (send(c, answer, strlen(answer), MSG_NOSIGNAL) < 0)
				break;
		}
		close(c);
	}
}

static char url[64];

static int setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	pthread_t t;

	(void)state;
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 4) < 0 ||
	    getsockname(listener, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	return pthread_create(&t, NULL, fake_etcd, NULL) || pthread_detach(t);
}

static int call(const char *reply, struct json_object **ret)
{
	_cleanup_json_ struct json_object *req = json_object_new_object();
	struct etcd *e;
	int r;

	answer = reply;
	assert_int_equal(etcd_open(url, 500, &e), 0);
	r = etcd_call(e, "/v3/kv/range", req, ret);
	etcd_close(e);
	return r;
}

static void endpoints(void **state)
{
	struct etcd *e;

	(void)state;
	assert_int_equal(etcd_open("http://a:1,http://b:2", 100, &e), 0);
	assert_string_equal(etcd_endpoint(e), "http://a:1");
	etcd_close(e);
	assert_int_equal(etcd_open("https://a:1", 100, &e), -EKEYREJECTED); /* TLS, no CA */
	assert_int_equal(etcd_open("https://a:1,http://b:2", 100, &e), -EINVAL); /* one scheme */
	assert_int_equal(etcd_open_as("https://a:1", &(struct etcd_credentials){ .ca = "/nonexistent" },
				       100, &e), -EKEYREJECTED);
	assert_int_equal(etcd_open("http://a", 100, &e), -EINVAL);
	assert_int_equal(etcd_open("http://a:x1", 100, &e), -EINVAL);
	assert_int_equal(etcd_open("", 100, &e), -EINVAL);
}

static void replies(void **state)
{
	struct json_object *o = NULL;

	(void)state;
	assert_int_equal(call("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":\"b\"}\r\n",
			      &o), 0);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "a")), "b");
	json_object_put(o);
	/* chunked, in two chunks */
	assert_int_equal(call("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "4\r\n{\"x\"\r\n5\r\n:12}\n\r\n0\r\n\r\n", &o), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(o, "x")), 12);
	json_object_put(o);
	/* etcd's refusal: -EREMOTEIO, with what it said */
	assert_int_equal(call("HTTP/1.1 400 Bad Request\r\nContent-Length: 38\r\n\r\n"
			      "{\"error\":\"bad\",\"code\":3,\"message\":\"x\"}", &o), -EREMOTEIO);
	assert_non_null(json_object_object_get(o, "error"));
	json_object_put(o);
}

static void garbage(void **state)
{
	struct json_object *o = (void *)1;

	(void)state;
	assert_int_equal(call("SMTP ready\r\n\r\n", &o), -EPROTO);
	assert_null(o);
	assert_int_equal(call("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", &o), -EPROTO);
	assert_int_equal(call("HTTP/1.1 200 OK\r\n\r\n{}", &o), -EPROTO); /* no length */
	assert_int_equal(call("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{}", &o),
			 -EMSGSIZE);
	assert_int_equal(call("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "zz\r\n{}\r\n0\r\n\r\n", &o), -EPROTO);
	/* a body cut short: the connection closes before it is whole */
	assert_true(call("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", &o) < 0);
}

/* A watch's stream: messages split across chunks, two in one, then its end. */
static void watch_stream(void **state)
{
	static char stream[512];
	const char *m1 = "{\"result\":{\"created\":true}}\n";
	const char *m2 = "{\"result\":{\"events\":[]}}\n{\"result\":{\"events\":[1]}}\n";
	struct etcd_watch *w;
	struct json_object *res;
	struct etcd *e;
	int n;

	(void)state;
	n = snprintf(stream, sizeof(stream), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "%x\r\n%.10s\r\n%zx\r\n%s\r\n%zx\r\n%s\r\n0\r\n\r\n", 10, m1,
		     strlen(m1) - 10, m1 + 10, strlen(m2), m2);
	assert_true(n > 0 && (size_t)n < sizeof(stream));
	answer = stream;
	assert_int_equal(etcd_open(url, 500, &e), 0);
	assert_int_equal(etcd_watch_open(e, "/tagmem/v1/", 0, &w), 0);
	assert_int_equal(etcd_watch_next(w, 500, &res), 1);
	assert_true(json_object_get_boolean(json_object_object_get(res, "created")));
	json_object_put(res);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(etcd_watch_next(w, 500, &res), 1);
		assert_int_equal(json_object_array_length(json_object_object_get(res, "events")),
				 (size_t)k);
		json_object_put(res);
	}
	assert_int_equal(etcd_watch_next(w, 500, &res), -ECONNRESET); /* the last chunk */
	etcd_watch_close(w);
	etcd_close(e);
}

static void base64(void **state)
{
	static const char *const samples[] = { "", "f", "fo", "foo", "foob", "/tagmem/v1/x" };
	char *out;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		struct json_object *s = etcd_b64(samples[i], strlen(samples[i]));

		assert_int_equal(etcd_unb64(s, &out, &len), 0);
		assert_int_equal(len, strlen(samples[i]));
		assert_string_equal(out, samples[i]);
		free(out);
		json_object_put(s);
	}
	static const char *const bad[] = { "a", "ab=c", "====", "a*==", "Zm9v=mFy" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *s = json_object_new_string(bad[i]);
		assert_int_equal(etcd_unb64(s, &out, &len), -EBADMSG);
		json_object_put(s);
	}
}

static void records(void **state)
{
	struct json_object *entry = json_tokener_parse(
		"{\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"state\":\"claimed\",\"size\":2097152,"
		"\"shared\":true,\"device\":\"dax1.0\",\"path\":\"/dev/dax1.0\",\"extents\":1,"
		"\"owner\":{\"uid\":1000,\"pid\":42,\"name\":\"vm1\",\"since\":1}}");
	struct json_object *bad = json_tokener_parse("{\"tag\":\"not-a-uuid\"}");
	char *tag, *rec;

	(void)state;
	assert_int_equal(directory_record("h1", entry, &tag, &rec), 0);
	assert_string_equal(tag, "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10");
	/* who, not which process; this host's names */
	assert_string_equal(rec, "{\"tag\":\"6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10\",\"host\":\"h1\","
			    "\"state\":\"claimed\",\"size\":2097152,\"shared\":true,\"device\":"
			    "\"dax1.0\",\"path\":\"/dev/dax1.0\",\"owner\":{\"uid\":1000,\"name\":"
			    "\"vm1\"}}");
	free(tag);
	free(rec);
	assert_int_equal(directory_record("h1", bad, &tag, &rec), -EINVAL);
	json_object_put(entry);
	json_object_put(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(endpoints),
		cmocka_unit_test(replies),
		cmocka_unit_test(garbage),
		cmocka_unit_test(watch_stream),
		cmocka_unit_test(base64),
		cmocka_unit_test(records),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
