/* SPDX-License-Identifier: GPL-2.0-or-later */
/* brokerd's transport for answers and events (api.h): the server's clients and the guest
 * channels. The only file of brokerd/api that talks to them. */
#include <stdlib.h>

#include <json-c/json.h>

#include "api.h"
#include "guests.h"
#include "server.h"

static void to_client(void *data, uint64_t serial, struct json_object *msg, uint64_t gen)
{
	struct api *api = data;
	struct client *c = server_find_client(api->server, serial);

	if (c)
		client_reply(api->server, c, msg, gen);
	else
		json_object_put(msg); /* it went away: the answer is moot */
}

static void to_client_raw(void *data, uint64_t serial, char *line, size_t len, uint64_t gen)
{
	struct api *api = data;
	struct client *c = server_find_client(api->server, serial);

	if (c)
		client_reply_raw(api->server, c, line, len, gen);
	else
		free(line);
}

static bool client_subscribed(void *data, uint64_t serial)
{
	struct api *api = data;
	struct client *c = server_find_client(api->server, serial);

	return c && client_info(c)->subscribed;
}

static void subscribe(void *data, uint64_t serial, bool on)
{
	struct api *api = data;
	struct client *c = server_find_client(api->server, serial);

	if (c)
		client_set_subscribed(api->server, c, on);
}

static void to_guest(void *data, uid_t uid, const char *vm, struct json_object *msg)
{
	struct api *api = data;
	struct guest_vm *g = api->guests ? guests_find(api->guests, uid, vm) : NULL;

	if (g && guest_connected(g))
		guest_send(api->guests, g, msg);
	else
		json_object_put(msg);
}

static unsigned subscribers(void *data)
{
	return server_subscribers(((struct api *)data)->server);
}

static void broadcast(void *data, const char *line, size_t len)
{
	server_broadcast(((struct api *)data)->server, line, len);
}

static void counts(void *data, unsigned *clients, size_t *queued)
{
	struct api *api = data;

	*clients = server_clients(api->server);
	*queued = server_queued_bytes(api->server);
}

void api_transport_default(struct api *api)
{
	api->transport = (struct api_transport){
		.data = api, .client = to_client, .client_raw = to_client_raw,
		.client_subscribed = client_subscribed, .subscribe = subscribe, .guest = to_guest,
		.subscribers = subscribers, .broadcast = broadcast, .counts = counts,
	};
}
