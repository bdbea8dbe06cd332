/*
 * push_cmd — `herald push …`, the push subcommands that need no server:
 *   herald push vapid-keys [--json]
 * prints a new Web Push application server key pair (VAPID, RFC 8292) as
 * base64url, in the forms npm `web-push generate-vapid-keys` prints: the
 * public key (the browser's applicationServerKey) and the private key
 * (a file holding it is a --push-vapid-private-key-file).
 * Layer: cli. Caller: main.c.
 */
#ifndef HD_CLI_PUSH_CMD_H
#define HD_CLI_PUSH_CMD_H

/* Runs the subcommand in argv[0..argc) (after "push"); returns the exit code. */
int hd_push_cmd_run(int argc, char **argv);

#endif
