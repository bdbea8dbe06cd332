/* acl — see acl.h. */
#include "auth/acl.h"

#include <string.h>

static bool anonymous(const struct hd_acl_subject *who)
{
	return !who->user || !who->user[0];
}

static bool listed(const struct hd_acl_subject *who, const char *topic)
{
	if (who->sub_channel && strcmp(who->sub_channel, topic) == 0)
		return true;
	for (size_t i = 0; i < who->nchannels; i++)
		if (who->channels[i] && strcmp(who->channels[i], topic) == 0)
			return true;
	return false;
}

/* A subscribe/publish rule: anonymous | authenticated | token | none. */
static int rule(const char *r, const char *topic, const struct hd_acl_subject *who)
{
	if (strcmp(r, "anonymous") == 0)
		return 0;
	if (strcmp(r, "authenticated") == 0)
		return anonymous(who) ? HD_EUNAUTH : 0;
	if (strcmp(r, "token") == 0) {
		if (listed(who, topic))
			return 0;
		return anonymous(who) ? HD_EUNAUTH : HD_EFORBIDDEN;
	}
	return HD_EFORBIDDEN; /* none, or anything unknown: closed */
}

int hd_acl_check(const struct hd_ns_opts *ns, const char *topic, enum hd_acl_op op,
		 const struct hd_acl_subject *who)
{
	if (strncmp(topic, "user:", 5) == 0) {
		if (anonymous(who))
			return HD_EUNAUTH;
		return strcmp(topic + 5, who->user) == 0 ? 0 : HD_EFORBIDDEN;
	}
	switch (op) {
	case HD_ACL_SUBSCRIBE:
		return rule(ns->subscribe, topic, who);
	case HD_ACL_PUBLISH:
		return rule(ns->publish, topic, who);
	case HD_ACL_HISTORY:
	case HD_ACL_PRESENCE: {
		const char *access = op == HD_ACL_HISTORY ? ns->history_access : ns->presence_access;
		if (strcmp(access, "subscribe") == 0)
			return rule(ns->subscribe, topic, who);
		if (strcmp(access, "subscribed") == 0)
			return who->subscribed ? 0 : HD_EFORBIDDEN;
		return HD_EFORBIDDEN;
	}
	}
	return HD_EFORBIDDEN;
}

bool hd_acl_public(const struct hd_ns_opts *ns, const char *topic)
{
	return strncmp(topic, "user:", 5) != 0 && strcmp(ns->subscribe, "anonymous") == 0;
}
