/* Unit tests for core/config.c: precedence, parsing, ranges, namespaces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"

static int load(struct hd_config *cfg, int argc, char **argv, char **env, struct hd_error *err)
{
	const char *pos[4];
	size_t npos;
	hd_config_defaults(cfg);
	return hd_config_load(cfg, argc, argv, env, pos, 4, &npos, err);
}

static void test_defaults(void **state)
{
	struct hd_config cfg;
	hd_config_defaults(&cfg);
	assert_string_equal(cfg.listen, "127.0.0.1:8080");
	assert_string_equal(cfg.sync, "full");
	assert_int_equal(cfg.body_max, 1024 * 1024);
	assert_int_equal(cfg.ns_default.dedup_window_ms, 10 * 60 * 1000);
	assert_true(cfg.ns_default.history);
	assert_int_equal(cfg.header_timeout_ms, 10000);
}

static void test_flags_beat_env(void **state)
{
	struct hd_config cfg;
	struct hd_error err = {0};
	char *argv[] = {"--listen", "127.0.0.1:9", "--body-max=2m", "--sync", "off"};
	char *env[] = {"HERALD_LISTEN=0.0.0.0:1", "HERALD_DATA_DIR=/tmp/x", "HERALD_DEDUP_WINDOW=30s", NULL};
	assert_int_equal(load(&cfg, 5, argv, env, &err), 0);
	assert_string_equal(cfg.listen, "127.0.0.1:9");
	assert_string_equal(cfg.data_dir, "/tmp/x");
	assert_int_equal(cfg.body_max, 2 * 1024 * 1024);
	assert_string_equal(cfg.sync, "off");
	assert_int_equal(cfg.ns_default.dedup_window_ms, 30000);
}

static void test_errors_name_the_option(void **state)
{
	struct hd_config cfg;
	struct hd_error err = {0};
	char *a1[] = {"--sync", "sometimes"};
	assert_int_equal(load(&cfg, 2, a1, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "sync must be one of full|normal|off"));
	char *a2[] = {"--body-max", "100g"};
	assert_int_equal(load(&cfg, 2, a2, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "body-max must be between 1k and 64m"));
	char *a3[] = {"--no-such-thing", "1"};
	assert_int_equal(load(&cfg, 2, a3, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "unknown option 'no-such-thing'"));
	char *a4[] = {"--idle-timeout", "soon"};
	assert_int_equal(load(&cfg, 2, a4, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "duration"));
	char *env[] = {"HERALD_MAX_HEADERS=-3", NULL};
	assert_int_equal(load(&cfg, 0, NULL, env, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "HERALD_MAX_HEADERS"));
}

static void test_file_and_namespaces(void **state)
{
	char path[] = "/tmp/herald-config-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "# comment\n"
			   "data-dir = /var/lib/h\n"
			   "[namespace rides]\n"
			   "retention-max-age = 1h\n"
			   "history = off\n"
			   "[namespace chat]\n"
			   "retention-max-count = 50\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct hd_config cfg;
	struct hd_error err = {0};
	char *argv[] = {"--config", path, "--dedup-window", "1m"};
	assert_int_equal(load(&cfg, 4, argv, NULL, &err), 0);
	assert_string_equal(cfg.data_dir, "/var/lib/h");
	const struct hd_ns_opts *rides = hd_config_ns(&cfg, "rides:981");
	assert_int_equal(rides->retention_max_age_ms, 3600000);
	assert_false(rides->history);
	/* A namespace inherits the final defaults (here from a flag). */
	assert_int_equal(rides->dedup_window_ms, 60000);
	const struct hd_ns_opts *chat = hd_config_ns(&cfg, "chat:room1");
	assert_int_equal(chat->retention_max_count, 50);
	assert_true(chat->history);
	assert_ptr_equal(hd_config_ns(&cfg, "other:1"), &cfg.ns_default);
	assert_ptr_equal(hd_config_ns(&cfg, "rides"), &cfg.ns_default);
	unlink(path);
}

static void test_file_errors_name_the_line(void **state)
{
	char path[] = "/tmp/herald-config-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "listen = 127.0.0.1:1\n[namespace x]\nlisten = 1.2.3.4:5\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct hd_config cfg;
	struct hd_error err = {0};
	char *argv[] = {"--config", path};
	assert_int_equal(load(&cfg, 2, argv, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, ":3: listen is not a namespace option"));
	unlink(path);
}

static void test_permissions_and_key_sections(void **state)
{
	char path[] = "/tmp/herald-config-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "publish = none\n"
			   "[namespace rides]\n"
			   "subscribe = token\n"
			   "history-access = subscribed\n"
			   "[key billing]\n"
			   "hash = sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
			   "scopes = publish:rides read\n"
			   "expires = 2027-01-01T00:00:00Z\n"
			   "[namespace chat]\n"
			   "presence-access = none\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct hd_config cfg;
	struct hd_error err = {0};
	char *argv[] = {"--config", path};
	assert_int_equal(load(&cfg, 2, argv, NULL, &err), 0);
	assert_string_equal(cfg.ns_default.subscribe, "anonymous");
	assert_string_equal(cfg.ns_default.publish, "none");
	const struct hd_ns_opts *rides = hd_config_ns(&cfg, "rides:1");
	assert_string_equal(rides->subscribe, "token");
	assert_string_equal(rides->publish, "none"); /* inherited */
	assert_string_equal(rides->history_access, "subscribed");
	assert_string_equal(hd_config_ns(&cfg, "chat:1")->presence_access, "none");
	assert_int_equal(cfg.nkeys, 1);
	assert_string_equal(cfg.keys[0].name, "billing");
	assert_string_equal(cfg.keys[0].scopes, "publish:rides read");
	assert_string_equal(cfg.keys[0].expires, "2027-01-01T00:00:00Z");
	assert_non_null(strstr(cfg.keys[0].where, ":5"));
	unlink(path);

	/* A namespace option is not a key setting, and a bad rule is named. */
	char path2[] = "/tmp/herald-config-XXXXXX";
	fd = mkstemp(path2);
	text = "[key a]\nsubscribe = token\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	char *argv2[] = {"--config", path2};
	assert_int_equal(load(&cfg, 2, argv2, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, ":2: unknown key setting 'subscribe'"));
	unlink(path2);
	char *argv3[] = {"--subscribe", "everyone"};
	assert_int_equal(load(&cfg, 2, argv3, NULL, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "anonymous|authenticated|token"));
}

static void test_doc_lists_every_option(void **state)
{
	struct hd_buf b;
	hd_buf_init(&b, 1 << 20);
	hd_config_doc(&b);
	assert_non_null(strstr(b.data, "| `--listen` | `HERALD_LISTEN` |"));
	assert_non_null(strstr(b.data, "| `--dedup-window` | `HERALD_DEDUP_WINDOW` | duration, namespace |"));
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_flags_beat_env),
		cmocka_unit_test(test_errors_name_the_option),
		cmocka_unit_test(test_file_and_namespaces),
		cmocka_unit_test(test_file_errors_name_the_line),
		cmocka_unit_test(test_permissions_and_key_sections),
		cmocka_unit_test(test_doc_lists_every_option),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
