/*
 * stats_cmd — `herald stats [--json]`: prints the overview of a herald
 * node (GET /v1/stats, an admin key): version, uptime, connections by
 * transport, users online, topics, store size, totals of publishes and
 * deliveries, webhooks. --json prints the server's JSON as it is.
 * Layer: cli (libcurl, outside the server). Takes --server and --api-key
 * like `herald publish` (cli/client.h).
 */
#ifndef HD_CLI_STATS_CMD_H
#define HD_CLI_STATS_CMD_H

/* Runs the command; returns the process exit code (1: the server refused
 * or cannot be reached, 2: bad usage). */
int hd_stats_cmd_run(int argc, char **argv);

#endif
