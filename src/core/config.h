/*
 * config — herald's settings and the one option table that drives the
 * command line, environment variables, the config file, `herald --help`
 * and docs/config.md.
 * Layer: core. Loaded once by main.c before anything starts; read-only
 * afterwards, so any thread may read it.
 *
 * Precedence, lowest first: built-in default, config file, environment
 * (HERALD_<NAME> with '-' as '_', upper-case), command-line flag (--name).
 *
 * Config file format (UTF-8 text):
 *     # comment
 *     listen = 127.0.0.1:8080
 *     sync = full
 *
 *     [namespace rides]
 *     retention-max-age = 1h
 *     history = on
 * Options marked "namespace" in the table may appear inside a
 * [namespace NAME] section, where they apply to topics "NAME:..."; at top
 * level they are the defaults for every other topic.
 *
 * A [key NAME] section declares an API key (auth/keys.h) with the settings
 * of a second, small table: hash, scopes, created, expires. config keeps
 * them as text; main.c hands them to the key store, which checks them.
 *
 * Values: sizes take k/m/g suffixes (1024-based), durations ms/s/m/h/d
 * (a bare number is seconds), booleans on/off/true/false/yes/no/1/0.
 */
#ifndef HD_CONFIG_H
#define HD_CONFIG_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hd_buf;

#define HD_NAMESPACE_MAX 64       /* namespaces in one config */
#define HD_NAMESPACE_NAME_MAX 64

/* Per-namespace options (the policy a topic gets). */
struct hd_ns_opts {
	int64_t retention_max_age_ms;  /* 0 = keep forever */
	uint64_t retention_max_count;  /* 0 = no limit */
	int64_t dedup_window_ms;       /* 0 = no dedup */
	uint64_t max_event_size;       /* bytes of an event's JSON; 0 = only --body-max */
	bool history;
	bool join_leave;               /* WebSocket join/leave pushes */
	/* Client permissions (auth/acl.h): */
	char subscribe[16];            /* anonymous | authenticated | token */
	char publish[16];              /* anonymous | authenticated | token | none */
	char history_access[16];       /* subscribe | subscribed | none */
	char presence_access[16];      /* subscribe | subscribed | none */
	char ws_publication[16];       /* payload | envelope (docs/websocket.md) */
	/* Whether the topic's WebSocket commands go to the app backend's proxy,
	 * when its URL is set (edge/cproxy.h; off = herald's rules alone): */
	bool proxy_subscribe;
	bool proxy_publish;
	bool proxy_sub_refresh;
};

struct hd_namespace {
	char name[HD_NAMESPACE_NAME_MAX + 1];
	struct hd_ns_opts opts;
};

#define HD_CONFIG_KEYS_MAX 64     /* [key NAME] sections in one config file */

/* A [key NAME] section, as text (checked by hd_keys_add_text). */
struct hd_key_section {
	char name[HD_NAMESPACE_NAME_MAX + 1];
	char hash[80];
	char scopes[256];
	char created[40];
	char expires[40];
	char where[300];               /* "FILE:LINE" of the section, for messages */
};

struct hd_config {
	char listen[128];
	char tls_listen[128];
	char tls_cert[1024];
	char tls_key[1024];
	char data_dir[1024];
	char config_file[1024];
	char sync[8];
	char log_level[8];
	uint64_t body_max;
	uint64_t header_max;
	uint64_t max_headers;
	int64_t header_timeout_ms;
	int64_t idle_timeout_ms;
	int64_t shutdown_timeout_ms;
	uint64_t max_connections;
	uint64_t listen_backlog;
	char trusted_proxies[1024];
	bool proxy_protocol;
	uint64_t max_connections_per_ip;
	uint64_t connection_rate_per_ip;
	uint64_t connection_burst_per_ip;
	uint64_t publish_rate_per_key;
	uint64_t publish_burst_per_key;
	uint64_t publish_rate_per_connection;
	uint64_t publish_burst_per_connection;
	uint64_t max_topics_total;
	uint64_t max_pending_bytes;
	int64_t sse_keepalive_ms;
	int64_t sse_retry_ms;
	uint64_t max_topics;
	uint64_t dedup_max_entries;
	uint64_t commit_max_events;
	uint64_t queue_max_events;
	uint64_t ring_events;
	uint64_t ring_bytes;
	uint64_t readers;
	int64_t maintenance_interval_ms;
	char cors_origins[1024];
	char node_name[256];
	char engine[8];
	char redis_url[2048];
	char redis_durability[16];
	char redis_sentinel[1024];
	char redis_master_name[512];
	int64_t redis_wait_timeout_ms;
	bool redis_transactions;
	char jwt_secret[1024];
	char jwt_public_key[1024];
	char jwt_jwks[1024];
	char jwt_audience[256];
	char jwt_issuer[256];
	bool ws_anonymous;
	int64_t ws_ping_interval_ms;
	int64_t ws_pong_timeout_ms;
	int64_t ws_connect_timeout_ms;
	int64_t ws_expiry_grace_ms;
	uint64_t ws_max_message;
	uint64_t ws_recover_max;
	uint64_t ws_max_subscriptions;
	char proxy_connect_url[1024];   /* proxies to the app backend (edge/cproxy.h) */
	char proxy_subscribe_url[1024];
	char proxy_publish_url[1024];
	char proxy_rpc_url[1024];
	char proxy_refresh_url[1024];
	char proxy_sub_refresh_url[1024];
	int64_t proxy_sub_refresh_retry_ms;
	int64_t proxy_timeout_ms;
	uint64_t proxy_max_inflight;
	char proxy_http_headers[1024];
	char proxy_static_header[1024];
	bool proxy_allow_private;
	int64_t webhook_timeout_ms;
	uint64_t webhook_max_per_host;
	uint64_t webhook_max_inflight;
	bool webhook_allow_private;
	bool ui;                        /* serve the admin console at /ui */
	double webhook_time_scale;
	uint64_t webhook_subscriptions_max;
	uint64_t webhook_pattern_topics_max;
	int64_t webhook_rotation_grace_ms;
	char keys_file[1024];
	char push_apns_key_file[1024];
	char push_apns_key_id[64];
	char push_apns_team_id[64];
	char push_apns_topic[256];
	char push_apns_environment[16];
	char push_apns_url[1024];
	char push_apns_sandbox_url[1024];
	char push_fcm_credentials_file[1024];
	char push_fcm_url[1024];
	char push_vapid_private_key_file[1024];
	char push_vapid_subject[256];
	char push_ca_file[1024];
	bool push_allow_private;
	uint64_t push_max_inflight;
	uint64_t push_max_devices_per_user;
	uint64_t push_max_devices;
	uint64_t push_silent_per_hour;
	struct hd_ns_opts ns_default;
	struct hd_namespace namespaces[HD_NAMESPACE_MAX];
	size_t nnamespaces;
	struct hd_key_section keys[HD_CONFIG_KEYS_MAX];
	size_t nkeys;
};

/* Fills cfg with every default. */
void hd_config_defaults(struct hd_config *cfg);

/*
 * Applies the config file (the --config flag or HERALD_CONFIG, if any), then
 * the environment, then argv (the flags after the subcommand). Unknown
 * flags, bad values and out-of-range values give HD_ECONFIG with a message
 * naming the option, its source and the accepted range. argv entries that
 * are not flags are returned in positional[] (at most max_positional;
 * more is an error).
 */
int hd_config_load(struct hd_config *cfg, int argc, char **argv, char **environ_,
		   const char **positional, size_t max_positional, size_t *npositional,
		   struct hd_error *err);

/* Sets one option by name from text (as a flag would). */
int hd_config_set(struct hd_config *cfg, const char *name, const char *value, const char *source,
		  struct hd_error *err);

/* The options of the namespace a topic belongs to ("rides:981" → rides). */
const struct hd_ns_opts *hd_config_ns(const struct hd_config *cfg, const char *topic);

/* Appends the option list for --help (flag, default, help). */
void hd_config_help(struct hd_buf *out);
/* Appends docs/config.md. */
void hd_config_doc(struct hd_buf *out);

#endif
