/*
 * metrics — process-wide counters, gauges and histograms, rendered in the
 * Prometheus text format for GET /metrics.
 * Layer: core. Updates are atomic and may come from any thread (the store's
 * writer thread records commit sizes and latencies).
 *
 * HD_METRICS(C, G, H, V) is the one table of every metric herald exports:
 *   C(name, help)          a counter       (hd_metrics_inc / _add)
 *   G(name, help)          a gauge         (hd_metrics_gauge_add / _set)
 *   H(name, help, bounds)  a histogram     (hd_metrics_observe)
 *   V(name, help, type, a, A, b, B)
 *                          a counter (type counter) or gauge (type gauge)
 *                          with two labels: a takes the values of the list
 *                          A, b those of B (hd_metrics_add_at with their
 *                          indexes). Every pair is exported, 0 included, as
 *                          herald_name{a="…",b="…"}. At most
 *                          HD_METRICS_CELLS_MAX pairs (checked at compile time).
 *                          B = HD_METRICS_NO_LABEL: one label only
 *                          (herald_name{a="…"}; b is always 0).
 */
#ifndef HD_METRICS_H
#define HD_METRICS_H

#include <stdint.h>

struct hd_buf;

#define HD_LATENCY_US_BOUNDS {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000}
#define HD_BATCH_BOUNDS {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

/* Label values of the vectors, in the order of the enums their indexes come
 * from: enum hd_device_platform, enum hd_push_verdict_kind, enum hd_device_state. */
#define HD_METRICS_PUSH_PROVIDERS {"apns", "fcm", "webpush"}
#define HD_METRICS_PUSH_RESULTS {"ok", "invalid", "refused", "retry", "auth", "throttled"}
#define HD_METRICS_DEVICE_STATES {"active", "invalid"}
/* In the order of enum hd_push_delivery_skip (push/push_delivery_impl.h). */
#define HD_METRICS_PUSH_SKIPS {"seen", "online", "expired", "silent", "devices"}
#define HD_METRICS_NO_LABEL {""}
#define HD_METRICS_CELLS_MAX 24
#define HD_METRICS_LABEL_VALUES_MAX 8

#define HD_METRICS(C, G, H, V)                                                                  \
	C(publishes_total, "Events stored by publishes (duplicates not included).")           \
	C(publish_bytes_total, "Bytes of event JSON stored.")                                 \
	C(duplicates_total, "Publishes dropped as duplicates of an event in the dedup window.") \
	C(dedup_collisions_total, "Publishes whose dedup hash matched another event's (stored without dedup).") \
	C(dedup_evictions_total, "Dedup keys dropped from memory before their window ended (--dedup-max-entries).") \
	C(publish_errors_total, "Events rejected at publish (validation, limits, store).")    \
	C(deliveries_total, "Events handed to live subscribers (hub watches fired: WebSocket, SSE, long-poll, consumers).") \
	C(reads_total, "History reads served.")                                               \
	C(ring_reads_total, "History reads served entirely from the in-memory ring.")         \
	C(http_requests_total, "HTTP requests parsed.")                                       \
	C(http_errors_total, "HTTP requests answered with a 4xx or 5xx status.")              \
	C(http_limit_hits_total, "Requests refused by a size or time limit.")                 \
	C(connection_ip_limit_hits_total, "Connections refused because their address had --max-connections-per-ip open.") \
	C(accept_no_descriptor_total, "Connections refused at accept because herald was nearly out of descriptors (answered 503) or had none left (EMFILE/ENFILE); see --max-connections and the open-files limit.") \
	C(proxy_protocol_errors_total, "Connections closed because they did not begin with a valid PROXY protocol header (--proxy-protocol).") \
	C(forwarded_requests_total, "Requests from a --trusted-proxies peer whose client address came from Forwarded / X-Forwarded-For.") \
	C(connection_rate_limit_hits_total, "Connections refused because their address connected faster than --connection-rate-per-ip.") \
	C(publish_rate_key_hits_total, "Publishes refused by --publish-rate-per-key (429).")   \
	C(publish_rate_connection_hits_total, "WebSocket publishes refused by --publish-rate-per-connection (error 111).") \
	C(event_size_limit_hits_total, "Events refused because they exceed their namespace's max-event-size.") \
	C(topic_limit_hits_total, "Events refused because they would create a topic beyond --max-topics-total.") \
	C(events_expired_total, "Events removed by TTL or retention.")                        \
	C(store_checkpoints_total, "WAL checkpoints run (copies of the WAL into the database).") \
	C(slow_consumer_disconnects_total, "Streams ended because the client fell max-pending-bytes behind.") \
	C(ws_commands_total, "WebSocket protocol commands handled.")                          \
	C(ws_errors_total, "WebSocket commands answered with an error.")                       \
	C(ws_disconnects_total, "WebSocket sessions closed by herald (any code but shutdown).") \
	C(ws_recoveries_total, "WebSocket subscribes that asked to recover missed events.")    \
	C(ws_recovery_failures_total, "Recoveries answered recovered:false.")                   \
	C(ws_proxy_failures_total, "Commands the app backend proxy could not answer (down, timeout, not 200, malformed, too many in flight).") \
	C(ws_push_encodes_total, "Publication pushes encoded for WebSocket subscribers (once per event and format).") \
	C(tls_handshakes_total, "TLS handshakes completed (HTTPS and WSS).")                   \
	C(tls_handshake_failures_total, "TLS handshakes refused or failed (bad version, cipher, garbage).") \
	C(webhook_deliveries_total, "Webhook events delivered (a 2xx answer).")                \
	C(webhook_attempts_total, "Webhook delivery attempts (every request, retries included).") \
	C(webhook_attempt_failures_total, "Webhook attempts that failed (no 2xx: status, timeout, refused).") \
	C(webhook_dead_letters_total, "Webhook events dead-lettered after their last attempt.")  \
	G(webhook_inflight, "Webhook deliveries in flight.")                                   \
	G(webhook_subscriptions, "Webhook subscriptions.")                                     \
	C(push_auth_alarms_total, "Push sends refused for herald's provider credentials after one renewal (APNs 403, FCM 401, VAPID 401/403).") \
	C(push_provider_tokens_total, "Push provider tokens issued (APNs JWTs signed, FCM access tokens obtained).") \
	V(push_sends_total, "Push sends by provider and verdict.", counter, provider, HD_METRICS_PUSH_PROVIDERS, result, HD_METRICS_PUSH_RESULTS) \
	V(push_devices, "Registered push devices by platform and state.", gauge, platform, HD_METRICS_PUSH_PROVIDERS, state, HD_METRICS_DEVICE_STATES) \
	V(push_skips_total, "Pushes not sent to a device by reason (skip_if_seen, skip_if_online, expired, the silent quota, devices over the per-event limit).", counter, reason, HD_METRICS_PUSH_SKIPS, none, HD_METRICS_NO_LABEL) \
	C(push_feedback_events_total, "push.feedback events published (a device made invalid by its push service).") \
	C(webhook_pattern_topics_skipped_total, "Topics a webhook topic pattern matched but skipped (over --webhook-pattern-topics-max).") \
	G(ws_sessions, "Open WebSocket sessions.")                                              \
	G(sse_streams, "Open Server-Sent Events streams.")                                    \
	G(topics, "Topics known to the store.")                                               \
	G(dedup_entries, "Dedup keys held in memory.")                                         \
	G(connections_open, "Open client connections.")                                       \
	G(longpoll_waiting, "Long-poll reads being held until an event arrives.")             \
	G(load_waiting, "Requests waiting for a registry (webhooks, devices, push subscriptions) to load.") \
	C(load_wait_refused_total, "Requests answered 503 because a registry was still loading (wait full or too long).") \
	H(store_commit_batch_events, "Events per store commit (group commit size).", HD_BATCH_BOUNDS) \
	H(store_commit_seconds, "Store commit latency, including fsync.", HD_LATENCY_US_BOUNDS) \
	H(push_send_seconds, "Push send latency: the last request to the push service.", HD_LATENCY_US_BOUNDS)

enum hd_metric_id {
#define HD_M_ID(name, ...) HD_M_##name,
	HD_METRICS(HD_M_ID, HD_M_ID, HD_M_ID, HD_M_ID)
#undef HD_M_ID
	HD_M__COUNT
};

void hd_metrics_add(enum hd_metric_id id, uint64_t n);
#define hd_metrics_inc(id) hd_metrics_add((id), 1)
void hd_metrics_gauge_add(enum hd_metric_id id, int64_t delta);
void hd_metrics_gauge_set(enum hd_metric_id id, int64_t v);
/* Adds n (a gauge: a delta, may be negative) to the pair (a, b) of a V
 * metric; a and b must be below the number of their label values. */
void hd_metrics_add_at(enum hd_metric_id id, unsigned a, unsigned b, int64_t n);
/* Reads one pair of a V metric (for tests). */
int64_t hd_metrics_get_at(enum hd_metric_id id, unsigned a, unsigned b);
/* Records one observation. Latency histograms take microseconds and are
 * exported in seconds; count histograms take plain numbers. */
void hd_metrics_observe(enum hd_metric_id id, uint64_t v);
/* Reads one counter or gauge (for tests and /readyz). */
int64_t hd_metrics_get(enum hd_metric_id id);
/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void hd_metrics_render(struct hd_buf *out);

#endif
