/*
 * herald-groups-load — the pull consumer group load generator of
 * bench/groups.sh.
 *
 *   herald-groups-load publish PORT TOPIC N
 *       publishes N structured CloudEvents (about 200 bytes each) to TOPIC
 *       in batches of 100 (application/cloudevents-batch+json) on one
 *       keep-alive connection.
 *   herald-groups-load consume PORT TOPIC GROUP CONSUMERS [SERVER_PID]
 *       creates GROUP at the topic's oldest event, starts CONSUMERS
 *       threads, each with one keep-alive connection, and releases them
 *       together; each loops fetch (max=100, wait=0) then an ack of the
 *       fetched offsets ({"offsets":[…]}, answered once durable) until a
 *       fetch comes back empty. Prints one line on stdout:
 *       consumers=C acked=A secs=S events_per_s=E fetch_p50_ms=P
 *       fetch_p99_ms=Q loader_cpu_s=L herald_cpu_s=H
 *       (H from /proc/SERVER_PID/stat over the run; -1 without a pid).
 *       A consume TOPIC ending in '*' is a topic pattern whose prefix is the
 *       one topic published to: a group over that pattern, its entries
 *       {"topic":…,"offset":N,…} and its acks {"events":[{topic, offset}]}.
 *
 * Blocking sockets, one thread per consumer: the simplest client that
 * costs far less CPU than the server it measures. The HTTP client reads
 * answers with Content-Length only (herald's kind), one request at a time.
 * A fetch answer {"events":[{"offset":N,"deliveries":D,"event":{…}},…],…}
 * is walked element by element (braces matched outside strings), so the
 * event's own "offset" member is never mistaken for the entry's. Every ack
 * answer's "acked" must equal the number of offsets sent: a refused or
 * duplicate ack fails the run. Limits: an answer is at most 16 MiB; at
 * most 4 million fetch latencies per consumer are kept.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (16u * 1024 * 1024)
#define LAT_MAX (4u * 1024 * 1024)
#define FETCH_MAX 100
#define CONSUMERS_MAX 64

static int port;
static const char *topic, *group;

static void die(const char *what)
{
	fprintf(stderr, "herald-groups-load: %s\n", what);
	exit(1);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "herald-groups-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fprintf(stderr, "herald-groups-load: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

/* One keep-alive connection and its answer buffer. */
struct conn {
	int fd;
	char *buf;          /* the last answer: head then body */
	size_t cap, len;
	const char *body;   /* into buf */
	size_t body_len;
	int status;
};

static void conn_open(struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		die_errno("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die_errno("send");
		p += w;
		n -= (size_t)w;
	}
}

/* Sends one request and reads its whole answer into c. */
static void request(struct conn *c, const char *method, const char *path, const char *ctype,
		    const char *body, size_t body_len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
			 method, path, ctype, body_len);
	if (n < 0 || (size_t)n >= sizeof(head))
		die("request head too long");
	send_all(c->fd, head, (size_t)n);
	if (body_len)
		send_all(c->fd, body, body_len);

	size_t head_len = 0, want = 0;
	c->len = 0;
	for (;;) {
		if (c->cap - c->len < 65536) {
			if (c->cap >= ANSWER_MAX)
				die("answer too large");
			c->cap = c->cap ? c->cap * 2 : 262144;
			c->buf = xrealloc(c->buf, c->cap + 1);
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die_errno("recv");
		if (r == 0)
			die("connection closed by the server");
		c->len += (size_t)r;
		c->buf[c->len] = '\0';
		if (!head_len) {
			char *end = strstr(c->buf, "\r\n\r\n");
			if (!end)
				continue;
			head_len = (size_t)(end - c->buf) + 4;
			c->status = atoi(c->buf + 9);
			const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
			if (!cl || cl > end)
				die("an answer without Content-Length");
			want = head_len + strtoul(cl + 17, NULL, 10);
			if (want > ANSWER_MAX)
				die("answer too large");
		}
		if (c->len >= want)
			break;
	}
	if (c->len != want)
		die("more bytes than the answer held");
	c->body = c->buf + head_len;
	c->body_len = want - head_len;
}

static void expect(const struct conn *c, int status, const char *what)
{
	if (c->status == status || (status == 200 && c->status == 201))
		return;
	fprintf(stderr, "herald-groups-load: %s: HTTP %d %.*s\n", what, c->status,
		(int)(c->body_len > 300 ? 300 : c->body_len), c->body);
	exit(1);
}

/* The end of the JSON value that starts at p ('{'), or NULL. */
static const char *skip_object(const char *p, const char *end)
{
	int depth = 0;
	bool str = false;
	for (; p < end; p++) {
		if (str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				str = false;
		} else if (*p == '"') {
			str = true;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (--depth == 0)
				return p + 1;
		}
	}
	return NULL;
}

/* The entries' offsets of a fetch answer into offs (at most FETCH_MAX). */
static size_t fetch_offsets(const struct conn *c, uint64_t *offs)
{
	static const char start[] = "{\"events\":[";
	const char *p = c->body, *end = c->body + c->body_len;
	size_t n = 0;

	if (c->body_len < sizeof(start) - 1 || memcmp(p, start, sizeof(start) - 1) != 0)
		die("unexpected fetch answer");
	p += sizeof(start) - 1;
	while (p < end && *p == '{') {
		const char *o;
		if (strncmp(p, "{\"topic\":\"", 10) == 0) { /* a pattern group's: the topic first */
			const char *q = memchr(p + 10, '"', (size_t)(end - p - 10));
			if (!q || end - q < 11 || strncmp(q + 1, ",\"offset\":", 10) != 0)
				die("unexpected fetch entry");
			o = q + 11;
		} else {
			if (strncmp(p, "{\"offset\":", 10) != 0)
				die("unexpected fetch entry");
			o = p + 10;
		}
		if (n == FETCH_MAX)
			die("unexpected fetch entry");
		offs[n++] = strtoull(o, NULL, 10);
		p = skip_object(p, end);
		if (!p)
			die("truncated fetch answer");
		if (*p == ',')
			p++;
	}
	return n;
}

struct consumer {
	pthread_t th;
	uint64_t acked;
	double t0, t1;
	double *lat;
	size_t nlat;
};

static pthread_barrier_t go;

static void *consume(void *arg)
{
	struct consumer *me = arg;
	struct conn c = {0};
	char fetch_path[600], ack_path[600];
	uint64_t offs[FETCH_MAX];
	char body[FETCH_MAX * (22 + 32 + 256) + 32];
	size_t tlen = strlen(topic);
	bool pattern = tlen > 0 && topic[tlen - 1] == '*';

	snprintf(fetch_path, sizeof(fetch_path), "/v1/topics/%s/groups/%s/fetch?max=%d&wait=0", topic, group,
		 FETCH_MAX);
	snprintf(ack_path, sizeof(ack_path), "/v1/topics/%s/groups/%s/ack", topic, group);
	conn_open(&c);
	me->lat = xrealloc(NULL, 1024 * sizeof(double));
	pthread_barrier_wait(&go);
	me->t0 = now_s();
	for (size_t cap = 1024;;) {
		double s = now_s();
		request(&c, "POST", fetch_path, "application/json", "", 0);
		expect(&c, 200, "fetch");
		if (me->nlat == cap && cap < LAT_MAX) {
			cap *= 2;
			me->lat = xrealloc(me->lat, cap * sizeof(double));
		}
		if (me->nlat < cap)
			me->lat[me->nlat++] = now_s() - s;
		size_t n = fetch_offsets(&c, offs);
		if (n == 0)
			break;
		size_t len = (size_t)snprintf(body, sizeof(body), pattern ? "{\"events\":[" : "{\"offsets\":[");
		for (size_t i = 0; i < n; i++) {
			if (pattern)
				len += (size_t)snprintf(body + len, sizeof(body) - len,
							"%s{\"topic\":\"%.*s\",\"offset\":%" PRIu64 "}",
							i ? "," : "", (int)(tlen - 1), topic, offs[i]);
			else
				len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%" PRIu64,
							i ? "," : "", offs[i]);
		}
		len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
		request(&c, "POST", ack_path, "application/json", body, len);
		expect(&c, 200, "ack");
		const char *a = strstr(c.body, "\"acked\":");
		if (!a || strtoull(a + 8, NULL, 10) != n) {
			fprintf(stderr, "herald-groups-load: an ack of %zu offsets answered %.*s\n", n,
				(int)c.body_len, c.body);
			exit(1);
		}
		me->acked += n;
	}
	me->t1 = now_s();
	close(c.fd);
	free(c.buf);
	return NULL;
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void publish(long n)
{
	struct conn c = {0};
	char path[600];
	size_t cap = 100 * 320 + 16;
	char *body = xrealloc(NULL, cap);

	snprintf(path, sizeof(path), "/v1/topics/%s/events", topic);
	conn_open(&c);
	for (long i = 0; i < n;) {
		size_t len = 0;
		body[len++] = '[';
		for (long k = 0; k < 100 && i < n; k++, i++)
			len += (size_t)snprintf(body + len, cap - len,
						"%s{\"specversion\":\"1.0\",\"id\":\"b%d-%ld\",\"source\":\"/bench\","
						"\"type\":\"bench.event\",\"data\":{\"n\":%ld,\"payload\":"
						"\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}",
						k ? "," : "", (int)getpid(), i, i);
		body[len++] = ']';
		request(&c, "POST", path, "application/cloudevents-batch+json", body, len);
		expect(&c, 200, "publish");
		if (!strstr(c.body, "\"failed_count\":0"))
			die("a batch entry failed");
	}
	close(c.fd);
	free(c.buf);
	free(body);
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "publish") == 0) {
		port = atoi(argv[2]);
		topic = argv[3];
		publish(atol(argv[4]));
		return 0;
	}
	if ((argc != 6 && argc != 7) || strcmp(argv[1], "consume") != 0) {
		fprintf(stderr, "usage: herald-groups-load publish PORT TOPIC N\n"
				"       herald-groups-load consume PORT TOPIC GROUP CONSUMERS [SERVER_PID]\n");
		return 2;
	}
	port = atoi(argv[2]);
	topic = argv[3];
	group = argv[4];
	int n = atoi(argv[5]);
	long pid = argc == 7 ? atol(argv[6]) : 0;
	if (n < 1 || n > CONSUMERS_MAX)
		die("CONSUMERS must be 1-64");

	struct conn c = {0};
	char path[600];
	static const char create[] = "{\"start\":\"oldest\"}";
	snprintf(path, sizeof(path), "/v1/topics/%s/groups/%s", topic, group);
	conn_open(&c);
	request(&c, "PUT", path, "application/json", create, sizeof(create) - 1);
	expect(&c, 200, "create the group");
	close(c.fd);
	free(c.buf);

	struct consumer *cs = calloc((size_t)n, sizeof(*cs));
	if (!cs)
		die("calloc");
	pthread_barrier_init(&go, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++)
		if (pthread_create(&cs[i].th, NULL, consume, &cs[i]))
			die("pthread_create");
	double cpu0 = server_cpu(pid);
	struct rusage ru0, ru1;
	getrusage(RUSAGE_SELF, &ru0);
	pthread_barrier_wait(&go);
	for (int i = 0; i < n; i++)
		pthread_join(cs[i].th, NULL);
	getrusage(RUSAGE_SELF, &ru1);
	double cpu1 = server_cpu(pid);

	uint64_t acked = 0;
	size_t nlat = 0;
	double t0 = cs[0].t0, t1 = cs[0].t1;
	for (int i = 0; i < n; i++) {
		acked += cs[i].acked;
		nlat += cs[i].nlat;
		t0 = cs[i].t0 < t0 ? cs[i].t0 : t0;
		t1 = cs[i].t1 > t1 ? cs[i].t1 : t1;
	}
	double *lat = xrealloc(NULL, (nlat ? nlat : 1) * sizeof(double));
	for (int i = 0, k = 0; i < n; i++) {
		memcpy(lat + k, cs[i].lat, cs[i].nlat * sizeof(double));
		k += (int)cs[i].nlat;
		free(cs[i].lat);
	}
	qsort(lat, nlat, sizeof(double), cmp_double);
	double secs = t1 - t0;
#define TV(t) ((double)(t).tv_sec + (double)(t).tv_usec / 1e6)
	double loader = TV(ru1.ru_utime) + TV(ru1.ru_stime) - TV(ru0.ru_utime) - TV(ru0.ru_stime);
	printf("consumers=%d acked=%" PRIu64 " secs=%.2f events_per_s=%.0f fetch_p50_ms=%.2f "
	       "fetch_p99_ms=%.2f loader_cpu_s=%.2f herald_cpu_s=%.2f\n",
	       n, acked, secs, secs > 0 ? (double)acked / secs : 0.0, nlat ? lat[nlat / 2] * 1000 : 0.0,
	       nlat ? lat[(size_t)((double)nlat * 0.99) < nlat ? (size_t)((double)nlat * 0.99) : nlat - 1] * 1000 : 0.0,
	       loader, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1.0);
	free(lat);
	free(cs);
	return 0;
}
