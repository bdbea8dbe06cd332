/*
 * keys_cmd — `herald keys create|list|revoke`: managing the API keys
 * file (auth/keys.h) from the command line.
 * Layer: cli (outside the server). The file is found like the server finds
 * it: --keys-file, else DATA-DIR/keys (--data-dir, HERALD_DATA_DIR, the
 * config file). Writers take an exclusive lock (flock on FILE.lock), read
 * the file, change it and replace it atomically. A running server reads
 * the file again on SIGHUP.
 *
 *   herald keys create NAME --scope S [--scope S …] [--expires 30d|RFC3339]
 *       prints the secret once, on stdout; only its hash is stored
 *   herald keys list
 *       name, scopes, created, expires, fingerprint (the hash's first
 *       hex digits) — never the secret
 *   herald keys revoke NAME
 *
 * Returns the process exit code: 0, 1 (the file could not be read or
 * written, no such key), 2 (bad usage).
 */
#ifndef HD_CLI_KEYS_CMD_H
#define HD_CLI_KEYS_CMD_H

int hd_keys_cmd_run(int argc, char **argv);

#endif
