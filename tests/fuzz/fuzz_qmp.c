/* libFuzzer target: what a QEMU monitor (or whatever answers on its socket) sends back: the
 * greeting, replies and events, all at once, then end of stream. */
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *ret = NULL;
	struct qmp *q;
	char cls[64], desc[160];
	int sv[2];

	if (size > 65536 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0; /* a socket buffer holds it all: nothing here blocks */
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (qmp_open_fd(sv[0], 100, &q) == 0) {
		qmp_execute(q, "qom-get", NULL, 100, &ret, cls, sizeof(cls), desc, sizeof(desc));
		json_object_put(ret);
		qmp_poll_events(q, 0);
		qmp_close(q);
	}
	close(sv[1]);
	return 0;
}
