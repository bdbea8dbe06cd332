/* keys_cmd — see keys_cmd.h. */
#include "cli/keys_cmd.h"
#include "auth/keys.h"
#include "core/clock.h"
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define ARGS_MAX 64

/* "30d", "12h", "90m", "3600s", "3600" (seconds) from now, or an RFC 3339 time. */
static int parse_expires(const char *s, int64_t now_ms, int64_t *out)
{
	char *end;
	if (hd_clock_parse_rfc3339(s, strlen(s), out) == 0)
		return 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	int64_t mult = strcmp(end, "") == 0 || strcmp(end, "s") == 0 ? 1000
		     : strcmp(end, "m") == 0			     ? 60000
		     : strcmp(end, "h") == 0			     ? 3600000
		     : strcmp(end, "d") == 0			     ? 86400000
								     : 0;
	if (errno || !mult || v == 0 || v > 100ULL * 365 * 86400)
		return -1;
	*out = now_ms + (int64_t)v * mult;
	return 0;
}

static void scopes_of(const struct hd_key *k, char *out, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < k->npublish; i++)
		len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%spublish:%s", len ? " " : "",
					k->publish[i]);
	if (k->publish_all)
		len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%spublish:*", len ? " " : "");
	if (k->read)
		len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%sread", len ? " " : "");
	if (k->metrics)
		len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%smetrics", len ? " " : "");
	if (k->admin)
		(void)snprintf(out + len, len < n ? n - len : 0, "%sadmin", len ? " " : "");
}

static int cmd_list(const struct hd_keys *ks)
{
	char scopes[2048], created[40], expires[40], fp[HD_KEY_FINGERPRINT_LEN + 1];
	int64_t now = hd_now_ms();
	printf("%-24s %-14s %-24s %-24s %s\n", "NAME", "FINGERPRINT", "CREATED", "EXPIRES", "SCOPES");
	for (size_t i = 0; i < hd_keys_count(ks); i++) {
		const struct hd_key *k = hd_keys_at(ks, i);
		scopes_of(k, scopes, sizeof(scopes));
		hd_keys_fingerprint(k, fp);
		if (k->created_ms)
			hd_clock_format_rfc3339(k->created_ms, created, sizeof(created));
		else
			snprintf(created, sizeof(created), "-");
		if (k->expires_ms)
			hd_clock_format_rfc3339(k->expires_ms, expires, sizeof(expires));
		else
			snprintf(expires, sizeof(expires), "never");
		printf("%-24s %-14s %-24s %-24s %s%s\n", k->name, fp, created, expires, scopes,
		       k->expires_ms && k->expires_ms <= now ? " (expired)" : "");
	}
	return 0;
}

int hd_keys_cmd_run(int argc, char **argv)
{
	struct hd_config *cfg = calloc(1, sizeof(*cfg));
	struct hd_keys *ks = hd_keys_new();
	struct hd_error err = {0};
	char *rest[ARGS_MAX], path[1100], lock[1200], scopes[1024] = "";
	const char *pos[2], *expires = NULL;
	size_t npos = 0, slen = 0;
	int nrest = 0, rc = 2, lockfd = -1;

	/* --scope and --expires are this command's; the rest are server options. */
	for (int i = 0; i < argc; i++) {
		bool scope = strcmp(argv[i], "--scope") == 0, exp = strcmp(argv[i], "--expires") == 0;
		if (scope || exp) {
			if (i + 1 >= argc) {
				fprintf(stderr, "herald: %s needs a value\n", argv[i]);
				goto out;
			}
			if (exp) {
				expires = argv[++i];
			} else {
				slen += (size_t)snprintf(scopes + slen, slen < sizeof(scopes) ? sizeof(scopes) - slen : 0,
							 "%s%s", slen ? " " : "", argv[++i]);
			}
		} else if (nrest < ARGS_MAX) {
			rest[nrest++] = argv[i];
		} else {
			fprintf(stderr, "herald: too many arguments\n");
			goto out;
		}
	}
	hd_config_defaults(cfg);
	if (hd_config_load(cfg, nrest, rest, environ, pos, 2, &npos, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	const char *action = npos ? pos[0] : "";
	bool create = strcmp(action, "create") == 0, list = strcmp(action, "list") == 0,
	     revoke = strcmp(action, "revoke") == 0;
	if (!(create || list || revoke) || (list ? npos != 1 : npos != 2) ||
	    (!create && (slen || expires))) {
		fprintf(stderr, "usage: herald keys create NAME --scope S [--scope S] [--expires 30d]\n"
				"       herald keys list\n"
				"       herald keys revoke NAME\n"
				"       (with --keys-file FILE or --data-dir DIR)\n");
		goto out;
	}
	if (cfg->keys_file[0])
		snprintf(path, sizeof(path), "%s", cfg->keys_file);
	else
		snprintf(path, sizeof(path), "%s/keys", cfg->data_dir);
	rc = 1;
	if (!list) {
		if (!cfg->keys_file[0] && mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
			fprintf(stderr, "herald: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
			goto out;
		}
		snprintf(lock, sizeof(lock), "%s.lock", path);
		lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lockfd < 0 || flock(lockfd, LOCK_EX)) {
			fprintf(stderr, "herald: cannot lock %s: %s\n", lock, strerror(errno));
			goto out;
		}
	}
	if (hd_keys_load_file(ks, path, true, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	if (list) {
		rc = cmd_list(ks);
		goto out;
	}
	if (revoke) {
		if (hd_keys_remove(ks, pos[1])) {
			fprintf(stderr, "herald: no key named '%s' in %s\n", pos[1], path);
			goto out;
		}
	} else {
		struct hd_key k;
		char secret[HD_KEY_SECRET_LEN + 1];
		memset(&k, 0, sizeof(k));
		int64_t now = hd_now_ms();
		if (strlen(pos[1]) > HD_KEY_NAME_MAX ||
		    strspn(pos[1], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
			    strlen(pos[1]) || !pos[1][0]) {
			fprintf(stderr, "herald: a key name is 1-%d bytes of [A-Za-z0-9._-]\n", HD_KEY_NAME_MAX);
			rc = 2;
			goto out;
		}
		snprintf(k.name, sizeof(k.name), "%s", pos[1]);
		if (hd_keys_parse_scopes(&k, scopes, &err)) {
			fprintf(stderr, "herald: %s (give --scope)\n", err.msg);
			rc = 2;
			goto out;
		}
		if (expires && parse_expires(expires, now, &k.expires_ms)) {
			fprintf(stderr, "herald: --expires takes a duration (30d, 12h, 90m) or an RFC 3339 time\n");
			rc = 2;
			goto out;
		}
		k.created_ms = now;
		if (hd_keys_generate(&k, secret)) {
			fprintf(stderr, "herald: the random number generator failed\n");
			goto out;
		}
		if (hd_keys_add(ks, &k, &err)) {
			fprintf(stderr, "herald: %s\n", err.msg);
			goto out;
		}
		if (hd_keys_save_file(ks, path, &err)) {
			fprintf(stderr, "herald: %s\n", err.msg);
			goto out;
		}
		/* The only time the secret is shown. */
		printf("%s\n", secret);
		fprintf(stderr, "herald: key '%s' added to %s; this secret is not shown again. "
				"A running herald picks it up on SIGHUP.\n",
			k.name, path);
		memset(secret, 0, sizeof(secret));
		rc = 0;
		goto out;
	}
	if (hd_keys_save_file(ks, path, &err)) {
		fprintf(stderr, "herald: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "herald: key '%s' revoked; a running herald drops it on SIGHUP.\n", pos[1]);
	rc = 0;
out:
	if (lockfd >= 0)
		close(lockfd);
	hd_keys_free(ks);
	free(cfg);
	return rc;
}
