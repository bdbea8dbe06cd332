/*
 * Unit tests for the pure parts of push/devices.c: the registration body
 * of each platform (accepted forms, every refusal naming its member), the
 * device id syntax, the durable record (round trip, refused records) and
 * the answer's form; and the registry over a small in-memory record
 * engine: load (a duplicated token resolved to the newer), register,
 * caps, token moves, the followers index, outcomes written coalesced and
 * an invalid device made active by registering it again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/config.h"
#include "engine/engine.h"
#include "push/devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8291 Appendix A's user agent keys: a real P-256 point and auth secret. */
#define P256DH "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH "BTBZMqHH6r4Tts7J_aSIgg"
#define KEYS "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\"}"

static struct hd_device *parse_ok(const char *body, bool allow_private)
{
	struct hd_devices_parse_opts o = {.allow_private = allow_private};
	struct hd_device *dev = NULL;
	struct hd_error err = {0};
	int rc = hd_devices_parse(body, strlen(body), &o, &dev, &err);
	if (rc)
		fail_msg("refused %s: %s", body, err.msg);
	assert_non_null(dev);
	return dev;
}

/* Refused with HD_EINVAL (or code) and a message containing words. */
static void parse_bad(const char *body, const char *words, bool allow_private)
{
	struct hd_devices_parse_opts o = {.allow_private = allow_private};
	struct hd_device *dev = (struct hd_device *)1;
	struct hd_error err = {0};
	int rc = hd_devices_parse(body, strlen(body), &o, &dev, &err);
	if (rc == 0)
		fail_msg("accepted %s", body);
	assert_int_equal(rc, err.code);
	assert_null(dev);
	if (!strstr(err.msg, words))
		fail_msg("%s: message '%s' lacks '%s'", body, err.msg, words);
}

static void test_apns(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"apns\",\"token\":\"ABCDEF0123456789\","
				       "\"topics\":[\"rides:981\",\"news\",\"rides:981\"]}", false);
	assert_int_equal(d->platform, HD_DEVICE_APNS);
	assert_string_equal(d->token, "abcdef0123456789"); /* one spelling */
	assert_int_equal(d->environment, HD_DEVICE_ENV_PRODUCTION);
	assert_int_equal(d->ntopics, 2);
	assert_string_equal(d->topics[0], "rides:981");
	assert_string_equal(d->topics[1], "news");
	assert_int_equal(d->state, HD_DEVICE_ACTIVE);
	assert_null(d->p256dh);
	hd_devices_device_free(d);
	d = parse_ok("{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"sandbox\"}",
		     false);
	assert_int_equal(d->environment, HD_DEVICE_ENV_SANDBOX);
	assert_int_equal(d->ntopics, 0);
	hd_devices_device_free(d);

	parse_bad("{\"platform\":\"apns\",\"token\":\"0011223344556677889\"}", "hex", false); /* odd */
	parse_bad("{\"platform\":\"apns\",\"token\":\"00112233\"}", "hex", false);            /* short */
	parse_bad("{\"platform\":\"apns\",\"token\":\"zz112233445566778899\"}", "hex", false);
	parse_bad("{\"platform\":\"apns\"}", "'token' is required", false);
	parse_bad("{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"dev\"}",
		  "production or sandbox", false);
	parse_bad("{\"platform\":\"apns\",\"subscription\":{}}", "'subscription' is for webpush", false);
}

static void test_fcm(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"fcm\",\"token\":\"fZ1:APA91b-x_y\"}", false);
	assert_int_equal(d->platform, HD_DEVICE_FCM);
	assert_string_equal(d->token, "fZ1:APA91b-x_y");
	assert_int_equal(d->environment, HD_DEVICE_ENV_NONE);
	hd_devices_device_free(d);

	char big[HD_DEVICE_FCM_TOKEN_MAX + 64];
	snprintf(big, sizeof(big), "{\"platform\":\"fcm\",\"token\":\"%0*d\"}", HD_DEVICE_FCM_TOKEN_MAX + 1, 0);
	parse_bad(big, "'token' is longer", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"\"}", "FCM registration token", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\\tb\"}", "FCM registration token", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\\u0000b\"}", "not JSON", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":[]}", "'token' must be a string", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"x\",\"environment\":\"sandbox\"}", "apns only", false);
}

static void test_webpush(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":"
				       "\"https://updates.push.services.mozilla.com/wpush/v2/gAAA\","
				       "\"expirationTime\":null," KEYS "}}", false);
	assert_int_equal(d->platform, HD_DEVICE_WEBPUSH);
	assert_string_equal(d->token, "https://updates.push.services.mozilla.com/wpush/v2/gAAA");
	assert_string_equal(d->p256dh, P256DH);
	assert_string_equal(d->auth, AUTH);
	hd_devices_device_free(d);

	/* One spelling per endpoint: scheme and host lower-cased, a default port dropped. */
	d = parse_ok("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":"
		     "\"HTTPS://Push.Example:443/a/B?c=D\"," KEYS "}}", false);
	assert_string_equal(d->token, "https://push.example/a/B?c=D");
	hd_devices_device_free(d);
	d = parse_ok("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":"
		     "\"https://push.example:8443\"," KEYS "}}", false);
	assert_string_equal(d->token, "https://push.example:8443");
	hd_devices_device_free(d);

	/* Plain http only on loopback and only when allowed. */
	const char *loop[] = {"http://127.0.0.1:8080/p", "http://localhost/p", "http://[::1]:9/p"};
	for (size_t i = 0; i < 3; i++) {
		char body[512];
		snprintf(body, sizeof(body), "{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"%s\","
			 KEYS "}}", loop[i]);
		hd_devices_device_free(parse_ok(body, true));
		parse_bad(body, "https://", false);
	}
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"http://10.1.2.3/p\"," KEYS "}}",
		  "loopback", true);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"http://127.0.0.1.evil/p\","
		  KEYS "}}", "https://", true);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"ftp://x/p\"," KEYS "}}",
		  "'subscription.endpoint'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{" KEYS "}}", "'subscription.endpoint' is required",
		  false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\"}}",
		  "'subscription.keys' is required", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"AAAA\"}}}", "'subscription.keys.auth'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" AUTH "\",\"auth\":\"" AUTH "\"}}}", "'subscription.keys.p256dh'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\",\"x\":1}}}",
		  "unknown member 'subscription.keys.x'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"expirationTime\":\"soon\"," KEYS "}}", "expirationTime", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"extra\":1," KEYS "}}", "unknown member 'subscription.extra'", false);
	parse_bad("{\"platform\":\"webpush\",\"token\":\"x\"}", "not for webpush", false);
	parse_bad("{\"platform\":\"webpush\"}", "'subscription' is required", false);
}

static void test_common_refusals(void **state)
{
	(void)state;
	parse_bad("", "not JSON", false);
	parse_bad("[]", "JSON object", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"token\":\"b\"}", "duplicate", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"colour\":1}", "unknown member 'colour'", false);
	parse_bad("{\"token\":\"a\"}", "'platform' is required", false);
	parse_bad("{\"platform\":\"APNS\",\"token\":\"a\"}", "'platform' is required", false);
	parse_bad("{\"platform\":1,\"token\":\"a\"}", "'platform' must be a string", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":{}}", "'topics'", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[\"ok\",3]}", "'topics[1]'", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[\"a b\"]}", "'topics[0]'", false);

	char body[2048] = "{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[";
	for (int i = 0; i <= HD_DEVICE_TOPICS_MAX; i++)
		snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"t%d\"", i ? "," : "", i);
	strcat(body, "]}");
	parse_bad(body, "at most", false);

	struct hd_devices_parse_opts o = {0};
	struct hd_device *dev;
	struct hd_error err = {0};
	char *huge = calloc(1, HD_DEVICE_BODY_MAX + 2);
	memset(huge, ' ', HD_DEVICE_BODY_MAX + 1);
	assert_int_equal(hd_devices_parse(huge, HD_DEVICE_BODY_MAX + 1, &o, &dev, &err), HD_ETOOBIG);
	free(huge);
}

static void test_ids(void **state)
{
	(void)state;
	assert_true(hd_devices_id_ok("phone", 5));
	assert_true(hd_devices_id_ok("A-z_0.9", 7));
	assert_false(hd_devices_id_ok("", 0));
	assert_false(hd_devices_id_ok("a b", 3));
	assert_false(hd_devices_id_ok("a/b", 3));
	assert_false(hd_devices_id_ok("a\nb", 3));
	char id[HD_DEVICE_ID_MAX + 2];
	memset(id, 'x', sizeof(id));
	assert_true(hd_devices_id_ok(id, HD_DEVICE_ID_MAX));
	assert_false(hd_devices_id_ok(id, HD_DEVICE_ID_MAX + 1));
}

static void test_record_round_trip(void **state)
{
	(void)state;
	const char *bodies[] = {
		"{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"sandbox\","
		"\"topics\":[\"rides:1\"]}",
		"{\"platform\":\"fcm\",\"token\":\"tok\"}",
		"{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\"," KEYS "}}",
	};
	for (size_t i = 0; i < 3; i++) {
		struct hd_device *d = parse_ok(bodies[i], false), *back;
		d->user = strdup("42");
		snprintf(d->id, sizeof(d->id), "phone");
		d->state = HD_DEVICE_INVALID;
		d->failure = calloc(1, sizeof(*d->failure));
		d->failure->invalid_reason = strdup("Unregistered");
		d->last_success_ms = 1000;
		d->failure->last.time_ms = 2000;
		d->failure->last.status = 410;
		d->failure->last.reason = strdup("Unregistered");
		d->created_ms = 500;
		d->updated_ms = 600;
		char *rec = hd_devices_record(d);
		assert_int_equal(hd_devices_record_parse("42\nphone", rec, &back), 0);
		char *again = hd_devices_record(back);
		assert_string_equal(rec, again);
		assert_string_equal(back->user, "42");
		assert_string_equal(back->id, "phone");
		assert_int_equal(back->state, HD_DEVICE_INVALID);
		assert_non_null(back->failure);
		assert_int_equal(back->failure->last.status, 410);
		assert_int_equal(back->created_ms, 500);

		json_t *j = hd_devices_json(back);
		assert_string_equal(json_string_value(json_object_get(j, "state")), "invalid");
		assert_string_equal(json_string_value(json_object_get(j, "invalid_reason")), "Unregistered");
		assert_string_equal(json_string_value(json_object_get(j, "last_success")),
				    "1970-01-01T00:00:01.000Z");
		json_t *f = json_object_get(j, "last_failure");
		assert_int_equal(json_integer_value(json_object_get(f, "status")), 410);
		json_decref(j);
		free(rec);
		free(again);
		hd_devices_device_free(d);
		hd_devices_device_free(back);
	}
}

static void test_record_refused(void **state)
{
	(void)state;
	struct hd_device *d;
	const char *good = "{\"platform\":\"fcm\",\"token\":\"t\",\"topics\":[],\"state\":\"active\","
			   "\"invalid_reason\":\"\",\"last_success\":0,\"last_failure\":{\"time\":0,"
			   "\"status\":0,\"reason\":\"\"},\"created\":1,\"updated\":1}";
	assert_int_equal(hd_devices_record_parse("7\nd", good, &d), 0);
	json_t *j = hd_devices_json(d);
	assert_true(json_is_null(json_object_get(j, "last_success")));
	assert_true(json_is_null(json_object_get(j, "last_failure")));
	assert_true(json_is_null(json_object_get(j, "invalid_reason")));
	json_decref(j);
	assert_null(d->failure); /* never failed: nothing out of line */
	hd_devices_device_free(d);
	assert_int_equal(hd_devices_record_parse("no-newline", good, &d), HD_EINVAL);
	assert_null(d);
	assert_int_equal(hd_devices_record_parse("7\nbad id", good, &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "{}", &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "not json", &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "{\"platform\":\"fcm\",\"token\":\"t\"}", &d),
			 HD_EINVAL);
	assert_null(d);
}

/* ---- the registry over an in-memory record engine ----------------------- */

#define RECS_MAX 64

struct rec_engine {
	struct hd_engine base;
	struct hd_record recs[RECS_MAX]; /* sorted by key; kind is always "device" */
	size_t n;
	size_t puts, deletes;
};

static int rec_find(struct rec_engine *f, const char *key)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->recs[i].key, key) == 0)
			return (int)i;
	return -1;
}

static void rec_put(struct rec_engine *f, const char *key, const char *value)
{
	int i = rec_find(f, key);
	if (i >= 0) {
		free(f->recs[i].value);
		f->recs[i].value = hd_strdup(value);
		return;
	}
	assert_true(f->n < RECS_MAX);
	size_t at = 0;
	while (at < f->n && strcmp(f->recs[at].key, key) < 0)
		at++;
	memmove(&f->recs[at + 1], &f->recs[at], (f->n - at) * sizeof(f->recs[0]));
	memset(&f->recs[at], 0, sizeof(f->recs[at]));
	snprintf(f->recs[at].kind, sizeof(f->recs[at].kind), "device");
	snprintf(f->recs[at].key, sizeof(f->recs[at].key), "%s", key);
	f->recs[at].value = hd_strdup(value);
	f->n++;
}

static int rec_op(struct hd_engine *e, struct hd_record_op *op)
{
	struct rec_engine *f = (struct rec_engine *)e;
	int i = rec_find(f, op->rec.key);

	assert_string_equal(op->rec.kind, HD_DEVICES_RECORD_KIND);
	op->err = 0;
	switch (op->kind) {
	case HD_RECORD_PUT:
		f->puts++;
		rec_put(f, op->rec.key, op->rec.value);
		break;
	case HD_RECORD_DELETE:
		f->deletes++;
		if (i < 0) {
			op->err = HD_ENOTFOUND;
			break;
		}
		free(f->recs[i].value);
		memmove(&f->recs[i], &f->recs[i + 1], (f->n - (size_t)i - 1) * sizeof(f->recs[0]));
		f->n--;
		break;
	case HD_RECORD_GET:
		op->err = HD_ENOTIMPL;
		break;
	case HD_RECORD_LIST:
		op->recs = hd_calloc(f->n + 1, sizeof(*op->recs));
		for (size_t k = 0; k < f->n && op->n < op->limit; k++) {
			if (op->after && strcmp(f->recs[k].key, op->after) <= 0)
				continue;
			if (op->prefix && strncmp(f->recs[k].key, op->prefix, strlen(op->prefix)) != 0)
				continue;
			op->recs[op->n] = f->recs[k];
			op->recs[op->n++].value = hd_strdup(f->recs[k].value);
		}
		break;
	}
	op->done(op);
	return 0;
}

static bool rec_ready(struct hd_engine *e)
{
	(void)e;
	return true;
}

static const struct hd_engine_ops rec_ops = {.name = "records", .record_op = rec_op, .ready = rec_ready};

static void rec_fini(struct rec_engine *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->recs[i].value);
}

struct waiter {
	int calls, err;
};

static void done(void *arg, int err)
{
	struct waiter *w = arg;
	w->calls++;
	w->err = err;
}

/* Registers body as user/id; returns the put's result. */
static int reg(struct hd_devices *d, const char *user, const char *id, const char *body,
	       bool *created)
{
	struct hd_device *dev = parse_ok(body, false);
	struct hd_error err = {0};
	struct waiter w = {0};
	bool c = false;
	int rc = hd_devices_put(d, user, id, dev, &c, done, &w, &err);
	if (rc == 0) {
		assert_int_equal(w.calls, 1); /* the fake engine answers at once */
		assert_int_equal(w.err, 0);
	} else {
		assert_int_equal(w.calls, 0);
		assert_int_equal(err.code, rc);
	}
	if (created)
		*created = c;
	return rc;
}

static const char *record_of(struct rec_engine *f, const char *key)
{
	int i = rec_find(f, key);
	return i < 0 ? NULL : f->recs[i].value;
}

static void test_registry(void **state)
{
	(void)state;
	struct rec_engine f = {.base = {.ops = &rec_ops}};
	struct hd_config cfg;
	uv_loop_t loop;
	struct hd_device *const *list;
	bool created;

	/* Stored before the start: two records holding one token (a move cut
	 * short), the newer must win; and an unreadable one, skipped. */
	struct hd_device *a = parse_ok("{\"platform\":\"fcm\",\"token\":\"shared\"}", false);
	a->user = strdup("1");
	snprintf(a->id, sizeof(a->id), "old");
	a->created_ms = a->updated_ms = 100;
	char *ra = hd_devices_record(a);
	free(a->user);
	a->user = strdup("2");
	snprintf(a->id, sizeof(a->id), "new");
	a->updated_ms = 200;
	char *rb = hd_devices_record(a);
	rec_put(&f, "1\nold", ra);
	rec_put(&f, "2\nnew", rb);
	rec_put(&f, "3\nbroken", "{");
	free(ra);
	free(rb);
	hd_devices_device_free(a);

	uv_loop_init(&loop);
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f.base);
	struct hd_devices *d = hd_devices_new(&loop, hub, &(struct hd_devices_opts){
		.max_per_user = 2, .max_total = 4});
	assert_false(hd_devices_loaded(d));
	assert_int_equal(reg(d, "9", "x", "{\"platform\":\"fcm\",\"token\":\"t\"}", NULL), HD_EUNAVAIL);
	hd_devices_start(d);
	assert_true(hd_devices_loaded(d));
	assert_int_equal(hd_devices_count(d), 1);
	assert_null(hd_devices_get(d, "1", "old"));
	assert_non_null(hd_devices_get(d, "2", "new"));
	assert_null(record_of(&f, "1\nold")); /* deleted durably */

	/* Register, replace, the per-user cap, another user. */
	assert_int_equal(reg(d, "42", "phone", "{\"platform\":\"apns\",\"token\":\"00112233445566778899\","
			     "\"topics\":[\"rides:1\",\"news\"]}", &created), 0);
	assert_true(created);
	assert_int_equal(reg(d, "42", "phone", "{\"platform\":\"apns\",\"token\":\"00112233445566778899\","
			     "\"topics\":[\"news\"]}", &created), 0);
	assert_false(created);
	assert_int_equal(hd_devices_followers(d, "rides:1", &list), 0);
	assert_int_equal(hd_devices_followers(d, "news", &list), 1);
	assert_string_equal(list[0]->id, "phone");
	assert_int_equal(reg(d, "42", "tablet", "{\"platform\":\"fcm\",\"token\":\"tab\",\"topics\":[\"news\"]}",
			     NULL), 0);
	assert_int_equal(hd_devices_followers(d, "news", &list), 2);
	assert_int_equal(reg(d, "42", "third", "{\"platform\":\"fcm\",\"token\":\"3\"}", NULL), HD_ELIMIT);
	assert_int_equal(hd_devices_of_user(d, "42", &list), 2);
	assert_string_equal(list[0]->id, "phone");
	assert_string_equal(list[1]->id, "tablet");
	/* The global cap (4): 3 now, one more fits, then none. */
	assert_int_equal(reg(d, "7", "a", "{\"platform\":\"fcm\",\"token\":\"7a\"}", NULL), 0);
	assert_int_equal(reg(d, "8", "a", "{\"platform\":\"fcm\",\"token\":\"8a\"}", NULL), HD_ELIMIT);
	/* A move is not one more: user 8 takes user 7's token. */
	assert_int_equal(reg(d, "8", "a", "{\"platform\":\"fcm\",\"token\":\"7a\"}", &created), 0);
	assert_true(created);
	assert_null(hd_devices_get(d, "7", "a"));
	assert_null(record_of(&f, "7\na"));
	assert_non_null(record_of(&f, "8\na"));
	/* The tablet's token moves to user 43: it leaves the followers too. */
	assert_int_equal(reg(d, "43", "tab", "{\"platform\":\"fcm\",\"token\":\"tab\"}", NULL), 0);
	assert_int_equal(hd_devices_followers(d, "news", &list), 1);
	assert_int_equal(hd_devices_of_user(d, "42", &list), 1);

	/* Outcomes: kept in memory at once, written once per flush. */
	size_t puts = f.puts;
	hd_devices_mark_success(d, "42", "phone", 1000);
	hd_devices_mark_failure(d, "42", "phone", 2000, 429, "TooManyRequests");
	hd_devices_mark_success(d, "nobody", "x", 3000); /* ignored */
	const struct hd_device *ph = hd_devices_get(d, "42", "phone");
	assert_int_equal(ph->last_success_ms, 1000);
	assert_int_equal(ph->failure->last.status, 429);
	assert_int_equal(f.puts, puts);
	uv_run(&loop, UV_RUN_DEFAULT); /* the flush timer fires once, then nothing is left */
	assert_int_equal(f.puts, puts + 1);
	assert_non_null(strstr(record_of(&f, "42\nphone"), "TooManyRequests"));
	hd_devices_mark_invalid(d, "42", "phone", 4000, 410, "Unregistered \xc3\xa9");
	assert_int_equal(ph->state, HD_DEVICE_INVALID);
	assert_string_equal(ph->failure->invalid_reason, "Unregistered ??"); /* ASCII only, for the JSON */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_non_null(strstr(record_of(&f, "42\nphone"), "\"state\":\"invalid\""));
	/* Registering again makes it active; the history stays. */
	assert_int_equal(reg(d, "42", "phone", "{\"platform\":\"apns\",\"token\":\"00112233445566778899\"}",
			     &created), 0);
	ph = hd_devices_get(d, "42", "phone");
	assert_int_equal(ph->state, HD_DEVICE_ACTIVE);
	assert_int_equal(ph->last_success_ms, 1000);
	assert_int_equal(ph->failure->last.status, 410);

	/* Delete; a pending outcome of a deleted device is not written. */
	hd_devices_mark_success(d, "43", "tab", 5000);
	struct waiter w = {0};
	assert_int_equal(hd_devices_delete(d, "43", "tab", done, &w), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(hd_devices_delete(d, "43", "tab", done, &w), HD_ENOTFOUND);
	assert_null(record_of(&f, "43\ntab"));

	/* Stop writes what is pending; the records load back the same. */
	hd_devices_mark_success(d, "8", "a", 6000);
	hd_devices_stop(d);
	assert_non_null(strstr(record_of(&f, "8\na"), "\"last_success\":6000"));
	uv_run(&loop, UV_RUN_DEFAULT);
	size_t count = hd_devices_count(d);
	hd_devices_free(d);
	d = hd_devices_new(&loop, hub, &(struct hd_devices_opts){.max_per_user = 2, .max_total = 4});
	hd_devices_start(d);
	assert_int_equal(hd_devices_count(d), count);
	assert_int_equal(hd_devices_get(d, "8", "a")->last_success_ms, 6000);
	assert_int_equal(hd_devices_get(d, "42", "phone")->created_ms,
			 hd_devices_get(d, "42", "phone")->created_ms);
	hd_devices_stop(d);
	uv_run(&loop, UV_RUN_DEFAULT);
	hd_devices_free(d);
	hd_hub_free(hub);
	uv_loop_close(&loop);
	rec_fini(&f);
}

/* Another node's record of user/id for body, as it writes it. */
static void other_node_put(struct rec_engine *f, const char *user, const char *id, const char *body)
{
	char key[HD_RECORD_KEY_MAX + 1];
	struct hd_device *dev = parse_ok(body, false);
	dev->user = strdup(user);
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	dev->created_ms = dev->updated_ms = hd_now_ms() + 1000;
	char *v = hd_devices_record(dev);
	snprintf(key, sizeof(key), "%s\n%s", user, id);
	rec_put(f, key, v);
	free(v);
	hd_devices_device_free(dev);
}

/* One user's records re-read (hd_devices_refresh): what another node added,
 * changed and deleted for that user is merged; other users stay as cached. */
static void test_refresh(void **state)
{
	(void)state;
	struct rec_engine f = {.base = {.ops = &rec_ops}};
	struct hd_config cfg;
	uv_loop_t loop;
	struct hd_devices_refresh r;
	struct waiter w = {0};

	uv_loop_init(&loop);
	hd_config_defaults(&cfg);
	struct hd_hub *hub = hd_hub_new(&cfg);
	hd_hub_set_engine(hub, &f.base);
	struct hd_devices *d = hd_devices_new(&loop, hub, &(struct hd_devices_opts){
		.max_per_user = 10, .max_total = 100});
	assert_int_equal(hd_devices_refresh(d, &r, "5", done, &w), HD_EUNAVAIL); /* loading */
	hd_devices_start(d);
	assert_false(hd_devices_stale(d, hd_now_ms())); /* one node: never */
	assert_int_equal(reg(d, "5", "a", "{\"platform\":\"fcm\",\"token\":\"t5a\"}", NULL), 0);
	assert_int_equal(reg(d, "5", "b", "{\"platform\":\"fcm\",\"token\":\"t5b\"}", NULL), 0);
	assert_int_equal(reg(d, "6", "a", "{\"platform\":\"fcm\",\"token\":\"t6a\"}", NULL), 0);
	/* Another node: deletes 5/a, changes 5/b's token, adds 5/c and 6/b. */
	rec_op(&f.base, &(struct hd_record_op){.kind = HD_RECORD_DELETE, .rec = {.kind = "device",
					       .key = "5\na"}, .done = hd_engine_record_op_fini});
	other_node_put(&f, "5", "b", "{\"platform\":\"fcm\",\"token\":\"t5b-new\"}");
	other_node_put(&f, "5", "c", "{\"platform\":\"apns\",\"token\":\"00112233445566778899\"}");
	other_node_put(&f, "6", "b", "{\"platform\":\"fcm\",\"token\":\"t6b\"}");
	assert_int_equal(hd_devices_refresh(d, &r, "5", done, &w), 0);
	assert_int_equal(w.calls, 1); /* the fake engine answers at once */
	assert_int_equal(w.err, 0);
	assert_null(hd_devices_get(d, "5", "a"));
	assert_string_equal(hd_devices_get(d, "5", "b")->token, "t5b-new");
	assert_non_null(hd_devices_get(d, "5", "c"));
	assert_non_null(hd_devices_get(d, "6", "a"));
	assert_null(hd_devices_get(d, "6", "b")); /* another user: the re-list's */
	assert_int_equal(hd_devices_count(d), 3);
	hd_devices_stop(d);
	uv_run(&loop, UV_RUN_DEFAULT);
	hd_devices_free(d);
	hd_hub_free(hub);
	uv_loop_close(&loop);
	rec_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns),
		cmocka_unit_test(test_fcm),
		cmocka_unit_test(test_webpush),
		cmocka_unit_test(test_common_refusals),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_refused),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_refresh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
