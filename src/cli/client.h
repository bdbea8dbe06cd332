/*
 * client — the `herald publish` and `herald read` command-line clients.
 * Layer: cli (outside the server; talks to a herald over HTTP with libcurl).
 * Each prints the server's JSON answer on stdout and returns the process
 * exit code: 0 on success, 1 when the server refused (the error message on
 * stderr), 2 for bad usage. --api-key KEY (or HERALD_API_KEY) is sent as
 * X-API-Key.
 */
#ifndef HD_CLI_CLIENT_H
#define HD_CLI_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* The herald a client command talks to. */
struct hd_client_target {
	const char *api_key;      /* --api-key or $HERALD_API_KEY; NULL: none */
	char server[4096];        /* --server or $HERALD_SERVER, no trailing '/' */
};

/* One flag of a command: with value, "--name VALUE" sets *value; with on
 * (value NULL), "--name" alone sets *on. */
struct hd_client_flag {
	const char *name;
	const char **value;
	bool *on;
};

/* Parses a client command's arguments: --server and --api-key (defaults
 * $HERALD_SERVER or http://127.0.0.1:8080, $HERALD_API_KEY), the command's
 * own flags, and up to max_pos positional arguments into pos (borrowed
 * from argv; their count in *npos). Returns 0, or 2 after saying on stderr
 * what is wrong. */
int hd_client_args(int argc, char **argv, const struct hd_client_flag *flags, size_t nflags,
		   const char **pos, int max_pos, int *npos, struct hd_client_target *t);
/* Appends "X-API-Key: <key>" to headers when t has a key; returns the list. */
struct curl_slist *hd_client_key_header(struct curl_slist *headers, const struct hd_client_target *t);

int hd_client_publish(int argc, char **argv);
int hd_client_read(int argc, char **argv);

#endif
