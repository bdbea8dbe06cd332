/*
 * tail_cmd — `herald tail TOPIC [--after N] [--json]`: follows a topic live
 * over Server-Sent Events (GET /v1/topics/{topic}/sse), one line per event
 * on stdout, flushed as it comes:
 *   default   "<offset> <type> <id> <data as compact JSON>"
 *   --json    the stored event's JSON, as the server sent it
 * Without --after it starts at the topic's tail (events from now on).
 * When the stream ends or the server cannot be reached it connects again,
 * waiting 0.2 s, doubling up to 5 s, with ?after= the last offset it
 * printed, so across a restart of herald nothing is missed or repeated.
 * A `reset` (retention removed events) is said on stderr, as are
 * reconnections. It stops on an answer of 4xx (bad topic, key refused:
 * exit code 1), on a token or key expiry or revocation, and on SIGINT or
 * SIGTERM (exit 0).
 * Layer: cli (libcurl, outside the server). Takes --server and --api-key
 * like `herald publish` (cli/client.h).
 */
#ifndef HD_CLI_TAIL_CMD_H
#define HD_CLI_TAIL_CMD_H

/* Runs the command; returns the process exit code (2: bad usage). */
int hd_tail_cmd_run(int argc, char **argv);

#endif
