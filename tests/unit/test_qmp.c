/* Unit tests: the QMP client against a scripted fake server (a thread on a Unix socket). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fixture.h"
#include "qmp.h"

#define GREETING "{\"QMP\":{\"version\":{\"qemu\":{\"major\":7,\"minor\":2}},\"capabilities\":[]}}\n"

/* A script: lines to send; "<id>" is replaced by the id of the last command read; "READ"
 * reads one command; "CLOSE" ends the connection; "STALL" waits until the client leaves. */
struct script {
	const char *steps[16];
	char path[108];
	int lfd;
};

static void *server(void *arg)
{
	struct script *s = arg;
	char buf[8192], last_id[32] = "0";
	int fd = accept(s->lfd, NULL, NULL);

	for (int i = 0; fd >= 0 && s->steps[i]; i++) {
		const char *st = s->steps[i];

		if (!strcmp(st, "READ")) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			struct json_object *o, *id;
			if (n <= 0)
				break;
			buf[n] = '\0';
			o = json_tokener_parse(buf);
			if (o && json_object_object_get_ex(o, "id", &id))
				snprintf(last_id, sizeof(last_id), "%s", json_object_get_string(id));
			json_object_put(o);
		} else if (!strcmp(st, "CLOSE")) {
			break;
		} else if (!strcmp(st, "STALL")) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
		} else {
			char out[8192];
			const char *p = strstr(st, "<id>");
			if (p) {
				snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - st), st, last_id, p + 4);
				st = out;
			}
			if (write(fd, st, strlen(st)) < 0) /* long steps go out whole */
				break;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static pthread_t start(struct script *s, char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pthread_t th;

	snprintf(s->path, sizeof(s->path), "%s/qmp.sock", dir);
	strcpy(sa.sun_path, s->path);
	unlink(s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 1), 0);
	pthread_create(&th, NULL, server, s);
	return th;
}

static void finish(struct script *s, pthread_t th)
{
	pthread_join(th, NULL);
	close(s->lfd);
}

static void happy_path_with_events(void **state)
{
	char *dir = fixture_dir();
	struct script s = { .steps = {
		GREETING, "READ", "{\"return\":{},\"id\":<id>}\n", "READ",
		"{\"event\":\"RESUME\",\"timestamp\":{\"seconds\":1,\"microseconds\":2}}\n",
		"{\"return\":{\"stale\":true},\"id\":999}\n",
		"{\"return\":{\"a\":1},\"id\":<id>}\n", "STALL", NULL } };
	pthread_t th = start(&s, dir);
	struct json_object *ret = NULL;
	struct qmp *q;

	assert_int_equal(qmp_connect(s.path, 2000, &q), 0);
	assert_int_equal(qmp_execute(q, "query-x", NULL, 2000, &ret, NULL, 0, NULL, 0), 0);
	assert_int_equal(json_object_get_int(json_object_object_get(ret, "a")), 1);
	json_object_put(ret);
	qmp_close(q);
	finish(&s, th);
	fixture_rm(dir);
	free(dir);
}

static void error_class(void **state)
{
	char *dir = fixture_dir(), cls[32], desc[64];
	struct script s = { .steps = {
		GREETING, "READ", "{\"return\":{},\"id\":<id>}\n", "READ",
		"{\"error\":{\"class\":\"GenericError\",\"desc\":\"no free slot\"},\"id\":<id>}\n",
		"STALL", NULL } };
	pthread_t th = start(&s, dir);
	struct qmp *q;

	assert_int_equal(qmp_connect(s.path, 2000, &q), 0);
	assert_int_equal(qmp_execute(q, "device_add", NULL, 2000, NULL, cls, sizeof(cls), desc,
				     sizeof(desc)), -EREMOTEIO);
	assert_string_equal(cls, "GenericError");
	assert_string_equal(desc, "no free slot");
	qmp_close(q);
	finish(&s, th);
	fixture_rm(dir);
	free(dir);
}

static void peers_that_are_not_qemu(void **state)
{
	static const char *cases[][4] = {
		{ "hello there\n", "STALL", NULL },               /* not JSON */
		{ "{\"id\":null,\"error\":{\"code\":\"x\"}}\n", "STALL", NULL }, /* JSON, not QMP */
		{ "CLOSE", NULL },                                  /* closes at once */
		{ GREETING, "CLOSE", NULL },                        /* closes mid-negotiation */
	};
	static const int want[] = { -EPROTO, -EPROTO, -ECONNRESET, -ECONNRESET };
	char *dir = fixture_dir();
	struct qmp *q;

	for (unsigned i = 0; i < 4; i++) {
		struct script s = { 0 };
		for (unsigned k = 0; k < 4 && cases[i][k]; k++)
			s.steps[k] = cases[i][k];
		pthread_t th = start(&s, dir);
		assert_int_equal(qmp_connect(s.path, 2000, &q), want[i]);
		/* the server thread may wait for us to go: close our end by finishing */
		finish(&s, th);
	}
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/nothing.sock", dir);
	assert_true(qmp_connect(missing, 500, &q) < 0);
	fixture_rm(dir);
	free(dir);
}

static void timeouts_and_floods(void **state)
{
	char *dir = fixture_dir();
	static char flood[QMP_MAX_MESSAGE + 16];
	struct script s1 = { .steps = { "STALL", NULL } };  /* never greets */
	pthread_t th = start(&s1, dir);
	struct qmp *q;

	assert_int_equal(qmp_connect(s1.path, 200, &q), -ETIMEDOUT);
	finish(&s1, th);

	memset(flood, 'x', sizeof(flood) - 1);
	struct script s2 = { .steps = { flood, "STALL", NULL } }; /* no newline, ever */
	th = start(&s2, dir);
	assert_int_equal(qmp_connect(s2.path, 5000, &q), -EPROTO);
	finish(&s2, th);

	struct script s3 = { .steps = { GREETING, "READ", "{\"return\":{},\"id\":<id>}\n", "READ",
					"STALL", NULL } }; /* never answers the command */
	th = start(&s3, dir);
	assert_int_equal(qmp_connect(s3.path, 2000, &q), 0);
	assert_int_equal(qmp_execute(q, "object-add", NULL, 200, NULL, NULL, 0, NULL, 0), -ETIMEDOUT);
	qmp_close(q);
	finish(&s3, th);
	fixture_rm(dir);
	free(dir);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* the fake server writes to clients that have given up */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(happy_path_with_events),
		cmocka_unit_test(error_class),
		cmocka_unit_test(peers_that_are_not_qemu),
		cmocka_unit_test(timeouts_and_floods),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
