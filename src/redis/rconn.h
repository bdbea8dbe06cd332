/*
 * rconn — one Redis connection that stays up: connect, reconnect with
 * backoff, a bounded count of commands in flight, readiness.
 * Layer: redis (client plumbing under engine/redis*.c; knows nothing of
 * events or topics). Created by engine/redis.c for each shard's command
 * connection and its PUB/SUB connection; the engine's files send on them.
 *
 * Built on hiredis's asynchronous API with its libuv adapter: every
 * callback runs on the loop thread. A connection that drops is retried
 * after 50 ms, doubling up to 2 s; commands in flight when it drops are
 * answered with a NULL reply. Commands sent while it is not up wait in a
 * queue, sent in order once it is up and answered NULL when the next
 * attempt fails. Past max_pending commands queued or in flight, new ones
 * are refused with HD_EUNAVAIL (the caller answers 503): nothing waits
 * unboundedly.
 */
#ifndef HD_RCONN_H
#define HD_RCONN_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct hd_rconn;

/* A command's reply: r is borrowed for the call (NULL when the connection
 * dropped or is being freed). For a SUBSCRIBE, called for every message. */
typedef void (*hd_rconn_reply_fn)(struct hd_rconn *c, redisReply *r, void *priv);

struct hd_rconn_opts {
	uv_loop_t *loop;
	const char *host;             /* copied */
	int port;
	int db;                       /* SELECTed on each connect when not 0 */
	const char *what;             /* copied; names the connection in logs */
	/* With Sentinels: "HOST:PORT,…" (copied) and the primary's name; each
	 * (re)connect asks them where the primary is (host/port unused). */
	const char *sentinels;
	const char *master_name;
	size_t max_pending;           /* commands in flight at most */
	/* Not for a SUBSCRIBEd connection: when up, a PING every health_ms / 3;
	 * one unanswered for health_ms drops the connection (0 = none). */
	uint32_t health_ms;
	/* Called on the loop when the connection comes up (subscribe here) and
	 * when it goes down; either may be NULL. */
	void (*on_up)(struct hd_rconn *c, void *arg);
	void (*on_down)(struct hd_rconn *c, void *arg);
	void *arg;
};

/* Starts connecting. Returns owned; free with hd_rconn_free. */
struct hd_rconn *hd_rconn_new(const struct hd_rconn_opts *opts);

/* Whether the connection is up (connected, and SELECT sent). */
bool hd_rconn_ready(const struct hd_rconn *c);

/* Sends one command (argv and lens borrowed for the call). fn runs exactly
 * once, later, unless it is a SUBSCRIBE (then for every message, and once
 * with NULL at the end). Returns 0, or HD_EUNAVAIL (down, or max_pending
 * in flight: fn never runs). */
int hd_rconn_command(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, int argc,
		     const char **argv, const size_t *lens);

/* A MULTI … EXEC bracket: hd_rconn_multi_begin sends MULTI; the commands
 * sent until hd_rconn_multi_end are queued by the server (their +QUEUED
 * replies are swallowed here) and run at EXEC, whose array answers them:
 * each command's fn gets its own element. An aborted EXEC (EXECABORT, a
 * nil array, a count that does not match) or a lost connection answers
 * every fn NULL, as if its own call failed. Redis writes a transaction to
 * its AOF (and fsyncs it) once, at EXEC, whatever its size. Begin and end
 * are called in the same turn of the loop (nothing else, not even the
 * health PING, can slip in between); brackets do not nest. Not for a
 * SUBSCRIBEd connection. With Redis Cluster a bracket must stay within
 * one slot (the caller's concern). begin returns 0 or HD_EUNAVAIL (then no
 * bracket is open and the commands go out one by one). */
int hd_rconn_multi_begin(struct hd_rconn *c);
void hd_rconn_multi_end(struct hd_rconn *c);

/* Drops the connection now: every command in flight gets its NULL reply
 * before this returns; the connection is retried like any lost one. */
void hd_rconn_drop(struct hd_rconn *c);

/* Drops the connection soon (on the loop, not inside this call), so that
 * the next attempt finds the current primary: after a READONLY reply. */
void hd_rconn_reconnect(struct hd_rconn *c);

/* Disconnects (replies in flight are answered NULL before this returns),
 * then frees once the libuv handles are closed. */
void hd_rconn_free(struct hd_rconn *c);

#endif
