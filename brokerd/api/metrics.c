/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * brokerd's metrics in the Prometheus text format, for node_exporter's textfile collector
 * (--metrics-file, docs/operations.md "Metrics"): gauges read from the state when the file
 * is written, counters of what happened since brokerd started. No HTTP server in brokerd:
 * the text is built on the loop (it is small: one line per state, per image and per error
 * code) and written off it (base/textfile.h), replaced whole every --metrics-interval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "dataplane.h"
#include "guests.h"
#include "ops.h"
#include "textfile.h"

static const double flush_le[METRICS_FLUSH_BUCKETS] = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
							 1, 10 };
static const char *const evict_reasons[4] = { "request", "budget", "pressure", "global" };

void api_metrics_refused(struct api *api, const char *code)
{
	struct api_metrics *m = &api->metrics;
	unsigned i;

	for (i = 0; i < m->nrefused && strcmp(m->refused[i].code, code); i++)
		;
	if (i == m->nrefused) {
		if (i == METRICS_CODES)
			return; /* every code of the protocol fits; a new one is not worth a crash */
		snprintf(m->refused[i].code, sizeof(m->refused[i].code), "%s", code);
		m->nrefused++;
	}
	m->refused[i].n++;
}

void api_metrics_work_done(struct api *api, const struct dp_request *d)
{
	struct api_metrics *m = &api->metrics;
	const struct image_work *w = d->ctx;

	if (d->kind == DP_FLUSH) {
		unsigned b = 0;

		m->flushes++;
		if (d->error < 0) {
			m->flush_errors++;
			return;
		}
		while (b < METRICS_FLUSH_BUCKETS && (double)d->usec / 1e6 > flush_le[b])
			b++;
		m->flush_le[b]++;
		m->flush_usec_sum += d->usec;
	} else if (d->kind == DP_EVICT && d->error == 0) {
		for (unsigned r = 0; r < 4; r++)
			if (!strcmp(w->reason, evict_reasons[r]))
				m->evictions[r][w->guest_chose]++;
	}
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void tags_by_state(FILE *f, struct api *api)
{
	static const char *const kinds[] = { "dcd", "shared", "image" };
	uint64_t n[TAG_STATE_COUNT][3] = { { 0 } }, bytes[3] = { 0 }, claims = 0;
	struct tag *t;

	core_for_each(t, api->core) {
		unsigned k = tag_is_image(t) ? 2 : t->cap.shared ? 1 : 0;

		n[tag_state(t)][k]++;
		bytes[k] += t->cap.size;
		claims += t->claimed;
	}
	family(f, "tagmem_tags", "gauge", "Tags brokerd knows, by state and kind (dcd: private "
	       "dynamic capacity, shared: capacity other hosts map too, image: an image file).");
	for (unsigned s = 0; s < TAG_STATE_COUNT; s++)
		for (unsigned k = 0; k < 3; k++)
			if (s != TAG_RELEASED)
				fprintf(f, "tagmem_tags{state=\"%s\",kind=\"%s\"} %llu\n",
					tag_state_name(s), kinds[k], (unsigned long long)n[s][k]);
	family(f, "tagmem_tag_bytes", "gauge", "Bytes of tagged capacity, by kind.");
	for (unsigned k = 0; k < 3; k++)
		fprintf(f, "tagmem_tag_bytes{kind=\"%s\"} %llu\n", kinds[k],
			(unsigned long long)bytes[k]);
	family(f, "tagmem_claims", "gauge", "Tags claimed (by a program or a VM).");
	fprintf(f, "tagmem_claims %llu\n", (unsigned long long)claims);
	family(f, "tagmem_untagged_bytes", "gauge", "Capacity the host has without a tag.");
	fprintf(f, "tagmem_untagged_bytes %llu\n",
		(unsigned long long)core_untagged_bytes(api->core));
}

static void images(FILE *f, struct api *api)
{
	static const struct { const char *name, *help; } fams[] = {
		{ "tagmem_image_cached_bytes", "An image's pages in the host page cache (resident)." },
		{ "tagmem_image_dirty_bytes", "An image's dirty pages (not yet written back)." },
		{ "tagmem_image_budget_bytes", "An image's budgets (absent: none)." },
		{ "tagmem_image_lost_writes", "1 while an image has lost writes an operator has not "
		  "cleared (every flush of it fails)." },
	};
	struct tag *t;

	for (unsigned i = 0; i < ARRAY_SIZE(fams); i++) {
		family(f, fams[i].name, "gauge", fams[i].help);
		core_for_each(t, api->core) {
			struct pc_counts pc;

			if (!tag_is_image(t))
				continue;
			pc = image_io_last_counts(t->image.io);
			if (i == 0)
				fprintf(f, "%s{tag=\"%s\"} %llu\n", fams[i].name, t->tag_str,
					(unsigned long long)pc.cached);
			else if (i == 1)
				fprintf(f, "%s{tag=\"%s\"} %llu\n", fams[i].name, t->tag_str,
					(unsigned long long)pc.dirty);
			else if (i == 3)
				fprintf(f, "%s{tag=\"%s\"} %d\n", fams[i].name, t->tag_str,
					t->image.lost.since != 0);
			if (i == 2 && t->image.dirty_budget)
				fprintf(f, "%s{tag=\"%s\",budget=\"dirty\"} %llu\n", fams[i].name,
					t->tag_str, (unsigned long long)t->image.dirty_budget);
			if (i == 2 && t->image.resident_budget)
				fprintf(f, "%s{tag=\"%s\",budget=\"resident\"} %llu\n", fams[i].name,
					t->tag_str, (unsigned long long)t->image.resident_budget);
		}
	}
	family(f, "tagmem_images_unavailable", "gauge", "Images of the registry whose file "
	       "cannot be opened now (kept, retried).");
	fprintf(f, "tagmem_images_unavailable %zu\n", api->images_unavailable);
}

static void counters(FILE *f, struct api *api)
{
	const struct api_metrics *m = &api->metrics;
	uint64_t cum = 0;
	unsigned conn = 0, chans = api->guests ? guests_count(api->guests, &conn) : 0, clients = 0;
	size_t queued = 0;

	family(f, "tagmem_requests_total", "counter", "Requests of host clients.");
	fprintf(f, "tagmem_requests_total %llu\n", (unsigned long long)api->requests);
	family(f, "tagmem_requests_refused_total", "counter", "Requests answered with an error, "
	       "by the protocol's error code.");
	for (unsigned i = 0; i < m->nrefused; i++)
		fprintf(f, "tagmem_requests_refused_total{code=\"%s\"} %llu\n", m->refused[i].code,
			(unsigned long long)m->refused[i].n);
	family(f, "tagmem_guest_requests_total", "counter", "Requests of guests (channels).");
	fprintf(f, "tagmem_guest_requests_total %llu\n", (unsigned long long)api->guest_requests);
	family(f, "tagmem_flush_errors_total", "counter", "Flushes that failed (lost writes, I/O).");
	fprintf(f, "tagmem_flush_errors_total %llu\n", (unsigned long long)m->flush_errors);
	family(f, "tagmem_flush_seconds", "histogram", "Time from a flush request to its "
	       "durability, of the flushes that succeeded.");
	for (unsigned b = 0; b <= METRICS_FLUSH_BUCKETS; b++) {
		cum += m->flush_le[b];
		if (b < METRICS_FLUSH_BUCKETS)
			fprintf(f, "tagmem_flush_seconds_bucket{le=\"%g\"} %llu\n", flush_le[b],
				(unsigned long long)cum);
		else
			fprintf(f, "tagmem_flush_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, "tagmem_flush_seconds_sum %.6f\n", (double)m->flush_usec_sum / 1e6);
	fprintf(f, "tagmem_flush_seconds_count %llu\n", (unsigned long long)cum);
	family(f, "tagmem_evictions_total", "counter", "Evictions of images' pages, by why "
	       "and by whose choice of ranges went first.");
	for (unsigned r = 0; r < 4; r++)
		for (unsigned g = 0; g < 2; g++)
			fprintf(f, "tagmem_evictions_total{reason=\"%s\",chosen_by=\"%s\"} %llu\n",
				evict_reasons[r], g ? "guest" : "host",
				(unsigned long long)m->evictions[r][g]);
	family(f, "tagmem_reclaims_total", "counter", "Guests asked which ranges to give back, "
	       "by outcome.");
	fprintf(f, "tagmem_reclaims_total{outcome=\"asked\"} %llu\n"
		"tagmem_reclaims_total{outcome=\"answered\"} %llu\n"
		"tagmem_reclaims_total{outcome=\"expired\"} %llu\n",
		(unsigned long long)api->reclaims_asked, (unsigned long long)api->reclaims_answered,
		(unsigned long long)api->reclaims_expired);
	family(f, "tagmem_memory_pressure_events_total", "counter", "Times the kernel's memory "
	       "pressure trigger fired.");
	fprintf(f, "tagmem_memory_pressure_events_total %llu\n",
		(unsigned long long)api->pressure_events);
	family(f, "tagmem_guest_channels", "gauge", "VMs' guest channels, by whether the guest "
	       "agent is connected.");
	fprintf(f, "tagmem_guest_channels{connected=\"yes\"} %u\n"
		"tagmem_guest_channels{connected=\"no\"} %u\n", conn, chans - conn);
	api->transport.counts(api->transport.data, &clients, &queued);
	family(f, "tagmem_clients", "gauge", "Connected host clients.");
	fprintf(f, "tagmem_clients %u\n", clients);
}

void api_metrics_tick(struct api *api)
{
	uint64_t now = now_usec();
	char *text = NULL;
	size_t len = 0;
	int last;
	FILE *f;

	if (!api->metrics_file ||
	    now - api->metrics_written_usec < api->settings->metrics_interval_ms * 1000ull)
		return;
	api->metrics_written_usec = now;
	f = open_memstream(&text, &len);
	if (!f)
		return;
	family(f, "tagmem_up", "gauge", "1: brokerd wrote this file (how old it is: "
	       "node_textfile_mtime_seconds).");
	fprintf(f, "tagmem_up 1\n");
	family(f, "tagmem_uptime_seconds", "gauge", "How long brokerd has run.");
	fprintf(f, "tagmem_uptime_seconds %.3f\n", (double)(now - api->started_usec) / 1e6);
	tags_by_state(f, api);
	images(f, api);
	counters(f, api);
	family(f, "tagmem_metrics_write_failures_total", "counter", "Writes of this file that "
	       "failed (the file is then older than --metrics-interval).");
	fprintf(f, "tagmem_metrics_write_failures_total %u\n",
		textfile_failures(api->metrics_file, &last));
	if (fclose(f) != 0) {
		free(text);
		return;
	}
	textfile_put(api->metrics_file, text, len);
}
