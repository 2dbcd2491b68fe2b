/* Unit tests: brokerd/api without a server. Requests go in as lines from a host client
 * (api_host_request) or a guest's channel (api_guest_request); a recording transport
 * stands in for the server and the channels, as test_core's callbacks stand in for the
 * registry. Each op's refusals and replies, in both protocols, are checked as the peer
 * would read them. The core is real, its capacity reconciled in from a view; the guest
 * channels are real sockets in a temporary directory (nothing connects to them). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "api.h"
#include "backend.h"
#include "core.h"
#include "guests.h"
#include "loop.h"
#include "view.h"

#define DCD "6f1c2a9e-0b7d-4c1e-9a51-3d2f8e7b4c10"
#define OTHER "11111111-2222-4333-8444-555555555555"
#define MB (1ull << 20)
#define DAEMON_UID 4242
#define ALICE 1000
#define BOB 1001

/* What went out, as the peers would read it. */
struct sent {
	struct json_object *client[64];  /* to host clients, in order */
	uint64_t serial[64];
	uint64_t gen[64];
	unsigned nclient;
	struct json_object *guest[64];   /* to guests */
	unsigned nguest;
	unsigned events, subscribed;
};

static struct sent sent;
static struct broker_settings settings;
static struct api api;
static struct loop *loop;
static char guest_dir[] = "/tmp/tagmem-test-api.XXXXXX";
static uint64_t persists;

static void rec_client(void *data, uint64_t serial, struct json_object *msg, uint64_t gen)
{
	(void)data;
	assert_true(sent.nclient < 64);
	sent.serial[sent.nclient] = serial;
	sent.gen[sent.nclient] = gen;
	sent.client[sent.nclient++] = msg;
}

static void rec_client_raw(void *data, uint64_t serial, char *line, size_t len, uint64_t gen)
{
	rec_client(data, serial, json_tokener_parse(line), gen);
	(void)len;
	free(line);
}

static bool rec_subscribed(void *data, uint64_t serial)
{
	(void)data;
	(void)serial;
	return false;
}

static void rec_subscribe(void *data, uint64_t serial, bool on)
{
	(void)data;
	(void)serial;
	sent.subscribed += on;
}

static void rec_guest(void *data, uid_t uid, const char *vm, struct json_object *msg)
{
	(void)data;
	(void)uid;
	(void)vm;
	assert_true(sent.nguest < 64);
	sent.guest[sent.nguest++] = msg;
}

static unsigned rec_subscribers(void *data)
{
	(void)data;
	return sent.subscribed;
}

static void rec_broadcast(void *data, const char *line, size_t len)
{
	(void)data;
	(void)line;
	(void)len;
	sent.events++;
}

static void rec_counts(void *data, unsigned *clients, size_t *queued)
{
	(void)data;
	*clients = 1;
	*queued = 0;
}

static void sent_clear(void)
{
	for (unsigned i = 0; i < sent.nclient; i++)
		json_object_put(sent.client[i]);
	for (unsigned i = 0; i < sent.nguest; i++)
		json_object_put(sent.guest[i]);
	memset(&sent, 0, sizeof(sent));
}

static uint64_t on_persist(void *ud)
{
	(void)ud;
	return ++persists;
}

static int on_materialise(void *ud, const struct tag *t, struct core_device *ret)
{
	(void)ud;
	(void)t;
	snprintf(ret->name, sizeof(ret->name), "dax9.0");
	snprintf(ret->path, sizeof(ret->path), "/dev/dax9.0");
	return 1;
}

static int on_destroy(void *ud, const struct tag *t)
{
	(void)ud;
	(void)t;
	return 1;
}

static const char *be_name(struct backend *be)
{
	(void)be;
	return "/";
}

static const struct backend_ops test_backend_ops = { .name = "test", .root = be_name };
static struct backend test_backend = { .ops = &test_backend_ops };

static void on_request(void *ud, struct guest_vm *g, const char *line, size_t len)
{
	api_guest_request(ud, g, line, len);
}

static bool on_in_use(void *ud, uid_t uid, const char *vm)
{
	return api_guest_in_use(ud, uid, vm);
}

static void on_connected(void *ud, struct guest_vm *g)
{
	api_guest_connected(ud, g);
}

static int setup(void **state)
{
	const struct core_callbacks ccb = {
		.userdata = &api, .tag_event = api_tag_event, .persist = on_persist,
		.materialise = on_materialise, .destroy = on_destroy,
	};
	const struct guest_callbacks gcb = {
		.userdata = &api, .connected = on_connected, .request = on_request,
		.in_use = on_in_use,
	};
	const struct guest_limits lim = { .max_line = 4096, .max_output = 1 << 16, .rate = 100,
					  .burst = 200, .max_vms = 8, .max_vms_per_uid = 4,
					  .idle_ms = 600000 };
	struct view_tag vt[2] = {
		{ .size = 64 * MB, .nextents = 1 }, { .size = 64 * MB, .nextents = 1 },
	};
	struct view v = { .tags = vt, .n = 2, .cap = 2 };

	(void)state;
	broker_settings_defaults(&settings);
	memset(&api, 0, sizeof(api));
	api.settings = &settings;
	api.uid = DAEMON_UID;
	api.backend = &test_backend;
	api.pause_marks_fd = -1;
	api.psi_fd = -1;
	api.transport = (struct api_transport){
		.client = rec_client, .client_raw = rec_client_raw,
		.client_subscribed = rec_subscribed, .subscribe = rec_subscribe,
		.guest = rec_guest, .subscribers = rec_subscribers, .broadcast = rec_broadcast,
		.counts = rec_counts,
	};
	assert_int_equal(loop_new(&loop), 0);
	api.loop = loop;
	assert_int_equal(core_new(&ccb, 100, &api.core), 0);
	assert_non_null(mkdtemp(guest_dir));
	assert_int_equal(guests_new(loop, guest_dir, &lim, &gcb, &api.guests), 0);
	tagmem_tag_parse(DCD, &vt[0].tag);
	tagmem_tag_parse(OTHER, &vt[1].tag);
	core_reconcile(api.core, &v, "/", CORE_VIEW_COMPLETE);
	core_restore_done(api.core);
	sent_clear();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sent_clear();
	guests_free(api.guests);
	core_free(api.core);
	loop_free(loop);
	rmdir(guest_dir);
	strcpy(guest_dir, "/tmp/tagmem-test-api.XXXXXX");
	return 0;
}

/* One request line from host client 7 of uid: the one reply it got. */
static struct json_object *host(uid_t uid, const char *line)
{
	unsigned before = sent.nclient;

	api_host_request(&api, uid, 100, 7, line, strlen(line));
	assert_int_equal(sent.nclient, before + 1);
	assert_int_equal(sent.serial[before], 7);
	return sent.client[before];
}

static struct json_object *guest(struct guest_vm *g, const char *line)
{
	unsigned before = sent.nguest;

	api_guest_request(&api, g, line, strlen(line));
	assert_int_equal(sent.nguest, before + 1);
	return sent.guest[before];
}

static const char *str(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = json_object_object_get(o, k);
	return o ? json_object_get_string(o) : NULL;
}

/* {"id": id, "error": {"code": code, "message": …containing want}} and nothing else. */
static void is_error(struct json_object *m, const char *id, const char *code, const char *want)
{
	assert_string_equal(str(m, "id") ? str(m, "id") : "null", id);
	assert_string_equal(str(m, "error.code"), code);
	assert_non_null(strstr(str(m, "error.message"), want));
	assert_int_equal(json_object_object_length(json_object_object_get(m, "error")), 2);
	assert_null(json_object_object_get(m, "result"));
}

static void hello_lists_each_peers_ops(void **state)
{
	struct guest_vm *g;
	struct json_object *m, *ops;

	(void)state;
	m = host(ALICE, "{\"id\":1,\"op\":\"hello\"}");
	ops = json_object_object_get(json_object_object_get(m, "result"), "ops");
	assert_string_equal(str(m, "result.backend"), "test");
	assert_non_null(strstr(json_object_to_json_string(ops), "\"flush\""));
	assert_null(strstr(json_object_to_json_string(ops), "\"slots\""));
	assert_null(strstr(json_object_to_json_string(ops), "reclaim_ranges"));
	assert_int_equal(guests_open(api.guests, ALICE, "vm1", &g), 0);
	m = guest(g, "{\"id\":\"h\",\"op\":\"hello\"}");
	assert_string_equal(str(m, "id"), "h");
	assert_string_equal(str(m, "result.vm"), "vm1");
	assert_string_equal(json_object_to_json_string_ext(
		json_object_object_get(json_object_object_get(m, "result"), "ops"),
		JSON_C_TO_STRING_PLAIN), "[\"hello\",\"slots\",\"flush\",\"reclaim_ranges\"]");
}

static void framing_errors(void **state)
{
	struct guest_vm *g;
	uint64_t errors = api.errors;

	(void)state;
	is_error(host(ALICE, "{not json"), "null", "parse_error", "not valid JSON");
	is_error(host(ALICE, "{\"op\":\"hello\"}"), "null", "invalid_request", "needs an \"id\"");
	is_error(host(ALICE, "{\"id\":2}"), "2", "invalid_request", "\"op\" string");
	is_error(host(ALICE, "{\"id\":3,\"op\":\"slots\"}"), "3", "unknown_op", "\"hello\" lists");
	assert_int_equal(api.errors, errors + 4);
	assert_int_equal(guests_open(api.guests, ALICE, "vm1", &g), 0);
	is_error(guest(g, "[1,2]"), "null", "bad_request", "one JSON object");
	/* a host op on the guest channel does not exist there */
	is_error(guest(g, "{\"id\":4,\"op\":\"claim\",\"tag\":\"" DCD "\"}"), "4", "unknown_op",
		 "guest channel has no such op");
	/* a structured id is never echoed back */
	assert_string_equal(str(guest(g, "{\"id\":{\"a\":1},\"op\":\"hello\"}"), "result.vm"),
			    "vm1");
	assert_int_equal(api.errors, errors + 4); /* guests' errors are theirs */
}

static void claim_and_release(void **state)
{
	struct json_object *m;

	(void)state;
	m = host(ALICE, "{\"id\":1,\"op\":\"claim\",\"tag\":\"" DCD "\",\"name\":\"app\"}");
	assert_string_equal(str(m, "result.owner.name"), "app");
	assert_true(sent.gen[0] > 0); /* held until the registry has it */
	is_error(host(BOB, "{\"id\":2,\"op\":\"claim\",\"tag\":\"" DCD "\",\"name\":\"x\"}"), "2",
		 "busy", "claimed by uid 1000");
	is_error(host(BOB, "{\"id\":3,\"op\":\"release\",\"tag\":\"" DCD "\"}"), "3",
		 "permission_denied", "only that user or root");
	m = host(ALICE, "{\"id\":4,\"op\":\"release\",\"tag\":\"" DCD "\"}");
	assert_string_equal(str(m, "result.tag"), DCD);
	is_error(host(ALICE, "{\"id\":5,\"op\":\"lookup\",\"tag\":\"22222222-2222-4333-8444-"
			     "555555555555\"}"), "5", "not_found", "no capacity carries");
	is_error(host(ALICE, "{\"id\":6,\"op\":\"claim\",\"tag\":\"nope\"}"), "6",
		 "invalid_argument", "UUID string");
}

static void qemu_args_plan_and_refusals(void **state)
{
	struct json_object *m, *args;

	(void)state;
	is_error(host(ALICE, "{\"id\":1,\"op\":\"qemu_args\",\"vm\":\"a/b\",\"tags\":[]}"), "1",
		 "invalid_argument", "letters, digits");
	is_error(host(ALICE, "{\"id\":2,\"op\":\"qemu_args\",\"vm\":\"v\",\"channel\":false,"
			     "\"tags\":[\"" DCD "\",\"" DCD "\"]}"), "2", "invalid_argument",
		 "listed twice");
	is_error(host(ALICE, "{\"id\":3,\"op\":\"qemu_args\",\"vm\":\"v\",\"mode\":"
			     "\"virtio-pmem\",\"tags\":[\"" DCD "\"]}"), "3", "invalid_argument",
		 "virtio-pmem is for images");
	/* refused requests changed nothing: the tag is nobody's, and no channel was opened */
	assert_false(core_find(api.core, &(tagmem_tag){ 0 }));
	{
		tagmem_tag t;

		tagmem_tag_parse(DCD, &t);
		assert_false(core_find(api.core, &t)->claimed);
	}
	assert_null(guests_find(api.guests, ALICE, "v"));
	m = host(ALICE, "{\"id\":4,\"op\":\"qemu_args\",\"vm\":\"v\",\"tags\":[\"" DCD "\"]}");
	assert_string_equal(str(m, "result.vm"), "v");
	args = json_object_object_get(json_object_object_get(m, "result"), "args");
	assert_non_null(strstr(json_object_to_json_string(args), "nvdimm,id="));
	assert_non_null(strstr(json_object_to_json_string(args), "tagmem.nvdimm.0=" DCD));
	assert_non_null(guests_find(api.guests, ALICE, "v"));
	/* another uid cannot have it, nor the same uid for another VM */
	is_error(host(BOB, "{\"id\":5,\"op\":\"qemu_args\",\"vm\":\"v\",\"tags\":[\"" DCD "\"]}"),
		 "5", "busy", "claimed by uid 1000");
}

static void guest_sees_only_its_vm(void **state)
{
	struct guest_vm *g;
	struct json_object *m;

	(void)state;
	host(ALICE, "{\"id\":1,\"op\":\"qemu_args\",\"vm\":\"v\",\"tags\":[\"" DCD "\"]}");
	host(BOB, "{\"id\":2,\"op\":\"qemu_args\",\"vm\":\"w\",\"tags\":[\"" OTHER "\"]}");
	g = guests_find(api.guests, ALICE, "v");
	assert_non_null(g);
	m = guest(g, "{\"id\":1,\"op\":\"slots\"}");
	assert_string_equal(json_object_to_json_string_ext(
		json_object_object_get(json_object_object_get(m, "result"), "slots"),
		JSON_C_TO_STRING_PLAIN), "[{\"slot\":0,\"tag\":\"" DCD "\"}]");
	/* another VM's tag is not there at all for this guest, whether it exists or not */
	is_error(guest(g, "{\"id\":2,\"op\":\"flush\",\"tag\":\"" OTHER "\"}"), "2", "not_found",
		 "no tag of this VM");
	is_error(guest(g, "{\"id\":3,\"op\":\"flush\",\"tag\":\"33333333-2222-4333-8444-"
			  "555555555555\"}"), "3", "not_found", "no tag of this VM");
	/* its own DCD tag has no page cache to flush */
	is_error(guest(g, "{\"id\":4,\"op\":\"flush\",\"tag\":\"" DCD "\"}"), "4", "not_supported",
		 "only images");
	is_error(guest(g, "{\"id\":5,\"op\":\"reclaim_ranges\",\"request\":9,\"ranges\":[]}"), "5",
		 "invalid_argument", "no reclaim of this VM");
}

static void privileged_ops(void **state)
{
	(void)state;
	is_error(host(ALICE, "{\"id\":1,\"op\":\"vm_save\",\"vm\":\"v\",\"path\":\"/tmp/x\"}"), "1",
		 "permission_denied", "only root");
	is_error(host(0, "{\"id\":2,\"op\":\"vm_save\",\"vm\":\"../v\",\"path\":\"/tmp/x\"}"), "2",
		 "invalid_argument", "letters, digits");
	is_error(host(ALICE, "{\"id\":3,\"op\":\"image_create\",\"path\":\"/x\",\"size\":1}"), "3",
		 "permission_denied", "only root");
	is_error(host(DAEMON_UID, "{\"id\":4,\"op\":\"image_create\",\"path\":\"/x\","
				  "\"size\":1}"), "4", "invalid_argument", "multiple of 16 MiB");
}

/* The op table's argument rules: checked before any op runs, the same for every op. */
static void declared_argument_rules(void **state)
{
	struct guest_vm *g;

	(void)state;
	/* a required argument missing, or of the wrong type */
	is_error(host(ALICE, "{\"id\":1,\"op\":\"lookup\"}"), "1", "invalid_argument",
		 "\"tag\" must be a UUID");
	is_error(host(ALICE, "{\"id\":2,\"op\":\"claim\",\"tag\":\"" DCD "\",\"grant\":1}"),
		 "2", "invalid_argument", "\"grant\" must be true or false");
	/* an optional one, bad: nothing happens (the claim above took nothing either) */
	is_error(host(ALICE, "{\"id\":3,\"op\":\"claim\",\"tag\":\"" DCD "\",\"name\":7}"),
		 "3", "invalid_argument", "\"name\" must be a string");
	assert_non_null(json_object_object_get(
		host(BOB, "{\"id\":4,\"op\":\"claim\",\"tag\":\"" DCD "\"}"), "result"));
	host(BOB, "{\"id\":40,\"op\":\"release\",\"tag\":\"" DCD "\"}");
	/* numbers: range and alignment */
	is_error(host(0, "{\"id\":5,\"op\":\"fm_add\",\"size\":4194305}"), "5",
		 "invalid_argument", "multiple of 2 MiB");
	is_error(host(0, "{\"id\":6,\"op\":\"vm_save\",\"vm\":\"v\",\"path\":\"/tmp/x\","
			 "\"threads\":17}"), "6", "invalid_argument", "(1-16)");
	/* one of a set; a path is absolute */
	is_error(host(0, "{\"id\":7,\"op\":\"qemu_args\",\"vm\":\"v\",\"mode\":\"pci\"}"),
		 "7", "invalid_argument", "\"mode\" must be");
	is_error(host(0, "{\"id\":8,\"op\":\"image_adopt\",\"path\":\"rel/x\"}"), "8",
		 "invalid_argument", "absolute file name");
	/* the privilege rule comes first: an unprivileged caller learns nothing of the rest */
	is_error(host(ALICE, "{\"id\":9,\"op\":\"fm_add\",\"size\":1}"), "9",
		 "permission_denied", "drive the fabric manager");
	/* a guest's flush goes through the same rules */
	host(ALICE, "{\"id\":10,\"op\":\"qemu_args\",\"vm\":\"v\",\"tags\":[\"" DCD "\"]}");
	g = guests_find(api.guests, ALICE, "v");
	assert_non_null(g);
	is_error(guest(g, "{\"id\":11,\"op\":\"flush\",\"tag\":\"x\"}"), "11",
		 "invalid_argument", "\"tag\" must be a UUID");
}

static void subscribe_counts(void **state)
{
	struct json_object *m;

	(void)state;
	settings.max_subscribers = 1;
	m = host(ALICE, "{\"id\":1,\"op\":\"subscribe\"}");
	assert_non_null(json_object_object_get(m, "result"));
	assert_int_equal(sent.subscribed, 1);
	is_error(host(BOB, "{\"id\":2,\"op\":\"subscribe\"}"), "2", "too_many_subscribers",
		 "its limit");
	/* a subscriber hears a claim's event */
	host(ALICE, "{\"id\":3,\"op\":\"claim\",\"tag\":\"" DCD "\"}");
	assert_true(sent.events > 0);
	m = host(ALICE, "{\"id\":4,\"op\":\"status\"}");
	assert_string_equal(str(m, "result.subscribers"), "1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hello_lists_each_peers_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(framing_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(claim_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(qemu_args_plan_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(guest_sees_only_its_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(privileged_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(declared_argument_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(subscribe_counts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
