/* Unit tests for auth/acl.c: the user: rule, every namespace rule value,
 * 401 versus 403, history/presence access, public topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "auth/acl.h"

static struct hd_ns_opts ns(const char *sub, const char *pub, const char *hist, const char *pres)
{
	struct hd_ns_opts o;
	memset(&o, 0, sizeof(o));
	snprintf(o.subscribe, sizeof(o.subscribe), "%s", sub);
	snprintf(o.publish, sizeof(o.publish), "%s", pub);
	snprintf(o.history_access, sizeof(o.history_access), "%s", hist);
	snprintf(o.presence_access, sizeof(o.presence_access), "%s", pres);
	return o;
}

static void test_user_topics(void **state)
{
	struct hd_ns_opts o = ns("anonymous", "anonymous", "subscribe", "subscribe");
	struct hd_acl_subject anon = {0}, u42 = {.user = "42"}, u7 = {.user = "7"};
	char *chans[] = {"user:42"};
	struct hd_acl_subject u7listed = {.user = "7", .channels = chans, .nchannels = 1,
					  .sub_channel = "user:42"};
	for (int op = HD_ACL_SUBSCRIBE; op <= HD_ACL_PRESENCE; op++) {
		assert_int_equal(hd_acl_check(&o, "user:42", op, &u42), 0);
		assert_int_equal(hd_acl_check(&o, "user:42", op, &u7), HD_EFORBIDDEN);
		assert_int_equal(hd_acl_check(&o, "user:42", op, &u7listed), HD_EFORBIDDEN);
		assert_int_equal(hd_acl_check(&o, "user:42", op, &anon), HD_EUNAUTH);
	}
	assert_int_equal(hd_acl_check(&o, "user:4", HD_ACL_SUBSCRIBE, &u42), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&o, "user:420", HD_ACL_SUBSCRIBE, &u42), HD_EFORBIDDEN);
	assert_false(hd_acl_public(&o, "user:42"));
}

static void test_rules(void **state)
{
	struct hd_acl_subject anon = {0}, user = {.user = "u1"};
	char *chans[] = {"rides:1", "rides:2"};
	struct hd_acl_subject claim = {.user = "u1", .channels = chans, .nchannels = 2};
	struct hd_acl_subject subtok = {.user = "u1", .sub_channel = "rides:3"};
	struct hd_acl_subject anon_subtok = {.sub_channel = "rides:3"};

	struct hd_ns_opts a = ns("anonymous", "anonymous", "subscribe", "subscribe");
	assert_int_equal(hd_acl_check(&a, "rides:1", HD_ACL_SUBSCRIBE, &anon), 0);
	assert_int_equal(hd_acl_check(&a, "rides:1", HD_ACL_PUBLISH, &anon), 0);
	assert_true(hd_acl_public(&a, "rides:1"));

	struct hd_ns_opts au = ns("authenticated", "authenticated", "subscribe", "subscribe");
	assert_int_equal(hd_acl_check(&au, "rides:1", HD_ACL_SUBSCRIBE, &anon), HD_EUNAUTH);
	assert_int_equal(hd_acl_check(&au, "rides:1", HD_ACL_SUBSCRIBE, &user), 0);
	assert_int_equal(hd_acl_check(&au, "rides:1", HD_ACL_PUBLISH, &anon), HD_EUNAUTH);
	assert_false(hd_acl_public(&au, "rides:1"));

	struct hd_ns_opts t = ns("token", "none", "subscribe", "subscribe");
	assert_int_equal(hd_acl_check(&t, "rides:1", HD_ACL_SUBSCRIBE, &anon), HD_EUNAUTH);
	assert_int_equal(hd_acl_check(&t, "rides:1", HD_ACL_SUBSCRIBE, &user), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&t, "rides:1", HD_ACL_SUBSCRIBE, &claim), 0);
	assert_int_equal(hd_acl_check(&t, "rides:2", HD_ACL_SUBSCRIBE, &claim), 0);
	assert_int_equal(hd_acl_check(&t, "rides:3", HD_ACL_SUBSCRIBE, &claim), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&t, "rides:3", HD_ACL_SUBSCRIBE, &subtok), 0);
	assert_int_equal(hd_acl_check(&t, "rides:4", HD_ACL_SUBSCRIBE, &subtok), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&t, "rides:3", HD_ACL_SUBSCRIBE, &anon_subtok), 0);
	/* publish = none: no client at all. */
	assert_int_equal(hd_acl_check(&t, "rides:1", HD_ACL_PUBLISH, &claim), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&t, "rides:1", HD_ACL_PUBLISH, &anon), HD_EFORBIDDEN);

	/* An unknown rule value (never from the config table) is closed. */
	struct hd_ns_opts bad = ns("bogus", "bogus", "bogus", "bogus");
	assert_int_equal(hd_acl_check(&bad, "x", HD_ACL_SUBSCRIBE, &user), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&bad, "x", HD_ACL_HISTORY, &user), HD_EFORBIDDEN);
}

static void test_history_presence(void **state)
{
	struct hd_acl_subject user = {.user = "u1"}, subscribed = {.user = "u1", .subscribed = true};
	struct hd_acl_subject anon = {0};

	struct hd_ns_opts s = ns("authenticated", "authenticated", "subscribe", "subscribe");
	assert_int_equal(hd_acl_check(&s, "c", HD_ACL_HISTORY, &user), 0);
	assert_int_equal(hd_acl_check(&s, "c", HD_ACL_HISTORY, &anon), HD_EUNAUTH);
	assert_int_equal(hd_acl_check(&s, "c", HD_ACL_PRESENCE, &user), 0);

	struct hd_ns_opts d = ns("anonymous", "authenticated", "subscribed", "none");
	assert_int_equal(hd_acl_check(&d, "c", HD_ACL_HISTORY, &user), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&d, "c", HD_ACL_HISTORY, &subscribed), 0);
	assert_int_equal(hd_acl_check(&d, "c", HD_ACL_PRESENCE, &subscribed), HD_EFORBIDDEN);
	assert_int_equal(hd_acl_check(&d, "c", HD_ACL_SUBSCRIBE, &anon), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_topics),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_history_presence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
