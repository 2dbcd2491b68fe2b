/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A program that uses libtagmem's typed calls (no json-c in sight): list brokerd's tags, then
 * claim one and wait for the event that says so.
 *
 *   cc example-typed.c $(pkg-config --cflags --libs libtagmem) -o example-typed
 *   ./example-typed                 # list
 *   ./example-typed UUID NAME       # and claim UUID as NAME, then release it
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tagmem.h>

static int fail(struct tagmem_client *c, const char *what, int r)
{
	const char *message, *code = tagmem_client_get_error(c, &message);

	if (code)
		fprintf(stderr, "%s: brokerd says %s: %s\n", what, code, message);
	else
		fprintf(stderr, "%s: %s\n", what, strerror(-r));
	return 1;
}

int main(int argc, char **argv)
{
	const char *sock = getenv("TAGMEM_SOCKET") ? getenv("TAGMEM_SOCKET") : TAGMEM_DEFAULT_SOCKET;
	struct tagmem_ctx *ctx = NULL;
	struct tagmem_client *c = NULL, *events = NULL;
	struct tagmem_info **infos = NULL, *info = NULL;
	char s[TAGMEM_TAG_STRING_MAX], *name = NULL;
	tagmem_tag tag;
	size_t n = 0;
	int r;

	if (tagmem_new(&ctx) < 0 || tagmem_client_connect(ctx, sock, &c) < 0) {
		fprintf(stderr, "cannot reach brokerd at %s\n", sock);
		return 1;
	}
	tagmem_client_set_timeout(c, 10000);
	r = tagmem_list(c, &infos, &n);
	if (r < 0)
		return fail(c, "list", r);
	for (size_t i = 0; i < n; i++)
		printf("%s %s %llu %s\n", tagmem_tag_format(tagmem_info_get_tag(infos[i]), s),
		       tagmem_info_get_state(infos[i]),
		       (unsigned long long)tagmem_info_get_size(infos[i]),
		       tagmem_info_get_path(infos[i]) ? tagmem_info_get_path(infos[i]) : "-");
	tagmem_info_list_free(infos, n);
	if (argc != 3)
		return 0;
	if (tagmem_tag_parse(argv[1], &tag) < 0) {
		fprintf(stderr, "%s is not a UUID\n", argv[1]);
		return 2;
	}
	if (tagmem_client_connect(ctx, sock, &events) < 0 || tagmem_subscribe(events) < 0)
		return fail(events, "subscribe", -EIO);
	r = tagmem_claim(c, &tag, argv[2], false, &info);
	if (r < 0)
		return fail(c, "claim", r);
	printf("claimed: %s\n", tagmem_info_get_path(info));
	info = tagmem_info_unref(info);
	while ((r = tagmem_next_tag_event(events, 5000, &name, &info)) == 1) {
		bool mine = info && !strcmp(name, "tag_claimed") &&
			    !tagmem_tag_compare(tagmem_info_get_tag(info), &tag);

		if (mine)
			printf("event: %s by %s\n", name, tagmem_info_get_owner_name(info));
		free(name);
		tagmem_info_unref(info);
		if (mine)
			break;
	}
	if (r <= 0)
		return fail(events, "events", r ? r : -ETIMEDOUT);
	r = tagmem_release(c, &tag, NULL);
	if (r < 0)
		return fail(c, "release", r);
	printf("released\n");
	tagmem_client_unref(events);
	tagmem_client_unref(c);
	tagmem_unref(ctx);
	return 0;
}
