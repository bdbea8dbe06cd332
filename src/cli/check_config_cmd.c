/*
 * check_config_cmd — see check_config_cmd.h.
 */
#include "cli/check_config_cmd.h"
#include "auth/jwt.h"
#include "auth/keys.h"
#include "core/alloc.h"
#include "core/config.h"
#include "http/forwarded.h"
#include "net/tls.h"
#include "push/push.h"

#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether s is HOST:PORT, [V6]:PORT or :PORT with a port 0..65535. */
static bool host_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon[1] == '\0')
		return false;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && port >= 0 && port <= 65535;
}

/* The push providers as serve makes them (APNs key, FCM service account,
 * VAPID key read and checked), on a loop of their own that is run until
 * their handles are closed; nothing is sent. */
static int check_push(const struct hd_config *cfg, struct hd_error *err)
{
	struct hd_push *push = NULL;
	uv_loop_t loop;
	int rc;

	if (uv_loop_init(&loop))
		return hd_error_set(err, HD_EIO, "cannot make an event loop");
	rc = hd_push_new(&loop, cfg, NULL, NULL, &push, err);
	hd_push_free(push);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return rc;
}

/* Everything serve checks before it opens the store; 0 or HD_ECONFIG. */
static int check(const struct hd_config *cfg, struct hd_error *err)
{
	struct hd_forwarded trusted;
	struct hd_jwt_keys *jk = NULL;
	struct hd_tls_ctx *tls = NULL;
	struct hd_keys *ks = NULL;
	bool has_tls = cfg->tls_listen[0] != '\0';
	int rc;

	if (cfg->listen[0] && !host_port(cfg->listen))
		return hd_error_set(err, HD_ECONFIG, "listen must be HOST:PORT, not '%s'", cfg->listen);
	if (!cfg->listen[0] && !has_tls)
		return hd_error_set(err, HD_ECONFIG, "listen is empty and there is no tls-listen: "
				    "nothing to serve on");
	if (has_tls && !host_port(cfg->tls_listen))
		return hd_error_set(err, HD_ECONFIG, "tls-listen must be HOST:PORT, not '%s'",
				    cfg->tls_listen);
	if (has_tls && (!cfg->tls_cert[0] || !cfg->tls_key[0]))
		return hd_error_set(err, HD_ECONFIG, "tls-listen needs tls-cert and tls-key");
	if (!has_tls && (cfg->tls_cert[0] || cfg->tls_key[0]))
		return hd_error_set(err, HD_ECONFIG, "tls-cert and tls-key need tls-listen");
	if (has_tls && (rc = hd_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &tls, err)))
		return rc;
	hd_tls_ctx_free(tls);
	if ((rc = hd_forwarded_parse(&trusted, cfg->trusted_proxies, err)))
		return rc;
	const char *secrets[] = {cfg->jwt_secret, NULL};
	const char *pubkeys[] = {cfg->jwt_public_key, NULL};
	const char *jwks[] = {cfg->jwt_jwks, NULL};
	struct hd_jwt_config jc = {
		.hmac_secrets = cfg->jwt_secret[0] ? secrets : NULL,
		.public_key_files = cfg->jwt_public_key[0] ? pubkeys : NULL,
		.jwks_files = cfg->jwt_jwks[0] ? jwks : NULL,
		.audience = cfg->jwt_audience[0] ? cfg->jwt_audience : NULL,
		.issuer = cfg->jwt_issuer[0] ? cfg->jwt_issuer : NULL,
	};
	if ((rc = hd_jwt_keys_new(&jc, &jk, err)))
		return rc;
	hd_jwt_keys_free(jk);
	ks = hd_keys_new();
	if (cfg->keys_file[0])
		rc = hd_keys_load_file(ks, cfg->keys_file, false, err);
	for (size_t i = 0; rc == 0 && i < cfg->nkeys; i++) {
		const struct hd_key_section *k = &cfg->keys[i];
		rc = hd_keys_add_text(ks, k->name, k->hash, k->scopes, k->created, k->expires, k->where,
				      err);
	}
	hd_keys_free(ks);
	return rc ? rc : check_push(cfg, err);
}

int hd_check_config_cmd_run(int argc, char **argv)
{
	struct hd_config *cfg;
	struct hd_error err = {0};
	char *args[2];
	const char *pos[1];
	size_t npos;
	int rc;

	if (argc != 1 || argv[0][0] == '-') {
		fprintf(stderr, "usage: herald check-config FILE\n");
		return 2;
	}
	cfg = hd_malloc(sizeof(*cfg));
	hd_config_defaults(cfg);
	args[0] = "--config";
	args[1] = argv[0];
	/* Load errors name the file and line already. */
	rc = hd_config_load(cfg, 2, args, NULL, pos, 0, &npos, &err);
	if (rc) {
		fprintf(stderr, "herald: %s\n", err.msg);
	} else if ((rc = check(cfg, &err))) {
		fprintf(stderr, "herald: %s: %s\n", argv[0], err.msg);
	}
	free(cfg);
	if (rc)
		return 1;
	printf("%s: ok\n", argv[0]);
	return 0;
}
