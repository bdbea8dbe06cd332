/* metrics — see metrics.h. */
#include "core/metrics.h"
#include "core/buf.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_BOUNDS 16

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct metric {
	const char *name;
	const char *help;
	enum kind kind;
	uint64_t bounds[MAX_BOUNDS];
	int nbounds;
	_Atomic int64_t value;
	_Atomic uint64_t buckets[MAX_BOUNDS + 1];
	_Atomic uint64_t sum;
	/* A V metric: its two labels, their values, one cell per pair (a * nb + b). */
	const char *la, *lb;
	const char *va[HD_METRICS_LABEL_VALUES_MAX], *vb[HD_METRICS_LABEL_VALUES_MAX];
	unsigned na, nb;
	_Atomic int64_t cells[HD_METRICS_CELLS_MAX];
};

/* Variadic: a list arrives expanded, its commas bare. */
#define NVALUES(...) (sizeof((const char *[])__VA_ARGS__) / sizeof(const char *))
#define KIND_counter COUNTER
#define KIND_gauge GAUGE

#define HD_M_C(n, h) {.name = #n, .help = h, .kind = COUNTER},
#define HD_M_G(n, h) {.name = #n, .help = h, .kind = GAUGE},
#define HD_M_H(n, h, b) {.name = #n, .help = h, .kind = HISTOGRAM, .bounds = b, \
			 .nbounds = sizeof((uint64_t[])b) / sizeof(uint64_t)},
#define HD_M_V(n, h, t, a, A, b, B) {.name = #n, .help = h, .kind = KIND_##t, .la = #a, .lb = #b, \
				     .va = A, .vb = B, .na = NVALUES(A), .nb = NVALUES(B)},
static struct metric metrics[] = {HD_METRICS(HD_M_C, HD_M_G, HD_M_H, HD_M_V)};
#undef HD_M_C
#undef HD_M_G
#undef HD_M_H
#undef HD_M_V

/* Every V metric's pairs fit its cells. */
#define HD_M_NONE(...)
#define HD_M_CHECK(n, h, t, a, A, b, B) \
	_Static_assert(NVALUES(A) * NVALUES(B) <= HD_METRICS_CELLS_MAX && \
		       NVALUES(A) <= HD_METRICS_LABEL_VALUES_MAX && \
		       NVALUES(B) <= HD_METRICS_LABEL_VALUES_MAX, #n " has too many label values");
HD_METRICS(HD_M_NONE, HD_M_NONE, HD_M_NONE, HD_M_CHECK)
#undef HD_M_NONE
#undef HD_M_CHECK

void hd_metrics_add(enum hd_metric_id id, uint64_t n)
{
	atomic_fetch_add_explicit(&metrics[id].value, (int64_t)n, memory_order_relaxed);
}

void hd_metrics_gauge_add(enum hd_metric_id id, int64_t delta)
{
	atomic_fetch_add_explicit(&metrics[id].value, delta, memory_order_relaxed);
}

void hd_metrics_gauge_set(enum hd_metric_id id, int64_t v)
{
	atomic_store_explicit(&metrics[id].value, v, memory_order_relaxed);
}

void hd_metrics_add_at(enum hd_metric_id id, unsigned a, unsigned b, int64_t n)
{
	struct metric *m = &metrics[id];

	assert(m->na && a < m->na && b < m->nb);
	atomic_fetch_add_explicit(&m->cells[a * m->nb + b], n, memory_order_relaxed);
}

int64_t hd_metrics_get_at(enum hd_metric_id id, unsigned a, unsigned b)
{
	const struct metric *m = &metrics[id];

	assert(m->na && a < m->na && b < m->nb);
	return atomic_load_explicit(&m->cells[a * m->nb + b], memory_order_relaxed);
}

int64_t hd_metrics_get(enum hd_metric_id id)
{
	return atomic_load_explicit(&metrics[id].value, memory_order_relaxed);
}

void hd_metrics_observe(enum hd_metric_id id, uint64_t v)
{
	struct metric *m = &metrics[id];
	int i = 0;
	while (i < m->nbounds && v > m->bounds[i])
		i++;
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum, v, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->value, 1, memory_order_relaxed);
}

static void render_bound(struct hd_buf *out, const struct metric *m, uint64_t b)
{
	if (strstr(m->name, "_seconds"))
		hd_buf_printf(out, "%g", (double)b / 1e6);
	else
		hd_buf_printf(out, "%llu", (unsigned long long)b);
}

void hd_metrics_render(struct hd_buf *out)
{
	static const char *types[] = {"counter", "gauge", "histogram"};
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		const struct metric *m = &metrics[i];
		hd_buf_printf(out, "# HELP herald_%s %s\n# TYPE herald_%s %s\n", m->name, m->help,
			      m->name, types[m->kind]);
		for (unsigned a = 0; a < m->na; a++)
			for (unsigned b = 0; b < m->nb; b++)
				if (m->vb[b][0])
					hd_buf_printf(out, "herald_%s{%s=\"%s\",%s=\"%s\"} %lld\n",
						      m->name, m->la, m->va[a], m->lb, m->vb[b],
						      (long long)m->cells[a * m->nb + b]);
				else
					hd_buf_printf(out, "herald_%s{%s=\"%s\"} %lld\n", m->name,
						      m->la, m->va[a],
						      (long long)m->cells[a * m->nb + b]);
		if (m->na)
			continue;
		if (m->kind != HISTOGRAM) {
			hd_buf_printf(out, "herald_%s %lld\n", m->name, (long long)m->value);
			continue;
		}
		uint64_t cum = 0;
		for (int b = 0; b <= m->nbounds; b++) {
			cum += m->buckets[b];
			hd_buf_printf(out, "herald_%s_bucket{le=\"", m->name);
			if (b == m->nbounds)
				hd_buf_puts(out, "+Inf");
			else
				render_bound(out, m, m->bounds[b]);
			hd_buf_printf(out, "\"} %llu\n", (unsigned long long)cum);
		}
		hd_buf_printf(out, "herald_%s_sum ", m->name);
		render_bound(out, m, m->sum);
		hd_buf_printf(out, "\nherald_%s_count %llu\n", m->name, (unsigned long long)cum);
	}
}
