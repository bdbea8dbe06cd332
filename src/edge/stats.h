/*
 * stats — GET /v1/stats: the overview of one herald node as JSON, for the
 * admin console's overview page (edge/ui.h) and `herald stats`
 * (cli/stats_cmd.h). docs/api.md "Stats" lists its members.
 * Layer: edge. It reads the process's metrics (core/metrics.h), the hub's
 * connection counts and the size of the store's files; it keeps no state
 * of its own but the start time and, with an engine shared by several
 * nodes, the count of users online across nodes (one registry query,
 * reused for a second). Loop thread.
 *
 * The answer holds counters, never rates: a client that wants publishes a
 * second polls twice and divides (the console does, every 2 s), so the
 * server does no work between requests and nothing while no one looks.
 */
#ifndef HD_EDGE_STATS_H
#define HD_EDGE_STATS_H

#include "edge/route.h"
#include "hub/hub.h"

struct hd_stats;

/* Returns owned. Borrows hub; copies data_dir (the store's directory, whose
 * herald.db and herald.db-wal give store_bytes). */
struct hd_stats *hd_stats_new(struct hd_hub *hub, const char *data_dir);
/* Adds GET /v1/stats and GET /v1/topics/{topic}/policy (the namespace
 * options of a topic: retention, dedup window, history), both for an API
 * key with admin, to t; s borrowed for t's life. */
void hd_stats_routes(struct hd_stats *s, struct hd_route_table *t);
/* Appends the JSON object of the answer to b. */
struct hd_buf;
void hd_stats_json(const struct hd_stats *s, struct hd_buf *b);
void hd_stats_free(struct hd_stats *s);

#endif
