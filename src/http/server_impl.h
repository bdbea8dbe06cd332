/*
 * server_impl — the private parts of the HTTP server (http/server.h),
 * shared by the files that implement it, as store/store_impl.h is for the
 * store. Nothing outside src/http/server*.c includes it.
 * Layer: http. Loop thread only.
 *
 * The server is one idea split along its parts (server.c tells the whole
 * design, the connection's states and its memory rules):
 *   server.c          the listeners, admission, shutdown, and the life of a
 *                     connection: its read buffer, timer, close and free
 *   server_input.c    reads (and TLS decryption) and the request pump: parse,
 *                     dispatch to the handler, flush, start or stop reading
 *   server_respond.c  responses: status line, headers, CORS, error bodies
 *   server_output.c   the write path (out[], TLS encryption, LINGER's FIN)
 *                     and streaming responses (queued rcbufs, the flusher)
 *   server_upgrade.c  upgraded connections: input handed to the edge
 */
#ifndef HD_HTTP_SERVER_IMPL_H
#define HD_HTTP_SERVER_IMPL_H

#include "http/server.h"
#include "core/buf.h"
#include "core/rcbuf.h"
#include "http/forwarded.h"
#include "http/iplimit.h"
#include "http/request.h"
#include "net/tls.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#define CORS_HEADER_MAX 320                    /* "Access-Control-Allow-Origin: <origin>" + Vary */
#define READ_BUF_SIZE (16 * 1024)               /* input bytes held per connection */
#define OUT_HIGH_WATER (64 * 1024)              /* pause parsing while this much waits */
#define RESPONSE_MAX (64 * 1024 * 1024)         /* one response; our handlers stay far below */
#define OUT_MAX (OUT_HIGH_WATER + RESPONSE_MAX) /* ceiling of each output buffer */
#define OUT_KEEP_MAX (16 * 1024)                /* bigger output buffers are freed once written */
#define SPARE_MAX 64                            /* idle read buffers kept for reuse */
#define SNODE_SPARE_MAX 4096 /* idle stream queue nodes kept for reuse: one per subscriber of a fan-out */
#define ERROR_BODY_MAX 2048                     /* a JSON error body */
#define LINGER_MS 2000                          /* drain time after the last response */
#define LINGER_BYTES (1024 * 1024)              /* input dropped while lingering */
#define TLS_STAGE (16 * 1024)                   /* plaintext gathered into one TLS record */
#define IPLIMIT_IDLE (16 * 1024)                /* idle addresses kept beyond max_connections */

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_HANDLER, ST_LINGER };

/* One output buffer and the write request that owns it while it is written. */
struct out {
	uv_write_t req; /* first member: the write callback finds its out from req */
	struct hd_buf buf;
};

struct conn {
	uv_tcp_t tcp;     /* tcp.data = this connection */
	uv_timer_t timer; /* timer.data = this connection */
	/* The state's limit, as a loop time (ms); 0: none. The timer is
	 * lazy: it may be set for earlier (due), and then sets itself again
	 * for the rest, so keep-alive requests cost no timer operations. */
	uint64_t deadline;
	uint64_t due;
	uv_shutdown_t shutdown;
	struct hd_http_server *srv;
	struct conn *prev, *next; /* srv->conns */
	enum conn_state state;
	int handles; /* libuv handles whose close callback has not run */

	char *in; /* owned: READ_BUF_SIZE bytes while input is expected, else NULL */
	size_t in_start, in_len;
	size_t drained; /* bytes dropped while lingering */
	struct hd_request_parser parser;
	struct hd_http_request req;

	struct out out[2];
	int fill;     /* index of the buffer responses are appended to */
	bool writing; /* out[!fill] is being written */

	bool counted;     /* counts toward max_connections and the gauge */
	bool in_flight;   /* req is in the handler */
	bool dispatching; /* hd_server_input_pump is running */
	bool reading;
	bool eof;       /* the client sent FIN */
	bool closing;   /* uv_close was called */
	bool shut;      /* uv_shutdown was called */
	bool continued; /* "100 Continue" was sent for this request */
	bool heard;     /* the client sent at least one byte */
	char remote[64];
	struct hd_iplimit_entry *ip; /* its address's count, while counted; NULL if none */
	/* Behind a proxy (see server.c "Proxies"): the client's address is
	 * known only from the PROXY header (proxy_wait) or from each
	 * request's headers (via_proxy), so the per-address admission waits
	 * for it (ip_pending). ipkey is the key ip counts under. */
	bool proxy_wait;
	bool via_proxy;
	bool ip_pending;
	char ipkey[HD_IPLIMIT_KEY_MAX];

	/* A streaming response (hd_http_stream_start): the edge owns req until
	 * hd_http_stream_end/abort or, if the client leaves first, until
	 * on_close runs. Its bytes wait in squeue (shared rcbufs) behind what
	 * out[] still holds; one struct swrite is written at a time. */
	bool stream_open;
	bool dirty;             /* in srv->dirty: flush at the end of the iteration */
	struct conn *dprev, *dnext;
	/* The CORS header lines of the response being written (a buffer on
	 * the responding function's stack), NULL for none. */
	const char *cors;
	struct snode *sq_head, *sq_tail;
	struct swrite *swrite;  /* in flight, NULL if none */
	size_t spending;        /* bytes queued plus in flight */
	void (*on_close)(void *arg);
	void (*on_drain)(void *arg); /* one-shot, see hd_http_stream_want_drain */
	void *stream_arg;

	/* An upgraded stream (hd_http_upgrade): input goes to on_input. */
	bool upgraded;
	bool input_on;  /* the edge takes input (hd_http_stream_read) */
	bool kick_init; /* kick was initialised: it counts in handles */
	uv_idle_t kick; /* kick.data = this connection */
	void (*on_input)(void *arg, const char *p, size_t n);

	/* owned: the TLS session of a connection accepted on the HTTPS
	 * listener, NULL for plain HTTP (see "TLS" above). */
	struct hd_tls *tls;
};

/* One queued stream buffer (holds one reference). */
struct snode {
	struct snode *next;
	struct hd_rcbuf *buf;
	size_t off; /* bytes of buf already written */
};

#define SWRITE_BUFS 64 /* buffers per stream write */

/* One stream write in flight; owns one reference to each of its buffers. */
struct swrite {
	uv_write_t req; /* first member */
	size_t n, bytes;
	struct hd_rcbuf *bufs[SWRITE_BUFS];
	uv_buf_t ub[SWRITE_BUFS];
};

struct hd_http_server {
	uv_loop_t *loop;
	struct hd_http_limits lim;
	hd_http_handler handler;
	void *arg;
	uv_tcp_t listener;  /* listener.data = this server */
	uv_tcp_t tls_listener; /* HTTPS; tls_listener.data = this server */
	uv_timer_t drain;   /* the shutdown deadline; drain.data = this server */
	int handles;        /* of the listeners and drain, those whose close callback has not run */
	int port, tls_port;
	struct hd_tls_ctx *tls_ctx; /* owned: what new HTTPS connections use */
	char *tls_scratch;  /* owned: READ_BUF_SIZE bytes, ciphertext of the read in progress */
	size_t in_size;     /* bytes of each input buffer (see "TLS" above) */
	struct conn *conns; /* every connection not yet freed */
	size_t nopen;       /* connections counted toward max_connections */
	struct hd_iplimit *iplimit; /* owned: connections per client address */
	size_t nlive;       /* connections not yet freed */
	bool stopping;
	void (*done)(void *arg);
	void *done_arg;
	time_t date_at;
	char date[64];
	/* The status line, Server and Date of the last response, ready to
	 * copy: most responses in a row share their status (and second). */
	int head_status;
	time_t head_at;
	size_t head_len;
	char head[160];
	long long warn_ms;
	long long fd_warn_ms; /* the out-of-descriptors warning's own rate limit */
	uint64_t fd_ceiling;  /* hd_fdlimit_ceiling at start; 0: none */
	struct hd_forwarded trusted; /* --trusted-proxies (n 0: none) */
	char *spare[SPARE_MAX]; /* owned: read buffers not in use */
	size_t nspare;
	/* Streams written to since the last flush, flushed together by an
	 * idle handle: after the I/O callbacks of one iteration, before the
	 * loop would block again (an active idle handle makes the next poll
	 * not wait). Every event a commit fans out to one subscriber leaves
	 * in one writev. */
	uv_idle_t flusher;      /* flusher.data = this server */
	struct conn *dirty;
	/* Owned: stream queue nodes not in use (at most SNODE_SPARE_MAX), so
	 * that a fan-out allocates nothing per subscriber once warm. */
	struct snode *snode_spare;
	size_t nsnode_spare;
};


/* ---- server.c: the life of a connection ---------------------------------- */

/* A read buffer of in_size bytes: a spare one, or a new one (owned). */
char *hd_server_inbuf_get(struct hd_http_server *s);
/* Gives c's read buffer back to the spares when it holds nothing. */
void hd_server_inbuf_release(struct conn *c);
/* Frees c once its handles are closed and no request of it is in the handler. */
void hd_server_conn_maybe_free(struct conn *c);
/* Closes at once, dropping unsent output. Safe to call more than once. */
void hd_server_conn_close(struct conn *c);
/* Closes after the output queued so far (LINGER). */
void hd_server_conn_end(struct conn *c);
/* Queues the answer to a request the server refuses itself (code an HD_E*,
 * message NULL or borrowed, extra header lines or NULL; limit: a limit hit,
 * counted and logged as one), then ends. */
void hd_server_conn_fail(struct conn *c, int code, const char *message, const char *extra,
			 bool limit);
/* Sets the state's time limit in ms (0: none); lazy, see struct conn. */
void hd_server_arm(struct conn *c, uint64_t ms);
/* Lifts the time limit. */
void hd_server_disarm(struct conn *c);
/* Sets c's client address (remote, ipkey) to sa. */
void hd_server_conn_address(struct conn *c, const struct sockaddr *sa);
/* Applies the per-address limits to c's ipkey (releasing an earlier
 * count); returns true when admitted, else c was answered 429/503. */
bool hd_server_conn_admit(struct conn *c);

/* ---- server_input.c: reads and the request pump --------------------------- */

/* Parses and dispatches what it can, flushes output, starts or stops
 * reading: every entry point ends with it. */
void hd_server_input_pump(struct conn *c);
/* After a keep-alive response: the next request, already here or awaited. */
void hd_server_input_next(struct conn *c);

/* ---- server_respond.c: responses ------------------------------------------ */

/* Appends one response to the output (stream: a head without
 * Content-Length whose body follows until the close). Returns 0, or
 * HD_ETOOBIG with the output unchanged. */
int hd_server_respond_put(struct conn *c, int status, const char *ctype, const char *extra,
			  const char *body, size_t len, bool keep, bool head_only, bool stream);
/* Fills b (which this initialises) with herald's JSON error body. */
void hd_server_respond_error_body(struct hd_buf *b, int code, const char *message);
/* Points c->cors at the CORS lines for a response to req (in out, or a constant). */
void hd_server_respond_cors(struct conn *c, const struct hd_http_request *req,
			    char out[CORS_HEADER_MAX]);
/* Counts a response of status in the error metrics. */
void hd_server_respond_count(int status);

/* ---- server_output.c: the write path and streams -------------------------- */

/* Sends what waits in out[fill], then the stream queue. */
void hd_server_output_flush(struct conn *c);
/* Writes the records waiting in c->tls; then cb(user), if user. Returns 0
 * or a libuv error (then close). */
int hd_server_output_tls_send(struct conn *c, uv_write_t *user, uv_write_cb cb);
/* Takes c off the server's list of streams to flush. */
void hd_server_output_dirty_unlink(struct conn *c);
/* The flusher's idle callback: flushes every stream written to since. */
void hd_server_output_on_flush(uv_idle_t *h);
/* Drops n's reference and keeps n for reuse (or frees it). */
void hd_server_output_snode_put(struct hd_http_server *s, struct snode *n);

/* ---- server_upgrade.c: upgraded connections ------------------------------- */

/* Whether kick has input to hand over or an EOF to act on. */
bool hd_server_upgrade_has_work(const struct conn *c);
/* Hands the buffered input to the edge (from the read callback or kick). */
void hd_server_upgrade_input(struct conn *c);
/* Starts c's kick idle handle (hd_server_upgrade_input at the next turn). */
void hd_server_upgrade_kick(struct conn *c);

#endif
