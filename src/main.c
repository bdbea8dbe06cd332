/*
 * main — herald's entry point: subcommands, configuration, signals, and the
 * start and stop order of the server.
 *
 * Start: config → logging → loop → hub → device registry and push
 * providers (a bad key file is an exit 2 before the store opens) → engine
 * (opens the store, starts the writer thread) → HTTP listener. Stop (SIGTERM/SIGINT): stop accepting
 * and let in-flight requests finish (publishes wait for their commit) →
 * engine stop (the writer commits whatever is queued, the store is flushed
 * and closed) → loop closes → exit 0. A second signal exits at once.
 * SIGHUP reads the API keys again (the keys file and the config file's [key]
 * sections, read anew; a bad file keeps the keys in use) and, with
 * --tls-listen, the certificate and key for new HTTPS connections (a failed
 * reload keeps the old ones).
 */
#include "auth/jwt.h"
#include "auth/keys.h"
#include "cli/check_config_cmd.h"
#include "cli/client.h"
#include "cli/keys_cmd.h"
#include "cli/push_cmd.h"
#include "cli/stats_cmd.h"
#include "cli/tail_cmd.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "edge/cproxy.h"
#include "edge/api.h"
#include "edge/push_http.h"
#include "edge/webhook_http.h"
#include "push/devices.h"
#include "push/push.h"
#include "push/push_delivery.h"
#include "webhook/delivery.h"
#include "engine/local.h"
#include "engine/redis.h"
#include "store/store.h"
#include "http/fdlimit.h"
#include "http/forwarded.h"
#include "http/server.h"
#include "hub/hub.h"
#include "edge/stats.h"
#include "edge/ui.h"
#include "net/tls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct server {
	uv_loop_t *loop;
	struct hd_config cfg;
	struct hd_hub *hub;
	struct hd_engine *engine;
	struct hd_http_server *http;
	struct hd_api *api;
	struct hd_stats *stats; /* GET /v1/stats */
	struct hd_webhooks *webhooks;
	struct hd_cproxy *cproxy;               /* proxies to the app backend */
	struct hd_devices *devices;
	struct hd_push *push;
	struct hd_push_delivery *push_delivery; /* push subscriptions */
	struct hd_jwt_keys *keys;
	struct hd_keys *api_keys;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup;
	uv_timer_t load_delay;           /* HERALD_TEST_LOAD_DELAY_MS */
	bool load_delay_on;
	bool tls;
	bool stopping;
	int argc;    /* serve's arguments, to read the config again on SIGHUP */
	char **argv;
};

static void usage(FILE *f)
{
	struct hd_buf b;
	hd_buf_init(&b, 1 << 20);
	hd_config_help(&b);
	fprintf(f,
		"herald %s — a durable real-time event hub\n\n"
		"Usage:\n"
		"  herald serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE] [options]\n"
		"  herald publish TOPIC [DATA|-] [--type T] [--source S] [--id ID] [--server URL]\n"
		"  herald read TOPIC [--after N] [--limit M] [--server URL]\n"
		"  herald tail TOPIC [--after N] [--json] [--server URL]   follow a topic live (SSE)\n"
		"  herald stats [--json] [--server URL]   the node's overview (an admin key)\n"
		"  herald keys create NAME --scope S [--scope S] [--expires 30d]   (prints the key once)\n"
		"  herald keys list | herald keys revoke NAME   [--keys-file F | --data-dir D]\n"
		"  herald push vapid-keys [--json]   print a new Web Push key pair\n"
		"  herald check-config FILE   validate a config file (exit 0 ok, 1 with the reason)\n"
		"  herald version\n"
		"  herald config-doc      print docs/config.md\n"
		"  herald --help\n\n"
		"Options of serve (each also as HERALD_<NAME> and in the config file):\n%s\n"
		"The client commands use --server (default $HERALD_SERVER or http://127.0.0.1:8080)\n"
		"and --api-key (default $HERALD_API_KEY).\n",
		HD_VERSION, b.data ? b.data : "");
	hd_buf_fini(&b);
}

static void on_http_closed(void *arg)
{
	struct server *s = arg;
	/* Every request has been answered: the store commits what is queued,
	 * closes, and the engine releases its loop handle. */
	hd_hub_set_engine(s->hub, NULL); /* no registry writes into a freed engine */
	s->engine->ops->free(s->engine);
	s->engine = NULL;
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sighup, NULL);
}

/* The API keys: the keys file (DATA-DIR/keys unless --keys-file; a missing
 * default file is no keys) and the config's [key NAME] sections. */
static int load_keys(const struct hd_config *cfg, struct hd_keys **out, struct hd_error *err)
{
	char path[1100];
	struct hd_keys *ks = hd_keys_new();
	int rc = 0;

	if (cfg->keys_file[0])
		snprintf(path, sizeof(path), "%s", cfg->keys_file);
	else
		snprintf(path, sizeof(path), "%s/keys", cfg->data_dir);
	rc = hd_keys_load_file(ks, path, !cfg->keys_file[0], err);
	for (size_t i = 0; rc == 0 && i < cfg->nkeys; i++) {
		const struct hd_key_section *k = &cfg->keys[i];
		rc = hd_keys_add_text(ks, k->name, k->hash, k->scopes, k->created, k->expires, k->where,
				      err);
	}
	if (rc) {
		hd_keys_free(ks);
		return rc;
	}
	*out = ks;
	return 0;
}

/* SIGHUP, with --tls-listen: a new certificate and key for new HTTPS
 * connections. */
static void tls_reload(struct server *s)
{
	struct hd_error err = {0};
	struct hd_tls_ctx *ctx;
	char desc[512];

	if (!s->tls)
		return;
	if (hd_tls_ctx_new(s->cfg.tls_cert, s->cfg.tls_key, &ctx, &err)) {
		hd_log_error("tls_reload_failed reason=\"%s\" (the previous certificate stays)", err.msg);
		return;
	}
	hd_tls_ctx_describe(ctx, desc, sizeof(desc));
	hd_http_server_set_tls(s->http, ctx);
	hd_log_info("tls_reloaded cert=%s %s", s->cfg.tls_cert, desc);
}

static void on_sighup(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	struct hd_keys *ks = NULL;
	struct hd_error err = {0};
	(void)signum;
	if (s->stopping)
		return;
	/* The configuration as it is now (file, environment, flags), for its
	 * [key] sections; the other options keep their values from start. */
	struct hd_config *cfg = hd_malloc(sizeof(*cfg));
	const char *pos[1];
	size_t npos;
	hd_config_defaults(cfg);
	int rc = hd_config_load(cfg, s->argc, s->argv, environ, pos, 0, &npos, &err);
	if (rc == 0)
		rc = load_keys(cfg, &ks, &err);
	free(cfg);
	if (rc) {
		hd_log_warn("keys_reload_failed error=\"%s\" keys=%zu", err.msg,
			    hd_keys_count(s->api_keys));
		tls_reload(s);
		return;
	}
	/* Requests borrow the store only while they are handled (on this
	 * thread), so the old one can go now. */
	hd_api_set_keys(s->api, ks, s->keys);
	hd_keys_free(s->api_keys);
	s->api_keys = ks;
	hd_log_info("keys_reloaded keys=%zu", hd_keys_count(ks));
	tls_reload(s);
}

/* The HTTP server of a failed start has closed its listener. */
static void on_listen_failed_closed(void *arg)
{
	(void)arg;
}

/* Begins loading the webhook subscriptions, the device registry and the
 * push subscriptions. */
static void start_loads(struct server *s)
{
	hd_webhook_http_start(s->api->subs);
	hd_devices_start(s->devices);
	hd_push_delivery_start(s->push_delivery);
}

static void on_load_delay(uv_timer_t *t)
{
	struct server *s = t->data;
	s->load_delay_on = false;
	uv_close((uv_handle_t *)t, NULL);
	start_loads(s);
}

/* The test hook's timer, if it has not fired: the loads never begin. */
static void stop_load_delay(struct server *s)
{
	if (!s->load_delay_on)
		return;
	s->load_delay_on = false;
	uv_close((uv_handle_t *)&s->load_delay, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	if (s->stopping) {
		hd_log_warn("second_signal_exiting_now signal=%d", signum);
		_exit(1);
	}
	s->stopping = true;
	hd_log_info("stopping signal=%d connections=%zu", signum, hd_http_server_connections(s->http));
	/* Held long-polls are answered and SSE streams ended now so they do
	 * not hold the stop. */
	hd_api_stop(s->api);
	stop_load_delay(s);
	hd_cproxy_close(s->cproxy);
	hd_webhooks_stop(s->webhooks);
	hd_push_delivery_stop(s->push_delivery);
	hd_devices_stop(s->devices);
	hd_http_server_shutdown(s->http, on_http_closed, s);
}

/* The device registry and the push providers, once the hub exists. 0, or
 * HD_ECONFIG with err (a provider's options or key file). */
static int new_push(struct server *s, struct hd_error *err)
{
	struct hd_devices_opts dopts = {
		.max_per_user = (size_t)s->cfg.push_max_devices_per_user,
		.max_total = (size_t)s->cfg.push_max_devices,
	};
	s->devices = hd_devices_new(s->loop, s->hub, &dopts);
	return hd_push_new(s->loop, &s->cfg, s->hub, s->devices, &s->push, err);
}

/* The registries' loading (the engine is set, the webhook routes added)
 * and the push routes. The
 * test hook HERALD_TEST_LOAD_DELAY_MS=N begins the loads N ms later, so
 * the e2e tests can send requests while they are loading. */
static void start_push(struct server *s)
{
	const char *env = getenv("HERALD_TEST_LOAD_DELAY_MS");
	long delay = env ? strtol(env, NULL, 10) : 0;

	hd_api_set_push(s->api, s->devices, &(struct hd_push_http_opts){
		.allow_private = s->cfg.push_allow_private,
		.apns_environment = s->cfg.push_apns_environment,
		.push = s->push,
	});
	s->push_delivery = hd_push_delivery_new(s->loop, s->hub, s->push,
		&(struct hd_push_delivery_opts){
			.silent_per_hour = (uint32_t)s->cfg.push_silent_per_hour,
		});
	hd_api_set_push_subs(s->api, s->push_delivery);
	if (delay <= 0) {
		start_loads(s);
		return;
	}
	uv_timer_init(s->loop, &s->load_delay);
	s->load_delay.data = s;
	uv_timer_start(&s->load_delay, on_load_delay, (uint64_t)delay, 0);
	s->load_delay_on = true;
}

/* Splits "host:port", "[v6]:port" or ":port". */
static int split_listen(const char *listen, char *host, size_t host_n, int *port)
{
	const char *colon = strrchr(listen, ':');
	if (!colon)
		return -1;
	size_t hl = (size_t)(colon - listen);
	const char *h = listen;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0) {
		h = "0.0.0.0";
		hl = 7;
	}
	if (hl >= host_n)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 0 || p > 65535 || colon[1] == '\0')
		return -1;
	*port = (int)p;
	return 0;
}

static enum hd_store_sync sync_mode(const char *s)
{
	return strcmp(s, "off") == 0 ? HD_SYNC_OFF : strcmp(s, "normal") == 0 ? HD_SYNC_NORMAL
										 : HD_SYNC_FULL;
}

/* A reconnect storm: the open-files limit raised and the descriptor table
 * grown while this is the only thread (http/fdlimit.h). Too small a limit
 * is a warning, not a refusal: the defaults must start on a system whose
 * hard limit is low, and accepts beyond it are counted and logged. */
static void prepare_descriptors(const struct hd_config *cfg)
{
	struct hd_fdlimit_report r;
	int somaxconn = hd_fdlimit_somaxconn();

	hd_fdlimit_prepare(cfg->max_connections, &r);
	hd_log_info("open_files soft_was=%llu soft=%llu hard=%llu wanted=%llu table=%llu",
		    (unsigned long long)r.soft_before, (unsigned long long)r.soft,
		    (unsigned long long)r.hard, (unsigned long long)r.wanted,
		    (unsigned long long)r.table);
	if (!r.fits)
		hd_log_warn("open_files_too_few limit=%llu max_connections=%llu needed=%llu (connections "
			    "past the limit are closed at accept; raise LimitNOFILE / ulimit -n or "
			    "lower --max-connections)",
			    (unsigned long long)r.soft, (unsigned long long)cfg->max_connections,
			    (unsigned long long)r.wanted);
	if (somaxconn > 0 && (uint64_t)somaxconn < cfg->listen_backlog)
		hd_log_warn("listen_backlog_capped backlog=%llu somaxconn=%d (raise net.core.somaxconn)",
			    (unsigned long long)cfg->listen_backlog, somaxconn);
}

static enum hd_redis_durability redis_durability(const char *s)
{
	return strcmp(s, "none") == 0 ? HD_REDIS_NONE : strcmp(s, "primary") == 0 ? HD_REDIS_PRIMARY
										   : HD_REDIS_REPLICATED;
}

/* The default node name with the engine redis: host name + ":" + the
 * listen port (or the TLS one), so that nodes on one host differ. */
static void node_name_add_port(struct hd_config *cfg)
{
	const char *listen = cfg->listen[0] ? cfg->listen : cfg->tls_listen;
	const char *colon = strrchr(listen, ':');
	size_t n = strlen(cfg->node_name);
	if (colon && colon[1])
		snprintf(cfg->node_name + n, sizeof(cfg->node_name) - n, ":%s", colon + 1);
}

static int serve(int argc, char **argv)
{
	struct server s = {0};
	struct hd_error err = {0};
	struct hd_tls_ctx *tls_ctx = NULL;
	const char *pos[1];
	size_t npos;
	char host[256];
	int port, rc;
	int exit_code = 2; /* 2: bad configuration, 1: could not start, 0: stopped */

	s.argc = argc;
	s.argv = argv;
	hd_config_defaults(&s.cfg);
	if (hd_config_load(&s.cfg, argc, argv, environ, pos, 0, &npos, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	hd_log_parse_level(s.cfg.log_level, &hd_log_min);
	bool node_name_default = !s.cfg.node_name[0];
	if (!s.cfg.node_name[0] && gethostname(s.cfg.node_name, sizeof(s.cfg.node_name) - 1))
		snprintf(s.cfg.node_name, sizeof(s.cfg.node_name), "herald");
	if (node_name_default && !strcmp(s.cfg.engine, "redis"))
		node_name_add_port(&s.cfg); /* unique per node on one host */
	const char *secrets[] = {s.cfg.jwt_secret, NULL};
	const char *pubkeys[] = {s.cfg.jwt_public_key, NULL};
	const char *jwks[] = {s.cfg.jwt_jwks, NULL};
	struct hd_jwt_config jc = {
		.hmac_secrets = s.cfg.jwt_secret[0] ? secrets : NULL,
		.public_key_files = s.cfg.jwt_public_key[0] ? pubkeys : NULL,
		.jwks_files = s.cfg.jwt_jwks[0] ? jwks : NULL,
		.audience = s.cfg.jwt_audience[0] ? s.cfg.jwt_audience : NULL,
		.issuer = s.cfg.jwt_issuer[0] ? s.cfg.jwt_issuer : NULL,
		.leeway_s = 0,
	};
	if (hd_jwt_keys_new(&jc, &s.keys, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	if (load_keys(&s.cfg, &s.api_keys, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	struct hd_forwarded trusted;
	if (hd_forwarded_parse(&trusted, s.cfg.trusted_proxies, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	if (s.cfg.listen[0] && split_listen(s.cfg.listen, host, sizeof(host), &port)) {
		fprintf(stderr, "herald: --listen must be HOST:PORT, not '%s'\n", s.cfg.listen);
		goto out;
	}
	/* TLS settings are checked and the files loaded before the store
	 * opens, so that a bad file is a quick, clear exit 2. */
	char tls_host[256];
	int tls_port = 0;
	const char *tls_problem = NULL;
	s.tls = s.cfg.tls_listen[0] != '\0';
	if (!s.cfg.listen[0] && !s.tls)
		tls_problem = "--listen is empty and there is no --tls-listen: nothing to serve on";
	else if (s.tls && (!s.cfg.tls_cert[0] || !s.cfg.tls_key[0]))
		tls_problem = "--tls-listen needs --tls-cert and --tls-key";
	else if (!s.tls && (s.cfg.tls_cert[0] || s.cfg.tls_key[0]))
		tls_problem = "--tls-cert and --tls-key need --tls-listen";
	else if (s.tls && split_listen(s.cfg.tls_listen, tls_host, sizeof(tls_host), &tls_port))
		tls_problem = "--tls-listen must be HOST:PORT";
	if (!tls_problem && s.tls && hd_tls_ctx_new(s.cfg.tls_cert, s.cfg.tls_key, &tls_ctx, &err))
		tls_problem = err.msg;
	if (tls_problem) {
		fprintf(stderr, "herald: %s\n", tls_problem);
		goto out;
	}
	char tls_desc[512] = "";
	if (tls_ctx)
		hd_tls_ctx_describe(tls_ctx, tls_desc, sizeof(tls_desc));
	/* After every configuration check (whose errors come first on
	 * stderr), before any thread exists (the store's writer, the libuv
	 * pool, libcurl's resolver). */
	prepare_descriptors(&s.cfg);
	signal(SIGPIPE, SIG_IGN);
	s.loop = uv_default_loop();
	s.hub = hd_hub_new(&s.cfg);
	if (new_push(&s, &err)) { /* a bad push key file is a startup error */
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	struct hd_cproxy_opts cp_opts = {
		.url = {s.cfg.proxy_connect_url, s.cfg.proxy_subscribe_url, s.cfg.proxy_publish_url,
			s.cfg.proxy_rpc_url, s.cfg.proxy_refresh_url, s.cfg.proxy_sub_refresh_url},
		.timeout_ms = (uint32_t)s.cfg.proxy_timeout_ms,
		.max_inflight = (uint32_t)s.cfg.proxy_max_inflight,
		.http_headers = s.cfg.proxy_http_headers,
		.static_header = s.cfg.proxy_static_header,
		.allow_private = s.cfg.proxy_allow_private,
	};
	s.cproxy = hd_cproxy_new(s.loop, &cp_opts, &err);
	if (!s.cproxy) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}

	struct hd_local_opts lo = {
		.store = {
			.dir = s.cfg.data_dir,
			.sync = sync_mode(s.cfg.sync),
			.commit_max_events = s.cfg.commit_max_events,
			.queue_max_events = s.cfg.queue_max_events,
			.maintenance_interval_ms = (uint32_t)s.cfg.maintenance_interval_ms,
			.readers = (unsigned)s.cfg.readers,
			.max_topics = s.cfg.max_topics_total,
			.dedup_max_entries = (size_t)s.cfg.dedup_max_entries,
			.policy = hd_hub_policy,
			.policy_arg = s.hub,
		},
		.ring_events = s.cfg.ring_events,
		.ring_bytes = s.cfg.ring_bytes,
		.max_topics_in_memory = s.cfg.max_topics,
		.on_event = hd_hub_on_event,
		.on_event_arg = s.hub,
	};
	if (!strcmp(s.cfg.engine, "redis")) {
		struct hd_redis_opts ro = {
			.urls = s.cfg.redis_url,
			.sentinels = s.cfg.redis_sentinel,
			.master_names = s.cfg.redis_master_name,
			.durability = redis_durability(s.cfg.redis_durability),
			.wait_timeout_ms = (uint32_t)s.cfg.redis_wait_timeout_ms,
			.transactions = s.cfg.redis_transactions,
			.max_topics_in_memory = s.cfg.max_topics,
			.policy = hd_hub_policy,
			.policy_arg = s.hub,
			.on_event = hd_hub_on_event,
			.on_event_arg = s.hub,
			.on_notice = hd_hub_on_notice,
			.on_notice_arg = s.hub,
			.node = s.cfg.node_name,
		};
		s.engine = hd_redis_engine_new(s.loop, &ro, &err);
		if (!s.engine) {
			fprintf(stderr, "herald: %s\n", err.msg);
			goto out;
		}
	} else {
		s.engine = hd_local_engine_new(s.loop, &lo, &err);
	}
	if (!s.engine) {
		fprintf(stderr, "herald: cannot open the store in %s: %s\n", s.cfg.data_dir, err.msg);
		exit_code = 1;
		goto out;
	}
	hd_hub_set_engine(s.hub, s.engine);

	struct hd_http_limits lim;
	hd_http_limits_default(&lim);
	lim.body_max = s.cfg.body_max;
	lim.header_max = s.cfg.header_max;
	lim.max_headers = s.cfg.max_headers;
	lim.header_timeout_ms = (uint32_t)s.cfg.header_timeout_ms;
	lim.idle_timeout_ms = (uint32_t)s.cfg.idle_timeout_ms;
	lim.shutdown_timeout_ms = (uint32_t)s.cfg.shutdown_timeout_ms;
	lim.max_connections = (uint32_t)s.cfg.max_connections;
	lim.listen_backlog = (int)s.cfg.listen_backlog;
	lim.trusted_proxies = s.cfg.trusted_proxies;
	lim.proxy_protocol = s.cfg.proxy_protocol;
	lim.max_connections_per_ip = (uint32_t)s.cfg.max_connections_per_ip;
	lim.connection_rate_per_ip = (struct hd_rate){
		.per_sec = (uint32_t)s.cfg.connection_rate_per_ip,
		.burst = (uint32_t)s.cfg.connection_burst_per_ip,
	};
	lim.max_pending_bytes = (size_t)s.cfg.max_pending_bytes;
	lim.cors_origins = s.cfg.cors_origins;
	struct hd_sse_opts sse_opts = {
		.keepalive_ms = (uint32_t)s.cfg.sse_keepalive_ms,
		.retry_ms = (uint32_t)s.cfg.sse_retry_ms,
		.max_pending_bytes = lim.max_pending_bytes,
	};
	struct hd_ws_edge_opts ws_opts = {
		.keys = s.keys,
		.anonymous = s.cfg.ws_anonymous,
		.ping_interval_ms = (uint32_t)s.cfg.ws_ping_interval_ms,
		.pong_timeout_ms = (uint32_t)s.cfg.ws_pong_timeout_ms,
		.connect_timeout_ms = (uint32_t)s.cfg.ws_connect_timeout_ms,
		.expiry_grace_ms = (uint32_t)s.cfg.ws_expiry_grace_ms,
		.max_message = (size_t)s.cfg.ws_max_message,
		.recover_max = (uint32_t)s.cfg.ws_recover_max,
		.max_subscriptions = (uint32_t)s.cfg.ws_max_subscriptions,
		.cproxy = s.cproxy,
		.sub_refresh_retry_ms = (uint32_t)s.cfg.proxy_sub_refresh_retry_ms,
		.publish_rate = {
			.per_sec = (uint32_t)s.cfg.publish_rate_per_connection,
			.burst = (uint32_t)s.cfg.publish_burst_per_connection,
		},
	};
	s.api = hd_api_new(s.loop, s.hub, &sse_opts, &ws_opts);
	s.stats = hd_stats_new(s.hub, s.cfg.data_dir);
	hd_stats_routes(s.stats, &s.api->routes);
	if (s.cfg.ui)
		hd_ui_routes(&s.api->routes);
	hd_api_set_keys(s.api, s.api_keys, s.keys);
	hd_api_set_key_rate(s.api, &(struct hd_rate){
		.per_sec = (uint32_t)s.cfg.publish_rate_per_key,
		.burst = (uint32_t)s.cfg.publish_burst_per_key,
	});
	struct hd_webhook_opts wh_opts = {
		.time_scale = s.cfg.webhook_time_scale,
		.max_subscriptions = (uint32_t)s.cfg.webhook_subscriptions_max,
		.pattern_topics_max = (uint32_t)s.cfg.webhook_pattern_topics_max,
		.rotation_grace_ms = s.cfg.webhook_rotation_grace_ms,
		.http = {
			.timeout_ms = (uint32_t)s.cfg.webhook_timeout_ms,
			.connect_timeout_ms = (uint32_t)(s.cfg.webhook_timeout_ms < 10000
								 ? s.cfg.webhook_timeout_ms : 10000),
			.max_per_host = (uint32_t)s.cfg.webhook_max_per_host,
			.max_total = 1024,
			.max_inflight = (uint32_t)s.cfg.webhook_max_inflight,
			.max_response = 1024,
			.allow_private = s.cfg.webhook_allow_private,
			.user_agent = "herald/" HD_VERSION,
		},
	};
	s.webhooks = hd_webhooks_new(s.loop, s.hub, &wh_opts, &err);
	if (!s.webhooks) {
		fprintf(stderr, "herald: cannot start webhook delivery: %s\n", err.msg);
		abort(); /* libcurl could not be initialised: nothing sensible to do */
	}
	hd_api_set_webhooks(s.api, s.webhooks);
	start_push(&s);
	s.http = hd_http_server_new(s.loop, &lim, hd_api_handle, s.api);
	const char *failed = NULL;
	rc = 0;
	if (s.cfg.listen[0] && (rc = hd_http_server_listen(s.http, host, port)))
		failed = s.cfg.listen;
	if (!rc && s.tls) {
		rc = hd_http_server_listen_tls(s.http, tls_host, tls_port, tls_ctx);
		tls_ctx = NULL; /* the server took it */
		if (rc)
			failed = s.cfg.tls_listen;
	}
	if (rc) {
		fprintf(stderr, "herald: cannot listen on %s: %s\n", failed, uv_strerror(rc));
		/* The server may be freed only once its listener handle is
		 * closed (hd_http_server_free's contract): shut it down, let
		 * the loop run the close callbacks, then free. */
		hd_http_server_shutdown(s.http, on_listen_failed_closed, &s);
		hd_api_stop(s.api);
		stop_load_delay(&s);
		hd_webhooks_stop(s.webhooks);
		hd_push_delivery_stop(s.push_delivery);
		hd_devices_stop(s.devices);
		s.engine->ops->free(s.engine);
		s.engine = NULL;
		exit_code = 1;
		goto out;
	}
	uv_signal_init(s.loop, &s.sigterm);
	uv_signal_init(s.loop, &s.sigint);
	uv_signal_init(s.loop, &s.sighup);
	s.sigterm.data = s.sigint.data = s.sighup.data = &s;
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	uv_signal_start(&s.sighup, on_sighup, SIGHUP);
	if (s.tls)
		hd_log_info("tls_certificate cert=%s %s", s.cfg.tls_cert, tls_desc);
	hd_log_info("listening addr=%s port=%d tls_addr=%s tls_port=%d data_dir=%s sync=%s version=%s "
		    "api_keys=%zu%s",
		    s.cfg.listen[0] ? host : "none", hd_http_server_port(s.http),
		    s.tls ? tls_host : "none", hd_http_server_tls_port(s.http), s.cfg.data_dir,
		    s.cfg.sync, HD_VERSION, hd_keys_count(s.api_keys),
		    hd_keys_count(s.api_keys) ? "" : " (no API keys: the REST API is open, for development only)");

	uv_run(s.loop, UV_RUN_DEFAULT); /* until a signal has stopped everything */
	exit_code = 0;

out:
	/* In reverse order of creation; what was not created is NULL. The
	 * engine is freed by now (on_http_closed, or above): the loop runs until
	 * its handles and the server's listeners are closed, then the rest goes. */
	hd_tls_ctx_free(tls_ctx); /* NULL once the server took it */
	if (s.loop) {
		hd_cproxy_close(s.cproxy); /* done at the stop; here after a failed start */
		uv_run(s.loop, UV_RUN_DEFAULT);
		hd_http_server_free(s.http);
		hd_push_delivery_free(s.push_delivery); /* its sends were cancelled at the stop */
		hd_push_free(s.push); /* every request was answered: no test send is held */
		uv_run(s.loop, UV_RUN_DEFAULT); /* runs the close callbacks */
		hd_webhooks_free(s.webhooks);
		hd_devices_free(s.devices);
		if (s.api)
			hd_api_free(s.api);
		hd_cproxy_free(s.cproxy); /* after the sessions that borrow it */
		hd_stats_free(s.stats);
		uv_loop_close(s.loop);
	}
	if (s.hub)
		hd_hub_free(s.hub);
	hd_keys_free(s.api_keys);
	hd_jwt_keys_free(s.keys);
	if (exit_code == 0)
		hd_log_info("stopped");
	return exit_code;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (strcmp(cmd, "publish") == 0)
		return hd_client_publish(argc - 2, argv + 2);
	if (strcmp(cmd, "read") == 0)
		return hd_client_read(argc - 2, argv + 2);
	if (strcmp(cmd, "tail") == 0)
		return hd_tail_cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "stats") == 0)
		return hd_stats_cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "keys") == 0)
		return hd_keys_cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "push") == 0)
		return hd_push_cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "check-config") == 0)
		return hd_check_config_cmd_run(argc - 2, argv + 2);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("herald %s\n", HD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "config-doc") == 0) {
		struct hd_buf b;
		hd_buf_init(&b, 1 << 20);
		hd_config_doc(&b);
		fwrite(b.data, 1, b.len, stdout);
		hd_buf_fini(&b);
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (*cmd)
		fprintf(stderr, "herald: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
