/*
 * herald-publish-load — the publish load generator of bench/publish.sh and
 * bench/ab.sh.
 *
 *   herald-publish-load [--warmup S] [--nchan] [--topics N] single|batch PORT TOPIC CONNECTIONS SECONDS [SERVER_PID]
 *
 * Opens CONNECTIONS keep-alive connections to 127.0.0.1:PORT (TCP_NODELAY)
 * and keeps exactly one request in flight on each (a closed loop, like wrk;
 * no pipelining) for S seconds of warm-up (default 1, not counted) and then
 * SECONDS measured; then it sends nothing more and waits for the answers
 * still in flight.
 *   single  POST /v1/topics/TOPIC/events, application/cloudevents+json, one
 *           structured CloudEvent of about 220 bytes (the body of
 *           bench/publish_single.lua); the answer must be 201 without
 *           "duplicate":true.
 *   batch   the same with 100 such events as application/cloudevents-batch+json;
 *           the answer must be 200 with "failed_count":0 and no duplicate.
 * Every event id is "l<pid>-<realtime µs>-<connection>-<n>", so a second run
 * against the same server publishes no duplicates.
 *   --nchan  the same single requests to nginx + Nchan (bench/nchan.conf.in)
 *            for calibration: POST /pub/TOPIC, the answer must be 201 or 202
 *            (Nchan stores the body as the message; single mode only).
 *   --topics N  requests go round-robin to N topics TOPIC-0 … TOPIC-(N-1)
 *            (1 ≤ N ≤ TOPICS_MAX) instead of TOPIC.
 *
 * Output: one line on stdout,
 *   mode=single conns=64 secs=10.0 requests=R events=E events_per_s=X
 *   p50_ms=.. p99_ms=.. p999_ms=.. errors=N loader_cpu_s=L herald_cpu_s=H
 *   total_events=T
 * R, E, the latencies (send to whole answer, log-linear histogram of
 * microseconds, at most 3% relative error) and the CPU seconds (this
 * process from getrusage, herald's utime+stime from /proc/SERVER_PID/stat;
 * -1 without a pid) cover the measured window only; T counts every event
 * acknowledged, warm-up and the final answers included (what the topic
 * holds afterwards when it started empty). Exit status 1 when an answer was
 * wrong (the first few are printed on stderr), when no request completed
 * in the window, or on a fatal error (connect refused, the server silent
 * for REQ_TIMEOUT_S).
 *
 * Built for the lowest CPU per request, so the benchmark measures herald
 * rather than its client on the same two cores: one thread, raw epoll
 * (level-triggered, EPOLLOUT only while a write is partial), each request
 * built with memcpy of constant pieces and a hand-rolled integer formatter
 * and sent with one write(); an answer usually takes one read(). HTTP is
 * read just far enough for herald: status line, Content-Length (required),
 * body; an answer split across reads or several in one read are handled.
 *
 * Limits: at most CONNS_MAX connections; an answer's head at most HEAD_MAX
 * bytes and its body at most BODY_MAX (else an error and a new connection);
 * a request unanswered for REQ_TIMEOUT_S or a connect taking longer than
 * CONNECT_TIMEOUT_S ends the run; at most RECONNECTS_MAX reconnects after
 * the server closed a connection; every epoll_wait waits at most TICK_MS.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 1024
#define BATCH 100
#define TOPIC_MAX 200
#define PREFIX_MAX 64            /* "l<pid>-<µs>-<conn>-" */
#define HEAD_MAX (16u * 1024)    /* an answer's head */
#define BODY_MAX (1024u * 1024)  /* an answer's body */
#define RBUF_INIT 8192u
#define REQ_TIMEOUT_S 10.0
#define CONNECT_TIMEOUT_S 10.0
#define RECONNECTS_MAX 1000
#define ERRORS_SHOWN 5
#define TICK_MS 100
#define EVENTS_PER_WAIT 256
#define HIST_BUCKETS 1152        /* values up to 2^36 µs */

static const char P1[] = "{\"specversion\":\"1.0\",\"id\":\"";
static const char P2[] = "\",\"source\":\"/bench\",\"type\":\"bench.event\",\"data\":{\"n\":";
static const char P3[] = ",\"payload\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}";
#define LIT_LEN(s) (sizeof(s) - 1)
#define EVENT_MAX (LIT_LEN(P1) + PREFIX_MAX + 20 + LIT_LEN(P2) + 20 + LIT_LEN(P3))
#define TOPICS_MAX 1000000 /* --topics */
#define REQ_HEAD_MAX (TOPIC_MAX + 256)

static void die(const char *what)
{
	fprintf(stderr, "herald-publish-load: %s\n", what);
	exit(1);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "herald-publish-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "herald-publish-load: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes v in decimal at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* ---- the latency histogram (µs) ------------------------------------------ */

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_n, hist_max_us;

static unsigned hist_index(uint64_t us)
{
	if (us < 64)
		return (unsigned)us;
	if (us >= (UINT64_C(1) << 36))
		us = (UINT64_C(1) << 36) - 1;
	unsigned g = 63u - (unsigned)__builtin_clzll(us); /* 6 … 35 */
	unsigned shift = g - 5;
	return shift * 32 + (unsigned)(us >> shift); /* (us >> shift) in [32, 64) */
}

/* The middle of bucket i, in µs. */
static double hist_value(unsigned i)
{
	if (i < 64)
		return i;
	unsigned shift = i / 32 - 1;
	uint64_t lo = (uint64_t)(i % 32 + 32) << shift;
	return (double)lo + (double)((UINT64_C(1) << shift) - 1) / 2.0;
}

static void hist_add(double secs)
{
	uint64_t us = secs > 0 ? (uint64_t)(secs * 1e6) : 0;
	hist[hist_index(us)]++;
	hist_n++;
	if (us > hist_max_us)
		hist_max_us = us;
}

/* The p-th percentile in ms. */
static double hist_pct_ms(double p)
{
	if (!hist_n)
		return 0;
	uint64_t want = (uint64_t)((double)hist_n * p / 100.0);
	if (want >= hist_n)
		want = hist_n - 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return hist_value(i) / 1000.0;
	}
	return (double)hist_max_us / 1000.0;
}

/* ---- state ------------------------------------------------------------------ */

enum phase { WARMUP, MEASURE, DRAIN };
enum cstate { C_CLOSED, C_CONNECTING, C_OPEN };

struct conn {
	int fd;
	int id;
	enum cstate state;
	bool in_flight;      /* a request was (partly) written, its answer not read */
	bool want_out;       /* EPOLLOUT registered */
	double since;        /* the request's send, or the connect's start */
	uint64_t n;          /* events built so far */
	char prefix[PREFIX_MAX];
	size_t prefix_len;
	char *wbuf;          /* REQ_HEAD_MAX bytes of room, then the body */
	const char *wp;      /* the unwritten rest of the request */
	size_t wleft;
	char *rbuf;
	size_t rcap, rlen;
	size_t head_len, want; /* of the answer in rbuf; 0 until its head is complete */
};

static struct {
	bool batch;
	bool nchan; /* --nchan: POST /pub/TOPIC to nginx + Nchan, answers 201 or 202 */
	int port;
	const char *topic;
	int conns;
	double secs, warmup;
	long pid;
	char req_head[REQ_HEAD_MAX]; /* up to and including "Content-Length: " */
	size_t req_head_len;
	uint64_t topics;             /* --topics N (0: TOPIC alone) */
	size_t topic_at;             /* req_head up to the topic's end, with --topics */
	size_t wcap;
} opt;

static int ep;
static struct conn *conns;
static enum phase phase = WARMUP;
static uint64_t requests, total_events, errors, reconnects, next_topic;
static int in_flight;

static void error_at(struct conn *c, const char *what, int status, const char *body, size_t len)
{
	errors++;
	if (errors > ERRORS_SHOWN)
		return;
	if (status)
		fprintf(stderr, "herald-publish-load: connection %d: %s: HTTP %d %.*s\n", c->id, what, status,
			(int)(len > 300 ? 300 : len), body);
	else
		fprintf(stderr, "herald-publish-load: connection %d: %s\n", c->id, what);
	if (errors == ERRORS_SHOWN)
		fprintf(stderr, "herald-publish-load: (further errors only counted)\n");
}

static void watch(struct conn *c, int op, bool out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
	if (epoll_ctl(ep, op, c->fd, &ev) != 0)
		die_errno("epoll_ctl");
	c->want_out = out;
}

static void conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	int one = 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		die_errno("socket");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)
		die_errno("connect");
	c->state = C_CONNECTING;
	c->since = now_s();
	c->rlen = c->head_len = c->want = 0;
	c->in_flight = false;
	watch(c, EPOLL_CTL_ADD, true);
}

static void conn_close(struct conn *c)
{
	if (c->in_flight)
		in_flight--;
	c->in_flight = false;
	close(c->fd); /* leaves the epoll set */
	c->fd = -1;
	c->state = C_CLOSED;
}

/* After an error on c: a new connection while requests are still sent. */
static void conn_reset(struct conn *c)
{
	conn_close(c);
	if (phase == DRAIN)
		return;
	if (++reconnects > RECONNECTS_MAX)
		die("too many reconnects: the server keeps closing connections");
	conn_open(c);
}

/* Builds the next request into c->wbuf; sets c->wp, c->wleft. */
static void build(struct conn *c)
{
	char *body = c->wbuf + REQ_HEAD_MAX, *p = body;
	int k = opt.batch ? BATCH : 1;

	if (opt.batch)
		*p++ = '[';
	for (int i = 0; i < k; i++) {
		uint64_t n = ++c->n;
		if (i)
			*p++ = ',';
		p = put(p, P1, LIT_LEN(P1));
		p = put(p, c->prefix, c->prefix_len);
		p = put_u64(p, n);
		p = put(p, P2, LIT_LEN(P2));
		p = put_u64(p, n);
		p = put(p, P3, LIT_LEN(P3));
	}
	if (opt.batch)
		*p++ = ']';

	char head[REQ_HEAD_MAX], *h = head;
	if (opt.topics) {
		h = put(h, opt.req_head, opt.topic_at);
		*h++ = '-';
		h = put_u64(h, next_topic++ % opt.topics);
		h = put(h, opt.req_head + opt.topic_at, opt.req_head_len - opt.topic_at);
	} else {
		h = put(h, opt.req_head, opt.req_head_len);
	}
	h = put_u64(h, (uint64_t)(p - body));
	h = put(h, "\r\n\r\n", 4);
	size_t hl = (size_t)(h - head);
	c->wp = body - hl;
	memcpy(c->wbuf + REQ_HEAD_MAX - hl, head, hl);
	c->wleft = (size_t)(p - c->wp);
}

/* Writes what is left of c's request; EPOLLOUT while it is partial. */
static void flush(struct conn *c)
{
	while (c->wleft) {
		ssize_t w = write(c->fd, c->wp, c->wleft);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (!c->want_out)
				watch(c, EPOLL_CTL_MOD, true);
			return;
		}
		if (w < 0) {
			error_at(c, strerror(errno), 0, NULL, 0);
			conn_reset(c);
			return;
		}
		c->wp += w;
		c->wleft -= (size_t)w;
	}
	if (c->want_out)
		watch(c, EPOLL_CTL_MOD, false);
}

static void send_next(struct conn *c)
{
	build(c);
	c->in_flight = true;
	in_flight++;
	c->since = now_s();
	flush(c);
}

/* Judges one whole answer in c->rbuf (head_len, want). */
static void answer(struct conn *c, double now)
{
	const char *buf = c->rbuf, *body = buf + c->head_len;
	size_t body_len = c->want - c->head_len;
	int status = c->head_len > 12 && buf[9] >= '1' && buf[9] <= '5'
			     ? (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0')
			     : -1;

	if (!c->in_flight) {
		error_at(c, "an answer without a request", status, body, body_len);
		return;
	}
	c->in_flight = false;
	in_flight--;
	if (opt.batch) {
		const char *f = memmem(body, body_len, "\"failed_count\":0", 16);
		if (status != 200 || !f || (f + 16 < body + body_len && f[16] != ',' && f[16] != '}')) {
			error_at(c, "batch refused or an entry failed", status, body, body_len);
			return;
		}
	} else if (status != 201 && !(opt.nchan && status == 202)) {
		error_at(c, "publish not created", status, body, body_len);
		return;
	}
	if (memmem(body, body_len, "\"duplicate\":true", 16)) {
		error_at(c, "a duplicate", status, body, body_len);
		return;
	}
	total_events += opt.batch ? BATCH : 1;
	if (phase == MEASURE) {
		requests++;
		hist_add(now - c->since);
	}
}

/* Finds the head's end and Content-Length; false (after error_at) on a bad head. */
static bool parse_head(struct conn *c)
{
	const char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
	if (!end) {
		if (c->rlen > HEAD_MAX) {
			error_at(c, "an answer head too large", 0, NULL, 0);
			return false;
		}
		return true;
	}
	c->head_len = (size_t)(end - c->rbuf) + 4;
	if (c->head_len < 12 || memcmp(c->rbuf, "HTTP/1.", 7) != 0) {
		error_at(c, "not an HTTP answer", 0, NULL, 0);
		return false;
	}
	for (const char *l = c->rbuf; l && l < end; l = memmem(l, (size_t)(end - l), "\r\n", 2)) {
		l += 2;
		if ((*l == 'c' || *l == 'C') && strncasecmp(l, "content-length:", 15) == 0) {
			char *e;
			unsigned long long n = strtoull(l + 15, &e, 10);
			if (n > BODY_MAX) {
				error_at(c, "an answer body larger than 1 MiB", 0, NULL, 0);
				return false;
			}
			c->want = c->head_len + (size_t)n;
			return true;
		}
	}
	error_at(c, "an answer without Content-Length", 0, NULL, 0);
	return false;
}

static void on_readable(struct conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 1024) {
			size_t cap = c->rcap * 2;
			char *p = realloc(c->rbuf, cap);
			if (!p)
				die("out of memory");
			c->rbuf = p;
			c->rcap = cap;
		}
		size_t room = c->rcap - c->rlen;
		ssize_t r = read(c->fd, c->rbuf + c->rlen, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			if (c->in_flight || c->rlen)
				error_at(c, r == 0 ? "connection closed by the server" : strerror(errno), 0, NULL, 0);
			conn_reset(c);
			return;
		}
		c->rlen += (size_t)r;
		double now = 0;
		/* Every whole answer in the buffer. */
		for (;;) {
			if (!c->head_len) {
				if (!parse_head(c)) {
					conn_reset(c);
					return;
				}
				if (!c->head_len)
					break;
			}
			if (c->rlen < c->want)
				break;
			if (now == 0)
				now = now_s();
			answer(c, now);
			memmove(c->rbuf, c->rbuf + c->want, c->rlen - c->want);
			c->rlen -= c->want;
			c->head_len = c->want = 0;
		}
		if (!c->in_flight && c->wleft) {
			error_at(c, "an answer before the whole request was written", 0, NULL, 0);
			conn_reset(c);
			return;
		}
		if (!c->in_flight && phase != DRAIN) {
			send_next(c);
			if (c->state != C_OPEN)
				return; /* the write failed: a new connection */
		}
		if ((size_t)r < room)
			return; /* the socket is empty: spare the read that says EAGAIN */
	}
}

static void on_writable(struct conn *c)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			die_errno("getsockopt");
		if (err) {
			errno = err;
			die_errno("connect");
		}
		c->state = C_OPEN;
		if (phase == DRAIN) {
			conn_close(c);
			return;
		}
		send_next(c);
		return;
	}
	flush(c);
}

/* Dies when the server has stopped answering. */
static void check_stalls(double now)
{
	for (int i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		if (c->state == C_CONNECTING && now - c->since > CONNECT_TIMEOUT_S) {
			fprintf(stderr, "herald-publish-load: connection %d: no connect in %.0f s\n", i,
				CONNECT_TIMEOUT_S);
			exit(1);
		}
		if (c->in_flight && now - c->since > REQ_TIMEOUT_S) {
			fprintf(stderr, "herald-publish-load: connection %d: no answer in %.0f s (server stuck or gone?)\n",
				i, REQ_TIMEOUT_S);
			exit(1);
		}
	}
}

static double server_cpu(long pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* Fields after the name: state(3) … utime(14) stime(15). */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: herald-publish-load [--warmup S] [--nchan] [--topics N] single|batch PORT "
			"TOPIC CONNECTIONS SECONDS [SERVER_PID]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	int i = 1;
	opt.warmup = 1;
	for (;;) {
		if (argc > i + 1 && strcmp(argv[i], "--warmup") == 0) {
			opt.warmup = atof(argv[i + 1]);
			i += 2;
		} else if (argc > i + 1 && strcmp(argv[i], "--topics") == 0) {
			long n = atol(argv[i + 1]);
			if (n < 1 || n > TOPICS_MAX)
				die("--topics must be 1-1000000");
			opt.topics = (uint64_t)n;
			i += 2;
		} else if (argc > i && strcmp(argv[i], "--nchan") == 0) {
			opt.nchan = true;
			i++;
		} else {
			break;
		}
	}
	if (argc - i != 5 && argc - i != 6)
		usage();
	if (strcmp(argv[i], "single") == 0)
		opt.batch = false;
	else if (strcmp(argv[i], "batch") == 0)
		opt.batch = true;
	else
		usage();
	opt.port = atoi(argv[i + 1]);
	opt.topic = argv[i + 2];
	opt.conns = atoi(argv[i + 3]);
	opt.secs = atof(argv[i + 4]);
	opt.pid = argc - i == 6 ? atol(argv[i + 5]) : 0;
	if (opt.port < 1 || opt.port > 65535)
		die("PORT must be 1-65535");
	if (!*opt.topic || strlen(opt.topic) > TOPIC_MAX || strpbrk(opt.topic, " \r\n/?#"))
		die("TOPIC must be 1-200 characters without space, / ? #");
	if (opt.conns < 1 || opt.conns > CONNS_MAX)
		die("CONNECTIONS must be 1-1024");
	if (!(opt.secs > 0 && opt.secs <= 3600))
		die("SECONDS must be in (0, 3600]");
	if (!(opt.warmup >= 0 && opt.warmup <= 600))
		die("--warmup must be in [0, 600]");
	if (opt.nchan && opt.batch)
		die("--nchan publishes single events only");
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);

	/* A descriptor per connection, and a few more. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 32) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)opt.conns + 32 ? rl.rlim_max : (rlim_t)opt.conns + 32;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	int hl = snprintf(opt.req_head, sizeof(opt.req_head),
			  "POST %s%s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
			  "Content-Length: ",
			  opt.nchan ? "/pub/" : "/v1/topics/", opt.topic, opt.nchan ? "" : "/events",
			  opt.batch ? "application/cloudevents-batch+json" : "application/cloudevents+json");
	/* Room left for the topic's number and the Content-Length value. */
	if (hl < 0 || (size_t)hl + 48 >= sizeof(opt.req_head))
		die("request head too long");
	opt.req_head_len = (size_t)hl;
	opt.topic_at = strlen(opt.nchan ? "POST /pub/" : "POST /v1/topics/") + strlen(opt.topic);
	opt.wcap = REQ_HEAD_MAX + (opt.batch ? BATCH * (EVENT_MAX + 1) + 2 : EVENT_MAX);

	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	uint64_t stamp = (uint64_t)rt.tv_sec * 1000000u + (uint64_t)rt.tv_nsec / 1000u;

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die_errno("epoll_create1");
	conns = calloc((size_t)opt.conns, sizeof(*conns));
	if (!conns)
		die("out of memory");
	for (int i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		c->id = i;
		int n = snprintf(c->prefix, sizeof(c->prefix), "l%ld-%" PRIu64 "-%d-", (long)getpid(), stamp, i);
		if (n < 0 || (size_t)n >= sizeof(c->prefix))
			die("id prefix too long");
		c->prefix_len = (size_t)n;
		c->wbuf = xmalloc(opt.wcap);
		c->rcap = RBUF_INIT;
		c->rbuf = xmalloc(c->rcap);
		conn_open(c);
	}

	double t_start = now_s(), t_measure = t_start + opt.warmup, t_end = t_measure + opt.secs;
	double t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0, hcpu0 = -1, hcpu1 = -1, next_check = t_start + 1;
	struct epoll_event evs[EVENTS_PER_WAIT];

	for (;;) {
		double now = now_s();
		if (phase == WARMUP && now >= t_measure) {
			phase = MEASURE;
			t0 = now;
			cpu0 = self_cpu();
			hcpu0 = server_cpu(opt.pid);
		}
		if (phase == MEASURE && now >= t_end) {
			phase = DRAIN;
			t1 = now;
			cpu1 = self_cpu();
			hcpu1 = server_cpu(opt.pid);
			for (int i = 0; i < opt.conns; i++)
				if (conns[i].state == C_CONNECTING)
					conn_close(&conns[i]);
		}
		if (phase == DRAIN && in_flight == 0)
			break;
		if (now >= next_check) {
			check_stalls(now);
			next_check = now + 1;
		}
		double until = phase == WARMUP ? t_measure : phase == MEASURE ? t_end : now + 1;
		int ms = (int)((until - now) * 1000) + 1;
		if (ms > TICK_MS)
			ms = TICK_MS;
		int n = epoll_wait(ep, evs, EVENTS_PER_WAIT, ms);
		if (n < 0 && errno != EINTR)
			die_errno("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->state == C_CLOSED)
				continue;
			if (c->state == C_CONNECTING) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					on_writable(c);
				continue;
			}
			if ((evs[i].events & EPOLLOUT) && c->wleft)
				on_writable(c);
			/* A connection reset above has a new descriptor: its events come later. */
			if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->state == C_OPEN)
				on_readable(c);
		}
	}

	uint64_t events = requests * (opt.batch ? BATCH : 1);
	double secs = t1 - t0;
	printf("mode=%s conns=%d secs=%.1f requests=%" PRIu64 " events=%" PRIu64 " events_per_s=%.0f p50_ms=%.3f "
	       "p99_ms=%.3f p999_ms=%.3f errors=%" PRIu64 " loader_cpu_s=%.2f herald_cpu_s=%.2f total_events=%" PRIu64
	       "\n",
	       opt.batch ? "batch" : "single", opt.conns, secs, requests, events, secs > 0 ? (double)events / secs : 0,
	       hist_pct_ms(50), hist_pct_ms(99), hist_pct_ms(99.9), errors, cpu1 - cpu0,
	       hcpu0 >= 0 && hcpu1 >= 0 ? hcpu1 - hcpu0 : -1.0, total_events);
	for (int i = 0; i < opt.conns; i++) {
		if (conns[i].state != C_CLOSED)
			close(conns[i].fd);
		free(conns[i].wbuf);
		free(conns[i].rbuf);
	}
	free(conns);
	close(ep);
	if (errors)
		return 1;
	if (!requests) {
		fprintf(stderr, "herald-publish-load: no request completed in the measured window\n");
		return 1;
	}
	return 0;
}
