/* push_cmd — see push_cmd.h. */
#include "cli/push_cmd.h"
#include "core/err.h"
#include "push/vapid.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: herald push vapid-keys [--json]\n");
	return 2;
}

int hd_push_cmd_run(int argc, char **argv)
{
	char priv[HD_VAPID_PRIVATE_KEY_LEN + 1], pub[HD_VAPID_PUBLIC_KEY_LEN + 1];
	struct hd_error err = {0};
	bool json = false;

	if (argc < 1 || strcmp(argv[0], "vapid-keys") != 0)
		return usage();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") != 0)
			return usage();
		json = true;
	}
	if (hd_vapid_keys_generate(priv, pub, &err)) {
		fprintf(stderr, "herald: cannot make a key pair: %s\n", err.msg);
		return 1;
	}
	if (json)
		printf("{\"publicKey\":\"%s\",\"privateKey\":\"%s\"}\n", pub, priv);
	else
		printf("Public Key:\n%s\n\nPrivate Key:\n%s\n", pub, priv);
	return 0;
}
