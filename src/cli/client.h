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

int hd_client_publish(int argc, char **argv);
int hd_client_read(int argc, char **argv);

#endif
