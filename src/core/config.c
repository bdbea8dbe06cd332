/*
 * config — see config.h. The option table below is the single source of
 * truth: parsing, range checks, help text and docs/config.md all read it.
 */
#include "core/config.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { T_STRING, T_UINT, T_SIZE, T_DURATION, T_BOOL, T_ENUM, T_REAL };

struct opt {
	const char *name;
	enum opt_type type;
	bool ns;          /* a namespace option: off is into struct hd_ns_opts */
	size_t off;
	size_t size;      /* T_STRING / T_ENUM: capacity of the char array */
	const char *def;
	const char *min;  /* bounds as text, in the option's own syntax; NULL = none */
	const char *max;
	const char *choices; /* T_ENUM: "a|b|c" */
	const char *help;
};

#define G(field) .off = offsetof(struct hd_config, field)
#define GS(field) G(field), .size = sizeof(((struct hd_config *)0)->field)
#define N(field) .ns = true, .off = offsetof(struct hd_ns_opts, field)
#define NS(field) N(field), .size = sizeof(((struct hd_ns_opts *)0)->field)

static const struct opt opts[] = {
	{"config", T_STRING, GS(config_file), .def = "",
	 .help = "Config file to read (key = value lines, [namespace NAME] and [key NAME] sections)."},
	{"listen", T_STRING, GS(listen), .def = "127.0.0.1:8080",
	 .help = "Address and port to serve HTTP on (HOST:PORT; [::1]:PORT for IPv6); empty = no "
		 "plain HTTP (then --tls-listen is required)."},
	{"tls-listen", T_STRING, GS(tls_listen), .def = "",
	 .help = "Address and port to serve HTTPS and WSS on (HOST:PORT), next to --listen; "
		 "empty = none. Needs --tls-cert and --tls-key. TLS 1.2 and 1.3, AEAD ciphers only."},
	{"tls-cert", T_STRING, GS(tls_cert), .def = "",
	 .help = "PEM file with the server certificate followed by its intermediates; read again "
		 "on SIGHUP (new connections get it, open ones keep theirs)."},
	{"tls-key", T_STRING, GS(tls_key), .def = "",
	 .help = "PEM file with the private key of --tls-cert; read again on SIGHUP."},
	{"data-dir", T_STRING, GS(data_dir), .def = "./data",
	 .help = "Directory of the event store (created if missing)."},
	{"sync", T_ENUM, GS(sync), .def = "full", .choices = "full|normal|off",
	 .help = "When a publish is acknowledged: full = after fsync (survives power loss); "
		 "normal and off = after the write reaches the OS (survives a crash of herald)."},
	{"log-level", T_ENUM, GS(log_level), .def = "info", .choices = "debug|info|warn|error|off",
	 .help = "Least severe log level written to stderr."},
	{"body-max", T_SIZE, G(body_max), .def = "1m", .min = "1k", .max = "64m",
	 .help = "Largest request body accepted; larger ones get 413."},
	{"header-max", T_SIZE, G(header_max), .def = "72k", .min = "1k", .max = "80k",
	 .help = "Largest request line plus headers; larger ones get 431. The default lets a "
		 "binary-mode CloudEvent of 64 KiB carry any of it in ce- headers (the spec's size "
		 "every intermediary must forward); heads are buffered only as large as they come."},
	{"max-headers", T_UINT, G(max_headers), .def = "100", .min = "8", .max = "1000",
	 .help = "Most header fields in one request; more get 431."},
	{"header-timeout", T_DURATION, G(header_timeout_ms), .def = "10s", .min = "100ms", .max = "5m",
	 .help = "Time a client has to send a request's headers (slowloris defence); then 408."},
	{"idle-timeout", T_DURATION, G(idle_timeout_ms), .def = "60s", .min = "100ms", .max = "1h",
	 .help = "A keep-alive connection idle this long is closed."},
	{"shutdown-timeout", T_DURATION, G(shutdown_timeout_ms), .def = "5s", .min = "100ms", .max = "10m",
	 .help = "On SIGTERM/SIGINT, connections still open this long after the stop began are closed."},
	{"max-pending-bytes", T_SIZE, G(max_pending_bytes), .def = "1m", .min = "4k", .max = "1g",
	 .help = "Unsent output allowed per streaming connection (Server-Sent Events); a client "
		 "that falls further behind is disconnected as a slow consumer."},
	{"sse-keepalive", T_DURATION, G(sse_keepalive_ms), .def = "15s", .min = "100ms", .max = "1h",
	 .help = "How often an idle Server-Sent Events stream gets a comment line, so that proxies "
		 "keep it open."},
	{"sse-retry", T_DURATION, G(sse_retry_ms), .def = "3s", .min = "0", .max = "1h",
	 .help = "The reconnection delay sent to Server-Sent Events clients (the retry field)."},
	{"max-connections", T_UINT, G(max_connections), .def = "10000", .min = "1", .max = "1000000",
	 .help = "Open client connections at once; more are answered 503 and closed. At start "
		 "herald raises its open-files limit to the hard limit and warns when this (plus "
		 "512 for its own files) does not fit."},
	{"listen-backlog", T_UINT, G(listen_backlog), .def = "4096", .min = "16", .max = "65535",
	 .help = "Connections the kernel completes and queues before herald accepts them, so a "
		 "reconnect storm is not dropped; the kernel caps it at net.core.somaxconn (herald "
		 "warns at start when it does)."},
	{"trusted-proxies", T_STRING, GS(trusted_proxies), .def = "",
	 .help = "Reverse proxies and load balancers herald sits behind: addresses and CIDR blocks, "
		 "comma-separated (\"10.0.0.0/8, 127.0.0.1, ::1\"). For a connection from one of "
		 "them the client is the right-most untrusted address of Forwarded (else "
		 "X-Forwarded-For): the per-IP limits, logs and connection listings use it. The same "
		 "headers from other addresses are ignored. Empty = none."},
	{"proxy-protocol", T_BOOL, G(proxy_protocol), .def = "off",
	 .help = "Every connection on --listen and --tls-listen begins with a PROXY protocol "
		 "header (v1 or v2, as HAProxy, AWS NLB and nginx send; before the TLS handshake) naming "
		 "its client; one without a valid header is closed "
		 "(herald_proxy_protocol_errors_total). With --trusted-proxies, the header is believed "
		 "only from those addresses."},
	{"max-connections-per-ip", T_UINT, G(max_connections_per_ip), .def = "1000", .min = "0",
	 .max = "1000000",
	 .help = "Open connections from one client address (IPv4: per address; IPv6: per /64 "
		 "prefix); more are answered 429 with Retry-After and closed (0 = no cap)."},
	{"connection-rate-per-ip", T_UINT, G(connection_rate_per_ip), .def = "100", .min = "0",
	 .max = "1000000",
	 .help = "New connections a second from one client address (as for "
		 "--max-connections-per-ip), with bursts of --connection-burst-per-ip; faster ones "
		 "are answered 429 with Retry-After and closed (0 = no limit)."},
	{"connection-burst-per-ip", T_UINT, G(connection_burst_per_ip), .def = "200", .min = "0",
	 .max = "1000000",
	 .help = "Connections one client address may open at once before --connection-rate-per-ip "
		 "applies (0 = the rate)."},
	{"publish-rate-per-key", T_UINT, G(publish_rate_per_key), .def = "0", .min = "0",
	 .max = "10000000",
	 .help = "Events a second one API key may publish over REST (a batch counts its events), "
		 "with bursts of --publish-burst-per-key; beyond, 429 with Retry-After (0 = no limit)."},
	{"publish-burst-per-key", T_UINT, G(publish_burst_per_key), .def = "0", .min = "0",
	 .max = "10000000",
	 .help = "Events one API key may publish at once before --publish-rate-per-key applies "
		 "(0 = the rate)."},
	{"publish-rate-per-connection", T_UINT, G(publish_rate_per_connection), .def = "0", .min = "0",
	 .max = "10000000",
	 .help = "Publishes a second one WebSocket connection may make, with bursts of "
		 "--publish-burst-per-connection; beyond, error 111 (0 = no limit)."},
	{"publish-burst-per-connection", T_UINT, G(publish_burst_per_connection), .def = "0",
	 .min = "0", .max = "10000000",
	 .help = "Publishes one WebSocket connection may make at once before "
		 "--publish-rate-per-connection applies (0 = the rate)."},
	{"max-topics-total", T_UINT, G(max_topics_total), .def = "0", .min = "0", .max = "1000000000",
	 .help = "Topics the store may hold; a publish that would create one more is refused "
		 "with 429 while existing topics still take events (0 = no limit)."},
	{"max-topics", T_UINT, G(max_topics), .def = "100000", .min = "1", .max = "100000000",
	 .help = "Topics whose recent events are kept in memory at once."},
	{"dedup-max-entries", T_UINT, G(dedup_max_entries), .def = "4000000", .min = "1",
	 .max = "1000000000",
	 .help = "Dedup keys (source, id) held in memory, about 48 bytes each; past it the oldest "
		 "leave before their window ends (herald_dedup_evictions_total counts them)."},
	{"commit-max-events", T_UINT, G(commit_max_events), .def = "4096", .min = "1", .max = "100000",
	 .help = "Most events the store writes in one transaction (group commit)."},
	{"queue-max-events", T_UINT, G(queue_max_events), .def = "65536", .min = "16", .max = "10000000",
	 .help = "Events waiting for the store at once; publishes beyond get 503."},
	{"ring-events", T_UINT, G(ring_events), .def = "1024", .min = "0", .max = "1000000",
	 .help = "Recent events per topic kept in memory to serve reads without disk."},
	{"ring-bytes", T_SIZE, G(ring_bytes), .def = "1m", .min = "0", .max = "1g",
	 .help = "Bytes of recent events per topic kept in memory."},
	{"readers", T_UINT, G(readers), .def = "4", .min = "1", .max = "64",
	 .help = "Read connections to the store (reads run on the libuv thread pool)."},
	{"maintenance-interval", T_DURATION, G(maintenance_interval_ms), .def = "1s", .min = "10ms",
	 .max = "1h", .help = "How often expired events and dedup entries are deleted."},
	{"cors-origins", T_STRING, GS(cors_origins), .def = "",
	 .help = "Origins whose browser pages may call herald (CORS): \"*\" for any, or a "
		 "comma-separated list such as \"https://app.example, https://admin.example\"; empty = none."},
	{"node-name", T_STRING, GS(node_name), .def = "",
	 .help = "This node's name in connection listings and the WebSocket connect reply "
		 "(empty = the host name; with --engine redis, the host name and the listen port, "
		 "since it must be unique per node)."},
	{"engine", T_ENUM, GS(engine), .def = "local", .choices = "local|redis",
	 .help = "Where events live: local = the embedded store in --data-dir (one node); redis = "
		 "the Redis servers of --redis-url, shared by several herald nodes (docs/cluster.md)."},
	{"redis-url", T_STRING, GS(redis_url), .def = "redis://127.0.0.1:6379",
	 .help = "With --engine redis: the Redis primaries, redis://HOST:PORT[/DB], several "
		 "separated by commas (shards: a topic's shard is chosen by consistent hashing of "
		 "its name; every node must list the same shards in the same order)."},
	{"redis-sentinel", T_STRING, GS(redis_sentinel), .def = "",
	 .help = "With --engine redis: Sentinels to ask where the primary is, HOST:PORT,HOST:PORT,… "
		 "(then --redis-url is unused and a failover is followed); empty = none."},
	{"redis-master-name", T_STRING, GS(redis_master_name), .def = "",
	 .help = "With --redis-sentinel: the name the Sentinels monitor the primary under; several "
		 "names separated by commas are several shards."},
	{"redis-durability", T_ENUM, GS(redis_durability), .def = "replicated",
	 .choices = "replicated|primary|none",
	 .help = "With --engine redis, when a publish is acknowledged: replicated = after a replica "
		 "received it (WAIT 1); primary = after the primary ran it (run Redis with appendfsync "
		 "always); none = as soon as the primary answered (no fsync or replica guarantee)."},
	{"redis-wait-timeout", T_DURATION, G(redis_wait_timeout_ms), .def = "1s", .min = "10ms",
	 .max = "1m",
	 .help = "With --redis-durability replicated: how long a publish waits for a replica's "
		 "acknowledgement before it is answered 503 with Retry-After."},
	{"redis-transactions", T_BOOL, G(redis_transactions), .def = "off",
	 .help = "With --redis-durability replicated: each publish cycle's writes to a shard (the "
		 "batch's scripts, the topic list, the last batch's confirms) go in one MULTI ... EXEC, "
		 "so a primary on appendfsync always fsyncs once per cycle instead of once per read of "
		 "~20 KB. Helps with many topics on a slow disk; not with one topic or fast fsyncs. A "
		 "transaction spans slots: not for Redis Cluster (docs/cluster.md)."},
	{"jwt-secret", T_STRING, GS(jwt_secret), .def = "",
	 .help = "HMAC secret (HS256/384/512) for client connection tokens; empty = none."},
	{"jwt-public-key", T_STRING, GS(jwt_public_key), .def = "",
	 .help = "PEM file with an RSA (RS256/384/512) or EC P-256 (ES256) public key for client "
		 "connection tokens; empty = none."},
	{"jwt-jwks", T_STRING, GS(jwt_jwks), .def = "",
	 .help = "JWKS file (RFC 7517) with the keys for client connection tokens: RSA, EC P-256 "
		 "and oct keys; a token naming a kid is checked against that key. Empty = none."},
	{"jwt-audience", T_STRING, GS(jwt_audience), .def = "",
	 .help = "When set, tokens must carry this aud."},
	{"jwt-issuer", T_STRING, GS(jwt_issuer), .def = "",
	 .help = "When set, tokens must carry this iss."},
	{"ui", T_BOOL, G(ui), .def = "on",
	 .help = "Serve the admin console at /ui (static files; its API calls need an admin key, "
		 "see docs/console.md). off = /ui is 404."},
	{"ws-anonymous", T_BOOL, G(ws_anonymous), .def = "off",
	 .help = "Accept WebSocket connects without a token (as anonymous users)."},
	{"ws-ping-interval", T_DURATION, G(ws_ping_interval_ms), .def = "25s", .min = "1s", .max = "1h",
	 .help = "How often a WebSocket client is pinged with an empty message."},
	{"ws-pong-timeout", T_DURATION, G(ws_pong_timeout_ms), .def = "10s", .min = "100ms",
	 .max = "1h", .help = "A WebSocket client that does not answer a ping this fast is closed "
			       "(3012 no pong)."},
	{"ws-connect-timeout", T_DURATION, G(ws_connect_timeout_ms), .def = "5s", .min = "100ms",
	 .max = "1h", .help = "A WebSocket that sends no connect command this fast is closed "
			       "(3502 stale)."},
	{"ws-expiry-grace", T_DURATION, G(ws_expiry_grace_ms), .def = "5s", .min = "0", .max = "1h",
	 .help = "How long past its token's exp a WebSocket connection that did not refresh stays "
		 "open before it is closed (3005 expired)."},
	{"ws-max-message", T_SIZE, G(ws_max_message), .def = "64k", .min = "1k", .max = "16m",
	 .help = "Longest WebSocket message a client may send; longer closes with 1009."},
	{"ws-recover-max", T_UINT, G(ws_recover_max), .def = "300", .min = "1", .max = "10000",
	 .help = "Most events a WebSocket subscribe recovers; a longer gap answers recovered:false."},
	{"ws-max-subscriptions", T_UINT, G(ws_max_subscriptions), .def = "128", .min = "1",
	 .max = "100000", .help = "Topics one WebSocket connection may subscribe to (error 106 past it)."},
	{"proxy-connect-url", T_STRING, GS(proxy_connect_url), .def = "",
	 .help = "The app backend's connect proxy (docs/proxy.md): a WebSocket/SDK connect without a "
		 "token is POSTed there and the backend says who the user is. A connect with a token "
		 "is still checked as a JWT. Empty = off."},
	{"proxy-subscribe-url", T_STRING, GS(proxy_subscribe_url), .def = "",
	 .help = "The app backend's subscribe proxy: each client subscribe herald's own rules allow "
		 "is POSTed there to be allowed or refused (not for a namespace with proxy-subscribe = off). "
		 "Empty = off."},
	{"proxy-publish-url", T_STRING, GS(proxy_publish_url), .def = "",
	 .help = "The app backend's publish proxy: each client publish herald's own rules allow is "
		 "POSTed there to be allowed, refused or rewritten (result.data) (not for a namespace with "
		 "proxy-publish = off). Empty = off."},
	{"proxy-rpc-url", T_STRING, GS(proxy_rpc_url), .def = "",
	 .help = "The app backend's RPC proxy: client RPCs are POSTed there and result.data is the "
		 "answer. Empty = RPC answers error 108."},
	{"proxy-refresh-url", T_STRING, GS(proxy_refresh_url), .def = "",
	 .help = "The app backend's refresh proxy: when the expire_at a connect proxy gave comes, "
		 "herald POSTs there and the answer extends (result.expire_at), updates (info) or "
		 "ends (expired) the connection; the client never refreshes. Empty = the client "
		 "must refresh with a token."},
	{"proxy-sub-refresh-url", T_STRING, GS(proxy_sub_refresh_url), .def = "",
	 .help = "The app backend's sub-refresh proxy: when the expire_at a subscribe proxy gave a "
		 "subscription comes, herald POSTs there and the answer extends (result.expire_at), "
		 "updates (info) or ends (expired: unsubscribe push 2501) the subscription. Empty = "
		 "such a subscription ends at its expire_at."},
	{"proxy-sub-refresh-retry", T_DURATION, G(proxy_sub_refresh_retry_ms), .def = "1m", .min = "100ms",
	 .max = "1h", .help = "When the sub-refresh proxy fails (down, too slow, not 200, malformed), the "
			      "subscription stays and herald asks again this much later."},
	{"proxy-timeout", T_DURATION, G(proxy_timeout_ms), .def = "1s", .min = "10ms", .max = "1m",
	 .help = "How long one proxy call may take in all (connect included); a slower one is "
		 "error 100 to the client."},
	{"proxy-max-inflight", T_UINT, G(proxy_max_inflight), .def = "1000", .min = "1",
	 .max = "100000", .help = "Proxy calls in flight at once on this node; past it a command gets "
				  "error 111 (temporary)."},
	{"proxy-http-headers", T_STRING, GS(proxy_http_headers), .def = "",
	 .help = "Comma-separated names of the client's HTTP request headers the connect proxy "
		 "call carries (e.g. Cookie,Authorization,X-Real-Ip), at most 16."},
	{"proxy-static-header", T_STRING, GS(proxy_static_header), .def = "",
	 .help = "One \"Name: value\" header sent with every proxy call, so the backend can trust "
		 "it (e.g. \"Authorization: Bearer <secret>\"). Empty = none."},
	{"proxy-allow-private", T_BOOL, G(proxy_allow_private), .def = "off",
	 .help = "Let the proxy URLs be loopback, private and other internal addresses (off "
		 "refuses them, against SSRF; the usual backend next to herald needs it on)."},
	{"webhook-timeout", T_DURATION, G(webhook_timeout_ms), .def = "10s", .min = "100ms",
	 .max = "5m", .help = "How long one webhook delivery may take in all (connect included); "
			      "a slower one is a failed attempt."},
	{"webhook-max-per-host", T_UINT, G(webhook_max_per_host), .def = "8", .min = "1",
	 .max = "1000", .help = "Connections open at once to one webhook receiver host; more "
				"deliveries wait for one."},
	{"webhook-max-inflight", T_UINT, G(webhook_max_inflight), .def = "1000", .min = "1",
	 .max = "100000", .help = "Webhook deliveries in flight at once over all subscriptions."},
	{"webhook-allow-private", T_BOOL, G(webhook_allow_private), .def = "off",
	 .help = "Let webhook subscriptions call loopback, private, link-local and other internal "
		 "addresses (off refuses them, against SSRF; turn on only for tests and trusted "
		 "networks)."},
	{"webhook-time-scale", T_REAL, G(webhook_time_scale), .def = "1", .min = "0.0001",
	 .max = "1000", .help = "Multiplies every webhook retry delay and Retry-After wait "
				"(tests use e.g. 0.001 so that 5s becomes 5ms)."},
	{"webhook-subscriptions-max", T_UINT, G(webhook_subscriptions_max), .def = "1000",
	 .min = "1", .max = "100000", .help = "Webhook subscriptions herald keeps; creating more "
					      "gets 429."},
	{"webhook-pattern-topics-max", T_UINT, G(webhook_pattern_topics_max), .def = "1000",
	 .min = "1", .max = "100000", .help = "Topics one webhook subscription with a topic pattern "
					      "(\"orders.*\") delivers; matching topics past it are "
					      "skipped, counted and shown in its GET."},
	{"webhook-rotation-grace", T_DURATION, G(webhook_rotation_grace_ms), .def = "24h",
	 .min = "0", .max = "30d", .help = "After a webhook secret rotation, how long the previous "
					   "secret keeps signing next to the new one."},
	{"push-apns-key-file", T_STRING, GS(push_apns_key_file), .def = "",
	 .help = "APNs token-auth key (the .p8 file from the Apple Developer account, a PKCS#8 EC "
		 "P-256 key); with --push-apns-key-id, --push-apns-team-id and --push-apns-topic it "
		 "turns APNs on. Empty = no APNs."},
	{"push-apns-key-id", T_STRING, GS(push_apns_key_id), .def = "",
	 .help = "The 10-character Key ID of --push-apns-key-file (the kid of provider tokens)."},
	{"push-apns-team-id", T_STRING, GS(push_apns_team_id), .def = "",
	 .help = "The Apple Developer Team ID (the iss of provider tokens)."},
	{"push-apns-topic", T_STRING, GS(push_apns_topic), .def = "",
	 .help = "The app's bundle id, sent as apns-topic."},
	{"push-apns-environment", T_ENUM, GS(push_apns_environment), .def = "production",
	 .choices = "production|sandbox",
	 .help = "The environment of an APNs device registered without one. Each device's "
		 "environment picks the host: production (api.push.apple.com) or sandbox "
		 "(api.sandbox.push.apple.com, for development builds of the app)."},
	{"push-apns-url", T_STRING, GS(push_apns_url), .def = "",
	 .help = "Overrides the APNs origin (https://HOST:PORT) of both environments, for "
		 "tests; empty = the real hosts."},
	{"push-apns-sandbox-url", T_STRING, GS(push_apns_sandbox_url), .def = "",
	 .help = "Overrides the origin of the sandbox environment only, for tests; empty = "
		 "--push-apns-url, else api.sandbox.push.apple.com."},
	{"push-fcm-credentials-file", T_STRING, GS(push_fcm_credentials_file), .def = "",
	 .help = "Firebase service-account JSON file (client_email, private_key, token_uri, "
		 "project_id); turns FCM on. Empty = no FCM."},
	{"push-fcm-url", T_STRING, GS(push_fcm_url), .def = "",
	 .help = "Overrides the FCM send origin (https://HOST:PORT), for tests; empty = "
		 "https://fcm.googleapis.com. The token endpoint is the file's token_uri."},
	{"push-vapid-private-key-file", T_STRING, GS(push_vapid_private_key_file), .def = "",
	 .help = "Web Push application server key: a PEM EC P-256 private key (PKCS#8 or SEC1) or "
		 "the base64url private key `web-push generate-vapid-keys` prints; turns Web Push on. "
		 "Empty = no Web Push."},
	{"push-vapid-subject", T_STRING, GS(push_vapid_subject), .def = "",
	 .help = "Contact for push services, the sub of VAPID tokens: a mailto: or https: URI."},
	{"push-ca-file", T_STRING, GS(push_ca_file), .def = "",
	 .help = "Extra CA certificates (PEM) the push providers trust next to the system's, for "
		 "tests; empty = none."},
	{"push-allow-private", T_BOOL, G(push_allow_private), .def = "off",
	 .help = "Let push providers and Web Push endpoints be loopback, private and other internal "
		 "addresses, and Web Push endpoints plain http://localhost (for tests only)."},
	{"push-max-inflight", T_UINT, G(push_max_inflight), .def = "1000", .min = "1",
	 .max = "100000", .help = "Sends one push provider (APNs, FCM, Web Push) has in flight at most; "
				  "a send past it is refused for now and retried."},
	{"push-max-devices-per-user", T_UINT, G(push_max_devices_per_user), .def = "20", .min = "1",
	 .max = "1000", .help = "Devices one user may register for push."},
	{"push-silent-per-hour", T_UINT, G(push_silent_per_hour), .def = "3", .min = "1",
	 .max = "1000", .help = "Silent pushes one device gets in an hour; more are skipped and "
				"counted."},
	{"push-max-devices", T_UINT, G(push_max_devices), .def = "1000000", .min = "1",
	 .max = "100000000", .help = "Devices herald keeps in all (in memory, about 0.6 KiB each); "
				     "registering more gets 429."},
	{"keys-file", T_STRING, GS(keys_file), .def = "",
	 .help = "File of API keys, written by `herald keys` (empty = DATA-DIR/keys). With no key "
		 "there and none in [key NAME] sections, the REST API is open (for development)."},
	{"retention-max-age", T_DURATION, N(retention_max_age_ms), .def = "0", .min = "0", .max = "3650d",
	 .help = "Events older than this are removed (0 = keep forever). Namespace option."},
	{"retention-max-count", T_UINT, N(retention_max_count), .def = "0", .min = "0",
	 .max = "1000000000000", .help = "Most events kept per topic; older ones are removed (0 = no limit). "
				       "Namespace option."},
	{"dedup-window", T_DURATION, N(dedup_window_ms), .def = "10m", .min = "0", .max = "30d",
	 .help = "A publish with the (source, id) of an event stored this recently is a duplicate "
		 "(0 = no dedup). Namespace option."},
	{"max-event-size", T_SIZE, N(max_event_size), .def = "0", .min = "0", .max = "64m",
	 .help = "Largest event (bytes of its CloudEvent JSON) a topic takes; larger ones get 413 "
		 "(WebSocket: error 107) (0 = only --body-max and --ws-max-message). Namespace option."},
	{"join-leave", T_BOOL, N(join_leave), .def = "off",
	 .help = "Whether WebSocket subscribers that ask for it (join_leave) get a push when a "
		 "client subscribes to or leaves the topic. Namespace option."},
	{"history", T_BOOL, N(history), .def = "on",
	 .help = "Whether events are kept for reads and resume; off = offsets only. Namespace option."},
	{"subscribe", T_ENUM, NS(subscribe), .def = "anonymous", .choices = "anonymous|authenticated|token",
	 .help = "Which clients may subscribe (WebSocket, and SSE, long-poll and reads without an "
		 "API key): anonymous = any; authenticated = a client with a token; token = the "
		 "token's channels claim lists the topic, or a subscription token for it. "
		 "Namespace option."},
	{"publish", T_ENUM, NS(publish), .def = "authenticated",
	 .choices = "anonymous|authenticated|token|none",
	 .help = "Which WebSocket clients may publish (as for subscribe; none = only backends with "
		 "an API key). Namespace option."},
	{"history-access", T_ENUM, NS(history_access), .def = "subscribe",
	 .choices = "subscribe|subscribed|none",
	 .help = "Which WebSocket clients may read history: subscribe = those the subscribe rule "
		 "lets in; subscribed = only those subscribed to the topic; none = no client. "
		 "Namespace option."},
	{"presence-access", T_ENUM, NS(presence_access), .def = "subscribe",
	 .choices = "subscribe|subscribed|none",
	 .help = "Which WebSocket clients may see presence (as for history-access). Namespace option."},
	{"ws-publication", T_ENUM, NS(ws_publication), .def = "payload", .choices = "payload|envelope",
	 .help = "What a WebSocket publication's data is: payload = the event's data, with its other "
		 "attributes in the publication's tags (what Centrifugo SDK apps expect); envelope = the "
		 "whole CloudEvent. Namespace option."},
	{"proxy-subscribe", T_BOOL, N(proxy_subscribe), .def = "on",
	 .help = "Whether a WebSocket subscribe to the topic goes to the subscribe proxy "
		 "(--proxy-subscribe-url, when set); off = herald's own rules alone decide. "
		 "Namespace option."},
	{"proxy-publish", T_BOOL, N(proxy_publish), .def = "on",
	 .help = "Whether a WebSocket publish to the topic goes to the publish proxy "
		 "(--proxy-publish-url, when set); off = herald's own rules alone decide. "
		 "Namespace option."},
	{"proxy-sub-refresh", T_BOOL, N(proxy_sub_refresh), .def = "on",
	 .help = "Whether an expiring subscription to the topic goes to the sub-refresh proxy "
		 "(--proxy-sub-refresh-url, when set); off = it ends at its expire_at. "
		 "Namespace option."},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

/* The second, small table: the settings of a [key NAME] section. */
struct key_opt {
	const char *name;
	size_t off;
	size_t size;
	const char *help;
};

#define K(field) .off = offsetof(struct hd_key_section, field), \
		 .size = sizeof(((struct hd_key_section *)0)->field)

static const struct key_opt key_opts[] = {
	{"hash", K(hash), "sha256:<hex> of the key (as `herald keys create` writes it)."},
	{"scopes", K(scopes), "publish:NAMESPACE, publish:*, read, metrics, admin (spaces or commas between)."},
	{"created", K(created), "When it was made (RFC 3339; optional)."},
	{"expires", K(expires), "When it stops working (RFC 3339; optional, absent = never)."},
};
#define NKEYOPTS (sizeof(key_opts) / sizeof(key_opts[0]))

static const struct opt *find(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* Parses an unsigned number with an optional suffix from units[] (pairs of
 * suffix and multiplier; the first pair with suffix "" is the bare unit). */
struct unit {
	const char *suffix;
	uint64_t mult;
};

static const struct unit size_units[] = {{"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024},
	{"m", 1024 * 1024}, {"mb", 1024 * 1024}, {"g", 1024ULL * 1024 * 1024},
	{"gb", 1024ULL * 1024 * 1024}, {NULL, 0}};
static const struct unit duration_units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000},
	{"h", 3600000}, {"d", 86400000}, {NULL, 0}};
static const struct unit plain_units[] = {{"", 1}, {NULL, 0}};

static int parse_number(const char *s, const struct unit *units, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return HD_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return HD_EINVAL;
	for (const struct unit *u = units; u->suffix; u++) {
		if (strcasecmp(end, u->suffix) == 0) {
			if (u->mult && v > UINT64_MAX / u->mult)
				return HD_EINVAL;
			*out = v * u->mult;
			return 0;
		}
	}
	return HD_EINVAL;
}

static const struct unit *units_of(enum opt_type t)
{
	return t == T_SIZE ? size_units : t == T_DURATION ? duration_units : plain_units;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"on", "true", "yes", "1"}, *no[] = {"off", "false", "no", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return HD_EINVAL;
}

static bool in_choices(const char *choices, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, s, n) == 0)
			return true;
		if (!bar)
			break;
		p = bar + 1;
	}
	return false;
}

/* A decimal number (like 0.5 or 1e-3) within the option's bounds. */
static int apply_real(const struct opt *o, double *field, const char *value, const char *source,
		      struct hd_error *err)
{
	char *end;
	double v, lo = o->min ? strtod(o->min, NULL) : -HUGE_VAL, hi = o->max ? strtod(o->max, NULL) : HUGE_VAL;
	errno = 0;
	v = strtod(value, &end);
	if (!*value || *end || errno || !isfinite(v))
		return hd_error_set(err, HD_ECONFIG, "%s: %s: '%s' is not a number", source, o->name,
				    value);
	if (v < lo || v > hi)
		return hd_error_set(err, HD_ECONFIG, "%s: %s must be between %s and %s, not '%s'", source,
				    o->name, o->min ? o->min : "any", o->max ? o->max : "any", value);
	*field = v;
	return 0;
}

/* Stores value into the field at base + o->off. */
static int apply(const struct opt *o, void *base, const char *value, const char *source,
		 struct hd_error *err)
{
	char *field = (char *)base + o->off;
	uint64_t v = 0, lo = 0, hi = UINT64_MAX;

	switch (o->type) {
	case T_STRING:
		if (strlen(value) >= o->size)
			return hd_error_set(err, HD_ECONFIG, "%s: %s is longer than %zu bytes", source,
					    o->name, o->size - 1);
		strcpy(field, value);
		return 0;
	case T_ENUM:
		if (!in_choices(o->choices, value))
			return hd_error_set(err, HD_ECONFIG, "%s: %s must be one of %s, not '%s'", source,
					    o->name, o->choices, value);
		strcpy(field, value);
		return 0;
	case T_BOOL:
		if (parse_bool(value, (bool *)field))
			return hd_error_set(err, HD_ECONFIG, "%s: %s must be on or off, not '%s'", source,
					    o->name, value);
		return 0;
	case T_REAL:
		return apply_real(o, (double *)field, value, source, err);
	default:
		break;
	}
	if (parse_number(value, units_of(o->type), &v))
		return hd_error_set(err, HD_ECONFIG, "%s: %s: '%s' is not a %s", source, o->name, value,
				    o->type == T_SIZE ? "size (like 512k or 1m)"
				    : o->type == T_DURATION ? "duration (like 500ms, 10s, 5m, 1h, 7d)"
							    : "whole number");
	if (o->min)
		parse_number(o->min, units_of(o->type), &lo);
	if (o->max)
		parse_number(o->max, units_of(o->type), &hi);
	if (v < lo || v > hi)
		return hd_error_set(err, HD_ECONFIG, "%s: %s must be between %s and %s, not '%s'", source,
				    o->name, o->min ? o->min : "0", o->max ? o->max : "any", value);
	if (o->type == T_DURATION)
		*(int64_t *)field = (int64_t)v;
	else
		*(uint64_t *)field = v;
	return 0;
}

static void *base_of(struct hd_config *cfg, const struct opt *o)
{
	return o->ns ? (void *)&cfg->ns_default : (void *)cfg;
}

void hd_config_defaults(struct hd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS; i++)
		apply(&opts[i], base_of(cfg, &opts[i]), opts[i].def, "default", NULL);
}

int hd_config_set(struct hd_config *cfg, const char *name, const char *value, const char *source,
		  struct hd_error *err)
{
	const struct opt *o = find(name);
	if (!o)
		return hd_error_set(err, HD_ECONFIG, "%s: unknown option '%s' (see herald --help)", source,
				    name);
	return apply(o, base_of(cfg, o), value, source, err);
}

/* A namespace setting from the config file, applied once every other
 * source is loaded so that namespaces inherit the final top-level defaults. */
#define NS_SETTINGS_MAX 512
struct ns_setting {
	size_t ns;
	const struct opt *opt;
	char value[256];
	char where[1200];
};

struct file_state {
	struct ns_setting settings[NS_SETTINGS_MAX];
	size_t n;
};

static int ns_section(struct hd_config *cfg, const char *name, const char *where, size_t *out,
		      struct hd_error *err)
{
	for (size_t i = 0; i < cfg->nnamespaces; i++) {
		if (strcmp(cfg->namespaces[i].name, name) == 0) {
			*out = i;
			return 0;
		}
	}
	if (cfg->nnamespaces >= HD_NAMESPACE_MAX)
		return hd_error_set(err, HD_ECONFIG, "%s: more than %d namespaces", where,
				    HD_NAMESPACE_MAX);
	size_t len = strlen(name);
	if (len == 0 || len > HD_NAMESPACE_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~@-") != len)
		return hd_error_set(err, HD_ECONFIG, "%s: bad namespace name '%s'", where, name);
	snprintf(cfg->namespaces[cfg->nnamespaces].name, sizeof(cfg->namespaces[0].name), "%s", name);
	*out = cfg->nnamespaces++;
	return 0;
}

/* Opens a [key NAME] section; *ns becomes KEY_SECTION - index. */
#define KEY_SECTION (-2)
static int key_section(struct hd_config *cfg, const char *name, const char *where, long *ns,
		       struct hd_error *err)
{
	if (cfg->nkeys >= HD_CONFIG_KEYS_MAX)
		return hd_error_set(err, HD_ECONFIG, "%s: more than %d [key] sections", where,
				    HD_CONFIG_KEYS_MAX);
	struct hd_key_section *k = &cfg->keys[cfg->nkeys];
	memset(k, 0, sizeof(*k));
	if (strlen(name) >= sizeof(k->name) || !*name)
		return hd_error_set(err, HD_ECONFIG, "%s: bad key name '%s'", where, name);
	snprintf(k->name, sizeof(k->name), "%s", name);
	/* where ("FILE:LINE") is only for messages: cut it to fit. */
	size_t wl = strnlen(where, sizeof(k->where) - 1);
	memcpy(k->where, where, wl);
	k->where[wl] = '\0';
	*ns = KEY_SECTION - (long)cfg->nkeys++;
	return 0;
}

static int key_line(struct hd_config *cfg, long ns, const char *key, const char *value,
		    const char *where, struct hd_error *err)
{
	struct hd_key_section *k = &cfg->keys[KEY_SECTION - ns];
	for (size_t i = 0; i < NKEYOPTS; i++) {
		if (strcmp(key_opts[i].name, key) != 0)
			continue;
		if (strlen(value) >= key_opts[i].size)
			return hd_error_set(err, HD_ECONFIG, "%s: %s is longer than %zu bytes", where, key,
					    key_opts[i].size - 1);
		strcpy((char *)k + key_opts[i].off, value);
		return 0;
	}
	return hd_error_set(err, HD_ECONFIG, "%s: unknown key setting '%s' (hash, scopes, created, "
					   "expires)", where, key);
}

static int file_line(struct hd_config *cfg, struct file_state *st, char *s, const char *where,
		     long *ns, struct hd_error *err)
{
	if (*s == '[') {
		char *close = strchr(s, ']');
		size_t idx = 0;
		if (close && close[1] == '\0' && strncmp(s, "[key ", 5) == 0) {
			*close = '\0';
			return key_section(cfg, hd_text_trim(s + 5), where, ns, err);
		}
		if (!close || close[1] != '\0' || strncmp(s, "[namespace ", 11) != 0)
			return hd_error_set(err, HD_ECONFIG, "%s: expected [namespace NAME] or [key NAME]",
					    where);
		*close = '\0';
		int rc = ns_section(cfg, hd_text_trim(s + 11), where, &idx, err);
		*ns = (long)idx;
		return rc;
	}
	char *eq = strchr(s, '=');
	if (!eq)
		return hd_error_set(err, HD_ECONFIG, "%s: expected key = value", where);
	*eq = '\0';
	char *key = hd_text_trim(s), *value = hd_text_trim(eq + 1);
	size_t vl = strlen(value);
	if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
		value[vl - 1] = '\0';
		value++;
	}
	if (*ns <= KEY_SECTION)
		return key_line(cfg, *ns, key, value, where, err);
	const struct opt *o = find(key);
	if (!o || strcmp(key, "config") == 0)
		return hd_error_set(err, HD_ECONFIG, "%s: unknown option '%s'", where, key);
	if (*ns < 0)
		return apply(o, base_of(cfg, o), value, where, err);
	if (!o->ns)
		return hd_error_set(err, HD_ECONFIG, "%s: %s is not a namespace option", where, key);
	if (st->n >= NS_SETTINGS_MAX)
		return hd_error_set(err, HD_ECONFIG, "%s: too many namespace settings", where);
	struct ns_setting *set = &st->settings[st->n++];
	set->ns = (size_t)*ns;
	set->opt = o;
	snprintf(set->value, sizeof(set->value), "%s", value);
	snprintf(set->where, sizeof(set->where), "%s", where);
	/* Check the value now so the error names the line it is on. */
	struct hd_ns_opts scratch = cfg->ns_default;
	return apply(o, &scratch, value, where, err);
}

static int load_file(struct hd_config *cfg, struct file_state *st, const char *path,
		     struct hd_error *err)
{
	char line[2048], where[1200];
	long ns = -1;
	int rc = 0, lineno = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return hd_error_set(err, HD_ECONFIG, "cannot open config file %s: %s", path,
				    strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		char *s = hd_text_trim(line);
		if (*s != '\0' && *s != '#' && *s != ';')
			rc = file_line(cfg, st, s, where, &ns, err);
	}
	fclose(f);
	return rc;
}

static void env_name(const char *name, char *out, size_t n)
{
	size_t i = (size_t)snprintf(out, n, "HERALD_");
	for (; *name && i + 1 < n; name++)
		out[i++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	out[i] = '\0';
}

static const char *env_get(char **env, const char *key)
{
	size_t n = strlen(key);
	for (; env && *env; env++)
		if (strncmp(*env, key, n) == 0 && (*env)[n] == '=')
			return *env + n + 1;
	return NULL;
}

/* Returns the value of flag argv[*i] ("--name=value" or "--name value"). */
static int flag_value(int argc, char **argv, int *i, char *name, size_t name_n, const char **value,
		      struct hd_error *err)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	if (len >= name_n)
		return hd_error_set(err, HD_ECONFIG, "unknown flag %s", argv[*i]);
	memcpy(name, arg, len);
	name[len] = '\0';
	if (eq) {
		*value = eq + 1;
		return 0;
	}
	const struct opt *o = find(name);
	if (!o)
		return hd_error_set(err, HD_ECONFIG, "--%s: unknown option '%s' (see herald --help)",
				    name, name);
	if (o->type == T_BOOL && (*i + 1 >= argc || argv[*i + 1][0] == '-')) {
		*value = "on";
		return 0;
	}
	if (*i + 1 >= argc)
		return hd_error_set(err, HD_ECONFIG, "flag --%s needs a value", name);
	*value = argv[++*i];
	return 0;
}

int hd_config_load(struct hd_config *cfg, int argc, char **argv, char **environ_,
		   const char **positional, size_t max_positional, size_t *npositional,
		   struct hd_error *err)
{
	char name[64], key[96];
	const char *value, *file = env_get(environ_, "HERALD_CONFIG");
	struct file_state *st = NULL;
	int rc = 0;

	*npositional = 0;
	/* The config file comes first, so find --config before anything else. */
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--config", 8) == 0 && (argv[i][8] == '=' || argv[i][8] == '\0')) {
			int j = i;
			if ((rc = flag_value(argc, argv, &j, name, sizeof(name), &value, err)))
				return rc;
			file = value;
		}
	}
	if (file && *file) {
		st = hd_calloc(1, sizeof(*st));
		if ((rc = load_file(cfg, st, file, err)))
			goto out;
		snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", file);
	}
	for (size_t i = 0; i < NOPTS; i++) {
		env_name(opts[i].name, key, sizeof(key));
		if (strcmp(opts[i].name, "config") != 0 && (value = env_get(environ_, key))) {
			if ((rc = apply(&opts[i], base_of(cfg, &opts[i]), value, key, err)))
				goto out;
		}
	}
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
			if (*npositional >= max_positional) {
				rc = hd_error_set(err, HD_ECONFIG, "unexpected argument '%s'", argv[i]);
				goto out;
			}
			positional[(*npositional)++] = argv[i];
			continue;
		}
		if ((rc = flag_value(argc, argv, &i, name, sizeof(name), &value, err)))
			goto out;
		snprintf(key, sizeof(key), "--%s", name);
		if ((rc = hd_config_set(cfg, name, value, key, err)))
			goto out;
	}
	/* Namespaces start from the final defaults, then take their own settings. */
	for (size_t i = 0; i < cfg->nnamespaces; i++)
		cfg->namespaces[i].opts = cfg->ns_default;
	for (size_t i = 0; st && i < st->n && rc == 0; i++)
		rc = apply(st->settings[i].opt, &cfg->namespaces[st->settings[i].ns].opts,
			   st->settings[i].value, st->settings[i].where, err);
out:
	free(st);
	return rc;
}

const struct hd_ns_opts *hd_config_ns(const struct hd_config *cfg, const char *topic)
{
	const char *colon = strchr(topic, ':');
	if (colon) {
		size_t len = (size_t)(colon - topic);
		for (size_t i = 0; i < cfg->nnamespaces; i++)
			if (strlen(cfg->namespaces[i].name) == len &&
			    strncmp(cfg->namespaces[i].name, topic, len) == 0)
				return &cfg->namespaces[i].opts;
	}
	return &cfg->ns_default;
}

static const char *type_name(const struct opt *o)
{
	static const char *names[] = {"string", "number", "size", "duration", "bool", "enum",
				      "decimal"};
	return names[o->type];
}

void hd_config_help(struct hd_buf *out)
{
	char key[96];
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		env_name(o->name, key, sizeof(key));
		hd_buf_printf(out, "  --%-22s %s (default: %s; env %s)\n", o->name, o->help,
			      *o->def ? o->def : "none", key);
	}
}

void hd_config_doc(struct hd_buf *out)
{
	char key[96];
	hd_buf_puts(out,
		    "# Configuration\n\n"
		    "<!-- Generated by `herald config-doc` from the option table in src/core/config.c; "
		    "a test checks it matches. -->\n\n"
		    "Every option can be set, lowest precedence first, by its default, in the config "
		    "file (`--config FILE` or `HERALD_CONFIG`), as an environment variable, or as a "
		    "command-line flag.\n\n"
		    "Sizes take `k`, `m`, `g` suffixes (1024-based). Durations take `ms`, `s`, `m`, `h`, "
		    "`d`; a bare number is seconds. Booleans are `on`/`off` (also true/false, yes/no, "
		    "1/0).\n\n"
		    "Options marked *namespace* may also appear in a `[namespace NAME]` section of the "
		    "config file, where they apply to the topics `NAME:...`; at top level they are the "
		    "defaults for all other topics.\n\n"
		    "```\n# herald.conf\nlisten = 127.0.0.1:8080\nsync = full\ndedup-window = 10m\n\n"
		    "[namespace rides]\nretention-max-age = 1h\nsubscribe = token\n\n"
		    "[namespace presence]\nhistory = off\n\n"
		    "[key billing]\nhash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
		    "scopes = publish:rides read\nexpires = 2027-01-01T00:00:00Z\n"
		    "```\n\n"
		    "A `[key NAME]` section declares an API key (see [api.md](api.md#authentication)); "
		    "`herald keys create` prints one. Its settings:\n\n"
		    "| setting | meaning |\n|---|---|\n");
	for (size_t i = 0; i < NKEYOPTS; i++)
		hd_buf_printf(out, "| `%s` | %s |\n", key_opts[i].name, key_opts[i].help);
	hd_buf_puts(out, "\nThe options:\n\n"
			 "| option | environment | type | default | range | meaning |\n"
			 "|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		env_name(o->name, key, sizeof(key));
		hd_buf_printf(out, "| `--%s` | `%s` | %s%s | %s%s%s | ", o->name, key, type_name(o),
			      o->ns ? ", namespace" : "", *o->def ? "`" : "", *o->def ? o->def : "none",
			      *o->def ? "`" : "");
		if (o->choices)
			hd_buf_printf(out, "%s", o->choices);
		else if (o->min || o->max)
			hd_buf_printf(out, "%s – %s", o->min ? o->min : "0", o->max ? o->max : "");
		hd_buf_printf(out, " | %s |\n", o->help);
	}
}
